"""The JSON request POSTed to ``/invocations`` (content type ``application/json``).

Example::

    {"job_id": "6f1c...", "mode": "ghost",
     "image": {"s3_uri": "s3://bucket/key", "version_id": "optional"},
     "options": {"preset": "square", "background": "#FFFFFF", "output_format": "png", "quality": 92,
                 "shadow": "contact", "mannequin": {"color": "#F0EEEA"}, "hollow": true,
                 "inside_image": {"s3_uri": "s3://bucket/inside-key"}}}

``metadata_s3_uri`` (optional, ``s3://bucket/key``): the container writes the job's metadata JSON there (see
:mod:`modamoda_inference.server`), on success and when the engine refuses the photo.

``image`` (and ``options.inside_image``) holds exactly one of ``s3_uri`` (with an optional ``version_id``) or
``b64`` (the file's bytes in standard base64). Every option is optional; unknown fields are rejected everywhere.

``background``: ``"#RRGGBB"`` (or ``#RGB``), ``"transparent"`` (png / webp / avif only) or ``"library:<id>"``
(an asset of the background library, see :mod:`modamoda_inference.backgrounds`); omitted → the preset's white.
``mannequin``: ``"none"`` (default: no mannequin in the photo), ``"auto"`` (chroma-key green/blue, or a neck
colour sampled at the top of the subject) or ``{"color": "#RRGGBB", "tolerance": 14}`` (known colour; the
tolerance is a CIELAB distance with lightness counted at 40 %, default 14). A plain ``"#RRGGBB"`` is taken as
``{"color": ...}``.
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
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from modamoda_inference.errors import InvalidRequest

Mode = Literal["ghost", "on-model"]
PresetName = Literal["square", "amazon", "zalando", "shopify", "portrait_4_5"]
OutputFormat = Literal["png", "jpeg", "webp", "avif"]
EngineName = Literal["studio", "diffusion"]
# which segmentation cuts the garment out: "auto" = the learned stage (SAM + CLIP) where its weights are loaded,
# else the studio engine's colour model; "learned" = that stage or a clear failure; "studio" = the colour model
SegmenterName = Literal["auto", "learned", "studio"]
ShadowName = Literal["none", "contact", "drop"]

PRESET_NAMES: tuple[str, ...] = get_args(PresetName)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
MODES: tuple[str, ...] = get_args(Mode)

# Bucket names per the S3 naming rules (lower case, digits, dots, hyphens; 3-63 chars); key non-empty.
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$", re.DOTALL)
_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_LIBRARY_ID = re.compile(r"^library:(?P<id>[a-z0-9][a-z0-9_\-]{0,63})$")
TRANSPARENT = "transparent"


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


def _canonical_background(value: str | None) -> str | None:
    if value is None:
        return None
    if value == TRANSPARENT:
        return value
    if value.startswith("library:"):
        if not _LIBRARY_ID.match(value):
            raise ValueError(f"not a background library id like library:studio-grey: {value[:80]!r}")
        return value
    if not _HEX_COLOUR.match(value):
        raise ValueError(
            f"background must be a hex colour like #FFFFFF, 'transparent' or 'library:<id>': {value[:80]!r}"
        )
    return _canonical_colour(value)


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


class MannequinColour(BaseModel):
    """A mannequin of a known colour; ``tolerance`` is the colour distance still counted as mannequin."""

    model_config = _Strict

    color: Annotated[str, AfterValidator(_canonical_colour)]
    tolerance: float | None = Field(default=None, ge=2.0, le=60.0)

    @property
    def rgb(self) -> tuple[int, int, int]:
        return hex_to_rgb(self.color)


def _mannequin_shorthand(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("#"):
        return {"color": value}
    return value


MannequinSpec = Annotated[Literal["none", "auto"] | MannequinColour, BeforeValidator(_mannequin_shorthand)]


class Options(BaseModel):
    """Rendering options. Every field has a default, so ``options`` may be omitted."""

    model_config = _Strict

    preset: PresetName = "square"
    background: Annotated[str | None, AfterValidator(_canonical_background)] = None
    output_format: OutputFormat = "png"
    quality: int = Field(default=92, ge=1, le=100)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    pose_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    steps: int | None = Field(default=None, ge=1, le=200)
    # diffusion engine: generated size (long side, px), guidance, denoising strength, x2 upscaler stage, and a
    # reference photo to take the pose from (needs the pose detector's weights)
    size: int | None = Field(default=None, ge=64, le=2048, multiple_of=64)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=20.0)
    strength: float | None = Field(default=None, gt=0.0, le=1.0)
    upscale: bool = False
    pose_image: ImageRef | None = None
    engine: EngineName | None = None
    segmenter: SegmenterName = "auto"
    shadow: ShadowName = "contact"
    mannequin: MannequinSpec = "none"
    hollow: bool = True
    inside_image: ImageRef | None = None

    @model_validator(mode="after")
    def _transparent_needs_alpha(self) -> Options:
        if self.background == TRANSPARENT and self.output_format == "jpeg":
            raise ValueError(
                "a transparent background needs output_format png, webp or avif (JPEG has no alpha)"
            )
        return self

    @property
    def background_kind(self) -> Literal["preset", "colour", "transparent", "library"]:
        if self.background is None:
            return "preset"
        if self.background == TRANSPARENT:
            return "transparent"
        if self.background.startswith("library:"):
            return "library"
        return "colour"

    @property
    def background_rgb(self) -> tuple[int, int, int] | None:
        """The solid background colour asked for, or None (preset white, transparent or library image)."""
        if self.background_kind != "colour" or self.background is None:
            return None
        return hex_to_rgb(self.background)

    @property
    def library_id(self) -> str | None:
        if self.background_kind != "library" or self.background is None:
            return None
        return self.background.removeprefix("library:")


class InferenceRequest(BaseModel):
    """One job for the endpoint."""

    model_config = _Strict

    job_id: Annotated[str, AfterValidator(_canonical_uuid)]
    mode: Mode
    image: ImageRef
    options: Options = Field(default_factory=Options)
    # Where to write the job's metadata JSON (quality, bbox, timings; on success and on refusal, best effort):
    # the async endpoint keeps only the response body, so this is how the engine's numbers reach the caller.
    metadata_s3_uri: str | None = Field(default=None, max_length=1100)

    @field_validator("metadata_s3_uri")
    @classmethod
    def _check_metadata_uri(cls, value: str | None) -> str | None:
        if value is not None:
            parse_s3_uri(value)
        return value


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
