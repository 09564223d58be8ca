"""Validation of uploaded images before any credit is reserved: cheap, by content, never by extension."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError

from functions.common.errors import InputRejected

# The same allow-list as the inference container: AVIF by Pillow's own plugin, HEIC/HEIF by pillow-heif.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "HEIF", "TIFF")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def inspect(data: bytes, max_pixels: int) -> ImageInfo:
    """Identify and fully decode the image (catching truncation) within a pixel budget.

    Error codes: ``not_an_image``, ``unsupported_format``, ``too_many_pixels``, ``truncated_image``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise InputRejected("the file is not a recognised image", code="not_an_image") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InputRejected(str(exc), code="too_many_pixels") from exc
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
