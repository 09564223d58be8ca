"""The label logic of the segmentation stage (:mod:`modamoda_inference.segmentation.labels`): naming groups from
CLIP logits, and composing named segments into the garment (pure numpy, no models)."""

from __future__ import annotations

import numpy as np
import pytest
from modamoda_inference.segmentation import labels
from modamoda_inference.segmentation.labels import GROUPS, compose, group_probabilities
from modamoda_inference.segmentation.prompts import from_foreground


def named(group: str, sure: float = 0.9) -> np.ndarray:
    row = np.full(len(GROUPS), (1.0 - sure) / (len(GROUPS) - 1))
    row[GROUPS.index(group)] = sure
    return row


def rect(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_every_group_has_labels_and_prompts() -> None:
    present = {g for g, _ in labels.LABELS}
    assert present == set(GROUPS)
    assert len({label for _, label in labels.LABELS}) == len(labels.LABELS)
    assert labels.prompts("dress") == [t.format("dress") for t in labels.TEMPLATES]


def test_a_group_scores_by_its_best_label_not_by_how_many_labels_it_has() -> None:
    logits = np.zeros((1, len(labels.LABELS)))
    # every garment label mildly, one mannequin label strongly
    logits[0, GROUPS.index("garment") == labels.LABEL_GROUP] = 20.0
    logits[0, next(i for i, (g, _) in enumerate(labels.LABELS) if g == "mannequin")] = 24.0
    probs = group_probabilities(logits)
    assert probs.shape == (1, len(GROUPS))
    assert np.isclose(probs.sum(), 1.0)
    assert int(np.argmax(probs[0])) == GROUPS.index("mannequin")
    with pytest.raises(ValueError, match="logits"):
        group_probabilities(np.zeros((2, 3)))


def test_smaller_segments_decide_for_their_pixels() -> None:
    shape = (100, 80)
    whole = rect(shape, 10, 95, 10, 70)  # garment and the form's neck, named garment
    neck = rect(shape, 10, 25, 30, 50)  # the neck above the collar: touches the backdrop
    hook = rect(shape, 0, 12, 38, 42)  # a hanger's hook
    comp = compose([neck, whole, hook], np.stack([named("mannequin"), named("garment"), named("hanger")]))
    assert comp.names == ["mannequin", "garment", "hanger"]
    assert not comp.garment[15, 40]
    assert comp.mannequin[15, 40]
    assert not comp.garment[5, 40]
    assert comp.other[5, 40]
    assert comp.garment[60, 40]
    assert comp.garment.sum() == (whole & ~neck & ~hook).sum()
    assert comp.garment_probability == pytest.approx(0.9)


def test_a_motif_inside_the_garment_stays_garment_unless_it_is_the_backdrop_showing() -> None:
    shape = (120, 100)
    dress = rect(shape, 10, 110, 10, 90)
    flower = rect(shape, 40, 55, 30, 45)  # a print CLIP takes for a prop or a face
    face = rect(shape, 70, 85, 55, 70)
    hole = rect(shape, 60, 100, 48, 52)  # backdrop between the legs of a jumpsuit
    comp = compose(
        [dress, flower, face, hole],
        np.stack([named("garment"), named("prop"), named("person"), named("background")]),
    )
    assert comp.garment[flower].all()
    assert comp.garment[face].all()
    assert not comp.garment[hole].any()
    assert comp.person_share == 0.0


def test_a_person_beside_the_garment_is_reported() -> None:
    shape = (100, 100)
    shirt = rect(shape, 30, 90, 20, 80)
    head = rect(shape, 0, 30, 35, 65)
    arm = rect(shape, 30, 90, 80, 95)
    comp = compose([shirt, head, arm], np.stack([named("garment"), named("person"), named("person")]))
    assert comp.person_share == pytest.approx((head.sum() + arm.sum()) / head.size)


def test_garment_margin_and_small_pieces() -> None:
    shape = (100, 100)
    body = rect(shape, 20, 90, 20, 80)
    speck = rect(shape, 2, 4, 2, 4)
    unsure = rect(shape, 92, 99, 20, 80)
    probs = np.stack([named("garment"), named("garment"), named("garment", sure=0.3)])
    probs[2, GROUPS.index("background")] = 0.29
    comp = compose([body, speck, unsure], probs, garment_margin=0.05)
    assert comp.names == ["garment", "garment", "background"]
    assert not comp.garment[3, 3]  # a piece under 5 % of the main one
    assert not comp.garment[95, 50]
    with pytest.raises(ValueError, match="one probability row per mask"):
        compose([body], np.zeros((2, len(GROUPS))))
    with pytest.raises(ValueError, match="no candidate segments"):
        compose([], np.zeros((0, len(GROUPS))))


def test_prompts_cover_the_foreground_box() -> None:
    fg = rect((200, 100), 50, 150, 20, 80)
    p = from_foreground(fg, 4, margin=0.0)
    assert p.box == (20.0, 50.0, 80.0, 150.0)
    assert p.points.shape == (16, 2)
    assert p.points[:, 0].min() > 20
    assert p.points[:, 0].max() < 80
    empty = from_foreground(np.zeros((200, 100), bool), 2)
    assert empty.box == pytest.approx((5.0, 10.0, 95.0, 190.0))
    with pytest.raises(ValueError, match="grid"):
        from_foreground(fg, 0)
