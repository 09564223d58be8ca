"""Errors with stable codes; the server maps each to an HTTP status and a JSON error body.

The codes travel to the caller (the async endpoint's failure reason) and must not change.
"""

from __future__ import annotations


class ModamodaError(Exception):
    """Base class: ``code`` is stable and machine readable, the message is for people."""

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidRequest(ModamodaError):
    """The request JSON is malformed, fails validation, or names an input that does not exist."""

    code = "invalid_request"
    http_status = 400


class InvalidImage(ModamodaError):
    """The input is not a usable image: not an image, truncated, decompression bomb, unsupported format."""

    code = "invalid_image"
    http_status = 400


class NoGarmentFound(InvalidImage):
    """The photo decodes but nothing stands out from the backdrop."""

    code = "no_garment_found"


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
