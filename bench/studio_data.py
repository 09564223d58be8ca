"""A labelled set of studio garment photos drawn in code, for the studio engine's benchmarks and tests.

Nothing is downloaded. Each image is a garment drawn from a parametric outline (t-shirt, long sleeve, tank top,
dress, hoodie, trousers, skirt, jacket) with fabric shading, folds, a texture or pattern, composited over a
studio backdrop (white / grey / dark / tinted paper with gradients, vignetting and sensor noise), with a drop or
contact shadow, sometimes worn by a mannequin (white, grey, black, skin-tone, chroma green or blue) that shows
above the collar, through the neck opening and the armholes and below the hem, and finally JPEG-compressed.
The ground truth is the garment's alpha (anti-aliased coverage with lens blur, before the mannequin and the
backdrop), so the mannequin counts as background.

``build_set(n, size, seed)`` is deterministic. Each :class:`LabelledImage` also carries the request options a
shop would send for it (``mannequin``: the known colour, or ``"auto"`` for chroma-key mannequins) and tags.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

Points = list[tuple[float, float]]

# Nominal colours (sRGB) of mannequins a studio uses; the photo shades them.
MANNEQUINS: dict[str, tuple[int, int, int]] = {
    "white": (236, 234, 229),
    "grey": (150, 151, 150),
    "black": (34, 34, 36),
    "skin": (214, 178, 148),
    "chroma_green": (46, 170, 82),
    "chroma_blue": (34, 84, 196),
}

GARMENT_COLOURS: dict[str, tuple[int, int, int]] = {
    "navy": (34, 52, 98),
    "burgundy": (118, 32, 48),
    "emerald": (18, 112, 82),
    "khaki": (176, 152, 108),
    "black": (30, 30, 32),
    "white": (240, 238, 234),
    "light_grey": (188, 188, 186),
    "red": (182, 32, 38),
    "mustard": (206, 160, 44),
    "sky": (140, 180, 222),
    "pink": (232, 168, 180),
    "olive": (96, 102, 56),
    "denim": (62, 88, 124),
    "beige": (212, 196, 170),
    "brown": (102, 70, 50),
    "teal": (20, 110, 120),
}

BACKDROPS: dict[str, tuple[float, float]] = {  # name → (base luminance range low, high)
    "white": (238.0, 250.0),
    "light_grey": (205.0, 228.0),
    "mid_grey": (150.0, 178.0),
    "dark": (32.0, 60.0),
    "blue_paper": (0.0, 0.0),
    "beige_paper": (0.0, 0.0),
}
_TINTS: dict[str, tuple[float, float, float]] = {
    "blue_paper": (196.0, 212.0, 228.0),
    "beige_paper": (226.0, 214.0, 194.0),
}


@dataclass
class Outline:
    """A garment outline in a unit box (x right, y down), and where its neck is for a mannequin."""

    kind: str
    points: Points
    aspect: float  # box width / height
    neck: tuple[float, float, float, float] | None = None  # x_left_tip, x_right_tip, y_tips, y_front
    shoulder_half: float = 0.3
    body_half: float = 0.25
    inside: Points | None = None  # the inside-back region seen through the neck when lying flat
    hems: list[Points] = field(default_factory=list)


@dataclass
class LabelledImage:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8, after JPEG
    alpha: np.ndarray  # (H, W) float32 ground-truth garment alpha
    options: dict[str, object]
    tags: tuple[str, ...]
    mannequin_alpha: np.ndarray | None = None  # where the mannequin is visible (for tests)
    neck_box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the neck opening (pixels)


def mirror(pts: Points) -> Points:
    return [(1.0 - x, y) for x, y in reversed(pts)]


def _arc(x0: float, x1: float, y_end: float, y_mid: float, n: int = 9) -> Points:
    """A smooth curve from (x0, y_end) to (x1, y_end) through (mid, y_mid)."""
    ts = np.linspace(0.0, 1.0, n)
    return [(float(x0 + (x1 - x0) * t), float(y_end + (y_mid - y_end) * np.sin(np.pi * t))) for t in ts]


# -- outlines --------------------------------------------------------------------------------------


def _top(rng: np.random.Generator, kind: str, worn: bool) -> Outline:
    nw = rng.uniform(0.085, 0.115)  # neck half width
    nd = rng.uniform(0.05, 0.09) if kind != "tank" else rng.uniform(0.12, 0.2)
    sh = rng.uniform(0.27, 0.31)
    bw = rng.uniform(0.23, 0.27)
    arm = rng.uniform(0.33, 0.38)
    tip_y = 0.02
    left: Points = [(0.5, 1.0), (0.5 - bw - 0.005, 1.0), (0.5 - bw, arm)]
    if kind == "tshirt":
        left += [(0.5 - bw - 0.16, arm + 0.07), (0.5 - bw - 0.215, arm - 0.04), (0.5 - sh, 0.085)]
    elif kind in ("longsleeve", "jacket"):
        gap = rng.uniform(0.01, 0.04)
        left += [
            (0.5 - bw - gap, 0.92),
            (0.5 - bw - gap - 0.12, 0.94),
            (0.5 - bw - gap - 0.125, 0.55),
            (0.5 - sh - 0.02, 0.11),
        ]
    else:  # tank: armhole up to a strap
        left += [(0.5 - bw + 0.03, arm - 0.14), (0.5 - nw - 0.07, 0.12), (0.5 - nw - 0.055, tip_y)]
    if kind != "tank":
        left += [(0.5 - nw - 0.015, tip_y + 0.005)]
    if kind == "jacket":
        v_depth = rng.uniform(0.35, 0.45)
        left += [(0.5 - nw, tip_y), (0.5 - 0.01, v_depth)]
        front: Points = [(0.5, v_depth + 0.02)]
        neck = (0.5 - nw, 0.5 + nw, tip_y, v_depth + 0.02)
    else:
        curve = _arc(0.5 - nw, 0.5 + nw, tip_y, tip_y + nd)
        left += curve[: len(curve) // 2 + 1]
        front = []
        neck = (0.5 - nw, 0.5 + nw, tip_y, tip_y + nd)
    outline = left + front + mirror(left[:-1] if not front else left)
    out = Outline(
        kind, outline, aspect=1.0 if kind != "tank" else 0.7, neck=neck, shoulder_half=sh, body_half=bw
    )
    if not worn:  # lying flat / hollow already: the inside back fills the neck opening
        x0, x1, y0, y1 = neck
        back = [(x0, y0), *_arc(x0, x1, y0, y0 + 0.015)[1:-1], (x1, y0)]
        out.inside = [*back, *reversed(_arc(x0, x1, y0, y1)[1:-1])]
        out.points = _close_neck(outline, neck)
    out.hems = [[(0.5 - bw, 0.97), (0.5 + bw, 0.97)]]
    return out


def _close_neck(outline: Points, neck: tuple[float, float, float, float]) -> Points:
    """Replace the front neckline (points between the tips) by the back neckline, slightly below the tips."""
    x0, x1, y0, y1 = neck
    inside = [
        i for i, (x, y) in enumerate(outline) if x0 + 1e-6 < x < x1 - 1e-6 and y0 + 1e-6 < y <= y1 + 0.03
    ]
    if not inside:
        return outline
    first, last = inside[0], inside[-1]
    back = _arc(x0, x1, y0, y0 + 0.015)[1:-1]
    return outline[:first] + back + outline[last + 1 :]


def _dress(rng: np.random.Generator, worn: bool) -> Outline:
    nw = rng.uniform(0.08, 0.1)
    bw = rng.uniform(0.14, 0.17)
    flare = rng.uniform(0.38, 0.47)
    waist = rng.uniform(0.36, 0.42)
    nd = rng.uniform(0.06, 0.1)
    left: Points = [(0.5, 1.0), (0.5 - flare, 0.985), (0.5 - bw + 0.01, waist), (0.5 - bw - 0.01, 0.2)]
    left += [(0.5 - bw + 0.02, 0.13), (0.5 - nw - 0.03, 0.02), (0.5 - nw, 0.02)]
    curve = _arc(0.5 - nw, 0.5 + nw, 0.02, 0.02 + nd)
    left += curve[1 : len(curve) // 2 + 1]
    outline = left + mirror(left[:-1])
    neck = (0.5 - nw, 0.5 + nw, 0.02, 0.02 + nd)
    out = Outline("dress", outline, aspect=0.62, neck=neck, shoulder_half=bw + 0.02, body_half=bw)
    if not worn:
        x0, x1, y0, y1 = neck
        out.inside = [
            (x0, y0),
            *_arc(x0, x1, y0, y0 + 0.012)[1:-1],
            (x1, y0),
            *reversed(_arc(x0, x1, y0, y1)[1:-1]),
        ]
        out.points = _close_neck(outline, neck)
    out.hems = [[(0.5 - flare + 0.01, 0.97), (0.5 + flare - 0.01, 0.97)]]
    return out


def _hoodie(rng: np.random.Generator) -> Outline:
    hood: Points = [
        (0.4, 0.27),
        (0.38, 0.1),
        (0.43, 0.02),
        (0.5, 0.0),
        (0.57, 0.02),
        (0.62, 0.1),
        (0.6, 0.27),
    ]
    bw = rng.uniform(0.22, 0.25)
    left: Points = [
        (0.5, 1.0),
        (0.5 - bw, 1.0),
        (0.5 - bw, 0.4),
        (0.5 - bw - 0.05, 0.93),
        (0.5 - bw - 0.17, 0.92),
    ]
    left += [(0.5 - bw - 0.15, 0.33), (0.36, 0.2), (0.42, 0.26)]
    body = [*left, (0.5, 0.28), *mirror(left)]
    out = Outline("hoodie", body, aspect=0.95, neck=None, shoulder_half=0.3, body_half=bw)
    out.inside = [(0.43, 0.24), (0.42, 0.12), (0.5, 0.07), (0.58, 0.12), (0.57, 0.24), (0.5, 0.27)]
    out.hems = [[(0.5 - bw, 0.96), (0.5 + bw, 0.96)]]
    # the hood is a second polygon: merged by drawing both
    out.points = body
    out.hems.append(hood)  # drawn as an extra filled shape (see _draw)
    return out


def _trousers(rng: np.random.Generator) -> Outline:
    hw = rng.uniform(0.3, 0.34)
    flare = rng.uniform(0.0, 0.05)
    crotch = rng.uniform(0.36, 0.42)
    gap = rng.uniform(0.015, 0.04)
    pts: Points = [(0.5 - hw, 0.0), (0.5 + hw, 0.0), (0.5 + hw + 0.02, 0.3), (0.5 + hw + flare, 1.0)]
    pts += [(0.5 + gap, 1.0), (0.5 + 0.005, crotch), (0.5 - 0.005, crotch), (0.5 - gap, 1.0)]
    pts += [(0.5 - hw - flare, 1.0), (0.5 - hw - 0.02, 0.3)]
    out = Outline("trousers", pts, aspect=0.55, body_half=hw)
    out.hems = [[(0.5 - hw, 0.06), (0.5 + hw, 0.06)]]
    return out


def _skirt(rng: np.random.Generator) -> Outline:
    top = rng.uniform(0.28, 0.33)
    flare = rng.uniform(0.42, 0.5)
    pts: Points = [(0.5 - top, 0.0), (0.5 + top, 0.0), (0.5 + flare, 0.97), (0.5, 1.0), (0.5 - flare, 0.97)]
    out = Outline("skirt", pts, aspect=0.9, body_half=top)
    out.hems = [[(0.5 - top, 0.07), (0.5 + top, 0.07)]]
    return out


WORN_KINDS = ("tshirt", "longsleeve", "tank", "dress", "jacket")
FLAT_KINDS = ("tshirt", "longsleeve", "tank", "dress", "hoodie", "trousers", "skirt", "jacket")


def make_outline(kind: str, rng: np.random.Generator, worn: bool) -> Outline:
    if kind in ("tshirt", "longsleeve", "tank", "jacket"):
        return _top(rng, kind, worn)
    if kind == "dress":
        return _dress(rng, worn)
    if kind == "hoodie":
        return _hoodie(rng)
    if kind == "trousers":
        return _trousers(rng)
    if kind == "skirt":
        return _skirt(rng)
    raise ValueError(kind)


# -- drawing ---------------------------------------------------------------------------------------


def _smooth(pts: Points, radius: float = 0.012, steps: int = 6) -> Points:
    """Round the polygon's corners with quadratic curves (garments have no sharp corners)."""
    p = np.asarray(pts, np.float64)
    n = len(p)
    out: Points = []
    for i in range(n):
        prev, cur, nxt = p[(i - 1) % n], p[i], p[(i + 1) % n]
        d0, d1 = np.linalg.norm(cur - prev), np.linalg.norm(nxt - cur)
        r = min(radius, 0.45 * d0, 0.45 * d1)
        a = cur + (prev - cur) / max(d0, 1e-9) * r
        b = cur + (nxt - cur) / max(d1, 1e-9) * r
        for t in np.linspace(0.0, 1.0, steps):
            q = (1 - t) ** 2 * a + 2 * (1 - t) * t * cur + t**2 * b
            out.append((float(q[0]), float(q[1])))
    return out


class _Frame:
    """Maps unit-box coordinates of the garment into image pixels (scale, offset, small rotation)."""

    def __init__(self, w: int, h: int, box: tuple[float, float, float, float], angle: float) -> None:
        self.w, self.h = w, h
        self.x0, self.y0, self.bw, self.bh = box
        self.cos, self.sin = np.cos(angle), np.sin(angle)

    def px(self, pts: Points) -> np.ndarray:
        arr = np.asarray(pts, np.float64)
        x = self.x0 + arr[:, 0] * self.bw
        y = self.y0 + arr[:, 1] * self.bh
        cx, cy = self.x0 + 0.5 * self.bw, self.y0 + 0.5 * self.bh
        xr = cx + (x - cx) * self.cos - (y - cy) * self.sin
        yr = cy + (x - cx) * self.sin + (y - cy) * self.cos
        return np.stack([xr, yr], axis=1)

    def fill(self, pts: Points, smooth: float = 0.012) -> np.ndarray:
        poly = np.round(self.px(_smooth(pts, smooth) if smooth else pts) * 16).astype(np.int32)
        layer = np.zeros((self.h, self.w), np.uint8)
        cv2.fillPoly(layer, [poly], 255, lineType=cv2.LINE_AA, shift=4)
        return layer.astype(np.float32) / 255.0


def _field(rng: np.random.Generator, h: int, w: int, sx: float, sy: float) -> np.ndarray:
    small_h, small_w = max(4, round(h / max(sy / 3, 1))), max(4, round(w / max(sx / 3, 1)))
    noise = rng.standard_normal((small_h, small_w)).astype(np.float32)
    f = np.asarray(cv2.resize(cv2.GaussianBlur(noise, (0, 0), 3.0), (w, h), interpolation=cv2.INTER_CUBIC))
    return f / (float(f.std()) + 1e-6)


def _backdrop(rng: np.random.Generator, name: str, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = xx / w * 2 - 1, yy / h * 2 - 1
    if name in _TINTS:
        base_rgb = np.array(_TINTS[name], np.float32) + rng.uniform(-6, 6, 3).astype(np.float32)
    else:
        lo, hi = BACKDROPS[name]
        v = rng.uniform(lo, hi)
        base_rgb = np.array([v + rng.uniform(-1.5, 1.5), v, v - rng.uniform(0, 3)], np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    grad = rng.uniform(3, 16) * (np.cos(angle) * xn + np.sin(angle) * yn) / 2
    vignette = rng.uniform(3, 14) * (xn**2 + yn**2) / 2
    scale = 1.0 if base_rgb.mean() > 100 else 0.35
    lum = (grad - vignette) * scale
    return base_rgb[None, None, :] + lum[..., None]


def _texture(rng: np.random.Generator, kind: str, h: int, w: int, k: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = _field(rng, h, w, 1.0 * k, 1.0 * k)
    if kind == "knit":
        return 1.0 + 0.035 * np.sin(2 * np.pi * xx / (5.0 * k)) + 0.03 * grain
    if kind == "twill":
        return 1.0 + 0.04 * np.sin(2 * np.pi * (xx + yy) / (6.0 * k)) + 0.025 * grain
    if kind == "fleece":
        return 1.0 + 0.05 * _field(rng, h, w, 2.0 * k, 2.0 * k) + 0.02 * grain
    return 1.0 + 0.02 * np.sin(2 * np.pi * yy / (9.0 * k)) + 0.02 * grain


def _lab(rgb: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0
    return cv2.cvtColor(arr, cv2.COLOR_RGB2Lab)[0, 0]


def _delta_e(a: tuple[float, float, float] | np.ndarray, b: tuple[float, float, float] | np.ndarray) -> float:
    return float(np.linalg.norm(_lab(a) - _lab(b)))


def render_scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    *,
    kind: str,
    colour: tuple[int, int, int],
    backdrop: str,
    mannequin: str | None,
    shadow: str,
    pattern: str,
    texture: str,
    jpeg_quality: int,
    soft_edge: float,
    name: str = "scene",
    label: tuple[int, int, int] | None = None,
) -> LabelledImage:
    """Draw one labelled photo; see the module docstring. ``label``: a care label of that colour sewn in the
    inside back of the neck (seen only when the neck opening shows the inside, i.e. without a mannequin)."""
    w, h = size
    k = min(w, h) / 1000.0
    worn = mannequin is not None
    outline = make_outline(kind, rng, worn)
    # garment box: 58-82 % of the frame height, centred with a little jitter
    gh = rng.uniform(0.58, 0.8) * h
    gw = gh * outline.aspect
    if gw > 0.86 * w:
        gw, gh = 0.86 * w, 0.86 * w / outline.aspect
    cx = w / 2 + rng.uniform(-0.04, 0.04) * w
    cy = h / 2 + rng.uniform(-0.03, 0.05) * h
    frame = _Frame(w, h, (cx - gw / 2, cy - gh / 2, gw, gh), np.deg2rad(rng.uniform(-2.5, 2.5)))

    coverage = frame.fill(outline.points)
    if outline.kind == "hoodie":  # the hood
        np.maximum(coverage, frame.fill(outline.hems[-1], 0.05), out=coverage)
    lens = 0.45 + soft_edge
    alpha = cv2.GaussianBlur(coverage, (0, 0), lens * max(k, 0.5))
    mask = coverage >= 0.5

    # fabric: rounded shading from the edge, light from the top left, folds, texture, pattern
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    roundness = 1.0 - np.exp(-dist / (40.0 * k))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.06 * (1.0 - xx / w - yy / h)
    folds = 1.0 + 0.06 * _field(rng, h, w, 70 * k, 70 * k) + 0.04 * _field(rng, h, w, 12 * k, 90 * k)
    shade = (0.8 + 0.2 * roundness) * light * folds * _texture(rng, texture, h, w, k)
    base = np.empty((h, w, 3), np.float32)
    base[:] = np.asarray(colour, np.float32)
    if pattern == "stripes":
        period = rng.uniform(28, 60) * k
        other = np.asarray(
            list(GARMENT_COLOURS.values())[int(rng.integers(len(GARMENT_COLOURS)))], np.float32
        )
        band = (np.sin(2 * np.pi * yy / period) > 0.3)[..., None]
        base = np.where(band, other, base)
    elif pattern == "print":
        px = frame.px([(0.4, 0.3), (0.6, 0.42)])
        x0, y0 = np.floor(px.min(axis=0)).astype(int)
        x1, y1 = np.ceil(px.max(axis=0)).astype(int)
        base[max(y0, 0) : y1, max(x0, 0) : x1] = rng.uniform(20, 240, 3).astype(np.float32)
    if outline.inside is not None:
        inside = frame.fill(outline.inside, 0.01)
        shade *= 1.0 - 0.4 * inside
        if label is not None and outline.neck is not None:
            y_tips = outline.neck[2]
            box = frame.px([(0.47, y_tips + 0.02), (0.53, y_tips + 0.045)])
            lx0, ly0 = np.floor(box.min(axis=0)).astype(int)
            lx1, ly1 = np.ceil(box.max(axis=0)).astype(int)
            base[ly0:ly1, lx0:lx1] = np.asarray(label, np.float32)
            shade[ly0:ly1, lx0:lx1] = 1.0
    for hem in outline.hems[: 1 if outline.kind == "hoodie" else None]:
        if len(hem) == 2:
            p = np.round(frame.px(hem) * 16).astype(np.int32)
            layer = np.zeros((h, w), np.uint8)
            cv2.polylines(layer, [p], False, 255, max(1, round(3 * k)), cv2.LINE_AA, shift=4)
            shade *= 1.0 - 0.15 * layer.astype(np.float32) / 255.0
    garment = base * shade[..., None]

    photo = _backdrop(rng, backdrop, h, w)
    tags = [f"garment:{kind}", f"backdrop:{backdrop}", f"shadow:{shadow}"]
    if pattern != "plain":
        tags.append(f"pattern:{pattern}")

    mannequin_alpha = None
    neck_box = None
    options: dict[str, object] = {}
    cast = alpha
    if mannequin is not None and outline.neck is not None:
        m_alpha, m_rgb = _mannequin(rng, frame, outline, MANNEQUINS[mannequin], h, w, k)
        mannequin_alpha = m_alpha * (1.0 - alpha)
        cast = np.maximum(alpha, m_alpha)
        options["mannequin"] = (
            "auto" if mannequin.startswith("chroma") else {"color": _hex(MANNEQUINS[mannequin])}
        )
        tags.append(f"mannequin:{mannequin}")
        nx0, nx1, ny0, ny1 = outline.neck
        corners = frame.px([(nx0, ny0), (nx1, ny1)])
        neck_box = (
            int(corners[:, 0].min()),
            int(corners[:, 1].min()),
            int(np.ceil(corners[:, 0].max())),
            int(np.ceil(corners[:, 1].max())),
        )
    else:
        m_alpha = None
        m_rgb = None

    if shadow != "none":
        if shadow == "drop":
            off = (rng.uniform(0.005, 0.02) * w, rng.uniform(0.01, 0.03) * h)
            sigma, strength = rng.uniform(0.012, 0.03) * h, rng.uniform(0.1, 0.25)
        else:  # contact: the garment lies on the surface, a thin soft rim
            off = (rng.uniform(0.0, 0.004) * w, rng.uniform(0.002, 0.006) * h)
            sigma, strength = rng.uniform(0.004, 0.009) * h, rng.uniform(0.15, 0.3)
        m = np.array([[1.0, 0.0, off[0]], [0.0, 1.0, off[1]]], np.float32)
        moved = cv2.warpAffine(cast, m, (w, h))
        sh = cv2.GaussianBlur(moved, (0, 0), sigma)
        photo *= (1.0 - strength * sh)[..., None]
    if m_alpha is not None and m_rgb is not None:
        photo = photo * (1.0 - m_alpha[..., None]) + m_rgb * m_alpha[..., None]
    photo = photo * (1.0 - alpha[..., None]) + garment * alpha[..., None]
    sigma_n = rng.uniform(1.0, 3.0)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w, 3)).astype(np.float32), (0, 0), 0.5)
    photo += sigma_n * (noise + 0.5 * noise.mean(axis=2, keepdims=True))
    rgb = np.clip(photo + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=jpeg_quality)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if _delta_e(colour, photo[h // 20, w // 20]) < 25:
        tags.append("low_contrast")
    return LabelledImage(name, rgb, alpha.astype(np.float32), options, tuple(tags), mannequin_alpha, neck_box)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _mannequin(
    rng: np.random.Generator,
    frame: _Frame,
    outline: Outline,
    colour: tuple[int, int, int],
    h: int,
    w: int,
    k: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The mannequin behind the garment: neck (with a cap), shoulders and torso, and the stand's pole."""
    assert outline.neck is not None
    nx0, nx1, ny0, _ = outline.neck
    neck_half = 0.72 * (nx1 - nx0) / 2
    cap = ny0 - rng.uniform(0.08, 0.16)
    sh, bw = outline.shoulder_half + 0.025, outline.body_half
    bottom = rng.uniform(0.98, 1.08) if outline.kind != "dress" else 0.5
    neck: Points = [(0.5 - neck_half, cap + 0.03), (0.5 - neck_half * 0.8, cap), (0.5 + neck_half * 0.8, cap)]
    neck += [(0.5 + neck_half, cap + 0.03), (0.5 + neck_half, ny0 + 0.08), (0.5 - neck_half, ny0 + 0.08)]
    torso: Points = [
        (0.5 - neck_half, ny0 + 0.03),
        (0.5 - sh, 0.1),
        (0.5 - sh + 0.01, 0.2),
        (0.5 - 0.85 * bw, 0.55),
    ]
    torso += [(0.5 - 0.95 * bw, bottom - 0.06), (0.5 - 0.7 * bw, bottom)]
    torso += mirror(torso)
    alpha = np.maximum(frame.fill(neck, 0.02), frame.fill(torso, 0.03))
    # the stand's pole, to the bottom of the frame
    pole_top = frame.px([(0.5, bottom - 0.02)])[0]
    pole_w = max(2.0, 0.018 * frame.bw)
    layer = np.zeros((h, w), np.uint8)
    cv2.rectangle(
        layer,
        (round(pole_top[0] - pole_w), round(pole_top[1])),
        (round(pole_top[0] + pole_w), h),
        255,
        -1,
        cv2.LINE_AA,
    )
    alpha = np.maximum(alpha, cv2.GaussianBlur(layer.astype(np.float32) / 255.0, (0, 0), 0.6))
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.5 * max(k, 0.5))
    # shading: a lit cylinder across, a little lighter at the top
    xx = np.arange(w, dtype=np.float32)
    cxp = frame.px([(0.5, 0.5)])[0][0]
    across = np.clip((xx - cxp) / (frame.bw * 0.35), -1.0, 1.0)
    light = 0.86 + 0.14 * np.cos(across * np.pi / 2)[None, :] + 0.04 * rng.uniform(-1, 1)
    yy = np.arange(h, dtype=np.float32)[:, None]
    light = light - 0.04 * (yy / h)
    rgb = np.asarray(colour, np.float32)[None, None, :] * light[..., None]
    return alpha.astype(np.float32), rgb


# -- the set ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSpec:
    kind: str
    colour: str
    backdrop: str
    mannequin: str | None
    shadow: str
    pattern: str
    texture: str
    jpeg_quality: int
    soft_edge: float


def sample_spec(rng: np.random.Generator, index: int) -> SceneSpec:
    """Scene parameters: every third image is on a mannequin; colours keep an ordinary studio contrast."""
    worn = index % 3 == 1
    kinds = WORN_KINDS if worn else FLAT_KINDS
    kind = kinds[int(rng.integers(len(kinds)))]
    mannequin = None
    if worn:
        names = list(MANNEQUINS)
        mannequin = names[(index // 3) % len(names)]
    backdrop_names = list(BACKDROPS)
    for _ in range(100):
        backdrop = backdrop_names[int(rng.integers(len(backdrop_names)))]
        colour = list(GARMENT_COLOURS)[int(rng.integers(len(GARMENT_COLOURS)))]
        bd = _TINTS.get(backdrop) or (sum(BACKDROPS[backdrop]) / 2,) * 3
        ok = _delta_e(GARMENT_COLOURS[colour], np.asarray(bd)) >= 14
        if mannequin is not None:
            ok = ok and _delta_e(GARMENT_COLOURS[colour], MANNEQUINS[mannequin]) >= 30
            ok = ok and _delta_e(MANNEQUINS[mannequin], np.asarray(bd)) >= 14
        if ok:
            break
    pattern = ["plain", "plain", "plain", "stripes", "print"][int(rng.integers(5))]
    texture = ["knit", "twill", "fleece", "crepe"][int(rng.integers(4))]
    shadow = ["drop", "contact", "none", "drop"][int(rng.integers(4))] if not worn else "drop"
    return SceneSpec(
        kind=kind,
        colour=colour,
        backdrop=backdrop,
        mannequin=mannequin,
        shadow=shadow,
        pattern=pattern,
        texture=texture,
        jpeg_quality=int(rng.integers(85, 96)),
        soft_edge=float(rng.choice([0.0, 0.3, 1.2])),
    )


def build_image(index: int, size: tuple[int, int] = (1200, 1500), seed: int = 0) -> LabelledImage:
    rng = np.random.default_rng([seed, index])
    spec = sample_spec(rng, index)
    return render_scene(
        rng,
        size,
        kind=spec.kind,
        colour=GARMENT_COLOURS[spec.colour],
        backdrop=spec.backdrop,
        mannequin=spec.mannequin,
        shadow=spec.shadow,
        pattern=spec.pattern,
        texture=spec.texture,
        jpeg_quality=spec.jpeg_quality,
        soft_edge=spec.soft_edge,
        name=f"{index:03d}_{spec.kind}_{spec.colour}_on_{spec.backdrop}"
        + (f"_mannequin_{spec.mannequin}" if spec.mannequin else ""),
    )


def build_set(n: int, size: tuple[int, int] = (1200, 1500), seed: int = 0) -> list[LabelledImage]:
    """``n`` labelled images of ``size`` (width, height), deterministic in ``seed``."""
    return [build_image(i, size, seed) for i in range(n)]


def scaled(item: LabelledImage, size: tuple[int, int]) -> LabelledImage:
    """The same scene resampled to ``size`` (e.g. 12 MP for the speed benchmark)."""
    rgb = cv2.resize(item.rgb, size, interpolation=cv2.INTER_CUBIC)
    alpha = cv2.resize(item.alpha, size, interpolation=cv2.INTER_LINEAR)
    return LabelledImage(item.name, rgb, alpha, item.options, item.tags)


Builder = Callable[[int, tuple[int, int], int], LabelledImage]


def inside_pair(
    size: tuple[int, int] = (480, 600),
    seed: int = 3,
    *,
    kind: str = "tshirt",
    mannequin: str = "white",
    shift: tuple[float, float] = (8.0, -6.0),
    zoom: float = 1.03,
    label: tuple[int, int, int] = (220, 30, 30),
) -> tuple[LabelledImage, np.ndarray]:
    """A ghost-mannequin pair: the garment on a mannequin, and the "inside" photo of the same garment taken
    with the same set-up (the inside back of the neck visible, with a care label of colour ``label``), the
    camera moved by ``shift`` pixels and ``zoom``. Returns (the labelled main photo, the inside photo)."""
    common: dict[str, Any] = {
        "kind": kind,
        "colour": GARMENT_COLOURS["navy"],
        "backdrop": "light_grey",
        "shadow": "none",
        "pattern": "plain",
        "texture": "crepe",
        "jpeg_quality": 95,
        "soft_edge": 0.0,
    }
    main = render_scene(np.random.default_rng(seed), size, mannequin=mannequin, name="main", **common)
    inside = render_scene(
        np.random.default_rng(seed), size, mannequin=None, name="inside", label=label, **common
    )
    w, h = size
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, zoom)
    m[:, 2] += np.asarray(shift)
    moved = cv2.warpAffine(inside.rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return main, moved
