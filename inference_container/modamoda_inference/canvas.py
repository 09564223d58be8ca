"""Marketplace presets and the final composite: crop to the garment, scale, centre on a solid canvas.

Shared by the engines: they hand over the source photo, a matte (alpha, at any resolution covering the whole
photo) and the garment's bounding box; this module does the geometry and the compositing. When the engine
knows the backdrop colour behind each pixel, edge pixels are decontaminated (the backdrop's colour is taken
out of semi-transparent pixels before they are laid on the new background).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

# (xn, yn) normalised source coordinates in [-1, 1] (pixel centres) → backdrop RGB (…, 3) float32 0..255.
BackdropFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Preset:
    """Canvas size in pixels and ``fill``: the share of the limiting canvas side the garment's bbox takes."""

    name: str
    width: int
    height: int
    fill: float


PRESETS: dict[str, Preset] = {
    "square": Preset("square", 2000, 2000, 0.80),
    "amazon": Preset("amazon", 2000, 2000, 0.85),
    "shopify": Preset("shopify", 2048, 2048, 0.80),
    "portrait_4_5": Preset("portrait_4_5", 1600, 2000, 0.80),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class Placement:
    """Where the garment goes: a source crop, resized to ``target_size``, pasted at ``offset``."""

    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels (x1, y1 exclusive)
    target_size: tuple[int, int]  # width, height of the resized crop
    offset: tuple[int, int]  # canvas position of the resized crop's top-left corner (may be negative)
    scale: float  # canvas pixels per source pixel
    canvas_bbox: tuple[int, int, int, int]  # the garment's bbox on the canvas

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def plan_placement(
    bbox: tuple[float, float, float, float],
    image_size: tuple[int, int],
    preset: Preset,
    *,
    pad: float = 0.0,
) -> Placement:
    """Scale so the bbox fills ``preset.fill`` of the limiting side and centre the bbox on the canvas.

    ``bbox`` is (x0, y0, x1, y1) in continuous source coordinates; ``pad`` source pixels around it are carried
    along (the soft edge of the matte).
    """
    width, height = image_size
    bx0, by0, bx1, by1 = bbox
    bw, bh = max(bx1 - bx0, 1.0), max(by1 - by0, 1.0)
    scale = min(preset.fill * preset.width / bw, preset.fill * preset.height / bh)
    x0 = max(0, math.floor(bx0 - pad))
    y0 = max(0, math.floor(by0 - pad))
    x1 = min(width, math.ceil(bx1 + pad))
    y1 = min(height, math.ceil(by1 + pad))
    tw = max(1, round((x1 - x0) * scale))
    th = max(1, round((y1 - y0) * scale))
    sx, sy = (x1 - x0) / tw, (y1 - y0) / th
    cx, cy = (bx0 + bx1) / 2.0, (by0 + by1) / 2.0
    ox = round(preset.width / 2.0 - (cx - x0) / sx)
    oy = round(preset.height / 2.0 - (cy - y0) / sy)
    canvas_bbox = (
        round(ox + (bx0 - x0) / sx),
        round(oy + (by0 - y0) / sy),
        round(ox + (bx1 - x0) / sx),
        round(oy + (by1 - y0) / sy),
    )
    return Placement((x0, y0, x1, y1), (tw, th), (ox, oy), scale, canvas_bbox)


def _target_alpha(alpha: np.ndarray, image_size: tuple[int, int], placement: Placement) -> np.ndarray:
    """The matte resampled onto the resized crop's pixel grid (pixel-centre aligned with cv2.resize)."""
    width, height = image_size
    x0, y0, x1, y1 = placement.crop
    tw, th = placement.target_size
    a = alpha.astype(np.float32, copy=False)
    if a.shape == (height, width):
        crop = a[y0:y1, x0:x1]
        interp = cv2.INTER_AREA if tw < (x1 - x0) else cv2.INTER_LINEAR
        return cv2.resize(crop, (tw, th), interpolation=interp)
    ah, aw = a.shape
    fx, fy = width / aw, height / ah
    sx, sy = (x1 - x0) / tw, (y1 - y0) / th
    m = np.array(
        [[sx / fx, 0.0, (x0 + 0.5 * sx) / fx - 0.5], [0.0, sy / fy, (y0 + 0.5 * sy) / fy - 0.5]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        a, m, (tw, th), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def render(
    rgb: np.ndarray,
    alpha: np.ndarray,
    placement: Placement,
    preset: Preset,
    background: tuple[int, int, int],
    backdrop: BackdropFn | None = None,
) -> np.ndarray:
    """Composite the garment on a ``preset``-sized canvas of ``background``; returns (H, W, 3) uint8.

    Pixels with no garment (alpha 0) are exactly ``background``.
    """
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = placement.crop
    tw, th = placement.target_size
    crop = rgb[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if tw < (x1 - x0) else cv2.INTER_CUBIC
    fg = cv2.resize(crop, (tw, th), interpolation=interp)
    a = np.clip(_target_alpha(alpha, (width, height), placement), 0.0, 1.0)
    colour = np.asarray(background, dtype=np.float32)

    tile = np.empty((th, tw, 3), dtype=np.uint8)
    tile[:] = np.asarray(background, dtype=np.uint8)
    opaque = a > 254.0 / 255.0
    tile[opaque] = fg[opaque]
    # Only the soft edge needs blending (and unmixing from the old backdrop).
    ys, xs = np.nonzero((a >= 1.0 / 255.0) & ~opaque)
    if ys.size:
        av = a[ys, xs][:, None]
        fv = fg[ys, xs].astype(np.float32)
        if backdrop is not None:
            sx, sy = (x1 - x0) / tw, (y1 - y0) / th
            xn = ((x0 + (xs.astype(np.float32) + 0.5) * sx) / width) * 2.0 - 1.0
            yn = ((y0 + (ys.astype(np.float32) + 0.5) * sy) / height) * 2.0 - 1.0
            bg = backdrop(xn, yn).astype(np.float32)
            fv = np.clip((fv - (1.0 - av) * bg) / np.maximum(av, 0.05), 0.0, 255.0)
        tile[ys, xs] = np.clip(fv * av + colour * (1.0 - av) + 0.5, 0, 255).astype(np.uint8)

    canvas = np.empty((preset.height, preset.width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    ox, oy = placement.offset
    cx0, cy0 = max(ox, 0), max(oy, 0)
    cx1, cy1 = min(ox + tw, preset.width), min(oy + th, preset.height)
    if cx1 > cx0 and cy1 > cy0:
        canvas[cy0:cy1, cx0:cx1] = tile[cy0 - oy : cy1 - oy, cx0 - ox : cx1 - ox]
    return canvas
