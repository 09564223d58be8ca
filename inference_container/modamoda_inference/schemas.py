"""The JSON request POSTed to ``/invocations`` (content type ``application/json``).

Example::

    {"job_id": "6f1c...", "mode": "ghost",
     "image": {"s3_uri": "s3://bucket/key", "version_id": "optional"},
     "options": {"preset": "square", "background": "#FFFFFF", "output_format": "png", "quality": 92}}

``image`` holds exactly one of ``s3_uri`` (with an optional ``version_id``) or ``b64`` (the file's bytes in
standard base64). Unknown fields are rejected everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from modamoda_inference.errors import InvalidRequest

Mode = Literal["ghost", "on-model"]
PresetName = Literal["square", "amazon", "shopify", "portrait_4_5"]
OutputFormat = Literal["png", "jpeg", "webp"]
EngineName = Literal["studio", "diffusion"]

PRESET_NAMES: tuple[str, ...] = get_args(PresetName)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
MODES: tuple[str, ...] = get_args(Mode)

# Bucket names per the S3 naming rules (lower case, digits, dots, hyphens; 3-63 chars); key non-empty.
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$", re.DOTALL)
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``; ValueError when it is not one."""
    match = _S3_URI.match(uri)
    if match is None:
        raise ValueError(f"not an s3://bucket/key URI: {uri[:200]!r}")
    return match.group("bucket"), match.group("key")


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``#RRGGBB`` or ``#RGB`` → ``(r, g, b)``."""
    if not _HEX_COLOUR.match(colour):
        raise ValueError(f"not a hex colour like #FFFFFF: {colour!r}")
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _canonical_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("job_id must be a UUID string") from exc


def _canonical_colour(value: str) -> str:
    r, g, b = hex_to_rgb(value)
    return f"#{r:02X}{g:02X}{b:02X}"


_Strict = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class ImageRef(BaseModel):
    """Where the input photo is: an S3 object (optionally a given version) or inline base64 bytes."""

    model_config = _Strict

    s3_uri: str | None = Field(default=None, max_length=1100)
    version_id: str | None = Field(default=None, min_length=1, max_length=1024)
    b64: str | None = Field(default=None, min_length=1, repr=False)

    _data: bytes | None = PrivateAttr(default=None)

    @field_validator("s3_uri")
    @classmethod
    def _check_s3_uri(cls, value: str | None) -> str | None:
        if value is not None:
            parse_s3_uri(value)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.s3_uri is None) == (self.b64 is None):
            raise ValueError("image needs exactly one of s3_uri or b64")
        if self.version_id is not None and self.s3_uri is None:
            raise ValueError("image.version_id goes with image.s3_uri only")
        if self.b64 is not None:
            try:
                self._data = base64.b64decode(self.b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("image.b64 is not valid base64") from exc
            if not self._data:
                raise ValueError("image.b64 decodes to no bytes")
        return self

    @property
    def bucket_key(self) -> tuple[str, str]:
        if self.s3_uri is None:
            raise ValueError("not an S3 image reference")
        return parse_s3_uri(self.s3_uri)

    def inline_bytes(self) -> bytes:
        """The decoded ``b64`` payload (decoded once, at validation)."""
        if self._data is None:
            raise ValueError("not an inline image reference")
        return self._data


class Options(BaseModel):
    """Rendering options. Every field has a default, so ``options`` may be omitted."""

    model_config = _Strict

    preset: PresetName = "square"
    background: Annotated[str, AfterValidator(_canonical_colour)] = "#FFFFFF"
    output_format: OutputFormat = "png"
    quality: int = Field(default=92, ge=1, le=100)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    pose_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    steps: int | None = Field(default=None, ge=1, le=200)
    engine: EngineName | None = None

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return hex_to_rgb(self.background)


class InferenceRequest(BaseModel):
    """One job for the endpoint."""

    model_config = _Strict

    job_id: Annotated[str, AfterValidator(_canonical_uuid)]
    mode: Mode
    image: ImageRef
    options: Options = Field(default_factory=Options)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "request"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def parse_request(body: bytes | str | dict[str, Any]) -> InferenceRequest:
    """Parse and validate a request body; any problem becomes :class:`InvalidRequest` with a clear message."""
    if isinstance(body, dict):
        data: Any = body
    else:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return InferenceRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid request: {_describe(exc)}") from exc
