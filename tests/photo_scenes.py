"""Photos drawn in code for tests of several packages: a tee on a plain backdrop or on a rug, someone wearing a
tee (no photo files are shipped)."""

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


def tee_photo(
    h: int = 240, w: int = 200, backdrop: int = 236, colour=(200, 30, 60), rng_seed: int = 0
) -> np.ndarray:
    """A tee (body and sleeves) of one colour on a plain backdrop, uint8 RGB."""
    rng = np.random.default_rng(rng_seed)
    img = np.full((h, w, 3), backdrop, np.float32)
    img[60:200, 50:150] = colour  # body
    img[60:110, 25:50] = colour  # sleeves
    img[60:110, 150:175] = colour
    img += rng.normal(0, 1.5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def person_photo(rng_seed: int = 0) -> np.ndarray:
    """Someone wearing a navy tee on a plain light backdrop: neck and chin cut by the frame's top, bare arms."""
    rng = np.random.default_rng(rng_seed)
    img = np.full((240, 200, 3), 240, np.float32)
    skin = np.array([205, 150, 120], np.float32)
    img[0:60, 80:120] = skin  # neck and chin, cut by the frame's top
    img[60:200, 50:150] = (20, 30, 60)  # a navy tee
    img[60:100, 25:50] = (20, 30, 60)
    img[60:100, 150:175] = (20, 30, 60)
    img[100:180, 28:46] = skin  # arms below the sleeves
    img[100:180, 154:172] = skin
    img += rng.normal(0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
