"""The studio engine's ``learned`` path: the garment from the SAM + CLIP segmentation stage
(:mod:`modamoda_inference.segmentation`), then the engine's own matting, hollow-neck and canvas steps.

The cheap foreground estimate that places SAM's prompts is the studio engine's own: the distance from the fitted
backdrop on a plain backdrop, GrabCut from the frame on a busy one. What the stage names mannequin, dress form or
stand becomes the mannequin (its neck opening is shown hollow); hangers, clips, rails and props are taken out
like it; a person (skin, face, hair) in the photo refuses it without a mannequin option, as on the other paths.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from modamoda_inference.errors import NoGarmentFound, PersonInPhoto
from modamoda_inference.quality import BUSY_BACKDROP_NOISE
from modamoda_inference.segmentation.stage import SegmentationStage

if TYPE_CHECKING:
    from modamoda_inference.engines.studio import Matte, StudioEngine, _Working

PERSON_MESSAGE = (
    "This photo shows someone wearing the garment, and a ghost packshot cannot be made from it. Please send a "
    "photo of the garment on a mannequin, on a hanger or laid flat. Nothing was charged."
)


def foreground(engine: StudioEngine, work: _Working, bg: np.ndarray) -> np.ndarray:
    """Where the subject roughly is, for SAM's prompts: the backdrop-distance subject (``bg``: the backdrop model on
    the working grid) on a backdrop that is not busy, else (or when that finds nothing) GrabCut from the frame."""
    from modamoda_inference.engines.studio import _to_lab

    if work.backdrop.noise < BUSY_BACKDROP_NOISE:
        subject, _, _ = engine._subject(work, _to_lab(work.small_f), bg)
        if float(subject.mean()) >= engine.settings.min_garment_frac:
            return subject
    return engine._rect_subject(work)


def learned_path(
    engine: StudioEngine, work: _Working, mannequin: Any, stage: SegmentationStage, no_garment: str
) -> Matte:
    """The garment's matte by the segmentation stage (see the module docstring); ``matte.learned`` holds the
    stage's evidence for the quality gate and the job's metadata."""
    from modamoda_inference.engines.studio import _Separation

    t0 = time.perf_counter()
    small, backdrop = work.small, work.backdrop
    hs, ws = small.shape[:2]
    bg = backdrop.grid(ws, hs)
    found = foreground(engine, work, bg)
    t1 = time.perf_counter()
    seg = stage.segment(small, found)
    comp = seg.composition
    evidence = {"segmenter": stage.name, **seg.describe()}
    if mannequin in (None, "none") and comp.person_share >= stage.settings.person_area:
        raise PersonInPhoto(PERSON_MESSAGE, details=evidence)
    if float(comp.garment.mean()) < engine.settings.min_garment_frac:
        raise NoGarmentFound(no_garment, details=evidence)
    t2 = time.perf_counter()
    taken_out = comp.mannequin | comp.other
    sep = _Separation(
        model=None,
        mannequin=taken_out,
        mannequin_like=comp.mannequin,
        garment=comp.garment,
        first=seg.stable,
        leftover=0.0,
    )
    subject = comp.garment | taken_out
    matte = engine._finish(small, bg, backdrop, subject, sep, (0.0, 0.0), work.source_size)
    # the stage's boundary between garment and form is a named one: no matting alpha on the form's side beyond
    # the garment's edge pixel (a form of the garment's own shade would otherwise leave a faint smudge)
    edge = cv2.dilate(comp.garment.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    matte.alpha[taken_out & ~edge] = 0.0
    matte.path = "learned"
    matte.learned = evidence
    matte.timings_ms = {
        "backdrop": work.ms,
        "foreground": (t1 - t0) * 1e3,
        **{f"segmentation_{k}": v for k, v in seg.timings_ms.items()},
        "matting": (time.perf_counter() - t2) * 1e3,
    }
    return matte
