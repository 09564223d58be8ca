"""bench.segmentation_speed runs end to end in its tiny CPU mode (no timing assertions), its meta-device FLOP count
agrees with the count of the real calls, and the full-size count (meta device, no GPU) has the expected sizes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")

from modamoda_inference.segmentation.architectures import ARCHITECTURES  # noqa: E402
from modamoda_inference.segmentation.settings import SegmentationSettings  # noqa: E402

from bench import segmentation_speed  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_workload_follows_the_settings() -> None:
    work = segmentation_speed.workload(ARCHITECTURES["full"], SegmentationSettings())
    assert work["sam_image_size"] == 1024
    assert work["prompts"] == 17  # the box prompt and a 4x4 point grid
    assert work["clip_image_size"] == 224
    assert work["clip_batches"] == [8, 8, 8]
    fewer = dataclasses.replace(SegmentationSettings(), max_candidates=20, point_grid=3)
    work = segmentation_speed.workload(ARCHITECTURES["full"], fewer)
    assert work["prompts"] == 10
    assert work["clip_batches"] == [8, 8, 4]


def test_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "seg.json"
    argv = ["--tiny", "--runs", "1", "--warmup", "1", "--peak-tflops", "1.0", "--json", str(out)]
    assert segmentation_speed.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("summary: tiny SAM+CLIP on CPU")
    result = json.loads(out.read_text())
    assert result["architecture"] == "tiny"
    assert result["timed"] is True
    assert result["work"]["prompts"] == 17
    assert set(result["seconds"]) == {"sam_encoder", "sam_decoder", "clip"}
    assert all(s > 0 for s in result["seconds"].values())
    assert result["seconds_per_photo"] > 0
    assert result["clip_text_seconds_once"] > 0
    assert result["floor_seconds"] > 0
    assert result["measured_over_floor"] > 0
    assert all(g > 0 for g in result["gflop"].values())
    # the meta-device count (used without a GPU) is the same count as the real calls'
    meta = segmentation_speed.count_flops_meta("tiny")
    for part in segmentation_speed.PARTS:
        assert meta["flops"][part] / 1e9 == pytest.approx(result["gflop"][part], rel=0.01, abs=1e-3)
    assert meta["params"] == result["params"]


def test_full_meta_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "seg.json"
    assert segmentation_speed.main(["--flops-only", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "NO TIMING MEASURED" in printed
    assert (
        printed.strip().splitlines()[-1].startswith("summary: full SAM+CLIP, FLOPs only (no timing measured)")
    )
    result = json.loads(out.read_text())
    assert result["timed"] is False
    params = result["params"]
    assert params["sam"] == pytest.approx(641e6, rel=0.01)  # SAM ViT-H
    with_vocab = (
        params["clip"] + (segmentation_speed.CLIP_VOCAB - params["clip_vocab"]) * params["clip_text_hidden"]
    )
    assert with_vocab == pytest.approx(428e6, rel=0.01)  # CLIP ViT-L/14 with its own vocabulary
    gflop = result["gflop"]
    # ViT-H at 1024x1024: ~6 TFLOP; ViT-L/14 at 224: ~162 GFLOP a crop, 24 crops; the decoder is small
    assert gflop["sam_encoder"] == pytest.approx(5961, rel=0.05)
    assert gflop["clip"] == pytest.approx(24 * 162, rel=0.05)
    assert 10 < gflop["sam_decoder"] < 200
    assert result["gflop_per_photo"] == pytest.approx(sum(gflop.values()), rel=1e-4)
    assert result["floor_seconds_reference"]["H100 SXM"] == pytest.approx(
        result["gflop_per_photo"] / 989.4e3, rel=1e-3
    )
