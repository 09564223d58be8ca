"""The engine on real weights, on a GPU: skipped unless ``MODAMODA_TEST_MODEL_DIR`` names a model directory
packed by scripts/pack_model.py and CUDA is available (e.g. on a g5/g6 instance with the weights unpacked)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from modamoda_inference.diffusion import weights
from modamoda_inference.diffusion.engine import DiffusionEngine
from modamoda_inference.schemas import parse_request
from PIL import Image

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"
pytestmark = [pytest.mark.slow, pytest.mark.gpu]


@pytest.fixture(scope="module")
def real_engine() -> DiffusionEngine:
    torch = pytest.importorskip("torch")
    root = os.environ.get("MODAMODA_TEST_MODEL_DIR")
    if not root or not (Path(root) / weights.MANIFEST_NAME).is_file():
        pytest.skip("no real weights: set MODAMODA_TEST_MODEL_DIR to a packed model directory")
    if not torch.cuda.is_available():
        pytest.skip("real weights are run on a CUDA device only")
    weights.validate(Path(root), verify="sha256")
    engine = DiffusionEngine()
    engine.load(Path(root))
    return engine


def test_on_model_1024(real_engine: DiffusionEngine, garment_rgb: np.ndarray) -> None:
    request = parse_request(
        {
            "job_id": JOB,
            "mode": "on-model",
            "image": {"b64": "eA=="},
            "options": {"size": 1024, "steps": 30, "seed": 1, "background": "library:studio-grey"},
        }
    )
    big = np.asarray(Image.fromarray(garment_rgb).resize((900, 1080), Image.Resampling.LANCZOS))
    first = real_engine.run(Image.fromarray(big), request)
    second = real_engine.run(Image.fromarray(big), request)
    a, b = np.asarray(first.image), np.asarray(second.image)
    assert a.shape == (1024, 1024, 3)
    # the same seed on the same GPU: the same picture (kernels may differ in the last bit of a few pixels)
    assert float(np.abs(a.astype(int) - b.astype(int)).mean()) < 0.5
    prepared = real_engine.prepare(Image.fromarray(big), request)
    core = prepared.layers.garment_core()
    assert np.array_equal(a[core], prepared.layers.garment[core])
    painted = prepared.layers.mask > 0
    assert float(a[painted].std()) > 10  # a picture, not a flat fill
    pipes = real_engine.pipelines
    if pipes is not None and pipes.detector is not None:  # the generated person stands in the requested pose
        found = pipes.detector.detect(a)
        assert found is not None
        assert found.point("neck") is not None
