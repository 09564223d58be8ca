"""Upload validation by content: every bad input gets its own clear code."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image

from functions.common.errors import InputRejected
from functions.common.images import inspect


def encoded(fmt: str, size: tuple[int, int] = (200, 300), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_allowed_formats_pass(fmt: str) -> None:
    info = inspect(encoded(fmt), 50_000_000)
    assert (info.format, info.width, info.height) == (fmt, 200, 300)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"%PDF-1.7 not an image at all", "not_an_image"),
        (b"", "not_an_image"),
        (encoded("GIF"), "unsupported_format"),
        (encoded("BMP"), "unsupported_format"),
        (encoded("JPEG")[:400], "truncated_image"),
        (encoded("PNG", (2000, 2000))[:300], "truncated_image"),
        (encoded("PNG", (30, 30)), "too_small"),
        (b"\x89PNG\r\n\x1a\n", "truncated_image"),  # a signature alone is a cut-short PNG, not "not an image"
        (encoded("PNG")[:33], "truncated_image"),  # cut right after IHDR
        (b"\xff\xd8\xff", "truncated_image"),
        (encoded("WEBP")[:16], "truncated_image"),
    ],
)
def test_bad_inputs_are_rejected_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(InputRejected) as raised:
        inspect(data, 50_000_000)
    assert raised.value.code == code


def test_pixel_budget_is_enforced_before_decoding() -> None:
    with pytest.raises(InputRejected) as raised:
        inspect(encoded("PNG", (1000, 1000)), max_pixels=500_000)
    assert raised.value.code == "too_many_pixels"


def png_declaring(side: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``side`` x ``side`` pixels (a decompression bomb)."""
    bomb = encoded("PNG", (64, 64), mode="1")
    ihdr = bomb.index(b"IHDR")
    patched = bytearray(bomb)
    patched[ihdr + 4 : ihdr + 12] = side.to_bytes(4, "big") * 2
    patched[ihdr + 17 : ihdr + 21] = zlib.crc32(bytes(patched[ihdr : ihdr + 17])).to_bytes(4, "big")
    return bytes(patched)


def test_decompression_bomb_is_refused() -> None:
    with pytest.raises(InputRejected) as raised:
        inspect(png_declaring(100_000), 50_000_000)
    assert raised.value.code == "too_many_pixels"


def test_a_bomb_refused_by_pillow_gets_a_plain_message() -> None:
    with pytest.raises(InputRejected) as raised:
        inspect(png_declaring(20_000), 50_000_000)
    assert raised.value.message.startswith("the image has 400000000 pixels; the limit is ")
