"""bench/load.py runs a baseline and a loaded round through the local stack and prints its ratios."""

from __future__ import annotations

import re

import pytest

from bench import load

pytestmark = pytest.mark.e2e


def test_load_bench_prints_latency_and_throughput_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    assert load.main(["--users", "2", "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert re.search(
        r"baseline: 1 customer\(s\) x 1 job\(s\): 1 submitted, \{'succeeded': 1\}, 0 lost, 0 5xx", printed
    )
    assert re.search(
        r"loaded: 2 customer\(s\) x 1 job\(s\): 2 submitted, \{'succeeded': 2\}, 0 lost, 0 5xx", printed
    )
    assert re.search(r"API latency: p50 \d+ ms, p99 \d+ ms", printed)
    assert re.search(
        r"ratios \(loaded / baseline\): API p50 [\d.]+x, p99 [\d.]+x, throughput [\d.]+x", printed
    )


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (load.percentile(values, 50), load.percentile(values, 99), load.percentile(values, 100)) == (
        50,
        99,
        100,
    )
    assert load.percentile([3.0], 99) == 3.0
