"""Batch consistency: flag the photos of a batch whose garment scale, centring, background value or exposure
deviate from the rest of the batch.

Each photo is described by a few numbers (the studio engine puts them in its metadata as ``batch_metrics``;
:func:`measure` computes them for a photo directly):

* ``scale``: the square root of the garment bounding box's share of the frame;
* ``centre_x``, ``centre_y``: the bounding box centre's offset from the frame centre, as a share of the frame;
* ``background_l``: the backdrop's lightness (CIELAB L*): the background value;
* ``exposure_l``: the garment's median lightness (L*).

:func:`consistency_report` is a pure function over those numbers. For each metric it takes the batch median
and the median absolute deviation (MAD) and flags a photo when its robust z-score
``0.6745 * (x - median) / MAD`` is beyond ``z_threshold`` (3.5, Iglewicz and Hoaglin) *and* the deviation is
larger than the metric's tolerance (so a batch of near-identical photos does not flag a hair's difference).
The report is JSON-serialisable. Batches under ``min_batch`` photos are reported without flags.

In the deployed pipeline the ``X-Modamoda-Meta`` header does not survive: SageMaker's asynchronous endpoint keeps
only the response body (the image). The batch report therefore measures each *result* image when the notifier
stores it and runs this same report over those numbers (``functions/common/consistency.py``, Pillow only; a test
keeps the two reports identical).

CLI: ``python -m modamoda_inference.batch PHOTO... [--mannequin auto]`` prints the report for image files, and
``python -m modamoda_inference.batch --metrics FILE.json`` for a list of ``{"id": ..., <metrics>}`` objects
(or engine metadata objects with ``batch_metrics``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


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


def _metrics_of(item: Mapping[str, Any]) -> dict[str, float]:
    """The metric values of one item: at its top level, under ``batch_metrics`` (engine metadata), or under
    ``engine_meta.batch_metrics`` (the server's ``X-Modamoda-Meta`` header)."""
    engine_meta = item.get("engine_meta")
    if isinstance(engine_meta, Mapping) and "batch_metrics" in engine_meta:
        item = engine_meta
    source = item.get("batch_metrics", item)
    if not isinstance(source, Mapping):
        return {}
    out: dict[str, float] = {}
    for spec in METRICS:
        value = source.get(spec.name)
        if isinstance(value, int | float) and np.isfinite(value):
            out[spec.name] = float(value)
    return out


def consistency_report(
    items: Sequence[Mapping[str, Any]],
    *,
    z_threshold: float = Z_THRESHOLD,
    min_batch: int = MIN_BATCH,
    metrics: Sequence[MetricSpec] = METRICS,
) -> dict[str, Any]:
    """The batch report: per metric the median and MAD, per photo its robust z-scores, flags and reasons.

    ``items`` are mappings with an ``id`` (else the index is used; the server's metadata has ``job_id``) and the
    metric values, at the top level, under ``batch_metrics`` (the studio engine's metadata) or under
    ``engine_meta.batch_metrics`` (the ``X-Modamoda-Meta`` header).
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
        arr = np.array([v for _, v in present], dtype=np.float64)
        median = float(np.median(arr))
        mad = float(np.median(np.abs(arr - median)))
        summary[spec.name] = {
            "description": spec.description,
            "unit": spec.unit,
            "median": round(median, 4),
            "mad": round(mad, 4),
            "tolerance": spec.tolerance,
            "count": len(present),
        }
        # a MAD of zero (most photos identical) would make every difference infinite: floor it
        scale = max(mad, spec.tolerance / 10.0)
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


def measure(rgb: np.ndarray, mannequin: str = "none") -> dict[str, float]:
    """The batch metrics of one photo (H, W, 3) uint8, via the studio engine's matte."""
    from modamoda_inference.engines.studio import StudioEngine, batch_metrics

    engine = StudioEngine()
    matte = engine.matte(rgb, mannequin=mannequin)
    return batch_metrics(matte, rgb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Batch consistency report (JSON on stdout).")
    parser.add_argument("photos", nargs="*", type=Path, help="image files of one batch")
    parser.add_argument("--metrics", type=Path, help="a JSON list of metric objects instead of photos")
    parser.add_argument("--mannequin", default="none", choices=["none", "auto"])
    parser.add_argument("--z", type=float, default=Z_THRESHOLD)
    args = parser.parse_args(argv)
    items: list[dict[str, Any]] = []
    if args.metrics:
        loaded = json.loads(args.metrics.read_text())
        if not isinstance(loaded, list):
            parser.error("--metrics wants a JSON list")
        items = [dict(x) for x in loaded]
    else:
        from modamoda_inference.errors import ModamodaError
        from modamoda_inference.imageio import decode_image

        for path in args.photos:
            try:
                decoded = decode_image(path.read_bytes())
                items.append({"id": path.name, **measure(np.asarray(decoded.image), args.mannequin)})
            except ModamodaError as exc:
                items.append({"id": path.name, "error": exc.code})
    report = consistency_report(items, z_threshold=args.z)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
