"""Compositing keeps the garment's (and the background's) pixels bit for bit where the masks say so."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from modamoda_inference.diffusion.compose import composite, feather, snap


def layers(seed: int, h: int = 96, w: int = 80) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    generated, garment, background = (rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(3))
    core = np.zeros((h, w), np.uint8)
    cv2.ellipse(core, (w // 2, h // 2), (w // 4, h // 3), 0, 0, 360, 1, -1)
    alpha = cv2.GaussianBlur(core.astype(np.float32), (0, 0), 1.5)
    alpha[core > 0] = np.maximum(alpha[core > 0], 0.0)
    alpha = np.where(cv2.erode(core, np.ones((5, 5), np.uint8)) > 0, 1.0, alpha).astype(np.float32)
    region = np.zeros((h, w), bool)
    region[h // 8 : h - h // 8, w // 8 : w - w // 8] = True
    weight = feather(region, 4.0)
    return generated, garment, alpha, background, weight


@pytest.mark.parametrize("seed", range(5))
def test_garment_and_background_pixels_are_exact(seed: int) -> None:
    generated, garment, alpha, background, weight = layers(seed)
    out = composite(generated, garment, alpha, background, weight)
    a, g = snap(alpha), snap(weight)
    core = a == 1.0
    outside = (a == 0.0) & (g == 0.0)
    assert core.sum() > 500
    assert outside.sum() > 500
    assert np.array_equal(out[core], garment[core])  # bit for bit
    assert np.array_equal(out[outside], background[outside])
    inside_only = (a == 0.0) & (g == 1.0)
    assert np.array_equal(out[inside_only], generated[inside_only])
    band = (a > 0.0) & (a < 1.0)
    assert band.any()
    lo = np.minimum(garment, np.minimum(generated, background)).astype(int)
    hi = np.maximum(garment, np.maximum(generated, background)).astype(int)
    assert np.all(out[band] >= lo[band])  # the band is a blend of the layers, nothing else
    assert np.all(out[band] <= hi[band])


def test_snap_and_feather() -> None:
    a = np.array([0.0, 0.0004, 0.5, 0.9995, 1.0, 1.2, -0.1], np.float32)
    assert snap(a).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 0.0]
    mask = np.zeros((21, 21), bool)
    mask[8:13, 8:13] = True
    f = feather(mask, 3.0)
    assert np.all(f[mask] == 1.0)
    assert f[10, 14] > 0.0  # ramps outside the edge
    assert f[10, 17] == 0.0
    assert feather(np.zeros((4, 4), bool), 3.0).max() == 0.0


def test_layers_must_agree() -> None:
    generated, garment, alpha, background, weight = layers(0)
    with pytest.raises(ValueError, match="generated layer must be"):
        composite(generated[:10], garment, alpha, background, weight)
    with pytest.raises(ValueError, match="garment layer must be"):
        composite(generated, garment.astype(np.float32), alpha, background, weight)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="generated_weight"):
        composite(generated, garment, alpha, background, weight[:5])
