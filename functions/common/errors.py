"""Domain errors with stable codes.

The class name is the Lambda ``errorType`` Step Functions matches in ``Catch``/``Retry`` (``InputRejected``,
``InsufficientCredits``, ``TransientError``), and ``str(error)`` is ``"<code>: <message>"`` so the code survives
the trip through the execution's ``Cause``.
"""

from __future__ import annotations

import json
from typing import Any

# Every code a job can end with because of what was sent (the job's ``error.code``; ``rejected`` unless noted),
# with its one-line meaning. README "Input error codes" lists exactly these; a test keeps the three in step
# (this table, the README, and the codes the source raises).
INPUT_ERROR_CODES: dict[str, str] = {
    "not_an_image": "the file is not an image (text, HTML, PDF, an archive, a program...)",
    "unsupported_format": "an image format other than JPEG, PNG, WebP, AVIF, HEIC/HEIF or TIFF (GIF, BMP, ...), "
    "or a rare JPEG variant cameras and browsers do not use (arithmetic-coded, lossless, hierarchical)",
    "truncated_image": "the image is cut short or its data is corrupt (a floating-point image with many NaN or "
    "infinite pixels included)",
    "too_many_pixels": "the image has more pixels than allowed (decompression bombs included)",
    "too_complex": "the file is built so that reading it would take far more work than a photo needs (hundreds of "
    "JPEG scans, thousands of markers or chunks, TIFF tiles far larger than the picture, an oversized colour "
    "profile); save it again as an ordinary JPEG or PNG",
    "too_small": "the image is smaller than 64x64 pixels",
    "extreme_aspect_ratio": "one side of the image is more than 10 times the other; crop it around the garment",
    "empty_file": "the uploaded file has no bytes",
    "file_too_large": "the file is larger than the upload limit",
    "upload_missing": "the uploaded object was gone when the job came to read it",
    "upload_expired": "no photo arrived within 24 hours of the job's newest upload link (status cancelled); the job "
    "is left out of the history, and a photo arriving later is ignored",
    "input_rejected": "the input was refused for another reason (the message says why)",
    "inference_rejected": "the image passed validation but the inference engine refused it (status failed)",
    "no_garment_found": "the engine found no garment standing out from the backdrop (an empty wall, a screenshot)",
    "low_confidence": "the engine's own checks scored the cut-out below its threshold: not good enough to sell",
    "person_in_photo": "someone is wearing the garment; a ghost packshot needs a mannequin, a hanger or a flat lay",
    "manifest_invalid": "the batch's manifest row for this file, or the whole manifest, is invalid",
    "not_in_manifest": "the file is in the drop folder but the batch's manifest does not list it",
    "batch_sealed": "the file arrived after its batch was sealed without it",
    "on_model_unavailable": "on-model images are not offered by this deployment (no image model is installed); "
    "a batch file that asks for one is refused, and the API refuses such jobs before any upload",
}

# Every code a job can end with because of the service rather than what was sent (status ``failed`` unless noted;
# nothing is charged), with its one-line meaning. README "Service error codes" lists exactly these.
SERVICE_ERROR_CODES: dict[str, str] = {
    "inference_failed": "the image engine failed on the photo, or could not be reached after several attempts",
    "inference_timeout": "the image was not made within the inference timeout (INFERENCE_TIMEOUT_SECONDS), counted "
    "from when the job was handed to the GPU",
    "queue_timeout": "the job waited in the GPU queue longer than its lane allows (QUEUE_WAIT_SECONDS for a single "
    "job, BATCH_QUEUE_WAIT_SECONDS for a batch file) and was never started",
    "hold_expired": "the job did not finish before its credit hold's deadline (its workflow was lost); the sweeper "
    "ended it",
    "batch_cancelled": "the batch was cancelled before this file was processed (status cancelled)",
    "internal_error": "something else went wrong on our side",
}

# The inference engine's refusals (HTTP 422 from the container): the job ends ``rejected`` with the engine's
# message and costs nothing. A plain copy of ``modamoda_inference.errors.REFUSAL_CODES`` (the Lambda layer does not
# carry the container package); tests/functions/common/test_refusals.py keeps the two equal.
REFUSAL_CODES: frozenset[str] = frozenset({"no_garment_found", "low_confidence", "person_in_photo"})


class ModamodaError(Exception):
    """Base class: a stable machine-readable ``code``, a human message and an HTTP status for the API."""

    code = "error"
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


ON_MODEL_UNAVAILABLE_MESSAGE = (
    "On-model images are not available yet: this service has no image model installed. Choose ghost (invisible "
    "mannequin) packshots instead; nothing was charged."
)


class OnModelUnavailable(ModamodaError):
    """An on-model job on a deployment without the diffusion weights: refused before anything is created."""

    code = "on_model_unavailable"
    http_status = 422

    def __init__(self, message: str = ON_MODEL_UNAVAILABLE_MESSAGE) -> None:
        super().__init__(message)


class ConfigError(ModamodaError):
    code = "config_error"
    http_status = 500


class InputRejected(ModamodaError):
    """The uploaded file cannot be processed (not an image, truncated, too large...). Costs nothing."""

    code = "input_rejected"
    http_status = 422


class InsufficientCredits(ModamodaError):
    code = "insufficient_credits"
    http_status = 402


class ValidationFailed(ModamodaError):
    """The request is well-formed JSON/HTTP but a value is not acceptable; ``details`` lists each problem."""

    code = "validation_error"
    http_status = 422


class Forbidden(ModamodaError):
    code = "forbidden"
    http_status = 403


class NotFound(ModamodaError):
    code = "not_found"
    http_status = 404


class Conflict(ModamodaError):
    code = "conflict"
    http_status = 409


class Unauthorized(ModamodaError):
    code = "unauthorized"
    http_status = 401


class SignatureError(ModamodaError):
    """A webhook whose signature is missing, does not match, or is outside the time tolerance. Changes nothing."""

    code = "invalid_signature"
    http_status = 400


class PaymentProviderError(ModamodaError):
    """The payment provider refused a request (bad parameters, authentication); retrying as is will not help."""

    code = "payment_provider_error"
    http_status = 502


class TransientError(ModamodaError):
    """A dependency is unavailable (database, throttling); the caller should retry with backoff."""

    code = "transient"
    http_status = 503


def split_cause(cause: str | None) -> tuple[str, str]:
    """Recover ``(code, message)`` from a Step Functions ``Cause`` written by a failed Lambda task.

    The cause is the Lambda error payload (``{"errorMessage": "<code>: <message>", "errorType": ...}``) or free
    text (timeouts, SageMaker failure reasons).
    """
    if not cause:
        return "", ""
    text = cause
    try:
        payload = json.loads(cause)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
        text = payload["errorMessage"]
    code, sep, message = text.partition(": ")
    if sep and code.replace("_", "").isalnum() and code == code.lower():
        return code, message
    return "", text
