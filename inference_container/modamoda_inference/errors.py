"""Errors with stable codes; the server maps each to an HTTP status and a JSON error body.

The codes travel to the caller (the async endpoint's failure reason) and must not change.
"""

from __future__ import annotations

from typing import Any


class ModamodaError(Exception):
    """Base class: ``code`` is stable and machine readable, the message is for people; ``details`` (optional,
    JSON-serialisable) travels in the error body."""

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class InvalidRequest(ModamodaError):
    """The request JSON is malformed, fails validation, or names an input that does not exist."""

    code = "invalid_request"
    http_status = 400


class InvalidImage(ModamodaError):
    """The input is not a usable image: not an image, truncated, decompression bomb, unsupported format."""

    code = "invalid_image"
    http_status = 400


class PhotoRefused(InvalidImage):
    """The photo decodes, but the engine can tell it would not make a usable packshot of it; the message says
    what was wrong and how to reshoot, in the customer's words. The job ends ``rejected`` and costs nothing."""

    code = "photo_refused"
    http_status = 422


class NoGarmentFound(PhotoRefused):
    """The photo decodes but no garment stands out from the backdrop (an empty wall, a screenshot)."""

    code = "no_garment_found"


class LowConfidence(PhotoRefused):
    """A cut-out was made but the engine's own checks say it is not good enough to sell with; ``details``
    carries the confidence ``score``, the ``threshold`` and the failed ``checks``."""

    code = "low_confidence"


class PersonInPhoto(PhotoRefused):
    """Someone is wearing the garment: a ghost packshot needs it on a mannequin, a hanger or laid flat."""

    code = "person_in_photo"


REFUSAL_CODES: frozenset[str] = frozenset({"no_garment_found", "low_confidence", "person_in_photo"})


class ModeNotSupported(ModamodaError):
    """The chosen engine exists but does not do the requested mode."""

    code = "mode_not_supported"
    http_status = 400


class EngineUnavailable(ModamodaError):
    """The engine the request needs is not loaded on this endpoint (e.g. no weights)."""

    code = "engine_unavailable"
    http_status = 503


class PayloadTooLarge(ModamodaError):
    """The request body is over the configured limit."""

    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(ModamodaError):
    """The request body is not JSON."""

    code = "unsupported_media_type"
    http_status = 415


class StorageError(ModamodaError):
    """S3 could not be read for a reason other than a missing object (permissions, network)."""

    code = "storage_error"
    http_status = 500
