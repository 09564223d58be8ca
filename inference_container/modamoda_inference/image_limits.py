"""What an uploaded image file declares, read before any decoding: the work it would take to decode is bounded
by what its structure says, and a file that asks for too much is refused with a code and a plain sentence.

Decoders take a file at its word: a progressive JPEG may repeat its last scan thousands of times (each scan is
decoded over the whole picture), millions of empty JPEG markers or PNG chunks are each handled one by one, a TIFF
may declare a single tile far larger than its picture (and the decoder allocates it), and an AVIF or HEIC may
declare a size its decoder refuses with an error about corruption. :func:`check_file` walks the file's structure
(JPEG markers, PNG chunks, the first TIFF directory, the ISO-BMFF boxes of AVIF/HEIF) without decoding any
pixels, in time linear in the file's size and stopping at the first limit passed, and raises
:class:`ImageRefused` with one of these codes:

- ``too_complex``: more JPEG scans, JPEG markers, stray bytes between JPEG segments, PNG chunks, TIFF strips or
  tiles than any ordinary photo has; TIFF tiles far larger than the picture; an embedded colour profile larger
  than ``MAX_ICC_BYTES``;
- ``unsupported_format``: a JPEG of a variant that cameras, phones and browsers do not use (arithmetic-coded,
  lossless, hierarchical): libjpeg decodes arithmetic coding over Huffman data to garbage without an error;
- ``too_many_pixels``: an AVIF/HEIF whose declared size is over the pixel budget.

:func:`check_shape` refuses extreme aspect ratios (``extreme_aspect_ratio``), and :func:`nonfinite_message` is
the sentence for a floating-point image with too many pixels that hold no value (NaN, infinity).

This module has no dependencies beyond the standard library: the validate Lambda (``functions/common``) and the
inference container (``modamoda_inference``) each carry an identical copy (neither package may import the
other); ``tests/functions/common/test_image_limits.py`` keeps the two copies identical.
"""

from __future__ import annotations

import re
import struct
import zlib

# ---- the limits ---------------------------------------------------------------------------------------------------

# Progressive JPEGs from cameras, phones and image editors have about 10 scans (libjpeg's default script is 10,
# optimised scripts stay under 20); each scan is decoded over the whole picture.
MAX_JPEG_SCANS = 100
# Markers outside the compressed data (APPn, DQT, DHT, SOF, SOS, COM...): a photo has a few dozen; an ICC profile
# split into APP2 segments adds at most 255. Restart markers inside the compressed data are not counted.
MAX_JPEG_MARKERS = 2_000
# Fill bytes and stray data between JPEG segments (the header parser reads them one at a time).
MAX_JPEG_STRAY_BYTES = 256 * 1024
# PNG chunks of every kind: encoders split the pixel data into IDAT chunks of 8-64 KB, so a 25 MB file has a
# few thousand at most.
MAX_PNG_CHUNKS = 50_000
# Strips or tiles of a TIFF (each is decoded on its own): a photo has at most a few thousand.
MAX_TIFF_BLOCKS = 65_536
# A TIFF tile may be larger than a small picture (tiles are 16-pixel multiples; 256x256 tiles on a 100x100
# picture are normal), but not more than twice the picture's area once it is above 4096x4096.
MIN_TIFF_TILE_ALLOWANCE = 4096 * 4096
# An embedded ICC colour profile, once decompressed: print profiles with large tables reach a few MB.
MAX_ICC_BYTES = 16 * 1024 * 1024
# Boxes read in an AVIF/HEIF file's structure (the walk stops there; it refuses nothing by itself).
MAX_BMFF_BOXES = 4_096
# The long side over the short side: a garment photo, even a scarf laid flat, stays well inside 10:1.
MAX_ASPECT_RATIO = 10
# The share of a floating-point image's pixels that may hold NaN or infinity (ignored when scaling) before the
# image is refused as corrupt.
MAX_NONFINITE_SHARE = 0.01

_SAVE_AGAIN = "Save or export the photo again as an ordinary JPEG or PNG and upload the new file."


class ImageRefused(Exception):
    """The file is refused for what it declares: ``code`` is an input error code, ``message`` a sentence for the
    customer (what happened and what to do next)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_file(data: bytes, max_pixels: int) -> None:
    """Refuse ``data`` (see the module doc) when its structure declares more work than a photo needs; files of
    other formats, and files cut short, pass (the decoder reports them)."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        _check_jpeg(data)
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        _check_png(data)
    elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff(data)
    elif head[4:8] == b"ftyp":
        _check_bmff(data, max_pixels)


def check_shape(width: int, height: int) -> None:
    """Refuse a picture whose long side is more than ``MAX_ASPECT_RATIO`` times its short side."""
    long_side, short_side = max(width, height), max(1, min(width, height))
    if long_side > MAX_ASPECT_RATIO * short_side:
        raise ImageRefused(
            "extreme_aspect_ratio",
            f"The image is {width}x{height} pixels: its long side is {long_side / short_side:.0f} times its short "
            f"side, and a product photo can be made from at most {MAX_ASPECT_RATIO} to 1. Crop the photo around "
            "the garment and upload it again.",
        )


def nonfinite_message(share: float) -> str:
    """The sentence for a floating-point image whose pixels hold no value (NaN, infinity) in ``share`` of it."""
    return (
        f"{share:.0%} of this image's pixels hold no valid value (its floating-point data has gaps or infinite "
        "values), so the picture cannot be shown as it was meant. Export it again as an 8- or 16-bit TIFF, a PNG "
        "or a JPEG and upload the new file."
    )


def _too_complex(what: str) -> ImageRefused:
    return ImageRefused(
        "too_complex",
        f"This file {what}, so reading it would take far more work than a photo needs. {_SAVE_AGAIN}",
    )


# ---- JPEG ---------------------------------------------------------------------------------------------------------

_FILL = re.compile(rb"\xff+")
# The next marker after compressed data: 0xFF followed by anything but a stuffed zero, a restart marker or fill.
_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length
# Start-of-frame markers other than baseline (C0), extended (C1) and progressive (C2) Huffman JPEG.
_JPEG_VARIANTS: dict[int, str] = {
    0xC3: "lossless",
    0xC5: "hierarchical",
    0xC6: "hierarchical",
    0xC7: "hierarchical lossless",
    0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded",
    0xCB: "arithmetic-coded lossless",
    0xCD: "arithmetic-coded hierarchical",
    0xCE: "arithmetic-coded hierarchical",
    0xCF: "arithmetic-coded hierarchical",
    0xDE: "hierarchical",  # DHP
}


def _check_jpeg(data: bytes) -> None:
    """Walk the markers of the first picture (up to its EOI; an MPF preview or anything appended is not read)."""
    size = len(data)
    pos, markers, scans, stray = 2, 0, 0, 0
    while pos < size:
        if data[pos] != 0xFF:  # stray data between segments
            found = data.find(b"\xff", pos)
            if found < 0:
                return
            stray += found - pos
            pos = found
        fill = _FILL.match(data, pos)
        assert fill is not None
        stray += fill.end() - pos - 1
        pos = fill.end()  # on the marker's code
        if stray > MAX_JPEG_STRAY_BYTES:
            raise _too_complex(
                f"has more than {MAX_JPEG_STRAY_BYTES // 1024} KB of stray bytes between its parts"
            )
        if pos >= size:
            return
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI: the end of the first picture
            return
        if marker in (0x00, 0xD8):  # an escaped 0xFF or a repeated SOI outside any segment: stray
            stray += 2
            continue
        markers += 1
        if markers > MAX_JPEG_MARKERS:
            raise _too_complex(
                f"is a JPEG with more than {MAX_JPEG_MARKERS} markers (a photo has a few dozen)"
            )
        if marker in _STANDALONE:
            continue
        if pos + 2 > size:
            return
        end = pos + ((data[pos] << 8) | data[pos + 1])
        if end < pos + 2:  # a length below its own two bytes: corrupt, the decoder says so
            return
        if marker in _JPEG_VARIANTS:
            raise ImageRefused(
                "unsupported_format",
                f"This JPEG is {_JPEG_VARIANTS[marker]}, a rare kind of JPEG that cameras, phones and web "
                f"browsers do not use and that cannot be read reliably. {_SAVE_AGAIN}",
            )
        if marker == 0xDA:  # SOS: the scan's compressed data follows its header
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise _too_complex(
                    f"is a JPEG stored in more than {MAX_JPEG_SCANS} scans (a progressive photo has about 10)"
                )
            following = _AFTER_SCAN.search(data, end)
            if following is None:
                return
            end = following.start()
        pos = end


# ---- PNG ----------------------------------------------------------------------------------------------------------


def _check_png(data: bytes) -> None:
    size = len(data)
    pos, chunks = 8, 0
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _too_complex(
                f"is a PNG split into more than {MAX_PNG_CHUNKS} chunks (a photo has a few dozen)"
            )
        if kind == b"IEND":
            return
        if kind == b"iCCP":
            _check_icc(data[pos + 8 : pos + 8 + length])
        pos += 12 + length


def _check_icc(body: bytes) -> None:
    """An iCCP chunk's profile (name, NUL, method, zlib data) must decompress to at most ``MAX_ICC_BYTES``."""
    start = body.find(b"\x00") + 2
    if start < 2 or start > len(body):
        return
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(body[start:], MAX_ICC_BYTES + 1)
    except zlib.error:
        return  # a damaged profile is ignored by the decoder
    if len(profile) > MAX_ICC_BYTES:
        raise ImageRefused(
            "too_complex",
            f"The colour profile embedded in this PNG is larger than {MAX_ICC_BYTES // (1024 * 1024)} MB, far "
            "more than any real profile. Save the picture again with a standard colour profile such as sRGB and "
            "upload the new file.",
        )


# ---- TIFF ---------------------------------------------------------------------------------------------------------

_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_STRIPS, _TIFF_TILE_WIDTH, _TIFF_TILE_HEIGHT, _TIFF_TILES = (
    256,
    257,
    273,
    322,
    323,
    324,
)
_TIFF_INTEGER = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8


def _check_tiff(data: bytes) -> None:
    """The first directory (the picture the decoder reads): its strip or tile count and its tile size."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            (offset,) = struct.unpack_from(order + "Q", data, 8)
            (count,) = struct.unpack_from(order + "Q", data, offset)
            first, step, layout = offset + 8, 20, order + "HHQ8s"
        else:
            (offset,) = struct.unpack_from(order + "I", data, 4)
            (count,) = struct.unpack_from(order + "H", data, offset)
            first, step, layout = offset + 2, 12, order + "HHI4s"
    except struct.error:
        return
    values: dict[int, int] = {}
    counts: dict[int, int] = {}
    for index in range(min(count, (len(data) - first) // step)):
        tag, kind, number, raw = struct.unpack_from(layout, data, first + index * step)
        counts[tag] = number
        code = _TIFF_INTEGER.get(kind)
        if number == 1 and code is not None and struct.calcsize(code) <= len(raw):
            (values[tag],) = struct.unpack_from(order + code, raw)
    blocks = max(counts.get(_TIFF_STRIPS, 0), counts.get(_TIFF_TILES, 0))
    if blocks > MAX_TIFF_BLOCKS:
        raise _too_complex(
            f"is a TIFF split into {blocks} strips or tiles (a photo has at most a few thousand)"
        )
    width, height = values.get(_TIFF_WIDTH, 0), values.get(_TIFF_HEIGHT, 0)
    tile_width, tile_height = values.get(_TIFF_TILE_WIDTH, 0), values.get(_TIFF_TILE_HEIGHT, 0)
    if tile_width * tile_height > max(2 * width * height, MIN_TIFF_TILE_ALLOWANCE):
        raise _too_complex(
            f"is a TIFF that declares tiles of {tile_width}x{tile_height} pixels for a {width}x{height} picture"
        )


# ---- AVIF, HEIC/HEIF (ISO base media file format) -----------------------------------------------------------------

_BMFF_CONTAINERS = {
    b"meta": 4,
    b"iprp": 0,
    b"ipco": 0,
}  # box type: bytes of version/flags before its children


def _check_bmff(data: bytes, max_pixels: int) -> None:
    """The largest size an ``ispe`` property declares (the primary picture, its grid or an auxiliary one) against
    the pixel budget: the decoders refuse such a size with an error that reads like corruption."""
    largest: tuple[int, int, int] | None = None
    boxes = 0
    pending = [(0, len(data), True)]  # (start, end, top level)
    while pending:
        pos, end, top = pending.pop()
        while pos + 8 <= end and boxes < MAX_BMFF_BOXES:
            boxes += 1
            size, kind = struct.unpack_from(">I4s", data, pos)
            header = 8
            if size == 1 and pos + 16 <= end:
                (size,) = struct.unpack_from(">Q", data, pos + 8)
                header = 16
            elif size == 0:
                size = end - pos
            if size < header:
                break
            box_end = min(pos + size, end)
            if kind in _BMFF_CONTAINERS and (kind != b"meta" or top):
                pending.append((pos + header + _BMFF_CONTAINERS[kind], box_end, False))
            elif kind == b"ispe" and pos + header + 12 <= box_end:
                width, height = struct.unpack_from(">II", data, pos + header + 4)
                if largest is None or width * height > largest[0]:
                    largest = (width * height, width, height)
            pos += size
    if largest is not None and largest[0] > max_pixels:
        area, width, height = largest
        raise ImageRefused(
            "too_many_pixels",
            f"The image is {width}x{height} pixels ({area / 1e6:.0f} megapixels); the limit is "
            f"{max_pixels / 1e6:.0f} megapixels. Resize it and upload it again.",
        )
