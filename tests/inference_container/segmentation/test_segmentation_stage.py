"""The segmentation stage with tiny random SAM and CLIP models (:mod:`modamoda_inference.segmentation.
architectures`, seeded), written in the ``/opt/ml/model`` layout and loaded through the real loader, the engine
registry and ``/invocations``; fully offline, on the CPU."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
from pathlib import Path

os.environ.setdefault("MODAMODA_DEVICE", "cpu")

import numpy as np
import pytest
import torch
from modamoda_inference.diffusion import weights
from modamoda_inference.engines import load_engines
from modamoda_inference.errors import EngineUnavailable
from modamoda_inference.segmentation import architectures
from modamoda_inference.segmentation.settings import SegmentationSettings
from modamoda_inference.segmentation.stage import (
    CLIP_MEAN_RGB,
    SegmentationStage,
    choose,
    crop_for_clip,
    load_stage,
    shared_stage,
)
from modamoda_inference.server import create_server

from tests.inference_container.conftest import RunningServer, encode
from tests.inference_container.test_inference_server import call, job

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MODAMODA_DEVICE", "cpu")


@pytest.fixture(scope="session")
def seg_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return architectures.write_model_dir(tmp_path_factory.mktemp("seg-model"), "tiny")


@pytest.fixture(scope="session")
def stage(seg_model_dir: Path) -> SegmentationStage:
    return load_stage(seg_model_dir)


def tee() -> np.ndarray:
    img = np.full((240, 200, 3), 222, np.uint8)
    img[60:220, 40:160] = (40, 60, 120)
    img[40:60, 80:120] = (40, 60, 120)
    return img


def test_the_tiny_models_load_through_the_real_loader(stage: SegmentationStage, seg_model_dir: Path) -> None:
    info = stage.describe()
    assert info["name"] == "learned"
    assert info["device"] == "cpu"
    assert info["dtype"] == "float32"
    models = info["models"]
    assert models["segmentation/sam"]["licence"] == "Apache-2.0"
    assert models["segmentation/clip"]["licence"] == "MIT"
    assert info["sam"]["input"] == 64
    assert info["clip"]["input"] == 32
    manifest = weights.validate(seg_model_dir, group="segmentation", verify="sha256")
    assert set(manifest.components) == {"segmentation/sam", "segmentation/clip"}


def test_the_stage_is_deterministic_and_random_weights_propose_nothing_credible(
    stage: SegmentationStage,
) -> None:
    fg = np.zeros((240, 200), bool)
    fg[40:220, 40:160] = True
    first, second = stage.segment(tee(), fg), stage.segment(tee(), fg)
    assert first.proposed == second.proposed == 3 * (1 + stage.settings.point_grid**2)
    # random SAM weights predict IoUs near zero: nothing passes the stage's bar, so nothing is called garment
    assert first.kept == 0
    assert not first.composition.garment.any()
    assert first.describe() == second.describe()


def test_with_the_bars_lowered_random_masks_are_named_and_composed(
    stage: SegmentationStage,
) -> None:
    loose = SegmentationStage(
        stage.sam,
        stage.scorer,
        SegmentationSettings(min_predicted_iou=-1.0, min_stability=0.0, dedupe_iou=1.0),
    )
    fg = np.zeros((240, 200), bool)
    fg[40:220, 40:160] = True
    a, b = loose.segment(tee(), fg), loose.segment(tee(), fg)
    assert a.kept > 0
    assert a.kept == len(a.composition.names)
    assert set(a.composition.names) <= {"garment", "mannequin", "person", "hanger", "prop", "background"}
    assert np.array_equal(a.composition.garment, b.composition.garment)
    assert a.composition.garment.shape == (240, 200)
    assert 0.0 <= a.composition.garment_probability <= 1.0


def test_crops_for_clip_are_square_with_the_rest_grey() -> None:
    img = tee()
    mask = np.zeros((240, 200), bool)
    mask[60:220, 40:160] = True
    crop = crop_for_clip(img, mask, 0.1)
    assert crop.shape[0] == crop.shape[1] == 192  # 160 rows + 2 x 16 margin, padded square
    assert tuple(crop[0, 0]) == CLIP_MEAN_RGB
    assert tuple(crop[96, 96]) == (40, 60, 120)


def test_shared_stage_is_one_per_directory_and_none_without_or_with_damaged_weights(
    seg_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert shared_stage(seg_model_dir) is shared_stage(seg_model_dir)
    assert shared_stage(tmp_path / "nothing-here") is None
    damaged = tmp_path / "damaged"
    shutil.copytree(seg_model_dir, damaged)
    target = damaged / "segmentation" / "sam" / "model.safetensors"
    target.write_bytes(target.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="modamoda_inference.segmentation"):
        assert shared_stage(damaged) is None
    assert "segmentation stage failed to load" in caplog.text


def test_choose_follows_the_option(stage: SegmentationStage) -> None:
    assert choose("auto", stage) is stage
    assert choose("learned", stage) is stage
    assert choose("studio", stage) is None
    assert choose("auto", None) is None
    with pytest.raises(EngineUnavailable, match="segmenter auto or studio"):
        choose("learned", None)


def test_a_ghost_request_through_invocations_runs_the_learned_path(seg_model_dir: Path) -> None:
    engines = load_engines(["studio"], seg_model_dir)
    assert engines["studio"].segmenter is not None  # type: ignore[attr-defined]
    image = {"b64": base64.b64encode(encode(tee())).decode()}
    with RunningServer(create_server("127.0.0.1", 0, engines)) as srv:
        status, _, body = call(srv, "POST", "/invocations", job(image))
        # random weights: SAM proposes nothing credible, so the photo is refused (no charge), saying which ran
        assert status == 422
        error = json.loads(body)["error"]
        assert error["code"] == "no_garment_found"
        assert error["details"]["segmenter"] == "learned"
        assert error["details"]["candidates"] == 0
        status, headers, body = call(srv, "POST", "/invocations", job(image, segmenter="studio"))
        assert status == 200
        assert json.loads(headers["x-modamoda-meta"])["engine_meta"]["segmenter"] == {"name": "studio"}


def test_learned_is_refused_clearly_where_no_stage_is_loaded(tmp_path: Path) -> None:
    engines = load_engines(["studio"], tmp_path)
    image = {"b64": base64.b64encode(encode(tee())).decode()}
    with RunningServer(create_server("127.0.0.1", 0, engines)) as srv:
        status, _, body = call(srv, "POST", "/invocations", job(image, segmenter="learned"))
        assert status == 503
        assert "segmenter auto or studio" in json.loads(body)["error"]["message"]
        status, _, _ = call(srv, "POST", "/invocations", job(image))  # auto: the studio engine's own
        assert status == 200
