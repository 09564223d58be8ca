"""The pose library: versioned OpenPose BODY_18 assets with metadata, checked hashes, pose maps drawn with
controlnet-aux's own OpenPose drawing code."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from modamoda_inference import poses
from modamoda_inference.assets import read_manifest
from modamoda_inference.errors import EngineUnavailable, InvalidRequest

REPO = Path(__file__).resolve().parents[2]
VIEWS = {"front", "three-quarter-left", "three-quarter-right", "side-left", "side-right", "back"}


@pytest.fixture(scope="module")
def make_poses() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_poses", REPO / "scripts" / "make_poses.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_poses"] = module
    spec.loader.exec_module(module)
    return module


def test_library_has_at_least_twelve_described_versioned_poses() -> None:
    manifest = poses.manifest()
    assert manifest["format"] == "openpose-body18"
    assert manifest["keypoint_names"] == list(poses.KEYPOINT_NAMES)
    entries = manifest["poses"]
    assert len(entries) >= 12
    ids = [e["id"] for e in entries]
    assert len(set(ids)) == len(ids)
    assert manifest["default"] in ids
    for e in entries:
        assert isinstance(e["version"], int)
        assert e["version"] >= 1
        assert e["name"]
        assert e["description"]
        assert e["view"] in VIEWS
        assert e["framing"] in {"full-body", "upper-body"}
        assert e["tags"]
        assert len(e["sha256"]) == 64
        # ids are safe for the API's pose_id pattern
        assert all(c.islower() or c.isdigit() or c == "-" for c in e["id"])
    views = {e["view"] for e in entries}
    assert {"front", "back"} <= views
    assert len(views) >= 4
    json.dumps(manifest)  # servable as is


def test_every_pose_verifies_and_is_on_its_canvas() -> None:
    ids = poses.verify()
    assert ids == poses.pose_ids()
    for pose_id in ids:
        pose = poses.load(pose_id)
        assert pose.version == poses.entry(pose_id)["version"]
        assert pose.visible >= 10
        assert pose.point("neck") is not None
        for p in pose.keypoints:
            if p is not None:
                assert 0 <= p[0] < pose.width
                assert 0 <= p[1] < pose.height
    back = poses.load("back-relaxed")
    assert back.point("nose") is None  # no face seen from behind


def test_assets_match_their_generator(make_poses: ModuleType) -> None:
    assert make_poses.main(["--check"]) == 0


def test_unknown_pose_is_a_clear_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match=r"unknown pose_id 'moonwalk'; known: .*front-relaxed"):
        poses.load("moonwalk")


def test_tampered_pose_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(poses.assets_dir() / "poses", tmp_path / "poses")
    target = tmp_path / "poses" / "front-relaxed.json"
    target.write_text(target.read_text().replace("384.0", "385.0", 1))
    monkeypatch.setenv("MODAMODA_ASSETS_DIR", str(tmp_path))
    with pytest.raises(
        EngineUnavailable, match="front-relaxed: the file does not match the manifest's sha256"
    ):
        poses.load("front-relaxed")
    (tmp_path / "poses" / "manifest.json").write_text("{not json")
    read_manifest.cache_clear()
    with pytest.raises(EngineUnavailable, match="manifest cannot be read"):
        poses.verify()
    read_manifest.cache_clear()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a JSON object"),
        ({"people": []}, "canvas_width and canvas_height"),
        ({"canvas_width": 10, "canvas_height": 10, "people": []}, "non-empty list"),
        (
            {"canvas_width": 10, "canvas_height": 10, "people": [{"pose_keypoints_2d": [1, 2, 3]}]},
            "54 numbers",
        ),
        (
            {"canvas_width": 10, "canvas_height": 10, "people": [{"pose_keypoints_2d": ["x"] * 54}]},
            "not three finite numbers",
        ),
    ],
)
def test_malformed_openpose_json(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        poses.parse_openpose(doc, pose_id="x")


def test_openpose_round_trip_and_fit() -> None:
    pose = poses.load("front-hands-on-hips")
    again = poses.parse_openpose(pose.to_openpose(), pose_id=pose.id)
    assert again.keypoints == pose.keypoints
    fitted = pose.fit(600, 400)  # wider than tall: scaled by 400/1024, centred horizontally
    scale = 400 / pose.height
    neck, fneck = pose.point("neck"), fitted.point("neck")
    assert neck is not None
    assert fneck is not None
    assert fneck[1] == pytest.approx(neck[1] * scale)
    assert fneck[0] == pytest.approx(neck[0] * scale + (600 - pose.width * scale) / 2)
    detected = poses.from_detection([(0.5, 0.5)] * 18, 200, 100)
    assert detected.keypoints[0] == (100.0, 50.0)


def test_pose_map_is_drawn_with_openpose_colours() -> None:
    pose = poses.load("front-relaxed")
    a = poses.render(pose, 384, 512)
    b = poses.render(pose, 384, 512)
    assert a.shape == (512, 384, 3)
    assert a.dtype == np.uint8
    assert np.array_equal(a, b)
    colours = {tuple(c) for c in a.reshape(-1, 3)}
    assert (153, 0, 0) in colours  # neck → right shoulder limb: OpenPose red at 60 %
    assert (255, 0, 0) in colours  # the nose's dot
    assert (0, 0, 153) in colours  # neck → nose
    assert 0.02 < float((a.sum(axis=2) > 0).mean()) < 0.3  # a skeleton on black
    small = poses.render(pose, 64, 48)
    assert small.shape == (48, 64, 3)
    assert small.any()
    # a side view puts the limbs of both sides nearly on top of each other: narrower than the front view
    front_cols = np.flatnonzero(a.any(axis=(0, 2)))
    side = poses.render(poses.load("side-left"), 384, 512)
    side_cols = np.flatnonzero(side.any(axis=(0, 2)))
    assert side_cols.size < front_cols.size
