"""Draw the sample garment photos shipped in ``samples/garments/`` (deterministic).

Each sample is a studio-style photo of one garment lying on a light-grey sweep: a smooth garment outline with
fabric texture (knit, fleece, crepe, twill), drape folds, rounded shading, seams and details, a soft drop
shadow, a backdrop gradient with vignetting, sensor noise, and JPEG compression. ``render_sample`` also
returns the ground-truth garment mask, which the tests use to measure the studio engine's matte.

    python scripts/make_samples.py            # (re)write samples/garments/*.jpg
    python scripts/make_samples.py --check    # fail if the files differ from what the generator draws
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

WIDTH, HEIGHT = 1600, 2000
JPEG_QUALITY = 90
OUT_DIR = Path(__file__).resolve().parent.parent / "samples" / "garments"

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class Sample:
    name: str
    colour: tuple[int, int, int]
    texture: str
    seed: int
    draw: Callable[[Canvas], None]


class Canvas:
    """Drawing helpers in normalised coordinates (x, y in [0, 1] of the width and height)."""

    def __init__(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.w, self.h, self.rng = width, height, rng
        self.coverage = np.zeros((height, width), np.float32)  # garment alpha
        self.shade = np.ones((height, width), np.float32)  # multiplicative shading of the garment
        self.tint = np.zeros((height, width, 3), np.float32)  # additive colour of details (stitches, strings)

    def px(self, pts: Points) -> np.ndarray:
        arr = np.array([(x * self.w, y * self.h) for x, y in pts], np.float64)
        return np.round(arr * 16).astype(np.int32)  # 4 fractional bits for cv2's subpixel drawing

    def fill(
        self, pts: Points, target: np.ndarray | None = None, value: float = 1.0, smooth: float = 0.012
    ) -> None:
        poly = self.px(round_corners(pts, smooth))
        layer = np.zeros((self.h, self.w), np.uint8)
        cv2.fillPoly(layer, [poly], 255, lineType=cv2.LINE_AA, shift=4)
        a = layer.astype(np.float32) / 255.0
        if target is None:
            np.maximum(self.coverage, a, out=self.coverage)
        else:
            target *= 1.0 - a * (1.0 - value)

    def line(self, pts: Points, value: float, width_px: float, closed: bool = False) -> None:
        """Darken (value < 1) or lighten (> 1) the garment along a polyline, e.g. a seam."""
        layer = np.zeros((self.h, self.w), np.uint8)
        thick = max(1, round(width_px * self.w / WIDTH))
        cv2.polylines(
            layer, [self.px(round_corners(pts, 0.03, closed))], closed, 255, thick, cv2.LINE_AA, shift=4
        )
        a = cv2.GaussianBlur(layer.astype(np.float32) / 255.0, (0, 0), 0.6)
        self.shade *= 1.0 + a * (value - 1.0)

    def string(self, pts: Points, rgb: tuple[int, int, int], width_px: float) -> None:
        layer = np.zeros((self.h, self.w), np.uint8)
        thick = max(1, round(width_px * self.w / WIDTH))
        cv2.polylines(
            layer, [self.px(round_corners(pts, 0.05, False))], False, 255, thick, cv2.LINE_AA, shift=4
        )
        a = layer.astype(np.float32)[..., None] / 255.0
        self.tint = self.tint * (1.0 - a) + a * np.array(rgb, np.float32)


def round_corners(pts: Points, radius: float, closed: bool = True, steps: int = 8) -> Points:
    """Replace each corner by a quadratic curve starting ``radius`` (normalised units) before it."""
    if radius <= 0 or len(pts) < 3:
        return list(pts)
    p = np.asarray(pts, np.float64)
    n = len(p)
    out: Points = []
    for i in range(n):
        if not closed and i in (0, n - 1):
            out.append((float(p[i, 0]), float(p[i, 1])))
            continue
        prev, cur, nxt = p[(i - 1) % n], p[i], p[(i + 1) % n]
        d0, d1 = np.linalg.norm(cur - prev), np.linalg.norm(nxt - cur)
        r = min(radius, 0.45 * d0, 0.45 * d1)
        a = cur + (prev - cur) / max(d0, 1e-9) * r
        b = cur + (nxt - cur) / max(d1, 1e-9) * r
        for t in np.linspace(0.0, 1.0, steps):
            q = (1 - t) ** 2 * a + 2 * (1 - t) * t * cur + t**2 * b
            out.append((float(q[0]), float(q[1])))
    return out


def mirror(pts: Points) -> Points:
    return [(1.0 - x, y) for x, y in reversed(pts)]


# -- garments --------------------------------------------------------------------------------------


def draw_tshirt(c: Canvas) -> None:
    left: Points = [(0.31, 0.80), (0.305, 0.36), (0.225, 0.43), (0.14, 0.35), (0.285, 0.215), (0.405, 0.19)]
    left += [(0.44, 0.225), (0.5, 0.24)]
    c.fill(left + mirror(left[:-1]), smooth=0.02)
    # inside back of the neck, neck rib, hem and sleeve stitching, chest print
    c.fill([(0.41, 0.197), (0.45, 0.183), (0.55, 0.183), (0.59, 0.197), (0.5, 0.228)], c.shade, 0.6, 0.02)
    c.line([(0.405, 0.195), (0.44, 0.228), (0.5, 0.243), (0.56, 0.228), (0.595, 0.195)], 0.8, 7)
    c.line([(0.313, 0.783), (0.687, 0.783)], 0.82, 3)
    c.line([(0.232, 0.413), (0.155, 0.343)], 0.82, 3)
    c.line([(0.768, 0.413), (0.845, 0.343)], 0.82, 3)
    c.line([(0.285, 0.225), (0.305, 0.365)], 0.85, 3)
    c.line([(0.715, 0.225), (0.695, 0.365)], 0.85, 3)
    c.fill([(0.42, 0.32), (0.58, 0.32), (0.58, 0.35), (0.42, 0.35)], c.shade, 1.7, 0.004)
    c.fill([(0.45, 0.36), (0.55, 0.36), (0.55, 0.375), (0.45, 0.375)], c.shade, 1.7, 0.004)


def draw_hoodie(c: Canvas) -> None:
    hood: Points = [(0.385, 0.275), (0.37, 0.14), (0.41, 0.08), (0.5, 0.062), (0.59, 0.08), (0.63, 0.14)]
    hood += [(0.615, 0.275)]
    c.fill(hood, smooth=0.05)
    left: Points = [(0.29, 0.83), (0.285, 0.42), (0.19, 0.71), (0.085, 0.69), (0.165, 0.315), (0.22, 0.255)]
    left += [(0.36, 0.215), (0.5, 0.26)]
    c.fill(left + mirror(left[:-1]), smooth=0.03)
    # hood opening (lining), ribbed cuffs and waistband, kangaroo pocket, drawstrings
    c.fill(
        [(0.43, 0.225), (0.42, 0.15), (0.5, 0.105), (0.58, 0.15), (0.57, 0.225), (0.5, 0.25)],
        c.shade,
        0.5,
        0.03,
    )
    c.fill([(0.29, 0.79), (0.71, 0.79), (0.71, 0.832), (0.29, 0.832)], c.shade, 0.88, 0.0)
    c.fill([(0.095, 0.655), (0.196, 0.677), (0.19, 0.71), (0.085, 0.69)], c.shade, 0.88, 0.0)
    c.fill([(0.905, 0.655), (0.804, 0.677), (0.81, 0.71), (0.915, 0.69)], c.shade, 0.88, 0.0)
    c.line([(0.37, 0.56), (0.63, 0.56), (0.68, 0.75), (0.32, 0.75)], 0.7, 5, closed=True)
    c.line([(0.40, 0.565), (0.35, 0.745)], 0.75, 4)
    c.line([(0.60, 0.565), (0.65, 0.745)], 0.75, 4)
    c.string([(0.47, 0.24), (0.465, 0.31), (0.47, 0.40)], (236, 232, 225), 9)
    c.string([(0.53, 0.24), (0.54, 0.30), (0.535, 0.385)], (236, 232, 225), 9)


def draw_dress(c: Canvas) -> None:
    left: Points = [(0.5, 0.905), (0.215, 0.895), (0.27, 0.68), (0.33, 0.52), (0.385, 0.43)]
    left += [(0.37, 0.33), (0.368, 0.245), (0.397, 0.235), (0.40, 0.10), (0.418, 0.10), (0.425, 0.22)]
    left += [(0.46, 0.19), (0.5, 0.185)]
    c.fill(left + mirror(left[:-1]), smooth=0.008)
    # inside back, waist seam, pleats, hem stitch
    c.fill([(0.425, 0.225), (0.46, 0.195), (0.54, 0.195), (0.575, 0.225), (0.5, 0.25)], c.shade, 0.6, 0.02)
    c.line([(0.385, 0.43), (0.5, 0.44), (0.615, 0.43)], 0.7, 6)
    for x0, x1 in [(0.42, 0.34), (0.46, 0.43), (0.54, 0.57), (0.58, 0.66)]:
        c.line([(x0, 0.45), (x1, 0.88)], 0.86, 14)
    c.line([(0.225, 0.88), (0.5, 0.89), (0.775, 0.88)], 0.8, 3)


def draw_trousers(c: Canvas) -> None:
    outline: Points = [(0.30, 0.115), (0.70, 0.115), (0.718, 0.34), (0.725, 0.915), (0.555, 0.92)]
    outline += [(0.503, 0.46), (0.497, 0.46), (0.445, 0.92), (0.275, 0.915), (0.282, 0.34)]
    c.fill(outline, smooth=0.01)
    c.line([(0.301, 0.165), (0.699, 0.165)], 0.75, 5)
    for x in (0.33, 0.42, 0.58, 0.67):
        c.fill(
            [(x - 0.008, 0.113), (x + 0.008, 0.113), (x + 0.008, 0.175), (x - 0.008, 0.175)],
            c.shade,
            0.8,
            0.0,
        )
    c.line([(0.5, 0.17), (0.5, 0.34), (0.475, 0.37)], 0.75, 4)
    c.line([(0.31, 0.17), (0.37, 0.25)], 0.72, 4)
    c.line([(0.69, 0.17), (0.63, 0.25)], 0.72, 4)
    c.line([(0.385, 0.45), (0.36, 0.90)], 1.12, 10)
    c.line([(0.615, 0.45), (0.64, 0.90)], 1.12, 10)
    c.line([(0.278, 0.895), (0.448, 0.90)], 0.82, 3)
    c.line([(0.552, 0.90), (0.722, 0.895)], 0.82, 3)


SAMPLES: dict[str, Sample] = {
    "tshirt_navy": Sample("tshirt_navy", (34, 52, 98), "knit", 11, draw_tshirt),
    "hoodie_burgundy": Sample("hoodie_burgundy", (118, 32, 48), "fleece", 12, draw_hoodie),
    "dress_emerald": Sample("dress_emerald", (18, 112, 82), "crepe", 13, draw_dress),
    "trousers_khaki": Sample("trousers_khaki", (176, 152, 108), "twill", 14, draw_trousers),
}


# -- rendering -------------------------------------------------------------------------------------


def _field(rng: np.random.Generator, h: int, w: int, sx: float, sy: float) -> np.ndarray:
    f = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigmaX=sx, sigmaY=sy)
    return f / (float(f.std()) + 1e-6)


def _texture(kind: str, h: int, w: int, rng: np.random.Generator, k: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = _field(rng, h, w, 0.7 * k, 0.7 * k)
    if kind == "knit":
        return 1.0 + 0.035 * np.sin(2 * np.pi * xx / (5.0 * k)) + 0.03 * grain
    if kind == "fleece":
        return 1.0 + 0.05 * _field(rng, h, w, 1.6 * k, 1.6 * k) + 0.02 * grain
    if kind == "twill":
        return 1.0 + 0.045 * np.sin(2 * np.pi * (xx + yy) / (6.0 * k)) + 0.025 * grain
    return 1.0 + 0.02 * np.sin(2 * np.pi * yy / (9.0 * k)) + 0.02 * grain  # crepe


def render_sample(name: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The sample photo (H, W, 3) uint8 before JPEG, and its ground-truth garment mask (H, W) bool."""
    spec = SAMPLES[name]
    w, h = round(WIDTH * scale), round(HEIGHT * scale)
    k = w / WIDTH
    rng = np.random.default_rng(spec.seed)
    c = Canvas(w, h, rng)
    spec.draw(c)
    alpha = c.coverage
    mask = alpha >= 0.5

    # garment: rounded shading from the edge, light from the top left, drape folds, fabric texture
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    roundness = 1.0 - np.exp(-dist / (45.0 * k))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + 0.06 * (1.0 - xx / w - yy / h)
    folds = 1.0 + 0.07 * _field(rng, h, w, 70 * k, 70 * k) + 0.05 * _field(rng, h, w, 12 * k, 90 * k)
    shade = (0.78 + 0.22 * roundness) * light * folds * c.shade * _texture(spec.texture, h, w, rng, k)
    garment = np.array(spec.colour, np.float32) * shade[..., None]
    strings = c.tint.any(axis=2, keepdims=True)
    garment = np.where(strings, c.tint * (0.75 + 0.25 * roundness[..., None]) * light[..., None], garment)

    # backdrop: light-grey sweep, lighter at the top, vignetting, soft drop shadow
    xn, yn = xx / w * 2 - 1, yy / h * 2 - 1
    base = 233.0 - 14.0 * (yn + 1) / 2 - 7.0 * (xn**2 + yn**2) / 2
    backdrop = np.stack([base + 1.0, base, base - 2.5], axis=-1)
    shadow = cv2.GaussianBlur(np.roll(alpha, (round(22 * k), round(12 * k)), axis=(0, 1)), (0, 0), 28 * k)
    backdrop *= (1.0 - 0.09 * shadow)[..., None]

    a = cv2.GaussianBlur(alpha, (0, 0), 0.5 * k + 0.3)[..., None]  # lens softness at the edge
    photo = garment * a + backdrop * (1.0 - a)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w, 3)).astype(np.float32), (0, 0), 0.5)
    photo += 2.0 * noise + 1.0 * noise.mean(axis=2, keepdims=True)
    return np.clip(photo + 0.5, 0, 255).astype(np.uint8), mask


def encode_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stale = []
    for name in SAMPLES:
        data = encode_jpeg(render_sample(name)[0])
        path = args.out / f"{name}.jpg"
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(path.name)
            continue
        path.write_bytes(data)
        print(f"{path}  {len(data) / 1024:.0f} KiB")
    if stale:
        print(f"out of date: {', '.join(stale)} (run scripts/make_samples.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
