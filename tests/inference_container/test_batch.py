"""Batch consistency: robust outliers of scale, centring, background value and exposure, with reasons."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from modamoda_inference.batch import consistency_report, main, measure
from PIL import Image

BASE = {"scale": 0.62, "centre_x": 0.0, "centre_y": 0.01, "background_l": 88.0, "exposure_l": 35.0}


def batch(n: int = 8, seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    jitter = {"scale": 0.01, "centre_x": 0.005, "centre_y": 0.005, "background_l": 0.6, "exposure_l": 1.0}
    return [
        {"id": f"img{i}", **{k: v + float(rng.normal(0, jitter[k])) for k, v in BASE.items()}}
        for i in range(n)
    ]


def test_a_consistent_batch_flags_nothing() -> None:
    report = consistency_report(batch())
    assert report["judged"]
    assert report["flagged"] == []
    assert report["count"] == 8
    assert set(report["metrics"]) == set(BASE)
    assert report["metrics"]["scale"]["median"] == pytest.approx(0.62, abs=0.02)
    json.dumps(report)


@pytest.mark.parametrize(
    ("metric", "value", "word"),
    [
        ("scale", 0.45, "garment scale"),
        ("centre_x", 0.12, "horizontal centring"),
        ("centre_y", -0.1, "vertical centring"),
        ("background_l", 76.0, "background value"),
        ("exposure_l", 52.0, "exposure"),
    ],
)
def test_each_kind_of_outlier_is_flagged_with_a_reason(metric: str, value: float, word: str) -> None:
    items = batch()
    items[3] = {**items[3], metric: value}
    report = consistency_report(items)
    assert report["flagged"] == ["img3"]
    entry = report["images"][3]
    assert entry["flagged"]
    assert len(entry["reasons"]) == 1
    assert word in entry["reasons"][0]
    assert "median" in entry["reasons"][0]
    assert abs(entry["z"][metric]) > 3.5


def test_identical_batch_does_not_flag_tiny_differences() -> None:
    items = [{"id": str(i), **BASE} for i in range(6)]
    items[2] = {**items[2], "scale": BASE["scale"] + 0.01, "background_l": BASE["background_l"] + 1.0}
    assert consistency_report(items)["flagged"] == []  # MAD 0, but under the tolerances


def test_small_batches_are_not_judged() -> None:
    items = batch(3)
    items[0] = {**items[0], "scale": 0.1}
    report = consistency_report(items)
    assert not report["judged"]
    assert report["flagged"] == []
    assert "not judged" in report["note"]


def test_engine_metadata_and_missing_values_are_accepted() -> None:
    items: list[dict[str, object]] = [{"id": f"m{i}", "batch_metrics": dict(BASE)} for i in range(5)]
    items.append({"id": "broken", "error": "invalid_image"})
    items.append({"job_id": "j7", "engine_meta": {"batch_metrics": dict(BASE)}})  # the server's header
    items[1] = {"id": "m1", "batch_metrics": {**BASE, "exposure_l": 70.0}}
    report = consistency_report(items)
    assert report["flagged"] == ["m1"]
    assert report["metrics"]["exposure_l"]["count"] == 6
    assert report["images"][-2]["z"] == {}
    assert report["images"][-1]["id"] == "j7"


def test_cli_on_metrics_and_on_photos(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_garment: Callable[..., tuple[np.ndarray, np.ndarray]],
) -> None:
    path = tmp_path / "metrics.json"
    items = batch()
    items[5] = {**items[5], "centre_x": 0.2}
    path.write_text(json.dumps(items))
    assert main(["--metrics", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["flagged"] == ["img5"]

    photos = []
    for i, offset in enumerate([(0, 0), (5, 0), (-5, 5), (0, -5), (70, 0)]):
        rgb, _ = make_garment(300, 360, seed=i, offset=offset)
        p = tmp_path / f"p{i}.png"
        Image.fromarray(rgb).save(p)
        photos.append(str(p))
    assert main(photos) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["flagged"] == ["p4.png"]
    assert any("horizontal centring" in r for r in report["images"][4]["reasons"])


def test_measure() -> None:
    rgb = np.full((200, 160, 3), 230, np.uint8)
    rgb[40:160, 50:110] = (30, 40, 90)
    m = measure(rgb)
    assert m["scale"] == pytest.approx(np.sqrt(60 * 120 / (160 * 200)), abs=0.03)
    assert m["centre_x"] == pytest.approx(0.0, abs=0.02)
    assert m["background_l"] > 85
