"""What the diffusion pipeline is conditioned on, built from the garment photo, a pose and a background.

* **Garment segmentation** (:func:`cut_out`): the studio engine's matte (backdrop model, mannequin keying,
  closed-form matting of the edge) gives the garment's soft alpha without the mannequin, and the hollow the
  mannequin left in the neck opening. If the studio engine cannot be imported, a simple border-colour
  segmentation stands in.
* **On-model layout** (:func:`on_model_layout`): the pose is fitted into the canvas; the garment is scaled to
  the body (its width ~1.6 shoulder widths, the collar just above the neck point) and placed on it; the region
  the person may be generated in is the skeleton drawn thick (limbs, torso, head), dilated and feathered. The
  init image is the background with the garment on it; the inpainting mask is that person region minus the
  garment, so the background outside the person and the garment itself are conditioning, not output.
* **Ghost layout** (:func:`ghost_layout`): the garment centred to the preset's fill; the mask is the hollow
  (mannequin seen through the neck opening), to be painted as the inside of the garment.
* **Pose map**: :func:`modamoda_inference.poses.render` (controlnet-aux's OpenPose drawing) of the same pose,
  fitted the same way.

Everything here is numpy/OpenCV; the layers are the canvas size and go to :mod:`.compose` unchanged, so what is
pasted back is exactly what the pipeline was shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image

from modamoda_inference.diffusion.compose import feather, snap
from modamoda_inference.errors import NoGarmentFound
from modamoda_inference.poses import Pose

# Share of the canvas the garment (and its hollow) fills in ghost mode, when the preset says nothing.
GHOST_FILL = 0.8
GARMENT_WIDTH_TO_SHOULDERS = 1.6  # a garment laid flat is wider than the shoulders (sleeves, ease)
SHOULDERS_TO_TORSO = 0.62  # front shoulder width / neck-to-hips length of an adult


@dataclass
class Cutout:
    """The garment in the source photo: RGB, soft alpha (garment only), its bbox, and the hollow (soft)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray  # (H, W) float32
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 source pixels
    hollow: np.ndarray | None = None  # (H, W) float32: the neck hollow, or None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


@dataclass
class Layers:
    """Everything at the canvas size (width x height)."""

    width: int
    height: int
    garment: np.ndarray  # (H, W, 3) uint8: the source photo on the canvas (what is pasted back)
    garment_alpha: np.ndarray  # (H, W) float32 in [0, 1], snapped
    background: np.ndarray  # (H, W, 3) uint8
    generate: np.ndarray  # (H, W) float32: weight of the generated picture (person / hollow), snapped
    init_image: np.ndarray  # (H, W, 3) uint8: what the pipeline starts from
    mask: np.ndarray  # (H, W) uint8 0/255: where the pipeline may paint
    control: np.ndarray | None = None  # (H, W, 3) uint8 pose map
    reference: Image.Image | None = None  # the garment on white, cropped: the IP-Adapter image
    placement: dict[str, float] = field(default_factory=dict)

    @property
    def generated_fraction(self) -> float:
        return float((self.mask > 0).mean())

    def garment_core(self) -> np.ndarray:
        """Where the garment's pixels are kept exactly (alpha == 1)."""
        return self.garment_alpha == 1.0


# -- segmentation -------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _studio() -> Any:
    from modamoda_inference.engines.studio import StudioEngine

    return StudioEngine()


def _simple_alpha(rgb: np.ndarray) -> np.ndarray:
    """Fallback segmentation: distance from the median border colour, Otsu threshold, largest component."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
    ref = np.median(border, axis=0)
    dist = np.linalg.norm(rgb.astype(np.float32) - ref, axis=2)
    scaled = np.clip(dist * (255.0 / max(float(dist.max()), 1.0)), 0, 255).astype(np.uint8)
    _, mask = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(rgb.shape[:2], np.float32)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return cv2.GaussianBlur((labels == keep).astype(np.float32), (0, 0), 0.8)


def cut_out(
    rgb: np.ndarray, mannequin: Any = "none", *, want_hollow: bool = False, stage: Any = None
) -> Cutout:
    """Segment the garment of a photo (``mannequin``: the request's ``options.mannequin``); with a learned
    segmentation ``stage`` (:mod:`modamoda_inference.segmentation`) the garment is the stage's."""
    h, w = rgb.shape[:2]
    hollow: np.ndarray | None = None
    meta: dict[str, Any]
    try:
        studio = _studio()
    except ImportError:  # pragma: no cover - the studio engine ships in the same package
        studio = None
    if studio is not None:
        if stage is not None:
            matte = studio.matte_learned(rgb, stage, mannequin=mannequin)
            meta = {"segmentation": "learned", "coverage": round(matte.coverage, 4), **matte.learned}
        else:
            matte = studio.matte(rgb, mannequin=mannequin)
            meta = {"segmentation": "studio", "coverage": round(matte.coverage, 4)}
        alpha = matte.full_resolution()
        if matte.mannequin_model is not None:
            meta["mannequin"] = matte.mannequin_model.describe()
        if want_hollow and matte.garment is not None and matte.mannequin_like is not None:
            from modamoda_inference.hollow import find_hollow

            found = find_hollow(matte.garment, matte.mannequin_like)
            if found.mask.any():
                hollow = cv2.resize(found.soft(), (w, h), interpolation=cv2.INTER_LINEAR)
    else:  # pragma: no cover
        alpha = _simple_alpha(rgb)
        meta = {"segmentation": "border-colour"}
    alpha = snap(alpha)
    on = alpha >= 0.5
    rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    if rows.size == 0:
        raise NoGarmentFound("no garment found in the photo")
    bbox = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    return Cutout(rgb, alpha, bbox, None if hollow is None else snap(hollow), meta)


# -- placing the source on the canvas -----------------------------------------------------------------------------


def _resize(src: np.ndarray, scale: float, interp_down: int, interp_up: int) -> np.ndarray:
    h, w = src.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) == (w, h):
        return src.copy()
    return cv2.resize(src, (nw, nh), interpolation=interp_down if scale < 1 else interp_up)


def _paste(canvas: np.ndarray, tile: np.ndarray, x: int, y: int) -> None:
    """Copy ``tile`` into ``canvas`` with its top-left at (x, y), clipped to the canvas."""
    ch, cw = canvas.shape[:2]
    th, tw = tile.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(cw, x + tw), min(ch, y + th)
    if x1 <= x0 or y1 <= y0:
        return
    canvas[y0:y1, x0:x1] = tile[y0 - y : y1 - y, x0 - x : x1 - x]


def place(
    cut: Cutout, scale: float, x: float, y: float, width: int, height: int, margin: float = 0.06
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The source's garment region scaled by ``scale`` with the bbox's top-left at canvas (x, y): (rgb layer,
    alpha layer, hollow layer). At scale 1 and an integer offset the pixels are the photo's own."""
    x0, y0, x1, y1 = cut.bbox
    pad = margin * max(x1 - x0, y1 - y0)
    sh, sw = cut.rgb.shape[:2]
    cx0, cy0 = max(0, math.floor(x0 - pad)), max(0, math.floor(y0 - pad))
    cx1, cy1 = min(sw, math.ceil(x1 + pad)), min(sh, math.ceil(y1 + pad))
    crop = (slice(cy0, cy1), slice(cx0, cx1))
    ox, oy = round(x + (cx0 - x0) * scale), round(y + (cy0 - y0) * scale)
    rgb = np.zeros((height, width, 3), np.uint8)
    alpha = np.zeros((height, width), np.float32)
    _paste(rgb, _resize(cut.rgb[crop], scale, cv2.INTER_AREA, cv2.INTER_CUBIC), ox, oy)
    _paste(alpha, _resize(cut.alpha[crop], scale, cv2.INTER_AREA, cv2.INTER_LINEAR), ox, oy)
    hollow = None
    if cut.hollow is not None:
        hollow = np.zeros((height, width), np.float32)
        _paste(hollow, _resize(cut.hollow[crop], scale, cv2.INTER_AREA, cv2.INTER_LINEAR), ox, oy)
        hollow = snap(hollow)
    return rgb, snap(alpha), hollow


def reference_image(cut: Cutout, side: int = 512) -> Image.Image:
    """The garment alone on white, cropped square around its bbox: the IP-Adapter's image prompt."""
    x0, y0, x1, y1 = cut.bbox
    s = side / max(x1 - x0, y1 - y0) * 0.9
    rgb, alpha, _ = place(cut, s, (side - (x1 - x0) * s) / 2, (side - (y1 - y0) * s) / 2, side, side, 0.0)
    a = alpha[..., None]
    out = np.rint(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)
    return Image.fromarray(out, "RGB")


# -- on-model -----------------------------------------------------------------------------------------------------


def _dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def body_scale(pose: Pose) -> tuple[float, float, tuple[float, float]]:
    """(front-equivalent shoulder width, torso length, neck point) of a pose fitted to its canvas."""
    neck = pose.point("neck")
    rs, ls = pose.point("right_shoulder"), pose.point("left_shoulder")
    if neck is None:
        if rs is None or ls is None:
            raise ValueError(f"pose {pose.id} has neither a neck nor both shoulders")
        neck = ((rs[0] + ls[0]) / 2, (rs[1] + ls[1]) / 2)
    hips = [p for p in (pose.point("right_hip"), pose.point("left_hip")) if p is not None]
    if hips:
        mid = (sum(p[0] for p in hips) / len(hips), sum(p[1] for p in hips) / len(hips))
        torso = _dist(neck, mid)
    else:
        torso = max(pose.height - neck[1], 1.0)
    span = _dist(rs, ls) if rs is not None and ls is not None else 0.0
    return max(span, SHOULDERS_TO_TORSO * torso, 4.0), torso, neck


def garment_on_pose(cut: Cutout, pose: Pose) -> tuple[float, float, float]:
    """(scale, x, y): the garment's bbox scaled to the body and its top-left on the canvas."""
    x0, y0, x1, y1 = cut.bbox
    bw, bh = x1 - x0, y1 - y0
    shoulders, _torso, neck = body_scale(pose)
    scale = GARMENT_WIDTH_TO_SHOULDERS * shoulders / bw
    top = neck[1] - 0.05 * bh * scale
    room = pose.height * 0.985 - top
    scale = min(scale, room / bh, 0.98 * pose.width / bw)
    top = neck[1] - 0.05 * bh * scale
    left = neck[0] - bw * scale / 2.0
    return scale, left, top


def person_region(pose: Pose, garment_alpha: np.ndarray) -> np.ndarray:
    """Where the person may be generated: the skeleton drawn thick, dilated, joined with the garment, feathered.
    (H, W) float32 weight, snapped."""
    h, w = garment_alpha.shape
    shoulders, torso, neck = body_scale(pose)
    u = shoulders
    mask = np.zeros((h, w), np.uint8)
    pts = pose.keypoints

    def p(i: int) -> tuple[int, int] | None:
        q = pts[i]
        return None if q is None else (round(q[0]), round(q[1]))

    limbs = {  # (from, to): thickness as a share of the shoulder width
        (2, 3): 0.32,
        (3, 4): 0.26,
        (5, 6): 0.32,
        (6, 7): 0.26,
        (8, 9): 0.42,
        (9, 10): 0.34,
        (11, 12): 0.42,
        (12, 13): 0.34,
        (1, 0): 0.4,
    }
    for (a, b), k in limbs.items():
        pa, pb = p(a), p(b)
        if pa is not None and pb is not None:
            cv2.line(mask, pa, pb, 255, max(2, round(k * u)), lineType=cv2.LINE_8)
    for i, k in ((4, 0.2), (7, 0.2), (10, 0.22), (13, 0.22)):  # hands and feet
        q = p(i)
        if q is not None:
            cv2.circle(mask, q, max(2, round(k * u)), 255, -1)
    torso_pts = [q for q in (p(2), p(5), p(11), p(8)) if q is not None]
    rs, ls = p(2), p(5)
    if p(8) is None and p(11) is None and rs is not None and ls is not None:
        torso_pts = [
            rs,
            ls,
            (ls[0], h - 1),
            (rs[0], h - 1),
        ]  # hips cropped off: the torso runs off the canvas
    if len(torso_pts) >= 3:
        cv2.fillConvexPoly(mask, np.array(torso_pts, np.int32), 255)
    head_pts = [q for q in (pts[0], pts[14], pts[15], pts[16], pts[17]) if q is not None]
    if head_pts:
        hx = sum(q[0] for q in head_pts) / len(head_pts)
        hy = sum(q[1] for q in head_pts) / len(head_pts)
        cv2.ellipse(mask, (round(hx), round(hy)), (round(0.36 * u), round(0.46 * u)), 0, 0, 360, 255, -1)
    elif neck is not None:
        cv2.circle(mask, (round(neck[0]), round(neck[1] - 0.3 * torso)), round(0.4 * u), 255, -1)
    grow = max(1, round(0.12 * u))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    region = cv2.dilate(mask, kernel) > 0
    region |= cv2.dilate((garment_alpha > 0).astype(np.uint8), kernel) > 0
    return feather(region, max(1.0, 0.06 * u))


def inpaint_mask(region_weight: np.ndarray, garment_alpha: np.ndarray) -> np.ndarray:
    """0/255 uint8: repaint where the region reaches, except the garment's solid core (its soft edge is
    repainted, then the original goes back over it)."""
    paint = (region_weight > 0) & (garment_alpha < 1.0)
    return (paint.astype(np.uint8)) * 255


def on_model_layout(
    cut: Cutout, pose: Pose, background: np.ndarray, *, control: np.ndarray | None = None
) -> Layers:
    """The layers for ``pose`` fitted into the background's size."""
    height, width = background.shape[:2]
    fitted = pose.fit(width, height)
    scale, x, y = garment_on_pose(cut, fitted)
    garment, alpha, _ = place(cut, scale, x, y, width, height)
    region = person_region(fitted, alpha)
    a = alpha[..., None]
    init = np.rint(garment * a + background * (1.0 - a)).astype(np.uint8)
    return Layers(
        width=width,
        height=height,
        garment=garment,
        garment_alpha=alpha,
        background=np.ascontiguousarray(background, dtype=np.uint8),
        generate=region,
        init_image=init,
        mask=inpaint_mask(region, alpha),
        control=control,
        reference=reference_image(cut),
        placement={"scale": round(scale, 5), "x": round(x, 2), "y": round(y, 2)},
    )


# -- ghost --------------------------------------------------------------------------------------------------------


def inside_colour(cut: Cutout) -> tuple[int, int, int]:
    """A darker version of the garment's median colour: how the inside of the neck opening starts out."""
    on = cut.alpha >= 1.0
    median = np.median(cut.rgb[on], axis=0) if on.any() else np.array([128.0, 128.0, 128.0])
    r, g, b = (round(float(c) * 0.55) for c in median)
    return r, g, b


def ghost_layout(cut: Cutout, background: np.ndarray, *, fill: float = GHOST_FILL) -> Layers:
    """The garment (and its hollow) centred at ``fill`` of the canvas; the mask is the hollow."""
    height, width = background.shape[:2]
    x0, y0, x1, y1 = cut.bbox
    if cut.hollow is not None:
        on = cut.hollow > 0
        rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
        if rows.size:
            x0, y0 = min(x0, float(cols[0])), min(y0, float(rows[0]))
            x1, y1 = max(x1, float(cols[-1] + 1)), max(y1, float(rows[-1] + 1))
    bw, bh = x1 - x0, y1 - y0
    scale = fill * min(width / bw, height / bh)
    # place() positions the garment's own bbox; shift so that the union box is centred.
    gx0, gy0 = cut.bbox[0], cut.bbox[1]
    x = (width - bw * scale) / 2.0 + (gx0 - x0) * scale
    y = (height - bh * scale) / 2.0 + (gy0 - y0) * scale
    garment, alpha, hollow = place(cut, scale, x, y, width, height)
    if hollow is None:
        hollow = np.zeros((height, width), np.float32)
    hollow = np.minimum(hollow, 1.0 - alpha)  # the hollow never covers the garment
    region = feather(hollow > 0.5, max(1.0, 0.004 * max(width, height))) if hollow.any() else hollow
    region = snap(np.maximum(region, hollow))
    init = background.astype(np.float64)
    inside = np.array(inside_colour(cut), np.float64)
    r = region[..., None]
    init = init * (1.0 - r) + inside * r
    a = alpha[..., None]
    init = np.rint(garment * a + init * (1.0 - a)).astype(np.uint8)
    return Layers(
        width=width,
        height=height,
        garment=garment,
        garment_alpha=alpha,
        background=np.ascontiguousarray(background, dtype=np.uint8),
        generate=region,
        init_image=init,
        mask=inpaint_mask(region, alpha),
        reference=reference_image(cut),
        placement={"scale": round(scale, 5), "x": round(x, 2), "y": round(y, 2)},
    )
