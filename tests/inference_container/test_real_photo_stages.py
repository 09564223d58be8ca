"""The stages added for real photos, each on a small scene drawn in the test: frame lines and insets, form
colour models and thin structures, the graph-cut refinement, the quality gate and the person check."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.errors import LowConfidence, NoGarmentFound, PersonInPhoto
from modamoda_inference.forms import form_models, narrow_below, thin_structures
from modamoda_inference.frame import inner_frame, rectangular_insets
from modamoda_inference.person import has_person, person_evidence
from modamoda_inference.quality import Quality, assess, edge_support, frame_contact
from modamoda_inference.refine import graph_cut

from tests.photo_scenes import person_photo, tee_photo


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _on_form(form=(250, 250, 248), backdrop: int = 200) -> np.ndarray:
    img = tee_photo(backdrop=backdrop).astype(np.float32)
    img[25:60, 88:112] = form  # neck above the collar
    img[200:235, 70:90] = form  # legs under the hem
    img[200:235, 110:130] = form
    return np.clip(img, 0, 255).astype(np.uint8)


def test_inner_frame_finds_a_thin_line_on_two_sides_and_nothing_on_a_clean_photo() -> None:
    img = tee_photo()
    assert inner_frame(_lab(img)) == (0, 240, 0, 200)
    framed = img.copy()
    framed[2:4, :] = 20  # a dark line near the top
    framed[:, 1:3] = 20  # and on the left
    y0, y1, x0, x1 = inner_frame(_lab(framed))
    assert 4 <= y0 <= 6
    assert 3 <= x0 <= 5
    assert (y1, x1) == (240, 200)


def test_a_garment_filling_the_frame_is_not_a_frame_line() -> None:
    img = np.full((120, 120, 3), 40, np.uint8)
    img[:, :] = (30, 60, 140)
    img[40:80, 40:80] = (220, 220, 220)
    assert inner_frame(_lab(img)) == (0, 120, 0, 120)


def test_rectangular_insets_are_removed_but_not_the_garment() -> None:
    subject = np.zeros((200, 200), bool)
    subject[0:50, 0:60] = True  # a pasted detail shot in the corner
    cv2.circle(subject.view(np.uint8), (120, 120), 60, 1, -1)
    out = rectangular_insets(subject)
    assert out[10, 10]
    assert not out[120, 120]


def test_form_models_find_a_white_form_and_not_the_garment_colour() -> None:
    img = _on_form()
    lab = _lab(img)
    subject = np.abs(img.astype(int) - 200).max(axis=2) > 15
    models = form_models(lab, subject)
    assert models, "the white neck and legs are a form"
    garment_lab = lab[150, 100]
    assert all(m.distance(garment_lab[None])[0] > m.tolerance for m in models)
    # a plain tee of one colour with nothing above or below: no form
    tee = tee_photo(backdrop=200)
    assert form_models(_lab(tee), np.abs(tee.astype(int) - 200).max(axis=2) > 15) == []


def test_thin_structures_take_a_hook_above_the_garment() -> None:
    garment = np.zeros((200, 200), bool)
    garment[60:190, 40:160] = True
    garment[20:60, 99:102] = True  # a hook wire
    thin = thin_structures(garment)
    assert thin[30, 100]
    assert not thin[120, 100]


def test_thin_structures_keep_a_camis_straps_and_take_a_wire_off_the_photo() -> None:
    garment = np.zeros((200, 200), bool)
    garment[60:190, 40:160] = True
    garment[20:60, 60:63] = True  # straps, off to the sides, ending in the picture
    garment[20:60, 137:140] = True
    garment[20:60, 99:102] = True  # and the hook it hangs from
    thin = thin_structures(garment)
    assert not thin[30, 61]
    assert not thin[30, 138]
    assert thin[30, 100]
    line = np.zeros((200, 200), bool)
    line[60:190, 40:160] = True
    for x in range(200):  # a clothes line sagging across the photo
        y = 30 + round(12 * (1 - ((x - 100) / 100) ** 2))
        line[y : y + 3, x] = True
    line[45:60, 60:63] = True  # pegs
    line[45:60, 137:140] = True
    thin = thin_structures(line)
    assert thin[31, 0]
    assert thin[31, 199]


def test_narrow_below_measures_legs_left_under_a_hem() -> None:
    garment = np.zeros((200, 200), bool)
    garment[20:150, 30:170] = True
    assert narrow_below(garment) == 0.0
    garment[150:190, 60:80] = True
    garment[150:190, 120:140] = True
    assert narrow_below(garment) > 0.2


def test_narrow_below_leaves_a_slanted_hem_alone() -> None:
    # a hat's cuff seen from the side: the hem runs down to the right, its lowest rows narrow and off-centre
    garment = np.zeros((200, 200), bool)
    garment[20:120, 30:170] = True
    for r in range(120, 180):
        garment[r, 30 + round(2.0 * (r - 120)) : 170] = True
    assert narrow_below(garment) < 0.03


def test_graph_cut_recovers_a_part_the_first_mask_missed() -> None:
    img = tee_photo(backdrop=236)
    truth = np.abs(img.astype(int) - 236).max(axis=2) > 15
    first = truth.copy()
    first[60:110, 150:175] = False  # a sleeve the first mask lost
    refined = graph_cut(img, first)
    assert refined[85, 162]
    assert (refined & ~truth).sum() < 0.02 * truth.sum()


def test_quality_checks_react_to_what_they_measure() -> None:
    img = tee_photo()
    garment = np.abs(img.astype(int) - 236).max(axis=2) > 15
    assert edge_support(img, garment) > 0.9
    shifted = np.roll(garment, 12, axis=1)  # an outline through plain fabric and plain backdrop
    assert edge_support(img, shifted) < 0.6
    assert frame_contact(garment) == 0.0
    filled = np.ones_like(garment)
    filled[:, -3:] = False
    assert frame_contact(filled) > 0.3
    good = assess(img, garment, garment, backdrop_noise=2.0, leftover=0.0)
    assert good.score == 1.0
    good.enforce()
    busy = assess(img, garment, garment, backdrop_noise=20.0, leftover=0.0)
    assert busy.weakest == "backdrop"
    assert busy.score < busy.threshold
    with pytest.raises(LowConfidence) as info:
        busy.enforce()
    assert info.value.details["threshold"] == busy.threshold
    assert "plain" in info.value.message
    assert "Nothing was charged" in info.value.message
    assert "{" not in info.value.message
    assert "_" not in info.value.message


def test_quality_as_dict_is_what_the_job_metadata_keeps() -> None:
    q = Quality(score=0.4, threshold=0.5, checks={"edges": 0.4, "frame": 1.0})
    assert q.as_dict() == {
        "score": 0.4,
        "threshold": 0.5,
        "checks": {"edges": 0.4, "frame": 1.0},
        "path": "backdrop",
    }


def test_person_check_sees_skin_where_the_garment_leaves_off() -> None:
    img = person_photo()
    subject = np.abs(img.astype(int) - 240).max(axis=2) > 20
    evidence = person_evidence(img, subject)
    assert has_person(evidence), evidence
    # a skin-coloured garment alone is not a person
    beige = tee_photo(colour=(205, 150, 120))
    subject = np.abs(beige.astype(int) - 236).max(axis=2) > 15
    assert not has_person(person_evidence(beige, subject))


def test_cutout_refuses_a_person_and_a_blank_photo_and_passes_a_packshot() -> None:
    engine = StudioEngine()
    with pytest.raises(PersonInPhoto) as info:
        engine.cutout(person_photo())
    assert "mannequin, on a hanger or laid flat" in info.value.message
    blank = np.full((200, 200, 3), 230, np.uint8)
    with pytest.raises(NoGarmentFound):
        engine.cutout(blank)
    matte = engine.cutout(tee_photo())
    assert matte.quality["score"] >= matte.quality["threshold"]
    assert set(matte.quality["checks"]) == {"backdrop", "frame", "edges", "stability", "leftover", "size"}


def test_cutout_removes_a_white_form_from_a_grey_backdrop() -> None:
    matte = StudioEngine().cutout(_on_form(), mannequin="auto")
    alpha = matte.alpha
    assert alpha[40, 100] < 0.5
    assert alpha[220, 80] < 0.5
    assert alpha[150, 100] > 0.5
    assert alpha[85, 37] > 0.5
