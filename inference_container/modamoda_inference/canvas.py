"""Marketplace presets and the final composite: crop to the garment, scale, centre, shadow, background.

Shared by the engines: they hand over the source photo and a :class:`Subject` (the garment's matte, the colour
that was behind its soft edge, and optionally a hollow layer — the inside of the neck — at any resolution
covering the whole photo); this module does the geometry and the compositing:

* the garment's bounding box is scaled so that it takes ``fill`` of the limiting canvas side (never closer to
  an edge than ``margin``) and centred on the canvas;
* edge pixels are decontaminated: the colour that was behind them (backdrop or mannequin) is taken out before
  they are laid on the new background;
* a shadow (``contact``: tight and soft, heavier towards the hem; ``drop``: offset and wide) is cast from the
  garment's (and hollow's) alpha onto the background;
* the background is a solid colour, an image of the background library, or transparent (RGBA output).

Presets (canvas size, fill, margin and "white value" — the default background) can be overridden per deployment
with ``MODAMODA_PRESETS``, a JSON object such as ``{"zalando": {"width": 1800, "height": 2600}}``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

import cv2
import numpy as np

ShadowKind = Literal["none", "contact", "drop"]


@dataclass(frozen=True)
class Preset:
    """Canvas size in pixels; ``fill``: the share of the limiting canvas side the garment's bbox takes;
    ``margin``: the least empty share kept on every side; ``background``: the white value (default background)."""

    name: str
    width: int
    height: int
    fill: float
    margin: float
    background: str
    notes: str = ""

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        digits = self.background.lstrip("#")
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


_DEFAULT_PRESETS: dict[str, Preset] = {
    "square": Preset("square", 2000, 2000, 0.80, 0.05, "#FFFFFF", "generic square packshot"),
    "amazon": Preset(
        "amazon",
        2000,
        2000,
        0.85,
        0.03,
        "#FFFFFF",
        "main image: pure white (255) background, product fills at least 85 % of the frame, >= 1600 px for zoom",
    ),
    "zalando": Preset(
        "zalando",
        1524,
        2200,
        0.80,
        0.05,
        "#F1F1F1",
        "portrait packshot on light grey in Zalando's catalogue proportions (762x1100 doubled); "
        "not checked against the partner guidelines of the day: configure with MODAMODA_PRESETS",
    ),
    "shopify": Preset("shopify", 2048, 2048, 0.80, 0.05, "#FFFFFF", "Shopify's recommended 2048 px square"),
    "portrait_4_5": Preset("portrait_4_5", 1600, 2000, 0.80, 0.05, "#FFFFFF", "4:5 portrait (social, shops)"),
}


def _load_presets() -> dict[str, Preset]:
    presets = dict(_DEFAULT_PRESETS)
    raw = os.environ.get("MODAMODA_PRESETS")
    if not raw:
        return presets
    overrides = json.loads(raw)
    if not isinstance(overrides, dict):
        raise ValueError("MODAMODA_PRESETS must be a JSON object of preset name -> fields")
    allowed = {f.name for f in fields(Preset)} - {"name"}
    for name, values in overrides.items():
        if name not in presets:
            raise ValueError(f"MODAMODA_PRESETS: unknown preset {name!r}; known: {', '.join(presets)}")
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"MODAMODA_PRESETS[{name}]: unknown fields {sorted(unknown)}")
        preset = replace(presets[name], **values)
        if not (64 <= preset.width <= 8192 and 64 <= preset.height <= 8192):
            raise ValueError(f"MODAMODA_PRESETS[{name}]: canvas must be 64..8192 px a side")
        if not (0.1 <= preset.fill <= 1.0 and 0.0 <= preset.margin < 0.45):
            raise ValueError(f"MODAMODA_PRESETS[{name}]: fill must be 0.1..1, margin 0..0.45")
        presets[name] = preset
    return presets


PRESETS: dict[str, Preset] = _load_presets()


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
    """Scale so the bbox fills ``preset.fill`` of the limiting side (within the margins) and centre it.

    ``bbox`` is (x0, y0, x1, y1) in continuous source coordinates; ``pad`` source pixels around it are carried
    along (the soft edge of the matte).
    """
    width, height = image_size
    bx0, by0, bx1, by1 = bbox
    bw, bh = max(bx1 - bx0, 1.0), max(by1 - by0, 1.0)
    room = 1.0 - 2.0 * preset.margin
    fill = min(preset.fill, room)
    scale = min(fill * preset.width / bw, fill * preset.height / bh)
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


@dataclass
class Patch:
    """Colours over a region of the source photo: ``rgb`` (h, w, 3) whose pixel (0, 0) covers the source area
    starting at ``origin`` (x, y), each pixel ``scale`` source pixels wide."""

    rgb: np.ndarray
    origin: tuple[float, float]
    scale: float = 1.0


@dataclass
class Subject:
    """What an engine hands to :func:`render`. Maps may have any resolution covering the whole source photo.

    ``alpha``: the garment's matte. ``behind``: the colour that was behind the garment (backdrop or mannequin),
    used to unmix the soft edge (None: no unmixing). ``hollow_alpha`` / ``hollow_rgb``: a layer behind the
    garment (the inside of the neck of a ghost packshot).
    """

    alpha: np.ndarray
    behind: np.ndarray | None = None
    hollow_alpha: np.ndarray | None = None
    hollow_rgb: Patch | None = None


def _map_matrix(map_shape: tuple[int, int], image_size: tuple[int, int], placement: Placement) -> np.ndarray:
    """Affine matrix from target-tile pixels to map pixels (pixel-centre aligned), for WARP_INVERSE_MAP."""
    width, height = image_size
    mh, mw = map_shape
    x0, y0, x1, y1 = placement.crop
    tw, th = placement.target_size
    fx, fy = width / mw, height / mh
    sx, sy = (x1 - x0) / tw, (y1 - y0) / th
    return np.array(
        [[sx / fx, 0.0, (x0 + 0.5 * sx) / fx - 0.5], [0.0, sy / fy, (y0 + 0.5 * sy) / fy - 0.5]],
        dtype=np.float64,
    )


def _to_tile(map_: np.ndarray, image_size: tuple[int, int], placement: Placement) -> np.ndarray:
    """A map (alpha or colours) resampled onto the resized crop's pixel grid."""
    width, height = image_size
    x0, y0, x1, y1 = placement.crop
    tw, th = placement.target_size
    a = map_.astype(np.float32, copy=False)
    if a.shape[:2] == (height, width):
        crop = a[y0:y1, x0:x1]
        interp = cv2.INTER_AREA if tw < (x1 - x0) else cv2.INTER_LINEAR
        return cv2.resize(crop, (tw, th), interpolation=interp)
    m = _map_matrix(a.shape[:2], image_size, placement)
    return cv2.warpAffine(
        a, m, (tw, th), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def _sample(
    map_: np.ndarray, image_size: tuple[int, int], placement: Placement, ys: np.ndarray, xs: np.ndarray
) -> np.ndarray:
    """``map_`` (h, w, C) sampled bilinearly at tile pixels (ys, xs): (N, C) float32."""
    m = _map_matrix(map_.shape[:2], image_size, placement)
    n = xs.size
    cols = 1024  # cv2.remap wants maps under 32767 a side: fold the N points into rows
    rows = -(-n // cols)
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n] = m[0, 0] * xs + m[0, 2]
    my[:n] = m[1, 1] * ys + m[1, 2]
    out = cv2.remap(
        map_.astype(np.float32, copy=False),
        mx.reshape(rows, cols),
        my.reshape(rows, cols),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(rows * cols, -1)[:n]


def _patch_to_tile(patch: Patch, placement: Placement) -> np.ndarray:
    """The patch's colours on the tile grid (th, tw, 3) float32 (replicated outside the patch)."""
    x0, y0, x1, y1 = placement.crop
    tw, th = placement.target_size
    sx, sy = (x1 - x0) / tw, (y1 - y0) / th
    px, py = patch.origin
    m = np.array(
        [
            [sx / patch.scale, 0.0, (x0 + 0.5 * sx - px) / patch.scale - 0.5],
            [0.0, sy / patch.scale, (y0 + 0.5 * sy - py) / patch.scale - 0.5],
        ]
    )
    return cv2.warpAffine(
        patch.rgb.astype(np.float32, copy=False),
        m,
        (tw, th),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def shadow_alpha(
    object_alpha: np.ndarray,
    offset: tuple[int, int],
    canvas_size: tuple[int, int],
    bbox: tuple[int, int, int, int],
    kind: ShadowKind,
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The shadow's opacity on the canvas, computed at a quarter of the resolution.

    Returns (alpha over a canvas region, region's top-left) or None. ``object_alpha`` is the tile's alpha
    placed at ``offset``; ``bbox`` the garment's bbox on the canvas.
    """
    if kind == "none":
        return None
    cw, ch = canvas_size
    gh = max(bbox[3] - bbox[1], 1)
    if kind == "contact":
        shift, sigma, strength = (0.0, 0.006 * gh), 0.012 * gh, 0.34
    else:
        shift, sigma, strength = (0.012 * gh, 0.02 * gh), 0.024 * gh, 0.30
    q = 4
    small_w, small_h = max(1, cw // q), max(1, ch // q)
    th, tw = object_alpha.shape
    # paste the tile's alpha, downscaled, into the quarter-resolution canvas
    sx0, sy0 = offset[0] / q, offset[1] / q
    tile_small = cv2.resize(
        object_alpha, (max(1, round(tw / q)), max(1, round(th / q))), interpolation=cv2.INTER_AREA
    )
    m = np.array([[1.0, 0.0, sx0 + shift[0] / q], [0.0, 1.0, sy0 + shift[1] / q]], np.float32)
    moved = cv2.warpAffine(tile_small, m, (small_w, small_h), borderMode=cv2.BORDER_CONSTANT)
    small = cv2.GaussianBlur(moved, (0, 0), max(sigma / q, 0.5)).astype(np.float32)
    if kind == "contact":
        # heavier towards the hem: light from above and in front
        ys = (np.arange(small_h, dtype=np.float32) + 0.5) * q
        ramp = np.clip((ys - (bbox[1] + 0.35 * gh)) / (0.65 * gh), 0.0, 1.0) ** 1.5
        small *= (0.25 + 0.75 * ramp)[:, None]
    small *= strength
    rows = np.flatnonzero(small.max(axis=1) > 1.0 / 512.0)
    cols = np.flatnonzero(small.max(axis=0) > 1.0 / 512.0)
    if rows.size == 0:
        return None
    r0, r1 = rows[0] * q, min(ch, (rows[-1] + 1) * q)
    c0, c1 = cols[0] * q, min(cw, (cols[-1] + 1) * q)
    full = cv2.resize(small, (small_w * q, small_h * q), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(full[r0:r1, c0:c1]), (int(c0), int(r0))


Background = tuple[int, int, int] | np.ndarray | None  # solid colour, image (H, W, 3) uint8, or transparent


def render(
    rgb: np.ndarray,
    subject: Subject,
    placement: Placement,
    preset: Preset,
    background: Background,
    shadow: ShadowKind = "none",
) -> np.ndarray:
    """Composite the garment on a ``preset``-sized canvas; (H, W, 3) uint8, or (H, W, 4) when transparent.

    Pixels with no garment and no shadow are exactly the background.
    """
    height, width = rgb.shape[:2]
    size = (width, height)
    x0, y0, x1, y1 = placement.crop
    tw, th = placement.target_size
    crop = rgb[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if tw < (x1 - x0) else cv2.INTER_CUBIC
    fg = cv2.resize(crop, (tw, th), interpolation=interp)
    a_g = np.clip(_to_tile(subject.alpha, size, placement), 0.0, 1.0)

    # hollow layer behind the garment (the inside of the neck)
    a_h = None
    hollow_rgb = None
    if subject.hollow_alpha is not None and subject.hollow_rgb is not None:
        a_h = np.clip(_to_tile(subject.hollow_alpha, size, placement), 0.0, 1.0)
        if float(a_h.max()) > 1.0 / 255.0:
            hollow_rgb = _patch_to_tile(subject.hollow_rgb, placement)
        else:
            a_h = None
    a_o = a_g if a_h is None else a_g + (1.0 - a_g) * a_h

    transparent = background is None
    canvas = np.zeros((preset.height, preset.width, 4 if transparent else 3), np.uint8)
    if isinstance(background, np.ndarray):
        canvas[:] = background[: preset.height, : preset.width]
    elif background is not None:
        canvas[:] = np.asarray(background, dtype=np.uint8)

    ox, oy = placement.offset
    cx0, cy0 = max(ox, 0), max(oy, 0)
    cx1, cy1 = min(ox + tw, preset.width), min(oy + th, preset.height)
    if cx1 <= cx0 or cy1 <= cy0:
        return canvas

    # shadow under everything the object covers
    shadow_map = shadow_alpha(a_o, (ox, oy), (preset.width, preset.height), placement.canvas_bbox, shadow)
    if shadow_map is not None:
        s_alpha, (sx0, sy0) = shadow_map
        sh, sw = s_alpha.shape
        region = canvas[sy0 : sy0 + sh, sx0 : sx0 + sw]
        if transparent:
            region[..., 3] = np.clip(s_alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            region[:] = np.clip(region.astype(np.float32) * (1.0 - s_alpha[..., None]) + 0.5, 0, 255).astype(
                np.uint8
            )

    view = canvas[cy0:cy1, cx0:cx1]
    ty0, tx0 = cy0 - oy, cx0 - ox
    a_v = a_o[ty0 : ty0 + (cy1 - cy0), tx0 : tx0 + (cx1 - cx0)]
    g_v = a_g[ty0 : ty0 + (cy1 - cy0), tx0 : tx0 + (cx1 - cx0)]
    f_v = fg[ty0 : ty0 + (cy1 - cy0), tx0 : tx0 + (cx1 - cx0)]

    # opaque garment: copied as is
    opaque = g_v > 254.0 / 255.0
    if transparent:
        view[..., :3][opaque] = f_v[opaque]
        view[..., 3][opaque] = 255
    else:
        view[opaque] = f_v[opaque]

    # everything partly covered: premultiplied garment (edge unmixed) over the hollow over what is there
    ys, xs = np.nonzero((a_v >= 1.0 / 512.0) & ~opaque)
    if ys.size:
        ag = g_v[ys, xs][:, None]
        colour = f_v[ys, xs].astype(np.float32)
        if subject.behind is not None:
            behind = _sample(subject.behind, size, placement, ys + ty0, xs + tx0)
            premult = np.clip(colour - (1.0 - ag) * behind, 0.0, 255.0 * ag)
        else:
            premult = colour * ag
        ao = a_v[ys, xs][:, None]
        if a_h is not None and hollow_rgb is not None:
            ah = a_h[ys + ty0, xs + tx0][:, None]
            premult = premult + (1.0 - ag) * ah * hollow_rgb[ys + ty0, xs + tx0]
        under = view[ys, xs].astype(np.float32)
        if transparent:
            under_a = under[:, 3:4] / 255.0  # the shadow (black) already there
            out_a = ao + (1.0 - ao) * under_a
            out_rgb = premult / np.maximum(out_a, 1e-6)
            view[ys, xs, :3] = np.clip(out_rgb + 0.5, 0, 255).astype(np.uint8)
            view[ys, xs, 3] = np.clip(out_a[:, 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            out = premult + (1.0 - ao) * under
            view[ys, xs] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return canvas
