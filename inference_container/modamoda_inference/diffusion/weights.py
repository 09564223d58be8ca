"""The model directory (``/opt/ml/model``, where SageMaker unpacks ``model.tar.gz``): layout, manifest, checks.

Layout (``scripts/pack_model.py`` builds it from local weight folders and writes the manifest)::

    /opt/ml/model/
      modamoda-model.json           manifest: format, versions and sources, defaults, every file's size/sha256/dtype
      sdxl-inpaint/                 diffusers SDXL inpainting pipeline folder (model_index.json, unet/ [9 input
                                    channels], vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/,
                                    scheduler/), e.g. diffusers/stable-diffusion-xl-1.0-inpainting-0.1
      controlnet-openpose-sdxl/     diffusers ControlNetModel folder (config.json + weights), e.g.
                                    thibaud/controlnet-openpose-sdxl-1.0
      ip-adapter/                   optional: <weight_name>.safetensors (h94/IP-Adapter sdxl_models/...) and
                                    image_encoder/ (CLIPVisionModelWithProjection folder)
      upscaler/                     optional: diffusers StableDiffusionLatentUpscalePipeline folder
                                    (stabilityai/sd-x2-latent-upscaler)
      openpose-detector/            optional: body_pose_model.pth (lllyasviel/Annotators) for poses from photos
      segmentation/sam/             the segmentation stage (:mod:`modamoda_inference.segmentation`): a transformers
                                    SamModel + SamProcessor folder, e.g. facebook/sam-vit-huge (Apache-2.0)
      segmentation/clip/            ... and a CLIPModel + CLIPProcessor folder, e.g. openai/clip-vit-large-patch14
                                    (MIT)

Components come in two groups that load independently: ``diffusion`` (the diffusion engine: ``sdxl-inpaint`` and
``controlnet-openpose-sdxl`` required, the rest optional) and ``segmentation`` (both folders required, each with
its ``licence`` in the manifest). A model directory may hold either group or both.

Manifest (``modamoda-model.json``)::

    {"format": "modamoda-model", "format_version": 1, "name": "...", "version": "...", "dtype": "float16",
     "defaults": {"size": 1024, "steps": 30, ...},
     "components": {"sdxl-inpaint": {"kind": "diffusers-pipeline", "source": "...", "revision": "...",
                                     "variant": "fp16", "files": [{"path": "unet/config.json", "bytes": 1800,
                                     "sha256": "..."}, {"path": "unet/diffusion_pytorch_model.fp16.safetensors",
                                     "bytes": ..., "sha256": "...", "dtype": "F16"}, ...]}, ...}}

:func:`validate` checks it without importing torch: the folder and the manifest exist and parse, the required
components and their sub-folders are there, every listed file exists with its size, every ``.safetensors``
header parses, is not truncated and holds the dtype the manifest says, and (``verify="sha256"``, env
``MODAMODA_VERIFY_WEIGHTS``) every file's SHA-256 matches. Each problem is a :class:`WeightsError`
(an :class:`EngineUnavailable`, HTTP 503) whose ``reason`` is a stable code.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modamoda_inference.errors import EngineUnavailable

MANIFEST_NAME = "modamoda-model.json"
FORMAT = "modamoda-model"
FORMAT_VERSION = 1
DTYPES = ("float16", "bfloat16", "float32")
SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
VERIFY_MODES = ("size", "sha256")

# component name -> (kind, required, sub-paths that must exist inside it)
COMPONENTS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "sdxl-inpaint": (
        "diffusers-pipeline",
        True,
        (
            "model_index.json",
            "unet/config.json",
            "vae/config.json",
            "text_encoder/config.json",
            "text_encoder_2/config.json",
            "tokenizer",
            "tokenizer_2",
            "scheduler/scheduler_config.json",
        ),
    ),
    "controlnet-openpose-sdxl": ("diffusers-model", True, ("config.json",)),
    "ip-adapter": ("ip-adapter", False, ("image_encoder/config.json",)),
    "upscaler": (
        "diffusers-pipeline",
        False,
        ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer"),
    ),
    "openpose-detector": ("openpose-body", False, ()),
    # the processor's settings are processor_config.json (transformers >= 5 save_pretrained) or
    # preprocessor_config.json (the released hub folders); from_pretrained reads either, so neither is required
    "segmentation/sam": ("transformers-sam", True, ("config.json",)),
    "segmentation/clip": ("transformers-clip", True, ("config.json",)),
}
# which components load together (``validate(group=...)``); ``required`` above is within the group
GROUPS: dict[str, tuple[str, ...]] = {
    "diffusion": ("sdxl-inpaint", "controlnet-openpose-sdxl", "ip-adapter", "upscaler", "openpose-detector"),
    "segmentation": ("segmentation/sam", "segmentation/clip"),
}
# groups whose components must record the licence of their weights (``"licence": "Apache-2.0"``)
LICENSED_GROUPS = frozenset({"segmentation"})
# Weight files a component must list (besides configs), by kind.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
DEFAULTS: dict[str, Any] = {
    "size": 1024,  # long side of the generated image, px
    "steps": 30,
    "guidance_scale": 5.0,
    "strength": 0.99,  # on-model: the person is generated; the background and garment are kept by the mask
    "ghost_strength": 0.95,
    "controlnet_scale": 0.8,
    "ip_adapter_scale": 0.6,
    "upscale_steps": 20,
}


class WeightsError(EngineUnavailable):
    """The model directory is missing, incomplete or damaged. ``reason`` is a stable machine-readable code:
    ``model_dir_missing``, ``manifest_missing``, ``manifest_malformed``, ``component_missing``,
    ``file_missing``, ``file_size_mismatch``, ``file_checksum_mismatch``, ``file_malformed``, ``dtype_mismatch``,
    ``dependencies_missing``, ``load_failed``."""

    def __init__(self, reason: str, message: str, *, what: str = "diffusion weights") -> None:
        super().__init__(f"{what}: {message} [{reason}]")
        self.reason = reason
        self.detail = message


@dataclass(frozen=True)
class Component:
    name: str
    kind: str
    path: Path
    info: dict[str, Any]

    @property
    def variant(self) -> str | None:
        value = self.info.get("variant")
        return str(value) if value else None

    @property
    def weight_name(self) -> str | None:
        value = self.info.get("weight_name")
        return str(value) if value else None

    def describe(self) -> dict[str, Any]:
        keys = ("source", "revision", "version", "variant", "weight_name", "licence")
        return {"kind": self.kind, **{k: self.info[k] for k in keys if self.info.get(k)}}


@dataclass(frozen=True)
class ModelManifest:
    root: Path
    data: dict[str, Any]
    components: dict[str, Component] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.data.get("name") or "modamoda-diffusion")

    @property
    def version(self) -> str:
        return str(self.data.get("version") or "unversioned")

    @property
    def dtype(self) -> str:
        return str(self.data.get("dtype") or "float16")

    @property
    def defaults(self) -> dict[str, Any]:
        merged = dict(DEFAULTS)
        extra = self.data.get("defaults")
        if isinstance(extra, dict):
            merged.update(extra)
        return merged

    def has(self, name: str) -> bool:
        return name in self.components

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "dtype": self.dtype,
            "components": {name: c.describe() for name, c in sorted(self.components.items())},
        }


def verify_mode_from_env() -> str:
    mode = (os.environ.get("MODAMODA_VERIFY_WEIGHTS") or "size").strip().lower()
    if mode not in VERIFY_MODES:
        raise ValueError(f"MODAMODA_VERIFY_WEIGHTS must be one of {', '.join(VERIFY_MODES)}, not {mode!r}")
    return mode


# -- files ------------------------------------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safetensors_dtypes(path: Path) -> set[str]:
    """The tensor dtypes (safetensors names: F16, BF16, F32 ...) in a ``.safetensors`` file's header.

    ValueError when the header does not parse or the file is shorter than the header says (truncated)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError("shorter than a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length <= 1 or length > min(size - 8, 100 * 1024 * 1024):
            raise ValueError(f"header length {length} does not fit a {size}-byte file")
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    dtypes: set[str] = set()
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or "dtype" not in info or "data_offsets" not in info:
            raise ValueError(f"tensor {name!r} has no dtype / data_offsets")
        dtypes.add(str(info["dtype"]))
        end = max(end, int(info["data_offsets"][1]))
    if 8 + length + end > size:
        raise ValueError(f"truncated: the header needs {8 + length + end} bytes, the file has {size}")
    return dtypes


def file_record(path: Path, root: Path) -> dict[str, Any]:
    """A manifest entry for one file: relative path, bytes, sha256, and the dtype of safetensors files."""
    record: dict[str, Any] = {
        "path": path.relative_to(root).as_posix(),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }
    if path.suffix == ".safetensors":
        try:
            dtypes = safetensors_dtypes(path)
        except ValueError as exc:
            raise WeightsError("file_malformed", f"{path} is not a valid safetensors file: {exc}") from exc
        record["dtype"] = "+".join(sorted(dtypes))
    return record


def _component_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def build_manifest(
    root: Path,
    *,
    name: str = "modamoda-diffusion",
    version: str = "dev",
    dtype: str = "float16",
    components: Mapping[str, Mapping[str, Any]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Scan the component folders under ``root`` and return a manifest (``components`` adds per-component info
    such as source, revision, variant, weight_name). Writes nothing."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    extra = dict(components or {})
    unknown = set(extra) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown components {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
    found: dict[str, Any] = {}
    for comp, (kind, _required, _paths) in COMPONENTS.items():
        folder = root / comp
        if not folder.is_dir():
            continue
        info = {"kind": kind, **dict(extra.get(comp, {}))}
        files = _component_files(folder)
        if "variant" not in info and any(".fp16." in p.name for p in files):
            info["variant"] = "fp16"
        if kind == "ip-adapter" and "weight_name" not in info:
            candidates = [p.name for p in files if p.parent == folder and p.suffix in _WEIGHT_SUFFIXES]
            if len(candidates) == 1:
                info["weight_name"] = candidates[0]
        if kind == "openpose-body" and "weight_name" not in info:
            info["weight_name"] = "body_pose_model.pth"
        info["files"] = [file_record(p, folder) for p in files]
        found[comp] = info
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "dtype": dtype,
        "defaults": dict(defaults or {}),
        "components": found,
    }


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> Path:
    path = root / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return path


# -- validation -------------------------------------------------------------------------------------------------


def read_manifest(model_dir: Path) -> dict[str, Any]:
    if not model_dir.is_dir():
        raise WeightsError("model_dir_missing", f"no model directory at {model_dir}")
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        raise WeightsError(
            "manifest_missing",
            f"{path} is missing; build the model directory with scripts/pack_model.py",
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError("manifest_malformed", f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WeightsError("manifest_malformed", f"{MANIFEST_NAME} must be a JSON object")
    if data.get("format") != FORMAT:
        raise WeightsError("manifest_malformed", f"{MANIFEST_NAME}: 'format' must be {FORMAT!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            "manifest_malformed",
            f"{MANIFEST_NAME}: format_version {data.get('format_version')!r} is not supported "
            f"(this container reads {FORMAT_VERSION})",
        )
    if data.get("dtype", "float16") not in DTYPES:
        raise WeightsError("manifest_malformed", f"{MANIFEST_NAME}: dtype must be one of {', '.join(DTYPES)}")
    if not isinstance(data.get("components"), dict):
        raise WeightsError("manifest_malformed", f"{MANIFEST_NAME}: 'components' must be an object")
    if "defaults" in data and not isinstance(data["defaults"], dict):
        raise WeightsError("manifest_malformed", f"{MANIFEST_NAME}: 'defaults' must be an object")
    return data


def _check_file(folder: Path, comp: str, record: Any, verify: str) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        raise WeightsError("manifest_malformed", f"{comp}: every file entry needs a 'path'")
    rel = record["path"]
    path = (folder / rel).resolve()
    if folder.resolve() not in path.parents:
        raise WeightsError("manifest_malformed", f"{comp}: file path {rel!r} leaves the component folder")
    if not path.is_file():
        raise WeightsError("file_missing", f"{comp}/{rel} is missing")
    expected = record.get("bytes")
    size = path.stat().st_size
    if isinstance(expected, int) and size != expected:
        raise WeightsError(
            "file_size_mismatch", f"{comp}/{rel} has {size} bytes, the manifest says {expected} (truncated?)"
        )
    if path.suffix == ".safetensors":
        try:
            dtypes = safetensors_dtypes(path)
        except (OSError, ValueError) as exc:
            raise WeightsError(
                "file_malformed", f"{comp}/{rel} is not a valid safetensors file: {exc}"
            ) from exc
        want = record.get("dtype")
        if isinstance(want, str) and "+".join(sorted(dtypes)) != want:
            got = "+".join(sorted(dtypes))
            raise WeightsError(
                "dtype_mismatch", f"{comp}/{rel} holds {got} tensors, the manifest says {want}"
            )
    if verify == "sha256":
        want_sha = record.get("sha256")
        if not isinstance(want_sha, str):
            raise WeightsError("manifest_malformed", f"{comp}/{rel} has no sha256 in the manifest")
        if sha256_file(path) != want_sha:
            raise WeightsError("file_checksum_mismatch", f"{comp}/{rel} does not match its sha256")


def validate(model_dir: Path, *, verify: str | None = None, group: str = "diffusion") -> ModelManifest:
    """Check the model directory's components of ``group`` (see the module docstring); the parsed manifest (with
    that group's components only), or :class:`WeightsError`."""
    mode = verify_mode_from_env() if verify is None else verify
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}")
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}")
    try:
        return _validate(model_dir, mode, group)
    except WeightsError as exc:
        if group == "diffusion":
            raise
        raise WeightsError(exc.reason, exc.detail, what=f"{group} weights") from None


def _validate(model_dir: Path, mode: str, group: str) -> ModelManifest:
    data = read_manifest(model_dir)
    listed: dict[str, Any] = data["components"]
    unknown = sorted(set(listed) - set(COMPONENTS))
    if unknown:
        raise WeightsError(
            "manifest_malformed", f"unknown components {unknown}; known: {', '.join(COMPONENTS)}"
        )
    components: dict[str, Component] = {}
    for comp in GROUPS[group]:
        kind, required, paths = COMPONENTS[comp]
        folder = model_dir / comp
        info = listed.get(comp)
        if info is None:
            if required:
                raise WeightsError("component_missing", f"{MANIFEST_NAME} does not list the {comp} component")
            if folder.exists():
                raise WeightsError(
                    "manifest_malformed", f"{comp}/ is present but {MANIFEST_NAME} does not list it"
                )
            continue
        if not isinstance(info, dict) or not isinstance(info.get("files"), list):
            raise WeightsError("manifest_malformed", f"{comp}: needs a 'files' list")
        if group in LICENSED_GROUPS and not (
            isinstance(info.get("licence"), str) and info["licence"].strip()
        ):
            raise WeightsError(
                "manifest_malformed", f"{comp}: the manifest must record the weights' licence ('licence')"
            )
        if not folder.is_dir():
            raise WeightsError("component_missing", f"{comp}/ is missing under {model_dir}")
        for sub in paths:
            if not (folder / sub).exists():
                raise WeightsError("component_missing", f"{comp}/{sub} is missing")
        weight_name = info.get("weight_name")
        if kind in ("ip-adapter", "openpose-body") and (
            not isinstance(weight_name, str) or not (folder / weight_name).is_file()
        ):
            raise WeightsError("file_missing", f"{comp}: weight file {weight_name!r} is missing")
        records = info["files"]
        if not any(str(r.get("path", "")).endswith(_WEIGHT_SUFFIXES) for r in records if isinstance(r, dict)):
            raise WeightsError("manifest_malformed", f"{comp}: the manifest lists no weight files")
        for record in records:
            _check_file(folder, comp, record, mode)
        components[comp] = Component(comp, kind, folder, info)
    return ModelManifest(model_dir, data, components)


def group_of(component: str) -> str:
    """The group a component belongs to (``diffusion`` or ``segmentation``)."""
    for group, names in GROUPS.items():
        if component in names:
            return group
    raise ValueError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")


def missing_required(names: Iterable[str]) -> list[str]:
    """The required components missing from ``names``, for every group ``names`` has a component of (a pack
    may hold the diffusion group, the segmentation group or both)."""
    given = set(names)
    groups = {group_of(n) for n in given if n in COMPONENTS}
    return [
        c
        for group in GROUPS
        if group in groups or not groups
        for c in GROUPS[group]
        if COMPONENTS[c][1] and c not in given
    ]
