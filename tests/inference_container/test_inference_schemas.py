"""Request schema of POST /invocations."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from modamoda_inference.canvas import PRESETS
from modamoda_inference.errors import InvalidRequest
from modamoda_inference.schemas import PRESET_NAMES, InferenceRequest, hex_to_rgb, parse_request, parse_s3_uri

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"


def req(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": JOB,
        "mode": "ghost",
        "image": {"s3_uri": "s3://uploads-bucket/t1/in.jpg"},
    }
    body.update(overrides)
    return body


def test_minimal_request_gets_defaults() -> None:
    r = parse_request(json.dumps(req()).encode())
    assert r.job_id == JOB
    assert r.mode == "ghost"
    assert r.image.bucket_key == ("uploads-bucket", "t1/in.jpg")
    o = r.options
    assert (o.preset, o.background, o.output_format, o.quality, o.seed) == ("square", None, "png", 92, 0)
    assert o.pose_id is None
    assert o.steps is None
    assert o.engine is None
    assert o.background_kind == "preset"  # the preset's white value
    assert o.background_rgb is None
    assert (o.shadow, o.mannequin, o.hollow, o.inside_image) == ("contact", "none", True, None)


def test_what_the_lambda_sends_still_validates() -> None:
    """functions/common/pipeline.py sends these five options (JobOptions' defaults)."""
    opts = {"preset": "square", "background": "#FFFFFF", "output_format": "png", "pose_id": None, "seed": 0}
    r = parse_request(req(options=opts, image={"s3_uri": "s3://b-1/k", "version_id": "v1"}))
    assert r.options.background_rgb == (255, 255, 255)
    assert r.options.shadow == "contact"


@pytest.mark.parametrize(
    ("background", "kind", "canonical"),
    [
        ("#f1f1f1", "colour", "#F1F1F1"),
        ("#fff", "colour", "#FFFFFF"),
        ("transparent", "transparent", "transparent"),
        ("library:studio-grey", "library", "library:studio-grey"),
    ],
)
def test_background_forms(background: str, kind: str, canonical: str) -> None:
    o = parse_request(req(options={"background": background})).options
    assert o.background == canonical
    assert o.background_kind == kind
    assert o.library_id == ("studio-grey" if kind == "library" else None)


def test_mannequin_forms() -> None:
    assert parse_request(req(options={"mannequin": "auto"})).options.mannequin == "auto"
    given = parse_request(req(options={"mannequin": {"color": "#eeeeea", "tolerance": 20}})).options.mannequin
    assert not isinstance(given, str)
    assert given.color == "#EEEEEA"
    assert given.rgb == (238, 238, 234)
    assert given.tolerance == 20
    shorthand = parse_request(req(options={"mannequin": "#00B140"})).options.mannequin
    assert not isinstance(shorthand, str)
    assert shorthand.color == "#00B140"


def test_inside_image_and_new_enums() -> None:
    o = parse_request(
        req(
            options={
                "inside_image": {"s3_uri": "s3://b-1/inside.jpg", "version_id": "v2"},
                "preset": "zalando",
                "output_format": "avif",
                "shadow": "drop",
                "hollow": False,
            }
        )
    ).options
    assert o.inside_image is not None
    assert o.inside_image.bucket_key == ("b-1", "inside.jpg")
    assert (o.preset, o.output_format, o.shadow, o.hollow) == ("zalando", "avif", "drop", False)


def test_full_request() -> None:
    opts = {"preset": "portrait_4_5", "background": "#f0e", "output_format": "webp", "quality": 80, "seed": 7}
    opts |= {"pose_id": "front_03", "steps": 30, "engine": "diffusion"}
    r = parse_request(req(mode="on-model", options=opts, image={"s3_uri": "s3://b-1/k", "version_id": "v1"}))
    assert r.options.background == "#FF00EE"
    assert r.options.background_rgb == (255, 0, 238)
    assert r.image.version_id == "v1"
    assert r.options.engine == "diffusion"


def test_job_id_is_normalised() -> None:
    r = parse_request(req(job_id=JOB.upper()))
    assert r.job_id == JOB


def test_b64_image_is_decoded_once() -> None:
    raw = b"\x89PNG\r\n\x1a\n fake"
    r = parse_request(req(image={"b64": base64.b64encode(raw).decode()}))
    assert r.image.inline_bytes() == raw
    assert r.image.s3_uri is None


def test_presets_match_the_canvas_table() -> None:
    assert set(PRESET_NAMES) == set(PRESETS)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (req(job_id="not-a-uuid"), "job_id"),
        (req(mode="flatlay"), "mode"),
        (req(image={}), "exactly one of s3_uri or b64"),
        (req(image={"s3_uri": "s3://b-1/k", "b64": "aGk="}), "exactly one"),
        (req(image={"b64": "aGk=", "version_id": "v1"}), "version_id goes with image.s3_uri"),
        (req(image={"b64": "not base64!!"}), "not valid base64"),
        (req(image={"s3_uri": "https://example.com/x.jpg"}), "s3://bucket/key"),
        (req(image={"s3_uri": "s3://bucket-only"}), "s3://bucket/key"),
        (req(image={"s3_uri": "s3://b-1/k", "etag": "x"}), "image.etag"),
        (req(options={"preset": "instagram"}), "options.preset"),
        (req(options={"background": "white"}), "hex colour"),
        (req(options={"background": "#12345"}), "hex colour"),
        (req(options={"background": "library:../etc"}), "library id"),
        (req(options={"background": "transparent", "output_format": "jpeg"}), "JPEG has no alpha"),
        (req(options={"shadow": "hard"}), "options.shadow"),
        (req(options={"mannequin": "green"}), "options.mannequin"),
        (req(options={"mannequin": {"color": "#00ff00", "tolerance": 1}}), "tolerance"),
        (req(options={"hollow": "sometimes"}), "options.hollow"),
        (req(options={"inside_image": {"url": "https://x"}}), "options.inside_image"),
        (req(options={"inside_image": {}}), "exactly one of s3_uri or b64"),
        (req(options={"output_format": "gif"}), "output_format"),
        (req(options={"quality": 0}), "quality"),
        (req(options={"quality": 101}), "quality"),
        (req(options={"seed": -1}), "seed"),
        (req(options={"engine": "magic"}), "engine"),
        (req(options={"pose_id": "../../etc/passwd"}), "pose_id"),
        (req(options={"steps": 0}), "steps"),
        (req(options={"sparkle": True}), "options.sparkle"),
        (req(tenant_id="t1"), "tenant_id"),
        ({"mode": "ghost"}, "job_id"),
    ],
)
def test_bad_requests_are_rejected_with_a_clear_message(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(json.dumps(body).encode())
    assert info.value.code == "invalid_request"
    assert fragment in info.value.message


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[1, 2]", b'"ghost"', b"null"])
def test_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="JSON"):
        parse_request(raw)


def test_model_is_frozen_and_round_trips() -> None:
    r = parse_request(req())
    again = InferenceRequest.model_validate_json(r.model_dump_json(exclude_none=True))
    assert again == r
    with pytest.raises(ValueError, match="frozen"):
        r.mode = "on-model"


def test_helpers() -> None:
    assert parse_s3_uri("s3://my.bucket-1/a/b c.jpg") == ("my.bucket-1", "a/b c.jpg")
    assert hex_to_rgb("#0a0B0c") == (10, 11, 12)
    with pytest.raises(ValueError, match="s3://bucket/key"):
        parse_s3_uri("s3://UPPER/key")
    assert str(uuid.UUID(JOB)) == JOB
