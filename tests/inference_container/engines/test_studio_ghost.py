"""The ghost effect: mannequins removed (given colour, chroma key, sampled), the hollow neck, the inside photo."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.schemas import InferenceRequest, MannequinColour, parse_request
from PIL import Image

from bench.studio_data import GARMENT_COLOURS, MANNEQUINS, LabelledImage, inside_pair, render_scene

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"


def request(**options: Any) -> InferenceRequest:
    return parse_request({"job_id": JOB, "mode": "ghost", "image": {"b64": "eA=="}, "options": options})


def scene(
    mannequin: str | None,
    *,
    kind: str = "tshirt",
    colour: str = "navy",
    backdrop: str = "mid_grey",
    seed: int = 5,
) -> LabelledImage:
    return render_scene(
        np.random.default_rng(seed),
        (360, 450),
        kind=kind,
        colour=GARMENT_COLOURS[colour],
        backdrop=backdrop,
        mannequin=mannequin,
        shadow="drop",
        pattern="plain",
        texture="crepe",
        jpeg_quality=92,
        soft_edge=0.3,
    )


def iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    a, b = alpha >= 0.5, truth >= 0.5
    return float((a & b).sum() / (a | b).sum())


def colour_option(name: str) -> MannequinColour:
    r, g, b = MANNEQUINS[name]
    return MannequinColour(color=f"#{r:02X}{g:02X}{b:02X}")


@pytest.mark.parametrize("name", ["white", "black", "skin"])
def test_mannequin_of_a_known_colour_is_removed(studio: StudioEngine, name: str) -> None:
    item = scene(name, colour="khaki" if name != "skin" else "navy")
    with_option = studio.matte(item.rgb, mannequin=colour_option(name))
    without = studio.matte(item.rgb)
    assert iou(with_option.full_resolution(), item.alpha) >= 0.97
    assert iou(without.full_resolution(), item.alpha) < 0.95  # the mannequin would count as garment
    assert with_option.mannequin_model is not None
    assert with_option.mannequin_model.source == "given"


@pytest.mark.parametrize("name", ["chroma_green", "chroma_blue"])
def test_chroma_key_mannequin_is_found_automatically(studio: StudioEngine, name: str) -> None:
    item = scene(name, kind="dress", colour="pink", backdrop="light_grey")
    matte = studio.matte(item.rgb, mannequin="auto")
    assert matte.mannequin_model is not None
    assert matte.mannequin_model.source == "chroma"
    assert iou(matte.full_resolution(), item.alpha) >= 0.97


def test_auto_samples_the_neck_colour(studio: StudioEngine) -> None:
    item = scene("grey", colour="burgundy", backdrop="white")
    matte = studio.matte(item.rgb, mannequin="auto")
    assert matte.mannequin_model is not None
    assert matte.mannequin_model.source == "sampled"
    assert iou(matte.full_resolution(), item.alpha) >= 0.97


@pytest.mark.parametrize(
    ("colour", "backdrop"), [("light_grey", "white"), ("black", "white"), ("white", "mid_grey")]
)
def test_neutral_garments_are_not_taken_for_shadows(studio: StudioEngine, colour: str, backdrop: str) -> None:
    item = scene(None, colour=colour, backdrop=backdrop)
    assert iou(studio.matte(item.rgb).full_resolution(), item.alpha) >= 0.97


@pytest.mark.parametrize("kind", ["tshirt", "hoodie", "trousers", "dress"])
def test_auto_finds_no_mannequin_on_a_flat_garment(studio: StudioEngine, kind: str) -> None:
    item = scene(None, kind=kind, colour="emerald")
    matte = studio.matte(item.rgb, mannequin="auto")
    assert matte.mannequin_model is None
    assert iou(matte.full_resolution(), item.alpha) >= 0.97


def test_a_mannequin_colour_that_is_the_garment_is_refused(studio: StudioEngine) -> None:
    item = scene(None, colour="navy")
    matte = studio.matte(item.rgb, mannequin=MannequinColour(color="#223462"))  # the garment's own colour
    assert matte.mannequin is not None
    assert not matte.mannequin.any()
    assert iou(matte.full_resolution(), item.alpha) >= 0.97


def neck_region(
    out: np.ndarray, item: LabelledImage, canvas_bbox: list[int], bbox: list[float]
) -> np.ndarray:
    """The canvas pixels of the photo's neck opening (between the collar tips, down to the front neckline)."""
    assert item.neck_box is not None
    x0, y0, x1, y1 = item.neck_box
    s = (canvas_bbox[2] - canvas_bbox[0]) / (bbox[2] - bbox[0])
    cx0 = round(canvas_bbox[0] + (x0 - bbox[0]) * s)
    cy0 = round(canvas_bbox[1] + (y0 - bbox[1]) * s)
    cx1 = round(canvas_bbox[0] + (x1 - bbox[0]) * s)
    cy1 = round(canvas_bbox[1] + (y1 - bbox[1]) * s)
    w, h = cx1 - cx0, cy1 - cy0
    return out[cy0 + h // 3 : cy1 - h // 6, cx0 + w // 3 : cx1 - w // 3]


def test_hollow_neck_is_filled_with_an_inside_tone(studio: StudioEngine) -> None:
    item = scene("white", colour="khaki")
    image = Image.fromarray(item.rgb)
    ghost = studio.run(image, request(mannequin={"color": "#ECEAE5"}, shadow="none"))
    cut = studio.run(image, request(mannequin={"color": "#ECEAE5"}, shadow="none", hollow=False))
    assert ghost.metadata["hollow"]["source"] == "tone"
    assert cut.metadata["hollow"]["source"] == "none"
    out_ghost, out_cut = np.asarray(ghost.image).astype(int), np.asarray(cut.image).astype(int)
    neck_g = neck_region(out_ghost, item, ghost.metadata["canvas_bbox"], ghost.metadata["bbox"])
    neck_c = neck_region(out_cut, item, cut.metadata["canvas_bbox"], cut.metadata["bbox"])
    khaki = np.array(GARMENT_COLOURS["khaki"])
    assert np.all(neck_c.reshape(-1, 3).mean(axis=0) > 250)  # mannequin removed: the white background
    inside = neck_g.reshape(-1, 3).mean(axis=0)
    assert np.all(inside < khaki * 0.85)  # darker than the garment: the inside of its back
    assert np.all(inside > khaki * 0.25)
    assert abs(inside[0] / inside[2] - khaki[0] / khaki[2]) < 0.5  # and of its hue
    # nothing of the mannequin's neck is left above the collar
    _, y0, _, y1 = ghost.metadata["canvas_bbox"]
    assert np.all(out_ghost[: y0 - round(0.02 * (y1 - y0))] >= 250)


def test_inside_photo_is_aligned_into_the_hollow(studio: StudioEngine) -> None:
    main, inside = inside_pair((360, 450), shift=(7.0, -5.0), zoom=1.04)
    image = Image.fromarray(main.rgb)
    with_photo = studio.run(
        image, request(mannequin={"color": "#ECEAE5"}, shadow="none"), inside=Image.fromarray(inside)
    )
    meta = with_photo.metadata["hollow"]
    assert meta["source"] == "inside_photo"
    assert meta["alignment_score"] > 0.9
    out = np.asarray(with_photo.image).astype(int)
    red = (out[..., 0] > 150) & (out[..., 1] < 90) & (out[..., 2] < 90)
    assert red.sum() > 400  # the care label, sewn in the inside back, shows through the opening
    ys, xs = np.nonzero(red)
    x0, y0, x1, y1 = with_photo.metadata["canvas_bbox"]
    assert abs(xs.mean() - (x0 + x1) / 2) < 0.04 * (x1 - x0)  # centred, as sewn
    assert y0 <= ys.min()  # in the neck, at the top
    assert ys.max() < y0 + 0.12 * (y1 - y0)


def test_transparent_ghost_keeps_the_hollow_opaque(studio: StudioEngine) -> None:
    item = scene("white", colour="khaki")
    result = studio.run(
        Image.fromarray(item.rgb), request(mannequin={"color": "#ECEAE5"}, background="transparent")
    )
    out = np.asarray(result.image)
    assert out.shape[2] == 4
    neck = neck_region(out, item, result.metadata["canvas_bbox"], result.metadata["bbox"])
    assert neck[..., 3].min() == 255
    assert out[0, 0, 3] == 0


def test_batch_metrics_in_the_metadata(studio: StudioEngine) -> None:
    item = scene(None)
    meta = studio.run(Image.fromarray(item.rgb), request()).metadata
    metrics = meta["batch_metrics"]
    assert set(metrics) == {"scale", "centre_x", "centre_y", "background_l", "exposure_l"}
    assert 0.3 < metrics["scale"] < 1.0
    assert abs(metrics["centre_x"]) < 0.1
    assert 50 < metrics["background_l"] < 80  # mid grey
    assert metrics["exposure_l"] < 40  # navy


def _cut(
    rgb: np.ndarray, truth: np.ndarray, box: tuple[int, int, int, int], *, print_colour: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Put a hole (the backdrop seen through the garment) or a print of the backdrop's colour in ``box``."""
    x0, y0, x1, y1 = box
    rng = np.random.default_rng(9)
    backdrop = rgb[5:25, 5:25].reshape(-1, 3).mean(axis=0)
    out = rgb.astype(np.float32).copy()
    h, w = y1 - y0, x1 - x0
    if print_colour:  # fabric: the garment's shading and weave over a backdrop-coloured ink
        yy, xx = np.mgrid[0:h, 0:w]
        weave = 1.0 + 0.06 * np.sin(xx / 1.7) * np.cos(yy / 2.3) + 0.05 * np.sin(yy / 13.0)
        out[y0:y1, x0:x1] = backdrop * weave[..., None]
    else:
        out[y0:y1, x0:x1] = backdrop + rng.normal(0.0, 2.0, (h, w, 3))
        truth = truth.copy()
        truth[y0:y1, x0:x1] = False
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize("print_colour", [False, True])
def test_a_hole_stays_a_hole_and_a_print_stays_garment(
    studio: StudioEngine, make_garment: Any, print_colour: bool
) -> None:
    rgb, truth = make_garment(600, 700, colour=(40, 70, 130), seed=3)
    box = (250, 300, 350, 400)  # 10 000 px, about 6 % of the garment: more than a speck
    rgb, truth = _cut(rgb, truth, box, print_colour=print_colour)
    alpha = studio.matte(rgb).full_resolution()
    inside = alpha[310:390, 260:340]
    if print_colour:
        assert inside.min() > 0.9  # filled: a print the colour of the backdrop is still the garment
    else:
        assert inside.max() < 0.1  # the backdrop seen through the garment is not garment
    assert iou(alpha, truth.astype(np.float32)) >= 0.97
