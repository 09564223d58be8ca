"""bench/bulk.py runs end to end on a few small photos and prints its ratios."""

from __future__ import annotations

import re

import pytest

from bench import bulk

pytestmark = pytest.mark.e2e


def test_bulk_bench_prints_throughput_and_overhead_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert bulk.main(["--images", "3", "--size", "480"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"engine \(baseline\):\s+[\d.]+ images/min", printed)
    assert re.search(r"bulk \(local stack\):\s+[\d.]+ images/min", printed)
    assert re.search(r"orchestration overhead: -?[\d.]+ s per image = -?[\d.]+ x engine time", printed)
    assert "credits spent: 3 for 3 images" in printed
