"""The ``diffusion`` engine: on-model pictures and generative ghost packshots from SDXL weights.

``on-model``: the garment is cut out of the photo (the studio engine's matte), placed on a body in the chosen
pose (``options.pose_id`` from the pose library, or a pose detected in ``options.pose_image``), and SDXL
inpainting paints the person around it, guided by ControlNet OpenPose (the pose map) and IP-Adapter (the garment
as an image prompt); the background (``library:<id>`` or a colour, which also goes into the prompt) is kept
outside the person; finally the original garment pixels go back over the result wherever its mask is solid
(:mod:`.compose`). Optional x2 upscaler stage (``options.upscale``).

``ghost``: the mannequin seen through the neck opening (``options.mannequin``: ``auto`` or a colour) is painted
as the inside of the garment by SDXL inpainting; the garment is kept exactly and laid on the background. Without a
mannequin there is nothing to generate and the result is the plain cut-out (``engine_meta.generated`` false).

Sizes: ``options.size`` is the generated image's long side (default from the model manifest, 1024), the other
side follows the preset's aspect ratio (rounded to the model's alignment); ``upscale`` doubles both.
Deterministic: the same request (seed included) gives the same picture on the same hardware and software.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modamoda_inference import backgrounds, poses
from modamoda_inference.canvas import Preset, get_preset
from modamoda_inference.diffusion import weights
from modamoda_inference.diffusion.compose import composite
from modamoda_inference.diffusion.conditioning import Cutout, Layers, cut_out, ghost_layout, on_model_layout
from modamoda_inference.diffusion.pipeline import DiffusionPipelines, GenerationJob, RuntimeSettings
from modamoda_inference.engines.base import Engine, EngineResult
from modamoda_inference.errors import EngineUnavailable, InvalidImage, InvalidRequest
from modamoda_inference.imageio import decode_image
from modamoda_inference.schemas import ImageRef, InferenceRequest
from modamoda_inference.segmentation.stage import SegmentationStage, choose, shared_stage

logger = logging.getLogger("modamoda_inference.diffusion")

NEGATIVE_ON_MODEL = (
    "deformed, distorted, disfigured, bad anatomy, extra limbs, extra fingers, bad hands, missing limbs, "
    "blurry, lowres, jpeg artifacts, text, watermark, logo, cropped head"
)
NEGATIVE_GHOST = "mannequin, person, skin, neck, head, body, hanger, blurry, lowres, text, watermark, logo"
_VIEWS = {
    "front": "facing the camera",
    "three-quarter-left": "three-quarter view turned left",
    "three-quarter-right": "three-quarter view turned right",
    "side-left": "side profile facing left",
    "side-right": "side profile facing right",
    "back": "seen from behind",
}
_COLOUR_NAMES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("white", (255, 255, 255)),
    ("off-white", (240, 236, 228)),
    ("light grey", (200, 200, 200)),
    ("grey", (128, 128, 128)),
    ("charcoal", (54, 54, 58)),
    ("black", (0, 0, 0)),
    ("beige", (225, 205, 170)),
    ("cream", (250, 240, 205)),
    ("pastel pink", (245, 200, 210)),
    ("pink", (230, 110, 160)),
    ("red", (200, 30, 40)),
    ("orange", (240, 140, 40)),
    ("yellow", (245, 215, 60)),
    ("sage green", (170, 190, 160)),
    ("green", (40, 140, 70)),
    ("teal", (30, 130, 130)),
    ("light blue", (170, 200, 235)),
    ("blue", (40, 80, 190)),
    ("navy", (25, 35, 80)),
    ("lavender", (200, 185, 230)),
    ("purple", (110, 50, 140)),
    ("brown", (120, 80, 50)),
)


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest of a few colour names (for the prompt)."""
    r, g, b = rgb
    return min(
        _COLOUR_NAMES, key=lambda item: sum((a - c) ** 2 for a, c in zip(item[1], (r, g, b), strict=True))
    )[0]


@dataclass
class Prepared:
    """A job ready to run: the layers at the generated size, the pipeline call, and how to finish it."""

    mode: str
    layers: Layers
    job: GenerationJob
    cutout: Cutout
    width: int
    height: int
    upscale: bool
    background_desc: str
    pose: poses.Pose | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class DiffusionEngine(Engine):
    """SDXL inpainting + ControlNet OpenPose + IP-Adapter; see the module docstring."""

    name = "diffusion"
    modes = frozenset({"on-model", "ghost"})

    def __init__(
        self,
        *,
        verify: str | None = None,
        settings: RuntimeSettings | None = None,
        image_source: Any | None = None,
    ) -> None:
        super().__init__()
        self._verify = verify
        self._settings = settings
        self._image_source = image_source
        self._lock = threading.Lock()
        self.manifest: weights.ModelManifest | None = None
        self.pipelines: DiffusionPipelines | None = None
        self.pose_ids: list[str] = []
        self.segmenter: SegmentationStage | None = None  # the learned stage, when its weights are loaded

    # -- loading --------------------------------------------------------------------------------------------------

    def load(self, model_dir: Path) -> None:
        """Check the model directory, load the pipelines once, check the pose library; ``WeightsError``
        (an :class:`EngineUnavailable`) with a reason code when anything is missing or damaged."""
        t0 = time.perf_counter()
        manifest = weights.validate(model_dir, verify=self._verify)
        settings = self._settings or RuntimeSettings.from_env(manifest)
        pipelines = DiffusionPipelines.load(manifest, settings)
        self.pose_ids = poses.verify()
        self.segmenter = shared_stage(model_dir)  # the same stage object as the studio engine's
        poses.render(poses.load(poses.default_pose_id()), 64, 64)  # imports controlnet-aux's drawing code now
        self.manifest, self.pipelines = manifest, pipelines
        self._ready = True
        logger.info(
            "diffusion engine loaded",
            extra={
                "fields": {
                    "model": manifest.describe(),
                    "runtime": pipelines.describe(),
                    "load_ms": {**pipelines.load_ms, "total": round((time.perf_counter() - t0) * 1e3, 1)},
                    "poses": len(self.pose_ids),
                }
            },
        )

    def _loaded(self) -> tuple[weights.ModelManifest, DiffusionPipelines]:
        if self.manifest is None or self.pipelines is None:
            raise EngineUnavailable("the diffusion engine is not loaded")
        return self.manifest, self.pipelines

    # -- request → layers -----------------------------------------------------------------------------------------

    def canvas_size(self, request: InferenceRequest) -> tuple[int, int]:
        """(width, height) of the generated image: ``size`` on the long side, the preset's aspect ratio."""
        manifest, pipes = self._loaded()
        align = pipes.alignment
        preset = get_preset(request.options.preset)
        long_side = int(request.options.size or manifest.defaults["size"])
        long_side = max(align, round(long_side / align) * align)
        aspect = preset.width / preset.height
        if aspect >= 1.0:
            return long_side, max(align, round(long_side / aspect / align) * align)
        return max(align, round(long_side * aspect / align) * align), long_side

    def background(self, request: InferenceRequest, width: int, height: int) -> tuple[np.ndarray, str, str]:
        """(background layer, description, prompt phrase)."""
        opts = request.options
        kind = opts.background_kind
        if kind == "transparent":
            raise InvalidRequest(
                f"{request.mode} on the diffusion engine needs an opaque background: a colour or library:<id>"
            )
        if kind == "library" and opts.library_id is not None:
            layer = backgrounds.render(opts.library_id, width, height)
            entry = next(e for e in backgrounds.manifest()["backgrounds"] if e.get("id") == opts.library_id)
            phrase = f"{str(entry.get('name') or opts.library_id).lower()} background"
            return np.asarray(layer), f"library:{opts.library_id}", phrase
        preset: Preset = get_preset(opts.preset)
        rgb = opts.background_rgb or preset.background_rgb
        layer = np.empty((height, width, 3), np.uint8)
        layer[...] = rgb
        return layer, "#{:02X}{:02X}{:02X}".format(*rgb), f"plain {colour_name(rgb)} studio background"

    def _read(self, ref: ImageRef, what: str) -> Image.Image:
        if ref.s3_uri is not None:
            if self._image_source is None:
                from modamoda_inference.s3io import S3ImageSource

                self._image_source = S3ImageSource()
            data = self._image_source.fetch(ref.s3_uri, ref.version_id)
        else:
            data = ref.inline_bytes()
        try:
            return decode_image(data).image
        except InvalidImage as exc:
            raise InvalidImage(f"{what}: {exc.message}") from exc

    def pose_for(self, request: InferenceRequest) -> tuple[poses.Pose, dict[str, Any]]:
        _, pipes = self._loaded()
        opts = request.options
        if opts.pose_image is not None:
            if pipes.detector is None:
                raise EngineUnavailable(
                    "options.pose_image needs the pose detector's weights (openpose-detector/ in the model "
                    "directory); use options.pose_id to pick a library pose"
                )
            photo = self._read(opts.pose_image, "options.pose_image")
            pose = pipes.detector.detect(np.asarray(photo))
            if pose is None:
                raise InvalidImage("options.pose_image: no person found to take the pose from")
            return pose, {"source": "photo", "keypoints": pose.visible}
        pose_id = opts.pose_id or poses.default_pose_id()
        pose = poses.load(pose_id)
        item = poses.entry(pose_id)
        return pose, {
            "source": "library",
            "id": pose.id,
            "version": pose.version,
            "view": item.get("view"),
            "framing": item.get("framing"),
        }

    def prepare(self, image: Image.Image, request: InferenceRequest) -> Prepared:
        manifest, pipes = self._loaded()
        opts = request.options
        defaults = manifest.defaults
        if opts.upscale and pipes.upscaler is None:
            raise EngineUnavailable(
                "options.upscale needs the upscaler's weights (upscaler/ in the model directory)"
            )
        width, height = self.canvas_size(request)
        background, background_desc, phrase = self.background(request, width, height)
        rgb = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
        steps = int(opts.steps or defaults["steps"])
        guidance = float(
            opts.guidance_scale if opts.guidance_scale is not None else defaults["guidance_scale"]
        )
        meta: dict[str, Any] = {}

        def common(layers: Layers) -> dict[str, Any]:
            """The generation settings both modes share."""
            return {
                "image": Image.fromarray(layers.init_image, "RGB"),
                "mask": Image.fromarray(layers.mask, "L"),
                "width": width,
                "height": height,
                "steps": steps,
                "guidance_scale": guidance,
                "seed": opts.seed,
                "reference": layers.reference,
                "ip_adapter_scale": float(defaults["ip_adapter_scale"]),
            }

        if request.mode == "on-model":
            pose, pose_meta = self.pose_for(request)
            cut = cut_out(rgb, opts.mannequin, stage=choose(opts.segmenter, self.segmenter))
            control = poses.render(pose, width, height)
            layers = on_model_layout(cut, pose, background, control=control)
            view = _VIEWS.get(str(pose_meta.get("view")), "")
            framing = "upper body" if pose_meta.get("framing") == "upper-body" else "full body"
            prompt = ", ".join(
                p
                for p in (
                    "professional e-commerce fashion photo of a model wearing the garment",
                    framing,
                    view,
                    phrase,
                    "soft studio lighting, natural skin, sharp focus, high detail",
                )
                if p
            )
            strength = float(opts.strength if opts.strength is not None else defaults["strength"])
            job = GenerationJob(
                prompt=prompt,
                negative_prompt=NEGATIVE_ON_MODEL,
                strength=strength,
                control_image=Image.fromarray(control, "RGB"),
                controlnet_scale=float(defaults["controlnet_scale"]),
                **common(layers),
            )
            meta["pose"] = pose_meta
        else:
            pose = None
            cut = cut_out(
                rgb, opts.mannequin, want_hollow=opts.hollow, stage=choose(opts.segmenter, self.segmenter)
            )
            layers = ghost_layout(cut, background, fill=get_preset(opts.preset).fill)
            prompt = (
                "invisible ghost mannequin product photo of a garment, the inside of the garment seen through "
                f"the neck opening, inner fabric and back neckline, {phrase}, soft studio lighting, high detail"
            )
            strength = float(opts.strength if opts.strength is not None else defaults["ghost_strength"])
            job = GenerationJob(
                prompt=prompt, negative_prompt=NEGATIVE_GHOST, strength=strength, **common(layers)
            )
            if opts.pose_id or opts.pose_image:
                meta["note"] = "pose options are ignored in ghost mode"
        return Prepared(
            mode=request.mode,
            layers=layers,
            job=job,
            cutout=cut,
            width=width,
            height=height,
            upscale=opts.upscale,
            background_desc=background_desc,
            pose=pose,
            meta=meta,
        )

    def final_layers(self, prepared: Prepared, request: InferenceRequest) -> Layers:
        """The layers at the output size (the generated size, or twice it when upscaled)."""
        if not prepared.upscale:
            return prepared.layers
        width, height = 2 * prepared.width, 2 * prepared.height
        background, _, _ = self.background(request, width, height)
        if prepared.mode == "on-model":
            assert prepared.pose is not None
            return on_model_layout(prepared.cutout, prepared.pose, background)
        return ghost_layout(prepared.cutout, background, fill=get_preset(request.options.preset).fill)

    # -- run ------------------------------------------------------------------------------------------------------

    def run(
        self, image: Image.Image, request: InferenceRequest, inside: Image.Image | None = None
    ) -> EngineResult:
        manifest, pipes = self._loaded()
        t0 = time.perf_counter()
        prepared = self.prepare(image, request)
        t1 = time.perf_counter()
        layers = prepared.layers
        generated_any = bool(layers.mask.any())
        with self._lock:
            if not generated_any:
                generated = layers.background
            elif prepared.mode == "on-model":
                generated = np.asarray(pipes.generate_on_model(prepared.job))
            else:
                generated = np.asarray(pipes.generate_ghost(prepared.job))
            t2 = time.perf_counter()
            if prepared.upscale:
                big = pipes.upscale(
                    Image.fromarray(np.ascontiguousarray(generated), "RGB"),
                    prepared.job.prompt,
                    prepared.job.seed,
                    int(manifest.defaults["upscale_steps"]),
                )
                generated = np.asarray(big)
        t3 = time.perf_counter()
        final = self.final_layers(prepared, request)
        if generated.shape[:2] != (final.height, final.width):
            generated = np.asarray(
                Image.fromarray(np.ascontiguousarray(generated), "RGB").resize(
                    (final.width, final.height), Image.Resampling.LANCZOS
                )
            )
        out = composite(
            np.ascontiguousarray(generated, dtype=np.uint8),
            final.garment,
            final.garment_alpha,
            final.background,
            final.generate,
        )
        t4 = time.perf_counter()
        job = prepared.job
        metadata: dict[str, Any] = {
            "engine": self.name,
            "mode": prepared.mode,
            "generated": generated_any,
            "preset": request.options.preset,
            "background": prepared.background_desc,
            "size": [final.width, final.height],
            "generated_size": [prepared.width, prepared.height],
            "upscaled": prepared.upscale,
            "seed": job.seed,
            "steps": job.steps,
            "guidance_scale": job.guidance_scale,
            "strength": job.strength,
            "generated_fraction": round(layers.generated_fraction, 4),
            "garment_fraction": round(float((layers.garment_alpha > 0).mean()), 4),
            "placement": layers.placement,
            "segmentation": prepared.cutout.meta,
            "model": {"name": manifest.name, "version": manifest.version},
            "runtime": pipes.describe(),
            **prepared.meta,
            "timings_ms": {
                "prepare": round((t1 - t0) * 1e3, 1),
                "generate": round((t2 - t1) * 1e3, 1),
                "upscale": round((t3 - t2) * 1e3, 1),
                "composite": round((t4 - t3) * 1e3, 1),
            },
        }
        if inside is not None:
            metadata["note_inside_image"] = "inside_image is used by the studio engine only"
        return EngineResult(Image.fromarray(out, "RGB"), metadata)
