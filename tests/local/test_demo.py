"""``make demo`` end to end: every sample photo becomes one output image, credits are spent exactly once each."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from local import demo

pytestmark = pytest.mark.e2e


def test_demo_produces_one_packshot_per_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = sorted(p for p in demo.SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(samples) >= 3

    assert demo.main(["--out", str(tmp_path), "--timeout", "240"]) == 0

    outputs = sorted(tmp_path.glob("*-ghost.png"))
    assert [p.name for p in outputs] == [f"{p.stem}-ghost.png" for p in samples]
    for path in outputs:
        with Image.open(path) as image:
            assert image.size == (2000, 2000)
            assert image.getpixel((5, 5))[:3] == (255, 255, 255)  # clean white background
    printed = capsys.readouterr().out
    # every sample is a ghost job: each went through the studio engine's Lambda function, none to the GPU endpoint
    assert printed.count("studio engine on CPU (Lambda)") == len(samples)
    assert "GPU endpoint" not in printed.split("job id", 1)[1]
    assert "PWA http://127.0.0.1:" in printed
    assert "demo user demo@modamoda.example  password Demo-Passw0rd-2026" in printed
    assert (
        f"credits: 10 before, {10 - len(samples)} after ({len(samples)} spent on {len(samples)} image(s))"
        in printed
    )
