"""Mannequins in studio photos: a colour model (given, chroma-key, or sampled) and the mannequin's mask.

A mannequin is found by colour among the pixels that are not backdrop: its distance in CIELAB with lightness
counted at 40 % (so the shading of a three-dimensional form is tolerated) below a tolerance. Only connected
regions of that colour that touch the backdrop (or the frame) are mannequin: the neck above the collar, what
shows through the neck opening, the shoulders beside the straps, the torso below the hem and the stand's pole
all do; a print of the same colour in the middle of the garment does not.

``auto`` looks for a chroma-key mannequin first (saturated green or blue, as bright as a key colour) and
otherwise samples the colour of a narrow, centred protrusion at the top of the subject (a mannequin's neck)
when it differs clearly from the garment's body. Both refuse a "mannequin" that would take most of the
subject (that is the garment).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

L_WEIGHT = 0.4
DEFAULT_TOLERANCE = 14.0
MAX_SHARE = 0.7  # a mannequin never covers more than this share of the subject


@dataclass(frozen=True)
class MannequinModel:
    lab: tuple[float, float, float]
    tolerance: float
    source: str  # "given", "chroma", "sampled", "form", "backdrop_tone"
    # lightness counts at this weight (a coloured form's shading is tolerated; a grey form beside a charcoal
    # garment differs in lightness only, so a neutral form sampled from the photo counts it more)
    l_weight: float = L_WEIGHT

    def distance(self, lab: np.ndarray) -> np.ndarray:
        ref = np.asarray(self.lab, np.float32)
        d = lab - ref
        return np.sqrt((self.l_weight * d[..., 0]) ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2)

    def rgb_hex(self) -> str:
        lab = np.asarray(self.lab, np.float32).reshape(1, 1, 3)
        rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)[0, 0]
        r, g, b = (int(np.clip(round(float(v) * 255.0), 0, 255)) for v in rgb)
        return f"#{r:02X}{g:02X}{b:02X}"

    def describe(self) -> dict[str, object]:
        return {"colour": self.rgb_hex(), "tolerance": round(self.tolerance, 1), "source": self.source}


def rgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    arr = np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0
    lab = cv2.cvtColor(arr, cv2.COLOR_RGB2Lab)[0, 0]
    return float(lab[0]), float(lab[1]), float(lab[2])


def from_colour(rgb: tuple[int, int, int], tolerance: float | None = None) -> MannequinModel:
    return MannequinModel(rgb_to_lab(rgb), float(tolerance or DEFAULT_TOLERANCE), "given")


def _outside(fg: np.ndarray) -> np.ndarray:
    """Pixels within 4 px of the backdrop (edges of the subject are mixed colours) or of the frame."""
    near = cv2.dilate((~fg).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    near[0, :] = near[-1, :] = True
    near[:, 0] = near[:, -1] = True
    return near


def _touching_components(candidates: np.ndarray, touch: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(candidates.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(candidates.shape, bool)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[touch & candidates])] = True
    keep[0] = False
    keep &= stats[:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def _spread_tolerance(dist: np.ndarray, lo: float = 8.0, hi: float = 22.0) -> float:
    return (
        float(np.clip(1.6 * float(np.percentile(dist, 90)) + 3.0, lo, hi)) if dist.size else DEFAULT_TOLERANCE
    )


def detect_chroma(lab: np.ndarray, fg: np.ndarray) -> MannequinModel | None:
    """A chroma-key (green or blue) mannequin touching the backdrop, if there is one."""
    big_l = lab[..., 0]
    a, b = lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)
    hue = (np.degrees(np.arctan2(b, a)) + 360.0) % 360.0
    key = (
        fg
        & (chroma >= 45.0)
        & (big_l >= 30.0)
        & (((hue >= 105) & (hue <= 185)) | ((hue >= 250) & (hue <= 310)))
    )
    key = cv2.morphologyEx(key.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    n_fg = int(fg.sum())
    if n_fg == 0 or key.sum() < max(40, 0.003 * n_fg):
        return None
    region = _touching_components(key, _outside(fg), max(40, int(0.003 * n_fg)))
    if not region.any() or region.sum() > MAX_SHARE * n_fg:
        return None
    values = lab[region]
    ref = np.median(values, axis=0)
    model = MannequinModel((float(ref[0]), float(ref[1]), float(ref[2])), DEFAULT_TOLERANCE, "chroma")
    return MannequinModel(model.lab, _spread_tolerance(model.distance(values), 10.0, 24.0), "chroma")


def detect_neck(lab: np.ndarray, fg: np.ndarray) -> MannequinModel | None:
    """The colour of a narrow, centred protrusion at the top of the subject when it is not the garment's."""
    rows = np.flatnonzero(fg.any(axis=1))
    cols = np.flatnonzero(fg.any(axis=0))
    if rows.size < 20 or cols.size < 20:
        return None
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    height, width = r1 - r0, c1 - c0
    band = fg[r0 : r0 + max(3, round(0.05 * height))]
    widths = band.sum(axis=1)
    if float(np.median(widths)) > 0.35 * width:
        return None
    xs = np.nonzero(band)[1]
    if abs(float(xs.mean()) - (c0 + c1) / 2.0) > 0.15 * width:
        return None
    inner = cv2.erode(fg.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    top = inner[r0 : r0 + max(3, round(0.05 * height))]
    if top.sum() < 20:
        return None
    neck = lab[r0 : r0 + top.shape[0]][top]
    body_rows = slice(r0 + round(0.35 * height), r0 + round(0.65 * height))
    body = lab[body_rows][inner[body_rows]]
    if body.size == 0:
        return None
    ref = np.median(neck, axis=0)
    model = MannequinModel((float(ref[0]), float(ref[1]), float(ref[2])), DEFAULT_TOLERANCE, "sampled")
    if float(np.median(model.distance(body))) < 18.0:
        return None  # the top is the garment's own colour (a hood, a strap, a waistband)
    return MannequinModel(model.lab, _spread_tolerance(model.distance(neck)), "sampled")


def detect_auto(lab: np.ndarray, fg: np.ndarray) -> MannequinModel | None:
    return detect_chroma(lab, fg) or detect_neck(lab, fg)


def mannequin_mask(lab: np.ndarray, fg: np.ndarray, model: MannequinModel) -> np.ndarray:
    """The mannequin's pixels among ``fg``: its colour, connected to the backdrop or the frame."""
    candidates = fg & (model.distance(lab) < model.tolerance)
    n_fg = int(fg.sum())
    region = _touching_components(candidates, _outside(fg), max(20, int(0.0005 * n_fg)))
    if n_fg and region.sum() > MAX_SHARE * n_fg:
        return np.zeros(fg.shape, bool)  # that colour is the garment's: refuse rather than erase it
    # the shaded rim of the mannequin (mixed with the backdrop) goes with it
    grown = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    loose = fg & (model.distance(lab) < 1.6 * model.tolerance)
    return region | (grown & loose)
