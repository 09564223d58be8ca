"""scripts/pack_model.py: local weight folders → the /opt/ml/model layout + manifest → model.tar.gz."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
from modamoda_inference.diffusion import weights

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pack_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pack_model", REPO / "scripts" / "pack_model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pack_model"] = module
    spec.loader.exec_module(module)
    return module


def test_pack_tiny_folders_into_a_valid_archive(
    pack_model: ModuleType, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.tar.gz"
    args = [
        f"--component={name}={tiny_model_dir / name}"
        for name in ("sdxl-inpaint", "controlnet-openpose-sdxl", "ip-adapter")
    ]
    args += ["--source", "sdxl-inpaint=diffusers/stable-diffusion-xl-1.0-inpainting-0.1@abc123"]
    args += ["--dtype", "float32", "--version", "2025.11.1", "--out", str(out)]
    assert pack_model.main(args) == 0
    extracted = tmp_path / "opt-ml-model"
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert weights.MANIFEST_NAME in names
        assert all(not n.startswith(("/", "..")) for n in names)
        tar.extractall(extracted, filter="data")
    manifest = weights.validate(extracted, verify="sha256")
    assert manifest.version == "2025.11.1"
    assert set(manifest.components) == {"sdxl-inpaint", "controlnet-openpose-sdxl", "ip-adapter"}
    info = manifest.components["sdxl-inpaint"].info
    assert info["source"] == "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
    assert info["revision"] == "abc123"
    assert manifest.components["ip-adapter"].weight_name == "ip-adapter_sdxl.safetensors"
    source = json.loads((tiny_model_dir / weights.MANIFEST_NAME).read_text())
    assert (
        manifest.data["components"]["sdxl-inpaint"]["files"] == source["components"]["sdxl-inpaint"]["files"]
    )


def test_file_selection(pack_model: ModuleType, tmp_path: Path) -> None:
    folder = tmp_path / "unet"
    for name in (
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.bin",
        "model.ckpt",
        "README.md",
        ".git/HEAD",
        "sub/diffusion_pytorch_model.safetensors",
    ):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    chosen = {p.as_posix() for p in pack_model.select_files(folder, "fp16")}
    assert chosen == {
        "config.json",
        "diffusion_pytorch_model.fp16.safetensors",
        "sub/diffusion_pytorch_model.safetensors",
    }
    chosen = {p.as_posix() for p in pack_model.select_files(folder, None)}
    assert chosen == {
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "sub/diffusion_pytorch_model.safetensors",
    }


def test_refuses_incomplete_input(pack_model: ModuleType, tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="required components missing: controlnet-openpose-sdxl"):
        pack_model.main(["--component", f"sdxl-inpaint={tiny_model_dir / 'sdxl-inpaint'}", "--no-archive"])
    with pytest.raises(SystemExit, match="unknown component 'refiner'"):
        pack_model.main(["--component", f"refiner={tmp_path}"])
    no_config = tmp_path / "controlnet"
    no_config.mkdir()
    weights_file = "diffusion_pytorch_model.safetensors"
    shutil.copy(tiny_model_dir / "controlnet-openpose-sdxl" / weights_file, no_config / weights_file)
    args = [
        f"--component=sdxl-inpaint={tiny_model_dir / 'sdxl-inpaint'}",
        f"--component=controlnet-openpose-sdxl={no_config}",
    ]
    with pytest.raises(
        SystemExit, match=r"does not validate: .*controlnet-openpose-sdxl/config.json is missing"
    ):
        pack_model.main([*args, "--no-archive"])
    (no_config / weights_file).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(SystemExit, match=r"not a valid safetensors file.*\[file_malformed\]"):
        pack_model.main([*args, "--no-archive"])
