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


# -- the segmentation stage's weights (SAM + CLIP), alone or with the diffusion group -------------------------

SAM, CLIP = "segmentation/sam", "segmentation/clip"
LICENCES = ["--licence", f"{SAM}=Apache-2.0", "--licence", f"{CLIP}=MIT"]
# what a hub folder has besides the files transformers loads
HUB_EXTRAS = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "README.md", ".gitattributes")


def segmentation_args(root: Path) -> list[str]:
    return [f"--component={name}={root / name}" for name in (SAM, CLIP)]


def test_pack_segmentation_only(
    pack_model: ModuleType, tiny_model_dir_with_segmentation: Path, tmp_path: Path
) -> None:
    root = tiny_model_dir_with_segmentation
    out = tmp_path / "model.tar.gz"
    args = [*segmentation_args(root), *LICENCES, "--source", f"{SAM}=facebook/sam-vit-huge@rev1"]
    assert pack_model.main([*args, "--dtype", "float32", "--version", "2025.12.1", "--out", str(out)]) == 0
    extracted = tmp_path / "opt-ml-model"
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert f"{SAM}/model.safetensors" in names
        assert f"{CLIP}/tokenizer.json" in names
        tar.extractall(extracted, filter="data")
    manifest = weights.validate(extracted, verify="sha256", group="segmentation")
    assert manifest.name == "modamoda-segmentation"
    assert manifest.version == "2025.12.1"
    assert set(manifest.components) == {SAM, CLIP}
    assert manifest.components[SAM].info["licence"] == "Apache-2.0"
    assert manifest.components[CLIP].info["licence"] == "MIT"
    assert manifest.components[SAM].info["source"] == "facebook/sam-vit-huge"
    assert manifest.components[SAM].info["revision"] == "rev1"
    assert manifest.describe()["components"][CLIP] == {"kind": "transformers-clip", "licence": "MIT"}
    source = json.loads((root / weights.MANIFEST_NAME).read_text())
    for name in (SAM, CLIP):
        assert manifest.data["components"][name]["files"] == source["components"][name]["files"]
    with pytest.raises(weights.WeightsError, match="sdxl-inpaint") as info:
        weights.validate(extracted, verify="size", group="diffusion")
    assert info.value.reason == "component_missing"


def test_pack_both_groups(
    pack_model: ModuleType, tiny_model_dir_with_segmentation: Path, tmp_path: Path
) -> None:
    root = tiny_model_dir_with_segmentation
    staging = tmp_path / "staging"
    args = [f"--component={name}={root / name}" for name in ("sdxl-inpaint", "controlnet-openpose-sdxl")]
    args += [*segmentation_args(root), *LICENCES, "--licence", "sdxl-inpaint=openrail++"]
    assert pack_model.main([*args, "--dtype", "float32", "--staging", str(staging), "--no-archive"]) == 0
    diffusion = weights.validate(staging, verify="sha256", group="diffusion")
    segmentation = weights.validate(staging, verify="sha256", group="segmentation")
    assert diffusion.name == "modamoda"
    assert set(diffusion.components) == {"sdxl-inpaint", "controlnet-openpose-sdxl"}
    assert diffusion.components["sdxl-inpaint"].info["licence"] == "openrail++"
    # a licence is optional outside the segmentation group
    assert "licence" not in diffusion.components["controlnet-openpose-sdxl"].info
    assert set(segmentation.components) == {SAM, CLIP}


def test_pack_hub_style_segmentation_folders(
    pack_model: ModuleType, tiny_model_dir_with_segmentation: Path, tmp_path: Path
) -> None:
    """Folders as the hub releases them (preprocessor_config.json, PyTorch / TensorFlow / Flax copies of the
    weights, README, git files): only what transformers loads is packed, and it loads."""
    folders = {}
    for name, processor in ((SAM, "SamProcessor"), (CLIP, "CLIPProcessor")):
        folder = tmp_path / "hub" / name.rsplit("/", 1)[1]
        shutil.copytree(tiny_model_dir_with_segmentation / name, folder)
        saved = json.loads((folder / "processor_config.json").read_text())
        (folder / "processor_config.json").unlink()
        (folder / "preprocessor_config.json").write_text(
            json.dumps({**saved["image_processor"], "processor_class": processor})
        )
        for extra in HUB_EXTRAS:
            (folder / extra).write_bytes(b"x")
        folders[name] = folder
    staging = tmp_path / "staging"
    args = [f"--component={name}={folder}" for name, folder in folders.items()]
    assert pack_model.main([*args, *LICENCES, "--staging", str(staging), "--no-archive"]) == 0
    assert {p.name for p in (staging / SAM).iterdir()} == {
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    }
    assert {p.name for p in (staging / CLIP).iterdir()} == {
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    weights.validate(staging, verify="sha256", group="segmentation")
    from transformers import CLIPProcessor, SamProcessor

    assert SamProcessor.from_pretrained(staging / SAM).image_processor.size.longest_edge == 64
    assert type(CLIPProcessor.from_pretrained(staging / CLIP).tokenizer).__name__.startswith("CLIPTokenizer")


def test_file_selection_keeps_tokenizer_and_processor_files(pack_model: ModuleType, tmp_path: Path) -> None:
    folder = tmp_path / "clip-vit-large-patch14"
    kept = {
        "config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "model.safetensors",
    }
    for name in kept | set(HUB_EXTRAS):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    for variant in (None, "fp16"):
        assert {p.as_posix() for p in pack_model.select_files(folder, variant)} == kept


def test_segmentation_licence_is_required(
    pack_model: ModuleType, tiny_model_dir_with_segmentation: Path
) -> None:
    args = [*segmentation_args(tiny_model_dir_with_segmentation), "--no-archive"]
    with pytest.raises(
        SystemExit,
        match=r"licence of the weights is required for segmentation/clip: add --licence segmentation/clip=",
    ):
        pack_model.main([*args, "--licence", f"{SAM}=Apache-2.0"])
    with pytest.raises(SystemExit, match=f"required for {SAM}, {CLIP}"):
        pack_model.main(args)
    with pytest.raises(SystemExit, match="--licence takes NAME=VALUE"):
        pack_model.main([*args, *LICENCES, "--licence", f"{SAM}= "])
    with pytest.raises(
        SystemExit, match=r"--licence: upscaler is not packed \(no --component upscaler=FOLDER\)"
    ):
        pack_model.main([*args, *LICENCES, "--licence", "upscaler=MIT"])


def test_segmentation_group_must_be_complete(
    pack_model: ModuleType, tiny_model_dir_with_segmentation: Path
) -> None:
    args = [
        "--component",
        f"{SAM}={tiny_model_dir_with_segmentation / SAM}",
        "--licence",
        f"{SAM}=Apache-2.0",
    ]
    with pytest.raises(SystemExit, match=r"^required components missing: segmentation/clip$"):
        pack_model.main([*args, "--no-archive"])
    # with the diffusion group the segmentation group is still checked
    diffusion = [
        f"--component={name}={tiny_model_dir_with_segmentation / name}"
        for name in ("sdxl-inpaint", "controlnet-openpose-sdxl")
    ]
    with pytest.raises(SystemExit, match=r"^required components missing: segmentation/clip$"):
        pack_model.main([*diffusion, *args, "--no-archive"])
