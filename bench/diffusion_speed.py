"""Speed of the on-model diffusion pipeline: seconds per image, eager vs ``torch.compile``, beside its FLOP floor.

    python -m bench.diffusion_speed                       # GPU: full-size SDXL, 1024x1024, 30 steps, fp16
    python -m bench.diffusion_speed --no-compile          # eager only (compiling takes minutes)
    python -m bench.diffusion_speed --tiny                # CPU smoke run: tiny models, 64x64, 2 steps, seconds

What runs is what the engine runs for an on-model job (:mod:`modamoda_inference.diffusion.pipeline`):
``StableDiffusionXLControlNetInpaintPipeline`` with the full-size SDXL architecture — the 9-channel inpainting UNet
(2.6 B parameters), the OpenPose ControlNet (1.25 B), the SDXL VAE, both text encoders and IP-Adapter's ViT-H
image encoder — with **random weights** (:mod:`modamoda_inference.diffusion.architectures`; speed does not depend
on the weights' values), SDPA attention, channels-last, classifier-free guidance (batch 2 through UNet and
ControlNet), a pose map from the pose library, ``strength=1.0`` so exactly ``--steps`` denoising steps run.
Timed: the whole pipeline call (prompt encoding, IP-Adapter image encoding, VAE encodes, the steps, VAE decode),
after ``--warmup`` calls, median of ``--runs``; then the same with the UNet and the ControlNet compiled
(``--compile-mode``; the compile time is reported apart).

**FLOP floor**: ``torch.utils.flop_counter`` counts the pipeline's matmul/convolution/attention FLOPs for a
1-step and a 2-step call; their difference is one step (UNet + ControlNet at batch 2), the rest the fixed part
(encoders, VAE). FLOPs per image = fixed + steps x per-step; the floor is that divided by the card's dense
FP16/BF16 tensor peak (datasheet; ``--peak-tflops`` overrides): no implementation can be faster. Reported:
seconds/image, the floor, measured/floor and the model-FLOPs utilisation (floor/measured). Target: <= 2.5 s per
1024x1024 image at 30 steps on an H100.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "inference_container"))

TARGET_SECONDS_H100 = 2.5
# Dense (no sparsity) FP16/BF16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s. First match wins.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 125.0),  # as A10 (AWS g5); check against AWS's figure
    ("A10", 125.0),
    ("L4", 121.0),  # AWS g6
)


def resolve_runtime(
    tiny: bool, device: str | None, dtype: str | None, peak_tflops: float | None
) -> tuple[str, str, str, float | None]:
    """(device, dtype, device name, peak TFLOP/s): CUDA when there is one (the CPU for ``tiny``), fp16 on a GPU and
    fp32 on the CPU, the card's datasheet peak unless ``peak_tflops`` is given."""
    import torch

    if device is None:
        device = "cpu" if tiny or not torch.cuda.is_available() else "cuda"
    if dtype is None:
        dtype = "float32" if device == "cpu" else "float16"
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    peak = peak_tflops if peak_tflops is not None else (peak_for(name) if device.startswith("cuda") else None)
    return device, dtype, name, peak


def peak_for(device_name: str) -> float | None:
    for key, value in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def _inputs(size: int, seed: int = 0) -> dict[str, Any]:
    import numpy as np
    from modamoda_inference import poses
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
    mask = np.zeros((size, size), np.uint8)
    mask[size // 8 : size - size // 16, size // 4 : size - size // 4] = 255  # a person-sized region
    pose = poses.render(poses.load(poses.default_pose_id()), size, size)
    reference = Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), "RGB")
    return {
        "prompt": "professional e-commerce fashion photo of a model wearing the garment, full body, facing the camera",
        "negative_prompt": "deformed, blurry, lowres, text, watermark",
        "image": image,
        "mask_image": Image.fromarray(mask, "L"),
        "control_image": Image.fromarray(pose, "RGB"),
        "ip_adapter_image": reference,
        "width": size,
        "height": size,
        "strength": 1.0,
        "guidance_scale": 5.0,
        "controlnet_conditioning_scale": 0.8,
        "output_type": "pil",
    }


def build_pipeline(arch_name: str, device: str, dtype_name: str, ip_adapter: bool) -> Any:
    import torch
    from diffusers import StableDiffusionXLControlNetInpaintPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0
    from modamoda_inference.diffusion import architectures

    dtype = getattr(torch, dtype_name)
    arch = architectures.ARCHITECTURES[arch_name]
    comps = architectures.build_components(arch, seed=0, ip_adapter=ip_adapter, device=device, dtype=dtype)
    pipe = StableDiffusionXLControlNetInpaintPipeline(**comps, add_watermarker=False)
    for module in (pipe.unet, pipe.controlnet, pipe.vae):
        module.set_attn_processor(AttnProcessor2_0())
    if ip_adapter:
        flat = architectures.ip_adapter_state_dict(pipe.unet, int(arch.image_encoder["projection_dim"]))
        nested = architectures.nested_ip_adapter(
            {k: v.to(device=device, dtype=dtype) for k, v in flat.items()}
        )
        pipe.load_ip_adapter(nested, subfolder="", weight_name="", image_encoder_folder=None)
        pipe.set_ip_adapter_scale(0.6)
    pipe.to(device)
    if device != "cpu":
        for module in (pipe.unet, pipe.controlnet, pipe.vae):
            module.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _call(pipe: Any, inputs: dict[str, Any], steps: int, seed: int, device: str) -> Any:
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.inference_mode():
        return pipe(**inputs, num_inference_steps=steps, generator=generator).images[0]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(
    pipe: Any, inputs: dict[str, Any], steps: int, device: str, warmup: int, runs: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    for i in range(warmup):
        _call(pipe, inputs, steps, i, device)
    _sync(device)
    warm = time.perf_counter() - t0
    times = []
    for i in range(runs):
        _sync(device)
        t = time.perf_counter()
        _call(pipe, inputs, steps, 100 + i, device)
        _sync(device)
        times.append(time.perf_counter() - t)
    return {
        "seconds_per_image": statistics.median(times),
        "runs": [round(t, 4) for t in times],
        "warmup_seconds": round(warm, 2),
    }


def flop_counter() -> Any:
    """``FlopCounterMode`` that also counts the CPU flash-attention kernel (PyTorch counts the CUDA ones only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
        return int(sdpa_flop_count(query_shape, key_shape, value_shape))

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    mapping = {op: cpu_sdpa} if op is not None else {}
    return FlopCounterMode(display=False, custom_mapping=mapping)


def count_flops(pipe: Any, inputs: dict[str, Any], device: str) -> dict[str, float]:
    """(fixed, per-step) FLOPs of a pipeline call, from a 1-step and a 2-step call under the FLOP counter."""
    totals = []
    for steps in (1, 2):
        counter = flop_counter()
        with counter:
            _call(pipe, inputs, steps, 0, device)
        totals.append(float(counter.get_total_flops()))
    per_step = totals[1] - totals[0]
    return {"fixed": totals[0] - per_step, "per_step": per_step}


def count_flops_meta(arch_name: str, size: int) -> dict[str, float]:
    """The same count without running anything: the modules built on PyTorch's ``meta`` device (shapes only),
    one forward each under the FLOP counter — seconds on any CPU, no GPU and no memory needed. Per step: UNet +
    ControlNet at batch 2 (classifier-free guidance); fixed: both text encoders (batch 2), the ViT-H image encoder,
    two VAE encodes (image and masked image) and one VAE decode. IP-Adapter's extra attention (4 image tokens) is
    left out (well under 1 %)."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0
    from modamoda_inference.diffusion.architectures import ARCHITECTURES
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    arch = ARCHITECTURES[arch_name]
    f = arch.vae_scale_factor
    with torch.device("meta"):
        unet = UNet2DConditionModel(**arch.unet)
        controlnet = ControlNetModel(**arch.controlnet)
        vae = AutoencoderKL(**arch.vae)
        te1 = CLIPTextModel(CLIPTextConfig(**arch.text_encoder))
        te2 = CLIPTextModel(CLIPTextConfig(**arch.text_encoder_2))
        vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**arch.image_encoder))
        for module in (unet, controlnet, vae):
            module.set_attn_processor(AttnProcessor2_0())
        b, lat = 2, size // f
        cross = int(arch.unet["cross_attention_dim"])
        pooled = int(arch.text_encoder_2["projection_dim"])
        added = {"text_embeds": torch.randn(b, pooled), "time_ids": torch.randn(b, 6)}
        sample = torch.randn(b, int(arch.unet["in_channels"]), lat, lat)
        hidden = torch.randn(b, 77, cross)
        t = torch.full((b,), 500.0)

        def flops(fn: Any) -> float:
            counter = flop_counter()
            with counter:
                fn()
            return float(counter.get_total_flops())

        def step() -> None:
            down, mid = controlnet(
                sample[:, :4],
                t,
                encoder_hidden_states=hidden,
                controlnet_cond=torch.randn(b, 3, size, size),
                added_cond_kwargs=added,
                return_dict=False,
            )
            unet(
                sample,
                t,
                encoder_hidden_states=hidden,
                added_cond_kwargs=added,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
            )

        per_step = flops(step)
        ids = torch.zeros(b, 77, dtype=torch.long)
        image_size = int(arch.image_encoder["image_size"])
        fixed = flops(lambda: te1(ids)) + flops(lambda: te2(ids))
        fixed += flops(lambda: vision(torch.randn(1, 3, image_size, image_size)))
        fixed += 2 * flops(lambda: vae.encode(torch.randn(1, 3, size, size)))
        fixed += flops(lambda: vae.decode(torch.randn(1, 4, lat, lat)))
    return {"fixed": fixed, "per_step": per_step}


def floors(flops: dict[str, float], steps: int) -> dict[str, Any]:
    total = flops["fixed"] + steps * flops["per_step"]
    cards = {"H100 SXM": 989.4, "A10G (ml.g5)": 125.0, "L4 (ml.g6)": 121.0}
    return {
        "tflop_per_step": round(flops["per_step"] / 1e12, 3),
        "tflop_fixed": round(flops["fixed"] / 1e12, 3),
        "tflop_per_image": round(total / 1e12, 2),
        "floor_seconds": {card: round(total / (peak * 1e12), 3) for card, peak in cards.items()},
    }


def run_bench(
    *,
    tiny: bool,
    device: str | None = None,
    dtype: str | None = None,
    size: int | None = None,
    steps: int | None = None,
    warmup: int = 1,
    runs: int = 3,
    compile_: bool | None = None,
    compile_mode: str = "max-autotune-no-cudagraphs",
    ip_adapter: bool = True,
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    import torch

    device, dtype, name, peak = resolve_runtime(tiny, device, dtype, peak_tflops)
    size = size or (64 if tiny else 1024)
    steps = steps or (2 if tiny else 30)
    if compile_ is None:
        compile_ = not tiny and device != "cpu"
    arch = "tiny" if tiny else "sdxl"

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    pipe = build_pipeline(arch, device, dtype, ip_adapter)
    build_s = time.perf_counter() - t0
    inputs = _inputs(size)
    flops = count_flops(pipe, inputs, device)
    flops_per_image = flops["fixed"] + steps * flops["per_step"]
    floor = flops_per_image / (peak * 1e12) if peak else None

    result: dict[str, Any] = {
        "architecture": arch,
        "device": name,
        "dtype": dtype,
        "size": size,
        "steps": steps,
        "ip_adapter": ip_adapter,
        "build_seconds": round(build_s, 2),
        "tflop_per_step": round(flops["per_step"] / 1e12, 4),
        "tflop_fixed": round(flops["fixed"] / 1e12, 4),
        "tflop_per_image": round(flops_per_image / 1e12, 3),
        "peak_tflops": peak,
        "floor_seconds": None if floor is None else round(floor, 4),
    }
    eager = time_calls(pipe, inputs, steps, device, warmup, runs)
    result["eager"] = eager
    if device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if compile_:
        t = time.perf_counter()
        pipe.unet = torch.compile(pipe.unet, mode=compile_mode, fullgraph=False)
        pipe.controlnet = torch.compile(pipe.controlnet, mode=compile_mode, fullgraph=False)
        _call(pipe, inputs, steps, 0, device)  # compiles
        _sync(device)
        compiled = time_calls(pipe, inputs, steps, device, max(warmup - 1, 0), runs)
        compiled["compile_seconds"] = round(time.perf_counter() - t, 1)
        compiled["mode"] = compile_mode
        result["compiled"] = compiled
    for key in ("eager", "compiled"):
        part = result.get(key)
        if part and floor:
            part["measured_over_floor"] = round(part["seconds_per_image"] / floor, 2)
            part["mfu"] = round(floor / part["seconds_per_image"], 3)
    best = min(result[k]["seconds_per_image"] for k in ("eager", "compiled") if k in result)
    result["best_seconds_per_image"] = round(best, 4)
    if "H100" in name and not tiny and size == 1024 and steps == 30:
        result["target_h100_seconds"] = TARGET_SECONDS_H100
        result["meets_target"] = best <= TARGET_SECONDS_H100
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['architecture']} on {result['device']} ({result['dtype']}), {result['size']}x{result['size']}, "
        f"{result['steps']} steps, IP-Adapter {'on' if result['ip_adapter'] else 'off'}",
        f"  FLOPs/image {result['tflop_per_image']} TFLOP (per step {result['tflop_per_step']}, "
        f"fixed {result['tflop_fixed']}); peak {result['peak_tflops']} TFLOP/s; floor {result['floor_seconds']} s",
    ]
    for key in ("eager", "compiled"):
        part = result.get(key)
        if part:
            extra = f", x{part['measured_over_floor']} the floor, MFU {part['mfu']}" if "mfu" in part else ""
            comp = f", compile {part['compile_seconds']} s" if "compile_seconds" in part else ""
            lines.append(f"  {key:8s} {part['seconds_per_image']:.3f} s/image{extra}{comp}")
    if "peak_memory_gib" in result:
        lines.append(f"  peak GPU memory (eager) {result['peak_memory_gib']} GiB")
    if "meets_target" in result:
        lines.append(
            f"  target <= {result['target_h100_seconds']} s on H100: {'met' if result['meets_target'] else 'NOT met'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models on the CPU (smoke run)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-compile", dest="compile_", action="store_false", default=None)
    parser.add_argument("--compile", dest="compile_", action="store_true")
    parser.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    parser.add_argument("--no-ip-adapter", dest="ip_adapter", action="store_false")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense FP16 peak, TFLOP/s")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument(
        "--flops-only",
        action="store_true",
        help="count the FLOPs on the meta device and print the floors (no GPU)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers
    import transformers

    for lib in (diffusers, transformers):
        lib.utils.logging.set_verbosity_error()
    if args.flops_only:
        arch = "tiny" if args.tiny else "sdxl"
        size = args.size or (64 if args.tiny else 1024)
        steps = args.steps or (2 if args.tiny else 30)
        counted = {
            "architecture": arch,
            "size": size,
            "steps": steps,
            **floors(count_flops_meta(arch, size), steps),
        }
        print(json.dumps(counted))
        if args.json:
            args.json.write_text(json.dumps(counted, indent=1) + "\n")
        return 0
    result = run_bench(
        tiny=args.tiny,
        device=args.device,
        dtype=args.dtype,
        size=args.size,
        steps=args.steps,
        warmup=args.warmup,
        runs=args.runs,
        compile_=args.compile_,
        compile_mode=args.compile_mode,
        ip_adapter=args.ip_adapter,
        peak_tflops=args.peak_tflops,
    )
    print(report(result))
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
