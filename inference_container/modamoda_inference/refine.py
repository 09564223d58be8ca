"""Figure and ground by graph cut: the first mask's evidence as seeds, colour models learned from the photo.

The first mask (distance from the backdrop model, :mod:`modamoda_inference.engines.studio`) is right where the
backdrop is plain and the garment's colour is far from it, and unsure elsewhere: a backdrop that is not one
smooth gradient (a wall above a sweep, a floor line), a garment close to the backdrop's colour, motifs of a
print that match it. GrabCut (Rother et al. 2004: Gaussian-mixture colour models of figure and ground, a
contrast-sensitive smoothness term, iterated graph cuts) settles those from the photo's own colours and edges,
started from what is sure:

* sure ground: the frame's border where it is backdrop, and whatever the caller knows is not garment
  (mannequin, stand, hanger, frame lines, insets);
* sure figure: the core of the first mask (eroded), minus those;
* probable figure / ground: the rest of the first mask / everything else.

It runs on a copy of at most ``max_side`` px (graph cuts grow faster than the pixel count) and the result is
resampled to the working size; the matting stage then settles the exact edge at full working resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class RefineSettings:
    max_side: int = 360  # graph-cut resolution (px, long side)
    iterations: int = 4
    core_erode: float = 0.025  # sure figure: the first mask eroded by this share of the long side
    border_frac: float = 0.02  # sure ground: this border strip, where the first mask says backdrop


def graph_cut(
    rgb: np.ndarray,
    first: np.ndarray,
    not_garment: np.ndarray | None = None,
    sure_garment: np.ndarray | None = None,
    settings: RefineSettings | None = None,
) -> np.ndarray:
    """The garment mask of an (h, w, 3) uint8 image, refined from the ``first`` bool mask; same size."""
    s = settings or RefineSettings()
    h, w = first.shape
    f = min(1.0, s.max_side / max(h, w))
    size = (max(8, round(w * f)), max(8, round(h * f)))

    def down(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5

    img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if f < 1.0 else rgb
    fg = down(first)
    if not fg.any() or fg.all():
        return first
    sh, sw = fg.shape
    k = max(1, round(s.core_erode * max(sh, sw)))
    core = cv2.erode(fg.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1,) * 2)) > 0
    mask = np.where(fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[core] = cv2.GC_FGD
    b = max(1, round(s.border_frac * min(sh, sw)))
    border = np.zeros((sh, sw), bool)
    border[:b] = border[-b:] = True
    border[:, :b] = border[:, -b:] = True
    mask[border & ~fg] = cv2.GC_BGD
    if sure_garment is not None:
        mask[down(sure_garment)] = cv2.GC_FGD
    if not_garment is not None:
        mask[down(not_garment)] = cv2.GC_BGD
    if not (mask == cv2.GC_FGD).any():
        mask[fg] = cv2.GC_FGD if not core.any() else mask[fg]
    if not ((mask == cv2.GC_BGD) | (mask == cv2.GC_PR_BGD)).any():
        return first
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # the colour models start from k-means: the same photo gives the same matte
    try:
        cv2.grabCut(  # type: ignore[call-overload]  # the stubs do not allow rect=None with a mask start
            np.ascontiguousarray(img[..., ::-1]), mask, None, bgd, fgd, s.iterations, cv2.GC_INIT_WITH_MASK
        )
    except cv2.error:
        return first  # degenerate colour models (a single colour): keep the first mask
    out = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
    if f < 1.0:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out >= 0.5
