"""bench.studio_real and bench.real_truth: the metrics, the verdicts, the truth built from annotations, and a
clear skip when the real-photo set is not beside the repository (no timing, no real photos needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import real_truth, studio_real
from bench.real_truth import Truth


def _truth(expect: str = "cut") -> Truth:
    garment = np.zeros((100, 100), bool)
    garment[20:80, 20:80] = True
    other = np.zeros((100, 100), bool)
    other[0:20, 45:55] = True  # a neck above the garment
    return Truth("x.jpg", "mannequin", garment, other, expect)


def test_measure_and_verdicts() -> None:
    t = _truth()
    perfect = t.garment.copy()
    scores = studio_real.measure(perfect, t)
    assert scores["iou"] == 1.0
    assert scores["residue"] == 0.0
    assert scores["holes"] == 0.0
    assert studio_real.verdict(t, False, scores) == "usable"
    with_neck = perfect | t.other
    scores = studio_real.measure(with_neck, t)
    assert scores["residue"] == 1.0
    assert studio_real.verdict(t, False, scores) == "wrong"
    holed = perfect.copy()
    holed[40:60, 40:60] = False  # a print punched out
    scores = studio_real.measure(holed, t)
    assert scores["holes"] == pytest.approx(400 / 3600)
    assert studio_real.verdict(t, False, scores) == "wrong"
    assert studio_real.verdict(t, True, None) == "refused"
    assert studio_real.verdict(_truth("refuse"), False, studio_real.measure(perfect, _truth())) == "wrong"


def test_summary_line_format() -> None:
    outcomes = [
        studio_real.Outcome("studio", "a.jpg", "product", "usable"),
        studio_real.Outcome("studio", "b.jpg", "product", "refused"),
        studio_real.Outcome("studio", "c.jpg", "product", "wrong"),
        studio_real.Outcome("studio", "d.jpg", "product", "usable"),
    ]
    assert studio_real.summary_line("studio", outcomes) == (
        "studio: usable 50 % | wrong-and-charged 25 % | refused 25 % (n=4)"
    )


def test_truth_from_polygons_holes_and_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "set"
    root.mkdir()
    Image.fromarray(np.full((60, 80, 3), 240, np.uint8)).save(root / "mannequin__x.jpg")
    (root / "manifest.json").write_text(json.dumps([{"file": "mannequin__x.jpg", "category": "mannequin"}]))
    notes = tmp_path / "annotations"
    notes.mkdir()
    (notes / "mannequin__x.json").write_text(
        json.dumps(
            {
                "start": "polygons",
                "garment": [[[10, 10], [70, 10], [70, 50], [10, 50]]],
                "holes": [[[30, 20], [40, 20], [40, 30], [30, 30]]],
                "other": [[[35, 0], [45, 0], [45, 15], [35, 15]]],
                "expect": "cut",
            }
        )
    )
    monkeypatch.setattr(real_truth, "ANNOTATIONS", notes)
    entry = real_truth.manifest(root)[0]
    t = real_truth.truth(entry, root)
    assert t is not None
    assert t.garment[40, 20]
    assert not t.garment[25, 35]
    assert not t.garment[5, 5]
    assert t.other[5, 40]
    assert not t.other[12, 40]
    assert real_truth.truth({"file": "unknown.jpg", "category": "hard"}, root) is None


def test_skips_with_a_message_when_the_set_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODAMODA_REAL_PHOTOS", str(tmp_path / "nowhere"))
    assert studio_real.main(["--no-sheets"]) == 0
    assert "skipped" in capsys.readouterr().out
