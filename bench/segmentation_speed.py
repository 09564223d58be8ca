"""Speed of the learned segmentation stage's models (SAM ViT-H + CLIP ViT-L/14): seconds per photo, beside its FLOP floor.

    python -m bench.segmentation_speed                    # GPU: full-size SAM ViT-H + CLIP ViT-L/14, fp16, timed
    python -m bench.segmentation_speed                    # no GPU: FLOPs counted on the meta device, NOT timed
    python -m bench.segmentation_speed --flops-only       # the meta-device count even where there is a GPU
    python -m bench.segmentation_speed --tiny             # CPU smoke run: tiny models, timed, seconds

What runs is the models' work for one photo as the segmentation stage (issue 18) runs it, with the full-size
architectures of :mod:`modamoda_inference.segmentation.architectures` and **random weights** (speed does not
depend on the weights' values), the knobs of :class:`~modamoda_inference.segmentation.settings.SegmentationSettings`:

- **sam_encoder**: SAM's ViT-H image encoder once, on the 1024x1024 padded photo (``sam.get_image_embeddings``);
- **sam_decoder**: SAM's prompt encoder and two-way mask decoder for ``1 + point_grid**2`` prompts (the
  foreground's box prompt and a 4x4 grid of single-point prompts; 17) in one batched call, three masks each
  (``multimask_output=True``). The box prompt is run as a point prompt: its two corner tokens (and up to three
  extra points) add a few sparse tokens to a decoder whose work is the 64x64 image tokens, so the count is unchanged
  in practice;
- **clip**: CLIP's ViT-L/14 image features for ``max_candidates`` (24) segment crops at 224x224, ``batch_size``
  (8) crops a forward pass.

CLIP's text features for the label prompts are computed once when the stage loads, not per photo; they are counted
(and timed) apart: ``--text-prompts`` prompts (default: the stage's label set, every label in every
template) padded to CLIP's 77-token context (an upper bound). Pre- and
post-processing (resizing, mask upsampling and filtering, cropping) is not part of this benchmark.

On CUDA (fp16 by default): after ``--warmup`` photos, the median of ``--runs`` photos per part, each part
synchronised and timed apart; seconds per photo is the median of the per-photo sums. **FLOP floor**:
``torch.utils.flop_counter`` counts each part's matmul/convolution/attention FLOPs (on the meta device: shapes
only); the floor is FLOPs divided by the card's dense FP16/BF16 tensor peak (:data:`bench.diffusion_speed.PEAK_TFLOPS`,
``--peak-tflops`` overrides). Reported: seconds per photo split by part, the floor, measured/floor.

Without CUDA the FLOPs are counted on the meta device (seconds, no memory) and printed with the floors on a few
cards; nothing is timed, and the output says so. ``--tiny`` runs the tiny models on the CPU and times them (a smoke
run for the tests; its seconds mean nothing about the real models).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "inference_container"))

from modamoda_inference.segmentation import labels as _labels  # noqa: E402

from bench.diffusion_speed import flop_counter, resolve_runtime  # noqa: E402

PARTS = ("sam_encoder", "sam_decoder", "clip")
CLIP_CONTEXT = 77  # CLIP's text context; prompts padded to it
# the stage's label prompts (every label in every template), encoded once when the stage loads
LABEL_PROMPTS = len(_labels.LABELS) * len(_labels.TEMPLATES)
CLIP_VOCAB = 49408  # openai/clip-vit-large-patch14's vocabulary (the random tokenizer's is much smaller)
# reference cards for the meta-device floors (no GPU to ask): dense FP16 tensor peaks, TFLOP/s
REFERENCE_CARDS = {"H100 SXM": 989.4, "A10G (ml.g5)": 125.0, "L4 (ml.g6)": 121.0}


def workload(arch: Any, settings: Any) -> dict[str, Any]:
    """The shapes of one photo's work (and the load-time text work)."""
    n = settings.max_candidates
    b = settings.batch_size
    return {
        "sam_image_size": int(arch.sam_image_size),
        "prompts": 1 + settings.point_grid**2,
        "masks_per_prompt": 3,
        "clip_image_size": int(arch.clip_vision["image_size"]),
        "clip_crops": n,
        "clip_batches": [min(b, n - i) for i in range(0, n, b)],
    }


def part_calls(
    sam: Any, clip: Any, work: dict[str, Any], device: str, dtype: Any, text_prompts: int
) -> dict[str, Callable[[], Any]]:
    """One zero-argument call per part (and ``clip_text``); inputs are made here, once, on ``device``."""
    import torch

    gen = torch.Generator().manual_seed(0)
    side = work["sam_image_size"]
    pixels = torch.randn(1, 3, side, side, generator=gen).to(device=device, dtype=dtype)
    p = work["prompts"]
    points = (torch.rand(1, p, 1, 2, generator=gen) * side).to(device=device, dtype=dtype)
    labels = torch.ones(1, p, 1, dtype=torch.long, device=device)
    crop = work["clip_image_size"]
    crops = [
        torch.randn(n, 3, crop, crop, generator=gen).to(device=device, dtype=dtype)
        for n in work["clip_batches"]
    ]
    ids = torch.randint(
        0, int(clip.config.text_config.vocab_size), (text_prompts, CLIP_CONTEXT), generator=gen
    )
    ids = ids.to(device)
    with torch.inference_mode():
        embeddings = sam.get_image_embeddings(pixels)

    def sam_encoder() -> Any:
        return sam.get_image_embeddings(pixels)

    def sam_decoder() -> Any:
        return sam(
            image_embeddings=embeddings, input_points=points, input_labels=labels, multimask_output=True
        )

    def clip_images() -> Any:
        return [clip.get_image_features(pixel_values=batch).pooler_output for batch in crops]

    def clip_text() -> Any:
        return clip.get_text_features(input_ids=ids).pooler_output

    return {
        "sam_encoder": sam_encoder,
        "sam_decoder": sam_decoder,
        "clip": clip_images,
        "clip_text": clip_text,
    }


def _flops(fn: Callable[[], Any]) -> float:
    import torch

    counter = flop_counter()
    with counter, torch.inference_mode():
        fn()
    return float(counter.get_total_flops())


def count_flops(calls: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """FLOPs of each part's call (and ``clip_text``)."""
    return {name: _flops(fn) for name, fn in calls.items()}


def parameter_counts(sam: Any, clip: Any) -> dict[str, int]:
    def n(module: Any) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "sam": n(sam),
        "sam_image_encoder": n(sam.vision_encoder),
        "clip": n(clip),
        "clip_vision": n(clip.vision_model),
        "clip_text": n(clip.text_model),
        "clip_vocab": int(clip.config.text_config.vocab_size),
        "clip_text_hidden": int(clip.config.text_config.hidden_size),
    }


def count_flops_meta(arch_name: str = "full", text_prompts: int = LABEL_PROMPTS) -> dict[str, Any]:
    """Parameter counts and per-part FLOPs without running anything: the models built on PyTorch's ``meta`` device
    (shapes only), each part's call under the FLOP counter — seconds on any CPU, no GPU, no memory."""
    import torch
    from modamoda_inference.segmentation.architectures import ARCHITECTURES, build_models
    from modamoda_inference.segmentation.settings import SegmentationSettings

    arch = ARCHITECTURES[arch_name]
    work = workload(arch, SegmentationSettings())
    sam, _, clip, _ = build_models(arch_name, device="meta")
    with torch.device("meta"):  # tensors the models make inside forward (aranges, grids) land on meta too
        calls = part_calls(sam, clip, work, "meta", torch.float32, text_prompts)
        flops = count_flops(calls)
    return {"params": parameter_counts(sam, clip), "work": work, "flops": flops}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_parts(calls: dict[str, Callable[[], Any]], device: str, warmup: int, runs: int) -> dict[str, Any]:
    """Per part: median seconds of ``runs`` photos after ``warmup``; per photo: median of the per-photo sums."""
    import torch

    per_run: list[dict[str, float]] = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            times = {}
            for name in PARTS:
                _sync(device)
                t = time.perf_counter()
                calls[name]()
                _sync(device)
                times[name] = time.perf_counter() - t
            if i >= warmup:
                per_run.append(times)
        text = []
        for i in range(min(warmup, 1) + max(runs, 1)):
            _sync(device)
            t = time.perf_counter()
            calls["clip_text"]()
            _sync(device)
            if i >= min(warmup, 1):
                text.append(time.perf_counter() - t)
    return {
        "seconds_per_photo": statistics.median(sum(r.values()) for r in per_run),
        "parts": {name: statistics.median(r[name] for r in per_run) for name in PARTS},
        "runs": [round(sum(r.values()), 5) for r in per_run],
        "clip_text_seconds": statistics.median(text),
    }


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def run_bench(
    *,
    tiny: bool,
    device: str | None = None,
    dtype: str | None = None,
    warmup: int = 2,
    runs: int = 5,
    text_prompts: int = LABEL_PROMPTS,
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    """Build the models on ``device``, count each part's FLOPs (one call each under the counter), time them."""
    import torch
    from modamoda_inference.segmentation.architectures import ARCHITECTURES, build_models
    from modamoda_inference.segmentation.settings import SegmentationSettings

    device, dtype, name, peak = resolve_runtime(tiny, device, dtype, peak_tflops)
    arch_name = "tiny" if tiny else "full"
    arch = ARCHITECTURES[arch_name]
    work = workload(arch, SegmentationSettings())

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    sam, _, clip, _ = build_models(arch_name, device=device)
    sam, clip = sam.to(dtype=getattr(torch, dtype)), clip.to(dtype=getattr(torch, dtype))
    build_s = time.perf_counter() - t0
    calls = part_calls(sam, clip, work, device, getattr(torch, dtype), text_prompts)
    # the FLOPs: the same calls, counted (running them once more is cheap next to building the models)
    flops = count_flops(calls)
    timed = time_parts(calls, device, warmup, runs)
    per_photo = sum(flops[p] for p in PARTS)
    floor = per_photo / (peak * 1e12) if peak else None

    result: dict[str, Any] = {
        "architecture": arch_name,
        "device": name,
        "dtype": dtype,
        "timed": True,
        "work": work,
        "params": parameter_counts(sam, clip),
        "build_seconds": round(build_s, 2),
        "gflop_per_photo": round(per_photo / 1e9, 3),
        "gflop": {p: round(flops[p] / 1e9, 3) for p in PARTS},
        "gflop_clip_text_once": round(flops["clip_text"] / 1e9, 3),
        "text_prompts": text_prompts,
        "peak_tflops": peak,
        "floor_seconds": _round(floor, 6),
        "seconds_per_photo": round(timed["seconds_per_photo"], 5),
        "seconds": {p: round(timed["parts"][p], 5) for p in PARTS},
        "runs": timed["runs"],
        "clip_text_seconds_once": round(timed["clip_text_seconds"], 5),
        "warmup": warmup,
    }
    if peak:
        result["floor"] = {p: round(flops[p] / (peak * 1e12), 6) for p in PARTS}
        result["measured_over_floor"] = round(timed["seconds_per_photo"] / floor, 2) if floor else None
        result["part_over_floor"] = {
            p: round(timed["parts"][p] / (flops[p] / (peak * 1e12)), 2) for p in PARTS if flops[p] > 0
        }
    if device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def meta_result(arch_name: str = "full", text_prompts: int = LABEL_PROMPTS) -> dict[str, Any]:
    counted = count_flops_meta(arch_name, text_prompts)
    flops = counted["flops"]
    per_photo = sum(flops[p] for p in PARTS)
    return {
        "architecture": arch_name,
        "device": "meta (FLOPs counted, shapes only)",
        "timed": False,
        "work": counted["work"],
        "params": counted["params"],
        "gflop_per_photo": round(per_photo / 1e9, 3),
        "gflop": {p: round(flops[p] / 1e9, 3) for p in PARTS},
        "gflop_clip_text_once": round(flops["clip_text"] / 1e9, 3),
        "text_prompts": text_prompts,
        "floor_seconds_reference": {
            card: round(per_photo / (peak * 1e12), 6) for card, peak in REFERENCE_CARDS.items()
        },
    }


def _count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return str(int(n))


def _params_line(params: dict[str, int]) -> str:
    full_vocab = params["clip"] + (CLIP_VOCAB - params["clip_vocab"]) * params["clip_text_hidden"]
    return (
        f"  parameters: SAM {_count(params['sam'])} (image encoder {_count(params['sam_image_encoder'])}); "
        f"CLIP {_count(params['clip'])} (vision {_count(params['clip_vision'])}, text {_count(params['clip_text'])}"
        f", vocabulary {params['clip_vocab']}), {_count(full_vocab)} with CLIP's {CLIP_VOCAB}-token vocabulary"
    )


def report(result: dict[str, Any]) -> str:
    w = result["work"]
    lines = [
        f"segmentation models ({result['architecture']}) on {result['device']}"
        + (f" ({result['dtype']})" if "dtype" in result else ""),
        f"  per photo: SAM encoder 1x{w['sam_image_size']}x{w['sam_image_size']}; SAM decoder {w['prompts']} prompts "
        f"x {w['masks_per_prompt']} masks; CLIP {w['clip_crops']} crops at {w['clip_image_size']}x"
        f"{w['clip_image_size']} in batches {w['clip_batches']}",
        _params_line(result["params"]),
        f"  GFLOP/photo {result['gflop_per_photo']}: "
        + ", ".join(f"{p} {result['gflop'][p]}" for p in PARTS)
        + f"; CLIP text (once at load, {result['text_prompts']} prompts x {CLIP_CONTEXT} tokens) "
        f"{result['gflop_clip_text_once']}",
    ]
    if not result["timed"]:
        lines.append(
            "  floor (FLOPs / dense FP16 peak): "
            + ", ".join(f"{card} {s * 1e3:.2f} ms" for card, s in result["floor_seconds_reference"].items())
        )
        lines.append(
            "  NO TIMING MEASURED: no CUDA device here; these are FLOP counts on the meta device only"
        )
        return "\n".join(lines)
    lines.append(
        f"  measured {result['seconds_per_photo']:.4f} s/photo (median of {len(result['runs'])}, after "
        f"{result['warmup']} warm-up): "
        + ", ".join(f"{p} {result['seconds'][p]:.4f}" for p in PARTS)
        + f"; CLIP text once {result['clip_text_seconds_once']:.4f} s"
    )
    if result.get("floor_seconds"):
        lines.append(
            f"  peak {result['peak_tflops']} TFLOP/s; floor {result['floor_seconds'] * 1e3:.3f} ms/photo; "
            f"measured/floor x{result['measured_over_floor']} ("
            + ", ".join(f"{p} x{r}" for p, r in result["part_over_floor"].items())
            + ")"
        )
    else:
        lines.append("  no peak known for this device (--peak-tflops sets one): no floor")
    if "peak_memory_gib" in result:
        lines.append(f"  peak GPU memory {result['peak_memory_gib']} GiB")
    return "\n".join(lines)


def summary(result: dict[str, Any]) -> str:
    parts = ", ".join(f"{p} {result['gflop'][p]:.4g}" for p in PARTS)
    if not result["timed"]:
        h100 = result["floor_seconds_reference"]["H100 SXM"]
        return (
            f"summary: {result['architecture']} SAM+CLIP, FLOPs only (no timing measured): "
            f"{result['gflop_per_photo']:.4g} GFLOP/photo ({parts}); floor on H100 SXM {h100 * 1e3:.2f} ms/photo"
        )
    ratio = f", x{result['measured_over_floor']} the floor" if result.get("measured_over_floor") else ""
    return (
        f"summary: {result['architecture']} SAM+CLIP on {result['device']} ({result['dtype']}): "
        f"{result['seconds_per_photo']:.4f} s/photo ("
        + ", ".join(f"{p} {result['seconds'][p]:.4f}" for p in PARTS)
        + f"), {result['gflop_per_photo']:.4g} GFLOP/photo{ratio}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--tiny", action="store_true", help="tiny random models on the CPU, timed (smoke run)"
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--text-prompts", type=int, default=LABEL_PROMPTS, help="label prompts encoded once at load"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense FP16 peak, TFLOP/s")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument(
        "--flops-only",
        action="store_true",
        help="count the FLOPs on the meta device and print the floors (no timing); the default without CUDA",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    if args.flops_only or (not args.tiny and args.device is None and not torch.cuda.is_available()):
        result = meta_result("tiny" if args.tiny else "full", args.text_prompts)
    else:
        result = run_bench(
            tiny=args.tiny,
            device=args.device,
            dtype=args.dtype,
            warmup=args.warmup,
            runs=args.runs,
            text_prompts=args.text_prompts,
            peak_tflops=args.peak_tflops,
        )
    print(report(result))
    print(summary(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
