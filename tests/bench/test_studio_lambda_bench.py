"""``bench.studio_lambda`` runs end to end on a tiny budget, and its sizing rules (no timing assertions)."""

from __future__ import annotations

import pytest

from bench import studio_lambda


def test_the_bench_runs_the_function_and_sizes_it(capsys: pytest.CaptureFixture[str]) -> None:
    results = studio_lambda.run(repeat=1, megapixels=(0.3,), samples=False)
    (measured,) = results["sets"]
    assert measured["set"] == "0.3 MP"
    assert measured["megapixels"] == [0.3]
    assert measured["warm_s"] > 0
    assert measured["split_s"]["engine"] > 0
    assert measured["peak_rss_mib"] > measured["rss_imported_mib"] > 0
    sizing = results["sizing"]
    assert sizing["memory_mb"] == studio_lambda.ONE_VCPU_MB  # a small photo: one vCPU decides
    assert sizing["timeout_s"] >= studio_lambda.MIN_TIMEOUT_S
    studio_lambda.print_report(results)
    assert "GB-s per image" in capsys.readouterr().out


def _set(name: str, megapixels: float, peak: float, warm: float, cold: float = 1.0) -> dict[str, object]:
    return {
        "set": name,
        "megapixels": [megapixels],
        "peak_rss_mib": peak,
        "warm_s": warm,
        "init_s": 0.5,
        "cold_s": cold,
    }


def test_memory_covers_the_largest_photo_and_one_vcpu() -> None:
    small = studio_lambda.sizing([_set("12 MP", 12, 450, 1.0), _set("50 MP", 50, 700, 1.5)])
    assert small["memory_mb"] == 1769  # 1.5 x 700 MiB fits in one vCPU's memory
    assert small["per_set"]["12 MP"]["gb_s"] == pytest.approx(1769 / 1024 * 1.0)
    big = studio_lambda.sizing([_set("50 MP", 50, 1600, 1.5, cold=4.0)])
    assert big["memory_mb"] == 2400  # 1.5 x the peak
    assert big["timeout_s"] == 45  # 10 x (0.5 + 4.0)
    assert studio_lambda.sizing([_set("x", 1, 100, 1.0)], cores=2)["memory_mb"] == 2 * 1769
