"""Someone wearing the garment: a ghost packshot cannot be made from it (the result would be a cut-out person).

No weights: a person shows skin where a garment leaves off — a neck and face above the collar, arms and hands
below the sleeves, legs below the hem. The check is run on the subject (everything that is not backdrop) and
looks for

* skin-coloured pixels (the classic chrominance box in YCrCb, Chai & Ngan 1999, narrowed by lightness and
  saturation so white, grey and black forms and wooden hands are not skin), in regions that touch the backdrop
  or the frame (where the body leaves the garment) and the garment (a prop lies apart), are not one of the
  garment body's own main colours (a beige or pink garment is not skin), and together cover enough of the
  subject;
* and in at least two separate places (a neck and a hand, two arms, a face and legs) or one place that touches
  the frame's edge at the top (a head cut off by the frame).

A skin-toned mannequin or wooden hands pass these tests too: nothing here tells them from a person, so the engine
runs the check only when the seller named no mannequin.
"""

from __future__ import annotations

import cv2
import numpy as np

from modamoda_inference.forms import main_colours

MIN_SHARE = 0.03  # skin regions together cover at least this share of the subject
MIN_REGION = 0.004  # a region counts when at least this share of the subject
BODY_DISTANCE = 12.0  # CIELAB distance within which a colour is one of the garment body's


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.int16)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int16)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    s, v = hsv[..., 1], hsv[..., 2]
    return (
        (cr >= 138) & (cr <= 173) & (cb >= 77) & (cb <= 127) & (y >= 50) & (s >= 40) & (s <= 170) & (v >= 70)
    )


def _garment_coloured(rgb: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """Pixels whose colour is one of the garment body's main colours (a beige or pink garment is not skin)."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    rows = np.flatnonzero(subject.any(axis=1))
    cols = np.flatnonzero(subject.any(axis=0))
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    # the middle of the body: arms hang at the sides, a head sits above, legs below
    band = (
        slice(r0 + round(0.35 * (r1 - r0)), r0 + round(0.75 * (r1 - r0))),
        slice(c0 + round(0.25 * (c1 - c0)), c0 + round(0.75 * (c1 - c0))),
    )
    inner = cv2.erode(subject.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    body = lab[band][inner[band]]
    if body.shape[0] < 50:
        return np.zeros(subject.shape, bool)
    centres = main_colours(body)
    d = np.min(np.linalg.norm(lab[..., None, :] - centres[None, None], axis=-1), axis=-1)
    return d < BODY_DISTANCE


def person_evidence(rgb: np.ndarray, subject: np.ndarray) -> dict[str, float]:
    """Numbers behind :func:`has_person` (for the job's metadata)."""
    n_subject = int(subject.sum())
    if n_subject == 0:
        return {"skin_share": 0.0, "regions": 0.0}
    skin = skin_mask(rgb) & subject & ~_garment_coloured(rgb, subject)
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    # skin where the body leaves the garment: connected to the backdrop or the frame
    outside = cv2.dilate((~subject).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    outside[0, :] = outside[-1, :] = True
    outside[:, 0] = outside[:, -1] = True
    n, labels, stats, _ = cv2.connectedComponentsWithStats(skin.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[skin & outside])] = True
    # ... and where it leaves the garment: touching what is not skin of the subject (a prop lies apart)
    clothed = cv2.dilate((subject & ~skin).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    touching = np.zeros(n, bool)
    touching[np.unique(labels[skin & clothed])] = True
    keep &= touching
    keep[0] = False
    keep &= stats[:, cv2.CC_STAT_AREA] >= MIN_REGION * n_subject
    regions = int(keep.sum())
    found = keep[labels]
    if not found.any():
        return {"skin_share": 0.0, "regions": 0.0}
    top_cut = bool(found[0, :].any())
    return {
        "skin_share": float(found.sum()) / n_subject,
        "regions": float(regions + (1 if top_cut else 0)),
    }


def has_person(evidence: dict[str, float]) -> bool:
    return evidence["skin_share"] >= MIN_SHARE and evidence["regions"] >= 2
