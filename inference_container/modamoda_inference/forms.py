"""Where a mannequin, dress form or stand leaves the garment, and what it looks like there.

A form shows where the garment ends: above the collar (neck, head, the hook it hangs from), below the hem (hips,
legs, the stand's pole and base) and below the sleeves (hands). Those places are found by the subject's shape —
rows at the top and the bottom where the subject is much narrower than the garment — and what is there is
clustered by colour. A cluster becomes a mannequin colour model (:class:`MannequinModel`, source ``"form"``)
when the garment's body does not share that colour: a hood or a waistband of the garment's own colour is not
taken for a form, whatever its shape. :func:`modamoda_inference.mannequin.mannequin_mask` then takes every
region of that colour that is connected to the backdrop: the neck inside a V-neck, hands, a second leg.

:func:`thin_structures` finds what no colour model needs: poles, hooks and hanger wires — parts of the subject
much thinner than the garment, at its top or bottom, that a morphological opening at the garment's scale
removes while the garment stays whole.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from modamoda_inference.mannequin import L_WEIGHT, MAX_SHARE, MannequinModel, mannequin_mask

NARROW_TOP = 0.4  # top rows narrower than this share of the subject's widest row are above the garment
NARROW_BOTTOM = 0.55  # bottom rows narrower than this share are below the hem (legs, stand, hips)
OFF_CENTRE = 0.15  # ... unless its centre is this far (share of the width) off the body's: a slanted hem
BODY_SHARE_MAX = 0.06  # a colour found on more than this share of the garment's body is the garment's own
MIN_DISTANCE = 12.0  # a form colour this far (mannequin metric) from the body's median, at least
CENTRED = 0.15  # a hook or a pole: its centre this near the garment's (share of the garment's width)
NEUTRAL_L_WEIGHT = 0.8  # a neutral form is told from a neutral garment by lightness


def _row_widths(fg: np.ndarray) -> np.ndarray:
    return fg.sum(axis=1).astype(np.float64)


def _protrusion_rows(fg: np.ndarray, ratio: float, from_top: bool) -> tuple[int, int] | None:
    rows = np.flatnonzero(fg.any(axis=1))
    if rows.size < 20:
        return None
    widths = _row_widths(fg)
    widest = float(np.percentile(widths[rows], 95))
    narrow = widths < ratio * widest
    seq = rows if from_top else rows[::-1]
    n = 0
    for r in seq:
        if not narrow[r]:
            break
        n += 1
    height = rows[-1] - rows[0] + 1
    if n < max(3, round(0.03 * height)) or n > 0.6 * height:
        return None
    return (int(seq[0]), int(seq[0] + n)) if from_top else (int(seq[0] - n + 1), int(seq[0] + 1))


def _body(lab: np.ndarray, fg: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(fg.any(axis=1))
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    inner = cv2.erode(fg.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    band = slice(r0 + round(0.3 * (r1 - r0)), r0 + round(0.7 * (r1 - r0)))
    values: np.ndarray = lab[band][inner[band]]
    return values


def _form_like(lab: np.ndarray) -> bool:
    """A colour a form can have: neutral (white, grey, black, clear) or skin / wood tones (warm hues)."""
    chroma = float(np.hypot(lab[1], lab[2]))
    hue = float(np.degrees(np.arctan2(lab[2], lab[1])) % 360.0)
    return chroma < 12.0 or (20.0 <= hue <= 95.0 and chroma < 45.0)


def _cluster(values: np.ndarray, k: int) -> list[np.ndarray]:
    if values.shape[0] < 4 * k:
        return [values]
    sample = values[:: max(1, values.shape[0] // 4000)].astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, _labels, centres = cv2.kmeans(sample, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
    d = np.linalg.norm(values[:, None, :] - centres[None, :, :], axis=2)
    nearest = d.argmin(axis=1)
    return [values[nearest == i] for i in range(k)]


def main_colours(values: np.ndarray, k: int = 5, min_share: float = 0.08) -> np.ndarray:
    """The main colours of (N, 3) Lab ``values``: medians of the k-means clusters holding at least ``min_share``
    of them, (n, 3)."""
    centres = [np.median(c, axis=0) for c in _cluster(values, k) if c.shape[0] >= min_share * values.shape[0]]
    return np.asarray(centres, np.float32).reshape(-1, 3)


def _on_body(model: MannequinModel, body: np.ndarray) -> bool:
    """Whether ``model``'s colour is found on the garment's body (its pixels ``body``): the garment's own."""
    d_body = model.distance(body)
    return (
        float((d_body < model.tolerance).mean()) > BODY_SHARE_MAX or float(np.median(d_body)) < MIN_DISTANCE
    )


def garment_colour(model: MannequinModel, lab: np.ndarray, fg: np.ndarray) -> bool:
    """Whether ``model``'s colour is the garment's own: found on the garment's body (the middle rows)."""
    body = _body(lab, fg)
    return body.shape[0] >= 50 and _on_body(model, body)


def form_models(lab: np.ndarray, fg: np.ndarray) -> list[MannequinModel]:
    """Colour models of the form where it leaves the garment (top and bottom protrusions), maybe none."""
    if fg.sum() < 200:
        return []
    body = _body(lab, fg)
    if body.shape[0] < 50:
        return []
    inner = cv2.erode(fg.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    models: list[MannequinModel] = []
    for ratio, from_top in ((NARROW_TOP, True), (NARROW_BOTTOM, False)):
        span = _protrusion_rows(fg, ratio, from_top)
        if span is None:
            continue
        values = lab[span[0] : span[1]][inner[span[0] : span[1]]]
        if values.shape[0] < 30:
            continue
        for cluster in _cluster(values, 3):
            if cluster.shape[0] < max(20, 0.12 * values.shape[0]):
                continue
            ref = np.median(cluster, axis=0)
            if not _form_like(ref):
                continue  # forms are white, grey, black, skin or wood: a green or blue part is the garment's
            # a neutral form far lighter or darker than the body (grey legs under charcoal, a white neck over
            # navy) is told apart by lightness; otherwise lightness is mostly shading and counts less
            neutral = float(np.hypot(ref[1], ref[2])) < 12.0
            contrast = abs(float(ref[0]) - float(np.median(body[:, 0])))
            l_weight = NEUTRAL_L_WEIGHT if neutral and contrast > 20.0 else L_WEIGHT
            probe = MannequinModel((float(ref[0]), float(ref[1]), float(ref[2])), 14.0, "form", l_weight)
            spread = probe.distance(cluster)
            tolerance = float(np.clip(1.5 * float(np.percentile(spread, 80)) + 4.0, 8.0, 20.0))
            model = MannequinModel(probe.lab, tolerance, "form", l_weight)
            if _on_body(model, body):
                continue  # the garment's own colour (a hood, a hem band, trouser legs of a jumpsuit)
            if any(m.distance(np.asarray([model.lab], np.float32))[0] < 0.5 * m.tolerance for m in models):
                continue
            models.append(model)
    return models


def body_colours(lab: np.ndarray, fg: np.ndarray, k: int = 5) -> np.ndarray:
    """The main colours of the garment's body (k-means centres with at least 8 % of its pixels), (n, 3) Lab."""
    body = _body(lab, fg)
    if body.shape[0] < 50:
        return np.zeros((0, 3), np.float32)
    return main_colours(body, k)


def grow_form(
    lab: np.ndarray, subject: np.ndarray, form: np.ndarray, models: list[MannequinModel], reach: float = 0.03
) -> np.ndarray:
    """The form grown into its neighbourhood: pixels of the subject next to it whose colour is nearer the form's
    (lightness counted at a fifth, so its shaded side under a hem or inside a collar is still the form) than
    any of the garment body's main colours. The shaded tops of legs under a hem, the shadowed neck inside a
    collar."""
    if not form.any() or not models:
        return form
    centres = body_colours(lab, subject & ~form)
    if centres.shape[0] == 0:
        return form
    weight = np.asarray([0.2, 1.0, 1.0], np.float32)
    d_form = np.min(
        [np.linalg.norm((lab - np.asarray(m.lab, np.float32)) * weight, axis=-1) for m in models], axis=0
    )
    d_body = np.min(
        [np.linalg.norm((lab - c) * np.asarray([0.5, 1.0, 1.0], np.float32), axis=-1) for c in centres],
        axis=0,
    )
    closer = subject & (d_form + 4.0 < d_body)
    h, w = form.shape
    steps = max(1, round(reach * max(h, w) / 2))
    out = form.copy()
    kernel = np.ones((5, 5), np.uint8)
    for _ in range(steps):
        grown = (cv2.dilate(out.astype(np.uint8), kernel) > 0) & closer
        if np.array_equal(grown | out, out):
            break
        out |= grown
    if out.sum() > MAX_SHARE * subject.sum():
        return form
    return out


def narrow_below(garment: np.ndarray) -> float:
    """Share of the garment's height taken by a narrow central part under its hem (legs, hips or a stand the
    colour models missed). Only the middle of the garment counts: sleeves and hands hanging at the sides below
    a short hem are the garment's own shape, and rows with nothing in the middle are skipped. Legs and stands
    stand under the body's centre; narrow rows off to one side are a slanted hem (a hat, an asymmetric skirt)."""
    rows = np.flatnonzero(garment.any(axis=1))
    cols = np.flatnonzero(garment.any(axis=0))
    if rows.size < 20:
        return 0.0
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    m0 = c0 + round(0.2 * (c1 - c0))
    middle = garment[:, m0 : c0 + round(0.8 * (c1 - c0))]
    widths = middle.sum(axis=1).astype(np.float64)
    centres = (middle * np.arange(middle.shape[1])).sum(axis=1) / np.maximum(widths, 1.0) + m0
    band = slice(r0 + round(0.4 * (r1 - r0)), r0 + round(0.7 * (r1 - r0)))
    body = widths[band]
    if body.size == 0 or float(np.median(body)) <= 0:
        return 0.0
    level = NARROW_BOTTOM * float(np.median(body))
    centre = float(np.median(centres[band][body > 0]))
    n = 0
    for r in range(r1 - 1, r0, -1):
        if widths[r] == 0 and n == 0:
            continue  # only sleeve ends down here
        if widths[r] >= level or abs(centres[r] - centre) > OFF_CENTRE * (c1 - c0):
            break
        n += 1
    return n / float(r1 - r0)


def left_over(lab: np.ndarray, garment: np.ndarray, on_form: bool) -> float:
    """Share of the garment that still looks like a form where forms leave garments: regions of a form colour
    found at the garment's top or bottom (:func:`form_models` on the garment itself), judged tolerant of shading;
    on a form also a narrow middle under the hem (:func:`narrow_below`). Without a form only neutral colours
    count (hangers, clips, pegs)."""
    if not garment.any():
        return 0.0
    total = float(garment.sum())
    share = 0.0
    for m in form_models(lab, garment):
        if not on_form and float(np.hypot(m.lab[1], m.lab[2])) >= 12.0:
            continue
        share += float(mannequin_mask(lab, garment, replace(m, l_weight=L_WEIGHT)).sum()) / total
    if on_form:
        share = max(share, narrow_below(garment))
    return share


def thin_structures(garment: np.ndarray) -> np.ndarray:
    """Parts of ``garment`` much thinner than it (poles, hooks, wires, a single strap of a stand), at its top
    or bottom: what an opening at 4 % of the garment's width removes, kept only where it sticks out above the
    garment's top or below its bottom rows of full width, and only where a hook, pole, wire or rail would be —
    near the garment's middle, or running off the photo or across the garment's width. Thin parts off to one
    side that end in the picture (a cami's straps, a tie) are the garment's."""
    rows = np.flatnonzero(garment.any(axis=1))
    if rows.size < 20:
        return np.zeros_like(garment)
    widths = _row_widths(garment)
    widest = float(np.percentile(widths[rows], 95))
    k = max(3, round(0.04 * widest)) | 1
    opened = (
        cv2.morphologyEx(
            garment.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        )
        > 0
    )
    thin = garment & ~opened
    full = np.flatnonzero(widths >= 0.3 * widest)
    if full.size == 0:
        return np.zeros_like(garment)
    top, bottom = int(full[0]), int(full[-1])
    outside = np.zeros_like(garment)
    outside[:top] = True
    outside[bottom + 1 :] = True
    n, labels, stats, _ = cv2.connectedComponentsWithStats(thin.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    hit = np.unique(labels[thin & outside])
    keep[hit] = True
    keep[0] = False
    # hooks hang from the middle, poles stand under it, wires and rails run off the photo or across the garment;
    # a thin part off to one side that ends in the picture is the garment's own (a strap, a tie, a drawstring)
    h, w = garment.shape
    body_cols = np.flatnonzero(garment[top : bottom + 1].any(axis=0))
    centre = 0.5 * (body_cols[0] + body_cols[-1])
    span = float(body_cols[-1] - body_cols[0] + 1)
    for i in np.flatnonzero(keep):
        x, y, cw, ch = (int(v) for v in stats[i, :4])
        xc = x + 0.5 * cw
        centred = abs(xc - centre) <= CENTRED * span
        leaves = x == 0 or y == 0 or x + cw == w or y + ch == h or cw >= 0.8 * span
        keep[i] = centred or leaves
    out = keep[labels]
    if out.sum() > (1 - MAX_SHARE) * garment.sum():
        return np.zeros_like(garment)
    return out
