"""The learned segmentation stage (SAM + CLIP) through the whole local stack: API → S3 → state machine → the real
inference container behind the async adapter → SNS → notifier → API.

First the stack's running studio engine is loaded again from a model directory holding the tiny random SAM and
CLIP (what the stack's start does when ``MODEL_DIR`` holds them): a ghost job runs the learned path, random
weights find nothing credible, the job is refused with no charge and its metadata says which segmenter ran. Then
SAM and CLIP are stood in for by an oracle that knows the photo's segments — the job succeeds, is charged once, and the packshot has the garment without the form of the
garment's own shade that the colour model keeps.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.segmentation import architectures
from modamoda_inference.segmentation.settings import SegmentationSettings
from modamoda_inference.segmentation.stage import SegmentationStage
from PIL import Image

from local.stack import LocalStack
from tests.inference_container.segmentation.stubs import OracleSam, OrderedScorer
from tests.inference_container.segmentation.test_learned_path import scene
from tests.reliability import books
from tests.reliability.conftest import new_tenant
from tests.reliability.tally import TALLY
from tests.reliability.test_bad_input import settle
from tests.reliability.test_faults import job_ledger
from tests.reliability.test_refusals import assert_refused, balance, metadata_document

pytestmark = pytest.mark.e2e

SECTION = "bad input"


def studio_of(stack: LocalStack) -> StudioEngine:
    engine = stack.container.service.engines["studio"]
    assert isinstance(engine, StudioEngine)
    return engine


@pytest.fixture
def with_stage(stack: LocalStack) -> Iterator[StudioEngine]:
    engine = studio_of(stack)
    before = engine.segmenter
    yield engine
    engine.segmenter = before
    stack.wait_idle(timeout=90)


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_tiny_random_models_run_the_learned_path_and_nothing_is_charged(
    with_stage: StudioEngine, stack: LocalStack, tmp_path: Path
) -> None:
    # what the stack's start does with MODEL_DIR set: the engine's own load finds the weights and loads the stage
    with_stage.load(architectures.write_model_dir(tmp_path / "model", "tiny"))
    assert with_stage.segmenter is not None
    tenant = new_tenant(stack, "learned-tiny")
    start = balance(tenant)
    img, _ = scene()
    job = tenant.api.wait(tenant.api.upload("tee.png", png(img), "image/png"), timeout=90)
    assert_refused(stack, job, "no_garment_found")
    document = metadata_document(stack, job["id"])
    assert document["segmenter"]["segmenter"] == "learned"
    assert document["segmenter"]["candidates"] == 0
    assert balance(tenant) == start
    settle(stack)
    books.assert_balanced([tenant.tenant_id])
    TALLY.add(SECTION, "photos the tiny random segmenter refused (no charge)", 1)


def test_a_named_form_is_taken_out_and_the_job_charged_once(
    with_stage: StudioEngine, stack: LocalStack
) -> None:
    img, parts = scene()
    masks = [parts["garment"], parts["neck"], parts["pole"], parts["background"]]
    ious = [0.97, 0.96, 0.95, 0.94]  # the order the stage names them in
    with_stage.segmenter = SegmentationStage(
        OracleSam(masks, ious),
        OrderedScorer(["garment", "mannequin", "mannequin", "background"]),
        SegmentationSettings(),
        {"stub": "oracle"},
    )
    tenant = new_tenant(stack, "learned-oracle")
    start = balance(tenant)
    job = tenant.api.wait(
        tenant.api.upload("tee.png", png(img), "image/png", options={"mannequin": "auto"}), timeout=90
    )
    assert job["status"] == "succeeded", job
    assert job_ledger(job["id"]) == ["reserve", "capture"]
    assert balance(tenant) == start - int(job["cost"])
    document = metadata_document(stack, job["id"])
    segmenter = document["engine_meta"]["segmenter"]
    assert segmenter["name"] == "learned"
    assert segmenter["named"] == {"background": 1, "garment": 1, "mannequin": 2}
    assert document["quality"]["path"] == "learned"
    assert job["quality"]["score"] >= job["quality"]["threshold"]
    result = np.asarray(Image.open(io.BytesIO(tenant.api.download(job))).convert("RGB")).astype(int)
    x0, y0, x1, y1 = document["engine_meta"]["canvas_bbox"]
    navy = (result[..., 2] - result[..., 0]) > 50
    rows = np.flatnonzero(navy.any(axis=1))
    assert rows[0] >= y0 - 2
    assert rows[-1] <= y1 + 2
    garment_rows = np.flatnonzero(parts["garment"].any(axis=1))
    garment_cols = np.flatnonzero(parts["garment"].any(axis=0))
    aspect = (garment_rows[-1] + 1 - garment_rows[0]) / (garment_cols[-1] + 1 - garment_cols[0])
    assert (y1 - y0) / (x1 - x0) == pytest.approx(aspect, rel=0.05)
    settle(stack)
    books.assert_balanced([tenant.tenant_id])
    TALLY.add(SECTION, "photos whose named form the learned segmenter took out", 1)
