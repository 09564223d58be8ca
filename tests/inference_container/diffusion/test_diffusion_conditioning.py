"""Garment segmentation and the on-model / ghost layouts the pipeline is conditioned on."""

from __future__ import annotations

import numpy as np
import pytest
from modamoda_inference import poses
from modamoda_inference.diffusion.conditioning import (
    body_scale,
    cut_out,
    ghost_layout,
    on_model_layout,
    place,
)
from modamoda_inference.errors import NoGarmentFound
from modamoda_inference.schemas import MannequinColour


def test_cut_out_finds_the_garment(garment_rgb: np.ndarray) -> None:
    cut = cut_out(garment_rgb)
    x0, y0, x1, y1 = cut.bbox
    assert (x0, y0) == pytest.approx((8, 72), abs=4)  # the polygon's box, scaled to 300 x 360
    assert (x1, y1) == pytest.approx((292, 342), abs=4)
    assert cut.alpha.shape == garment_rgb.shape[:2]
    assert cut.alpha.max() == 1.0
    assert cut.meta["segmentation"] == "studio"
    with pytest.raises(NoGarmentFound):
        cut_out(np.full((120, 100, 3), 200, np.uint8))


def test_place_at_scale_one_keeps_the_photo_pixels(garment_rgb: np.ndarray) -> None:
    cut = cut_out(garment_rgb)
    x0, y0 = int(cut.bbox[0]), int(cut.bbox[1])
    rgb, alpha, _ = place(cut, 1.0, 10, 20, 400, 400)
    core = alpha == 1.0
    ys, xs = np.nonzero(core)
    assert ys.size > 1000
    assert np.array_equal(rgb[ys, xs], garment_rgb[ys - 20 + y0, xs - 10 + x0])


def test_on_model_layout(garment_rgb: np.ndarray) -> None:
    cut = cut_out(garment_rgb)
    pose = poses.load("front-relaxed")
    background = np.full((512, 384, 3), (200, 190, 180), np.uint8)
    layers = on_model_layout(cut, pose, background, control=poses.render(pose, 384, 512))
    mask = layers.mask > 0
    core = layers.garment_core()
    assert not (mask & core).any()  # the solid garment is never repainted
    assert (layers.generate[mask] > 0).all()  # the mask stays inside the person region
    assert 0.05 < mask.mean() < 0.6
    outside = (layers.generate == 0) & (layers.garment_alpha == 0)
    assert np.array_equal(layers.init_image[outside], background[outside])
    assert np.array_equal(layers.init_image[core], layers.garment[core])
    # the garment hangs from the neck, centred on it
    fitted = pose.fit(384, 512)
    _, _, neck = body_scale(fitted)
    ys, xs = np.nonzero(core)
    assert abs(xs.mean() - neck[0]) < 12
    assert ys.min() < neck[1] + 10 < ys.max()
    assert layers.control is not None
    assert layers.control.shape == (512, 384, 3)
    assert layers.reference is not None
    assert layers.reference.size == (512, 512)


def test_upper_body_pose_has_no_legs(garment_rgb: np.ndarray) -> None:
    cut = cut_out(garment_rgb)
    background = np.zeros((256, 192, 3), np.uint8)
    full = on_model_layout(cut, poses.load("front-relaxed"), background)
    upper = on_model_layout(cut, poses.load("upper-body-front"), background)
    assert upper.placement["scale"] > full.placement["scale"]  # a closer view: a bigger garment


def test_ghost_layout_paints_only_the_hollow(mannequin_rgb: np.ndarray, mannequin_hex: str) -> None:
    cut = cut_out(mannequin_rgb, MannequinColour(color=mannequin_hex), want_hollow=True)
    assert cut.hollow is not None
    background = np.full((256, 256, 3), 255, np.uint8)
    layers = ghost_layout(cut, background, fill=0.8)
    mask = layers.mask > 0
    assert 0.002 < mask.mean() < 0.05
    assert not (mask & layers.garment_core()).any()
    ys, xs = np.nonzero(mask)
    gy, gx = np.nonzero(layers.garment_alpha > 0)
    assert abs(xs.mean() - gx.mean()) < 10  # the neck opening, at the top middle
    assert ys.mean() < gy.min() + 0.25 * (gy.max() - gy.min())
    # no mannequin given: nothing to paint
    plain = ghost_layout(cut_out(mannequin_rgb, want_hollow=True), background)
    assert not plain.mask.any()
