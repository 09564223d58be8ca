"""A job ends the same whichever path made (or refused) its image: the studio function's failure, read by
``ReleaseCredits`` (``pipeline._outcome_of`` with ``refusals.answer_outcome``), gives the status, code, message
and quality that the notifier reads out of the async endpoint's error notification (``refusals.outcome``) for the
same answer of the same container code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from modamoda_inference import errors as container_errors  # inference_container/ is on the test path
from modamoda_inference.lambda_handler import InferenceFailed, InputRejected, answer_of
from modamoda_inference.server import Response, quality_of

from functions.common import pipeline, refusals
from local.sagemaker_async import notification

JOB = "6f1c2b9e-1d2a-4c55-9a0e-5d1d0f6b7a21"
QUALITY = {"score": 0.21, "threshold": 0.5, "checks": {"edges": 0.3}, "path": "backdrop"}

ANSWERS: list[Any] = [
    container_errors.LowConfidence("We could not make a clean cut-out of this photo.", details=QUALITY),
    container_errors.NoGarmentFound("No garment stands out from the backdrop."),
    container_errors.PersonInPhoto("Someone is wearing the garment."),
    container_errors.PhotoRefused("refused for a reason without its own code"),
    container_errors.EngineUnavailable(
        "ghost needs the diffusion engine and its weights under /opt/ml/model"
    ),
    container_errors.InvalidImage("The photo could not be read."),
    container_errors.ModeNotSupported("engine studio does not do mode on-model"),
    container_errors.InvalidRequest("invalid request: options.size: must be a multiple of 64"),
    container_errors.StorageError("cannot read s3://bucket/key from S3: AccessDenied"),
    "crash",
]


def container_answer(exc: Any) -> Response:
    if exc == "crash":  # what InferenceService answers for an unexpected exception
        return Response.json(
            500,
            {"error": {"code": "internal_error", "message": "unexpected error in the inference container"}},
        )
    return Response.error(exc)


def via_endpoint(exc: Any, response: Response) -> tuple[tuple[str, str, str], dict[str, float] | None]:
    """What the notifier makes of it: SageMaker's failure reason and the metadata document the container wrote."""
    note = notification(
        JOB,
        "s3://b/inference/input/x.json",
        content_type="application/json",
        failure=(response.status, response.body[:512].decode()),
    )
    error = json.loads(response.body)["error"]
    document = {
        "outcome": "refused" if isinstance(exc, container_errors.PhotoRefused) else "failed",
        "job_id": JOB,
        "error": error,
        "quality": quality_of(error.get("details")),
    }
    ending = refusals.outcome(note["failureReason"], document)
    quality = refusals.quality(document) if ending.refused else None
    return (ending.status, ending.code, ending.message), quality


def via_studio_function(response: Response) -> tuple[tuple[str, str, str], dict[str, float] | None]:
    """What ReleaseCredits makes of the studio function's failure (the Lambda error payload as Step Functions'
    Cause, the exception's class name as its Error)."""
    answer = answer_of(response.status, json.loads(response.body))
    kind = InputRejected if answer["error"]["code"] in container_errors.REFUSAL_CODES else InferenceFailed
    raised = kind(answer)
    cause = json.dumps(
        {
            "errorMessage": str(raised),
            "errorType": kind.__name__,
            "requestId": "r",
            "stackTrace": ["  File x"],
        }
    )
    error = {"Error": kind.__name__, "Cause": cause}
    status, code, message = pipeline._outcome_of(error)
    quality = refusals.quality(pipeline._engine_answer(error)) if status == "rejected" else None
    return (status, code, message), quality


@pytest.mark.parametrize("exc", ANSWERS, ids=lambda e: e if isinstance(e, str) else type(e).__name__)
def test_both_paths_end_the_job_alike(exc: Any) -> None:
    response = container_answer(exc)
    assert via_studio_function(response) == via_endpoint(exc, response)


def test_refusals_are_rejected_with_the_engines_sentence_and_quality() -> None:
    (status, code, message), quality = via_studio_function(container_answer(ANSWERS[0]))
    assert (status, code) == ("rejected", "low_confidence")
    assert message == "We could not make a clean cut-out of this photo."
    assert quality == {"score": 0.21, "threshold": 0.5}


def test_internals_never_reach_the_customer() -> None:
    for exc in ANSWERS:
        (_, _, message), _ = via_studio_function(container_answer(exc))
        for marker in ("/opt/", "s3://", "Traceback", "Exception", "Lambda", "SageMaker", '{"'):
            assert marker not in message, (exc, message)


@pytest.mark.parametrize(
    "error",
    [
        None,
        {"Error": "InferenceFailed", "Cause": "hold_expired: the credit hold expired"},  # the sweeper's
        {
            "Error": "InputRejected",
            "Cause": json.dumps({"errorMessage": "not_an_image: The file is not a photo."}),
        },
        {"Error": "InferenceFailed", "Cause": json.dumps({"errorMessage": json.dumps({"status": True})})},
        {"Error": "States.Timeout", "Cause": json.dumps({"errorMessage": json.dumps({"status": 500})})},
    ],
)
def test_other_failures_are_not_read_as_engine_answers(error: dict[str, Any] | None) -> None:
    assert pipeline._engine_answer(error) is None
