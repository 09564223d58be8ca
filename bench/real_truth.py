"""Ground truth for the real-photo evaluation set (``../shared/eval/real-photos/``).

The photos are read from ``../shared`` at run time and never copied into this repository. What a person
authored about them lives in ``bench/annotations/<photo stem>.json`` and is committed; the masks are computed
from it (and from the set's own refs and masks) every time:

``garment`` — the garment's pixels, built in this order:

1. the start: ``"start": "mask"`` (the set's ``<stem>.mask.png``), ``"ref"`` (an aligned retoucher ref: every
   pixel that is not the ref's white background), or ``"polygons"`` (the union of ``garment`` polygons);
2. ``add`` polygons are added, ``subtract`` polygons (a neck the retoucher filled, a hem they reshaped, a hole
   the backdrop shows through) taken away;
3. optionally ``refine``: GrabCut at the photo's resolution in a narrow band (``band`` px, default 1.2 % of the
   long side) around that outline; everything farther than the band from the outline stays as authored, so
   refinement only snaps a hand-drawn edge to the photo's real edge; ``holes`` polygons are then taken away.

``other`` — what must NOT be kept (mannequin, dress form, stand, hanger, clips, rail, props, a person, a logo
stamp): the union of ``other`` polygons minus the garment. Residue is measured on it.

``expect`` — what a correct engine does with the photo: ``"cut"`` (a packshot is expected) or ``"refuse"`` (a
person wearing the garment: ``person_in_photo``; no garment at all). Refusing a ``cut`` photo costs the seller
nothing but is not usable; cutting a ``refuse`` photo is wrong and charged.

Polygons are lists of ``[x, y]`` points in the photo's pixel coordinates (origin top left).

    python -m bench.real_truth grid <stem> [--step 25]     # the photo with a labelled grid, to author points
    python -m bench.real_truth show <stem> [<stem> ...]    # the truth over the photo, to check it
    python -m bench.real_truth show --all                  # every annotated photo, one contact sheet each
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageOps

REPO = Path(__file__).resolve().parent.parent
ANNOTATIONS = REPO / "bench" / "annotations"
DEFAULT_ROOT = REPO.parent / "shared" / "eval" / "real-photos"
OUT = REPO / "out" / "truth"


def data_root() -> Path:
    """Where the real photos are: ``$MODAMODA_REAL_PHOTOS`` or ``../shared/eval/real-photos``."""
    return Path(os.environ.get("MODAMODA_REAL_PHOTOS", DEFAULT_ROOT))


class SetMissing(RuntimeError):
    """The real-photo set is not beside the repository."""


def manifest(root: Path | None = None) -> list[dict[str, Any]]:
    root = root or data_root()
    path = root / "manifest.json"
    if not path.is_file():
        raise SetMissing(
            f"the real-photo evaluation set is not at {root} (expected manifest.json there); "
            "put the shared folder beside the repository or set MODAMODA_REAL_PHOTOS"
        )
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    return entries


def load_photo(root: Path, file: str) -> np.ndarray:
    with Image.open(root / file) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def stem(file: str) -> str:
    return file.rsplit(".", 1)[0]


@dataclass
class Truth:
    file: str
    category: str
    garment: np.ndarray  # (H, W) bool
    other: np.ndarray  # (H, W) bool: must not be kept
    expect: str  # "cut" or "refuse"
    note: str = ""


def _polys(mask_shape: tuple[int, int], polygons: list[list[list[float]]]) -> np.ndarray:
    h, w = mask_shape
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons or []:
        if len(poly) >= 3:
            draw.polygon([(float(x), float(y)) for x, y in poly], fill=255, outline=255)
    return np.asarray(canvas) > 0


def _from_ref(root: Path, file: str, shape: tuple[int, int], white: float) -> np.ndarray:
    path = root / "refs" / f"{stem(file)}.ref.jpg"
    with Image.open(path) as im:
        ref = np.asarray(im.convert("RGB")).astype(np.float32)
    if ref.shape[:2] != shape:
        raise ValueError(f"{path.name} is {ref.shape[1]}x{ref.shape[0]}, not aligned with the photo")
    # not the white background: any channel clearly below white (JPEG ringing stays white)
    blur = cv2.GaussianBlur(ref, (0, 0), 0.7)
    off = (255.0 - blur.min(axis=2)) > white
    off = cv2.morphologyEx(off.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    # fill enclosed specks (a white button, a label); the holes an annotation wants go in "holes"
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~off).astype(np.uint8), connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    small = stats[:, cv2.CC_STAT_AREA] < 0.002 * off.size
    fill = np.array([(i not in border) and bool(small[i]) for i in range(n)])
    return off | fill[labels]


def _refine(rgb: np.ndarray, garment: np.ndarray, band: int, keep_out: np.ndarray) -> np.ndarray:
    """GrabCut in a band of ``band`` px around the outline; outside the band the authored mask stands."""
    g8 = garment.astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    inner = cv2.erode(g8, k) > 0
    outer = cv2.dilate(g8, k) > 0
    mask = np.full(garment.shape, cv2.GC_BGD, np.uint8)
    mask[outer & ~garment] = cv2.GC_PR_BGD
    mask[garment & ~inner] = cv2.GC_PR_FGD
    mask[inner] = cv2.GC_FGD
    mask[keep_out & ~inner] = cv2.GC_BGD
    if not (mask == cv2.GC_PR_FGD).any() or not inner.any():
        return garment
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.grabCut(bgr, mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    out = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    out = cv2.morphologyEx(out.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0
    return out


def annotation(file: str) -> dict[str, Any] | None:
    path = ANNOTATIONS / f"{stem(file)}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def truth(entry: dict[str, Any], root: Path | None = None, rgb: np.ndarray | None = None) -> Truth | None:
    """The ground truth of one manifest entry, or None when nobody annotated it yet."""
    root = root or data_root()
    file = entry["file"]
    ann = annotation(file)
    if ann is None:
        return None
    if rgb is None:
        rgb = load_photo(root, file)
    shape = rgb.shape[:2]
    start = ann.get("start", "polygons")
    if start == "mask":
        with Image.open(root / f"{stem(file)}.mask.png") as im:
            garment = np.asarray(im.convert("L")) > 127
    elif start == "ref":
        garment = _from_ref(root, file, shape, float(ann.get("white", 18.0)))
    elif start == "polygons":
        garment = _polys(shape, ann.get("garment", []))
    else:
        raise ValueError(f"{file}: unknown start {start!r}")
    if start != "polygons" and ann.get("garment"):
        garment &= _polys(shape, ann["garment"])  # the ref's mask clipped to the authored outline
    garment |= _polys(shape, ann.get("add", []))
    garment &= ~_polys(shape, ann.get("subtract", []))
    other = _polys(shape, ann.get("other", []))
    holes = _polys(shape, ann.get("holes", []))
    if ann.get("refine"):
        band = int(ann.get("band") or max(2, round(0.012 * max(shape))))
        garment = _refine(rgb, garment, band, keep_out=holes | (other & ~garment))
    garment &= ~holes
    return Truth(
        file=file,
        category=entry["category"],
        garment=garment,
        other=other & ~garment,
        expect=str(ann.get("expect", "cut")),
        note=str(ann.get("note", "")),
    )


# -- authoring aids -----------------------------------------------------------------------------------------


def _upscale(rgb: np.ndarray, target: int = 900) -> tuple[Image.Image, float]:
    h, w = rgb.shape[:2]
    f = max(1.0, target / max(h, w))
    im = Image.fromarray(rgb)
    if f > 1.0:
        im = im.resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS)
    return im, f


def grid_image(rgb: np.ndarray, step: int = 25, crop: list[int] | None = None) -> Image.Image:
    """The photo (or the ``crop`` x0,y0,x1,y1 of it) enlarged to ~900 px with a grid every ``step`` photo
    pixels, labelled in the photo's own pixel coordinates."""
    x0, y0 = (crop[0], crop[1]) if crop else (0, 0)
    if crop:
        rgb = rgb[crop[1] : crop[3], crop[0] : crop[2]]
    im, f = _upscale(rgb)
    draw = ImageDraw.Draw(im)
    h, w = rgb.shape[:2]
    for x in range(-(x0 % step), w + 1, step):
        gx = x + x0
        strong = gx % (4 * step) == 0
        draw.line([(x * f, 0), (x * f, h * f)], fill=(0, 160, 255) if strong else (120, 200, 255), width=1)
        if strong:
            draw.text((x * f + 2, 2), str(gx), fill=(0, 0, 255))
    for y in range(-(y0 % step), h + 1, step):
        gy = y + y0
        strong = gy % (4 * step) == 0
        draw.line([(0, y * f), (w * f, y * f)], fill=(0, 160, 255) if strong else (120, 200, 255), width=1)
        if strong:
            draw.text((2, y * f + 2), str(gy), fill=(0, 0, 255))
    return im


def overlay(rgb: np.ndarray, t: Truth) -> Image.Image:
    """Photo | truth over it (garment green, other red, outline yellow) | garment on white."""
    _h, _w = rgb.shape[:2]
    tint = rgb.astype(np.float32).copy()
    tint[t.garment] = 0.55 * tint[t.garment] + 0.45 * np.array([0, 255, 0])
    tint[t.other] = 0.5 * tint[t.other] + 0.5 * np.array([255, 0, 0])
    edge = cv2.morphologyEx(t.garment.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    tint[edge] = (255, 255, 0)
    cut = np.where(t.garment[..., None], rgb, 255).astype(np.uint8)
    panels = [rgb, tint.astype(np.uint8), cut]
    sheet = np.concatenate([np.pad(p, ((0, 0), (0, 6), (0, 0)), constant_values=128) for p in panels], axis=1)
    im, _ = _upscale(sheet, 1500)
    return im


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["grid", "show"])
    parser.add_argument("stems", nargs="*")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--step", type=int, default=25)
    parser.add_argument("--crop", help="x0,y0,x1,y1 in photo pixels: enlarge only this part")
    args = parser.parse_args(argv)
    root = data_root()
    try:
        entries = {stem(e["file"]): e for e in manifest(root)}
    except SetMissing as exc:
        print(f"skipped: {exc}")
        return 0
    names = sorted(entries) if args.all else args.stems
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        name = stem(Path(name).name)
        entry = entries[name]
        rgb = load_photo(root, entry["file"])
        crop = [int(v) for v in args.crop.split(",")] if args.crop else None
        suffix = f".{'_'.join(map(str, crop))}" if crop else ""
        if args.action == "grid":
            path = OUT / f"{name}{suffix}.grid.png"
            grid_image(rgb, args.step, crop).save(path)
        else:
            t = truth(entry, root, rgb)
            if t is None:
                print(f"{name}: not annotated")
                continue
            if crop:
                x0, y0, x1, y1 = crop
                rgb = rgb[y0:y1, x0:x1]
                t = Truth(
                    t.file, t.category, t.garment[y0:y1, x0:x1], t.other[y0:y1, x0:x1], t.expect, t.note
                )
            path = OUT / f"{name}{suffix}.truth.png"
            overlay(rgb, t).save(path)
            print(
                f"{name}: garment {t.garment.mean():.3f} of the frame, other {t.other.mean():.3f}, "
                f"expect {t.expect}"
            )
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
