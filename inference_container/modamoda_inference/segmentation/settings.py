"""The segmentation stage's knobs, in one place (the stage, its tests and ``bench.segmentation_speed`` read them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentationSettings:
    # SAM: the photo's long side as SAM sees it comes from its processor (1024 for the released models). Prompts:
    # the foreground's box with up to three positive points, and a ``point_grid`` x ``point_grid`` grid of
    # single-point prompts inside the box; each prompt asks for SAM's three masks (multimask output).
    point_grid: int = 4
    # candidates kept: SAM's predicted IoU at least ``min_predicted_iou``, the mask stable when its logit
    # threshold moves by ``stability_offset`` (IoU of the two masks at least ``min_stability``), at least
    # ``min_area`` of the frame, and not a near-duplicate (IoU above ``dedupe_iou``) of a better one
    min_predicted_iou: float = 0.7
    stability_offset: float = 1.0
    min_stability: float = 0.85
    min_area: float = 0.0005
    dedupe_iou: float = 0.85
    max_candidates: int = 24
    # CLIP: each candidate's crop (its box grown by ``crop_margin``, everything outside the mask grey) is named
    # against the label set; a segment counts as garment when the garment group's probability is the largest
    # and at least ``garment_margin`` above the next group
    crop_margin: float = 0.1
    garment_margin: float = 0.0
    # person: refuse when person-named segments cover at least ``person_area`` of the frame
    person_area: float = 0.01
    # quality: the lowest mean garment probability (area-weighted) the stage will deliver
    min_garment_probability: float = 0.5
    batch_size: int = 8  # CLIP crops per forward pass
