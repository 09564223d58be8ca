"""The quality gate: how far the engine trusts its own cut-out, from its own evidence, before anyone pays.

Every check gives a score in [0, 1] (1 = no doubt) from something the engine measured on the photo:

* ``backdrop`` — how plain the backdrop is: the spread of the border's colours around the fitted backdrop
  model (a studio sweep is a few CIELAB units; a rug, concrete or a street is tens);
* ``frame`` — how little of the garment's outline runs along the photo's edge (a garment cut off by the frame,
  or figure and ground swapped, runs along it);
* ``edges`` — how much of the outline lies on a visible edge of the photo (a cut through plain fabric or plain
  backdrop has none);
* ``stability`` — agreement of the two independent estimates of the garment (the backdrop-distance mask and the
  graph cut); where they disagree, neither is to be trusted;
* ``leftover`` — no form left where forms leave the garment (a narrow part at the top or bottom whose colour is
  not the garment's);
* ``size`` — the garment's share of the frame is in the range a packshot photo has.

On the ``learned`` path (SAM + CLIP, :mod:`modamoda_inference.segmentation`) the backdrop and leftover checks
give way to the stage's own evidence: ``naming`` — how sure CLIP is that the garment's segments are garment
(area-weighted); ``masks`` — SAM's own estimate of its masks' quality; and ``stability`` compares the garment
with the one composed from SAM's masks at a stricter logit threshold.

The confidence is the smallest of them (one bad check is enough to spoil a picture); below ``threshold`` the
job is refused with ``low_confidence`` and a message naming what went wrong and how to reshoot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from modamoda_inference.errors import LowConfidence

THRESHOLD = 0.5
SWEEP_NOISE = 5.0  # the border's spread around the backdrop model (CIELAB) of a clean studio sweep, at most
PLAIN_BACKDROP_NOISE = 10.0  # ... up to which a backdrop is plain (a wall, a sheet, paper)
BUSY_BACKDROP_NOISE = 16.0  # ... and from which the backdrop path is not trusted at all

ADVICE = {
    "backdrop": "the background is textured or busy, so the garment could not be told apart from it reliably. "
    "Please photograph it against a plain wall, sheet or paper in one light colour",
    "frame": "the garment runs off the edge of the photo or fills it completely. Please step back so the whole "
    "garment is in the picture with some plain background all around it",
    "edges": "the garment's outline could not be found clearly (its colour is too close to the background's). "
    "Please use a background that contrasts with the garment - a darker one for light garments, a lighter one "
    "for dark garments",
    "stability": "the garment's outline could not be found clearly. Please photograph it against a plain "
    "background that contrasts with it, evenly lit and without strong shadows",
    "leftover": "parts of the mannequin, stand or hanger could not be separated from the garment. Please use a "
    "mannequin in a colour that differs from the garment, or choose the mannequin setting that matches the photo",
    "size": "the garment is too small in the photo to make a sharp packshot. Please photograph it closer, so it "
    "fills most of the frame with some background around it",
    "naming": "the garment could not be told apart from the other things in the photo (mannequin, hanger, props "
    "or background). Please photograph the garment on its own, on a mannequin, a hanger or laid flat",
    "masks": "the garment's outline could not be found clearly. Please photograph it against a plain background "
    "that contrasts with it, evenly lit",
}


@dataclass
class Quality:
    score: float
    threshold: float
    checks: dict[str, float] = field(default_factory=dict)
    path: str = "backdrop"

    @property
    def weakest(self) -> str:
        return min(self.checks, key=lambda k: self.checks[k])

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3),
            "threshold": self.threshold,
            "checks": {k: round(v, 3) for k, v in self.checks.items()},
            "path": self.path,
        }

    def enforce(self) -> None:
        """Raise :class:`LowConfidence` (no charge) when the score is below the threshold."""
        if self.score >= self.threshold:
            return
        raise LowConfidence(
            f"We could not make a clean cut-out of this photo: {ADVICE[self.weakest]}. Nothing was charged.",
            details=self.as_dict(),
        )


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good``, linear between (either direction)."""
    if good == bad:
        return float(value >= good)
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def _outline(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0


def edge_support(small: np.ndarray, garment: np.ndarray, level: float = 4.0) -> float:
    """Share of the outline (off the frame's edge) within 3 px of a clear edge of the photo: a colour gradient of
    at least ``level`` CIELAB units per pixel."""
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    grad = np.zeros(garment.shape, np.float32)
    for c in range(3):
        gx = cv2.Sobel(lab[..., c], cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(lab[..., c], cv2.CV_32F, 0, 1, ksize=3)
        grad = np.maximum(grad, np.hypot(gx, gy) / 8.0)  # CIELAB units per pixel
    near = cv2.dilate(
        grad, np.ones((7, 7), np.uint8)
    )  # the mask takes the mixed edge pixels: it lies outward
    outline = _outline(garment)
    outline[0, :] = outline[-1, :] = False
    outline[:, 0] = outline[:, -1] = False
    if outline.sum() < 10:
        return 0.0
    return float((near[outline] > level).mean())


def frame_contact(garment: np.ndarray) -> float:
    """Share of the garment's outline that lies on the photo's edge."""
    outline = _outline(garment)
    total = int(outline.sum())
    if total == 0:
        return 1.0
    on_edge = int(garment[0, :].sum() + garment[-1, :].sum() + garment[:, 0].sum() + garment[:, -1].sum())
    return on_edge / (total + on_edge)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0


def assess(
    small: np.ndarray,
    garment: np.ndarray,
    first: np.ndarray,
    backdrop_noise: float,
    leftover: float,
    threshold: float = THRESHOLD,
    path: str = "backdrop",
    *,
    naming: float = 1.0,
    predicted_iou: float = 1.0,
) -> Quality:
    """The confidence of a cut-out at working resolution (see the module docstring).

    On the ``"textured"`` path (:mod:`modamoda_inference.textured`) the backdrop is known not to be plain, so
    its plainness is not a check; every start of the graph cut must agree closely with the first instead (``stability``),
    and the outline must lie on clear edges almost everywhere (a background's own texture has edges, so a
    looser outline would still find some). On the ``"learned"`` path ``naming`` (CLIP's garment probability) and
    ``predicted_iou`` (SAM's) are checks instead of the backdrop's plainness and the leftover forms."""
    coverage = float(garment.mean())
    textured = path == "textured"
    if path == "learned":
        checks = {
            "frame": _ramp(frame_contact(garment), 0.3, 0.15),
            "edges": _ramp(
                edge_support(small, garment, float(np.clip(1.5 * backdrop_noise, 2.0, 6.0))), 0.6, 0.8
            ),
            "stability": _ramp(iou(garment, first), 0.85, 0.95),
            "naming": _ramp(naming, 0.4, 0.6),
            "masks": _ramp(predicted_iou, 0.7, 0.85),
            "size": min(_ramp(coverage, 0.01, 0.04), _ramp(coverage, 0.92, 0.8)),
        }
        return Quality(score=min(checks.values()), threshold=threshold, checks=checks, path=path)
    checks = {
        "backdrop": _ramp(backdrop_noise, BUSY_BACKDROP_NOISE, PLAIN_BACKDROP_NOISE),
        "frame": _ramp(frame_contact(garment), 0.3, 0.15),
        # a clear edge stands out from the backdrop's own noise; on a clean sweep a low-contrast edge is enough
        "edges": (
            _ramp(edge_support(small, garment, 6.0), 0.9, 0.95)
            if textured
            else _ramp(edge_support(small, garment, float(np.clip(1.5 * backdrop_noise, 2.0, 6.0))), 0.6, 0.8)
        ),
        "stability": _ramp(iou(garment, first), *((0.92, 0.96) if textured else (0.6, 0.9))),
        "leftover": _ramp(leftover, 0.08, 0.03),
        "size": min(_ramp(coverage, 0.01, 0.04), _ramp(coverage, 0.92, 0.8)),
    }
    if textured:
        del checks["backdrop"]
    return Quality(score=min(checks.values()), threshold=threshold, checks=checks, path=path)
