"""The learned segmentation stage: SAM proposes segments from automatic prompts, CLIP names each one against a
fixed label set, and the garment is the union of the segments named garment.

1. Prompts (:mod:`~modamoda_inference.segmentation.prompts`): the box of a cheap foreground estimate (the studio
   engine's backdrop distance, or GrabCut on a busy background) and a grid of single points over it.
2. SAM (:class:`~modamoda_inference.segmentation.models.SamRunner`): three masks per prompt; a mask is kept when
   SAM's predicted IoU is high, it is stable (its area hardly moves when the logit threshold does), it is not
   a speck nor the whole frame, and not a near-duplicate of a better one.
3. CLIP (:class:`~modamoda_inference.segmentation.models.ClipScorer`): each kept mask's crop, square, with
   everything outside the mask in CLIP's mean grey, named against :data:`labels.LABELS`.
4. :func:`labels.compose`: garment, mannequin, person and the rest.

The studio engine then runs its own matting, hollow-neck and canvas steps on the result, and its quality gate
(``path="learned"``) on the stage's evidence: how sure CLIP is that the garment is garment, how stable SAM's
masks are, and the checks of the outline every path has.

Without weights in the model directory there is no stage (:func:`shared_stage` returns None) and the studio
engine runs as it always has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from modamoda_inference.diffusion import weights
from modamoda_inference.errors import EngineUnavailable
from modamoda_inference.quality import iou
from modamoda_inference.segmentation import labels
from modamoda_inference.segmentation.labels import Composition
from modamoda_inference.segmentation.models import ClipScorer, Proposals, SamRunner, runtime_from_env
from modamoda_inference.segmentation.prompts import Prompts, from_foreground
from modamoda_inference.segmentation.settings import SegmentationSettings

logger = logging.getLogger("modamoda_inference.segmentation")

CLIP_MEAN_RGB = (122, 116, 104)  # CLIP's normalisation mean, as 8-bit: "nothing here" to the model


class Proposer(Protocol):
    def propose(self, image: np.ndarray, prompts: Prompts) -> Proposals: ...

    def describe(self) -> dict[str, Any]: ...


class Scorer(Protocol):
    def logits(self, crops: list[np.ndarray]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class Segmentation:
    """What the stage found in one photo, at the resolution of the image it was given."""

    composition: Composition
    stable: np.ndarray  # (h, w) bool: the garment composed from the masks at a higher logit threshold
    proposed: int  # SAM's masks
    kept: int  # ... that were kept and named
    predicted_iou: float  # SAM's own estimate, area-weighted over the garment's segments
    timings_ms: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        comp = self.composition
        return {
            "proposed": self.proposed,
            "candidates": self.kept,
            "named": dict(sorted(Counter(comp.names).items())),
            "garment_probability": round(comp.garment_probability, 3),
            "predicted_iou": round(self.predicted_iou, 3),
            "person_share": round(comp.person_share, 4),
        }


def crop_for_clip(image: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """The mask's box grown by ``margin`` of its long side, outside the mask in CLIP's mean grey, padded to a
    square (CLIP's processor centre-crops: a tall garment would lose its hem and collar)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    pad = round(margin * max(y1 - y0, x1 - x0))
    y0, y1, x0, x1 = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
    crop = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    crop[...] = CLIP_MEAN_RGB
    inside = mask[y0:y1, x0:x1]
    crop[inside] = image[y0:y1, x0:x1][inside]
    side = max(crop.shape[:2])
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    return cv2.copyMakeBorder(
        crop,
        top,
        side - crop.shape[0] - top,
        left,
        side - crop.shape[1] - left,
        cv2.BORDER_CONSTANT,
        value=CLIP_MEAN_RGB,
    )


class SegmentationStage:
    """SAM + CLIP garment extraction (see the module docstring)."""

    name = "learned"

    def __init__(
        self,
        sam: Proposer,
        scorer: Scorer,
        settings: SegmentationSettings | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.sam, self.scorer = sam, scorer
        self.settings = settings or SegmentationSettings()
        self.info = dict(info or {})
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sam": self.sam.describe(), "clip": self.scorer.describe(), **self.info}

    def select(self, proposals: Proposals) -> list[int]:
        """Indices of the masks worth naming, best predicted IoU first."""
        s = self.settings
        logits, ious = proposals.logits, proposals.predicted_iou
        kept: list[int] = []
        masks: list[np.ndarray] = []
        for i in np.argsort(-ious, kind="stable"):
            if float(ious[i]) < s.min_predicted_iou:
                break
            mask = logits[i] > 0.0
            area = float(mask.mean())
            if area < s.min_area or area > 0.995:
                continue
            if iou(logits[i] > s.stability_offset, logits[i] > -s.stability_offset) < s.min_stability:
                continue
            if any(iou(mask, m) > s.dedupe_iou for m in masks):
                continue
            kept.append(int(i))
            masks.append(mask)
            if len(kept) >= s.max_candidates:
                break
        return kept

    def segment(self, image: np.ndarray, foreground: np.ndarray) -> Segmentation:
        """Segment ``image`` ((h, w, 3) uint8 RGB) around ``foreground`` ((h, w) bool, the cheap estimate)."""
        s = self.settings
        t0 = time.perf_counter()
        with self._lock:
            proposals = self.sam.propose(image, from_foreground(foreground, s.point_grid))
            t1 = time.perf_counter()
            chosen = self.select(proposals)
            masks = [proposals.logits[i] > 0.0 for i in chosen]
            crops = [crop_for_clip(image, m, s.crop_margin) for m in masks]
            logits = self.scorer.logits(crops) if crops else np.zeros((0, len(labels.LABELS)))
        t2 = time.perf_counter()
        h, w = image.shape[:2]
        if not masks:
            empty = np.zeros((h, w), bool)
            comp = Composition(empty, empty, empty, empty)
            return Segmentation(comp, empty, len(proposals.predicted_iou), 0, 0.0, {"sam": (t1 - t0) * 1e3})
        probs = labels.group_probabilities(logits)
        comp = labels.compose(masks, probs, garment_margin=s.garment_margin)
        stable = labels.compose(
            [proposals.logits[i] > s.stability_offset for i in chosen], probs, garment_margin=s.garment_margin
        ).garment
        areas = np.array([np.count_nonzero(m & comp.garment) for m in masks], np.float64)
        ious = proposals.predicted_iou[chosen].astype(np.float64)
        predicted = float((areas * ious).sum() / areas.sum()) if areas.sum() > 0 else 0.0
        timings = {
            "sam": (t1 - t0) * 1e3,
            "clip": (t2 - t1) * 1e3,
            "compose": (time.perf_counter() - t2) * 1e3,
        }
        return Segmentation(comp, stable, len(proposals.predicted_iou), len(masks), predicted, timings)


def load_stage(model_dir: Path, settings: SegmentationSettings | None = None) -> SegmentationStage:
    """The stage from ``model_dir/segmentation/{sam,clip}`` (checked against the manifest first); a
    :class:`~modamoda_inference.diffusion.weights.WeightsError` when anything is missing or damaged."""
    t0 = time.perf_counter()
    manifest = weights.validate(model_dir, group="segmentation")
    device, dtype = runtime_from_env()
    cfg = settings or SegmentationSettings()
    sam = SamRunner.load(model_dir / "segmentation" / "sam", device, dtype)
    clip = ClipScorer.load(model_dir / "segmentation" / "clip", device, dtype, cfg.batch_size)
    info = {
        "models": {name: c.describe() for name, c in sorted(manifest.components.items())},
        "device": device,
        "dtype": dtype,
    }
    stage = SegmentationStage(sam, clip, cfg, info)
    logger.info(
        "segmentation stage loaded",
        extra={"fields": {**stage.describe(), "load_ms": round((time.perf_counter() - t0) * 1e3, 1)}},
    )
    return stage


def has_weights(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds (or claims to hold) the segmentation stage's weights."""
    if (model_dir / "segmentation").exists():
        return True
    try:
        listed = weights.read_manifest(model_dir)["components"]
    except weights.WeightsError:
        return False
    return any(name in listed for name in weights.GROUPS["segmentation"])


@lru_cache(maxsize=4)
def _shared(path: str) -> SegmentationStage | None:
    model_dir = Path(path)
    if not has_weights(model_dir):
        logger.info(
            "no segmentation weights: the studio engine segments", extra={"fields": {"model_dir": path}}
        )
        return None
    try:
        return load_stage(model_dir)
    except weights.WeightsError as exc:
        logger.warning(
            "segmentation stage failed to load: the studio engine segments",
            extra={"fields": {"reason": exc.reason, "message": exc.message}},
        )
        return None


def choose(option: str, stage: SegmentationStage | None) -> SegmentationStage | None:
    """The stage a request's ``options.segmenter`` asks for: ``studio`` → none; ``auto`` → the loaded stage, if
    any; ``learned`` → the loaded stage, or :class:`EngineUnavailable` when this endpoint has none."""
    if option == "studio":
        return None
    if option == "learned" and stage is None:
        raise EngineUnavailable(
            "segmenter learned needs the SAM and CLIP weights under the model directory's segmentation/ folder, "
            "and this endpoint has not loaded them; send segmenter auto or studio"
        )
    return stage


def shared_stage(model_dir: Path) -> SegmentationStage | None:
    """One stage per model directory for the whole process (both engines use it), or None without weights."""
    return _shared(str(Path(model_dir).resolve()))
