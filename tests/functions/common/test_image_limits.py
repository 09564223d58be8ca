"""The decoding work a file declares, bounded before decoding (issue 15, items 13-15): each limit refuses a file
built to pass it, ordinary files of every kind pass, and the validation and the container carry the same module."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pillow_heif
import pytest

from bench.load import garment_image
from functions.common import image_limits
from functions.common.image_limits import ImageRefused, check_file, check_shape
from tests import hostile_images as hostile

ROOT = Path(__file__).resolve().parents[3]
pillow_heif.register_heif_opener()
PHOTO = garment_image((200, 250))
BUDGET = 50_000_000


def refusal(data: bytes, max_pixels: int = BUDGET) -> ImageRefused:
    with pytest.raises(ImageRefused) as raised:
        check_file(data, max_pixels)
    assert_sentence(raised.value.message)
    return raised.value


def assert_sentence(message: str) -> None:
    """What happened and what to do next, in words: no decoder, library or exception names."""
    assert message[0].isupper(), message
    assert message.endswith("."), message
    assert "upload" in message, message
    assert not re.search(r"Pillow|PIL|libjpeg|Error|Exception|MAX_|\{|_", message), message


def test_the_validation_and_the_container_carry_the_same_module() -> None:
    validation = ROOT / "functions" / "common" / "image_limits.py"
    container = ROOT / "inference_container" / "modamoda_inference" / "image_limits.py"
    assert validation.read_bytes() == container.read_bytes()


# ---- ordinary files pass ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {"quality": 90}),
        ("JPEG", {"quality": 90, "progressive": True}),
        ("JPEG", {"quality": 90, "icc_profile": hostile.large_icc_profile(1_200_000)}),  # 19 APP2 segments
        ("PNG", {}),
        ("PNG", {"icc_profile": hostile.large_icc_profile(1_200_000)}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("TIFF", {"compression": "tiff_adobe_deflate", "big_tiff": True}),
        ("WEBP", {"quality": 80}),
        ("AVIF", {"quality": 70}),
        ("HEIF", {"quality": 70}),
    ],
)
def test_ordinary_files_pass(fmt: str, params: dict[str, object]) -> None:
    check_file(hostile.encode(PHOTO, fmt, **params), BUDGET)


def test_a_camera_jpeg_with_an_mpf_preview_passes() -> None:
    check_file(hostile.camera_mpo(PHOTO), BUDGET)


def test_restart_markers_in_the_compressed_data_are_not_counted() -> None:
    data = hostile.encode(garment_image((800, 800)), "JPEG", quality=80, restart_marker_blocks=1)
    assert len(re.findall(rb"\xff[\xd0-\xd7]", data)) > image_limits.MAX_JPEG_MARKERS
    check_file(data, BUDGET)


def test_what_follows_the_first_pictures_end_is_not_read() -> None:
    jpeg = hostile.encode(PHOTO, "JPEG", quality=90)
    check_file(jpeg + hostile.repeated_scan_jpeg(PHOTO, 2 * image_limits.MAX_JPEG_SCANS), BUDGET)


def test_a_tile_larger_than_a_small_picture_passes() -> None:
    check_file(hostile.tiff_with_tile(100, 100, 256), BUDGET)
    check_file(hostile.tiff_with_tile(3000, 2000, 4096), BUDGET)  # twice the picture's area at most


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"\0\0\0\x18ftypavif"]
)
def test_files_cut_short_are_left_to_the_decoder(data: bytes) -> None:
    check_file(data, BUDGET)


# ---- item 13: work out of proportion ------------------------------------------------------------------------------


def test_a_jpeg_repeating_its_last_scan_is_refused() -> None:
    data = hostile.repeated_scan_jpeg(PHOTO, image_limits.MAX_JPEG_SCANS)
    assert len(data) < 200_000
    assert refusal(data).code == "too_complex"
    check_file(hostile.repeated_scan_jpeg(PHOTO, 20), BUDGET)  # about 30 scans: an unusual but fair script


def test_a_jpeg_of_empty_markers_is_refused() -> None:
    jpeg = hostile.encode(PHOTO, "JPEG", quality=90)
    assert refusal(hostile.empty_markers_jpeg(jpeg, image_limits.MAX_JPEG_MARKERS)).code == "too_complex"
    check_file(hostile.empty_markers_jpeg(jpeg, 500), BUDGET)


@pytest.mark.parametrize("filler", [b"\x00", b"\xff"])
def test_a_jpeg_padded_with_stray_bytes_is_refused(filler: bytes) -> None:
    jpeg = hostile.encode(PHOTO, "JPEG", quality=90)
    first = 4 + int.from_bytes(jpeg[4:6])  # after SOI and the first segment (APP0)
    padded = jpeg[:first] + filler * (image_limits.MAX_JPEG_STRAY_BYTES + 10) + jpeg[first:]
    assert refusal(padded).code == "too_complex"
    check_file(jpeg[:first] + filler * 1000 + jpeg[first:], BUDGET)


def test_a_png_of_many_chunks_is_refused() -> None:
    png = hostile.encode(PHOTO, "PNG")
    assert refusal(hostile.many_chunks_png(png, image_limits.MAX_PNG_CHUNKS)).code == "too_complex"
    check_file(hostile.many_chunks_png(png, 1000), BUDGET)


@pytest.mark.parametrize(("order", "big"), [("<", False), (">", False), ("<", True), (">", True)])
def test_a_tiff_tile_far_larger_than_its_picture_is_refused(order: str, big: bool) -> None:
    refused = refusal(hostile.tiff_with_tile(1000, 1000, 23168, order, big))
    assert refused.code == "too_complex"
    assert "23168x23168" in refused.message


def test_a_tiff_of_too_many_strips_is_refused() -> None:
    assert refusal(hostile.tiff_with_strips(64, 1000, image_limits.MAX_TIFF_BLOCKS + 1)).code == "too_complex"
    check_file(hostile.tiff_with_strips(64, 1000, 1000), BUDGET)


# ---- item 14: JPEG variants that decode to nonsense -------------------------------------------------------------


@pytest.mark.parametrize(("marker", "variant"), [(b"\xc9", "arithmetic-coded"), (b"\xc3", "lossless")])
def test_rare_jpeg_variants_are_refused(marker: bytes, variant: str) -> None:
    jpeg = hostile.encode(PHOTO, "JPEG", quality=90)
    sof = jpeg.index(b"\xff\xc0")
    refused = refusal(jpeg[: sof + 1] + marker + jpeg[sof + 2 :])
    assert refused.code == "unsupported_format"
    assert variant in refused.message
    assert refusal(hostile.arithmetic_sof_jpeg(jpeg)).code == "unsupported_format"


# ---- item 15: declared size, oversized profile, shape ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_an_avif_or_heic_declaring_too_many_pixels_is_refused(fmt: str) -> None:
    data = hostile.avif_declaring(hostile.encode(PHOTO, fmt, quality=70), 65_000, 65_000)
    refused = refusal(data)
    assert refused.code == "too_many_pixels"
    assert "65000x65000" in refused.message
    check_file(hostile.avif_declaring(hostile.encode(PHOTO, fmt, quality=70), 7000, 7000), BUDGET)


def test_a_colour_profile_beyond_the_limit_is_refused() -> None:
    png = hostile.encode(PHOTO, "PNG")
    body = b"big\x00\x00" + zlib.compress(b"\0" * (image_limits.MAX_ICC_BYTES + 1), 9)
    refused = refusal(png[:33] + hostile.png_chunk(b"iCCP", body) + png[33:])
    assert refused.code == "too_complex"
    assert "colour profile" in refused.message


@pytest.mark.parametrize(("width", "height"), [(64, 20000), (20000, 64), (1001, 100)])
def test_extreme_shapes_are_refused(width: int, height: int) -> None:
    with pytest.raises(ImageRefused) as raised:
        check_shape(width, height)
    assert raised.value.code == "extreme_aspect_ratio"
    assert f"{width}x{height}" in raised.value.message
    assert_sentence(raised.value.message)


@pytest.mark.parametrize(("width", "height"), [(64, 640), (1000, 100), (4000, 3000), (1, 1)])
def test_ordinary_shapes_pass(width: int, height: int) -> None:
    check_shape(width, height)


def test_the_non_finite_sentence() -> None:
    message = image_limits.nonfinite_message(0.25)
    assert message.startswith("25% of this image's pixels")
    assert "upload" in message
