"""The ghost effect: where the mannequin showed through the neck opening, the garment is hollow.

From the garment's mask and the mannequin's mask (working resolution):

* the neck opening is the concavity of the garment's upper outline (between its upper convex hull and the
  outline itself) that holds the most mannequin, near the middle of the garment;
* the hollow is that concavity below a back neckline — the hull's chord between the two collar tips, sagging a
  little — that is not garment; mannequin pixels enclosed by the garment are hollow too. Everything else of the
  mannequin (the neck above the collar, the torso below the hem, the stand) is simply removed;
* the hollow is filled with the inside of the garment: a second photo (the inside / back of the neck, shot
  with the same set-up) aligned automatically onto the first — a similarity-initialised affine ECC on the two
  garments' silhouettes — or, without one, a darker "inside" tone sampled from the garment around the opening,
  lighter at the back collar and darker down towards the front neckline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Hollow:
    mask: np.ndarray  # (h, w) bool, working resolution
    tips: tuple[tuple[int, int], tuple[int, int]] | None  # collar tips (x, y), working pixels
    back_line: np.ndarray | None  # y of the back neckline for x in tips[0][0]..tips[1][0]
    source: str = "none"  # how it is filled: "inside_photo", "tone"
    alpha: np.ndarray | None = None  # (h, w) float32: the mask with an anti-aliased back neckline

    def soft(self) -> np.ndarray:
        base = self.alpha if self.alpha is not None else self.mask.astype(np.float32)
        return cv2.GaussianBlur(base, (0, 0), 0.6)

    def bbox(self) -> tuple[int, int, int, int] | None:
        rows, cols = np.flatnonzero(self.mask.any(axis=1)), np.flatnonzero(self.mask.any(axis=0))
        if rows.size == 0:
            return None
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _upper_hull(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """y of the upper convex hull (smallest y) of the points (xs, ys) at every x in xs (xs sorted, unique)."""
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    hull: list[np.ndarray] = []
    for p in pts:  # Andrew's monotone chain, the chain with the smallest y (image coordinates)
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    hx = np.array([h[0] for h in hull])
    hy = np.array([h[1] for h in hull])
    return np.interp(xs, hx, hy)


def find_hollow(garment: np.ndarray, mannequin: np.ndarray, *, sag: float = 0.08) -> Hollow:
    """The hollow left by the mannequin (see the module docstring); an empty mask when there is none."""
    h, w = garment.shape
    empty = Hollow(np.zeros((h, w), bool), None, None)
    if not mannequin.any() or not garment.any():
        return empty
    cols = np.flatnonzero(garment.any(axis=0))
    top = np.argmax(garment[:, cols], axis=0).astype(np.float64)
    hull = _upper_hull(cols.astype(np.float64), top)
    depth = top - hull
    concave = depth > 1.5
    gx0, gx1 = int(cols[0]), int(cols[-1])
    gw = max(gx1 - gx0, 1)

    best: tuple[int, int, int] | None = None  # (score, start index, end index) in cols
    i = 0
    n = cols.size
    while i < n:
        if not concave[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and concave[j + 1] and cols[j + 1] == cols[j] + 1:
            j += 1
        xa, xb = int(cols[i]), int(cols[j])
        centre = (xa + xb) / 2.0
        if abs(centre - (gx0 + gx1) / 2.0) <= 0.25 * gw and (xb - xa) >= 3:
            count = 0
            area = 0
            for k in range(i, j + 1):
                y0, y1 = int(np.ceil(hull[k])), int(top[k])
                if y1 > y0:
                    area += y1 - y0
                    count += int(mannequin[y0:y1, cols[k]].sum())
            if area and count >= 0.25 * area and (best is None or count > best[0]):
                best = (count, i, j)
        i = j + 1

    mask = np.zeros((h, w), bool)
    alpha = np.zeros((h, w), np.float32)
    tips = None
    back = None
    if best is not None:
        _, i, j = best
        xa, xb = int(cols[i]), int(cols[j])
        span = max(xb - xa, 1)
        t = (cols[i : j + 1] - xa) / span
        back = hull[i : j + 1] + sag * span * np.sin(np.pi * t)
        for k, x in enumerate(range(i, j + 1)):
            y_first, y1 = int(np.floor(back[k])), int(top[x])
            if y1 > y_first:
                mask[y_first + 1 : y1, cols[x]] = True
                alpha[y_first + 1 : y1, cols[x]] = 1.0
                alpha[y_first, cols[x]] = float(np.ceil(back[k]) - back[k]) or 1.0  # partly covered row
                mask[y_first, cols[x]] = True
        tips = ((xa - 1, round(float(hull[i]))), (xb + 1, round(float(hull[j]))))
    mask &= ~garment

    # mannequin enclosed by the garment (and the neck hollow) is hollow too
    closed = garment | mask
    n_h, holes = cv2.connectedComponents((~closed).astype(np.uint8), connectivity=4)
    if n_h > 1:
        touches = np.zeros(n_h, bool)
        for edge in (holes[0, :], holes[-1, :], holes[:, 0], holes[:, -1]):
            touches[np.unique(edge)] = True
        enclosed = ~touches[holes] & ~closed
        mask |= enclosed & mannequin
    if not mask.any():
        return empty
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    mask &= ~garment
    alpha = np.where(mask, np.maximum(alpha, (alpha == 0).astype(np.float32)), 0.0).astype(np.float32)
    # the hollow lies behind the garment: let it run a few pixels under the garment's soft edge, so no
    # background shows between the two
    under = (cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0) & garment
    alpha[under] = 1.0
    return Hollow(mask, tips, back, alpha=alpha)


def inside_tone(
    small_rgb: np.ndarray, garment: np.ndarray, hollow: Hollow, *, darkness: float = 0.58
) -> np.ndarray:
    """A synthetic inside-of-the-garment fill for the hollow: (h, w, 3) float32 over the hollow's bbox.

    The colour is the median of the garment around the opening, darkened; lighter along the back neckline (a
    collar band) and darker towards the front neckline.
    """
    box = hollow.bbox()
    if box is None:
        return np.zeros((0, 0, 3), np.float32)
    x0, y0, x1, y1 = box
    inner = cv2.erode(garment.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # away from mixed edges
    ring = (cv2.dilate(hollow.mask.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0) & inner
    samples = small_rgb[ring] if ring.sum() >= 20 else small_rgb[garment]
    base = np.median(samples.reshape(-1, 3), axis=0).astype(np.float32)
    sub = hollow.mask[y0:y1, x0:x1]
    hh = y1 - y0
    # depth within the hollow, column by column: 0 at its top (the back neckline), 1 at its bottom
    first = np.argmax(sub, axis=0).astype(np.float32)
    last = (hh - 1 - np.argmax(sub[::-1], axis=0)).astype(np.float32)
    rows = np.arange(hh, dtype=np.float32)[:, None]
    t = np.clip((rows - first[None, :]) / np.maximum(last - first, 1.0)[None, :], 0.0, 1.0)
    band = max(2.0, 0.06 * (x1 - x0))
    collar = np.clip(1.0 - (rows - first[None, :]) / band, 0.0, 1.0)
    factor = darkness * (1.15 - 0.35 * t) + 0.25 * collar
    tone = base[None, None, :] * np.clip(factor, 0.2, 1.0)[..., None]
    return cv2.GaussianBlur(tone.astype(np.float32), (0, 0), 0.8)


def align(
    main_subject: np.ndarray, inside_subject: np.ndarray, *, size: int = 256
) -> tuple[np.ndarray, float]:
    """An affine map (2x3) from the inside photo's working pixels to the main photo's, and the ECC score.

    Both arguments are garment masks at working resolution (the main one with its neck opening cut, the inside
    one usually without). The start is the similarity that matches their bounding boxes (width and top
    centre); ECC refines it on the blurred silhouettes.
    """

    def bbox(m: np.ndarray) -> tuple[float, float, float, float]:
        r, c = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        return float(c[0]), float(r[0]), float(c[-1] + 1), float(r[-1] + 1)

    ax0, ay0, ax1, _ = bbox(main_subject)
    bx0, by0, bx1, _ = bbox(inside_subject)
    s = (ax1 - ax0) / max(bx1 - bx0, 1.0)
    tx = (ax0 + ax1) / 2.0 - s * (bx0 + bx1) / 2.0
    ty = ay0 - s * by0
    init = np.array([[s, 0.0, tx], [0.0, s, ty]], np.float64)  # inside → main

    k_main = size / max(main_subject.shape)
    k_inside = size / max(inside_subject.shape)

    def small(m: np.ndarray, k: float) -> np.ndarray:
        hh, ww = m.shape
        out = cv2.resize(
            m.astype(np.float32), (max(8, round(ww * k)), max(8, round(hh * k))), interpolation=cv2.INTER_AREA
        )
        return cv2.GaussianBlur(out, (0, 0), 2.0)

    template = small(main_subject, k_main)
    moving = small(inside_subject, k_inside)
    # ECC's warp maps template (main, small) coordinates to input (inside, small) coordinates.
    full = np.vstack([init, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)
    scale_main = np.diag([1.0 / k_main, 1.0 / k_main, 1.0])  # main small → main full
    scale_inside = np.diag([k_inside, k_inside, 1.0])  # inside full → inside small
    warp = (scale_inside @ inv @ scale_main)[:2].astype(np.float32)
    try:
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 80, 1e-5)
        score, refined = cv2.findTransformECC(
            template, moving, warp, cv2.MOTION_AFFINE, criteria, np.ones_like(template, np.uint8), 5
        )
    except cv2.error:
        return init, 0.0
    w3 = np.vstack([np.asarray(refined, np.float64), [0.0, 0.0, 1.0]])
    # inside_small = W · main_small, so main = S_main⁻¹ · W⁻¹ · S_inside · inside (scale_main is S_main⁻¹)
    m = scale_main @ np.linalg.inv(w3) @ scale_inside
    return m[:2], float(score)
