"""The model directory: the documented layout validates; missing or damaged weights are clear errors."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modamoda_inference.diffusion import weights
from modamoda_inference.diffusion.engine import DiffusionEngine
from modamoda_inference.diffusion.pipeline import RuntimeSettings
from modamoda_inference.engines import load_engines
from modamoda_inference.errors import EngineUnavailable

UNET = "sdxl-inpaint/unet/diffusion_pytorch_model.safetensors"


def manifest_of(root: Path) -> dict[str, Any]:
    return json.loads((root / weights.MANIFEST_NAME).read_text())


def edit_manifest(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = manifest_of(root)
    change(data)
    (root / weights.MANIFEST_NAME).write_text(json.dumps(data))


def record(data: dict[str, Any], comp: str, rel: str) -> dict[str, Any]:
    return next(f for f in data["components"][comp]["files"] if f["path"] == rel)


def reason(root: Path, verify: str = "size") -> str:
    with pytest.raises(weights.WeightsError) as info:
        weights.validate(root, verify=verify)
    assert isinstance(info.value, EngineUnavailable)
    assert info.value.code == "engine_unavailable"
    assert info.value.http_status == 503
    assert info.value.message.startswith("diffusion weights: ")
    return info.value.reason


def test_the_tiny_layout_validates(tiny_model_dir: Path) -> None:
    manifest = weights.validate(tiny_model_dir, verify="sha256")
    assert set(manifest.components) == {"sdxl-inpaint", "controlnet-openpose-sdxl", "ip-adapter", "upscaler"}
    assert manifest.defaults["size"] == 64
    assert manifest.defaults["steps"] == 2
    assert manifest.defaults["guidance_scale"] == 5.0  # the documented default, not overridden
    unet = record(manifest.data, "sdxl-inpaint", "unet/diffusion_pytorch_model.safetensors")
    assert unet["dtype"] == "F32"
    assert len(unet["sha256"]) == 64
    assert manifest.components["ip-adapter"].weight_name == "ip-adapter_sdxl.safetensors"
    assert manifest.describe()["components"]["sdxl-inpaint"]["source"] == "random:tiny"


def test_missing_directory_and_manifest(tmp_path: Path, model_copy: Path) -> None:
    assert reason(tmp_path / "nope") == "model_dir_missing"
    assert reason(tmp_path) == "manifest_missing"
    (model_copy / weights.MANIFEST_NAME).write_text("{ not json")
    assert reason(model_copy) == "manifest_malformed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="something-else"), "'format' must be"),
        (lambda d: d.update(format_version=99), "format_version 99 is not supported"),
        (lambda d: d.update(dtype="int8"), "dtype must be one of"),
        (lambda d: d.update(components=[]), "'components' must be an object"),
        (lambda d: d["components"].update(refiner={"files": []}), "unknown components"),
        (lambda d: d["components"]["controlnet-openpose-sdxl"].update(files=[]), "lists no weight files"),
        (
            lambda d: d["components"]["controlnet-openpose-sdxl"]["files"].append(
                {"path": "../../etc/passwd"}
            ),
            "leaves the component folder",
        ),
    ],
)
def test_malformed_manifest(model_copy: Path, change: Callable[[dict[str, Any]], None], message: str) -> None:
    edit_manifest(model_copy, change)
    with pytest.raises(weights.WeightsError, match=message) as info:
        weights.validate(model_copy)
    assert info.value.reason == "manifest_malformed"


def test_missing_components_and_files(model_copy: Path) -> None:
    shutil.rmtree(model_copy / "sdxl-inpaint" / "unet")
    with pytest.raises(
        weights.WeightsError, match=r"sdxl-inpaint/unet/config.json is missing \[component_missing\]"
    ):
        weights.validate(model_copy)


def test_missing_weight_file(model_copy: Path) -> None:
    (model_copy / UNET).unlink()
    assert reason(model_copy) == "file_missing"


def test_required_component_not_listed(model_copy: Path) -> None:
    edit_manifest(model_copy, lambda d: d["components"].pop("controlnet-openpose-sdxl"))
    assert reason(model_copy) == "component_missing"


def test_unlisted_optional_folder_is_refused(model_copy: Path) -> None:
    edit_manifest(model_copy, lambda d: d["components"].pop("upscaler"))
    assert reason(model_copy) == "manifest_malformed"
    shutil.rmtree(model_copy / "upscaler")
    assert weights.validate(model_copy).has("upscaler") is False


def test_truncated_file(model_copy: Path) -> None:
    path = model_copy / UNET
    path.write_bytes(path.read_bytes()[:-100])
    assert reason(model_copy) == "file_size_mismatch"
    # even with the manifest's size brought in line, the safetensors header shows the truncation
    edit_manifest(
        model_copy,
        lambda d: record(d, "sdxl-inpaint", UNET.split("/", 1)[1]).update(bytes=path.stat().st_size),
    )
    assert reason(model_copy) == "file_malformed"


def test_corrupt_header_and_wrong_dtype(model_copy: Path) -> None:
    path = model_copy / UNET
    data = bytearray(path.read_bytes())
    edit_manifest(model_copy, lambda d: record(d, "sdxl-inpaint", UNET.split("/", 1)[1]).update(dtype="F16"))
    with pytest.raises(weights.WeightsError, match="holds F32 tensors, the manifest says F16") as info:
        weights.validate(model_copy)
    assert info.value.reason == "dtype_mismatch"
    data[0:8] = (2**40).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    assert reason(model_copy) == "file_malformed"


def test_checksum_is_checked_on_request(model_copy: Path) -> None:
    path = model_copy / UNET
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, valid header, different weights
    path.write_bytes(bytes(data))
    weights.validate(model_copy, verify="size")  # the fast default does not read the data
    assert reason(model_copy, verify="sha256") == "file_checksum_mismatch"


def test_verify_mode_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODAMODA_VERIFY_WEIGHTS", raising=False)
    assert weights.verify_mode_from_env() == "size"
    monkeypatch.setenv("MODAMODA_VERIFY_WEIGHTS", "SHA256")
    assert weights.verify_mode_from_env() == "sha256"
    monkeypatch.setenv("MODAMODA_VERIFY_WEIGHTS", "md5")
    with pytest.raises(ValueError, match="MODAMODA_VERIFY_WEIGHTS"):
        weights.verify_mode_from_env()


def test_unloadable_config_is_load_failed(model_copy: Path, cpu_settings: RuntimeSettings) -> None:
    config = model_copy / "controlnet-openpose-sdxl" / "config.json"
    config.write_text(json.dumps({"_class_name": "ControlNetModel", "block_out_channels": "lots"}))
    rel = "config.json"
    edit_manifest(
        model_copy,
        lambda d: record(d, "controlnet-openpose-sdxl", rel).update(
            bytes=config.stat().st_size, sha256=weights.sha256_file(config)
        ),
    )
    weights.validate(model_copy, verify="sha256")  # the files are what the manifest says ...
    engine = DiffusionEngine(settings=cpu_settings)
    with pytest.raises(weights.WeightsError) as info:  # ... but diffusers cannot build the model
        engine.load(model_copy)
    assert info.value.reason == "load_failed"
    assert not engine.ready


def test_registry_leaves_a_broken_diffusion_engine_out(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.rmtree(model_copy / "sdxl-inpaint" / "unet")
    with caplog.at_level(logging.WARNING, logger="modamoda_inference"):
        engines = load_engines(["studio", "diffusion"], model_copy)
    assert list(engines) == ["studio"]
    messages = [r.__dict__.get("fields", {}).get("reason", "") for r in caplog.records]
    assert any("sdxl-inpaint/unet/config.json is missing [component_missing]" in m for m in messages)


# -- the segmentation group (SAM + CLIP) next to the diffusion group ------------------------------------------

SAM_WEIGHTS = "segmentation/sam/model.safetensors"


@pytest.fixture
def both_copy(tiny_model_dir_with_segmentation: Path, tmp_path: Path) -> Path:
    """A private copy of a model directory with both groups, to damage."""
    dst = tmp_path / "model-both"
    shutil.copytree(tiny_model_dir_with_segmentation, dst)
    return dst


def segmentation_error(root: Path, verify: str = "size") -> weights.WeightsError:
    with pytest.raises(weights.WeightsError) as info:
        weights.validate(root, verify=verify, group="segmentation")
    assert info.value.http_status == 503
    assert info.value.message.startswith("segmentation weights: ")
    return info.value


def test_both_groups_validate_independently(tiny_model_dir_with_segmentation: Path) -> None:
    root = tiny_model_dir_with_segmentation
    diffusion = weights.validate(root, verify="sha256", group="diffusion")
    segmentation = weights.validate(root, verify="sha256", group="segmentation")
    assert set(diffusion.components) == {"sdxl-inpaint", "controlnet-openpose-sdxl", "ip-adapter", "upscaler"}
    assert set(segmentation.components) == {"segmentation/sam", "segmentation/clip"}
    assert segmentation.components["segmentation/sam"].info["licence"] == "Apache-2.0"
    assert segmentation.components["segmentation/clip"].info["licence"] == "MIT"
    assert diffusion.defaults["size"] == 64  # the diffusion models' manifest survived the merge
    with pytest.raises(ValueError, match="group must be one of"):
        weights.validate(root, group="everything")


def test_diffusion_only_directory_has_no_segmentation(tiny_model_dir: Path) -> None:
    error = segmentation_error(tiny_model_dir)
    assert error.reason == "component_missing"
    assert "segmentation/sam" in error.detail


@pytest.mark.parametrize("licence", [None, "", "  ", 7])
def test_segmentation_licence_must_be_recorded(both_copy: Path, licence: Any) -> None:
    def change(data: dict[str, Any]) -> None:
        comp = data["components"]["segmentation/clip"]
        comp.pop("licence")
        if licence is not None:
            comp["licence"] = licence

    edit_manifest(both_copy, change)
    error = segmentation_error(both_copy)
    assert error.reason == "manifest_malformed"
    assert "segmentation/clip: the manifest must record the weights' licence" in error.message
    weights.validate(both_copy, group="diffusion")  # the diffusion group does not need one


def test_damaged_segmentation_weights_leave_diffusion_alone(both_copy: Path) -> None:
    path = both_copy / SAM_WEIGHTS
    path.write_bytes(path.read_bytes()[:-64])
    weights.validate(both_copy, verify="sha256", group="diffusion")
    error = segmentation_error(both_copy)
    assert error.reason == "file_size_mismatch"
    assert "segmentation/sam/model.safetensors has" in error.message


def test_segmentation_checksum_is_checked_on_request(both_copy: Path) -> None:
    path = both_copy / SAM_WEIGHTS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    weights.validate(both_copy, verify="size", group="segmentation")
    assert segmentation_error(both_copy, verify="sha256").reason == "file_checksum_mismatch"
    weights.validate(both_copy, verify="sha256", group="diffusion")


def test_missing_segmentation_folder(both_copy: Path) -> None:
    shutil.rmtree(both_copy / "segmentation" / "clip")
    error = segmentation_error(both_copy)
    assert error.reason == "component_missing"
    assert "segmentation/clip/ is missing" in error.message
    weights.validate(both_copy, group="diffusion")
