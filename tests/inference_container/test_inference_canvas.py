"""Presets, placement and compositing on the canvas (shadows, backgrounds, transparency, the hollow layer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from modamoda_inference import canvas
from modamoda_inference.canvas import PRESETS, Patch, Subject, get_preset, plan_placement, render


@pytest.mark.parametrize("name", list(PRESETS))
def test_placement_centres_and_fills(name: str) -> None:
    preset = get_preset(name)
    bbox = (300.0, 200.0, 900.0, 1400.0)  # 600 x 1200, taller than wide
    p = plan_placement(bbox, (1200, 1600), preset, pad=8)
    x0, y0, x1, y1 = p.canvas_bbox
    assert abs((x0 + x1) / 2 - preset.width / 2) <= 1
    assert abs((y0 + y1) / 2 - preset.height / 2) <= 1
    assert abs((y1 - y0) - preset.fill * preset.height) <= 2  # height is the limiting side
    assert (
        min(x0, y0, preset.width - x1, preset.height - y1)
        >= preset.margin * min(preset.width, preset.height) - 2
    )
    assert p.crop == (292, 192, 908, 1408)


def test_preset_table() -> None:
    amazon, zalando = get_preset("amazon"), get_preset("zalando")
    assert (amazon.width, amazon.height, amazon.background) == (2000, 2000, "#FFFFFF")
    assert amazon.fill >= 0.85
    assert amazon.background_rgb == (255, 255, 255)
    assert zalando.height > zalando.width
    assert zalando.background_rgb == (241, 241, 241)
    assert (get_preset("shopify").width, get_preset("portrait_4_5").height) == (2048, 2000)


def test_margin_caps_the_fill() -> None:
    tight = canvas.Preset("t", 1000, 1000, fill=0.98, margin=0.1, background="#FFFFFF")
    p = plan_placement((0.0, 0.0, 100.0, 100.0), (100, 100), tight)
    x0, y0, x1, _ = p.canvas_bbox
    assert (x1 - x0) == pytest.approx(800, abs=2)
    assert min(x0, y0) >= 99


def test_presets_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MODAMODA_PRESETS", json.dumps({"zalando": {"width": 1800, "height": 2600, "background": "#F2F2F2"}})
    )
    presets = canvas._load_presets()
    assert (presets["zalando"].width, presets["zalando"].height, presets["zalando"].background) == (
        1800,
        2600,
        "#F2F2F2",
    )
    assert presets["amazon"] == PRESETS["amazon"]
    for bad in ({"instagram": {"width": 1}}, {"amazon": {"colour": "red"}}, {"amazon": {"fill": 3}}):
        monkeypatch.setenv("MODAMODA_PRESETS", json.dumps(bad))
        with pytest.raises(ValueError, match="MODAMODA_PRESETS"):
            canvas._load_presets()


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("instagram")


def _square_photo() -> tuple[np.ndarray, np.ndarray]:
    rgb = np.full((400, 300, 3), 200, np.uint8)
    rgb[100:300, 100:200] = (10, 20, 30)
    alpha = np.zeros((400, 300), np.float32)
    alpha[100:300, 100:200] = 1.0
    return rgb, alpha


def test_render_exact_background_and_full_alpha_copy() -> None:
    preset = get_preset("square")
    rgb, alpha = _square_photo()
    p = plan_placement((100.0, 100.0, 200.0, 300.0), (300, 400), preset)
    out = render(rgb, Subject(alpha), p, preset, (1, 2, 3))
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
    behind = np.full((50, 50, 3), backdrop_colour, np.float32)  # any resolution covering the photo
    clean = render(rgb.astype(np.uint8), Subject(alpha, behind=behind), p, preset, (0, 0, 0))
    naive = render(rgb.astype(np.uint8), Subject(alpha), p, preset, (0, 0, 0))
    # Without unmixing, the half-covered column keeps the light backdrop: a halo brighter than the garment.
    assert naive[1000].max() > garment_colour + 15
    assert clean[1000].max() <= garment_colour + 6


@pytest.mark.parametrize("kind", ["contact", "drop"])
def test_shadow_darkens_under_the_garment_only(kind: str) -> None:
    preset = get_preset("square")
    rgb, alpha = _square_photo()
    p = plan_placement((100.0, 100.0, 200.0, 300.0), (300, 400), preset)
    plain = render(rgb, Subject(alpha), p, preset, (255, 255, 255), "none")
    shaded = render(rgb, Subject(alpha), p, preset, (255, 255, 255), kind)
    x0, y0, x1, y1 = p.canvas_bbox
    below = shaded[y1 + 4 : y1 + 30, (x0 + x1) // 2].astype(int)
    assert below.min() < 245  # a visible shadow just under the hem
    assert np.all(plain[y1 + 4 : y1 + 30, (x0 + x1) // 2] == 255)
    assert np.all(shaded[:40] == 255)  # far from the garment: the exact background
    assert np.all(shaded[(y0 + y1) // 2, (x0 + x1) // 2] == (10, 20, 30))  # the garment is untouched
    if kind == "drop":
        right = shaded[(y0 + y1) // 2, x1 + 10 : x1 + 40].astype(int)
        assert right.min() < 250  # offset to the right and down


def test_transparent_background_gives_rgba() -> None:
    preset = get_preset("square")
    rgb, alpha = _square_photo()
    alpha[100:300, 99] = 0.5
    p = plan_placement((99.0, 100.0, 200.0, 300.0), (300, 400), preset)
    out = render(rgb, Subject(alpha), p, preset, None, "contact")
    assert out.shape == (2000, 2000, 4)
    assert np.all(out[:40, :, 3] == 0)  # empty canvas is fully transparent
    x0, _, x1, y1 = p.canvas_bbox
    assert out[1000, 1000, 3] == 255
    assert tuple(out[1000, 1000, :3]) == (10, 20, 30)
    assert 0 < out[y1 + 8, (x0 + x1) // 2, 3] < 120  # the shadow is translucent black
    assert tuple(out[y1 + 8, (x0 + x1) // 2, :3]) == (0, 0, 0)
    assert 60 < out[1000, x0 + 1, 3] < 255  # a soft edge keeps partial alpha


def test_image_background() -> None:
    preset = get_preset("square")
    rgb, alpha = _square_photo()
    p = plan_placement((100.0, 100.0, 200.0, 300.0), (300, 400), preset)
    image = np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)
    out = render(rgb, Subject(alpha), p, preset, image, "none")
    assert np.array_equal(out[:50], image[:50])
    assert np.all(out[1000, 1000] == (10, 20, 30))


def test_hollow_layer_shows_behind_the_garment() -> None:
    preset = get_preset("square")
    rgb, alpha = _square_photo()
    alpha[100:150, 130:170] = 0.0  # an opening in the garment
    hollow = np.zeros_like(alpha)
    hollow[100:150, 130:170] = 1.0
    fill = Patch(np.full((50, 40, 3), (200, 0, 0), np.float32), origin=(130.0, 100.0), scale=1.0)
    p = plan_placement((100.0, 100.0, 200.0, 300.0), (300, 400), preset)
    out = render(rgb, Subject(alpha, hollow_alpha=hollow, hollow_rgb=fill), p, preset, (255, 255, 255))
    without = render(rgb, Subject(alpha), p, preset, (255, 255, 255))
    x0, y0, x1, y1 = p.canvas_bbox
    cx, cy = (x0 + x1) // 2, y0 + (y1 - y0) // 8
    assert tuple(out[cy, cx]) == (200, 0, 0)
    assert tuple(without[cy, cx]) == (255, 255, 255)
