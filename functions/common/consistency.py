"""The batch consistency check: which results of a batch deviate from the rest in garment scale, centring,
background value or exposure.

Where the numbers come from: SageMaker's asynchronous endpoint keeps only the response body (the image), so the
container's ``X-Modamoda-Meta`` header (with the studio engine's ``batch_metrics`` of the *input* photo) never
reaches us. Instead the notifier measures each batch job's *result* image when it stores it (:func:`measure_result`,
Pillow only, on a thumbnail of at most 256 px) and keeps the numbers on the job row (``jobs.metrics``); the batch
report runs :func:`consistency_report` over them. Measuring the results is what the customer sees: a result whose
garment is smaller, off-centre, darker or on a different backdrop than the rest of the batch is flagged.

:func:`consistency_report` is the container's ``modamoda_inference.batch.consistency_report`` (robust z-scores
around the batch median, MAD-scaled, with a tolerance floor) without numpy, which the Lambda layer does not
carry; ``tests/functions/common/test_consistency.py`` keeps the two identical.
"""

from __future__ import annotations

import io
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from PIL import Image, ImageChops, ImageCms, ImageDraw, ImageStat


@dataclass(frozen=True)
class MetricSpec:
    name: str
    description: str
    tolerance: float  # deviations below this are never flagged
    unit: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("scale", "garment scale in the frame", 0.04, "share of the frame"),
    MetricSpec("centre_x", "horizontal centring", 0.03, "share of the frame width"),
    MetricSpec("centre_y", "vertical centring", 0.03, "share of the frame height"),
    MetricSpec("background_l", "background value", 3.0, "L*"),
    MetricSpec("exposure_l", "exposure of the garment", 5.0, "L*"),
)
Z_THRESHOLD = 3.5
MIN_BATCH = 4
MEASURE_SIDE = 256  # results are measured on a thumbnail this size
BACKGROUND_DIFFERENCE = 32  # a pixel whose channels differ this much from the backdrop is garment (or shadow)


def _metrics_of(item: Mapping[str, Any]) -> dict[str, float]:
    engine_meta = item.get("engine_meta")
    if isinstance(engine_meta, Mapping) and "batch_metrics" in engine_meta:
        item = engine_meta
    source = item.get("batch_metrics", item)
    if not isinstance(source, Mapping):
        return {}
    out: dict[str, float] = {}
    for spec in METRICS:
        value = source.get(spec.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[spec.name] = float(value)
    return out


def consistency_report(
    items: Sequence[Mapping[str, Any]],
    *,
    z_threshold: float = Z_THRESHOLD,
    min_batch: int = MIN_BATCH,
    metrics: Sequence[MetricSpec] = METRICS,
) -> dict[str, Any]:
    """Per metric the batch median and MAD, per item its robust z-scores, flags and reasons (JSON-ready).

    ``items`` are mappings with an ``id`` and the metric values (top level or under ``batch_metrics``). An item
    is flagged on a metric when ``|0.6745 (x - median) / MAD| > z_threshold`` and ``|x - median|`` exceeds the
    metric's tolerance; batches under ``min_batch`` items are not judged.
    """
    ids = [str(item.get("id", item.get("job_id", i))) for i, item in enumerate(items)]
    values = [_metrics_of(item) for item in items]
    summary: dict[str, Any] = {}
    per_image: list[dict[str, Any]] = [{"id": i, "flagged": False, "reasons": [], "z": {}} for i in ids]
    judged = len(items) >= min_batch
    for spec in metrics:
        present = [(k, v[spec.name]) for k, v in enumerate(values) if spec.name in v]
        if not present:
            continue
        median = float(statistics.median(v for _, v in present))
        mad = float(statistics.median(abs(v - median) for _, v in present))
        summary[spec.name] = {
            "description": spec.description,
            "unit": spec.unit,
            "median": round(median, 4),
            "mad": round(mad, 4),
            "tolerance": spec.tolerance,
            "count": len(present),
        }
        scale = max(mad, spec.tolerance / 10.0)  # a MAD of zero would make every difference infinite
        for k, value in present:
            z = 0.6745 * (value - median) / scale
            entry = per_image[k]
            entry["z"][spec.name] = round(z, 2)
            if judged and abs(z) > z_threshold and abs(value - median) > spec.tolerance:
                entry["flagged"] = True
                direction = "above" if value > median else "below"
                entry["reasons"].append(
                    f"{spec.description}: {spec.name}={value:.3g} is {direction} the batch median {median:.3g} "
                    f"(robust z {z:+.1f})"
                )
    flagged = [e["id"] for e in per_image if e["flagged"]]
    return {
        "count": len(items),
        "judged": judged,
        "note": None if judged else f"batches under {min_batch} photos are not judged",
        "z_threshold": z_threshold,
        "metrics": summary,
        "flagged": flagged,
        "images": per_image,
    }


@lru_cache(maxsize=1)
def _srgb_to_lab() -> Any:
    return ImageCms.buildTransformFromOpenProfiles(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )


def _lightness(rgb: Image.Image) -> Image.Image:
    """The L* channel (0..255 for L* 0..100)."""
    lab = ImageCms.applyTransform(rgb, _srgb_to_lab())
    assert lab is not None
    return lab.getchannel(0)


def measure_result(data: bytes, max_side: int = MEASURE_SIDE) -> dict[str, float] | None:
    """The consistency numbers of one result image (PNG/JPEG/WebP/AVIF bytes); None if nothing is in frame.

    The garment is the opaque part of a transparent result, else every pixel that differs from the backdrop
    (the median colour of the outer frame) by more than ``BACKGROUND_DIFFERENCE`` in some channel.
    """
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (max_side, max_side))  # JPEG decodes at a reduced scale
        image = opened.convert("RGBA")
    image.thumbnail((max_side, max_side), Image.Resampling.BOX)
    width, height = image.size
    rgb = image.convert("RGB")
    alpha = image.getchannel("A")
    lightness = _lightness(rgb)
    background_l: float | None = None
    low, _high = cast(tuple[int, int], alpha.getextrema())
    if low < 255:  # a transparent background: no backdrop value to compare
        mask = alpha.point(lambda v: 255 if v >= 128 else 0)
    else:
        frame = Image.new("L", image.size, 255)
        ImageDraw.Draw(frame).rectangle((2, 2, width - 3, height - 3), fill=0)
        backdrop = tuple(int(v) for v in ImageStat.Stat(rgb, frame).median)
        difference = ImageChops.difference(rgb, Image.new("RGB", image.size, backdrop))
        red, green, blue = difference.split()
        mask = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(
            lambda v: 255 if v > BACKGROUND_DIFFERENCE else 0
        )
        background_l = (
            float(cast(int, _lightness(Image.new("RGB", (1, 1), backdrop)).getpixel((0, 0)))) * 100 / 255
        )
    bbox = mask.getbbox()
    if bbox is None:
        return None
    x0, y0, x1, y1 = bbox
    exposure = ImageStat.Stat(lightness, mask).median[0] * 100 / 255
    metrics = {
        "scale": round(math.sqrt((x1 - x0) * (y1 - y0) / (width * height)), 4),
        "centre_x": round(((x0 + x1) / 2 - width / 2) / width, 4),
        "centre_y": round(((y0 + y1) / 2 - height / 2) / height, 4),
        "exposure_l": round(exposure, 2),
    }
    if background_l is not None:
        metrics["background_l"] = round(background_l, 2)
    return metrics
