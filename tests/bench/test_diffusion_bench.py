"""bench.diffusion_speed runs end to end in its tiny CPU mode (no timing assertions), and its two FLOP counts
(the real pipeline call, and the meta-device count used without a GPU) agree."""

from __future__ import annotations

import json
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")

from bench import diffusion_speed  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_tiny_run(capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    assert diffusion_speed.main(["--tiny", "--runs", "1", "--warmup", "1", "--peak-tflops", "1.0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["architecture"] == "tiny"
    assert result["size"] == 64
    assert result["steps"] == 2
    assert result["eager"]["seconds_per_image"] > 0
    assert "compiled" not in result  # no compiling in the CPU smoke run
    assert result["tflop_per_step"] > 0
    assert result["floor_seconds"] > 0
    assert result["eager"]["mfu"] > 0
    assert "FLOPs/image" in lines[1]
    meta = diffusion_speed.count_flops_meta("tiny", 64)
    # the meta count leaves out the scheduler's element-wise work and IP-Adapter's extra keys: within 10 %
    assert meta["per_step"] == pytest.approx(result["tflop_per_step"] * 1e12, rel=0.1)


def test_peaks_and_floors() -> None:
    assert diffusion_speed.peak_for("NVIDIA H100 80GB HBM3") == 989.4
    assert diffusion_speed.peak_for("NVIDIA H100 PCIe") == 756.0
    assert diffusion_speed.peak_for("NVIDIA A10G") == 125.0
    assert diffusion_speed.peak_for("NVIDIA L4") == 121.0
    assert diffusion_speed.peak_for("Some CPU") is None
    out = diffusion_speed.floors({"fixed": 10e12, "per_step": 20e12}, 30)
    assert out["tflop_per_image"] == 610.0
    assert out["floor_seconds"]["H100 SXM"] == pytest.approx(610 / 989.4, abs=1e-3)
