"""The textured path (:mod:`modamoda_inference.textured`): a garment on a rug-like background the backdrop path
refuses is cut out when the two graph-cut starts agree; a textured photo with nothing on it, and a plain photo
the backdrop path refuses, stay refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.errors import LowConfidence, NoGarmentFound, PhotoRefused
from modamoda_inference.quality import iou
from modamoda_inference.textured import rect_cut


def _rug(h: int = 300, w: int = 260, seed: int = 0) -> np.ndarray:
    """A woven rug: blotches of warm and blue tones at a few scales, and fibre noise (the border spreads tens of
    CIELAB units around any smooth model, as a real rug's does)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cell, amplitude, channels in ((6, 30.0, 1), (17, 25.0, 1), (9, 12.0, 3)):
        coarse = rng.normal(0, 1.0, (h // cell + 2, w // cell + 2, channels)).astype(np.float32)
        field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)
        img += amplitude * field
    img += np.array([165, 110, 85], np.float32) + rng.normal(0, 8.0, img.shape)
    return img


def _garment_mask(h: int = 300, w: int = 260) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[80:250, 70:190] = True  # body
    mask[80:150, 35:70] = True  # sleeves
    mask[80:150, 190:225] = True
    mask[70:80, 100:160] = True  # collar
    return mask


def _tee_on_rug(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    img = _rug(seed=seed)
    mask = _garment_mask()
    img[mask] = np.array([245, 245, 240], np.float32) + rng.normal(0, 2.0, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8), mask


def test_a_garment_on_a_rug_is_cut_out_by_the_textured_path() -> None:
    engine = StudioEngine()
    rgb, truth = _tee_on_rug()
    try:  # the backdrop path cannot be trusted on a rug: refused, or at best a busy-backdrop score
        first = engine._checked(engine.matte(rgb), None)
        pytest.fail(f"the backdrop path passed a rug photo: {first.quality}")
    except PhotoRefused:
        pass
    matte = engine.cutout(rgb)
    assert matte.path == "textured"
    assert matte.quality["path"] == "textured"
    assert "backdrop" not in matte.quality["checks"]
    assert matte.quality["score"] >= matte.quality["threshold"]
    assert iou(matte.full_resolution() >= 0.5, truth) >= 0.95


def test_a_rug_with_nothing_on_it_is_refused() -> None:
    rgb = np.clip(_rug(seed=3), 0, 255).astype(np.uint8)
    with pytest.raises(PhotoRefused) as info:
        StudioEngine().cutout(rgb)
    assert info.value.code in ("no_garment_found", "low_confidence")
    assert "Nothing was charged" in info.value.message


def test_a_plain_photo_the_backdrop_path_refuses_does_not_take_the_textured_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StudioEngine()

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the textured path ran on a plain backdrop")

    monkeypatch.setattr(engine, "matte_textured", forbidden)
    with pytest.raises(NoGarmentFound):
        engine.cutout(np.full((200, 200, 3), 230, np.uint8))


def test_when_both_paths_refuse_the_first_refusal_is_what_the_customer_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StudioEngine()
    rgb, _ = _tee_on_rug()

    def refuses(*args: object, **kwargs: object) -> None:
        raise LowConfidence("second path's message", details={})

    monkeypatch.setattr(engine, "matte_textured", refuses)
    with pytest.raises(PhotoRefused) as info:
        engine.cutout(rgb)
    assert info.value.message != "second path's message"


def test_rect_cut_is_deterministic_and_follows_the_garment() -> None:
    rgb, truth = _tee_on_rug(seed=5)
    a, b = rect_cut(rgb, 0.03), rect_cut(rgb, 0.03)
    assert np.array_equal(a, b)
    assert iou(a, truth) >= 0.9
