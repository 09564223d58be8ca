"""The pose library: versioned OpenPose BODY_18 skeletons under ``assets/poses/`` listed in ``manifest.json``.

The assets are written by ``scripts/make_poses.py``. Each pose file is OpenPose JSON (``people[0].
pose_keypoints_2d``: x, y, confidence for the 18 COCO keypoints, in pixels of ``canvas_width`` x
``canvas_height``; confidence 0 = not visible), so skeletons from OpenPose or a pose editor can join the library.
A request names one as ``"pose_id": "<id>"``; every file's SHA-256 is checked against the manifest the first
time it is read. :func:`manifest` returns the manifest as a JSON-serialisable dict, for the API to serve.

:func:`render` draws a pose map for ControlNet OpenPose with controlnet-aux's own drawing code
(``controlnet_aux.open_pose.util.draw_bodypose``: the limb colours and widths the OpenPose ControlNets were
trained on), at the detector's 512 px resolution, resized to the requested size.

``MODAMODA_ASSETS_DIR`` overrides where the assets are (default: ``assets/`` beside the package, which is
``/opt/program/assets`` in the container).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from modamoda_inference.assets import assets_dir, read_manifest
from modamoda_inference.errors import EngineUnavailable, InvalidRequest

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
# Limbs as (from, to) keypoint indices (0-based), in OpenPose's drawing order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)
FORMAT = "openpose-body18"
DRAW_RESOLUTION = 512  # px, long side: what controlnet-aux's detector draws at before resizing

Point = tuple[float, float]


def _library_dir() -> Path:
    return assets_dir() / "poses"


@dataclass(frozen=True)
class Pose:
    """One skeleton: 18 keypoints in pixels of a ``width`` x ``height`` canvas (None: not visible)."""

    id: str
    version: int
    width: int
    height: int
    keypoints: tuple[Point | None, ...]

    def __post_init__(self) -> None:
        if len(self.keypoints) != len(KEYPOINT_NAMES):
            raise ValueError(f"a BODY_18 pose has {len(KEYPOINT_NAMES)} keypoints, not {len(self.keypoints)}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError("a pose's canvas must have a positive size")

    def point(self, name: str) -> Point | None:
        return self.keypoints[KEYPOINT_NAMES.index(name)]

    @property
    def visible(self) -> int:
        return sum(p is not None for p in self.keypoints)

    def normalised(self) -> list[Point | None]:
        """Keypoints as fractions of the canvas (what controlnet-aux's drawing functions take)."""
        return [None if p is None else (p[0] / self.width, p[1] / self.height) for p in self.keypoints]

    def fit(self, width: int, height: int) -> Pose:
        """The pose on a ``width`` x ``height`` canvas: scaled to fit inside it whole, centred."""
        scale = min(width / self.width, height / self.height)
        dx = (width - self.width * scale) / 2.0
        dy = (height - self.height * scale) / 2.0
        points = tuple(None if p is None else (p[0] * scale + dx, p[1] * scale + dy) for p in self.keypoints)
        return Pose(self.id, self.version, width, height, points)

    def bbox(self) -> tuple[float, float, float, float] | None:
        pts = [p for p in self.keypoints if p is not None]
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)

    def to_openpose(self) -> dict[str, Any]:
        flat: list[float] = []
        for p in self.keypoints:
            flat.extend([0.0, 0.0, 0.0] if p is None else [round(p[0], 1), round(p[1], 1), 1.0])
        return {
            "id": self.id,
            "version": self.version,
            "format": FORMAT,
            "canvas_width": self.width,
            "canvas_height": self.height,
            "people": [{"pose_keypoints_2d": flat}],
        }


def parse_openpose(data: Any, *, pose_id: str, version: int = 1, min_confidence: float = 0.05) -> Pose:
    """An OpenPose JSON document (first person) → :class:`Pose`; ValueError with the reason when malformed."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    try:
        width, height = int(data["canvas_width"]), int(data["canvas_height"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("canvas_width and canvas_height (pixels) are required") from None
    people = data.get("people")
    if not isinstance(people, list) or not people or not isinstance(people[0], dict):
        raise ValueError("'people' must be a non-empty list")
    flat = people[0].get("pose_keypoints_2d")
    if not isinstance(flat, list) or len(flat) != 3 * len(KEYPOINT_NAMES):
        raise ValueError(
            f"pose_keypoints_2d must hold {3 * len(KEYPOINT_NAMES)} numbers (x, y, c per keypoint)"
        )
    points: list[Point | None] = []
    for i in range(len(KEYPOINT_NAMES)):
        x, y, c = flat[3 * i : 3 * i + 3]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (x, y, c)):
            raise ValueError(f"keypoint {KEYPOINT_NAMES[i]} is not three finite numbers")
        points.append((float(x), float(y)) if c >= min_confidence else None)
    return Pose(pose_id, version, width, height, tuple(points))


def _load_manifest(path: str) -> dict[str, Any]:
    data = read_manifest(path, "pose", "poses")
    if data.get("format") != FORMAT:
        raise EngineUnavailable(f"the pose library's manifest is not in the {FORMAT} format")
    return data


def manifest() -> dict[str, Any]:
    """The library's manifest: ``{"version", "format", "keypoint_names", "default", "poses": [{"id", "version",
    "name", "description", "view", "framing", "tags", "file", "sha256", ...}]}``."""
    return _load_manifest(str(_library_dir() / "manifest.json"))


def pose_ids() -> list[str]:
    return [str(entry["id"]) for entry in manifest()["poses"]]


def default_pose_id() -> str:
    return str(manifest().get("default") or pose_ids()[0])


def entry(pose_id: str) -> dict[str, Any]:
    """The manifest entry of a pose; InvalidRequest for an unknown id."""
    for item in manifest()["poses"]:
        if item.get("id") == pose_id:
            return dict(item)
    raise InvalidRequest(f"unknown pose_id {pose_id!r}; known: {', '.join(pose_ids())}")


@lru_cache(maxsize=64)
def _read(pose_id: str, path: str, sha256: str, version: int) -> Pose:
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise EngineUnavailable(f"pose {pose_id}: {path} is missing") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EngineUnavailable(f"pose {pose_id}: the file does not match the manifest's sha256")
    try:
        return parse_openpose(json.loads(data), pose_id=pose_id, version=version)
    except ValueError as exc:
        raise EngineUnavailable(f"pose {pose_id}: malformed OpenPose JSON: {exc}") from exc


def load(pose_id: str) -> Pose:
    """The library pose; InvalidRequest for an unknown id, EngineUnavailable for a damaged library."""
    item = entry(pose_id)
    return _read(pose_id, str(_library_dir() / str(item["file"])), str(item["sha256"]), int(item["version"]))


def verify() -> list[str]:
    """Read and check every pose (hash and format); returns the ids. Raises EngineUnavailable on a problem."""
    ids = pose_ids()
    if len(set(ids)) != len(ids):
        raise EngineUnavailable("the pose library's manifest repeats an id")
    for pose_id in ids:
        load(pose_id)
    return ids


def from_detection(
    points: Sequence[Point | None], width: int, height: int, pose_id: str = "detected"
) -> Pose:
    """A pose from detector keypoints given as fractions of a ``width`` x ``height`` image (controlnet-aux's
    convention)."""
    pts = tuple(None if p is None else (float(p[0]) * width, float(p[1]) * height) for p in points)
    return Pose(pose_id, 1, width, height, pts)


@lru_cache(maxsize=1)
def _drawing() -> tuple[Callable[..., np.ndarray], type]:
    """controlnet-aux's ``draw_bodypose`` and ``Keypoint`` (the package imports all its detectors: slow once)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from controlnet_aux.open_pose.body import Keypoint
            from controlnet_aux.open_pose.util import draw_bodypose
    except ImportError as exc:
        raise EngineUnavailable(f"pose maps need controlnet-aux (and torch): {exc}") from exc
    return draw_bodypose, Keypoint


def render(pose: Pose, width: int, height: int) -> np.ndarray:
    """The ControlNet OpenPose condition image of ``pose`` fitted into ``width`` x ``height``: (H, W, 3) uint8
    RGB, limbs in OpenPose colours on black. Drawn at 512 px on the long side, then resized, as controlnet-aux's
    detector does."""
    draw_bodypose, keypoint_cls = _drawing()
    k = DRAW_RESOLUTION / max(width, height)
    dw, dh = max(1, round(width * k)), max(1, round(height * k))
    fitted = pose.fit(width, height)
    keypoints = [None if p is None else keypoint_cls(p[0], p[1]) for p in fitted.normalised()]
    drawn = np.asarray(draw_bodypose(np.zeros((dh, dw, 3), dtype=np.uint8), keypoints))
    if (dw, dh) != (width, height):
        interp = cv2.INTER_AREA if dw > width else cv2.INTER_LINEAR
        drawn = np.asarray(cv2.resize(drawn, (width, height), interpolation=interp))
    return np.ascontiguousarray(drawn, dtype=np.uint8)
