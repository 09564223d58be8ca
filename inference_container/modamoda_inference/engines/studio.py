"""The ``studio`` engine: deterministic computer vision on the CPU, no model weights.

Ghost packshot from a garment photographed on a plain studio backdrop:

1. work on a copy downscaled to ~1024 px on the long side;
2. model the backdrop: a low-order polynomial per RGB channel fitted robustly (trimmed least squares) to the
   pixels of the image border, so gradients and vignetting of a sweep are followed;
3. distance of every pixel from the backdrop behind it in CIELAB, with "darker than the backdrop" lightness
   differences down-weighted so soft shadows do not count as garment;
4. foreground = hysteresis threshold (Otsu, clamped by the measured backdrop noise), morphological clean-up,
   the largest connected component(s), small enclosed holes filled;
5. soft edge: the binary mask feathered and resampled onto the output grid;
6. crop to the garment, scale to the preset's fill, centre on a canvas of the requested colour, with the
   backdrop's colour taken out of the semi-transparent edge pixels.

The hollow neck, mannequin removal and contact shadow come later; see the design of record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from modamoda_inference.canvas import get_preset, plan_placement, render
from modamoda_inference.engines.base import Engine, EngineResult
from modamoda_inference.errors import NoGarmentFound
from modamoda_inference.schemas import InferenceRequest


@dataclass(frozen=True)
class StudioSettings:
    work_long_side: int = 1024  # the matte is estimated at this size (px, long side)
    border_frac: float = 0.03  # width of the border strip that samples the backdrop (share of short side)
    poly_degree: int = 2  # backdrop model: polynomial degree in x, y
    shadow_weight: float = 0.3  # weight of "darker than backdrop" lightness differences
    min_component_frac: float = 0.15  # keep components at least this share of the largest one
    hole_fill_frac: float = 0.02  # fill enclosed holes up to this share of the garment's area
    feather_sigma: float = 0.6  # Gaussian feather of the alpha edge, in working pixels
    min_garment_frac: float = 0.002  # below this share of the image: no garment found


def _poly_terms(degree: int) -> list[tuple[int, int]]:
    return [(i, total - i) for total in range(degree + 1) for i in range(total, -1, -1)]


@dataclass(frozen=True)
class BackdropModel:
    """Backdrop colour as a polynomial in normalised coordinates (pixel centres in [-1, 1])."""

    degree: int
    coeffs: np.ndarray  # (n_terms, 3) RGB 0..255
    noise: float  # CIELAB distance of the backdrop pixels from the model (99th percentile)
    inlier_fraction: float  # share of the border that looked like backdrop

    def design(self, xn: np.ndarray, yn: np.ndarray) -> np.ndarray:
        return np.stack([xn**i * yn**j for i, j in _poly_terms(self.degree)], axis=-1)

    def __call__(self, xn: np.ndarray, yn: np.ndarray) -> np.ndarray:
        """Backdrop RGB at the given normalised coordinates, (…, 3) float32."""
        out = np.zeros((*xn.shape, 3), dtype=np.float32)
        for k, (i, j) in enumerate(_poly_terms(self.degree)):
            term = (xn**i * yn**j).astype(np.float32)
            out += term[..., None] * self.coeffs[k].astype(np.float32)
        return np.clip(out, 0.0, 255.0)

    def grid(self, width: int, height: int) -> np.ndarray:
        """The backdrop on a ``width`` x ``height`` grid: (height, width, 3) float32, computed separably."""
        xs = (np.arange(width, dtype=np.float64) + 0.5) / width * 2.0 - 1.0
        ys = (np.arange(height, dtype=np.float64) + 0.5) / height * 2.0 - 1.0
        n = self.degree + 1
        xp = np.stack([xs**i for i in range(n)], axis=1)  # (W, n)
        yp = np.stack([ys**j for j in range(n)], axis=1)  # (H, n)
        table = np.zeros((n, n, 3))  # [i (x power), j (y power), channel]
        for k, (i, j) in enumerate(_poly_terms(self.degree)):
            table[i, j] = self.coeffs[k]
        out = np.einsum("hj,ijc,wi->hwc", yp, table, xp, optimize=True)
        return np.clip(out, 0.0, 255.0).astype(np.float32)

    def mean_hex(self) -> str:
        centre = self(np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.float32))[0]
        r, g, b = (round(float(c)) for c in centre)
        return f"#{r:02X}{g:02X}{b:02X}"


@dataclass
class Matte:
    """The garment's matte at working resolution, for a source photo of ``source_size`` (w, h)."""

    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    source_size: tuple[int, int]
    backdrop: BackdropModel
    thresholds: tuple[float, float]  # (low, high) CIELAB distances
    coverage: float  # share of the image that is garment
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def scale(self) -> tuple[float, float]:
        """Source pixels per working pixel, (x, y)."""
        h, w = self.alpha.shape
        return self.source_size[0] / w, self.source_size[1] / h

    def bbox(self) -> tuple[float, float, float, float] | None:
        """The garment's bbox (alpha ≥ 0.5) in continuous source coordinates, or None."""
        on = self.alpha >= 0.5
        rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
        if rows.size == 0:
            return None
        fx, fy = self.scale
        return (cols[0] * fx, rows[0] * fy, (cols[-1] + 1) * fx, (rows[-1] + 1) * fy)

    def full_resolution(self) -> np.ndarray:
        """The matte resampled to the source size, (H, W) float32."""
        width, height = self.source_size
        return cv2.resize(self.alpha, (width, height), interpolation=cv2.INTER_LINEAR)


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(rgb, 0.0, 255.0).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


class StudioEngine(Engine):
    """Ghost packshots from plain-backdrop studio photos, CPU only."""

    name = "studio"
    modes = frozenset({"ghost"})

    def __init__(self, settings: StudioSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or StudioSettings()

    def load(self, model_dir: Path) -> None:
        """No weights: warm up OpenCV/numpy on a tiny synthetic photo so the first request is not slower."""
        demo = np.full((96, 80, 3), 200, dtype=np.uint8)
        demo[30:70, 25:55] = (40, 60, 120)
        self.matte(demo)
        self._ready = True

    # -- backdrop -----------------------------------------------------------------------------------------

    def fit_backdrop(self, small: np.ndarray) -> BackdropModel:
        """Fit the backdrop polynomial to the border strip of the working image (float32 RGB)."""
        s = self.settings
        h, w = small.shape[:2]
        b = max(2, round(s.border_frac * min(h, w)))
        border = np.zeros((h, w), dtype=bool)
        border[:b, :] = border[-b:, :] = True
        border[:, :b] = border[:, -b:] = True
        ys, xs = np.nonzero(border)
        values = small[ys, xs].astype(np.float64)
        xn = (xs + 0.5) / w * 2.0 - 1.0
        yn = (ys + 0.5) / h * 2.0 - 1.0
        terms = _poly_terms(s.poly_degree)
        design = np.stack([xn**i * yn**j for i, j in terms], axis=-1)
        min_inliers = 20 * len(terms)

        # Start from the pixels near the border's median colour (the garment covers under half the border).
        dist = np.linalg.norm(values - np.median(values, axis=0), axis=1)
        inliers = dist < max(20.0, 2.5 * float(np.median(dist)))
        if inliers.sum() < min_inliers:
            inliers = np.ones_like(inliers)
        coeffs = np.zeros((len(terms), 3))
        for _ in range(6):
            coeffs, *_ = np.linalg.lstsq(design[inliers], values[inliers], rcond=None)
            residual = np.linalg.norm(values - design @ coeffs, axis=1)
            sigma = 1.4826 * float(np.median(residual[inliers]))
            updated = residual < max(3.5 * sigma, 3.0)
            if updated.sum() < min_inliers or np.array_equal(updated, inliers):
                break
            inliers = updated

        model = BackdropModel(s.poly_degree, coeffs, 0.0, float(inliers.mean()))
        fitted = model(xn[inliers].astype(np.float32), yn[inliers].astype(np.float32))
        noise_d = self._distance(_to_lab(values[inliers][None]), _to_lab(fitted[None]))
        noise = float(np.percentile(noise_d, 99)) if noise_d.size else 0.0
        return BackdropModel(s.poly_degree, coeffs, noise, float(inliers.mean()))

    def _distance(self, lab: np.ndarray, lab_bg: np.ndarray) -> np.ndarray:
        diff = lab - lab_bg
        d_l = diff[..., 0]
        d_l = np.where(d_l < 0.0, d_l * self.settings.shadow_weight, d_l)
        return np.sqrt(d_l * d_l + diff[..., 1] ** 2 + diff[..., 2] ** 2)

    # -- matte --------------------------------------------------------------------------------------------

    def matte(self, rgb: np.ndarray) -> Matte:
        """Estimate the garment's matte of an (H, W, 3) uint8 RGB photo."""
        s = self.settings
        t0 = time.perf_counter()
        height, width = rgb.shape[:2]
        factor = min(1.0, s.work_long_side / max(height, width))
        ws, hs = max(8, round(width * factor)), max(8, round(height * factor))
        small = cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA) if factor < 1.0 else rgb
        small_f = cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.0)

        backdrop = self.fit_backdrop(small_f)
        t1 = time.perf_counter()
        bg = backdrop.grid(ws, hs)
        d = self._distance(_to_lab(small_f), _to_lab(bg))

        floor = max(3.0, 1.5 * backdrop.noise)
        d_max = max(float(np.percentile(d, 99.5)), 2.0 * floor)
        d8 = np.clip(d / d_max * 255.0, 0, 255).astype(np.uint8)
        otsu, _ = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        t_high = float(np.clip(otsu / 255.0 * d_max, 2.0 * floor, max(4.0 * floor, 24.0)))
        t_low = max(floor, 0.5 * t_high)

        mask = self._hysteresis(d > t_low, d > t_high)
        mask = self._clean(mask)
        coverage = float(mask.mean())
        if coverage < s.min_garment_frac:
            raise NoGarmentFound(
                "no garment found: the photo looks like an empty backdrop "
                "(the studio engine needs the garment on a plain, lighter or darker backdrop)"
            )
        alpha = self._refine_edges(small.astype(np.float32), mask, bg)
        if s.feather_sigma:
            alpha = cv2.GaussianBlur(alpha, (0, 0), s.feather_sigma)
        t2 = time.perf_counter()
        return Matte(
            alpha=alpha.astype(np.float32),
            source_size=(width, height),
            backdrop=backdrop,
            thresholds=(t_low, t_high),
            coverage=coverage,
            timings_ms={"backdrop": (t1 - t0) * 1e3, "mask": (t2 - t1) * 1e3},
        )

    @staticmethod
    def _refine_edges(small: np.ndarray, mask: np.ndarray, bg: np.ndarray) -> np.ndarray:
        """Soft alpha in a thin band around the mask edge by linear unmixing of garment and backdrop colour.

        A pixel at the edge is a mix ``a * F + (1 - a) * B`` of the nearby garment colour ``F`` (mean of the
        mask's interior around it) and the backdrop ``B``; ``a`` is the projection of ``I - B`` on ``F - B``.
        Where the two colours are too close to tell apart the binary mask stays.
        """
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        m8 = mask.astype(np.uint8)
        inner = cv2.erode(m8, kernel, iterations=2)
        band = (cv2.dilate(m8, kernel, iterations=2) > 0) & (inner == 0)
        alpha = mask.astype(np.float32)
        if not band.any():
            return alpha
        inner_f = inner.astype(np.float32)
        count = cv2.boxFilter(inner_f, -1, (15, 15), normalize=False)
        total = cv2.boxFilter(small * inner_f[..., None], -1, (15, 15), normalize=False)
        fg = total / np.maximum(count, 1.0)[..., None]
        span = fg - bg
        contrast = np.sum(span * span, axis=-1)
        a = np.sum((small - bg) * span, axis=-1) / np.maximum(contrast, 1e-6)
        valid = band & (count >= 4.0) & (contrast >= 144.0)
        alpha[valid] = np.clip(a[valid], 0.0, 1.0)
        return alpha

    @staticmethod
    def _hysteresis(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
        n, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
        if n <= 1:
            return np.zeros_like(weak)
        keep = np.zeros(n, dtype=bool)
        keep[np.unique(labels[strong & weak])] = True
        keep[0] = False
        return keep[labels]

    def _clean(self, mask: np.ndarray) -> np.ndarray:
        s = self.settings
        m: np.ndarray = mask.astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        if n <= 1:
            return np.zeros(mask.shape, dtype=bool)
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.zeros(n, dtype=bool)
        keep[1:] = areas >= s.min_component_frac * areas.max()
        garment = keep[labels]

        # Fill enclosed holes (not reaching the border) up to a share of the garment's area.
        n_h, holes, h_stats, _ = cv2.connectedComponentsWithStats((~garment).astype(np.uint8), connectivity=4)
        if n_h > 1:
            touches = np.zeros(n_h, dtype=bool)
            for edge in (holes[0, :], holes[-1, :], holes[:, 0], holes[:, -1]):
                touches[np.unique(edge)] = True
            small_hole = h_stats[:, cv2.CC_STAT_AREA] <= s.hole_fill_frac * garment.sum()
            fill = ~touches & small_hole
            fill[0] = False  # label 0 is the garment itself
            garment = garment | fill[holes]
        return garment

    # -- engine -------------------------------------------------------------------------------------------

    def run(self, image: Image.Image, request: InferenceRequest) -> EngineResult:
        t0 = time.perf_counter()
        rgb = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
        matte = self.matte(rgb)
        bbox = matte.bbox()
        if bbox is None:
            raise NoGarmentFound("no garment found in the photo")
        preset = get_preset(request.options.preset)
        fx, fy = matte.scale
        pad = 4.0 * max(fx, fy) * max(self.settings.feather_sigma, 0.5) + 2.0
        placement = plan_placement(bbox, matte.source_size, preset, pad=pad)
        t1 = time.perf_counter()
        canvas = render(
            rgb,
            matte.alpha,
            placement,
            preset,
            request.options.background_rgb,
            backdrop=matte.backdrop,
        )
        t2 = time.perf_counter()
        metadata = {
            "engine": self.name,
            "preset": preset.name,
            "bbox": [round(v, 1) for v in bbox],
            "canvas_bbox": list(placement.canvas_bbox),
            "scale": round(placement.scale, 4),
            "coverage": round(matte.coverage, 4),
            "backdrop": matte.backdrop.mean_hex(),
            "backdrop_noise": round(matte.backdrop.noise, 2),
            "thresholds": [round(t, 2) for t in matte.thresholds],
            "timings_ms": {
                **{k: round(v, 1) for k, v in matte.timings_ms.items()},
                "matte": round((t1 - t0) * 1e3, 1),
                "composite": round((t2 - t1) * 1e3, 1),
            },
        }
        return EngineResult(image=Image.fromarray(canvas), metadata=metadata)
