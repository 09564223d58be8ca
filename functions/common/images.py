"""Validation of uploaded images before any credit is reserved: cheap, by content, never by extension."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from functions.common.errors import InputRejected

# The same allow-list as the inference container: AVIF by Pillow's own plugin, HEIC/HEIF by pillow-heif.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "HEIF", "TIFF")
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


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
    """Identify and fully decode the image (catching truncation) within a pixel budget.

    Error codes: ``not_an_image``, ``unsupported_format``, ``too_many_pixels``, ``truncated_image`` (also for a
    file that starts with an allowed format's signature but cannot be opened), ``too_small``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            fmt = _looks_like(data)
            if fmt is not None:
                raise InputRejected(
                    f"the file starts like a {fmt} image but is truncated or corrupt", code="truncated_image"
                ) from exc
            raise InputRejected("the file is not a recognised image", code="not_an_image") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # Pillow's own guard
            declared = _BOMB_SIZE.search(str(exc))
            size = f"has {declared.group(1)} pixels" if declared else "has too many pixels"
            raise InputRejected(
                f"the image {size}; the limit is {min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)}"
                " (a decompression bomb is refused before decoding)",
                code="too_many_pixels",
            ) from exc
        except (OSError, SyntaxError, ValueError) as exc:  # a recognised header cut short or corrupt
            raise InputRejected(
                f"the image data is truncated or corrupt: {exc}", code="truncated_image"
            ) from exc
        with image:
            fmt = image.format or "unknown"
            if fmt not in ALLOWED_FORMATS:
                raise InputRejected(
                    f"{fmt} images are not supported; use one of {', '.join(ALLOWED_FORMATS)}",
                    code="unsupported_format",
                )
            width, height = image.size
            if width < 64 or height < 64:
                raise InputRejected(
                    f"the image is {width}x{height}; at least 64x64 is needed", code="too_small"
                )
            if width * height > max_pixels:
                raise InputRejected(
                    f"the image has {width * height} pixels; the limit is {max_pixels}",
                    code="too_many_pixels",
                )
            try:
                if fmt == "JPEG":
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))  # fast full-file decode
                image.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise InputRejected(
                    f"the image data is truncated or corrupt: {exc}", code="truncated_image"
                ) from exc
            return ImageInfo(format=fmt, width=width, height=height)
