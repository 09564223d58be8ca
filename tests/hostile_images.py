"""Awkward and hostile image files built in code (small, deterministic, never downloaded), shared by the
validation's, the container's and the local stack's tests (issue 15, items 12-15).

Each builder takes a picture (or encoded bytes) and returns the file's bytes: camera JPEGs with an MPF preview,
files whose structure asks for far more decoding work than their size suggests (repeated JPEG scans, empty
markers, PNG chunks, an oversized TIFF tile), a JPEG whose header claims arithmetic coding, floating-point TIFFs
with NaN or infinite pixels, a CMYK JPEG without Adobe's marker, a PNG with a large colour profile, an AVIF
declaring an enormous size, and a photo of an extreme shape.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.image_support import make_icc_profile


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


# ---- item 12: camera JPEGs with an MPF preview --------------------------------------------------------------------


def camera_mpo(photo: Image.Image) -> bytes:
    """A JPEG as Sony, Panasonic or Nikon cameras write it: the photo, then a smaller preview, indexed by an MPF
    (APP2) segment; Pillow opens it as MPO."""
    preview = photo.resize((max(1, photo.width // 4), max(1, photo.height // 4)))
    return encode(photo, "MPO", quality=90, save_all=True, append_images=[preview])


# ---- item 13: decoding work out of proportion to the file ---------------------------------------------------------


def repeated_scan_jpeg(photo: Image.Image, repeats: int) -> bytes:
    """A progressive JPEG whose last scan (header and data) is repeated ``repeats`` more times before EOI."""
    data = encode(photo, "JPEG", quality=85, progressive=True)
    last = data.rindex(b"\xff\xda")
    assert data.endswith(b"\xff\xd9")
    return data[:-2] + data[last:-2] * repeats + b"\xff\xd9"


def empty_markers_jpeg(jpeg: bytes, count: int) -> bytes:
    """``count`` empty COM segments (4 bytes each) right after SOI."""
    return jpeg[:2] + b"\xff\xfe\x00\x02" * count + jpeg[2:]


def many_chunks_png(png: bytes, count: int) -> bytes:
    """``count`` empty private ancillary chunks (12 bytes each) right after IHDR."""
    return png[:33] + png_chunk(b"prVt", b"") * count + png[33:]


def tiff_file(
    entries: list[tuple[int, int, int, int]], payload: bytes, order: str = "<", big: bool = False
) -> bytes:
    """A one-directory TIFF (classic or BigTIFF, either byte order) with ``entries`` of (tag, type, count, value)
    in tag order; a value of -1 is the offset of ``payload``, which follows the directory."""
    magic = (b"II" if order == "<" else b"MM") + struct.pack(order + "H", 43 if big else 42)
    header = magic + (struct.pack(order + "HHQ", 8, 0, 16) if big else struct.pack(order + "I", 8))
    entry_size, count_format, tail = (20, "Q", "Q") if big else (12, "H", "I")
    directory_size = struct.calcsize(count_format) + entry_size * len(entries) + struct.calcsize(tail)
    payload_offset = len(header) + directory_size
    value_size = 8 if big else 4
    directory = struct.pack(order + count_format, len(entries))
    for tag, kind, count, value in entries:
        value = payload_offset if value == -1 else value
        packed = struct.pack(order + {3: "H", 4: "I", 16: "Q"}[kind], value)
        field = packed + b"\0" * (value_size - len(packed))
        directory += struct.pack(order + ("HHQ" if big else "HHI"), tag, kind, count) + field
    directory += struct.pack(order + tail, 0)
    return header + directory + payload


def tiff_with_tile(width: int, height: int, tile: int, order: str = "<", big: bool = False) -> bytes:
    """A greyscale, deflate-compressed TIFF of ``width`` x ``height`` pixels in one tile declared ``tile`` x
    ``tile``: grey, complete when the tile is small; a short run when it is huge (refused before decoding)."""
    area = tile * tile if tile * tile <= 4_000_000 else width * 4
    payload = zlib.compress(b"\x80" * area, 9)
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 8),  # Compression: deflate
        (262, 3, 1, 1),  # Photometric: min-is-black
        (277, 3, 1, 1),  # SamplesPerPixel
        (284, 3, 1, 1),  # PlanarConfiguration: contiguous
        (322, 4, 1, tile),  # TileWidth
        (323, 4, 1, tile),  # TileLength
        (324, 4, 1, -1),  # TileOffsets
        (325, 4, 1, len(payload)),  # TileByteCounts
    ]
    return tiff_file(entries, payload, order, big)


def tiff_with_strips(width: int, height: int, strips: int) -> bytes:
    """An uncompressed greyscale TIFF whose directory lists ``strips`` strips (offsets and counts are arrays the
    payload holds; their values do not matter to a check that refuses the count)."""
    rows = max(1, -(-height // strips))
    offsets = struct.pack(f"<{strips}I", *([0] * strips))
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, strips, -1),  # StripOffsets (the array is the payload)
        (277, 3, 1, 1),
        (278, 4, 1, rows),  # RowsPerStrip
        (279, 4, strips, -1),  # StripByteCounts (the same zeros)
    ]
    return tiff_file(entries, offsets)


# ---- item 14: results that decode to nonsense ---------------------------------------------------------------------


def arithmetic_sof_jpeg(jpeg: bytes) -> bytes:
    """A baseline JPEG whose frame header says SOF9 (arithmetic coding) over its Huffman-coded data."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 1] + b"\xc9" + jpeg[sof + 2 :]


def float_tiff(values: np.ndarray) -> bytes:
    """A 32-bit floating-point greyscale TIFF (mode F) of ``values``."""
    return encode(Image.fromarray(values.astype(np.float32)), "TIFF")


def float_garment(photo: Image.Image) -> np.ndarray:
    """The photo's grey levels as floats in 0..1 (as HDR and scientific tools write them)."""
    return np.asarray(photo.convert("L"), dtype=np.float32) / 255.0


def with_nan_stripes(values: np.ndarray, every: int = 6) -> np.ndarray:
    """Two rows in every ``every`` NaN or +Inf, alternately (a third of the picture for 6)."""
    out = values.copy()
    for index, top in enumerate(range(0, out.shape[0], every)):
        out[top : top + 2] = np.nan if index % 2 else np.inf
    return out


def with_one_inf(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[3, 3] = np.inf
    return out


def plain_cmyk_jpeg(photo: Image.Image) -> bytes:
    """A CMYK JPEG without Adobe's APP14 marker: plain (not inverted) CMYK values, as some print workflows write.
    Pillow stores CMYK inverted with an Adobe marker; storing the inverted picture and dropping the marker
    leaves the plain values."""
    inverted = photo.convert("CMYK").point(lambda v: 255 - v)
    data = encode(inverted, "JPEG", quality=92)
    app14 = data.index(b"\xff\xee")
    (length,) = struct.unpack(">H", data[app14 + 2 : app14 + 4])
    stripped = data[:app14] + data[app14 + 2 + length :]
    assert b"Adobe" not in stripped
    return stripped


# ---- item 15: codes and messages ----------------------------------------------------------------------------------


def large_icc_profile(size: int) -> bytes:
    """A valid RGB display profile padded with zeros to ``size`` bytes (its header's size field says so)."""
    profile = make_icc_profile(2.2, "Large profile (test)")
    padded = profile + b"\0" * (size - len(profile))
    return struct.pack(">I", size) + padded[4:]


def png_with_icc(photo: Image.Image, profile: bytes) -> bytes:
    return encode(photo, "PNG", icc_profile=profile)


def avif_declaring(avif: bytes, width: int, height: int) -> bytes:
    """An AVIF whose every ``ispe`` property (the size of its pictures) claims ``width`` x ``height``."""
    data = bytearray(avif)
    start = 0
    found = 0
    while (at := data.find(b"ispe", start)) >= 0:
        data[at + 8 : at + 16] = struct.pack(">II", width, height)  # after the box's version and flags
        start = at + 4
        found += 1
    assert found
    return bytes(data)
