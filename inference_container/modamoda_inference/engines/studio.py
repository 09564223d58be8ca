"""The ``studio`` engine: deterministic computer vision on the CPU, no model weights.

Ghost packshot from a garment photographed on a plain or gradient studio backdrop, optionally on a mannequin:

1. work on a copy downscaled to ~1024 px on the long side; frame lines along the border (a panel cut from a
   before/after composite) are painted over with the inside's edge (:mod:`modamoda_inference.frame`);
2. model the backdrop: a low-order polynomial per RGB channel fitted robustly (trimmed least squares) to the
   pixels of the image border, so gradients and vignetting of a sweep are followed;
3. distance of every pixel from the backdrop behind it in CIELAB, with "darker than the backdrop" lightness
   differences down-weighted down to the depth of a studio shadow, so soft shadows do not count as subject
   (a grey garment on a white sweep still does);
4. subject = hysteresis threshold (Otsu, clamped by the measured backdrop noise), morphological clean-up that
   does not close across clear backdrop (a narrow gap between sleeve and body), a vertical closing that bridges
   backdrop-coloured horizontal stripes, the main group of connected fragments; enclosed holes filled when
   small, or when their colour is off the backdrop model or they are textured like fabric (a print) — a
   large smooth hole showing the backdrop stays a hole; pasted rectangular insets dropped;
5. mannequin (given colour, chroma key or sampled neck colour, see :mod:`modamoda_inference.mannequin`; with
   ``"auto"`` also the colours of the form where it leaves the garment, above the collar and below the hem, and
   the backdrop's tone, see :mod:`modamoda_inference.forms`) taken out of the subject and grown into its shaded
   side; then figure and ground settled by a graph cut seeded from that mask (:mod:`modamoda_inference.refine`)
   and thin hooks or poles above or below the garment removed;
6. soft edge by closed-form alpha matting on a thin band around the garment's edge
   (:mod:`modamoda_inference.matting`), and the colour that was behind the edge (backdrop or mannequin),
   so the edge can be unmixed from it;
7. the hollow where the mannequin showed through the neck opening (:mod:`modamoda_inference.hollow`), filled
   with the inside photo when one is given (aligned automatically) or with a darker inside tone;
8. (``cutout``, what a job runs) the person check (:mod:`modamoda_inference.person`) and the quality gate
   (:mod:`modamoda_inference.quality`): a photo the engine can tell it would cut wrongly is refused, no charge;
   a photo refused on a border that is not a clean studio sweep (a rug, a floor, a patterned sheet) gets a second
   try whose subject comes from GrabCut started at the frame's border (:mod:`modamoda_inference.textured`)
   instead of steps 2-4, under the same stages 5-8;
9. crop to the garment, scale to the preset's fill within its margins, centre, cast a contact or drop shadow,
   and lay it on the background: the preset's white, a colour, a library image or transparency
   (:mod:`modamoda_inference.canvas`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from modamoda_inference import backgrounds
from modamoda_inference.canvas import Background, Patch, Preset, Subject, get_preset, plan_placement, render
from modamoda_inference.engines.base import Engine, EngineResult
from modamoda_inference.engines.learned import PERSON_MESSAGE, learned_path
from modamoda_inference.errors import LowConfidence, NoGarmentFound, PersonInPhoto, PhotoRefused
from modamoda_inference.forms import form_models, garment_colour, grow_form, left_over, thin_structures
from modamoda_inference.frame import inner_frame, rectangular_insets
from modamoda_inference.hollow import Hollow, align, find_hollow, inside_tone
from modamoda_inference.mannequin import (
    MannequinModel,
    detect_auto,
    from_colour,
    mannequin_mask,
    rgb_to_lab,
)
from modamoda_inference.matting import MattingSettings, closed_form_alpha, trimap_from_mask
from modamoda_inference.person import has_person, person_evidence
from modamoda_inference.quality import SWEEP_NOISE, assess, iou
from modamoda_inference.refine import graph_cut
from modamoda_inference.schemas import InferenceRequest, MannequinColour
from modamoda_inference.segmentation.stage import SegmentationStage, choose, shared_stage
from modamoda_inference.textured import TexturedSettings, rect_cut, textured_subject


@dataclass(frozen=True)
class StudioSettings:
    work_long_side: int = 1024  # the matte is estimated at this size (px, long side)
    border_frac: float = 0.03  # width of the border strip that samples the backdrop (share of short side)
    poly_degree: int = 2  # backdrop model: polynomial degree in x, y
    shadow_weight: float = 0.3  # weight of "darker than backdrop" lightness differences ...
    shadow_depth: float = 0.15  # ... down to this share of the backdrop's lightness (L*), fully beyond
    min_component_frac: float = 0.15  # keep components at least this share of the largest one
    hole_fill_frac: float = 0.02  # fill enclosed holes up to this share of the garment's area
    min_garment_frac: float = 0.002  # below this share of the image: no garment found
    stripe_bridge: float = 0.03  # vertical closing across backdrop-coloured stripes (share of the long side)
    print_texture_ratio: float = (
        1.6  # a large enclosed "hole" this much more textured than the backdrop is a print
    )
    graph_cut: bool = (
        True  # settle figure and ground by GrabCut from the first mask (modamoda_inference.refine)
    )
    matting: bool = True  # closed-form matting of the edge (else a feathered binary mask)
    matting_band: int = 2  # unknown band outside the mask's edge, working pixels
    matting_inner: int = 3  # ... and inside it (the mask takes faint mixed pixels: its edge lies outward)
    matting_epsilon: float = 1e-4
    feather_sigma: float = 0.6  # Gaussian feather when matting is off, in working pixels


MannequinOption = str | MannequinColour

NO_GARMENT = (
    "We could not find a garment in this photo. Please send a photo of the garment on a mannequin, on a hanger "
    "or laid flat, against a plain background. Nothing was charged."
)


def _poly_terms(degree: int) -> list[tuple[int, int]]:
    return [(i, total - i) for total in range(degree + 1) for i in range(total, -1, -1)]


@dataclass(frozen=True)
class BackdropModel:
    """Backdrop colour as a polynomial in normalised coordinates (pixel centres in [-1, 1])."""

    degree: int
    coeffs: np.ndarray  # (n_terms, 3) RGB 0..255
    noise: float  # CIELAB distance of the backdrop pixels from the model (99th percentile)
    inlier_fraction: float  # share of the border that looked like backdrop

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

    def mean_rgb(self) -> tuple[int, int, int]:
        centre = self(np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.float32))[0]
        r, g, b = (round(float(c)) for c in centre)
        return r, g, b

    def mean_hex(self) -> str:
        r, g, b = self.mean_rgb()
        return f"#{r:02X}{g:02X}{b:02X}"


@dataclass
class Matte:
    """The garment's matte at working resolution, for a source photo of ``source_size`` (w, h)."""

    alpha: np.ndarray  # (h, w) float32 in [0, 1]: the garment only (no mannequin, no hollow)
    source_size: tuple[int, int]
    backdrop: BackdropModel
    thresholds: tuple[float, float]  # (low, high) CIELAB distances
    coverage: float  # share of the image that is garment
    subject: np.ndarray | None = None  # (h, w) bool: not backdrop (garment and mannequin)
    garment: np.ndarray | None = None  # (h, w) bool: the garment's binary mask
    mannequin: np.ndarray | None = None  # (h, w) bool: the mannequin's visible pixels
    mannequin_like: np.ndarray | None = None  # (h, w) bool: mannequin, or backdrop of the mannequin's colour
    mannequin_model: MannequinModel | None = None
    behind: np.ndarray | None = None  # (h, w, 3) float32: the colour behind the garment's edge
    small: np.ndarray | None = None  # (h, w, 3) uint8: the working image
    timings_ms: dict[str, float] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)  # the quality gate's score, threshold and checks
    first: np.ndarray | None = (
        None  # (h, w) bool: the garment by backdrop distance alone, before the graph cut
    )
    leftover: float = 0.0  # share of the garment that still looks like a form where forms leave garments
    path: str = (
        "backdrop"  # how the subject was found: "backdrop" (distance from the model), "textured" or "learned"
    )
    learned: dict[str, Any] = field(default_factory=dict)  # the segmentation stage's evidence (learned path)

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


@dataclass(frozen=True)
class _Working:
    """What both segmentation paths start from (:meth:`StudioEngine._prepare`)."""

    small: np.ndarray  # (h, w, 3) uint8: the working copy, frame lines painted over
    small_f: np.ndarray  # (h, w, 3) float32: the same, lightly blurred
    backdrop: BackdropModel  # fitted to its border
    source_size: tuple[int, int]  # (w, h) of the photo
    ms: float  # milliseconds it took


@dataclass
class _Separation:
    """The garment taken out of the subject (:meth:`StudioEngine._separate`)."""

    model: MannequinModel | None  # the mannequin option's colour model, if any
    mannequin: np.ndarray  # (h, w) bool: the mannequin's and forms' visible pixels
    mannequin_like: np.ndarray  # ... and backdrop of their colour (for the hollow)
    garment: np.ndarray  # (h, w) bool
    first: np.ndarray  # (h, w) bool: an independent estimate of the garment, for the gate's stability check
    leftover: float


@dataclass(frozen=True)
class HoleEvidence:
    """What tells a print from a hole: the distance from the backdrop model and the local texture, with the
    levels the backdrop itself shows."""

    distance: np.ndarray
    distance_level: float
    texture: np.ndarray
    texture_level: float

    def is_fabric(self, where: np.ndarray, texture_ratio: float) -> bool:
        off_backdrop = float(np.median(self.distance[where])) > self.distance_level
        textured = float(np.median(self.texture[where])) > texture_ratio * self.texture_level
        return off_backdrop or textured


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.clip(rgb, 0.0, 255.0).astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _largest_components(mask: np.ndarray, min_frac: float, reach: int = 0) -> np.ndarray:
    """The components of ``mask`` at least ``min_frac`` of the largest one. With ``reach``, fragments within
    ``reach`` pixels of each other count as one (the stripes of a garment whose other stripes are the
    backdrop's colour); crumbs under 0.2 % of the largest group are dropped."""
    m8 = mask.astype(np.uint8)
    grouped = cv2.dilate(m8, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) if reach else m8
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, dtype=bool)
    if reach:
        areas = np.bincount(labels[mask], minlength=n).astype(np.float64)  # pixels of the mask per group
        areas[0] = 0
    else:
        areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
        areas[0] = 0
    keep = areas >= min_frac * areas.max()
    keep[0] = False
    out = keep[labels] & mask
    if reach:
        n2, labels2, stats2, _ = cv2.connectedComponentsWithStats(out.astype(np.uint8), connectivity=8)
        if n2 > 1:
            big = stats2[:, cv2.CC_STAT_AREA] >= 0.002 * areas.max()
            big[0] = False
            out = big[labels2]
    return out


class StudioEngine(Engine):
    """Ghost packshots from plain-backdrop studio photos, CPU only."""

    name = "studio"
    modes = frozenset({"ghost"})

    def __init__(
        self, settings: StudioSettings | None = None, textured: TexturedSettings | None = None
    ) -> None:
        super().__init__()
        self.settings = settings or StudioSettings()
        self.textured = textured or TexturedSettings()
        self.backgrounds: list[str] = []
        self.segmenter: SegmentationStage | None = None  # the learned stage, when its weights are loaded

    def load(self, model_dir: Path) -> None:
        """Check the background library, load the learned segmentation stage when ``model_dir`` holds its weights
        (:func:`~modamoda_inference.segmentation.stage.shared_stage`; without them the engine needs none), and run
        the whole pipeline once on a small synthetic photo (imports, OpenCV and scipy code paths, the stage), so
        the first request is not slower than the others."""
        self.segmenter = shared_stage(model_dir)
        try:
            self.backgrounds = backgrounds.verify()
        except Exception:  # the engine still serves colours and transparency; library requests fail clearly
            self.backgrounds = []
        demo = np.full((120, 100, 3), 205, dtype=np.uint8)
        demo[30:100, 25:75] = (40, 60, 120)
        demo[20:34, 42:58] = (236, 234, 229)
        matte = self.matte(demo, mannequin=from_colour((236, 234, 229)))
        _, patch, _ = self.hollow(matte, Image.fromarray(demo))
        bbox = matte.bbox() or (0.0, 0.0, 100.0, 120.0)
        tiny = Preset("warm-up", 96, 96, 0.8, 0.05, "#FFFFFF")
        placement = plan_placement(bbox, matte.source_size, tiny, pad=2.0)
        subject = Subject(matte.alpha, matte.behind, matte.mannequin_like, patch)
        render(demo, subject, placement, tiny, (255, 255, 255), "contact")
        render(demo, subject, placement, tiny, None, "drop")
        if self.segmenter is not None:
            self.segmenter.segment(demo, matte.subject if matte.subject is not None else matte.alpha > 0.5)
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
        """CIELAB distance from the backdrop, where being darker counts at ``shadow_weight`` up to the depth
        of a studio shadow (``shadow_depth`` of the backdrop's lightness) and fully beyond: a soft shadow is
        not subject, a grey garment or mannequin on a white sweep is."""
        diff = lab - lab_bg
        d_l = diff[..., 0]
        knee = self.settings.shadow_depth * lab_bg[..., 0]
        dark = np.maximum(-d_l, 0.0)
        soft = np.minimum(dark, knee) * self.settings.shadow_weight + np.maximum(dark - knee, 0.0)
        d_l = np.where(d_l < 0.0, soft, d_l)
        return np.sqrt(d_l * d_l + diff[..., 1] ** 2 + diff[..., 2] ** 2)

    # -- matte --------------------------------------------------------------------------------------------

    def _mannequin_model(
        self, option: MannequinOption | MannequinModel | None, lab: np.ndarray, subject: np.ndarray
    ) -> MannequinModel | None:
        if option is None or option == "none":
            return None
        if isinstance(option, MannequinModel):
            return option
        if isinstance(option, MannequinColour):
            return from_colour(option.rgb, option.tolerance)
        if option == "auto":
            return detect_auto(lab, subject)
        raise ValueError(f"unknown mannequin option {option!r}")

    def _prepare(self, rgb: np.ndarray) -> _Working:
        """The working copy (~``work_long_side`` px, frame lines painted over with the inside's edge) as uint8
        and lightly blurred as float32, and the backdrop model fitted to its border: what both paths start from."""
        s = self.settings
        t0 = time.perf_counter()
        height, width = rgb.shape[:2]
        factor = min(1.0, s.work_long_side / max(height, width))
        ws, hs = max(8, round(width * factor)), max(8, round(height * factor))
        small = (
            cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA)
            if factor < 1.0
            else np.ascontiguousarray(rgb)
        )
        fy0, fy1, fx0, fx1 = inner_frame(_to_lab(small.astype(np.float32)))
        if (fy0, fy1, fx0, fx1) != (0, hs, 0, ws):  # frame lines: the inside's edge carried over them
            small = cv2.copyMakeBorder(
                np.ascontiguousarray(small[fy0:fy1, fx0:fx1]),
                fy0,
                hs - fy1,
                fx0,
                ws - fx1,
                cv2.BORDER_REPLICATE,
            )
        small_f = cv2.GaussianBlur(small.astype(np.float32), (0, 0), 1.0)
        backdrop = self.fit_backdrop(small_f)
        return _Working(small, small_f, backdrop, (width, height), (time.perf_counter() - t0) * 1e3)

    def matte(self, rgb: np.ndarray, *, mannequin: MannequinOption | MannequinModel | None = None) -> Matte:
        """Estimate the garment's matte of an (H, W, 3) uint8 RGB photo (see the module docstring)."""
        return self._backdrop_path(self._prepare(rgb), mannequin)

    def matte_textured(
        self, rgb: np.ndarray, *, mannequin: MannequinOption | MannequinModel | None = None
    ) -> Matte:
        """The garment's matte on a textured or coloured background (:mod:`modamoda_inference.textured`): the
        subject by GrabCut from the frame's border instead of the distance from a smooth backdrop model; then the
        same mannequin, hanger and edge stages as :meth:`matte`. ``first`` is the other start (another border
        strip, another resolution) that agrees least with the garment, minus the same forms: what the gate's
        stability check compares with."""
        return self._textured_path(self._prepare(rgb), mannequin)

    def matte_learned(
        self,
        rgb: np.ndarray,
        stage: SegmentationStage,
        *,
        mannequin: MannequinOption | MannequinModel | None = None,
    ) -> Matte:
        """The garment's matte by the learned segmentation stage (:mod:`modamoda_inference.engines.learned`)."""
        return learned_path(self, self._prepare(rgb), mannequin, stage, NO_GARMENT)

    def _backdrop_path(self, work: _Working, mannequin: MannequinOption | MannequinModel | None) -> Matte:
        s = self.settings
        small, backdrop = work.small, work.backdrop
        hs, ws = small.shape[:2]
        t1 = time.perf_counter()
        bg = backdrop.grid(ws, hs)
        lab = _to_lab(work.small_f)
        subject, evidence, (t_low, t_high) = self._subject(work, lab, bg)
        if float(subject.mean()) < s.min_garment_frac:
            raise NoGarmentFound(NO_GARMENT)
        t2 = time.perf_counter()
        sep = self._separate(small, lab, subject, mannequin, backdrop, evidence)
        t3 = time.perf_counter()
        matte = self._finish(small, bg, backdrop, subject, sep, (t_low, t_high), work.source_size)
        matte.timings_ms = {
            "backdrop": work.ms,
            "mask": (t2 - t1) * 1e3,
            "mannequin": (t3 - t2) * 1e3,
            "matting": (time.perf_counter() - t3) * 1e3,
        }
        return matte

    def _subject(
        self, work: _Working, lab: np.ndarray, bg: np.ndarray
    ) -> tuple[np.ndarray, HoleEvidence, tuple[float, float]]:
        """Steps 3-4: what is not backdrop (garment and mannequin), the hole evidence, and the (low, high)
        distance thresholds."""
        small, backdrop = work.small, work.backdrop
        d = self._distance(lab, _to_lab(bg))

        floor = max(3.0, 1.5 * backdrop.noise)
        d_max = max(float(np.percentile(d, 99.5)), 2.0 * floor)
        d8 = np.clip(d / d_max * 255.0, 0, 255).astype(np.uint8)
        otsu, _ = cv2.threshold(d8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        t_high = float(np.clip(otsu / 255.0 * d_max, 2.0 * floor, max(4.0 * floor, 24.0)))
        t_low = max(floor, 0.5 * t_high)

        subject = self._hysteresis(d > t_low, d > t_high)
        tex, tex_level = self._texture(small, subject)
        evidence = HoleEvidence(d, max(3.0, 2.5 * backdrop.noise), tex, tex_level)
        # the closing may bridge small defects, but not across what is clearly backdrop (a narrow gap
        # between a sleeve and the body)
        subject = self._clean(subject, allow=d > 0.6 * t_low, evidence=evidence)
        subject &= ~rectangular_insets(subject)
        return subject, evidence, (t_low, t_high)

    def _textured_path(self, work: _Working, mannequin: MannequinOption | MannequinModel | None) -> Matte:
        t0 = time.perf_counter()
        small, backdrop = work.small, work.backdrop
        hs, ws = small.shape[:2]
        lab = _to_lab(work.small_f)
        cut, others = textured_subject(small, self.textured)
        subject = self._clean(cut)
        if float(subject.mean()) < self.settings.min_garment_frac:
            raise NoGarmentFound(NO_GARMENT)
        t1 = time.perf_counter()
        sep = self._separate(small, lab, subject, mannequin, backdrop, None)
        # the gate's stability check compares with the start that agrees least
        checks = [self._clean(o) & ~sep.mannequin for o in others]
        sep.first = min(checks, key=lambda c: iou(sep.garment, c))
        t2 = time.perf_counter()
        matte = self._finish(
            small, backdrop.grid(ws, hs), backdrop, subject, sep, (0.0, 0.0), work.source_size
        )
        matte.path = "textured"
        matte.timings_ms = {
            "mask": (t1 - t0) * 1e3,
            "mannequin": (t2 - t1) * 1e3,
            "matting": (time.perf_counter() - t2) * 1e3,
        }
        return matte

    def _separate(
        self,
        small: np.ndarray,
        lab: np.ndarray,
        subject: np.ndarray,
        mannequin: MannequinOption | MannequinModel | None,
        backdrop: BackdropModel,
        evidence: HoleEvidence | None,
    ) -> _Separation:
        """The garment out of the subject: mannequin and forms taken out (and grown into their shaded side),
        figure and ground settled by a graph cut, thin hooks and poles removed, and what still looks like a form
        where forms leave garments measured (``leftover``)."""
        s = self.settings
        model = self._mannequin_model(mannequin, lab, subject)
        if model is not None and model.source == "sampled" and garment_colour(model, lab, subject):
            model = None  # the "neck" sampled was the garment's own colour (a collar, a hood)
        models = [model] if model is not None else []
        if mannequin == "auto":
            models += form_models(lab, subject)
            # a white or grey form on a backdrop of its own tone passes mostly for backdrop; what is left of it
            # (its shaded side under a hem, inside a collar) has the backdrop's colour at a lower lightness
            tone = MannequinModel(rgb_to_lab(backdrop.mean_rgb()), 12.0, "backdrop_tone")
            if not garment_colour(tone, lab, subject):
                models.append(tone)
        mann = np.zeros_like(subject)
        for m in models:
            mann |= mannequin_mask(lab, subject, m)
        mann = grow_form(lab, subject, mann, models)
        mann_like = mann.copy()
        for m in models:
            # a mannequin close to the backdrop's colour partly passes for backdrop: for the hollow, it counts
            mann_like |= ~subject & (m.distance(lab) < m.tolerance)
        garment = subject & ~mann
        if mann.any():
            # slivers where the mannequin met the backdrop (mixed colours) go with the mannequin
            near = cv2.dilate(mann.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
            opened = (
                cv2.morphologyEx(
                    garment.astype(np.uint8),
                    cv2.MORPH_OPEN,
                    cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)),
                )
                > 0
            )
            garment = np.where(near, opened, garment)
        first = self._clean(garment, fill_holes_in=~mann, evidence=evidence)
        if s.graph_cut and garment.any():
            sure_not = cv2.erode(mann.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            garment = graph_cut(small, garment, not_garment=sure_not) & ~sure_not
        garment &= ~thin_structures(garment)
        garment = self._clean(garment, fill_holes_in=~mann, evidence=evidence)
        leftover = left_over(lab, garment, on_form=bool(models))
        if float(garment.mean()) < s.min_garment_frac:
            raise NoGarmentFound(
                "We could only find the mannequin in this photo, not a garment on it. If the garment is the same "
                "colour as the mannequin, please choose no mannequin setting or use a mannequin of another "
                "colour. Nothing was charged."
            )
        return _Separation(model, mann, mann_like, garment, first, leftover)

    def _finish(
        self,
        small: np.ndarray,
        bg: np.ndarray,
        backdrop: BackdropModel,
        subject: np.ndarray,
        sep: _Separation,
        thresholds: tuple[float, float],
        source_size: tuple[int, int],
    ) -> Matte:
        """Soft edge by matting on a band around the garment's edge, and the colour behind that edge."""
        s = self.settings
        garment, mann = sep.garment, sep.mannequin
        small_unit = small.astype(np.float32) / 255.0
        # where the garment meets the mannequin the mask's edge is less sure: widen the band both ways
        near_mannequin = None
        if mann.any():
            k = np.ones((2 * s.matting_band + 3,) * 2, np.uint8)
            reach = cv2.dilate(garment.astype(np.uint8), k) > 0
            near_mannequin = (reach & mann) | (garment & (cv2.dilate(mann.astype(np.uint8), k) > 0))
        trimap = trimap_from_mask(
            garment, s.matting_band, inner=s.matting_inner, unknown_extra=near_mannequin
        )
        if s.matting:
            settings = MattingSettings(band=s.matting_band, epsilon=s.matting_epsilon)
            alpha = closed_form_alpha(small_unit, trimap, settings, initial=garment.astype(np.float32))
        else:
            alpha = cv2.GaussianBlur(garment.astype(np.float32), (0, 0), s.feather_sigma)
        if near_mannequin is not None:
            # no garment beyond the band on the mannequin's side (three colours in a window — garment,
            # mannequin, backdrop — can leave a faint alpha there); and no dust anywhere
            alpha[mann & ~near_mannequin] = 0.0
        alpha[alpha < 0.02] = 0.0
        behind = self._behind(small.astype(np.float32), trimap == 0.0, bg, garment)
        return Matte(
            alpha=alpha.astype(np.float32),
            source_size=source_size,
            backdrop=backdrop,
            thresholds=thresholds,
            coverage=float(garment.mean()),
            subject=subject,
            garment=garment,
            mannequin=mann,
            mannequin_like=sep.mannequin_like,
            mannequin_model=sep.model,
            behind=behind,
            small=small,
            first=sep.first,
            leftover=sep.leftover,
        )

    @staticmethod
    def _behind(
        small: np.ndarray, background: np.ndarray, bg_model: np.ndarray, garment: np.ndarray
    ) -> np.ndarray:
        """The colour behind the garment near its edge: the local mean of the nearest known-background pixels
        (backdrop or mannequin, whichever is next to that stretch of edge); the backdrop model elsewhere."""
        out = bg_model.copy()
        rows, cols = np.flatnonzero(garment.any(axis=1)), np.flatnonzero(garment.any(axis=0))
        if rows.size == 0:
            return out
        h, w = garment.shape
        y0, y1 = max(0, rows[0] - 16), min(h, rows[-1] + 17)
        x0, x1 = max(0, cols[0] - 16), min(w, cols[-1] + 17)
        crop = small[y0:y1, x0:x1]
        weight = background[y0:y1, x0:x1].astype(np.float32)
        count = cv2.boxFilter(weight, -1, (5, 5), normalize=False)
        total = cv2.boxFilter(crop * weight[..., None], -1, (5, 5), normalize=False)
        local = total / np.maximum(count, 1e-6)[..., None]
        valid = count >= 2.0
        if not valid.any():
            return out
        # every other pixel takes the value of the nearest valid one (within reach), else the backdrop model
        dist, labels = cv2.distanceTransformWithLabels(
            (~valid).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        ys, xs = np.nonzero(valid)
        index = np.zeros(int(labels.max()) + 1, np.int64)
        index[labels[ys, xs]] = ys * valid.shape[1] + xs
        nearest = local.reshape(-1, 3)[index[labels]].reshape(local.shape)
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = np.where(
            valid[..., None], local, np.where((dist <= 12.0)[..., None], nearest, region)
        )
        return out

    @staticmethod
    def _texture(small: np.ndarray, subject: np.ndarray) -> tuple[np.ndarray, float]:
        """Local texture (mean absolute Laplacian of the lightness, 5x5) and its level on the backdrop."""
        lum = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        tex = cv2.boxFilter(np.abs(cv2.Laplacian(lum, cv2.CV_32F)), -1, (5, 5))
        h, w = subject.shape
        b = max(2, round(0.03 * min(h, w)))
        border = np.zeros((h, w), bool)
        border[:b, :] = border[-b:, :] = True
        border[:, :b] = border[:, -b:] = True
        sample = tex[border & ~subject]
        level = float(np.median(sample)) if sample.size else float(np.median(tex))
        return tex, max(level, 0.5)

    @staticmethod
    def _hysteresis(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
        n, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
        if n <= 1:
            return np.zeros_like(weak)
        keep = np.zeros(n, dtype=bool)
        keep[np.unique(labels[strong & weak])] = True
        keep[0] = False
        return keep[labels]

    def _clean(
        self,
        mask: np.ndarray,
        allow: np.ndarray | None = None,
        fill_holes_in: np.ndarray | None = None,
        evidence: HoleEvidence | None = None,
    ) -> np.ndarray:
        """Open, close (not across clear backdrop), bridge stripes, keep the main component group, fill holes.

        Enclosed holes up to ``hole_fill_frac`` of the garment are filled; larger ones too when ``evidence``
        says they are not the backdrop seen through the garment: their colour is off the backdrop model by
        more than its noise, or they are textured like fabric (a print close to the backdrop's colour)."""
        s = self.settings
        m: np.ndarray = mask.astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        closed = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        m = closed if allow is None else (m | (closed & allow.astype(np.uint8)))
        if s.stripe_bridge:
            # bridge horizontal bands that look like backdrop between bands of garment above and below them
            # (white stripes on a white sweep); a gap open at the top or bottom (neck, crotch) is left alone
            k = max(3, round(s.stripe_bridge * max(m.shape)))
            m = np.maximum(m, cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((k, 1), np.uint8)))
        if fill_holes_in is not None:
            m &= fill_holes_in.astype(np.uint8)
        garment = _largest_components(m > 0, s.min_component_frac, reach=max(1, round(0.006 * max(m.shape))))
        if not garment.any():
            return garment

        # Fill enclosed holes (not reaching the border) up to a share of the garment's area.
        n_h, holes, h_stats, _ = cv2.connectedComponentsWithStats((~garment).astype(np.uint8), connectivity=4)
        if n_h > 1:
            touches = np.zeros(n_h, dtype=bool)
            for edge in (holes[0, :], holes[-1, :], holes[:, 0], holes[:, -1]):
                touches[np.unique(edge)] = True
            small_hole = h_stats[:, cv2.CC_STAT_AREA] <= s.hole_fill_frac * garment.sum()
            if evidence is not None:
                for label in np.flatnonzero(~touches & ~small_hole):
                    if label == 0:
                        continue
                    inside = holes == label
                    core = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
                    where = core if core.sum() >= 16 else inside
                    if evidence.is_fabric(where, s.print_texture_ratio):
                        small_hole[label] = True  # a print, not a hole
            fill = ~touches & small_hole
            fill[0] = False  # label 0 is the garment itself
            filled = fill[holes]
            if fill_holes_in is not None:
                filled &= fill_holes_in
            garment = garment | filled
        return garment

    def cutout(
        self,
        rgb: np.ndarray,
        *,
        mannequin: MannequinOption | MannequinModel | None = None,
        stage: SegmentationStage | None = None,
    ) -> Matte:
        """The garment's matte as a job gets it: segmentation, then the checks that refuse a photo the engine
        cannot make a sellable packshot of (raises a :class:`PhotoRefused`).

        With a learned segmentation ``stage`` the garment is the stage's (:mod:`modamoda_inference.engines.learned`),
        under the quality gate's learned checks; its refusals stand (no second try by colour).

        A photo the backdrop path refuses whose border is not a clean studio sweep gets a second try by the textured
        path (:meth:`matte_textured`), under the same checks and a stricter agreement of its starts (on
        a busy background the backdrop path's subject, and so its person check, is not to be trusted either); if
        that is refused too, the first refusal's message stands (a person found in the photo is the better
        message). A photo the backdrop path passes on such a border is also asked, without a mannequin option,
        whether the textured path's subject shows a person: a busy street can hide the skin at the edge of the
        backdrop path's subject."""
        work = self._prepare(rgb)
        if stage is not None:
            return self._checked(learned_path(self, work, mannequin, stage, NO_GARMENT), mannequin)
        try:
            matte = self._checked(self._backdrop_path(work, mannequin), mannequin)
        except PhotoRefused as refusal:
            if work.backdrop.noise <= SWEEP_NOISE:
                raise
            try:
                return self._checked(self._textured_path(work, mannequin), mannequin)
            except PersonInPhoto:
                raise
            except PhotoRefused:
                raise refusal from None
        if mannequin in (None, "none") and work.backdrop.noise > SWEEP_NOISE:
            _refuse_person(work.small, self._clean(self._rect_subject(work)))
        return matte

    def _rect_subject(self, work: _Working) -> np.ndarray:
        """The subject by GrabCut from the textured path's first start (the frame inset, at its working size),
        without the backdrop model: what the person check's second opinion and the learned stage's prompts use
        where the backdrop is busy."""
        inset, side = self.textured.starts[0]
        return rect_cut(work.small, inset, side, self.textured.iterations)

    def _checked(self, matte: Matte, mannequin: MannequinOption | MannequinModel | None) -> Matte:
        """``matte`` after the person check and the quality gate (its verdict in ``matte.quality``)."""
        if matte.bbox() is None or matte.garment is None or matte.small is None:
            raise NoGarmentFound(NO_GARMENT)
        if mannequin in (None, "none") and matte.subject is not None and matte.path != "learned":
            # a seller who says "on a mannequin" (auto or its colour) has told us skin-coloured parts are a form
            # (the learned path has its own person check: CLIP names skin, face and hair)
            _refuse_person(matte.small, matte.subject)
        first = matte.first if matte.first is not None else matte.garment
        verdict = assess(
            matte.small,
            matte.garment,
            first,
            matte.backdrop.noise,
            matte.leftover,
            path=matte.path,
            naming=float(matte.learned.get("garment_probability", 1.0)),
            predicted_iou=float(matte.learned.get("predicted_iou", 1.0)),
        )
        matte.quality = verdict.as_dict()
        try:
            verdict.enforce()
        except LowConfidence as refusal:
            refusal.details.update({k: v for k, v in matte.learned.items() if k not in refusal.details})
            raise
        return matte

    # -- hollow -------------------------------------------------------------------------------------------

    def hollow(
        self, matte: Matte, inside: Image.Image | None = None, mannequin: MannequinOption | None = None
    ) -> tuple[Hollow, Patch | None, dict[str, Any]]:
        """The hollow and its fill (a patch in source coordinates), with metadata."""
        info: dict[str, Any] = {}
        mannequin_like = matte.mannequin_like if matte.mannequin_like is not None else matte.mannequin
        if matte.garment is None or mannequin_like is None or matte.small is None:
            return Hollow(np.zeros(matte.alpha.shape, bool), None, None), None, info
        found = find_hollow(matte.garment, mannequin_like)
        box = found.bbox()
        if box is None:
            return found, None, info
        x0, y0, x1, y1 = box
        fx, fy = matte.scale
        tone = inside_tone(matte.small.astype(np.float32), matte.garment, found)
        info["bbox"] = [round(x0 * fx), round(y0 * fy), round(x1 * fx), round(y1 * fy)]
        if inside is None:
            found.source = "tone"
            return found, Patch(tone, (x0 * fx, y0 * fy), fx), info

        # the inside photo: its own matte (same mannequin), aligned on the two garments' silhouettes
        inside_rgb = np.asarray(inside.convert("RGB") if inside.mode != "RGB" else inside)
        inside_matte = self.matte(inside_rgb, mannequin=matte.mannequin_model or mannequin)
        assert inside_matte.garment is not None
        a_work, score = align(matte.garment, inside_matte.garment)  # inside working px → main working px
        ifx, ify = inside_matte.scale
        step = 0.5  # the patch at twice the working resolution
        scale = fx * step
        px, py = x0 * fx, y0 * fy
        pw, ph = max(1, round((x1 - x0) / step)), max(1, round((y1 - y0) / step))
        # patch pixel → main source (continuous) → main working pixel → inside working pixel → inside source pixel
        p1 = np.array([[scale, 0.0, px + 0.5 * scale], [0.0, scale, py + 0.5 * scale], [0.0, 0.0, 1.0]])
        p2 = np.array([[1.0 / fx, 0.0, -0.5], [0.0, 1.0 / fy, -0.5], [0.0, 0.0, 1.0]])
        p3 = np.linalg.inv(np.vstack([a_work, [0.0, 0.0, 1.0]]))
        p4 = np.array([[ifx, 0.0, 0.5 * ifx - 0.5], [0.0, ify, 0.5 * ify - 0.5], [0.0, 0.0, 1.0]])
        to_work = p3 @ p2 @ p1
        colours = cv2.warpAffine(
            inside_rgb,
            (p4 @ to_work)[:2],
            (pw, ph),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        ).astype(np.float32)
        covered = cv2.warpAffine(
            inside_matte.alpha,
            to_work[:2],
            (pw, ph),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        tone_up = cv2.resize(tone, (pw, ph), interpolation=cv2.INTER_LINEAR)
        cov = np.clip(2.0 * covered - 1.0, 0.0, 1.0)[..., None]  # the inside photo's own soft edge: tone
        fill = colours * cov + tone_up * (1.0 - cov)
        found.source = "inside_photo"
        info.update(alignment_score=round(score, 3), inside_coverage=round(float(cov.mean()), 3))
        return found, Patch(fill, (px, py), scale), info

    # -- engine -------------------------------------------------------------------------------------------

    def resolve_background(self, request: InferenceRequest) -> tuple[Background, str]:
        opts = request.options
        preset = get_preset(opts.preset)
        kind = opts.background_kind
        if kind == "transparent":
            return None, "transparent"
        if kind == "library" and opts.library_id is not None:
            return backgrounds.render(
                opts.library_id, preset.width, preset.height
            ), f"library:{opts.library_id}"
        rgb = opts.background_rgb or preset.background_rgb
        return rgb, "#{:02X}{:02X}{:02X}".format(*rgb)

    def run(
        self, image: Image.Image, request: InferenceRequest, inside: Image.Image | None = None
    ) -> EngineResult:
        t0 = time.perf_counter()
        opts = request.options
        preset = get_preset(opts.preset)
        background, background_desc = self.resolve_background(request)  # unknown library ids fail first
        rgb = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
        stage = choose(opts.segmenter, self.segmenter)
        matte = self.cutout(rgb, mannequin=opts.mannequin, stage=stage)
        bbox = matte.bbox()
        assert bbox is not None  # cutout refuses a photo without a garment
        t1 = time.perf_counter()

        subject = Subject(alpha=matte.alpha, behind=matte.behind)
        hollow_meta: dict[str, Any] = {"source": "none"}
        if opts.hollow and matte.mannequin_like is not None and matte.mannequin_like.any():
            found, patch, info = self.hollow(matte, inside, opts.mannequin)
            if patch is not None:
                subject.hollow_alpha = found.soft()
                subject.hollow_rgb = patch
            hollow_meta = {"source": found.source, **info}
        elif inside is not None:
            hollow_meta = {"source": "none", "note": "inside_image ignored: no mannequin hollow to fill"}
        t2 = time.perf_counter()

        fx, fy = matte.scale
        pad = 3.0 * max(fx, fy) + 2.0
        placement = plan_placement(bbox, matte.source_size, preset, pad=pad)
        canvas = render(rgb, subject, placement, preset, background, opts.shadow)
        t3 = time.perf_counter()
        out = Image.fromarray(canvas, "RGBA" if canvas.shape[2] == 4 else "RGB")
        metadata = {
            "engine": self.name,
            "preset": preset.name,
            "background": background_desc,
            "shadow": opts.shadow,
            "bbox": [round(v, 1) for v in bbox],
            "canvas_bbox": list(placement.canvas_bbox),
            "scale": round(placement.scale, 4),
            "coverage": round(matte.coverage, 4),
            "backdrop": matte.backdrop.mean_hex(),
            "backdrop_noise": round(matte.backdrop.noise, 2),
            "thresholds": [round(t, 2) for t in matte.thresholds],
            "mannequin": matte.mannequin_model.describe() if matte.mannequin_model else None,
            "segmenter": {**stage.describe(), **matte.learned} if stage is not None else {"name": "studio"},
            "hollow": hollow_meta,
            "quality": matte.quality,
            "batch_metrics": batch_metrics(matte, rgb),
            "timings_ms": {
                **{k: round(v, 1) for k, v in matte.timings_ms.items()},
                "matte": round((t1 - t0) * 1e3, 1),
                "hollow": round((t2 - t1) * 1e3, 1),
                "composite": round((t3 - t2) * 1e3, 1),
            },
        }
        return EngineResult(image=out, metadata=metadata)


def _refuse_person(small: np.ndarray, subject: np.ndarray) -> None:
    """Raise :class:`PersonInPhoto` when ``subject`` shows someone wearing the garment."""
    evidence = person_evidence(small, subject)
    if has_person(evidence):
        raise PersonInPhoto(PERSON_MESSAGE, details={k: round(v, 3) for k, v in evidence.items()})


def batch_metrics(matte: Matte, rgb: np.ndarray) -> dict[str, float]:
    """Per-photo numbers the batch consistency check compares (see :mod:`modamoda_inference.batch`).

    ``scale``: sqrt of the garment bbox's share of the frame; ``centre_x`` / ``centre_y``: the bbox centre's
    offset from the frame centre (share of the frame); ``background_l``: the backdrop's lightness (L*, the
    background value); ``exposure_l``: the garment's median lightness (L*).
    """
    width, height = matte.source_size
    bbox = matte.bbox() or (0.0, 0.0, 0.0, 0.0)
    x0, y0, x1, y1 = bbox
    lab_bg = _to_lab(np.asarray(matte.backdrop.mean_rgb(), np.float32).reshape(1, 1, 3))[0, 0]
    small = matte.small if matte.small is not None else rgb
    garment = matte.alpha >= 0.99
    exposure = float(np.median(_to_lab(small.astype(np.float32))[..., 0][garment])) if garment.any() else 0.0
    return {
        "scale": round(float(np.sqrt(max(x1 - x0, 0) * max(y1 - y0, 0) / (width * height))), 4),
        "centre_x": round(((x0 + x1) / 2 - width / 2) / width, 4),
        "centre_y": round(((y0 + y1) / 2 - height / 2) / height, 4),
        "background_l": round(float(lab_bg[0]), 2),
        "exposure_l": round(exposure, 2),
    }
