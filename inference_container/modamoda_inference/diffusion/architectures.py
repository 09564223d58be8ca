"""Randomly initialised models of the engine's architecture: full-size SDXL (for speed benchmarks, where the
weights do not matter) and tiny ones (for offline tests), optionally written in the ``/opt/ml/model`` layout.

``sdxl`` is the real architecture: the SDXL inpainting UNet (9 input channels: latents, mask, masked-image
latents; 2.6 B parameters), the SDXL OpenPose ControlNet (the UNet's encoder, 1.25 B), the SDXL VAE, CLIP ViT-L
and OpenCLIP ViT-bigG text encoders, and the CLIP ViT-H image encoder of IP-Adapter SDXL (vit-h). ``tiny`` has
the same structure with a few channels (like diffusers' own ``get_dummy_components``), so a full pipeline call
takes well under a second on a CPU. Nothing is downloaded: the tokenizers are built from a small vocabulary
written here (the token ids do not matter for random weights).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modamoda_inference.diffusion import weights

_SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 9,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "use_linear_projection": True,
    "norm_num_groups": 32,
}
_TINY_UNET: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 9,
    "out_channels": 4,
    "block_out_channels": (32, 64),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2),
    "attention_head_dim": (2, 4),
    "cross_attention_dim": 64,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 80,  # 6 * 8 + 32 (text_encoder_2's projection)
    "use_linear_projection": True,
}
_CONTROLNET_KEYS = (
    "block_out_channels",
    "layers_per_block",
    "down_block_types",
    "transformer_layers_per_block",
    "attention_head_dim",
    "cross_attention_dim",
    "addition_embed_type",
    "addition_time_embed_dim",
    "projection_class_embeddings_input_dim",
    "use_linear_projection",
)
_SDXL_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": False,  # as madebyollin/sdxl-vae-fp16-fix, the VAE to pack for fp16
}
_TINY_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (32, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "latent_channels": 4,
    "force_upcast": False,
}
_CLIP_L: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}
_CLIP_BIGG: dict[str, Any] = {
    **_CLIP_L,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}
_TINY_TEXT: dict[str, Any] = {
    "vocab_size": 1000,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 5,
    "projection_dim": 32,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}
_VIT_H: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 16,
    "num_hidden_layers": 32,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
_TINY_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "patch_size": 8,
    "image_size": 32,
    "projection_dim": 32,
}
_TINY_UPSCALER_UNET: dict[str, Any] = {
    "act_fn": "gelu",
    "attention_head_dim": 8,
    "norm_num_groups": None,
    "block_out_channels": (32, 32, 64, 64),
    "time_cond_proj_dim": 160,
    "conv_in_kernel": 1,
    "conv_out_kernel": 1,
    "cross_attention_dim": 32,
    "down_block_types": (
        "KDownBlock2D",
        "KCrossAttnDownBlock2D",
        "KCrossAttnDownBlock2D",
        "KCrossAttnDownBlock2D",
    ),
    "in_channels": 8,
    "mid_block_type": None,
    "only_cross_attention": False,
    "out_channels": 5,
    "resnet_time_scale_shift": "scale_shift",
    "time_embedding_type": "fourier",
    "timestep_post_act": "gelu",
    "up_block_types": ("KCrossAttnUpBlock2D", "KCrossAttnUpBlock2D", "KCrossAttnUpBlock2D", "KUpBlock2D"),
}
_TINY_UPSCALER_VAE: dict[str, Any] = {
    "block_out_channels": (32, 32, 64, 64),
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "latent_channels": 4,
    "force_upcast": False,
}
_TINY_UPSCALER_TEXT: dict[str, Any] = {**_TINY_TEXT, "hidden_act": "quick_gelu", "projection_dim": 512}
_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


@dataclass(frozen=True)
class Architecture:
    name: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any]
    text_encoder_2: dict[str, Any]
    image_encoder: dict[str, Any]
    controlnet_conditioning_channels: tuple[int, ...]
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def controlnet(self) -> dict[str, Any]:
        cfg = {k: self.unet[k] for k in _CONTROLNET_KEYS if k in self.unet}
        return {
            **cfg,
            "in_channels": 4,
            "conditioning_embedding_out_channels": self.controlnet_conditioning_channels,
        }

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae["block_out_channels"]) - 1)


ARCHITECTURES: dict[str, Architecture] = {
    "sdxl": Architecture(
        "sdxl",
        _SDXL_UNET,
        _SDXL_VAE,
        _CLIP_L,
        _CLIP_BIGG,
        _VIT_H,
        (16, 32, 96, 256),
        {"size": 1024, "steps": 30},
    ),
    "tiny": Architecture(
        "tiny",
        _TINY_UNET,
        _TINY_VAE,
        _TINY_TEXT,
        _TINY_TEXT,
        _TINY_VISION,
        (16, 32),
        {"size": 64, "steps": 2, "upscale_steps": 2},
    ),
}


def tokenizer(model_max_length: int = 77) -> Any:
    """A CLIP BPE tokenizer over a small vocabulary (letters, digits, a few merges): no download."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    symbols = string.ascii_lowercase + string.digits + ",.-#'"
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges: Any = [("o", "n</w>"), ("t", "h"), ("e", "r</w>")]  # pairs (the type hints say strings)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    pad = "!"  # SDXL's second tokenizer pads with "!"
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token=pad, model_max_length=model_max_length)


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def build_components(
    arch: Architecture,
    *,
    seed: int = 0,
    ip_adapter: bool = True,
    device: str | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """The pipeline's modules with random weights (seeded). Each module is created on ``device`` (default: the
    CPU) and cast to ``dtype`` right away, so building full-size SDXL needs little more memory than its weights."""
    from diffusers import AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    def make(factory: Any, *args: Any) -> Any:
        _seeded(seed)
        with torch.device(device or "cpu"):
            module = factory(*args)
        return module.to(dtype=dtype) if dtype is not None else module

    unet = make(lambda: UNet2DConditionModel(**arch.unet))
    controlnet = make(lambda: ControlNetModel(**arch.controlnet))
    vae = make(lambda: AutoencoderKL(**arch.vae))
    text_encoder = make(CLIPTextModel, CLIPTextConfig(**arch.text_encoder))
    text_encoder_2 = make(CLIPTextModelWithProjection, CLIPTextConfig(**arch.text_encoder_2))
    components: dict[str, Any] = {
        "unet": unet,
        "controlnet": controlnet,
        "vae": vae,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": tokenizer(),
        "tokenizer_2": tokenizer(),
        "scheduler": EulerDiscreteScheduler(**_SCHEDULER),
        "image_encoder": None,
        "feature_extractor": None,
    }
    if ip_adapter:
        components["image_encoder"] = make(
            CLIPVisionModelWithProjection, CLIPVisionConfig(**arch.image_encoder)
        )
        size = int(arch.image_encoder["image_size"])
        components["feature_extractor"] = CLIPImageProcessor(size=size, crop_size=size)
    return components


def ip_adapter_state_dict(unet: Any, image_embed_dim: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random IP-Adapter weights for ``unet`` in the released checkpoints' flat layout (``image_proj.*``:
    the projection of the image embedding to 4 tokens; ``ip_adapter.<n>.to_k_ip/to_v_ip``: the decoupled
    cross-attention of every cross-attention layer, numbered 1, 3, 5 ... in ``unet.attn_processors`` order)."""
    gen = torch.Generator().manual_seed(seed)
    cross = int(unet.config.cross_attention_dim)
    blocks = list(unet.config.block_out_channels)
    sd: dict[str, torch.Tensor] = {
        "image_proj.proj.weight": torch.randn(cross * 4, image_embed_dim, generator=gen) * 0.02,
        "image_proj.proj.bias": torch.zeros(cross * 4),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name[len("up_blocks.")])]
        else:
            hidden = blocks[int(name[len("down_blocks.")])]
        sd[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross, generator=gen) * 0.02
        sd[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross, generator=gen) * 0.02
        key += 2
    return sd


def nested_ip_adapter(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The flat checkpoint layout → the ``{"image_proj": ..., "ip_adapter": ...}`` dict ``load_ip_adapter`` takes."""
    out: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for k, v in flat.items():
        group, _, rest = k.partition(".")
        out[group][rest] = v
    return out


def build_upscaler(*, seed: int = 0) -> Any:
    """A tiny randomly initialised ``StableDiffusionLatentUpscalePipeline`` (x2)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionLatentUpscalePipeline
    from diffusers import UNet2DConditionModel as UNet
    from transformers import CLIPTextConfig, CLIPTextModel

    _seeded(seed)
    unet = UNet(**_TINY_UPSCALER_UNET)
    _seeded(seed)
    vae = AutoencoderKL(**_TINY_UPSCALER_VAE)
    _seeded(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**_TINY_UPSCALER_TEXT))
    return StableDiffusionLatentUpscalePipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(prediction_type="sample"),
    )


def write_model_dir(
    root: Path,
    arch_name: str = "tiny",
    *,
    seed: int = 0,
    ip_adapter: bool = True,
    upscaler: bool = False,
    version: str = "test",
) -> Path:
    """Write random models of ``arch_name`` in the ``/opt/ml/model`` layout with its manifest; returns ``root``.

    The SDXL inpainting folder is saved as a ``StableDiffusionXLInpaintPipeline`` (as the released inpainting
    checkpoint is), the ControlNet on its own; IP-Adapter as ``ip-adapter_sdxl.safetensors`` + ``image_encoder/``.
    """
    from diffusers import StableDiffusionXLInpaintPipeline
    from safetensors.torch import save_file

    arch = ARCHITECTURES[arch_name]
    comps = build_components(arch, seed=seed, ip_adapter=ip_adapter)
    root.mkdir(parents=True, exist_ok=True)
    inpaint: Any = StableDiffusionXLInpaintPipeline(
        vae=comps["vae"],
        text_encoder=comps["text_encoder"],
        text_encoder_2=comps["text_encoder_2"],
        tokenizer=comps["tokenizer"],
        tokenizer_2=comps["tokenizer_2"],
        unet=comps["unet"],
        scheduler=comps["scheduler"],
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    inpaint.save_pretrained(root / "sdxl-inpaint")
    comps["controlnet"].save_pretrained(root / "controlnet-openpose-sdxl")
    extra: dict[str, dict[str, Any]] = {
        "sdxl-inpaint": {"source": f"random:{arch_name}", "revision": f"seed-{seed}"},
        "controlnet-openpose-sdxl": {"source": f"random:{arch_name}", "revision": f"seed-{seed}"},
    }
    if ip_adapter:
        folder = root / "ip-adapter"
        comps["image_encoder"].save_pretrained(folder / "image_encoder")
        comps["feature_extractor"].save_pretrained(folder / "image_encoder")
        embed_dim = int(arch.image_encoder["projection_dim"])
        save_file(
            ip_adapter_state_dict(comps["unet"], embed_dim, seed=seed),
            str(folder / "ip-adapter_sdxl.safetensors"),
        )
        extra["ip-adapter"] = {"source": f"random:{arch_name}", "weight_name": "ip-adapter_sdxl.safetensors"}
    if upscaler:
        build_upscaler(seed=seed).save_pretrained(root / "upscaler")
        extra["upscaler"] = {"source": "random:tiny"}
    manifest = weights.build_manifest(
        root,
        name=f"modamoda-diffusion-{arch_name}-random",
        version=version,
        dtype="float32",
        components=extra,
        defaults=arch.defaults,
    )
    weights.write_manifest(root, manifest)
    return root
