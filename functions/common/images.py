"""Validation of uploaded images before any credit is reserved: cheap, by content, never by extension.

Every message is a sentence for the customer (what was wrong, what to do next); the decoder's own words are
logged, never shown. The work is bounded before decoding by what the file declares (``image_limits``: JPEG
scans and markers, PNG chunks, TIFF tiles, AVIF/HEIF sizes, JPEG variants), and after opening by its size and
shape; the decode itself (a fast 1/8 scale for JPEG) catches truncation and corrupt data.
"""

from __future__ import annotations

import io
import logging
import math
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pillow_heif
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from functions.common import image_limits
from functions.common.errors import InputRejected

# The same allow-list as the inference container: AVIF by Pillow's own plugin, HEIC/HEIF by pillow-heif.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "HEIF", "TIFF")
# Formats Pillow names apart that are one of the allowed ones: a camera JPEG carrying an MPF preview (Sony,
# Panasonic, Nikon) is opened as MPO; its first picture is the photo (as in the inference container).
FORMAT_ALIASES = {"MPO": "JPEG"}
MIN_SIDE = 64
# A PNG's colour profile is decompressed within Pillow's text-chunk limit (1 MB by default): large print profiles
# are accepted up to image_limits.MAX_ICC_BYTES (checked before Pillow reads the file).
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, image_limits.MAX_ICC_BYTES)
# How files of the allowed formats start: such a file that cannot even be opened is cut short or corrupt (a PNG
# signature alone, a JPEG cut inside its headers), not "not an image".
_ALLOWED_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    *(
        (4, b"ftyp" + brand, "HEIF")
        for brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")
    ),
    *((4, b"ftyp" + brand, "AVIF") for brand in (b"avif", b"avis")),
)
_BOMB_SIZE = re.compile(r"Image size \((\d+) pixels\)")
_NAMES = {"WEBP": "WebP", "HEIF": "HEIC/HEIF"}
_SUPPORTED = ", ".join(_NAMES.get(f, f) for f in ALLOWED_FORMATS[:-1]) + " or " + ALLOWED_FORMATS[-1]
CORRUPT_MESSAGE = (
    "The image data is cut short or corrupt, so the picture cannot be read. Export or save the photo again "
    "and upload the new file."
)
# float32 is NaN or infinite when its 8 exponent bits are all ones: the top 7 in its most significant byte
# (below the sign bit), the last in the next byte's top bit.
_EXPONENT_HIGH = bytes(int(b & 0x7F == 0x7F) for b in range(256))
_EXPONENT_LOW = bytes(int(b & 0x80 == 0x80) for b in range(256))
_BAND_PIXELS = 4_000_000

_log = logging.getLogger(__name__)


def _looks_like(data: bytes) -> str | None:
    """The allowed format whose signature ``data`` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for offset, magic, fmt in _ALLOWED_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return fmt
    return None


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def _too_many(pixels: str, max_pixels: int) -> InputRejected:
    return InputRejected(
        f"The image {pixels}; the limit is {max_pixels / 1e6:.0f} megapixels ({max_pixels} pixels). Resize it "
        "and upload it again.",
        code="too_many_pixels",
    )


def _corrupt(exc: BaseException) -> InputRejected:
    _log.info("image refused as corrupt", extra={"detail": f"{type(exc).__name__}: {exc}"[:500]})
    return InputRejected(CORRUPT_MESSAGE, code="truncated_image")


def nonfinite_share(image: Image.Image) -> float:
    """The share of a 32-bit float ("F") image's pixels that are NaN or infinite (without numpy: the exponent
    bits are read from the raw bytes, a band of rows at a time)."""
    width, height = image.size
    if image.mode != "F" or not width or not height:
        return 0.0
    high, low = (3, 2) if sys.byteorder == "little" else (0, 1)
    rows = max(1, _BAND_PIXELS // width)
    bad = 0
    for top in range(0, height, rows):
        raw = image.crop((0, top, width, min(height, top + rows))).tobytes()
        marks = int.from_bytes(raw[high::4].translate(_EXPONENT_HIGH)) & int.from_bytes(
            raw[low::4].translate(_EXPONENT_LOW)
        )
        bad += marks.bit_count()
    return bad / (width * height)


def inspect(
    data: bytes,
    max_pixels: int,
    *,
    on_decoded: Callable[[Image.Image], None] | None = None,
    draft_side: int = 0,
) -> ImageInfo:
    """Identify and fully decode the image (catching truncation) within a pixel budget and the work limits of
    ``image_limits``.

    ``on_decoded`` is handed the decoded image once every check has passed (``previews`` makes the photo's
    preview from it, so the photo is decoded once); a JPEG is then decoded at the smallest scale whose long side
    is still at least ``draft_side`` pixels (else at 1/8, the fastest full-file decode).

    Error codes: ``not_an_image``, ``unsupported_format``, ``too_many_pixels``, ``truncated_image`` (also for a
    file that starts with an allowed format's signature but cannot be opened, and for a floating-point image
    with too many NaN or infinite pixels), ``too_small``, ``extreme_aspect_ratio``, ``too_complex``.
    """
    try:
        image_limits.check_file(data, max_pixels)
    except image_limits.ImageRefused as refused:
        raise InputRejected(refused.message, code=refused.code) from refused
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            fmt = _looks_like(data)
            if fmt is not None:
                raise _corrupt(exc) from exc
            raise InputRejected(
                f"The file is not an image we can read. Upload a photo saved as {_SUPPORTED}.",
                code="not_an_image",
            ) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # Pillow's own guard
            declared = _BOMB_SIZE.search(str(exc))
            pixels = (
                f"has {int(declared.group(1)) / 1e6:.0f} megapixels" if declared else "has too many pixels"
            )
            raise _too_many(pixels, min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)) from exc
        except (OSError, SyntaxError, ValueError) as exc:  # a recognised header cut short or corrupt
            raise _corrupt(exc) from exc
        with image:
            fmt = str(image.format or "unknown")
            fmt = FORMAT_ALIASES.get(fmt, fmt)
            if fmt not in ALLOWED_FORMATS:
                raise InputRejected(
                    f"{fmt} images are not supported. Save the photo as {_SUPPORTED} and upload it again.",
                    code="unsupported_format",
                )
            width, height = image.size
            if width < MIN_SIDE or height < MIN_SIDE:
                raise InputRejected(
                    f"The image is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed. Upload a "
                    "larger photo of the garment.",
                    code="too_small",
                )
            if width * height > max_pixels:
                raise _too_many(
                    f"is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels)", max_pixels
                )
            try:
                image_limits.check_shape(width, height)
            except image_limits.ImageRefused as refused:
                raise InputRejected(refused.message, code=refused.code) from refused
            try:
                if fmt == "JPEG":
                    image.draft("RGB", _draft_size(width, height, draft_side))  # fast full-file decode
                image.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise _corrupt(exc) from exc
            share = nonfinite_share(image)
            if share > image_limits.MAX_NONFINITE_SHARE:
                raise InputRejected(image_limits.nonfinite_message(share), code="truncated_image")
            if on_decoded is not None:
                on_decoded(image)
            return ImageInfo(format=fmt, width=width, height=height)


def _draft_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The size to ask a JPEG draft for: 1/8 of the image, or larger so that its long side keeps ``side`` px."""
    scale = min(1.0, side / max(width, height)) if side > 0 else 0.0
    return max(1, width // 8, math.ceil(width * scale)), max(1, height // 8, math.ceil(height * scale))
