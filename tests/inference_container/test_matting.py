"""Closed-form matting on the band around a mask's edge."""

from __future__ import annotations

import cv2
import numpy as np
from modamoda_inference.matting import MattingSettings, closed_form_alpha, trimap_from_mask


def soft_disc(size: int = 120, radius: float = 35.0, blur: float = 1.5) -> np.ndarray:
    layer = np.zeros((size, size), np.uint8)
    cv2.circle(layer, (size * 8, size * 8), round(radius * 16), 255, -1, cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(layer.astype(np.float32) / 255.0, (0, 0), blur)


def test_trimap_band() -> None:
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    tri = trimap_from_mask(mask, 2, inner=3)
    assert set(np.unique(tri)) == {0.0, 0.5, 1.0}
    assert tri[20, 20] == 1.0
    assert tri[0, 0] == 0.0
    assert tri[20, 11] == 0.5  # inside the edge, within `inner`
    assert tri[20, 8] == 0.5  # outside, within `band`
    assert tri[20, 7] == 0.0
    extra = np.zeros_like(mask)
    extra[20, 20] = True
    assert trimap_from_mask(mask, 2, unknown_extra=extra)[20, 20] == 0.5


def test_recovers_a_soft_edge_better_than_the_mask() -> None:
    truth = soft_disc()
    rng = np.random.default_rng(0)
    fg, bg = np.array([0.15, 0.25, 0.55]), np.array([0.85, 0.85, 0.82])
    image = truth[..., None] * fg + (1 - truth[..., None]) * bg + rng.normal(0, 0.005, (120, 120, 3))
    mask = truth >= 0.5
    alpha = closed_form_alpha(
        image.astype(np.float32), trimap_from_mask(mask, 3), MattingSettings(epsilon=1e-5)
    )
    assert alpha.dtype == np.float32
    assert float(alpha.min()) >= 0.0
    assert float(alpha.max()) <= 1.0
    sad_mask = np.abs(mask - truth).sum()
    sad_matte = np.abs(alpha - truth).sum()
    assert sad_matte < 0.5 * sad_mask, (sad_matte, sad_mask)
    edge = (truth > 0.1) & (truth < 0.9)
    assert float(np.abs(alpha - truth)[edge].mean()) < 0.1


def test_no_unknowns_returns_the_trimap() -> None:
    tri = np.zeros((20, 20), np.float32)
    tri[5:15, 5:15] = 1.0
    out = closed_form_alpha(np.zeros((20, 20, 3), np.float32), tri)
    assert np.array_equal(out, tri)
