"""The studio engine's learned path (:mod:`modamoda_inference.engines.learned`) with SAM and CLIP stood in for by
an oracle (:mod:`stubs`): the stage's garment goes through the engine's own matting, hollow and canvas steps; a
form of the garment's own shade — what the colour model cannot tell from the garment — is taken out because it
is named a mannequin; a person, a garment nobody names and an unsure naming are refused with the stage's
evidence; the on-model path's cut-out uses the same stage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from modamoda_inference.diffusion.conditioning import cut_out
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.errors import LowConfidence, NoGarmentFound, PersonInPhoto
from modamoda_inference.schemas import InferenceRequest
from modamoda_inference.segmentation.settings import SegmentationSettings
from modamoda_inference.segmentation.stage import SegmentationStage
from PIL import Image

from tests.inference_container.segmentation.stubs import NamingScorer, OracleSam, oracle_stage

BACKDROP = 222
NAVY = (40, 60, 120)
FORM = (46, 62, 116)  # the form in (almost) the garment's own shade


def scene() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A navy V-neck tee on a navy form: the neck shows above the collar and in the V, a pole and base below."""
    h, w = 460, 360
    img = np.full((h, w, 3), BACKDROP, np.uint8)
    neck = np.zeros((h, w), np.uint8)
    cv2.rectangle(neck, (150, 20), (210, 140), 1, -1)
    pole = np.zeros((h, w), np.uint8)
    cv2.rectangle(pole, (172, 380), (188, 440), 1, -1)
    cv2.rectangle(pole, (120, 440), (240, 452), 1, -1)
    tee = np.zeros((h, w), np.uint8)
    pts = [(60, 90), (140, 80), (180, 130), (220, 80), (300, 90), (350, 170), (300, 200), (290, 180)]
    pts += [(290, 380), (70, 380), (70, 180), (60, 200), (10, 170)]
    cv2.fillPoly(tee, [np.array(pts, np.int32)], 1)
    form = (neck | pole).astype(bool) & ~tee.astype(bool)
    img[form] = FORM
    img[tee > 0] = NAVY
    yy, xx = np.mgrid[0:h, 0:w]
    weave = (5 * np.sin(xx / 4.0) * np.cos(yy / 6.0)).astype(np.int16)
    img = np.where(tee[..., None] > 0, np.clip(img.astype(np.int16) + weave[..., None], 0, 255), img)
    garment = tee.astype(bool)
    return img.astype(np.uint8), {
        "garment": garment,
        "neck": neck.astype(bool) & ~garment,
        "pole": pole.astype(bool) & ~garment,
        "background": ~(garment | form),
    }


def request(**options: object) -> InferenceRequest:
    return InferenceRequest.model_validate(
        {"job_id": str(uuid.uuid4()), "mode": "ghost", "image": {"b64": "AAAA"}, "options": options}
    )


@pytest.fixture
def engine() -> Iterator[StudioEngine]:
    eng = StudioEngine()
    eng.load(__import__("pathlib").Path("/nonexistent-model-dir"))
    assert eng.segmenter is None  # no weights: no stage
    return eng


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_the_learned_garment_goes_through_matting_hollow_and_canvas(engine: StudioEngine) -> None:
    img, parts = scene()
    subject = parts["garment"] | parts["neck"] | parts["pole"]
    masks = [subject, parts["garment"], parts["neck"], parts["pole"], parts["background"]]
    names = ["garment", "garment", "mannequin", "mannequin", "background"]
    # the whole subject is a near-duplicate of the garment (IoU > 0.85) with a lower predicted IoU: dropped
    engine.segmenter = oracle_stage(img, masks, names, ious=[0.9, 0.97, 0.95, 0.95, 0.95])
    result = engine.run(Image.fromarray(img), request(mannequin="auto"))
    meta = result.metadata
    assert meta["segmenter"]["name"] == "learned"
    assert (meta["segmenter"]["proposed"], meta["segmenter"]["candidates"]) == (5, 4)
    assert meta["segmenter"]["named"] == {"background": 1, "garment": 1, "mannequin": 2}
    assert meta["quality"]["path"] == "learned"
    assert set(meta["quality"]["checks"]) == {"frame", "edges", "stability", "naming", "masks", "size"}
    assert meta["quality"]["score"] >= meta["quality"]["threshold"]
    assert meta["hollow"]["source"] == "tone"  # the neck in the V is shown hollow
    matte = engine.cutout(img, mannequin="auto", stage=engine.segmenter)
    assert iou(matte.alpha >= 0.5, parts["garment"]) > 0.98
    near = cv2.dilate(parts["garment"].astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # the matting band
    assert not (matte.alpha[parts["pole"] & ~near] > 0.02).any()
    assert float((matte.alpha[parts["neck"]] > 0.5).mean()) < 0.01
    # the finished packshot is the garment's height, not the form's: the pole and base are gone
    canvas = np.asarray(result.image.convert("RGB")).astype(int)
    dark = (canvas.max(axis=2) < 160).any(axis=1)
    rows = np.flatnonzero(dark)
    garment_rows = np.flatnonzero(parts["garment"].any(axis=1))
    x0, y0, x1, y1 = meta["canvas_bbox"]
    assert rows[-1] <= y1 + 2
    assert (y1 - y0) / (x1 - x0) == pytest.approx((garment_rows[-1] + 1 - garment_rows[0]) / 340.0, rel=0.05)


def test_a_person_named_by_the_stage_refuses_the_photo(engine: StudioEngine) -> None:
    img, parts = scene()
    head = parts["neck"]
    engine.segmenter = oracle_stage(
        img, [parts["garment"], head, parts["background"]], ["garment", "person", "background"]
    )
    with pytest.raises(PersonInPhoto) as refused:
        engine.run(Image.fromarray(img), request())
    assert refused.value.details["segmenter"] == "learned"
    assert refused.value.details["person_share"] >= SegmentationSettings().person_area
    assert "Nothing was charged" in refused.value.message


def test_nothing_named_garment_is_no_garment(engine: StudioEngine) -> None:
    img, parts = scene()
    engine.segmenter = oracle_stage(img, [parts["garment"], parts["background"]], ["prop", "background"])
    with pytest.raises(NoGarmentFound) as refused:
        engine.run(Image.fromarray(img), request())
    assert refused.value.details["named"] == {"background": 1, "prop": 1}


def test_an_unsure_naming_is_low_confidence_with_the_stages_evidence(engine: StudioEngine) -> None:
    img, parts = scene()
    masks = [parts["garment"], parts["neck"] | parts["pole"], parts["background"]]

    class Unsure(NamingScorer):
        def logits(self, crops: list[np.ndarray]) -> np.ndarray:
            out = super().logits(crops)
            out[out == 10.0] = 0.4  # every segment barely above the other groups
            return out

    engine.segmenter = SegmentationStage(
        OracleSam(masks), Unsure(img, masks, ["garment", "mannequin", "background"]), SegmentationSettings()
    )
    with pytest.raises(LowConfidence) as refused:
        engine.run(Image.fromarray(img), request(mannequin="auto"))
    details = refused.value.details
    assert details["path"] == "learned"
    assert details["segmenter"] == "learned"
    assert details["checks"]["naming"] < 0.5
    assert "told apart from the other things in the photo" in refused.value.message


def test_studio_option_skips_the_stage(engine: StudioEngine) -> None:
    img, parts = scene()
    sam = OracleSam([parts["garment"]])
    engine.segmenter = SegmentationStage(sam, NamingScorer(img, [parts["garment"]], ["garment"]))
    result = engine.run(Image.fromarray(img), request(segmenter="studio", mannequin="auto"))
    assert result.metadata["segmenter"] == {"name": "studio"}
    assert result.metadata["quality"]["path"] == "backdrop"
    assert sam.calls == []  # the stage was never asked


def test_the_on_model_cut_out_uses_the_same_stage() -> None:
    img, parts = scene()
    stage = oracle_stage(
        img,
        [parts["garment"], parts["neck"], parts["pole"], parts["background"]],
        ["garment", "mannequin", "mannequin", "background"],
    )
    cut = cut_out(img, "auto", want_hollow=True, stage=stage)
    assert cut.meta["segmentation"] == "learned"
    assert cut.meta["named"] == {"background": 1, "garment": 1, "mannequin": 2}
    assert iou(cut.alpha >= 0.5, parts["garment"]) > 0.98
    assert cut.hollow is not None
    assert (cut.hollow > 0.5).any()
