"""What the inference engine said about a job, as the notifier can know it: the SageMaker async failure reason
and the job's metadata document (``metadata_s3_uri``, written by the container on success and on refusal).

A refusal (the engine can tell the photo would not make a usable packshot) reaches the notifier as an error
notification whose ``failureReason`` is SageMaker's sentence around the container's JSON error body::

    ClientError: Received client error (422) from model with message "{"error": {"code": "low_confidence",
    "message": "...", "details": {...}}}". See the SageMaker Endpoint logs in your account for more information.

The body may be cut short, and its quotes may come escaped (``\\"``). :func:`engine_error` reads the code and the
message from the complete error in the metadata document when there is one, else from the failure reason as far
as it goes; :func:`outcome` turns that into the job's ending: a code of ``REFUSAL_CODES`` ends the job
``rejected`` with the engine's own sentence (or this module's, when the reason lost it), anything else is
the container's own code and message where its code is one whose messages are written for the customer
(``CUSTOMER_MESSAGE_CODES``: e.g. ``engine_unavailable`` for on-model without the diffusion weights), else
``inference_rejected`` (4xx) or ``inference_failed`` with a plain message. The raw reason is logged, never shown to the customer.

The studio engine's Lambda function answers the state machine directly (no SageMaker sentence around it): its
failure carries the container's whole answer, read by :func:`engine_answer` and ended by :func:`answer_outcome`
under the same rules.

The Lambda layer does not carry the container package: the codes are mirrored in ``errors.REFUSAL_CODES``
(``tests/functions/common/test_refusals.py`` keeps them equal to ``modamoda_inference.errors.REFUSAL_CODES``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from functions.common.errors import REFUSAL_CODES

# Said when the engine's own sentence did not survive the trip (a truncated failure reason).
REFUSAL_MESSAGES: dict[str, str] = {
    "no_garment_found": "No garment was found in the photo. Reshoot it with the whole garment in the frame on a "
    "plain backdrop that contrasts with it.",
    "low_confidence": "The garment could not be cut out cleanly enough to sell with. Reshoot it on a plain, "
    "evenly lit backdrop that contrasts with the garment, with the whole garment in the frame.",
    "person_in_photo": "Someone is wearing the garment. For a ghost packshot, photograph it on a mannequin, on "
    "a hanger or laid flat.",
}
REJECTED_MESSAGE = (
    "The image engine could not process this photo. Nothing was charged; try another photo of the garment."
)
FAILED_MESSAGE = (
    "The image could not be created because of a problem on our side. Nothing was charged; please try again."
)
MAX_MESSAGE = 1000
# Container error codes (``modamoda_inference.errors``) whose messages speak about the customer's photo or
# request in the customer's terms (with this module's sentence when the container's names internals, such as
# where the weights live); other codes (invalid_request, storage_error, internal_error...) describe the
# request the Lambda built or the container itself, so the customer gets a plain message instead.
CUSTOMER_MESSAGES: dict[str, str] = {
    "invalid_image": "The photo could not be read. Nothing was charged; save it again as JPEG or PNG and upload "
    "it again.",
    "mode_not_supported": "This kind of image is not available on this service yet. Nothing was charged; choose "
    "a ghost mannequin image instead.",
    "engine_unavailable": "On-model images are not available on this service yet. Nothing was charged; choose a "
    "ghost mannequin image instead.",
}
CUSTOMER_MESSAGE_CODES: frozenset[str] = frozenset(CUSTOMER_MESSAGES)
_INTERNAL = (
    "s3://",
    "arn:aws",
    "/opt/",
    "Traceback",
    "botocore",
    "boto3",
    "Exception",
    "ClientError",
    "An error occurred (",
    "SageMaker",
    "Lambda",
    "States.",
)

_STATUS = re.compile(r"\((\d{3})\)")
_BODY = re.compile(r'from model with message "(?P<body>.*)', re.S)
_TRAILER = re.compile(r'"\.?\s*See the SageMaker Endpoint logs.*$', re.S)
_CODE = re.compile(r'"code"\s*:\s*"([a-z][a-z0-9_]{0,63})"')
_MESSAGE = re.compile(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', re.S)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True)
class EngineError:
    """The container's error as far as it could be read: ``code`` and ``message`` may be empty."""

    code: str
    message: str
    status: int | None = None


@dataclass(frozen=True)
class Outcome:
    """How a failed inference ends the job: ``rejected`` (an engine refusal, no charge) or ``failed``."""

    status: str
    code: str
    message: str

    @property
    def refused(self) -> bool:
        return self.status == "rejected"


def _plain(text: Any) -> str:
    """A message fit to show: a string, control characters folded to spaces, at most ``MAX_MESSAGE`` long."""
    if not isinstance(text, str):
        return ""
    return " ".join(_CONTROL.sub(" ", text).split())[:MAX_MESSAGE]


def _from_json(body: str) -> tuple[str, str] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None
    return error["code"], _plain(error.get("message"))


def _unescape(body: str) -> str:
    """One level of JSON string escaping undone (``\\"`` → ``"``), as far as the text goes."""
    try:
        return str(json.loads(f'"{body}"'))
    except ValueError:
        return body.replace('\\\\"', "\u0000").replace('\\"', '"').replace("\u0000", '\\"')


def _from_fragment(body: str) -> tuple[str, str] | None:
    """Code and message from a cut-short body; the message only when its string was closed."""
    code = _CODE.search(body)
    if code is None:
        return None
    message = ""
    found = _MESSAGE.search(body)
    if found is not None:
        try:
            message = _plain(json.loads(f'"{found.group(1)}"'))
        except ValueError:
            message = ""
    return code.group(1), message


def parse_failure_reason(reason: str | None) -> EngineError:
    """The container's error code and message in SageMaker's failure reason (see the module doc); empty parts
    when it does not say (a server error without a body, another sentence, garbage)."""
    text = reason if isinstance(reason, str) else ""
    status_match = _STATUS.search(text)
    status = int(status_match.group(1)) if status_match else None
    body_match = _BODY.search(text)
    if body_match is None:
        return EngineError("", "", status)
    body = _TRAILER.sub("", body_match.group("body")).strip()
    for candidate in (body, _unescape(body)):
        parsed = _from_json(candidate)
        if parsed is not None:
            return EngineError(parsed[0], parsed[1], status)
    for candidate in (body, _unescape(body)):
        parsed = _from_fragment(candidate)
        if parsed is not None:
            return EngineError(parsed[0], parsed[1], status)
    return EngineError("", "", status)


def metadata_error(document: Any) -> EngineError | None:
    """The complete error of a metadata document the container wrote for a refused (or failed) job."""
    if not isinstance(document, dict) or not isinstance(document.get("error"), dict):
        return None
    error = document["error"]
    if not isinstance(error.get("code"), str):
        return None
    return EngineError(error["code"], _plain(error.get("message")))


def engine_error(reason: str | None, document: Any = None) -> EngineError:
    """The best reading of the engine's error: the metadata document's (complete) when it has a refusal code,
    else the failure reason's."""
    parsed = parse_failure_reason(reason)
    written = metadata_error(document)
    if written is not None and written.code in REFUSAL_CODES and written.message:
        return EngineError(written.code, written.message, parsed.status)
    return parsed


def outcome(reason: str | None, document: Any = None) -> Outcome:
    """How the job ends after an error notification (see the module doc)."""
    error = engine_error(reason, document)
    client_error = error.status is not None and 400 <= error.status < 500
    if error.status is None and isinstance(reason, str):
        client_error = "client error" in reason
    return _ending(error, client_error)


# The studio function (``modamoda_inference/lambda_handler.py``) fails ``RunStudio`` with one of these error types
# and the engine's answer as its message: ``{"status": <HTTP status>, "error": {"code", "message", ...},
# "quality": {...} | null}``, what ``/invocations`` answers, with nothing cut short.
ENGINE_ANSWER_ERRORS = frozenset({"InputRejected", "InferenceFailed"})


def engine_answer(cause: Any) -> dict[str, Any] | None:
    """The engine's answer in a Step Functions ``Cause`` (the Lambda error payload, whose ``errorMessage`` is the
    answer's JSON), or None when the cause is anything else (a ``code: message`` text, a timeout)."""
    if not isinstance(cause, str):
        return None
    try:
        payload = json.loads(cause)
        answer = json.loads(payload["errorMessage"]) if isinstance(payload, dict) else None
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(answer, dict) or isinstance(answer.get("status"), bool):
        return None
    if not isinstance(answer.get("status"), int) or metadata_error(answer) is None:
        return None
    return answer


def answer_outcome(answer: dict[str, Any]) -> Outcome:
    """How the job ends after the studio function's answer (:func:`engine_answer`): the same rules as for the
    async endpoint's notification, from the complete error and its HTTP status."""
    error = metadata_error(answer) or EngineError("", "")
    status = int(answer["status"])
    return _ending(EngineError(error.code, error.message, status), 400 <= status < 500)


def _ending(error: EngineError, client_error: bool) -> Outcome:
    if error.code in REFUSAL_CODES:
        return Outcome("rejected", error.code, error.message or REFUSAL_MESSAGES[error.code])
    code = "inference_rejected" if client_error else "inference_failed"
    if error.code in CUSTOMER_MESSAGE_CODES:
        # the engine's own code, so that clients (the PWA's sentence table) can say what to do about it
        return Outcome(
            "failed", error.code, shown(error.message, client_error, CUSTOMER_MESSAGES[error.code])
        )
    return Outcome("failed", code, REJECTED_MESSAGE if client_error else FAILED_MESSAGE)


def shown(message: str | None, client_error: bool, fallback: str | None = None) -> str:
    """``message`` when it is fit for a customer to read (plain, no internals: no storage address, file path,
    stack trace, SDK or exception text), else ``fallback`` or the plain sentence for a refused request or for a
    failure on our side."""
    text = _plain(message)
    if text and not any(marker in text for marker in _INTERNAL):
        return text
    return fallback or (REJECTED_MESSAGE if client_error else FAILED_MESSAGE)


def quality(document: Any) -> dict[str, float] | None:
    """``{"score", "threshold"}`` from a metadata document (the engine's ``quality``), when both are finite
    numbers with the score in 0..1; else None."""
    if not isinstance(document, dict):
        return None
    value = document.get("quality")
    if not isinstance(value, dict):
        return None
    numbers: dict[str, float] = {}
    for name in ("score", "threshold"):
        number = value.get(name)
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            return None
        numbers[name] = round(float(number), 4)
    if not 0.0 <= numbers["score"] <= 1.0 or not 0.0 <= numbers["threshold"] <= 1.0:
        return None
    return numbers
