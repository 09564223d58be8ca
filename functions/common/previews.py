"""Small WebP previews of a job, made once by the pipeline and served for lists and the before/after viewer.

* ``thumb``: the result, long side 320 px, WebP quality 75 (typically 10-30 KB), alpha kept for a transparent
  result. Made by the notifier when it records a succeeded result (``pipeline.handle_inference_notification``).
* ``original``: the customer's photo, long side 1024 px, upright (EXIF orientation applied), sRGB, no metadata.
  Made by the validation step from the image the validator has just decoded (``images.inspect``'s
  ``on_decoded``), so the photo is decoded once. Browsers cannot show HEIC or TIFF; the viewer's "before" side
  uses this.

Both live in the results bucket under ``previews/{tenant}/{job}/`` (deterministic keys: a replayed event writes the
same bytes to the same key). Making one is best effort: a failure is logged and never fails, delays or un-charges
the job; the job then simply has no preview (``thumb_key`` / ``preview_key`` stay NULL).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable
from typing import Any

from PIL import Image, ImageCms

from functions.common import storage

PREFIX = "previews/"
THUMB_SIDE = 320
THUMB_QUALITY = 75
ORIGINAL_SIDE = 1024
ORIGINAL_QUALITY = 80
CONTENT_TYPE = "image/webp"
# Previews are for immutable inputs and results under per-job keys: a browser may keep them as long as a
# pre-signed URL lives (the cache key includes the signature) and beyond.
CACHE_CONTROL = "private, max-age=86400, immutable"
# The largest result the notifier reads to make a thumbnail (a 4096 px RGBA PNG is well below this).
MAX_RESULT_BYTES = 128 * 1024 * 1024
# EXIF orientation → the transpose that makes the picture upright (as ``ImageOps.exif_transpose``).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_log = logging.getLogger(__name__)


def job_prefix(tenant_id: str, job_id: str) -> str:
    return f"{PREFIX}{tenant_id}/{job_id}/"


def thumb_key(tenant_id: str, job_id: str) -> str:
    return f"{job_prefix(tenant_id, job_id)}thumb.webp"


def original_key(tenant_id: str, job_id: str) -> str:
    return f"{job_prefix(tenant_id, job_id)}original.webp"


# ---- images ----------------------------------------------------------------------------------------------------


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled so that its long side is at most ``side`` (never enlarged)."""
    width, height = size
    scale = min(1.0, side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _has_alpha(image: Image.Image) -> bool:
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        return True
    return image.mode == "P" and "transparency" in image.info


def _eight_bit(image: Image.Image) -> Image.Image:
    """Any Pillow mode as L, LA, RGB, RGBA or CMYK (8 bits a channel); 16-bit and float data scaled down."""
    mode = image.mode
    if mode in {"L", "LA", "RGB", "RGBA", "CMYK"}:
        return image
    if mode.startswith("I;16") or mode == "I":
        wide = image if mode == "I" else image.convert("I")
        scaled = wide.point(lambda v: v / 257) if mode != "I" or _high(wide) > 255 else wide
        return scaled.convert("L")
    if mode == "F":
        high = _high(image)
        unit = math.isfinite(high) and high <= 1.0
        return (image.point(lambda v: v * 255) if unit else image).convert("L")
    if _has_alpha(image):
        return image.convert("LA" if mode in {"La"} else "RGBA")
    return image.convert("RGB")


def _high(image: Image.Image) -> float:
    """The largest value of a single-band image."""
    extrema = image.getextrema()
    high = extrema[1] if isinstance(extrema, tuple) else 0.0
    return float(high) if isinstance(high, int | float) else 0.0


def _srgb(image: Image.Image, icc: Any) -> Image.Image:
    """An L/LA/RGB/RGBA/CMYK image in sRGB (RGB or RGBA), converted through its embedded profile when it has one
    that fits its mode; without one it is taken as sRGB already."""
    alpha = image.getchannel("A") if image.mode in {"LA", "RGBA"} else None
    colour = image.convert("L" if image.mode == "LA" else "RGB") if alpha is not None else image
    if isinstance(icc, bytes) and icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                colour,
                profile,
                ImageCms.createProfile("sRGB"),
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
                outputMode="RGB",
            )
            if converted is not None:
                colour = converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a profile that does not fit the pixels: the colours as they are
    if colour.mode != "RGB":
        colour = colour.convert("RGB")
    if alpha is None:
        return colour
    colour.putalpha(alpha)
    return colour


def _webp(image: Image.Image, quality: int) -> bytes:
    """WebP with no metadata (EXIF, XMP, ICC): the pixels are sRGB already. Alpha only where something is
    see-through."""
    if image.mode == "RGBA":
        alpha_low = (image.getchannel("A").getextrema() or (255, 255))[0]
        if isinstance(alpha_low, int | float) and alpha_low >= 255:
            image = image.convert("RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    clean = image.copy()
    clean.info = {}
    buffer = io.BytesIO()
    clean.save(buffer, format="WEBP", quality=quality, method=4, exif=b"", icc_profile=b"", xmp=b"")
    return buffer.getvalue()


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 when there is none, or the EXIF block cannot be read)."""
    try:
        value = int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is no reason to lose the preview
        return 1
    return value if value in _ORIENTATION else 1


def _small(image: Image.Image, side: int) -> Image.Image:
    """``image`` scaled down to a long side of ``side`` in its own mode (so a large 16-bit or float photo is never
    converted at full size); palette and 1-bit images are expanded first (they would be resized by nearest
    neighbour)."""
    if image.mode in {"1", "P", "PA"}:
        image = image.convert("RGBA" if _has_alpha(image) else "L" if image.mode == "1" else "RGB")
    size = _fit(image.size, side)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def original_webp(image: Image.Image) -> bytes:
    """The customer's photo (a decoded Pillow image, as the validator holds it) as the ``original`` preview: long
    side ``ORIGINAL_SIDE``, upright, sRGB, alpha kept, no metadata. ``image`` is not changed."""
    turn = _ORIENTATION.get(orientation(image))
    icc = image.info.get("icc_profile")
    plain_cmyk = image.mode == "CMYK" and image.format in {"JPEG", "MPO"} and "adobe" not in image.info
    small = _small(image, ORIGINAL_SIDE)
    if plain_cmyk:
        small = small.point(lambda v: 255 - v)  # undo Pillow's Adobe inversion for plain CMYK (as the engine)
    small = _eight_bit(small)
    if turn is not None:
        small = small.transpose(turn)
    return _webp(_srgb(small, icc), ORIGINAL_QUALITY)


def thumbnail_webp(data: bytes) -> bytes:
    """A result image (PNG, JPEG or WebP bytes) as the ``thumb`` preview: long side ``THUMB_SIDE``, alpha kept."""
    with Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"]) as image:
        image.draft(
            "RGB", _fit(image.size, THUMB_SIDE)
        )  # JPEG results: decode at the smallest scale that fits
        image.load()
        icc = image.info.get("icc_profile")
        return _webp(_srgb(_eight_bit(_small(image, THUMB_SIDE)), icc), THUMB_QUALITY)


# ---- storage ---------------------------------------------------------------------------------------------------


def _put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=CONTENT_TYPE, CacheControl=CACHE_CONTROL)


class OriginalCapture:
    """The validator's ``on_decoded`` hook: makes the ``original`` preview from the image it decoded. Never
    raises: a failure is logged and leaves ``webp`` None."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.webp: bytes | None = None

    def __call__(self, image: Image.Image) -> None:
        try:
            self.webp = original_webp(image)
        except Exception as exc:  # best effort: the job goes on without a preview
            _log.warning(
                "could not make the photo's preview",
                extra={"job_id": self.job_id, "error": f"{type(exc).__name__}: {exc}"[:500]},
            )


def store_original(s3: Any, bucket: str, tenant_id: str, job_id: str, webp: bytes | None) -> str | None:
    """Write the ``original`` preview; its key, or None when there is none or it could not be written."""
    if webp is None:
        return None
    key = original_key(tenant_id, job_id)
    try:
        _put(s3, bucket, key, webp)
    except Exception as exc:  # best effort
        _log.warning(
            "could not store the photo's preview", extra={"job_id": job_id, "error": repr(exc)[:500]}
        )
        return None
    return key


def store_thumbnail(s3: Any, bucket: str, tenant_id: str, job_id: str, result_uri: str) -> str | None:
    """Read the result at ``result_uri`` (``s3://bucket/key``), write its ``thumb`` preview; the thumb's key, or
    None when it could not be made or written (logged: the result is delivered and charged all the same)."""
    key = thumb_key(tenant_id, job_id)
    try:
        source_bucket, source_key = storage.split_s3_uri(result_uri)
        body = s3.get_object(Bucket=source_bucket, Key=source_key)["Body"]
        data = body.read(MAX_RESULT_BYTES + 1)
        if len(data) > MAX_RESULT_BYTES:
            raise ValueError(f"the result is larger than {MAX_RESULT_BYTES} bytes")
        _put(s3, bucket, key, thumbnail_webp(data))
    except Exception as exc:  # best effort
        _log.warning(
            "could not make the result's thumbnail",
            extra={"job_id": job_id, "error": f"{type(exc).__name__}: {exc}"[:500]},
        )
        return None
    return key


def keys_of(job: dict[str, Any]) -> list[str]:
    """Every preview key a job may have: the recorded ones and the deterministic ones (a preview written by a step
    whose transaction then did not record it)."""
    tenant_id, job_id = str(job["tenant_id"]), str(job["id"])
    found: Iterable[Any] = (
        job.get("thumb_key"),
        job.get("preview_key"),
        thumb_key(tenant_id, job_id),
        original_key(tenant_id, job_id),
    )
    return sorted({str(k) for k in found if k})


def delete(s3: Any, bucket: str, job: dict[str, Any]) -> None:
    """Delete a job's previews (missing ones are fine)."""
    doomed = [{"Key": key} for key in keys_of(job)]
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    errors = result.get("Errors") or []
    if errors:
        first = errors[0]
        raise RuntimeError(f"could not delete the preview {first.get('Key')}: {first.get('Code')}")


def url(s3: Any, bucket: str, key: str | None, ttl_seconds: int) -> str | None:
    """A pre-signed inline GET of a preview, or None when the job has none."""
    if not key:
        return None
    return storage.presigned_get(s3, bucket, key, ttl_seconds)
