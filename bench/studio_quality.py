"""Segmentation quality of the studio engine against OpenCV GrabCut, on a labelled set drawn in code.

    python -m bench.studio_quality                 # 24 photos of 1200x1500, a minute or two on 2 cores
    python -m bench.studio_quality --n 60 --json out/studio_quality.json

The set (:mod:`bench.studio_data`) has garments on plain and gradient backdrops with noise, drop and contact
shadows, JPEG compression, and — every third photo — a mannequin (white, grey, black, skin-tone, chroma green,
chroma blue) showing above the collar, through the neck opening, beside the straps and below the hem. The
ground truth is the garment's alpha; the mannequin is background.

Both methods run on the same photos in the same run:

* **engine**: ``StudioEngine.matte`` with the options a shop would send (the mannequin's colour when it is
  known, ``"auto"`` for chroma-key mannequins), at its working resolution (1024 px long side), resampled to
  the photo;
* **GrabCut**: ``cv2.grabCut``, 5 iterations, at the same working resolution, initialised with the
  ground-truth bounding box grown by 3 % of the long side (an oracle box: the most favourable start GrabCut can
  get), its mask resampled to the photo.

Metrics at the photo's resolution: IoU of the masks (alpha ≥ 0.5), boundary F-score (boundaries matched within
``--tolerance`` pixels, default 2), and alpha SAD (sum of absolute alpha differences, in thousands; GrabCut's
mask is hard, so its SAD counts its edge as 0/1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.studio_data import LabelledImage, build_image

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "inference_container") not in sys.path:
    sys.path.insert(0, str(REPO / "inference_container"))

from modamoda_inference.engines.studio import StudioEngine  # noqa: E402
from modamoda_inference.schemas import Options  # noqa: E402

WORK_LONG_SIDE = 1024
TARGET_IOU = 0.97


@dataclass
class Scores:
    iou: float
    boundary_f: float
    sad: float  # thousands
    seconds: float


@dataclass
class Row:
    name: str
    tags: list[str]
    engine: Scores
    grabcut: Scores | None
    extra: dict[str, Any] = field(default_factory=dict)


def _boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)) > 0


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: int = 2) -> float:
    """F-score of boundary pixels matched within ``tolerance`` pixels (binary masks)."""
    bp, bt = _boundary(pred), _boundary(truth)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_t = cv2.dilate(bt.astype(np.uint8), disk) > 0
    near_p = cv2.dilate(bp.astype(np.uint8), disk) > 0
    precision = float((bp & near_t).sum() / bp.sum())
    recall = float((bt & near_p).sum() / bt.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score(alpha: np.ndarray, truth: np.ndarray, seconds: float, tolerance: int) -> Scores:
    pred, gt = alpha >= 0.5, truth >= 0.5
    union = int((pred | gt).sum())
    iou = float((pred & gt).sum() / union) if union else 1.0
    return Scores(
        iou=iou,
        boundary_f=boundary_f(pred, gt, tolerance),
        sad=float(np.abs(alpha.astype(np.float64) - truth).sum() / 1000.0),
        seconds=seconds,
    )


def engine_alpha(engine: StudioEngine, item: LabelledImage) -> tuple[np.ndarray, dict[str, Any]]:
    options = Options.model_validate(item.options)
    matte = engine.matte(item.rgb, mannequin=options.mannequin)
    info = {"mannequin": matte.mannequin_model.describe() if matte.mannequin_model else None}
    return matte.full_resolution(), info


def grabcut_alpha(item: LabelledImage, iterations: int = 5) -> np.ndarray:
    """GrabCut at the working resolution from the ground-truth box grown by 3 % (see the module docstring)."""
    h, w = item.rgb.shape[:2]
    f = min(1.0, WORK_LONG_SIDE / max(h, w))
    sw, sh = max(8, round(w * f)), max(8, round(h * f))
    small = cv2.resize(item.rgb, (sw, sh), interpolation=cv2.INTER_AREA) if f < 1 else item.rgb
    ys, xs = np.nonzero(item.alpha >= 0.5)
    pad = 0.03 * max(h, w)
    x0, y0 = max(0.0, xs.min() - pad) * f, max(0.0, ys.min() - pad) * f
    x1, y1 = min(float(w), xs.max() + 1 + pad) * f, min(float(h), ys.max() + 1 + pad) * f
    rect = (int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0)))
    mask = np.zeros((sh, sw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(
        cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR),
        mask,
        rect,
        bgd,
        fgd,
        iterations,
        cv2.GC_INIT_WITH_RECT,
    )
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
    up = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
    return (up >= 0.5).astype(np.float32)


def evaluate(
    items: list[LabelledImage],
    *,
    grabcut: bool = True,
    tolerance: int = 2,
    engine: StudioEngine | None = None,
) -> list[Row]:
    engine = engine or StudioEngine()
    rows = []
    for item in items:
        t0 = time.perf_counter()
        alpha, info = engine_alpha(engine, item)
        t1 = time.perf_counter()
        e = score(alpha, item.alpha, t1 - t0, tolerance)
        g = None
        if grabcut:
            t2 = time.perf_counter()
            gc_alpha = grabcut_alpha(item)
            g = score(gc_alpha, item.alpha, time.perf_counter() - t2, tolerance)
        rows.append(Row(item.name, list(item.tags), e, g, info))
    return rows


def _mean(rows: list[Row], which: str, metric: str) -> float:
    vals = [getattr(getattr(r, which), metric) for r in rows if getattr(r, which) is not None]
    return float(np.mean(vals)) if vals else float("nan")


def summarise(rows: list[Row]) -> dict[str, Any]:
    groups = {
        "all": rows,
        "flat": [r for r in rows if not any(t.startswith("mannequin:") for t in r.tags)],
        "mannequin": [r for r in rows if any(t.startswith("mannequin:") for t in r.tags)],
        "low_contrast": [r for r in rows if "low_contrast" in r.tags],
    }
    out: dict[str, Any] = {}
    for name, group in groups.items():
        if not group:
            continue
        entry: dict[str, Any] = {"count": len(group)}
        for which in ("engine", "grabcut"):
            if which == "grabcut" and group[0].grabcut is None:
                continue
            entry[which] = {m: _mean(group, which, m) for m in ("iou", "boundary_f", "sad", "seconds")}
            entry[which]["min_iou"] = float(min(getattr(r, which).iou for r in group))
        out[name] = entry
    return out


def print_report(rows: list[Row], summary: dict[str, Any], tolerance: int) -> None:
    has_gc = rows and rows[0].grabcut is not None
    print(
        f"{'image':58s} {'IoU':>7s} {'BF':>6s} {'SAD':>7s}"
        + (f"  | {'GC IoU':>7s} {'GC BF':>6s} {'GC SAD':>7s}" if has_gc else "")
    )
    for r in rows:
        line = f"{r.name[:58]:58s} {r.engine.iou:7.4f} {r.engine.boundary_f:6.3f} {r.engine.sad:7.2f}"
        if r.grabcut is not None:
            line += f"  | {r.grabcut.iou:7.4f} {r.grabcut.boundary_f:6.3f} {r.grabcut.sad:7.2f}"
        print(line)
    print()
    print(f"boundary F tolerance {tolerance} px; SAD in thousands; seconds per photo on this machine")
    for name, entry in summary.items():
        e = entry["engine"]
        line = (
            f"{name:13s} n={entry['count']:3d}  engine  IoU {e['iou']:.4f} (min {e['min_iou']:.4f})  "
            f"BF {e['boundary_f']:.3f}  SAD {e['sad']:6.2f}  {e['seconds']:.2f} s"
        )
        print(line)
        if "grabcut" in entry:
            g = entry["grabcut"]
            print(
                f"{'':13s}        grabcut IoU {g['iou']:.4f} (min {g['min_iou']:.4f})  BF {g['boundary_f']:.3f}  "
                f"SAD {g['sad']:6.2f}  {g['seconds']:.2f} s"
            )
            print(
                f"{'':13s}        engine/grabcut: IoU x{e['iou'] / g['iou']:.3f}, BF x{e['boundary_f'] / g['boundary_f']:.3f}, "
                f"SAD x{e['sad'] / g['sad']:.2f} (lower is better), time x{e['seconds'] / g['seconds']:.2f}"
            )
    overall = summary["all"]["engine"]["iou"]
    verdict = "met" if overall >= TARGET_IOU else "NOT met"
    print(f"\ntarget mean IoU >= {TARGET_IOU}: {verdict} ({overall:.4f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="photos in the set (default 24)")
    parser.add_argument("--size", default="1200x1500", help="width x height of each photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=int, default=2, help="boundary F tolerance in pixels")
    parser.add_argument("--no-grabcut", action="store_true")
    parser.add_argument("--json", type=Path, help="write the rows and the summary here")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    width, height = (int(v) for v in args.size.lower().split("x"))
    t0 = time.perf_counter()
    items = [build_image(i, (width, height), args.seed) for i in range(args.n)]
    print(f"built {len(items)} labelled photos of {width}x{height} in {time.perf_counter() - t0:.1f} s\n")
    rows = evaluate(items, grabcut=not args.no_grabcut, tolerance=args.tolerance)
    summary = summarise(rows)
    print_report(rows, summary, args.tolerance)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "summary": summary,
            "rows": [asdict(r) for r in rows],
            "args": vars(args) | {"json": str(args.json)},
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
