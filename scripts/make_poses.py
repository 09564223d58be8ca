"""Write the pose library shipped in ``inference_container/assets/poses/`` (deterministic).

Each pose is an OpenPose BODY_18 skeleton (the COCO-18 keypoint order ControlNet OpenPose models are trained
on) stored as an OpenPose JSON file (``people[0].pose_keypoints_2d``: x, y, confidence per keypoint, in pixels
of a 768x1024 canvas; confidence 0 = not visible). The skeletons are built here from joint angles and body
proportions, so the library is reproducible and reviewable; ``manifest.json`` lists every pose with its id,
version, name, description, view, framing, tags and SHA-256. Bump an entry's ``version`` when its skeleton
changes. A pose extracted from a photo (``modamoda_inference.poses.from_detection``) can be added the same way.

    python scripts/make_poses.py            # (re)write the files and the manifest
    python scripts/make_poses.py --check    # the files match the manifest and what this script builds
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "inference_container"))
from modamoda_inference.poses import KEYPOINT_NAMES  # noqa: E402 - the one definition of the keypoint order

OUT_DIR = ROOT / "inference_container" / "assets" / "poses"
WIDTH, HEIGHT = 768, 1024
MANIFEST_VERSION = 1


Point = tuple[float, float] | None


@dataclass(frozen=True)
class Limb:
    """A two-segment limb: angles in degrees from straight down, positive = away from the body's midline."""

    upper: float
    lower: float


@dataclass(frozen=True)
class Body:
    """Body proportions (pixels on the 768x1024 canvas) and joint angles of one pose."""

    cx: float = 384.0
    neck_y: float = 212.0
    shoulder_half: float = 92.0
    hip_half: float = 58.0
    torso: float = 300.0  # neck to the hips' midpoint
    upper_arm: float = 168.0
    forearm: float = 150.0
    thigh: float = 210.0
    shin: float = 212.0
    head: float = 80.0  # neck to nose
    right_arm: Limb = Limb(8.0, 4.0)
    left_arm: Limb = Limb(8.0, 4.0)
    right_leg: Limb = Limb(3.0, 0.0)
    left_leg: Limb = Limb(3.0, 0.0)
    turn: float = 0.0  # -1 profile facing image left … 0 facing the camera … +1 profile facing image right
    back: bool = False  # seen from behind: no face, the subject's right is on the image's right
    hip_tilt: float = 0.0  # px the right hip is lower than the left (contrapposto)
    shoulder_tilt: float = 0.0  # px the right shoulder is lower than the left
    lean: float = 0.0  # px the neck is right of the hips' midpoint
    head_tilt: float = 0.0  # px the nose is right of the neck
    leg_fold: tuple[float, float] = (1.0, 1.0)  # foreshortening of the thighs (seated: thighs towards camera)
    keep_hidden: frozenset[str] = field(default_factory=frozenset)


def _limb(
    start: tuple[float, float], limb: Limb, outward: float, lengths: tuple[float, float], fold: float = 1.0
):
    up = math.radians(limb.upper)
    mid = (start[0] + outward * lengths[0] * math.sin(up), start[1] + lengths[0] * math.cos(up) * fold)
    lo = math.radians(limb.lower)
    end = (mid[0] + outward * lengths[1] * math.sin(lo), mid[1] + lengths[1] * math.cos(lo))
    return mid, end


def skeleton(b: Body) -> list[Point]:
    """The 18 keypoints (pixels) of a body, or None for those not visible."""
    width_scale = math.cos(b.turn * math.pi / 2) if abs(b.turn) < 1 else 0.18
    width_scale = max(width_scale, 0.18)
    # On the image, the subject's right is on the left when facing the camera, on the right when seen from behind.
    right_dir = 1.0 if b.back else -1.0
    hips_mid = (b.cx - b.lean, b.neck_y + b.torso)
    neck = (b.cx, b.neck_y)
    sh = b.shoulder_half * width_scale
    hh = b.hip_half * width_scale
    # When turned, the far side sits a little behind: shift both shoulders towards the facing direction.
    shift = b.turn * 14.0
    r_sh = (neck[0] + right_dir * sh + shift, neck[1] + 6 + b.shoulder_tilt / 2)
    l_sh = (neck[0] - right_dir * sh + shift, neck[1] + 6 - b.shoulder_tilt / 2)
    r_hip = (hips_mid[0] + right_dir * hh + shift * 0.6, hips_mid[1] + b.hip_tilt / 2)
    l_hip = (hips_mid[0] - right_dir * hh + shift * 0.6, hips_mid[1] - b.hip_tilt / 2)
    r_el, r_wr = _limb(r_sh, b.right_arm, right_dir, (b.upper_arm, b.forearm))
    l_el, l_wr = _limb(l_sh, b.left_arm, -right_dir, (b.upper_arm, b.forearm))
    r_kn, r_an = _limb(r_hip, b.right_leg, right_dir, (b.thigh, b.shin), b.leg_fold[0])
    l_kn, l_an = _limb(l_hip, b.left_leg, -right_dir, (b.thigh, b.shin), b.leg_fold[1])

    nose_x = neck[0] + b.head_tilt + b.turn * 30.0
    nose = (nose_x, neck[1] - b.head)
    eye_dx, ear_dx = 20.0 * width_scale, 44.0 * width_scale
    eye_y, ear_y = nose[1] - 16.0, nose[1] - 8.0
    face_c = nose_x - b.turn * 26.0  # the head's centre lies behind the nose when it is turned
    r_eye: Point = (face_c + right_dir * eye_dx + b.turn * 22.0, eye_y)
    l_eye: Point = (face_c - right_dir * eye_dx + b.turn * 22.0, eye_y)
    r_ear: Point = (face_c + right_dir * ear_dx, ear_y)
    l_ear: Point = (face_c - right_dir * ear_dx, ear_y)
    nose_pt: Point = nose
    if b.back:
        nose_pt = r_eye = l_eye = None
        r_ear = (neck[0] + right_dir * 40.0 * width_scale, ear_y)
        l_ear = (neck[0] - right_dir * 40.0 * width_scale, ear_y)
    elif b.turn <= -0.35:  # facing image left: the subject's left side (image right) turns away
        l_ear = None
        if b.turn <= -0.85:
            l_eye = None
    elif b.turn >= 0.35:
        r_ear = None
        if b.turn >= 0.85:
            r_eye = None
    points: list[Point] = [
        nose_pt,
        neck,
        r_sh,
        r_el,
        r_wr,
        l_sh,
        l_el,
        l_wr,
        r_hip,
        r_kn,
        r_an,
        l_hip,
        l_kn,
        l_an,
        r_eye,
        l_eye,
        r_ear,
        l_ear,
    ]
    for name in b.keep_hidden:
        points[KEYPOINT_NAMES.index(name)] = None
    return points


def zoom(
    points: list[Point], scale: float, anchor: tuple[float, float], to: tuple[float, float]
) -> list[Point]:
    """Scale about ``anchor`` and move it to ``to``; points that leave the canvas are dropped (cropped)."""
    out: list[Point] = []
    for p in points:
        if p is None:
            out.append(None)
            continue
        x = to[0] + (p[0] - anchor[0]) * scale
        y = to[1] + (p[1] - anchor[1]) * scale
        out.append((x, y) if 0 <= x < WIDTH and 0 <= y < HEIGHT else None)
    return out


@dataclass(frozen=True)
class PoseSpec:
    id: str
    version: int
    name: str
    description: str
    view: str  # front | three-quarter-left | three-quarter-right | side-left | side-right | back
    framing: str  # full-body | upper-body
    tags: tuple[str, ...]
    body: Body
    upper_body_zoom: float | None = None


POSES: tuple[PoseSpec, ...] = (
    PoseSpec(
        "front-relaxed",
        1,
        "Front, relaxed",
        "Standing straight facing the camera, arms relaxed at the sides",
        "front",
        "full-body",
        ("standing", "classic", "tops", "dresses", "trousers"),
        Body(),
    ),
    PoseSpec(
        "front-hands-on-hips",
        1,
        "Front, hands on hips",
        "Facing the camera, both hands on the hips, elbows out",
        "front",
        "full-body",
        ("standing", "confident", "tops", "dresses"),
        Body(
            right_arm=Limb(42.0, -58.0),
            left_arm=Limb(42.0, -58.0),
            right_leg=Limb(5.0, 1.0),
            left_leg=Limb(5.0, 1.0),
        ),
    ),
    PoseSpec(
        "front-hand-on-hip",
        1,
        "Front, one hand on hip",
        "Weight on one leg, right hand on the hip, left arm relaxed",
        "front",
        "full-body",
        ("standing", "contrapposto", "tops", "dresses", "trousers"),
        Body(
            right_arm=Limb(40.0, -60.0),
            left_arm=Limb(6.0, 2.0),
            hip_tilt=14.0,
            shoulder_tilt=-8.0,
            lean=6.0,
            right_leg=Limb(2.0, 0.0),
            left_leg=Limb(9.0, 2.0),
        ),
    ),
    PoseSpec(
        "front-walking",
        1,
        "Front, walking",
        "Walking towards the camera, one foot forward, arms swinging",
        "front",
        "full-body",
        ("walking", "movement", "dresses", "trousers", "outerwear"),
        Body(
            right_arm=Limb(14.0, 8.0),
            left_arm=Limb(-4.0, -10.0),
            right_leg=Limb(-3.0, 2.0),
            left_leg=Limb(7.0, 4.0),
            hip_tilt=-10.0,
            leg_fold=(1.0, 0.93),
        ),
    ),
    PoseSpec(
        "front-arms-crossed",
        1,
        "Front, arms crossed",
        "Facing the camera with the arms crossed over the waist",
        "front",
        "full-body",
        ("standing", "confident", "trousers", "outerwear"),
        Body(right_arm=Limb(18.0, -104.0), left_arm=Limb(18.0, -98.0)),
    ),
    PoseSpec(
        "front-hand-in-hair",
        1,
        "Front, hand in hair",
        "Facing the camera, right hand raised to the hair, left arm relaxed",
        "front",
        "full-body",
        ("standing", "editorial", "tops", "dresses"),
        Body(right_arm=Limb(150.0, -95.0), left_arm=Limb(7.0, 3.0), head_tilt=-8.0, hip_tilt=8.0),
    ),
    PoseSpec(
        "front-wide-stance",
        1,
        "Front, wide stance",
        "Facing the camera, feet apart, arms slightly away from the body",
        "front",
        "full-body",
        ("standing", "streetwear", "trousers", "outerwear"),
        Body(
            right_arm=Limb(16.0, 10.0),
            left_arm=Limb(16.0, 10.0),
            right_leg=Limb(12.0, 6.0),
            left_leg=Limb(12.0, 6.0),
        ),
    ),
    PoseSpec(
        "front-hands-in-pockets",
        1,
        "Front, hands in pockets",
        "Facing the camera, hands in the front pockets",
        "front",
        "full-body",
        ("standing", "casual", "trousers", "outerwear"),
        Body(
            right_arm=Limb(20.0, -22.0),
            left_arm=Limb(20.0, -22.0),
            right_leg=Limb(4.0, 0.0),
            left_leg=Limb(4.0, 0.0),
        ),
    ),
    PoseSpec(
        "three-quarter-left",
        1,
        "Three-quarter, turned left",
        "Body turned about 45 degrees towards the image's left, looking at the camera",
        "three-quarter-left",
        "full-body",
        ("standing", "tops", "dresses", "outerwear"),
        Body(turn=-0.5, right_arm=Limb(6.0, 2.0), left_arm=Limb(10.0, 6.0), left_leg=Limb(6.0, 2.0)),
    ),
    PoseSpec(
        "three-quarter-right",
        1,
        "Three-quarter, turned right",
        "Body turned about 45 degrees towards the image's right, looking at the camera",
        "three-quarter-right",
        "full-body",
        ("standing", "tops", "dresses", "outerwear"),
        Body(turn=0.5, right_arm=Limb(10.0, 6.0), left_arm=Limb(6.0, 2.0), right_leg=Limb(6.0, 2.0)),
    ),
    PoseSpec(
        "side-left",
        1,
        "Side profile, facing left",
        "Profile facing the image's left, arms relaxed",
        "side-left",
        "full-body",
        ("standing", "profile", "dresses", "trousers"),
        Body(
            turn=-1.0,
            right_arm=Limb(-6.0, -10.0),
            left_arm=Limb(4.0, 2.0),
            right_leg=Limb(-2.0, 0.0),
            left_leg=Limb(3.0, 0.0),
        ),
    ),
    PoseSpec(
        "side-right",
        1,
        "Side profile, facing right",
        "Profile facing the image's right, arms relaxed",
        "side-right",
        "full-body",
        ("standing", "profile", "dresses", "trousers"),
        Body(
            turn=1.0,
            right_arm=Limb(4.0, 2.0),
            left_arm=Limb(-6.0, -10.0),
            right_leg=Limb(3.0, 0.0),
            left_leg=Limb(-2.0, 0.0),
        ),
    ),
    PoseSpec(
        "back-relaxed",
        1,
        "Back view",
        "Seen from behind, arms relaxed, to show the back of the garment",
        "back",
        "full-body",
        ("standing", "back", "tops", "dresses", "outerwear"),
        Body(back=True),
    ),
    PoseSpec(
        "seated-stool",
        1,
        "Seated on a stool",
        "Sitting on a high stool facing the camera, hands resting on the thighs",
        "front",
        "full-body",
        ("seated", "tops", "dresses"),
        Body(
            neck_y=250.0,
            right_arm=Limb(10.0, -28.0),
            left_arm=Limb(10.0, -28.0),
            right_leg=Limb(12.0, 2.0),
            left_leg=Limb(12.0, 2.0),
            leg_fold=(0.32, 0.32),
        ),
    ),
    PoseSpec(
        "upper-body-front",
        1,
        "Upper body, front",
        "Waist-up crop facing the camera, for tops and shirts",
        "front",
        "upper-body",
        ("upper-body", "tops", "shirts", "knitwear"),
        Body(right_arm=Limb(10.0, 4.0), left_arm=Limb(10.0, 4.0)),
        upper_body_zoom=1.9,
    ),
    PoseSpec(
        "upper-body-three-quarter",
        1,
        "Upper body, three-quarter",
        "Waist-up crop turned towards the image's left, for tops and jackets",
        "three-quarter-left",
        "upper-body",
        ("upper-body", "tops", "outerwear"),
        Body(turn=-0.5, right_arm=Limb(8.0, 3.0), left_arm=Limb(12.0, 6.0)),
        upper_body_zoom=1.9,
    ),
)


def pose_points(spec: PoseSpec) -> list[Point]:
    points = skeleton(spec.body)
    if spec.upper_body_zoom is not None:
        neck = points[1]
        assert neck is not None
        points = zoom(points, spec.upper_body_zoom, neck, (WIDTH / 2, 300.0))
    for p in points:
        if p is not None and not (0 <= p[0] < WIDTH and 0 <= p[1] < HEIGHT):
            raise ValueError(f"pose {spec.id}: keypoint {p} is off the canvas")
    return points


def pose_document(spec: PoseSpec) -> dict[str, object]:
    flat: list[float] = []
    for p in pose_points(spec):
        flat.extend([0.0, 0.0, 0.0] if p is None else [round(p[0], 1), round(p[1], 1), 1.0])
    return {
        "id": spec.id,
        "version": spec.version,
        "format": "openpose-body18",
        "canvas_width": WIDTH,
        "canvas_height": HEIGHT,
        "people": [{"pose_keypoints_2d": flat}],
    }


def _dump(data: object) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


def _dump_pose(doc: dict[str, object]) -> bytes:
    """Like :func:`_dump`, with one keypoint (x, y, confidence) a line."""
    head = {k: v for k, v in doc.items() if k != "people"}
    people = doc["people"]
    assert isinstance(people, list)
    flat = people[0]["pose_keypoints_2d"]
    triples = [json.dumps(flat[i : i + 3]) for i in range(0, len(flat), 3)]
    lines = json.dumps(head, indent=1)[:-2]
    body = ",\n   ".join(t[1:-1] for t in triples)
    return f'{lines},\n "people": [{{"pose_keypoints_2d": [\n   {body}\n ]}}]\n}}\n'.encode()


def build() -> tuple[dict[str, bytes], dict[str, object]]:
    files: dict[str, bytes] = {}
    entries: list[dict[str, object]] = []
    ids = [p.id for p in POSES]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate pose ids")
    for spec in POSES:
        name = f"{spec.id}.json"
        data = _dump_pose(pose_document(spec))
        files[name] = data
        visible = sum(p is not None for p in pose_points(spec))
        entries.append(
            {
                "id": spec.id,
                "version": spec.version,
                "name": spec.name,
                "description": spec.description,
                "view": spec.view,
                "framing": spec.framing,
                "tags": list(spec.tags),
                "file": name,
                "width": WIDTH,
                "height": HEIGHT,
                "keypoints_visible": visible,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {
        "version": MANIFEST_VERSION,
        "generated_by": "scripts/make_poses.py",
        "format": "openpose-body18",
        "keypoint_names": list(KEYPOINT_NAMES),
        "default": "front-relaxed",
        "poses": entries,
    }
    return files, manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="verify the files instead of writing them")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    files, manifest = build()
    files["manifest.json"] = _dump(manifest)
    if args.check:
        bad = [
            n
            for n, data in files.items()
            if not (args.out / n).is_file() or (args.out / n).read_bytes() != data
        ]
        if bad:
            print(f"pose library out of date: {', '.join(bad)} (run scripts/make_poses.py)", file=sys.stderr)
            return 1
        print(f"pose library OK: {len(POSES)} poses")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    print(f"wrote {len(POSES)} poses and manifest.json to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
