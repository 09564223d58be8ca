"""The diffusion engine end to end on tiny random models (CPU): shapes, determinism, exact garment pixels,
IP-Adapter, upscaler, poses from the library or a photo, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modamoda_inference import backgrounds, poses
from modamoda_inference.diffusion.engine import DiffusionEngine, colour_name
from modamoda_inference.diffusion.pipeline import RuntimeSettings
from modamoda_inference.errors import EngineUnavailable, InvalidImage, InvalidRequest
from modamoda_inference.schemas import InferenceRequest, parse_request
from PIL import Image

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def request(mode: str = "on-model", **options: Any) -> InferenceRequest:
    return parse_request({"job_id": JOB, "mode": mode, "image": {"b64": "eA=="}, "options": options})


def run(
    engine: DiffusionEngine, rgb: np.ndarray, mode: str = "on-model", **options: Any
) -> tuple[np.ndarray, dict]:
    result = engine.run(Image.fromarray(rgb), request(mode, **options))
    assert result.image.mode == "RGB"
    return np.asarray(result.image), result.metadata


def test_engine_is_ready(engine: DiffusionEngine) -> None:
    assert engine.ready
    assert engine.modes == frozenset({"on-model", "ghost"})
    runtime = engine.pipelines.describe() if engine.pipelines else {}
    assert runtime == {
        "device": "cpu",
        "dtype": "float32",
        "attention": "sdpa",
        "compiled": False,
        "ip_adapter": True,
        "upscaler": True,
        "pose_detector": False,
    }
    assert len(engine.pose_ids) >= 12


def test_on_model_keeps_garment_and_background_exactly(
    engine: DiffusionEngine, garment_rgb: np.ndarray
) -> None:
    options = {"seed": 7, "background": "library:studio-grey", "pose_id": "front-hands-on-hips"}
    out, meta = run(engine, garment_rgb, **options)
    assert out.shape == (64, 64, 3)
    assert meta["engine"] == "diffusion"
    assert meta["generated"] is True
    assert meta["size"] == [64, 64]
    assert meta["pose"] == {
        "source": "library",
        "id": "front-hands-on-hips",
        "version": 1,
        "view": "front",
        "framing": "full-body",
    }
    assert meta["background"] == "library:studio-grey"
    assert meta["steps"] == 2
    assert meta["model"]["version"] == "test"
    prepared = engine.prepare(Image.fromarray(garment_rgb), request(**options))
    layers = prepared.layers
    core = layers.garment_core()
    assert core.sum() > 20
    assert np.array_equal(out[core], layers.garment[core])
    untouched = (layers.generate == 0) & (layers.garment_alpha == 0)
    library = backgrounds.render("studio-grey", 64, 64)
    assert untouched.sum() > 500
    assert np.array_equal(out[untouched], library[untouched])
    painted = layers.mask > 0
    assert not np.array_equal(out[painted], layers.init_image[painted])  # the person region was generated


def test_same_seed_same_picture_other_seed_other_picture(
    engine: DiffusionEngine, garment_rgb: np.ndarray
) -> None:
    a, _ = run(engine, garment_rgb, seed=11)
    b, _ = run(engine, garment_rgb, seed=11)
    c, _ = run(engine, garment_rgb, seed=12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_size_and_preset_aspect(engine: DiffusionEngine, garment_rgb: np.ndarray) -> None:
    assert engine.canvas_size(request(size=128, preset="portrait_4_5")) == (104, 128)  # 4:5, multiples of 4
    assert engine.canvas_size(request()) == (64, 64)  # the manifest's default size
    out, meta = run(engine, garment_rgb, preset="portrait_4_5", background="#F2D7E0")
    assert out.shape == (64, 52, 3)
    assert meta["background"] == "#F2D7E0"
    assert colour_name((0xF2, 0xD7, 0xE0)) == "pastel pink"
    prepared = engine.prepare(Image.fromarray(garment_rgb), request(background="#F2D7E0"))
    assert "plain pastel pink studio background" in prepared.job.prompt


def test_upscaler_stage_doubles_the_size(engine: DiffusionEngine, garment_rgb: np.ndarray) -> None:
    out, meta = run(engine, garment_rgb, upscale=True, seed=3)
    assert out.shape == (128, 128, 3)
    assert meta["upscaled"] is True
    assert meta["generated_size"] == [64, 64]
    req = request(upscale=True, seed=3)
    final = engine.final_layers(engine.prepare(Image.fromarray(garment_rgb), req), req)
    core = final.garment_core()
    assert np.array_equal(out[core], final.garment[core])  # pasted back at the output size


def test_generative_ghost(engine: DiffusionEngine, mannequin_rgb: np.ndarray, mannequin_hex: str) -> None:
    out, meta = run(engine, mannequin_rgb, "ghost", mannequin=mannequin_hex, seed=5)
    assert out.shape == (64, 64, 3)
    assert meta["generated"] is True
    assert 0.0 < meta["generated_fraction"] < 0.1
    prepared = engine.prepare(
        Image.fromarray(mannequin_rgb), request("ghost", mannequin=mannequin_hex, seed=5)
    )
    core = prepared.layers.garment_core()
    assert np.array_equal(out[core], prepared.layers.garment[core])
    again, _ = run(engine, mannequin_rgb, "ghost", mannequin=mannequin_hex, seed=5)
    assert np.array_equal(out, again)


def test_ghost_without_a_mannequin_generates_nothing(
    engine: DiffusionEngine, garment_rgb: np.ndarray
) -> None:
    out, meta = run(engine, garment_rgb, "ghost", background="#FFFFFF")
    assert meta["generated"] is False
    prepared = engine.prepare(Image.fromarray(garment_rgb), request("ghost", background="#FFFFFF"))
    layers = prepared.layers
    a = layers.garment_alpha[..., None]
    expected = np.rint(layers.garment * a + 255.0 * (1 - a)).astype(np.uint8)
    assert np.array_equal(out, expected)


def test_clear_request_errors(engine: DiffusionEngine, garment_rgb: np.ndarray) -> None:
    with pytest.raises(InvalidRequest, match="unknown pose_id 'nope'"):
        run(engine, garment_rgb, pose_id="nope")
    with pytest.raises(InvalidRequest, match="needs an opaque background"):
        run(engine, garment_rgb, background="transparent")
    with pytest.raises(InvalidRequest, match="unknown background library id"):
        run(engine, garment_rgb, background="library:moon")
    with pytest.raises(EngineUnavailable, match="pose detector's weights"):
        run(engine, garment_rgb, pose_image={"b64": PNG_1PX})


class FakeDetector:
    """Stands in for controlnet-aux's OpenPose body estimator (its real weights are not here)."""

    def __init__(self, found: bool) -> None:
        self.found = found
        self.seen: list[tuple[int, ...]] = []

    def detect(self, rgb: np.ndarray, pose_id: str = "detected") -> poses.Pose | None:
        self.seen.append(rgb.shape)
        if not self.found:
            return None
        library = poses.load("front-hand-in-hair")
        return poses.Pose(pose_id, 1, library.width, library.height, library.keypoints)


def test_pose_from_a_reference_photo(
    engine: DiffusionEngine, garment_rgb: np.ndarray, encode_image_bytes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    assert engine.pipelines is not None
    photo = base64.b64encode(encode_image_bytes(garment_rgb)).decode()
    detector = FakeDetector(found=True)
    monkeypatch.setattr(engine.pipelines, "detector", detector)
    _, meta = run(engine, garment_rgb, pose_image={"b64": photo})
    assert meta["pose"] == {"source": "photo", "keypoints": 18}
    assert detector.seen == [garment_rgb.shape]
    monkeypatch.setattr(engine.pipelines, "detector", FakeDetector(found=False))
    with pytest.raises(InvalidImage, match="no person found"):
        run(engine, garment_rgb, pose_image={"b64": photo})
    with pytest.raises(InvalidImage, match=r"options\.pose_image: "):
        run(engine, garment_rgb, pose_image={"b64": "bm90IGFuIGltYWdl"})


def test_ip_adapter_and_upscaler_are_optional(
    tiny_model_dir: Path, tmp_path: Path, cpu_settings: RuntimeSettings, garment_rgb: np.ndarray
) -> None:
    from modamoda_inference.diffusion import weights

    root = tmp_path / "model"
    shutil.copytree(tiny_model_dir, root, ignore=shutil.ignore_patterns("ip-adapter", "upscaler"))
    data = weights.read_manifest(root)
    for name in ("ip-adapter", "upscaler"):
        data["components"].pop(name)
    weights.write_manifest(root, data)
    bare = DiffusionEngine(settings=cpu_settings)
    bare.load(root)
    assert bare.pipelines is not None
    assert bare.pipelines.describe()["ip_adapter"] is False
    out, meta = run(bare, garment_rgb, seed=1)
    assert out.shape == (64, 64, 3)
    assert meta["runtime"]["ip_adapter"] is False
    with pytest.raises(EngineUnavailable, match=r"options\.upscale needs the upscaler's weights"):
        run(bare, garment_rgb, upscale=True)
