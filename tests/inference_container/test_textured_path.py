"""The textured path (:mod:`modamoda_inference.textured`): a garment on a rug-like background the backdrop path
refuses is cut out when the two graph-cut starts agree; a textured photo with nothing on it, and a plain photo
the backdrop path refuses, stay refused."""

from __future__ import annotations

import numpy as np
import pytest
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.errors import LowConfidence, NoGarmentFound, PersonInPhoto, PhotoRefused
from modamoda_inference.quality import iou
from modamoda_inference.textured import rect_cut

from tests.photo_scenes import person_photo, rug, tee_on_rug, tee_photo


def test_a_garment_on_a_rug_is_cut_out_by_the_textured_path() -> None:
    engine = StudioEngine()
    rgb, truth = tee_on_rug()
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
    rgb = np.clip(rug(seed=3), 0, 255).astype(np.uint8)
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

    monkeypatch.setattr(engine, "_textured_path", forbidden)
    with pytest.raises(NoGarmentFound):
        engine.cutout(np.full((200, 200, 3), 230, np.uint8))


def test_when_both_paths_refuse_the_first_refusal_is_what_the_customer_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StudioEngine()
    rgb, _ = tee_on_rug()

    def refuses(*args: object, **kwargs: object) -> None:
        raise LowConfidence("second path's message", details={})

    monkeypatch.setattr(engine, "_textured_path", refuses)
    with pytest.raises(PhotoRefused) as info:
        engine.cutout(rgb)
    assert info.value.message != "second path's message"


def test_rect_cut_is_deterministic_and_follows_the_garment() -> None:
    rgb, truth = tee_on_rug(seed=5)
    a, b = rect_cut(rgb, 0.03), rect_cut(rgb, 0.03)
    assert np.array_equal(a, b)
    assert iou(a, truth) >= 0.9


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_on_a_busy_border_the_textured_subject_is_asked_about_a_person_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = StudioEngine()
    # the backdrop path passing a photo of someone wearing the garment (its subject missed the skin, as on a
    # busy street): the textured path's subject is asked too, when the border is not a clean sweep
    monkeypatch.setattr(engine, "_checked", lambda matte, mannequin: matte)
    busy_person = _noisy(person_photo(), 9.0)
    assert engine._prepare(busy_person).backdrop.noise > 5.0
    with pytest.raises(PersonInPhoto):
        engine.cutout(busy_person)
    assert engine.cutout(busy_person, mannequin="auto").path == "backdrop"  # a form's skin tone is no person
    assert engine.cutout(_noisy(tee_photo(), 9.0)).path == "backdrop"
    clean_person = person_photo()
    assert engine._prepare(clean_person).backdrop.noise <= 5.0
    engine.cutout(clean_person)  # a clean sweep: the backdrop path's own person check is the one
