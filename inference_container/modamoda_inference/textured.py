"""The garment on a textured or coloured background: a rug, a wooden floor, a patterned sheet, a painted door.

The studio engine's first path models the backdrop as one smooth colour gradient fitted to the photo's border
and takes as subject what is far from it. On a rug or a wood floor that model is wrong everywhere (the border's
colours spread tens of CIELAB units around it), so that path finds nothing or finds the floor's pattern.

What still holds there: the garment lies inside the frame and the background runs all along the border. GrabCut
(Rother et al. 2004) started from a rectangle learns the background's colours as a Gaussian mixture from the
frame's border strip, whatever its texture, and the garment's from the inside, and settles the outline on the
photo's edges. It is run from several starts (two border strips, and a second resolution); where the background
is really told apart from the garment the runs agree, and where they do not the engine does not trust either (the
quality gate refuses the photo with a message saying how to reshoot). This path is only taken for a photo the
first path refused and whose border is not a clean studio sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TexturedSettings:
    iterations: int = 5
    # the starts: (border strip as a share of each side, graph-cut resolution in px on the long side); the first
    # gives the subject, the others check it — another strip, and another resolution (GrabCut's result can swing
    # with either)
    starts: tuple[tuple[float, int], ...] = ((0.03, 400), (0.07, 400), (0.05, 300))


def rect_cut(rgb: np.ndarray, inset: float, max_side: int = 400, iterations: int = 5) -> np.ndarray:
    """The figure inside a border strip of ``inset`` (share of each side) of an (h, w, 3) uint8 RGB image, by
    GrabCut started from that rectangle on a copy of at most ``max_side`` px; (h, w) bool."""
    h, w = rgb.shape[:2]
    f = min(1.0, max_side / max(h, w))
    size = (max(8, round(w * f)), max(8, round(h * f)))
    img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if f < 1.0 else rgb
    sw, sh = size
    mx, my = max(1, round(inset * sw)), max(1, round(inset * sh))
    mask = np.zeros((sh, sw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # the colour models start from k-means: the same photo gives the same cut
    try:
        cv2.grabCut(
            np.ascontiguousarray(img[..., ::-1]),
            mask,
            (mx, my, sw - 2 * mx, sh - 2 * my),
            bgd,
            fgd,
            iterations,
            cv2.GC_INIT_WITH_RECT,
        )
    except cv2.error:  # one colour everywhere: nothing to tell apart
        return np.zeros((h, w), bool)
    out = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
    if f < 1.0:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out >= 0.5


def textured_subject(
    rgb: np.ndarray, settings: TexturedSettings | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The subject (garment and whatever it is on) from the first start, and the other starts' to check it."""
    s = settings or TexturedSettings()
    cuts = [rect_cut(rgb, inset, side, s.iterations) for inset, side in s.starts]
    return cuts[0], cuts[1:]
