"""The studio engine's benchmarks run end to end on a tiny budget (no timing assertions)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench import studio_quality, studio_speed
from bench.studio_data import build_image, build_set, scaled


def test_labelled_set_is_deterministic_and_varied() -> None:
    a, b = build_image(4, (240, 300), 1), build_image(4, (240, 300), 1)
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.alpha, b.alpha)
    items = build_set(6, (240, 300), 0)
    assert all(i.rgb.shape == (300, 240, 3) and i.alpha.shape == (300, 240) for i in items)
    assert all(0.05 < float((i.alpha >= 0.5).mean()) < 0.8 for i in items)
    assert any(t.startswith("mannequin:") for i in items for t in i.tags)
    assert any(i.options.get("mannequin") for i in items)
    big = scaled(items[0], (480, 600))
    assert big.rgb.shape == (600, 480, 3)


def test_boundary_f() -> None:
    mask = np.zeros((50, 50), bool)
    mask[10:40, 10:40] = True
    assert studio_quality.boundary_f(mask, mask) == 1.0
    shifted = np.roll(mask, 1, axis=1)
    assert studio_quality.boundary_f(shifted, mask, tolerance=2) == 1.0
    assert studio_quality.boundary_f(np.roll(mask, 6, axis=1), mask, tolerance=2) < 0.6


def test_quality_tiny_set_beats_grabcut(capsys: pytest.CaptureFixture[str]) -> None:
    items = build_set(4, (300, 375), 0)
    rows = studio_quality.evaluate(items, grabcut=True)
    summary = studio_quality.summarise(rows)
    engine, grabcut = summary["all"]["engine"], summary["all"]["grabcut"]
    for scores in (engine, grabcut):
        assert all(math.isfinite(scores[k]) for k in ("iou", "boundary_f", "sad", "seconds"))
    assert engine["iou"] > grabcut["iou"]
    assert engine["iou"] >= 0.95
    assert engine["sad"] < grabcut["sad"]
    studio_quality.print_report(rows, summary, 2)
    out = capsys.readouterr().out
    assert "engine/grabcut" in out
    assert "target mean IoU" in out


def test_quality_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.json"
    assert studio_quality.main(["--n", "2", "--size", "200x250", "--no-grabcut", "--json", str(out)]) == 0
    assert '"summary"' in out.read_text()
    assert "IoU" in capsys.readouterr().out


def test_speed_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    results = studio_speed.run(photos=1, repeat=1, megapixels=0.3)
    engine, grabcut = results["engine"], results["grabcut"]
    for key in (
        "cold_s",
        "load_s",
        "import_s",
        "decode_jpeg_s",
        "encode_png_s",
        "encode_avif_s",
        "peak_rss_mib",
    ):
        assert engine[key] > 0
    assert len(engine["warm_s"]) == 1
    assert len(engine["matte_s"]) == 1
    assert len(grabcut["warm_s"]) == 1
    assert grabcut["peak_rss_mib"] > 0
    studio_speed.print_report(results)
    out = capsys.readouterr().out
    assert "engine/grabcut time" in out
    assert "one core" in out
