"""Upload validation by content: every bad input gets its own clear code."""

from __future__ import annotations

import io
import re
import zlib

import numpy as np
import pytest
from PIL import Image

from bench.load import garment_image
from functions.common import image_limits, images
from functions.common.errors import INPUT_ERROR_CODES, InputRejected
from functions.common.images import inspect, nonfinite_share
from tests import hostile_images as hostile


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
    assert raised.value.message.startswith("The image has 400 megapixels; the limit is 50 megapixels")


# ---- issue 15, items 12-15 ------------------------------------------------------------------------------------------

PHOTO = garment_image((200, 250))
BUDGET = 50_000_000


def refused(data: bytes, max_pixels: int = BUDGET) -> InputRejected:
    with pytest.raises(InputRejected) as raised:
        inspect(data, max_pixels)
    error = raised.value
    assert error.code in INPUT_ERROR_CODES
    assert error.message[0].isupper() or error.message[0].isdigit(), error.message
    assert error.message.endswith("."), error.message
    assert "upload" in error.message.lower(), error.message
    assert not re.search(r"Pillow|PIL|MAX_|libjpeg|libavif|Error|Exception|\{", error.message), error.message
    return error


def test_item12_a_camera_jpeg_with_an_mpf_preview_is_a_jpeg() -> None:
    data = hostile.camera_mpo(PHOTO)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.format == "MPO"  # what Pillow calls it
    info = inspect(data, BUDGET)
    assert (info.format, info.width, info.height) == ("JPEG", 200, 250)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: hostile.repeated_scan_jpeg(PHOTO, image_limits.MAX_JPEG_SCANS),
            id="repeated progressive scans",
        ),
        pytest.param(
            lambda: hostile.empty_markers_jpeg(
                hostile.encode(PHOTO, "JPEG", quality=90), image_limits.MAX_JPEG_MARKERS
            ),
            id="empty jpeg markers",
        ),
        pytest.param(
            lambda: hostile.many_chunks_png(hostile.encode(PHOTO, "PNG"), image_limits.MAX_PNG_CHUNKS),
            id="png chunks",
        ),
        pytest.param(lambda: hostile.tiff_with_tile(1000, 1000, 23168), id="tiff tile 23168 for 1000x1000"),
    ],
)
def test_item13_work_out_of_proportion_is_refused_before_decoding(build: object) -> None:
    assert callable(build)
    assert refused(build()).code == "too_complex"


def test_item14_a_jpeg_claiming_arithmetic_coding_is_refused() -> None:
    data = hostile.arithmetic_sof_jpeg(hostile.encode(PHOTO, "JPEG", quality=90))
    error = refused(data)
    assert error.code == "unsupported_format"
    assert "arithmetic" in error.message


def test_item14_a_float_tiff_with_nan_and_inf_stripes_is_refused() -> None:
    data = hostile.float_tiff(hostile.with_nan_stripes(hostile.float_garment(PHOTO)))
    error = refused(data)
    assert error.code == "truncated_image"
    assert re.match(r"3\d% of this image's pixels hold no valid value", error.message), error.message


def test_item14_a_float_tiff_with_one_inf_pixel_and_a_plain_cmyk_jpeg_pass() -> None:
    floats = hostile.float_tiff(hostile.with_one_inf(hostile.float_garment(PHOTO)))
    assert (inspect(floats, BUDGET).format, inspect(floats, BUDGET).width) == ("TIFF", 200)
    assert (
        inspect(hostile.plain_cmyk_jpeg(PHOTO), BUDGET).format == "JPEG"
    )  # its colours: the container's test


def test_nonfinite_share_counts_nan_and_both_infinities_only() -> None:
    values = np.zeros((64, 100), np.float32)
    values[0, :10] = np.nan
    values[1, :5] = np.inf
    values[2, :5] = -np.inf
    values[3, :] = 3.0e38  # huge but finite
    values[4, :] = -1e-40  # subnormal
    assert nonfinite_share(Image.fromarray(values)) == pytest.approx(20 / 6400)
    assert nonfinite_share(Image.new("L", (10, 10))) == 0.0


def test_item15_a_png_with_a_large_colour_profile_is_accepted() -> None:
    profile = hostile.large_icc_profile(1_200_000)
    info = inspect(hostile.png_with_icc(PHOTO, profile), BUDGET)
    assert (info.format, info.width) == ("PNG", 200)


def test_item15_an_avif_declaring_65000_squared_is_too_many_pixels() -> None:
    data = hostile.avif_declaring(hostile.encode(PHOTO, "AVIF", quality=70), 65_000, 65_000)
    assert refused(data).code == "too_many_pixels"


def test_item15_an_extreme_shape_is_refused_up_front() -> None:
    data = hostile.encode(garment_image((64, 20000)), "PNG")
    error = refused(data)
    assert error.code == "extreme_aspect_ratio"
    assert "64x20000" in error.message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(
            hostile.encode(PHOTO, "JPEG", quality=90)[:-200], "truncated_image", id="jpeg cut short"
        ),
        pytest.param(hostile.encode(PHOTO, "PNG")[:-200], "truncated_image", id="png cut short"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\0" * 8, "truncated_image", id="jpeg header only"),
        pytest.param(encoded("GIF"), "unsupported_format", id="gif"),
        pytest.param(b"%PDF-1.7 not an image", "not_an_image", id="pdf"),
        pytest.param(encoded("PNG", (30, 30)), "too_small", id="too small"),
    ],
)
def test_item15_messages_are_sentences_never_the_decoders_words(data: bytes, code: str) -> None:
    error = refused(data)
    assert error.code == code
    if code == "truncated_image":
        assert error.message == images.CORRUPT_MESSAGE
