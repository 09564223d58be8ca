"""Photos drawn in code for tests of several packages: a garment on a textured background (no photo files are
shipped)."""

from __future__ import annotations

import cv2
import numpy as np


def rug(h: int = 300, w: int = 260, seed: int = 0) -> np.ndarray:
    """A woven rug, float32 RGB: blotches of warm and blue tones at a few scales and fibre noise, so the border
    spreads tens of CIELAB units around any smooth backdrop model, as a real rug's does."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cell, amplitude, channels in ((6, 30.0, 1), (17, 25.0, 1), (9, 12.0, 3)):
        coarse = rng.normal(0, 1.0, (h // cell + 2, w // cell + 2, channels)).astype(np.float32)
        field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)
        img += amplitude * field
    img += np.array([165, 110, 85], np.float32) + rng.normal(0, 8.0, img.shape)
    return img


def tee_mask(h: int = 300, w: int = 260) -> np.ndarray:
    """A tee's silhouette (body, sleeves, collar) for a ``h`` x ``w`` photo drawn at 300 x 260."""
    mask = np.zeros((300, 260), np.uint8)
    mask[80:250, 70:190] = 1  # body
    mask[80:150, 35:70] = 1  # sleeves
    mask[80:150, 190:225] = 1
    mask[70:80, 100:160] = 1  # collar
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0


def tee_on_rug(seed: int = 0, h: int = 300, w: int = 260) -> tuple[np.ndarray, np.ndarray]:
    """An off-white tee laid on a rug: (uint8 RGB photo, the tee's true mask)."""
    rng = np.random.default_rng(seed + 1)
    img = rug(h, w, seed=seed)
    mask = tee_mask(h, w)
    img[mask] = np.array([245, 245, 240], np.float32) + rng.normal(0, 2.0, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8), mask
