"""Decoding untrusted photos safely and encoding results cleanly."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from modamoda_inference.errors import InvalidImage
from modamoda_inference.imageio import (
    INPUT_CONTENT_TYPES,
    SUPPORTED_FORMATS,
    decode_image,
    encode_image,
    nclx_to_srgb,
)
from PIL import Image

from bench.load import garment_image
from tests import hostile_images as hostile

Encode = Callable[..., bytes]


def noise_rgb(w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (the data is a 1x1 image's)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_supported_formats_decode_to_rgb(fmt: str, encode_image_bytes: Encode) -> None:
    rgb = noise_rgb()
    out = decode_image(encode_image_bytes(rgb, fmt))
    assert out.image.mode == "RGB"
    assert out.image.size == (64, 48)
    assert out.source_format == fmt
    assert out.image.info == {}
    if fmt in ("PNG", "TIFF"):
        assert np.array_equal(np.asarray(out.image), rgb)


def test_content_types_cover_the_allow_list() -> None:
    assert set(INPUT_CONTENT_TYPES.values()) == set(SUPPORTED_FORMATS)
    assert INPUT_CONTENT_TYPES["image/heic"] == "HEIF"
    assert INPUT_CONTENT_TYPES["image/avif"] == "AVIF"


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_smooth_photo_survives_heic_and_avif(fmt: str, encode_image_bytes: Encode) -> None:
    yy, xx = np.mgrid[0:96, 0:128]
    rgb = np.stack([xx * 2, yy * 2, np.full_like(xx, 128)], axis=-1).astype(np.uint8)
    out = np.asarray(decode_image(encode_image_bytes(rgb, fmt, quality=95)).image).astype(int)
    assert np.abs(out - rgb).mean() < 4


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_truncated_heic_and_avif_are_corrupt(fmt: str, encode_image_bytes: Encode) -> None:
    data = encode_image_bytes(noise_rgb(128, 96), fmt)
    with pytest.raises(InvalidImage) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.code == "invalid_image"
    assert "corrupt" in info.value.message


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_orientation_is_applied(fmt: str, encode_image_bytes: Encode) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode_image(encode_image_bytes(stored, fmt, quality=95, exif=exif.tobytes()))
    assert out.image.size == (20, 40)
    px = np.asarray(out.image).astype(int)
    assert px[5, 10, 0] > 200
    assert px[34, 10, 2] > 200


def test_display_p3_nclx_is_converted_to_srgb() -> None:
    p3 = {
        "color_primaries": 12,
        "color_primary_red_x": 0.680,
        "color_primary_red_y": 0.320,
        "color_primary_green_x": 0.265,
        "color_primary_green_y": 0.690,
        "color_primary_blue_x": 0.150,
        "color_primary_blue_y": 0.060,
        "color_primary_white_x": 0.3127,
        "color_primary_white_y": 0.3290,
    }
    image = Image.fromarray(np.array([[[128, 128, 128], [0, 255, 0], [200, 60, 40]]], np.uint8))
    out, name = nclx_to_srgb(image, p3)
    assert name == "Display P3"
    px = np.asarray(out).astype(int)
    assert np.all(np.abs(px[0, 0] - 128) <= 1)  # grey stays grey (same white point)
    assert tuple(px[0, 1, :2]) == (0, 255)  # P3 green is beyond sRGB: clipped
    assert px[0, 1, 2] <= 10
    assert px[0, 2, 0] > 200  # a P3 red is a more saturated sRGB red
    srgb = {**p3, "color_primaries": 1}
    assert nclx_to_srgb(image, srgb) == (image, None)
    assert nclx_to_srgb(image, {"color_primaries": 12}) == (image, None)  # no chromaticities: left alone


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"hello, this is not an image at all", "not an image"),
        (b"GIF89a" + b"\0" * 64, "unsupported image format GIF"),
        (b"\0\0\0\x18ftypheic" + b"\0" * 64, "corrupt"),  # HEIC is supported: a broken one is corrupt
        (b"\0\0\0\x18ftypcrx " + b"\0" * 64, "unsupported image format Canon RAW"),
        (b"%PDF-1.7\n" + b"\0" * 64, "unsupported image format PDF"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 8, "corrupt"),
    ],
)
def test_not_an_image_or_unsupported(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(data)
    assert info.value.code == "invalid_image"
    assert fragment in info.value.message


def test_real_gif_and_bmp_are_refused_by_the_allow_list(encode_image_bytes: Encode) -> None:
    for fmt, name in (("GIF", "GIF"), ("BMP", "BMP")):
        with pytest.raises(InvalidImage, match=f"unsupported image format {name}"):
            decode_image(encode_image_bytes(noise_rgb(), fmt))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt: str, encode_image_bytes: Encode) -> None:
    data = encode_image_bytes(noise_rgb(256, 256), fmt)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_far_over_the_limit() -> None:
    bomb = png_declaring(200_000, 200_000)  # 40 gigapixels in a ~70 byte file
    assert len(bomb) < 100
    with pytest.raises(InvalidImage, match="too large"):
        decode_image(bomb)


def test_decompression_bomb_just_over_the_limit_is_an_error_not_a_warning() -> None:
    bomb = png_declaring(8_000, 7_000)  # 56 MP: over 50 MP, under Pillow's hard error at 2x
    with pytest.raises(InvalidImage, match="too large"):
        decode_image(bomb)


def test_explicit_pixel_limit(encode_image_bytes: Encode) -> None:
    with pytest.raises(InvalidImage, match="the limit is"):
        decode_image(encode_image_bytes(noise_rgb(100, 100), "PNG"), max_pixels=5_000)


def test_too_small(encode_image_bytes: Encode) -> None:
    with pytest.raises(InvalidImage, match="too small"):
        decode_image(encode_image_bytes(noise_rgb(8, 8), "PNG"))


def test_exif_orientation_is_applied(encode_image_bytes: Encode) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # stored landscape: left half red, right half blue
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    exif[0x010F] = "TestCam"
    data = encode_image_bytes(stored, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_image(data)
    assert out.orientation == 6
    assert out.image.size == (20, 40)  # upright portrait
    px = np.asarray(out.image).astype(int)
    assert px[5, 10, 0] > 200
    assert px[5, 10, 2] < 60
    assert px[34, 10, 2] > 200
    assert px[34, 10, 0] < 60
    assert "exif" not in out.image.info


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(fmt: str, encode_image_bytes: Encode) -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red ink
    out = decode_image(encode_image_bytes(cmyk, fmt))
    assert out.source_mode == "CMYK"
    r, g, b = np.asarray(out.image)[16, 16].astype(int)
    assert r > 220
    assert g < 40
    assert b < 40


def test_rgba_is_composited_on_white(encode_image_bytes: Encode) -> None:
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, 16:] = (255, 0, 0, 128)  # half transparent red on the right, fully transparent on the left
    out = decode_image(encode_image_bytes(Image.fromarray(rgba), "PNG"))
    px = np.asarray(out.image).astype(int)
    assert tuple(px[5, 5]) == (255, 255, 255)
    assert px[5, 20, 0] == 255
    assert abs(px[5, 20, 1] - 127) <= 2
    assert abs(px[5, 20, 2] - 127) <= 2


@pytest.mark.parametrize("mode", ["LA", "P", "L", "1", "I;16", "I"])
def test_other_modes_become_rgb(mode: str, encode_image_bytes: Encode) -> None:
    base = Image.fromarray(noise_rgb(40, 30)).convert("RGBA")
    if mode in ("I;16", "I"):
        image = Image.fromarray((np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16))
        image = image if mode == "I;16" else image.convert("I")
    else:
        image = base.convert(mode)
    fmt = "TIFF" if mode == "I" else "PNG"
    out = decode_image(encode_image_bytes(image, fmt))
    assert out.image.mode == "RGB"
    assert out.image.size == (40, 30)


@pytest.mark.parametrize("mode", ["PA", "La", "RGBa", "RGBX", "YCbCr", "HSV", "F"])
def test_in_memory_modes_become_rgb(mode: str) -> None:
    from modamoda_inference.imageio import _to_srgb

    base = Image.fromarray(noise_rgb(40, 30)).convert("RGBA")
    if mode == "PA":
        image = base.convert("P").convert("PA")
    elif mode == "F":
        image = base.convert("L").convert("F")
    else:
        image = base.convert(mode)
    out, converted = _to_srgb(image)
    assert out.mode == "RGB"
    assert out.size == (40, 30)
    assert not converted


def test_sixteen_bit_grey_keeps_its_tones(encode_image_bytes: Encode) -> None:
    grey = np.full((20, 20), 32896, np.uint16)  # 0x8080 → 128 in 8 bits
    out = decode_image(encode_image_bytes(Image.fromarray(grey), "PNG"))
    assert np.all(np.asarray(out.image) == 128)


def test_palette_transparency_is_composited(encode_image_bytes: Encode) -> None:
    p = Image.new("P", (20, 20), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.paste(1, (10, 0, 20, 20))
    p.info["transparency"] = 0
    out = decode_image(encode_image_bytes(p, "PNG", transparency=0))
    px = np.asarray(out.image)
    assert tuple(px[5, 5]) == (255, 255, 255)
    assert tuple(px[5, 15]) == (255, 0, 0)


def test_icc_profile_is_converted_to_srgb(make_icc: Callable[..., bytes], encode_image_bytes: Encode) -> None:
    grey = np.full((24, 24, 3), 128, np.uint8)
    data = encode_image_bytes(grey, "PNG", icc_profile=make_icc(gamma=1.0))
    out = decode_image(data)
    assert out.icc_converted
    value = np.asarray(out.image)[12, 12].astype(int)
    assert np.all(np.abs(value - 188) <= 3), value  # linear 0.5 is sRGB ~188
    assert "icc_profile" not in out.image.info


def test_srgb_profile_is_left_alone(encode_image_bytes: Encode) -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = noise_rgb()
    out = decode_image(encode_image_bytes(rgb, "PNG", icc_profile=srgb))
    assert not out.icc_converted
    assert np.array_equal(np.asarray(out.image), rgb)


def test_broken_icc_profile_is_ignored(encode_image_bytes: Encode) -> None:
    rgb = noise_rgb()
    out = decode_image(encode_image_bytes(rgb, "PNG", icc_profile=b"garbage" * 20))
    assert not out.icc_converted
    assert np.array_equal(np.asarray(out.image), rgb)


@pytest.mark.parametrize(
    ("fmt", "magic"),
    [("png", b"\x89PNG"), ("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF"), ("avif", b"\0\0\0")],
)
def test_encode_strips_metadata(fmt: str, magic: bytes) -> None:
    image = Image.fromarray(noise_rgb())
    image.info["icc_profile"] = b"x" * 200
    image.info["exif"] = b"Exif\0\0" + b"y" * 50
    data = encode_image(image, fmt, quality=90)
    assert data.startswith(magic)
    again = Image.open(io.BytesIO(data))
    assert again.size == (64, 48)
    assert "icc_profile" not in again.info
    assert "exif" not in again.info
    assert not again.getexif()
    assert b"y" * 50 not in data


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_encode_keeps_alpha_where_the_format_has_it(fmt: str) -> None:
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[:, :24] = (200, 30, 30, 255)  # opaque left half, transparent right half
    data = encode_image(Image.fromarray(rgba, "RGBA"), fmt, quality=95)
    again = Image.open(io.BytesIO(data))
    assert again.mode == "RGBA"
    a = np.asarray(again)[..., 3].astype(int)
    assert a[:, :20].min() > 240
    assert a[:, 28:].max() < 15


def test_jpeg_of_rgba_is_flattened_to_rgb() -> None:
    data = encode_image(Image.new("RGBA", (8, 8), (10, 20, 30, 255)), "jpeg")
    assert Image.open(io.BytesIO(data)).mode == "RGB"


def test_encode_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unsupported output format"):
        encode_image(Image.new("RGB", (4, 4)), "gif")


def test_multi_picture_jpeg_from_cameras_is_accepted() -> None:
    frames = [Image.fromarray(noise_rgb(seed=1)), Image.fromarray(noise_rgb(seed=2))]
    buf = io.BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue())
    assert out.source_format in ("MPO", "JPEG")
    assert out.image.size == (64, 48)


# ---- issue 15, items 12-15: the container decodes as the validation checks ---------------------------------------


def garment(size: tuple[int, int] = (200, 250)) -> Image.Image:
    return garment_image(size)


def test_a_camera_jpeg_with_an_mpf_preview_decodes_its_first_picture() -> None:
    photo = garment()
    out = decode_image(hostile.camera_mpo(photo))
    assert out.source_format == "MPO"
    assert out.image.size == photo.size
    assert np.abs(np.asarray(out.image).astype(int) - np.asarray(photo).astype(int)).mean() < 4


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: hostile.repeated_scan_jpeg(garment(), 100), id="repeated scans"),
        pytest.param(lambda: hostile.tiff_with_tile(1000, 1000, 23168), id="tiff tile 23168"),
        pytest.param(
            lambda: hostile.many_chunks_png(hostile.encode(garment(), "PNG"), 50_000), id="png chunks"
        ),
        pytest.param(lambda: hostile.arithmetic_sof_jpeg(hostile.encode(garment(), "JPEG")), id="sof9"),
        pytest.param(
            lambda: hostile.avif_declaring(hostile.encode(garment(), "AVIF"), 65_000, 65_000), id="avif 65000"
        ),
        pytest.param(lambda: hostile.encode(garment((64, 20000)), "PNG"), id="64x20000"),
    ],
)
def test_files_the_validation_refuses_are_refused_here_too_with_its_sentence(
    build: Callable[[], bytes],
) -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(build())
    assert info.value.details["reason"] in {
        "too_complex",
        "unsupported_format",
        "too_many_pixels",
        "extreme_aspect_ratio",
    }
    assert info.value.message.endswith("upload the new file.") or "upload it again" in info.value.message


def test_a_cmyk_jpeg_without_adobes_marker_is_not_inverted() -> None:
    photo = garment()
    out = decode_image(hostile.plain_cmyk_jpeg(photo))
    assert out.source_mode == "CMYK"
    difference = np.abs(np.asarray(out.image).astype(int) - np.asarray(photo).astype(int))
    assert difference.mean() < 6  # the photo, not its negative (nearly black)
    adobe = decode_image(
        hostile.encode(photo.convert("CMYK"), "JPEG", quality=92)
    )  # Pillow writes the marker
    assert np.abs(np.asarray(adobe.image).astype(int) - np.asarray(photo).astype(int)).mean() < 6


def test_a_single_inf_pixel_does_not_break_a_float_tiff() -> None:
    values = hostile.float_garment(garment())
    clean = np.asarray(decode_image(hostile.float_tiff(values)).image).astype(int)
    out = np.asarray(decode_image(hostile.float_tiff(hostile.with_one_inf(values))).image).astype(int)
    assert clean.mean() > 100  # a light backdrop with the garment, scaled from 0..1
    mask = np.ones(out.shape[:2], bool)
    mask[3, 3] = False
    assert np.abs(out[mask] - clean[mask]).max() <= 1
    assert abs(int(out[3, 3, 0]) - int(clean.max())) <= 1  # +Inf: the brightest finite value


def test_a_few_nan_pixels_are_filled_and_many_are_refused() -> None:
    values = hostile.float_garment(garment())
    few = values.copy()
    few[10:12, 10:20] = np.nan  # 20 of 50000 pixels
    few[20, 20] = -np.inf
    out = np.asarray(decode_image(hostile.float_tiff(few)).image)
    assert out.mean() > 100
    with pytest.raises(InvalidImage, match="pixels hold no valid value") as info:
        decode_image(hostile.float_tiff(hostile.with_nan_stripes(values)))
    assert info.value.details == {"reason": "truncated_image"}


def test_a_png_with_a_large_colour_profile_is_decoded_and_converted() -> None:
    out = decode_image(hostile.png_with_icc(garment(), hostile.large_icc_profile(1_200_000)))
    assert out.icc_converted


def test_decoder_words_stay_out_of_the_message() -> None:
    data = hostile.encode(garment(), "JPEG", quality=90)
    with pytest.raises(InvalidImage, match="truncated or corrupt") as info:
        decode_image(data[: len(data) // 2])
    assert "image file is truncated" not in info.value.message
    assert "decoder" in info.value.details
