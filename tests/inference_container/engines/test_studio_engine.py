"""The studio engine: backdrop model, matte, and the finished ghost packshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modamoda_inference.canvas import PRESETS
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.errors import NoGarmentFound
from modamoda_inference.imageio import decode_image
from modamoda_inference.schemas import InferenceRequest, parse_request
from PIL import Image

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"
MakeGarment = Callable[..., tuple[np.ndarray, np.ndarray]]


def request(**options: Any) -> InferenceRequest:
    return parse_request({"job_id": JOB, "mode": "ghost", "image": {"b64": "eA=="}, "options": options})


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def garment_bbox(out: np.ndarray, background: tuple[int, int, int]) -> tuple[int, int, int, int]:
    diff = np.abs(out.astype(int) - np.array(background)).max(axis=2) > 40
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@pytest.fixture(scope="module")
def photo(make_garment: MakeGarment) -> tuple[np.ndarray, np.ndarray]:
    return make_garment(900, 1100, seed=1)


def test_matte_matches_ground_truth(studio: StudioEngine, photo: tuple[np.ndarray, np.ndarray]) -> None:
    rgb, truth = photo
    matte = studio.matte(rgb)
    assert iou(matte.full_resolution() >= 0.5, truth) >= 0.95
    bbox = matte.bbox()
    assert bbox is not None
    rows, cols = np.flatnonzero(truth.any(axis=1)), np.flatnonzero(truth.any(axis=0))
    assert np.allclose(bbox, (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1), atol=3)
    # the backdrop model follows the vertical gradient of the sweep
    top, bottom = matte.backdrop.grid(8, 8)[0, 4], matte.backdrop.grid(8, 8)[-1, 4]
    assert top[0] - bottom[0] > 10
    assert matte.backdrop.noise < 5


@pytest.mark.parametrize("preset", list(PRESETS))
def test_packshot_per_preset(studio: StudioEngine, photo: tuple[np.ndarray, np.ndarray], preset: str) -> None:
    background = (32, 48, 64)
    result = studio.run(Image.fromarray(photo[0]), request(preset=preset, background="#203040"))
    spec = PRESETS[preset]
    out = np.asarray(result.image)
    assert result.image.mode == "RGB"
    assert result.image.size == (spec.width, spec.height)
    for y, x in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        assert tuple(out[y, x]) == background
    x0, y0, x1, y1 = garment_bbox(out, background)
    assert abs((x0 + x1) / 2 - spec.width / 2) <= 4
    assert abs((y0 + y1) / 2 - spec.height / 2) <= 4
    # the garment's limiting side fills the preset's share of the canvas
    fill = max((x1 - x0) / spec.width, (y1 - y0) / spec.height)
    assert fill == pytest.approx(spec.fill, abs=0.02)
    meta = result.metadata
    assert meta["engine"] == "studio"
    assert meta["preset"] == preset
    assert set(meta["timings_ms"]) >= {"matte", "composite"}


def test_garment_colour_is_kept(studio: StudioEngine, photo: tuple[np.ndarray, np.ndarray]) -> None:
    out = np.asarray(studio.run(Image.fromarray(photo[0]), request()).image)
    centre = out[900:1100, 900:1100].reshape(-1, 3).mean(axis=0)
    assert np.allclose(centre, (40, 70, 130), atol=12)


def test_deterministic(studio: StudioEngine, photo: tuple[np.ndarray, np.ndarray]) -> None:
    image = Image.fromarray(photo[0])
    a = np.asarray(studio.run(image, request(seed=1)).image)
    b = np.asarray(studio.run(image, request(seed=2)).image)
    assert np.array_equal(a, b)


def test_garment_cut_by_the_frame(studio: StudioEngine, make_garment: MakeGarment) -> None:
    rgb, truth = make_garment(800, 900, colour=(150, 40, 40), seed=2, offset=(0, 330))  # hem out of frame
    assert truth[-1].any()
    matte = studio.matte(rgb)
    assert iou(matte.full_resolution() >= 0.5, truth) >= 0.95
    assert matte.backdrop.inlier_fraction < 0.99


def test_light_garment_on_dark_backdrop(studio: StudioEngine) -> None:
    rng = np.random.default_rng(3)
    rgb = np.full((700, 600, 3), 45.0) + rng.normal(0, 2, (700, 600, 3))
    truth = np.zeros((700, 600), bool)
    truth[150:560, 170:430] = True
    rgb[truth] = (235, 230, 220)
    matte = studio.matte(np.clip(rgb, 0, 255).astype(np.uint8))
    assert iou(matte.full_resolution() >= 0.5, truth) >= 0.95


def test_empty_backdrop_is_no_garment(studio: StudioEngine) -> None:
    rng = np.random.default_rng(4)
    blank = np.clip(np.full((500, 400, 3), 225.0) + rng.normal(0, 2, (500, 400, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(NoGarmentFound, match="could not find a garment") as info:
        studio.run(Image.fromarray(blank), request())
    assert info.value.code == "no_garment_found"
    assert info.value.http_status == 422


@pytest.mark.parametrize("name", ["tshirt_navy", "hoodie_burgundy", "dress_emerald", "trousers_khaki"])
def test_sample_garments(studio: StudioEngine, make_samples: Any, name: str) -> None:
    rgb, truth = make_samples.render_sample(name, 0.5)
    decoded = decode_image(make_samples.encode_jpeg(rgb))  # through JPEG, as shipped
    matte = studio.matte(np.asarray(decoded.image))
    assert iou(matte.full_resolution() >= 0.5, truth) >= 0.97


def test_twelve_megapixels_in_a_few_seconds(studio: StudioEngine, make_garment: MakeGarment) -> None:
    small, _truth = make_garment(1000, 750, seed=5)
    big = np.asarray(Image.fromarray(small).resize((4000, 3000), Image.Resampling.BILINEAR))
    start = time.perf_counter()
    result = studio.run(Image.fromarray(big), request(preset="amazon"))
    elapsed = time.perf_counter() - start
    assert result.image.size == (2000, 2000)
    assert elapsed < 4.0, f"{elapsed:.2f}s"
