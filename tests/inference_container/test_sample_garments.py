"""The sample garment photos shipped in samples/garments and their generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modamoda_inference.imageio import decode_image

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples" / "garments"
NAMES = ["tshirt_navy", "hoodie_burgundy", "dress_emerald", "trousers_khaki"]


def test_generator_lists_the_shipped_samples(make_samples: Any) -> None:
    assert sorted(make_samples.SAMPLES) == sorted(NAMES)
    assert sorted(p.stem for p in SAMPLES_DIR.glob("*.jpg")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_sample_is_a_small_studio_jpeg(name: str) -> None:
    data = (SAMPLES_DIR / f"{name}.jpg").read_bytes()
    assert len(data) < 400 * 1024
    decoded = decode_image(data)
    assert decoded.source_format == "JPEG"
    assert decoded.size == (1600, 2000)
    px = np.asarray(decoded.image).astype(int)
    corners = np.array([px[10, 10], px[10, -10], px[-10, 10], px[-10, -10]])
    assert np.all(corners > 190)
    assert np.ptp(corners[:, :3], axis=1).max() < 15
    centre = px[900:1100, 700:900].reshape(-1, 3).mean(axis=0)
    assert np.abs(centre - corners.mean(axis=0)).max() > 40  # a garment in the middle


def test_generator_is_deterministic(make_samples: Any) -> None:
    a, mask_a = make_samples.render_sample("dress_emerald", 0.25)
    b, mask_b = make_samples.render_sample("dress_emerald", 0.25)
    assert np.array_equal(a, b)
    assert np.array_equal(mask_a, mask_b)
    assert a.shape == (500, 400, 3)
    assert 0.1 < mask_a.mean() < 0.6
