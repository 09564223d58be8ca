"""SAM and CLIP through ``transformers`` (no vendored model code): loading from the model directory, proposing
masks for prompts, naming crops against the label set.

``SamRunner`` and ``ClipScorer`` are what :class:`~modamoda_inference.segmentation.stage.SegmentationStage`
calls; tests can hand the stage other objects with the same two methods (``propose``, ``logits``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modamoda_inference.diffusion.weights import WeightsError
from modamoda_inference.segmentation import labels
from modamoda_inference.segmentation.prompts import Prompts

WHAT = "segmentation weights"


def import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise WeightsError(
            "dependencies_missing",
            f"torch and transformers are not installed ({exc}); install inference_container/"
            "requirements-diffusion.txt",
            what=WHAT,
        ) from exc
    return torch


def runtime_from_env() -> tuple[str, str]:
    """(device, dtype) from ``MODAMODA_DEVICE`` (auto: cuda when there is one) and ``MODAMODA_SEGMENTATION_DTYPE``
    (auto: float16 on a GPU, float32 on the CPU)."""
    torch = import_torch()
    device = (os.environ.get("MODAMODA_DEVICE") or "auto").strip().lower()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise WeightsError(
            "load_failed", f"MODAMODA_DEVICE={device} but no CUDA device is available", what=WHAT
        )
    dtype = (os.environ.get("MODAMODA_SEGMENTATION_DTYPE") or "auto").strip().lower()
    if dtype not in ("auto", "float16", "bfloat16", "float32"):
        raise ValueError("MODAMODA_SEGMENTATION_DTYPE must be one of auto, float16, bfloat16, float32")
    if dtype == "auto":
        dtype = "float32" if device == "cpu" else "float16"
    return device, dtype


def _from_pretrained(
    name: str, model_cls: Any, processor_cls: Any, folder: Path, device: str, dtype: str
) -> tuple[Any, Any]:
    """(model on ``device`` in eval mode, processor) from a local folder, or ``WeightsError("load_failed")``."""
    torch = import_torch()
    try:
        processor = processor_cls.from_pretrained(str(folder), local_files_only=True)
        model = model_cls.from_pretrained(
            str(folder), local_files_only=True, torch_dtype=getattr(torch, dtype)
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise WeightsError(
            "load_failed", f"{name} did not load from {folder.name}: {exc}", what=WHAT
        ) from exc
    return model.to(device).eval(), processor


@dataclass
class Proposals:
    logits: np.ndarray  # (n, h, w) float32: SAM's mask logits at the image's size (mask = logits > 0)
    predicted_iou: np.ndarray  # (n,) SAM's own estimate of each mask's IoU


class SamRunner:
    """SAM (``SamModel`` + ``SamProcessor``): one image embedding per photo, then the box prompt and the point
    prompts, three masks each."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu", dtype: str = "float32") -> None:
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype

    @classmethod
    def load(cls, folder: Path, device: str, dtype: str) -> SamRunner:
        from transformers import SamModel, SamProcessor

        model, processor = _from_pretrained("SAM", SamModel, SamProcessor, folder, device, dtype)
        return cls(model, processor, device, dtype)

    @property
    def input_side(self) -> int:
        size = self.processor.image_processor.size
        longest = size.get("longest_edge") if hasattr(size, "get") else getattr(size, "longest_edge", None)
        return int(longest or 1024)

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config.vision_config
        return {
            "input": self.input_side,
            "vision_width": int(cfg.hidden_size),
            "vision_layers": int(cfg.num_hidden_layers),
        }

    def propose(self, image: np.ndarray, prompts: Prompts) -> Proposals:
        torch = import_torch()
        h, w = image.shape[:2]
        scale = self.input_side / max(h, w)
        inputs = self.processor(images=np.array(image, np.uint8), return_tensors="pt")  # a writable copy
        dtype = getattr(torch, self.dtype)
        pixel_values = inputs["pixel_values"].to(self.device, dtype)
        box = torch.tensor([[list(prompts.box)]], dtype=dtype, device=self.device) * scale
        points = torch.as_tensor(prompts.points, dtype=dtype, device=self.device)[None, :, None, :] * scale
        point_labels = torch.ones(points.shape[:3], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(pixel_values)
            by_box = self.model(image_embeddings=embeddings, input_boxes=box, multimask_output=True)
            by_point = self.model(
                image_embeddings=embeddings,
                input_points=points,
                input_labels=point_labels,
                multimask_output=True,
            )
        low = torch.cat([by_box.pred_masks[0], by_point.pred_masks[0]], dim=0).float()  # (prompts, 3, m, m)
        ious = torch.cat([by_box.iou_scores[0], by_point.iou_scores[0]], dim=0).float()
        masks = self.processor.image_processor.post_process_masks(
            low[None].cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"], binarize=False
        )[0]
        logits = masks.reshape(-1, h, w).numpy().astype(np.float32)
        return Proposals(logits=logits, predicted_iou=ious.reshape(-1).cpu().numpy().astype(np.float32))


class ClipScorer:
    """CLIP (``CLIPModel`` + ``CLIPProcessor``) zero-shot over :data:`labels.LABELS`: the labels' text embeddings
    (each the mean of its prompt templates) are computed once, at load."""

    def __init__(
        self, model: Any, processor: Any, device: str = "cpu", dtype: str = "float32", batch_size: int = 8
    ) -> None:
        torch = import_torch()
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.batch_size = batch_size
        texts = [p for _, label in labels.LABELS for p in labels.prompts(label)]
        tokens = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
        with torch.inference_mode():
            feats = model.get_text_features(**tokens)
            feats = getattr(feats, "pooler_output", feats).float()
            feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            per_label = feats.reshape(len(labels.LABELS), len(labels.TEMPLATES), -1).mean(dim=1)
            self.text = per_label / per_label.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            self.scale = float(model.logit_scale.exp().float().clamp(max=100.0))

    @classmethod
    def load(cls, folder: Path, device: str, dtype: str, batch_size: int = 8) -> ClipScorer:
        from transformers import CLIPModel, CLIPProcessor

        model, processor = _from_pretrained("CLIP", CLIPModel, CLIPProcessor, folder, device, dtype)
        return cls(model, processor, device, dtype, batch_size)

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config.vision_config
        return {
            "input": int(cfg.image_size),
            "vision_width": int(cfg.hidden_size),
            "vision_layers": int(cfg.num_hidden_layers),
        }

    def logits(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(n, len(LABELS)) scaled cosine similarities of the crops ((h, w, 3) uint8 each) to the labels."""
        torch = import_torch()
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = list(crops[start : start + self.batch_size])
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                feats = self.model.get_image_features(
                    pixel_values=pixels.to(self.device, getattr(torch, self.dtype))
                )
                feats = getattr(feats, "pooler_output", feats).float()
            feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            out.append((self.scale * feats @ self.text.T).cpu().numpy())
        if not out:
            return np.zeros((0, len(labels.LABELS)), np.float32)
        return np.concatenate(out).astype(np.float32)
