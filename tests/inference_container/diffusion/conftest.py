"""Fixtures for the diffusion engine's tests: tiny random SDXL-architecture models (seeded), written in the
documented ``/opt/ml/model`` layout once per session, and loaded through the real code. Fully offline (the
Hugging Face hub is never asked for anything) and on the CPU."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MODAMODA_DEVICE", "cpu")

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from modamoda_inference.diffusion import architectures
from modamoda_inference.diffusion.engine import DiffusionEngine
from modamoda_inference.diffusion.pipeline import RuntimeSettings

MANNEQUIN = (245, 243, 238)
# The tiny models' operations are so small that thread hand-offs dominate: one thread is several times faster
# on a 2-core machine (and not slower elsewhere).
torch.set_num_threads(1)
CPU = RuntimeSettings(device="cpu", dtype="float32")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random models (seed 0) in the /opt/ml/model layout: SDXL inpainting pipeline, OpenPose ControlNet,
    IP-Adapter (image encoder + adapter weights), x2 latent upscaler, and modamoda-model.json."""
    return architectures.write_model_dir(
        tmp_path_factory.mktemp("model"), "tiny", ip_adapter=True, upscaler=True
    )


@pytest.fixture(scope="session")
def tiny_model_dir_with_segmentation(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny diffusion models plus the segmentation stage's tiny random SAM and CLIP (both groups in one
    /opt/ml/model, one manifest). Read only: copy it to damage it."""
    from modamoda_inference.segmentation import architectures as segmentation_architectures

    root = tmp_path_factory.mktemp("model-both") / "model"
    shutil.copytree(tiny_model_dir, root)
    return segmentation_architectures.write_model_dir(root, "tiny")


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path) -> DiffusionEngine:
    eng = DiffusionEngine(verify="sha256", settings=CPU)
    eng.load(tiny_model_dir)
    return eng


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model directory, to damage."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


def garment_photo(
    width: int = 300, height: int = 360, colour: tuple[int, int, int] = (40, 60, 120)
) -> np.ndarray:
    """A T-shirt on a light-grey backdrop (no mannequin)."""
    img = np.full((height, width, 3), 222, np.uint8)
    sx, sy = width / 360, height / 400
    pts = [(60, 90), (140, 80), (180, 110), (220, 80), (300, 90), (350, 170), (300, 200), (290, 180)]
    pts += [(290, 380), (70, 380), (70, 180), (60, 200), (10, 170)]
    poly = np.array([(round(x * sx), round(y * sy)) for x, y in pts], np.int32)
    cv2.fillPoly(img, [poly], colour)
    yy, xx = np.mgrid[0:height, 0:width]
    texture = (6 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.int16)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    img = np.where(mask[..., None] > 0, np.clip(img.astype(np.int16) + texture[..., None], 0, 255), img)
    return img.astype(np.uint8)


def mannequin_photo() -> np.ndarray:
    """A V-neck T-shirt on a white mannequin whose neck shows through the opening."""
    img = np.full((400, 360, 3), 222, np.uint8)
    cv2.rectangle(img, (150, 20), (210, 140), MANNEQUIN, -1)
    pts = [(60, 90), (140, 80), (180, 130), (220, 80), (300, 90), (350, 170), (300, 200), (290, 180)]
    pts += [(290, 380), (70, 380), (70, 180), (60, 200), (10, 170)]
    cv2.fillPoly(img, [np.array(pts, np.int32)], (40, 60, 120))
    return img


@pytest.fixture(scope="session")
def garment_rgb() -> np.ndarray:
    return garment_photo()


@pytest.fixture(scope="session")
def mannequin_rgb() -> np.ndarray:
    return mannequin_photo()


@pytest.fixture(scope="session")
def mannequin_hex() -> str:
    return "#{:02X}{:02X}{:02X}".format(*MANNEQUIN)


@pytest.fixture(scope="session")
def cpu_settings() -> RuntimeSettings:
    return CPU
