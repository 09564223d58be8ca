"""Stand-ins for SAM and CLIP with the stage's two interfaces (``propose``, ``logits``): an oracle that proposes
given masks, and a scorer that names each crop by the mask it was cut from. They let the stage's own logic
(selection, crops, naming, composition) and the engine's steps after it be tested on known segments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from modamoda_inference.segmentation import labels
from modamoda_inference.segmentation.models import Proposals
from modamoda_inference.segmentation.prompts import Prompts
from modamoda_inference.segmentation.settings import SegmentationSettings
from modamoda_inference.segmentation.stage import SegmentationStage, crop_for_clip


class OracleSam:
    """Proposes ``masks`` (logits ±8) with the given predicted IoUs, whatever the prompts (kept in ``calls``)."""

    def __init__(self, masks: Sequence[np.ndarray], ious: Sequence[float] | None = None) -> None:
        self.masks = [np.asarray(m, bool) for m in masks]
        self.ious = np.asarray(ious if ious is not None else [0.95] * len(self.masks), np.float32)
        self.calls: list[Prompts] = []

    def propose(self, image: np.ndarray, prompts: Prompts) -> Proposals:
        self.calls.append(prompts)
        assert all(m.shape == image.shape[:2] for m in self.masks), "masks at the image's size"
        logits = np.stack([np.where(m, 8.0, -8.0) for m in self.masks]).astype(np.float32)
        return Proposals(logits=logits, predicted_iou=self.ious.copy())

    def describe(self) -> dict[str, Any]:
        return {"stub": "oracle"}


class NamingScorer:
    """Names each crop as the group given for the mask it was cut from (matched by the crop's pixels)."""

    def __init__(
        self, image: np.ndarray, masks: Sequence[np.ndarray], groups: Sequence[str], margin: float = 0.1
    ) -> None:
        self.table = {
            crop_for_clip(image, np.asarray(m, bool), margin).tobytes(): g
            for m, g in zip(masks, groups, strict=False)
        }
        self.seen: list[str] = []

    def logits(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(crops), len(labels.LABELS)), np.float32)
        for row, crop in enumerate(crops):
            group = self.table[crop.tobytes()]
            self.seen.append(group)
            first = next(i for i, (g, _) in enumerate(labels.LABELS) if g == group)
            out[row, first] = 10.0
        return out

    def describe(self) -> dict[str, Any]:
        return {"stub": "naming"}


def oracle_stage(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    groups: Sequence[str],
    ious: Sequence[float] | None = None,
    settings: SegmentationSettings | None = None,
) -> SegmentationStage:
    cfg = settings or SegmentationSettings()
    return SegmentationStage(
        OracleSam(masks, ious), NamingScorer(image, masks, groups, cfg.crop_margin), cfg, {"stub": True}
    )


class OrderedScorer:
    """Names the crops in the order the stage asks (its candidates by predicted IoU, best first): for pictures
    whose pixels may change on the way (a re-encoded upload), where :class:`NamingScorer` cannot match them."""

    def __init__(self, groups: Sequence[str]) -> None:
        self.groups = list(groups)

    def logits(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        assert len(crops) == len(self.groups), (len(crops), self.groups)
        out = np.zeros((len(crops), len(labels.LABELS)), np.float32)
        for row, group in enumerate(self.groups):
            out[row, next(i for i, (g, _) in enumerate(labels.LABELS) if g == group)] = 10.0
        return out

    def describe(self) -> dict[str, Any]:
        return {"stub": "ordered"}
