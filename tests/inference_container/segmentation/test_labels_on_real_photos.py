"""The segmentation stage's label logic on the real-photo dev set's ground-truth segments (``../shared/eval/
real-photos``, read at run time; skipped with a message when absent).

SAM and CLIP are stood in for (:mod:`stubs`): the candidates are what SAM proposes on such photos — the whole
subject (garment and mannequin or hanger together, named by whichever covers more of it), the garment in parts
(horizontal bands, as SAM's part-level masks), each separate piece of the must-not-keep region (form, stand,
hanger, props, person) named by what the photo's category says it is, and the pieces of background — and the
scorer names each crop by the segment it was cut from. What is tested is everything after the models: selection,
crops, the painter's order, the motif rule, the person share. A correctly named set of segments must give back
the garment and leave the rest out, on real shapes: necks inside collars, hooks over shoulders, legs under hems.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from modamoda_inference.segmentation.settings import SegmentationSettings

from bench import real_truth
from tests.inference_container.segmentation.stubs import oracle_stage

SIDE = 320  # working size of this test (long side, px): the label logic does not depend on resolution
OTHER_NAME = {"mannequin": "mannequin", "hanger": "hanger", "worn": "person"}


def _dev_set() -> list[dict[str, Any]]:
    try:
        root = real_truth.data_root()
        entries = real_truth.manifest(root)
    except real_truth.SetMissing as exc:
        pytest.skip(f"real-photo dev set not available: {exc}")
    # the annotations that need no GrabCut refinement (fast to rasterise): most of the set, every category
    chosen = []
    for entry in entries:
        ann = real_truth.annotation(entry["file"])
        if ann is not None and not ann.get("refine"):
            chosen.append(entry)
    return chosen


def _small(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def _pieces(mask: np.ndarray, min_area: int, limit: int) -> list[np.ndarray]:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    order = sorted(range(1, n), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return [lab == i for i in order[:limit] if stats[i, cv2.CC_STAT_AREA] >= min_area]


def candidates(garment: np.ndarray, other: np.ndarray, category: str) -> tuple[list[np.ndarray], list[str]]:
    min_area = max(4, int(0.0005 * garment.size))
    masks: list[np.ndarray] = []
    names: list[str] = []
    if other.any():
        subject = garment | other
        masks.append(subject)
        names.append("garment" if garment.sum() >= other.sum() else OTHER_NAME.get(category, "prop"))
    rows = np.flatnonzero(garment.any(axis=1))
    bands = np.array_split(np.arange(rows[0], rows[-1] + 1), 3)
    for band in bands:
        part = np.zeros_like(garment)
        part[band] = garment[band]
        masks.extend(_pieces(part, min_area, 3))
    names.extend(["garment"] * (len(masks) - len(names)))
    for piece in _pieces(other, min_area, 16):
        masks.append(piece)
        names.append(OTHER_NAME.get(category, "prop"))
    for piece in _pieces(~(garment | other), min_area, 6):
        masks.append(piece)
        names.append("background")
    return masks, names


def test_named_segments_give_back_the_garment_on_real_photos() -> None:
    entries = _dev_set()
    settings = SegmentationSettings(max_candidates=40)
    results = []
    for entry in entries:
        rgb = real_truth.load_photo(real_truth.data_root(), entry["file"])
        truth = real_truth.truth(entry, rgb=rgb)
        assert truth is not None
        h, w = rgb.shape[:2]
        scale = SIDE / max(h, w)
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        garment, other = _small(truth.garment, size), _small(truth.other, size)
        other &= ~garment
        masks, names = candidates(garment, other, truth.category)
        stage = oracle_stage(small, masks, names, settings=settings)
        seg = stage.segment(small, garment | other)
        comp = seg.composition
        inter = np.count_nonzero(comp.garment & garment)
        iou = inter / max(1, np.count_nonzero(comp.garment | garment))
        residue = np.count_nonzero(comp.garment & other) / max(1, np.count_nonzero(other))
        results.append((truth.file, truth.category, truth.expect, iou, residue, comp.person_share))
        # every candidate was named, the stable composition equals the garment (the stubs' masks are crisp)
        assert seg.kept == len(masks), truth.file
        assert np.array_equal(seg.stable, comp.garment), truth.file
    assert len(results) >= 30, "the dev set should give most of its photos to this test"
    for file, category, expect, iou, residue, person_share in results:
        if expect == "refuse":  # a person wearing it: the person's share of the frame refuses the photo
            assert category == "worn"
            assert person_share >= SegmentationSettings().person_area, file
            continue
        assert iou >= 0.99, (file, iou)
        assert residue <= 0.01, (file, residue)
