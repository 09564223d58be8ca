"""Presets, placement and compositing on the canvas."""

from __future__ import annotations

import numpy as np
import pytest
from modamoda_inference.canvas import PRESETS, get_preset, plan_placement, render


@pytest.mark.parametrize("name", list(PRESETS))
def test_placement_centres_and_fills(name: str) -> None:
    preset = get_preset(name)
    bbox = (300.0, 200.0, 900.0, 1400.0)  # 600 x 1200, taller than wide
    p = plan_placement(bbox, (1200, 1600), preset, pad=8)
    x0, y0, x1, y1 = p.canvas_bbox
    assert abs((x0 + x1) / 2 - preset.width / 2) <= 1
    assert abs((y0 + y1) / 2 - preset.height / 2) <= 1
    assert abs((y1 - y0) - preset.fill * preset.height) <= 2  # height is the limiting side
    assert p.crop == (292, 192, 908, 1408)


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("instagram")


def test_render_exact_background_and_full_alpha_copy() -> None:
    preset = get_preset("square")
    rgb = np.full((400, 300, 3), 200, np.uint8)
    rgb[100:300, 100:200] = (10, 20, 30)
    alpha = np.zeros((400, 300), np.float32)
    alpha[100:300, 100:200] = 1.0
    p = plan_placement((100.0, 100.0, 200.0, 300.0), (300, 400), preset)
    out = render(rgb, alpha, p, preset, (1, 2, 3))
    assert out.shape == (2000, 2000, 3)
    assert np.all(out[:50] == (1, 2, 3))
    assert np.all(out[1000, 1000] == (10, 20, 30))


def test_render_decontaminates_edges() -> None:
    preset = get_preset("square")
    backdrop_colour, garment_colour = 220.0, 40.0
    rgb = np.full((100, 100, 3), backdrop_colour, np.float32)
    alpha = np.zeros((100, 100), np.float32)
    alpha[20:80, 20:80] = 1.0
    alpha[20:80, 19] = 0.5  # a half-covered edge column: mixed colour in the photo
    rgb = rgb * (1 - alpha[..., None]) + garment_colour * alpha[..., None]
    p = plan_placement((19.0, 20.0, 80.0, 80.0), (100, 100), preset)

    def backdrop(xn: np.ndarray, yn: np.ndarray) -> np.ndarray:
        return np.full((*xn.shape, 3), backdrop_colour, np.float32)

    clean = render(rgb.astype(np.uint8), alpha, p, preset, (0, 0, 0), backdrop=backdrop)
    naive = render(rgb.astype(np.uint8), alpha, p, preset, (0, 0, 0))
    # Without unmixing, the half-covered column keeps the light backdrop: a halo brighter than the garment.
    assert naive[1000].max() > garment_colour + 15
    assert clean[1000].max() <= garment_colour + 6
