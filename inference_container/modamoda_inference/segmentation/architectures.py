"""Randomly initialised SAM and CLIP of the segmentation stage: full size (for speed and FLOP benchmarks, where
the weights do not matter) and tiny (for offline tests), optionally written in the ``/opt/ml/model`` layout.

``full`` is the architecture the stage is meant to run: SAM ViT-H (``facebook/sam-vit-huge``: a 32-layer,
1280-wide ViT image encoder at 1024x1024, the prompt encoder and the two-way mask decoder; 641 M parameters)
and CLIP ViT-L/14 (``openai/clip-vit-large-patch14``: a 24-layer ViT at 224x224 and a 12-layer text encoder;
428 M). ``tiny`` has the same structure with a few channels, so one photo through the stage takes well under a
second on a CPU. Nothing is downloaded: CLIP's tokenizer is the small-vocabulary one of
:func:`modamoda_inference.diffusion.architectures.tokenizer` (the token ids do not matter for random weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modamoda_inference.diffusion import weights

SAM_DIR = "segmentation/sam"
CLIP_DIR = "segmentation/clip"


@dataclass(frozen=True)
class SegmentationArchitecture:
    name: str
    sam_vision: dict[str, Any]
    sam_prompt: dict[str, Any]
    sam_decoder: dict[str, Any]
    sam_image_size: int
    clip_text: dict[str, Any]
    clip_vision: dict[str, Any]
    clip_projection: int


ARCHITECTURES: dict[str, SegmentationArchitecture] = {
    "full": SegmentationArchitecture(
        name="full",
        sam_vision={
            "hidden_size": 1280,
            "num_hidden_layers": 32,
            "num_attention_heads": 16,
            "mlp_dim": 5120,
            "global_attn_indexes": [7, 15, 23, 31],
            "image_size": 1024,
            "patch_size": 16,
            "output_channels": 256,
            "window_size": 14,
        },
        sam_prompt={"hidden_size": 256, "image_size": 1024, "patch_size": 16, "image_embedding_size": 64},
        sam_decoder={"hidden_size": 256},
        sam_image_size=1024,
        clip_text={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "max_position_embeddings": 77,
            "projection_dim": 768,
        },
        clip_vision={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 768,
        },
        clip_projection=768,
    ),
    "tiny": SegmentationArchitecture(
        name="tiny",
        sam_vision={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 64,
            "global_attn_indexes": [1],
            "image_size": 64,
            "patch_size": 8,
            "output_channels": 16,
            "window_size": 4,
            "num_pos_feats": 8,
        },
        sam_prompt={
            "hidden_size": 16,
            "image_size": 64,
            "patch_size": 8,
            "image_embedding_size": 8,
            "mask_input_channels": 4,
        },
        sam_decoder={"hidden_size": 16, "num_attention_heads": 2, "mlp_dim": 32, "iou_head_hidden_dim": 16},
        sam_image_size=64,
        clip_text={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "projection_dim": 16,
        },
        clip_vision={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 16,
        },
        clip_projection=16,
    ),
}


def sam_config(arch: SegmentationArchitecture) -> Any:
    from transformers import SamConfig, SamMaskDecoderConfig, SamPromptEncoderConfig, SamVisionConfig

    return SamConfig(
        vision_config=SamVisionConfig(**arch.sam_vision).to_dict(),
        prompt_encoder_config=SamPromptEncoderConfig(**arch.sam_prompt).to_dict(),
        mask_decoder_config=SamMaskDecoderConfig(**arch.sam_decoder).to_dict(),
    )


def clip_config(arch: SegmentationArchitecture, vocab_size: int) -> Any:
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(
        vocab_size=vocab_size, bos_token_id=0, eos_token_id=1, pad_token_id=2, **arch.clip_text
    )
    vision = CLIPVisionConfig(**arch.clip_vision)
    return CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=arch.clip_projection
    )


def sam_processor(arch: SegmentationArchitecture) -> Any:
    from transformers import SamImageProcessor, SamProcessor

    side = arch.sam_image_size
    return SamProcessor(
        image_processor=SamImageProcessor(
            size={"longest_edge": side}, pad_size={"height": side, "width": side}
        )
    )


def clip_processor(arch: SegmentationArchitecture) -> Any:
    from transformers import CLIPImageProcessor, CLIPProcessor

    from modamoda_inference.diffusion.architectures import tokenizer

    side = int(arch.clip_vision["image_size"])
    return CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        ),
        tokenizer=tokenizer(),
    )


def build_models(
    arch_name: str = "tiny", *, seed: int = 0, device: str | torch.device | None = None
) -> tuple[Any, Any, Any, Any]:
    """(SamModel, SamProcessor, CLIPModel, CLIPProcessor) with random weights (``torch.manual_seed(seed)``).
    ``device="meta"`` builds shapes only (FLOP counting without memory)."""
    from transformers import CLIPModel, SamModel

    arch = ARCHITECTURES[arch_name]
    sam_proc, clip_proc = sam_processor(arch), clip_processor(arch)
    torch.manual_seed(seed)
    sam: Any
    clip: Any
    if device is not None and str(device) == "meta":
        with torch.device("meta"):
            sam = SamModel(sam_config(arch))
            clip = CLIPModel(clip_config(arch, len(clip_proc.tokenizer)))
    else:
        sam = SamModel(sam_config(arch))
        torch.manual_seed(seed + 1)
        clip = CLIPModel(clip_config(arch, len(clip_proc.tokenizer)))
        if device is not None:
            sam, clip = sam.to(device), clip.to(device)
    return sam.eval(), sam_proc, clip.eval(), clip_proc


def write_model_dir(root: Path, arch_name: str = "tiny", *, seed: int = 0, version: str = "test") -> Path:
    """Random SAM and CLIP of ``arch_name`` under ``root/segmentation/{sam,clip}`` with the manifest (merged
    into an existing ``modamoda-model.json``, e.g. the tiny diffusion models'); returns ``root``."""
    sam, sam_proc, clip, clip_proc = build_models(arch_name, seed=seed)
    root.mkdir(parents=True, exist_ok=True)
    sam.save_pretrained(root / SAM_DIR)
    sam_proc.save_pretrained(root / SAM_DIR)
    clip.save_pretrained(root / CLIP_DIR)
    clip_proc.save_pretrained(root / CLIP_DIR)
    info = {
        SAM_DIR: {"source": f"random:sam-{arch_name}", "revision": f"seed-{seed}", "licence": "Apache-2.0"},
        CLIP_DIR: {"source": f"random:clip-{arch_name}", "revision": f"seed-{seed}", "licence": "MIT"},
    }
    path = root / weights.MANIFEST_NAME
    if path.is_file():
        old = weights.read_manifest(root)
        for name, comp in old["components"].items():
            info.setdefault(name, {k: v for k, v in comp.items() if k not in ("files", "kind")})
        manifest = weights.build_manifest(
            root,
            name=str(old.get("name") or "modamoda"),
            version=str(old.get("version") or version),
            dtype=str(old.get("dtype") or "float32"),
            components=info,
            defaults=old.get("defaults") or {},
        )
    else:
        manifest = weights.build_manifest(
            root,
            name=f"modamoda-segmentation-{arch_name}-random",
            version=version,
            dtype="float32",
            components=info,
        )
    weights.write_manifest(root, manifest)
    return root
