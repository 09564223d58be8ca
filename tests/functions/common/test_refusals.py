"""Reading the engine's refusal out of SageMaker's failure reason (whole, cut short, with escaped quotes, garbled)
and out of the container's metadata document; the codes mirrored from the container."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modamoda_inference import errors as container_errors  # inference_container/ is on the test path

from functions.common import refusals
from functions.common.errors import INPUT_ERROR_CODES, REFUSAL_CODES

MESSAGE = (
    'No garment stands out from the backdrop: the photo looks like an empty wall. Reshoot it with the "whole" '
    "garment in the frame, on a plain backdrop that contrasts with it."
)
TRAILER = ". See the SageMaker Endpoint logs in your account for more information."


def reason(body: str, status: int = 422, kind: str = "client") -> str:
    """SageMaker's failure reason around the model's answer (the shape local/sagemaker_async.py reproduces)."""
    return f'ClientError: Received {kind} error ({status}) from model with message "{body}"{TRAILER}'


def body(code: str, message: str = MESSAGE, details: dict | None = None) -> str:
    error: dict = {"code": code, "message": message}
    if details:
        error["details"] = details
    return json.dumps({"error": error}, separators=(",", ":"))


def test_the_codes_mirror_the_container() -> None:
    assert REFUSAL_CODES == container_errors.REFUSAL_CODES
    for code in REFUSAL_CODES:
        assert code in INPUT_ERROR_CODES
        assert refusals.REFUSAL_MESSAGES[code].endswith(".")
    refused = {cls.code for cls in (container_errors.NoGarmentFound, container_errors.LowConfidence)}
    refused.add(container_errors.PersonInPhoto.code)
    assert refused == REFUSAL_CODES
    assert container_errors.PhotoRefused.http_status == 422
    container_codes = {
        cls.code for cls in vars(container_errors).values() if isinstance(cls, type) and hasattr(cls, "code")
    }
    assert container_codes >= refusals.CUSTOMER_MESSAGE_CODES


@pytest.mark.parametrize("code", sorted(REFUSAL_CODES))
def test_a_whole_reason_gives_the_engines_code_and_message(code: str) -> None:
    ending = refusals.outcome(reason(body(code, details={"score": 0.2, "threshold": 0.6})))
    assert (ending.status, ending.code, ending.message) == ("rejected", code, MESSAGE)
    assert ending.refused


def test_escaped_quotes() -> None:
    escaped = body("person_in_photo").replace("\\", "\\\\").replace('"', '\\"')
    ending = refusals.outcome(reason(escaped))
    assert (ending.status, ending.code, ending.message) == ("rejected", "person_in_photo", MESSAGE)


def test_truncated_in_the_details_keeps_the_message() -> None:
    whole = body("low_confidence", details={"score": 0.31, "threshold": 0.6, "checks": {"edge": 0.1}})
    cut = whole[: whole.index('"checks"') + 5]
    for text in (f'ClientError: Received client error (422) from model with message "{cut}', reason(cut)):
        ending = refusals.outcome(text)
        assert (ending.status, ending.code, ending.message) == ("rejected", "low_confidence", MESSAGE)


def test_truncated_in_the_message_falls_back_to_the_codes_sentence() -> None:
    whole = body("no_garment_found")
    cut = whole[: whole.index("empty wall")]
    ending = refusals.outcome(f'ClientError: Received client error (422) from model with message "{cut}')
    assert ending == refusals.Outcome(
        "rejected", "no_garment_found", refusals.REFUSAL_MESSAGES["no_garment_found"]
    )


def test_the_metadata_documents_error_wins_over_a_cut_reason() -> None:
    cut = body("low_confidence")[:40]
    document = {"outcome": "refused", "error": {"code": "low_confidence", "message": MESSAGE}}
    ending = refusals.outcome(reason(cut), document)
    assert (ending.code, ending.message) == ("low_confidence", MESSAGE)
    # a document without a refusal does not turn a server error into one
    assert refusals.outcome(reason("", 500, "server"), {"error": {"code": "internal_error"}}).code == (
        "inference_failed"
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (reason(body("invalid_request", "options.preset: bad"), 400), "inference_rejected"),
        (
            reason(body("storage_error", "cannot read s3://b/k from S3: AccessDenied"), 500),
            "inference_failed",
        ),
        (
            reason(body("internal_error", "unexpected error in the inference container"), 500),
            "inference_failed",
        ),
        (reason('{"error": {"code": "unknown_refusal", "message": "x"}}', 422), "inference_rejected"),
        (reason("<html>Bad Gateway</html>", 502, "server"), "inference_failed"),
        (reason("CUDA error: an illegal memory access", 500, "server"), "inference_failed"),
        ("ClientError: Received server error (500) from model." + TRAILER, "inference_failed"),
        ("Inference request timed out", "inference_failed"),
        ("", "inference_failed"),
        (None, "inference_failed"),
        ('ClientError: Received client error (422) from model with message "{"err', "inference_rejected"),
        ("\x00\xff garbage (4", "inference_failed"),
    ],
)
def test_anything_else_keeps_todays_codes_with_a_plain_message(text: str | None, code: str) -> None:
    ending = refusals.outcome(text)
    assert (ending.status, ending.code) == ("failed", code)
    assert ending.message in {refusals.REJECTED_MESSAGE, refusals.FAILED_MESSAGE}
    assert "SageMaker" not in ending.message
    assert "{" not in ending.message


@pytest.mark.parametrize(
    ("code", "status", "ending"),
    [
        ("invalid_image", 400, "invalid_image"),
        ("mode_not_supported", 400, "mode_not_supported"),
        ("engine_unavailable", 503, "engine_unavailable"),
    ],
)
def test_codes_whose_messages_are_for_the_customer_keep_them(code: str, status: int, ending: str) -> None:
    said = "on-model needs the diffusion engine and its weights; this endpoint runs only: studio"
    kind = "client" if status < 500 else "server"
    assert refusals.outcome(reason(body(code, said), status, kind)) == refusals.Outcome(
        "failed", ending, said
    )
    leaky = "the input object s3://bucket/key cannot be read"
    assert (
        refusals.outcome(reason(body(code, leaky), status, kind)).message == refusals.CUSTOMER_MESSAGES[code]
    )
    at_weights = "on-model needs the diffusion engine and its weights under /opt/ml/model"
    assert (
        refusals.outcome(reason(body(code, at_weights), status, kind)).message
        == refusals.CUSTOMER_MESSAGES[code]
    )


def test_control_characters_and_length_are_tamed() -> None:
    noisy = "Reshoot\x00 it\n\n on\x1b[31m a plain backdrop. " + "x" * 5000
    ending = refusals.outcome(reason(body("no_garment_found", noisy)))
    assert ending.message.startswith("Reshoot it on [31m a plain backdrop.")
    assert len(ending.message) == refusals.MAX_MESSAGE


@given(st.text(max_size=400))
def test_any_reason_gives_an_outcome(text: str) -> None:
    ending = refusals.outcome(text)
    assert ending.status in {"rejected", "failed"}
    assert ending.message
    assert ending.code in REFUSAL_CODES | refusals.CUSTOMER_MESSAGE_CODES | {
        "inference_rejected",
        "inference_failed",
    }
    assert not any(marker in ending.message for marker in ("SageMaker", "Exception", "s3://"))


@given(st.integers(min_value=0, max_value=600))
def test_any_cut_of_a_refusal_is_still_a_refusal_once_the_code_is_in(length: int) -> None:
    whole = reason(body("low_confidence", details={"score": 0.3, "threshold": 0.6}))
    cut = whole[:length]
    ending = refusals.outcome(cut)
    if '"low_confidence"' in cut:
        assert (ending.status, ending.code) == ("rejected", "low_confidence")
        assert ending.message in {MESSAGE, refusals.REFUSAL_MESSAGES["low_confidence"]}
    else:
        assert ending.status == "failed"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"quality": {"score": 0.91234567, "threshold": 0.6, "checks": {"a": 1}}},
            {"score": 0.9123, "threshold": 0.6},
        ),
        ({"quality": {"score": 1, "threshold": 0}}, {"score": 1.0, "threshold": 0.0}),
        ({"quality": {"score": 1.5, "threshold": 0.6}}, None),
        ({"quality": {"score": float("nan"), "threshold": 0.6}}, None),
        ({"quality": {"score": True, "threshold": 0.6}}, None),
        ({"quality": {"score": "0.9", "threshold": 0.6}}, None),
        ({"quality": {"score": 0.9}}, None),
        ({"quality": None}, None),
        ({}, None),
        (None, None),
        ([1, 2], None),
    ],
)
def test_quality_from_a_metadata_document(document: object, expected: dict | None) -> None:
    assert refusals.quality(document) == expected
