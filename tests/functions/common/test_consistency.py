"""The batch consistency check in the Lambdas: the same report as the container's (numpy) implementation, and
result images measured with Pillow alone."""

from __future__ import annotations

import io
import random

import pytest
from modamoda_inference import batch as container_batch  # inference_container/ is on the test path
from PIL import Image, ImageDraw

from functions.common import consistency


def _items(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        item: dict = {"id": f"img-{i}"}
        for spec in consistency.METRICS:
            if rng.random() < 0.9:
                base = {
                    "scale": 0.6,
                    "centre_x": 0.0,
                    "centre_y": 0.0,
                    "background_l": 96.0,
                    "exposure_l": 50.0,
                }
                spread = spec.tolerance * rng.choice([0.1, 0.5, 3, 10])
                item[spec.name] = round(base[spec.name] + rng.gauss(0, spread), 4)
        if rng.random() < 0.1:
            item["scale"] = "not a number"
        items.append(item)
    return items


@pytest.mark.parametrize("seed", range(25))
def test_the_lambda_port_gives_the_containers_report(seed: int) -> None:
    items = _items(seed, random.Random(seed).randint(0, 30))
    assert consistency.consistency_report(items) == container_batch.consistency_report(items)


def test_metric_specs_match_the_container() -> None:
    assert [(m.name, m.tolerance) for m in consistency.METRICS] == [
        (m.name, m.tolerance) for m in container_batch.METRICS
    ]
    assert (consistency.Z_THRESHOLD, consistency.MIN_BATCH) == (
        container_batch.Z_THRESHOLD,
        container_batch.MIN_BATCH,
    )


def packshot(
    size: int = 600,
    box: tuple[float, float, float, float] = (0.2, 0.15, 0.8, 0.85),
    colour: tuple[int, int, int] = (40, 80, 160),
    background: tuple[int, int, int] | None = (255, 255, 255),
    fmt: str = "PNG",
) -> bytes:
    mode = "RGB" if background is not None else "RGBA"
    image = Image.new(mode, (size, size), background if background is not None else (0, 0, 0, 0))
    x0, y0, x1, y1 = (int(v * size) for v in box)
    ImageDraw.Draw(image).rectangle(
        (x0, y0, x1, y1), fill=colour if background is not None else (*colour, 255)
    )
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def test_measure_a_packshot_on_white() -> None:
    metrics = consistency.measure_result(packshot())
    assert metrics is not None
    assert metrics["scale"] == pytest.approx(0.65, abs=0.02)  # sqrt(0.6 * 0.7)
    assert abs(metrics["centre_x"]) < 0.01
    assert abs(metrics["centre_y"]) < 0.01
    assert metrics["background_l"] == pytest.approx(100, abs=0.5)
    assert 25 < metrics["exposure_l"] < 45


def test_measure_a_transparent_result_and_a_jpeg() -> None:
    transparent = consistency.measure_result(packshot(background=None))
    assert transparent is not None
    assert "background_l" not in transparent
    assert transparent["scale"] == pytest.approx(0.65, abs=0.02)
    jpeg = consistency.measure_result(packshot(size=2000, fmt="JPEG"))
    assert jpeg is not None
    assert jpeg["scale"] == pytest.approx(0.65, abs=0.02)


def test_an_empty_frame_has_no_metrics() -> None:
    assert consistency.measure_result(packshot(box=(0, 0, 0, 0), colour=(255, 255, 255))) is None


def test_an_off_centre_smaller_result_is_flagged_in_a_batch() -> None:
    results = [packshot() for _ in range(6)] + [packshot(box=(0.05, 0.05, 0.35, 0.4))]
    items = [{"id": f"r{i}", **(consistency.measure_result(data) or {})} for i, data in enumerate(results)]
    report = consistency.consistency_report(items)
    assert report["flagged"] == ["r6"]
    reasons = " ".join(next(i for i in report["images"] if i["id"] == "r6")["reasons"])
    assert "scale" in reasons
    assert "centring" in reasons
