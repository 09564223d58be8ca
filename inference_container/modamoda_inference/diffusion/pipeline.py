"""The diffusers pipelines, built once from the model directory.

* on-model: ``StableDiffusionXLControlNetInpaintPipeline`` (the SDXL inpainting UNet, the OpenPose ControlNet,
  and IP-Adapter when ``ip-adapter/`` is present: the garment picture as an image prompt);
* ghost: ``StableDiffusionXLInpaintPipeline`` over the same modules (no ControlNet; no second copy in memory);
* optional ``StableDiffusionLatentUpscalePipeline`` (x2) when ``upscaler/`` is present;
* optional OpenPose body detector (controlnet-aux) when ``openpose-detector/`` is present.

Runtime settings (environment): ``MODAMODA_DEVICE`` (``auto``: cuda when available, else cpu),
``MODAMODA_DIFFUSION_DTYPE`` (``auto``: float16 on CUDA — bfloat16 when the manifest says the weights are
bfloat16 — and float32 on the CPU), ``MODAMODA_TORCH_COMPILE`` (``1``: ``torch.compile`` the UNet and the
ControlNet; the first call compiles), ``MODAMODA_COMPILE_MODE`` (default ``max-autotune-no-cudagraphs``).
Attention is PyTorch's scaled-dot-product attention (``AttnProcessor2_0``: flash / memory-efficient kernels on
CUDA); on CUDA the UNet, ControlNet and VAE use channels-last memory and VAE tiling is on for large outputs.
A job is deterministic given its seed: every random draw comes from ``torch.Generator(device).manual_seed(seed)``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from modamoda_inference.diffusion.weights import Component, ModelManifest, WeightsError
from modamoda_inference.poses import Pose, from_detection

logger = logging.getLogger("modamoda_inference.diffusion")

_DTYPE_NAMES = ("auto", "float16", "bfloat16", "float32")


def _import_stack() -> tuple[Any, Any]:
    try:
        import diffusers
        import torch
    except ImportError as exc:
        raise WeightsError(
            "dependencies_missing",
            f"torch and diffusers are not installed ({exc}); install inference_container/requirements-diffusion.txt",
        ) from exc
    return torch, diffusers


@dataclass(frozen=True)
class RuntimeSettings:
    device: str
    dtype: str  # float16 | bfloat16 | float32
    compile: bool = False
    compile_mode: str = "max-autotune-no-cudagraphs"
    vae_tiling_from: int = 1536  # px: decode tiles from this output size on (GPU memory)

    @classmethod
    def from_env(cls, manifest: ModelManifest) -> RuntimeSettings:
        torch, _ = _import_stack()
        device = (os.environ.get("MODAMODA_DEVICE") or "auto").strip().lower()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise WeightsError("load_failed", f"MODAMODA_DEVICE={device} but no CUDA device is available")
        dtype = (os.environ.get("MODAMODA_DIFFUSION_DTYPE") or "auto").strip().lower()
        if dtype not in _DTYPE_NAMES:
            raise ValueError(f"MODAMODA_DIFFUSION_DTYPE must be one of {', '.join(_DTYPE_NAMES)}")
        if dtype == "auto":
            dtype = (
                ("bfloat16" if manifest.dtype == "bfloat16" else "float16") if device != "cpu" else "float32"
            )
        compile_ = (os.environ.get("MODAMODA_TORCH_COMPILE") or "0").strip().lower() in ("1", "true", "yes")
        mode = os.environ.get("MODAMODA_COMPILE_MODE") or "max-autotune-no-cudagraphs"
        return cls(device=device, dtype=dtype, compile=compile_, compile_mode=mode)


@dataclass
class GenerationJob:
    prompt: str
    negative_prompt: str
    image: Image.Image
    mask: Image.Image
    width: int
    height: int
    steps: int
    guidance_scale: float
    strength: float
    seed: int
    control_image: Image.Image | None = None
    controlnet_scale: float = 0.8
    reference: Image.Image | None = None
    ip_adapter_scale: float = 0.6


class PoseDetector:
    """controlnet-aux's OpenPose body estimator (``openpose-detector/body_pose_model.pth``)."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    @classmethod
    def load(cls, component: Component, device: str) -> PoseDetector:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from controlnet_aux.open_pose import OpenposeDetector
            from controlnet_aux.open_pose.body import Body
        path = component.path / (component.weight_name or "body_pose_model.pth")
        body = Body(str(path))
        body.to(device)
        return cls(OpenposeDetector(body))

    def detect(self, rgb: np.ndarray, pose_id: str = "detected") -> Pose | None:
        """The most complete person in the photo (fractions → pixels of the photo), or None."""
        poses = self.estimator.detect_poses(np.ascontiguousarray(rgb), include_hand=False, include_face=False)
        if not poses:
            return None
        best = max(poses, key=lambda p: (p.body.total_parts, p.body.total_score))
        points = [None if k is None else (float(k.x), float(k.y)) for k in best.body.keypoints[:18]]
        if sum(p is not None for p in points) < 4 or points[1] is None:
            return None
        height, width = rgb.shape[:2]
        return from_detection(points, width, height, pose_id)


class DiffusionPipelines:
    """The loaded pipelines and how they were set up."""

    def __init__(self, manifest: ModelManifest, settings: RuntimeSettings) -> None:
        self.manifest = manifest
        self.settings = settings
        self.torch, self.diffusers = _import_stack()
        self.dtype = getattr(self.torch, settings.dtype)
        if settings.device == "cpu" and settings.dtype != "float32":
            raise WeightsError(
                "load_failed", f"{settings.dtype} inference needs a CUDA device; use float32 on CPU"
            )
        self.on_model: Any = None
        self.ghost: Any = None
        self.upscaler: Any = None
        self.detector: PoseDetector | None = None
        self.ip_adapter = False
        self.load_ms: dict[str, float] = {}

    # -- loading ----------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, manifest: ModelManifest, settings: RuntimeSettings) -> DiffusionPipelines:
        self = cls(manifest, settings)
        try:
            self._load()
        except WeightsError:
            raise
        except Exception as exc:  # diffusers/transformers/torch raise many kinds of errors on bad folders
            raise WeightsError(
                "load_failed", f"the weights could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        return self

    def _from_pretrained(self, cls: Any, component: Component, **kwargs: Any) -> Any:
        return cls.from_pretrained(
            str(component.path),
            dtype=self.dtype,
            local_files_only=True,
            use_safetensors=not any(str(f.get("path", "")).endswith(".bin") for f in component.info["files"]),
            variant=component.variant,
            **kwargs,
        )

    def _load(self) -> None:
        d = self.diffusers
        torch = self.torch
        import transformers
        from diffusers.models.attention_processor import AttnProcessor2_0

        for lib in (d, transformers):
            lib.utils.logging.set_verbosity_error()
            lib.utils.logging.disable_progress_bar()
        comps = self.manifest.components
        t0 = time.perf_counter()
        controlnet = self._from_pretrained(d.ControlNetModel, comps["controlnet-openpose-sdxl"])
        pipe = self._from_pretrained(
            d.StableDiffusionXLControlNetInpaintPipeline,
            comps["sdxl-inpaint"],
            controlnet=controlnet,
            add_watermarker=False,
        )
        t1 = time.perf_counter()
        for module in (pipe.unet, pipe.controlnet, pipe.vae):
            module.set_attn_processor(AttnProcessor2_0())
        if "ip-adapter" in comps:
            ip = comps["ip-adapter"]
            pipe.load_ip_adapter(
                str(ip.path),
                subfolder="",
                weight_name=ip.weight_name,
                image_encoder_folder="image_encoder",
                local_files_only=True,
            )
            self.ip_adapter = True
        pipe.to(self.settings.device)
        if self.settings.device != "cpu":
            for module in (pipe.unet, pipe.controlnet, pipe.vae):
                module.to(memory_format=torch.channels_last)
        pipe.set_progress_bar_config(disable=True)
        t2 = time.perf_counter()
        ghost = d.StableDiffusionXLInpaintPipeline(
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            text_encoder_2=pipe.text_encoder_2,
            tokenizer=pipe.tokenizer,
            tokenizer_2=pipe.tokenizer_2,
            unet=pipe.unet,
            scheduler=pipe.scheduler,
            image_encoder=pipe.image_encoder,
            feature_extractor=pipe.feature_extractor,
            requires_aesthetics_score=False,
            force_zeros_for_empty_prompt=True,
            add_watermarker=False,
        )
        ghost.set_progress_bar_config(disable=True)
        if self.settings.compile:
            pipe.unet = torch.compile(pipe.unet, mode=self.settings.compile_mode, fullgraph=False)
            pipe.controlnet = torch.compile(pipe.controlnet, mode=self.settings.compile_mode, fullgraph=False)
            ghost.unet = pipe.unet
        self.on_model, self.ghost = pipe, ghost
        if "upscaler" in comps:
            up = self._from_pretrained(d.StableDiffusionLatentUpscalePipeline, comps["upscaler"])
            up.to(self.settings.device)
            up.set_progress_bar_config(disable=True)
            self.upscaler = up
        t3 = time.perf_counter()
        if "openpose-detector" in comps:
            self.detector = PoseDetector.load(comps["openpose-detector"], self.settings.device)
        t4 = time.perf_counter()
        self.load_ms = {
            "pipeline": round((t1 - t0) * 1e3, 1),
            "ip_adapter_and_device": round((t2 - t1) * 1e3, 1),
            "ghost_and_upscaler": round((t3 - t2) * 1e3, 1),
            "detector": round((t4 - t3) * 1e3, 1),
        }

    # -- inference --------------------------------------------------------------------------------------------

    @property
    def alignment(self) -> int:
        """Output sides are multiples of this (VAE factor x UNet down-sampling)."""
        vae = int(self.on_model.vae_scale_factor)
        levels = len(self.on_model.unet.config.block_out_channels) - 1
        return vae * 2**levels

    def generator(self, seed: int) -> Any:
        return self.torch.Generator(device=self.settings.device).manual_seed(int(seed))

    def _common(self, job: GenerationJob) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "image": job.image,
            "mask_image": job.mask,
            "width": job.width,
            "height": job.height,
            "num_inference_steps": job.steps,
            "guidance_scale": job.guidance_scale,
            "strength": job.strength,
            "generator": self.generator(job.seed),
            "output_type": "pil",
        }
        if self.ip_adapter:
            reference = job.reference if job.reference is not None else job.image
            kwargs["ip_adapter_image"] = reference
        return kwargs

    def _vae_tiling(self, width: int, height: int) -> None:
        vae = self.on_model.vae
        if self.settings.device != "cpu" and max(width, height) >= self.settings.vae_tiling_from:
            vae.enable_tiling()
        else:
            vae.disable_tiling()

    def generate_on_model(self, job: GenerationJob) -> Image.Image:
        if job.control_image is None:
            raise ValueError("on-model generation needs a pose map")
        if self.ip_adapter:
            self.on_model.set_ip_adapter_scale(job.ip_adapter_scale)
        self._vae_tiling(job.width, job.height)
        with self.torch.inference_mode():
            out = self.on_model(
                **self._common(job),
                control_image=job.control_image,
                controlnet_conditioning_scale=job.controlnet_scale,
            )
        return out.images[0].convert("RGB")

    def generate_ghost(self, job: GenerationJob) -> Image.Image:
        if self.ip_adapter:
            self.ghost.set_ip_adapter_scale(job.ip_adapter_scale)
        self._vae_tiling(job.width, job.height)
        with self.torch.inference_mode():
            out = self.ghost(**self._common(job))
        return out.images[0].convert("RGB")

    def upscale(self, image: Image.Image, prompt: str, seed: int, steps: int) -> Image.Image:
        if self.upscaler is None:
            raise ValueError("no upscaler loaded")
        with self.torch.inference_mode():
            out = self.upscaler(
                prompt=prompt,
                image=image,
                num_inference_steps=steps,
                guidance_scale=0.0,
                generator=self.generator(seed),
                output_type="pil",
            )
        return out.images[0].convert("RGB")

    def describe(self) -> dict[str, Any]:
        return {
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "attention": "sdpa",
            "compiled": self.settings.compile,
            "ip_adapter": self.ip_adapter,
            "upscaler": self.upscaler is not None,
            "pose_detector": self.detector is not None,
        }
