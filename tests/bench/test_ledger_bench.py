"""The ledger benchmark's core on a tiny budget: the ledger loses nothing and never overdraws (no timing claims)."""

from __future__ import annotations

from bench.ledger import Result, ratios, run_bench, table


def test_ledger_bench_keeps_every_credit(admin_url: str, database_url: str) -> None:
    results = run_bench(admin_url, database_url, seconds=0.2, threads=4, scarce=20)
    by = {(r.impl, r.workload, r.threads): r for r in results}
    assert set(by) == {
        (impl, workload, n)
        for impl in ("ledger", "naive")
        for workload, n in (("throughput", 1), ("throughput", 4), ("scarcity", 4))
    }
    ledger: list[Result] = [r for r in results if r.impl == "ledger"]
    for r in ledger:
        assert r.ops > 0
        assert r.lost == 0
        assert r.overdrafts == 0
        assert r.final_balance == r.ledger_sum
        assert r.final_balance >= 0
        assert r.settled == r.ops  # every acknowledged reservation was captured exactly once
    scarce = by[("ledger", "scarcity", 4)]
    assert (scarce.ops, scarce.final_balance, scarce.refused) == (20, 0, 4)
    assert by[("naive", "throughput", 1)].lost == 0  # one connection cannot lose its own updates
    assert "balance==ledger" in table(results)
    assert len(ratios(results)) == 2
