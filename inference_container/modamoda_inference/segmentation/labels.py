"""What each segment is: the fixed label set CLIP names segments against, and how named segments become the
garment (pure numpy; the models are in :mod:`modamoda_inference.segmentation.models`).

Labels come in groups — the garment kinds; mannequin, dress form and stand; a person's skin, face and hair;
hanger, clip and rail; bags, shoes and other props; the background. A segment's group score is the best of its
labels' (so a group with many labels is not favoured for having them), then a softmax over the groups.

:func:`compose` paints the candidate segments largest first, so a smaller segment inside a larger one (a
mannequin's neck inside the garment's box, a hanger's hook over the collar) decides for its own pixels. Two
rules keep a print a print: a segment that lies inside the garment (garment all round it) and is named a person,
a hanger or a prop stays garment (a face printed on a T-shirt, a flower taken for a bag) — one named background is
a hole (the backdrop really shows through), one named mannequin is the form showing between lapels or straps;
and garment pixels cut off from the main garment by other segments are kept only in pieces of a useful size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

GROUPS: tuple[str, ...] = ("garment", "mannequin", "person", "hanger", "prop", "background")
GARMENT, MANNEQUIN, PERSON, HANGER, PROP, BACKGROUND = range(len(GROUPS))

LABELS: tuple[tuple[str, str], ...] = (
    ("garment", "t-shirt"),
    ("garment", "shirt"),
    ("garment", "blouse"),
    ("garment", "top"),
    ("garment", "sweater"),
    ("garment", "cardigan"),
    ("garment", "hoodie"),
    ("garment", "jacket"),
    ("garment", "coat"),
    ("garment", "blazer"),
    ("garment", "dress"),
    ("garment", "skirt"),
    ("garment", "trousers"),
    ("garment", "jeans"),
    ("garment", "shorts"),
    ("garment", "jumpsuit"),
    ("garment", "swimsuit"),
    ("garment", "knitted hat"),
    ("garment", "piece of clothing"),
    ("mannequin", "mannequin"),
    ("mannequin", "dress form"),
    ("mannequin", "mannequin stand"),
    ("mannequin", "mannequin head"),
    ("mannequin", "mannequin arm"),
    ("person", "person's skin"),
    ("person", "human face"),
    ("person", "human hair"),
    ("person", "human hand"),
    ("hanger", "clothes hanger"),
    ("hanger", "clothes peg clip"),
    ("hanger", "clothes rail"),
    ("prop", "handbag"),
    ("prop", "shoes"),
    ("prop", "sunglasses"),
    ("prop", "jewellery"),
    ("prop", "plant"),
    ("background", "background"),
    ("background", "wall"),
    ("background", "floor"),
    ("background", "rug"),
    ("background", "bed sheet"),
    ("background", "table top"),
)
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a product photo of a {}.",
    "a close-up photo of a {}.",
)
LABEL_GROUP = np.array([GROUPS.index(g) for g, _ in LABELS], np.int64)


def prompts(label: str) -> list[str]:
    return [t.format(label) for t in TEMPLATES]


def group_probabilities(label_logits: np.ndarray) -> np.ndarray:
    """(n, len(LABELS)) CLIP logits (scaled cosine similarities) → (n, len(GROUPS)) probabilities: each group's
    logit is its best label's, softmax over groups."""
    logits = np.asarray(label_logits, np.float64)
    if logits.ndim != 2 or logits.shape[1] != len(LABELS):
        raise ValueError(f"expected (n, {len(LABELS)}) logits, got {logits.shape}")
    grouped = np.full((logits.shape[0], len(GROUPS)), -np.inf)
    for g in range(len(GROUPS)):
        grouped[:, g] = logits[:, g == LABEL_GROUP].max(axis=1)
    grouped -= grouped.max(axis=1, keepdims=True)
    e = np.exp(grouped)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Composition:
    """The photo's pixels by what they are, at the candidates' resolution."""

    garment: np.ndarray  # (h, w) bool
    mannequin: np.ndarray  # mannequin, dress form, stand
    person: np.ndarray  # skin, face, hair of a person
    other: np.ndarray  # hanger, clips, rails, props
    names: list[str] = field(default_factory=list)  # each candidate's group, in the candidates' order
    garment_probability: float = 0.0  # area-weighted over the garment's pixels
    person_share: float = 0.0  # of the frame


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return (cv2.dilate(mask.astype(np.uint8), k) > 0) & ~mask


def _main_pieces(garment: np.ndarray, keep_frac: float) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(garment.astype(np.uint8), connectivity=8)
    if n <= 2:
        return garment
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= keep_frac * areas.max())
    return np.isin(lab, keep)


def compose(
    masks: Sequence[np.ndarray],
    probabilities: np.ndarray,
    *,
    garment_margin: float = 0.0,
    enclosed: float = 0.95,
    keep_frac: float = 0.05,
) -> Composition:
    """Paint the named candidates (``masks``: (h, w) bool each; ``probabilities``: (n, len(GROUPS))) into the
    garment, the mannequin, a person and the rest (see the module docstring).

    A candidate is garment when the garment group is its most probable and leads the next by ``garment_margin``.
    A candidate named person, hanger or prop whose outer ring is at least ``enclosed`` garment is a motif of the
    garment. Garment pieces smaller than ``keep_frac`` of the largest are dropped."""
    probs = np.asarray(probabilities, np.float64)
    if len(masks) != probs.shape[0]:
        raise ValueError("one probability row per mask")
    if not masks:
        raise ValueError("no candidate segments")
    shape = masks[0].shape
    order = np.argsort([-int(m.sum()) for m in masks], kind="stable")
    groups = np.full(len(masks), BACKGROUND)
    for i, row in enumerate(probs):
        best = int(np.argmax(row))
        if best == GARMENT:
            second = float(np.sort(row)[-2]) if row.size > 1 else 0.0
            groups[i] = GARMENT if row[GARMENT] - second >= garment_margin else int(np.argsort(row)[-2])
        else:
            groups[i] = best
    label = np.full(shape, BACKGROUND, np.int8)
    owner = np.full(shape, -1, np.int32)
    for i in order:
        label[masks[i]] = groups[i]
        owner[masks[i]] = i
    garment = label == GARMENT
    ring_width = max(2, round(0.004 * max(shape)))
    for i in order:
        g = int(groups[i])
        if g in (GARMENT, BACKGROUND, MANNEQUIN):
            continue
        mine = owner == i
        if not mine.any():
            continue
        ring = _ring(mine, ring_width)
        if ring.any() and float(garment[ring].mean()) >= enclosed:
            label[mine] = GARMENT
            garment |= mine
    garment = _main_pieces(garment, keep_frac)
    weights = np.zeros(len(masks))
    for i in range(len(masks)):
        weights[i] = float(np.count_nonzero((owner == i) & garment))
    garment_probability = (
        float((weights * probs[:, GARMENT]).sum() / weights.sum()) if weights.sum() > 0 else 0.0
    )
    person = (label == PERSON) & ~garment
    return Composition(
        garment=garment,
        mannequin=(label == MANNEQUIN) & ~garment,
        person=person,
        other=np.isin(label, (HANGER, PROP)) & ~garment,
        names=[GROUPS[int(g)] for g in groups],
        garment_probability=garment_probability,
        person_share=float(person.mean()),
    )
