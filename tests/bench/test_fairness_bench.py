"""bench/fairness.py runs its three rounds end to end on a tiny drop, checks the books and prints its ratios."""

from __future__ import annotations

import re

import pytest

from bench import fairness

pytestmark = pytest.mark.e2e


def test_fairness_bench_runs_a_tiny_drop_and_keeps_the_books(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--n", "4", "--delay", "0.3", "--modes", "fifo", "--idle-runs", "1", "--mixed-runs", "2"]
    assert fairness.main([*argv, "--mixed-gap", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"\[fifo\] A alone: [\d.]+ s for 4 photos", printed)
    assert re.search(
        r"fifo: B's latency beside A's drop = [\d.]+ x B idle \(median of 2; first [\d.]+x, worst [\d.]+x\);"
        r" A's total = [\d.]+ x A alone; B's first finished [1-5] of 5",
        printed,
    )
    assert (
        len(re.findall(r"\[fifo\] B beside the drop, job \d \(\+\d+ s\): [\d.]+ s = [\d.]+x idle", printed))
        == 2
    )
    # 4 + 4 batch jobs, B's warm-up, idle and two mixed jobs: each invoked the endpoint once
    assert re.search(r"endpoint: 12 invocations paced at 0\.30 s", printed)
    assert "books: nothing lost, nothing run twice, every hold settled" in printed


def test_the_report_says_whether_the_scheduler_met_its_targets() -> None:
    def result(mode: str, b_mixed: float, a_mixed: float) -> fairness.ModeResult:
        r = fairness.ModeResult(mode, n=10, delay=1.0, b_idle=2.0, a_alone=100.0)
        r.mixed = fairness.Mixed(
            b_runs=[b_mixed, 9 * b_mixed, b_mixed / 2], a_seconds=a_mixed, b_place=3, jobs=11
        )
        return r

    lines = fairness.report([result("fifo", 40.0, 101.0), result("fair", 3.9, 109.0)])
    text = "\n".join(lines)
    assert (
        "fifo: B's latency beside A's drop = 20.00 x B idle (median of 3; first 20.00x, worst 180.00x);"
        " A's total = 1.010 x A alone; B's first finished 3 of 11"
    ) in text
    assert "targets: B <= 2x idle met; A within 10% of alone met" in text
    assert text.count("targets:") == 1  # FIFO is the contrast, not held to the targets

    missed = "\n".join(fairness.report([result("fair", 4.1, 111.0)]))
    assert "targets: B <= 2x idle NOT met; A within 10% of alone NOT met" in missed
