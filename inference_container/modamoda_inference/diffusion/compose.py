"""Compositing: the original garment pixels (and the chosen background) go back over the generated picture.

``composite`` is the last step of both modes::

    base = w * generated + (1 - w) * background          # w: where the picture was generated (person / hollow)
    out  = a * garment   + (1 - a) * base                # a: the garment's alpha

Wherever the garment's alpha is exactly 1, the output pixel *is* the garment layer's pixel, bit for bit; wherever
neither the garment nor the generated region reaches, it is the background's pixel, bit for bit. Only the band
where an alpha is strictly between 0 and 1 (the garment's soft edge, the generated region's feathered rim) mixes.
Layers are uint8 RGB of one size; alphas float in [0, 1], snapped (:func:`snap`) so values within 1e-3 of 0 or 1
are exactly 0 or 1.
"""

from __future__ import annotations

import cv2
import numpy as np

SNAP = 1e-3


def snap(alpha: np.ndarray, eps: float = SNAP) -> np.ndarray:
    """float32 alpha with values within ``eps`` of 0 or 1 set to exactly 0 or 1 (resampling leaves 0.9999...)."""
    a = np.clip(alpha.astype(np.float32, copy=True), 0.0, 1.0)
    a[a >= 1.0 - eps] = 1.0
    a[a <= eps] = 0.0
    return a


def feather(mask: np.ndarray, band_px: float) -> np.ndarray:
    """A hard mask → an alpha that ramps over ``band_px`` pixels *outside* its edge (1 on and inside the mask)."""
    hard = mask.astype(bool)
    if band_px <= 0 or not hard.any():
        return hard.astype(np.float32)
    outside = cv2.distanceTransform((~hard).astype(np.uint8), cv2.DIST_L2, 5)
    return snap(np.clip(1.0 - outside / float(band_px), 0.0, 1.0))


def composite(
    generated: np.ndarray,
    garment: np.ndarray,
    garment_alpha: np.ndarray,
    background: np.ndarray,
    generated_weight: np.ndarray,
) -> np.ndarray:
    """The final picture (H, W, 3) uint8; see the module docstring for the exactness guarantees."""
    h, w = garment_alpha.shape
    for name, layer in (("generated", generated), ("garment", garment), ("background", background)):
        if layer.shape != (h, w, 3) or layer.dtype != np.uint8:
            raise ValueError(f"{name} layer must be ({h}, {w}, 3) uint8, got {layer.shape} {layer.dtype}")
    if generated_weight.shape != (h, w):
        raise ValueError(f"generated_weight must be ({h}, {w})")
    a = snap(garment_alpha)[..., None].astype(np.float64)
    g = snap(generated_weight)[..., None].astype(np.float64)
    base = g * generated + (1.0 - g) * background
    out = np.rint(a * garment + (1.0 - a) * base)
    result = np.clip(out, 0, 255).astype(np.uint8)
    # The exact regions are exact by construction (1*x + 0*y == x in floating point); say so explicitly too.
    full = a[..., 0] == 1.0
    result[full] = garment[full]
    bg = (a[..., 0] == 0.0) & (g[..., 0] == 0.0)
    result[bg] = background[bg]
    return result
