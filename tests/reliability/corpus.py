"""A deterministic corpus of bad (and awkward but valid) uploads, generated in code: nothing is downloaded.

Each ``Case`` is what a customer (or an attacker) might send: a name, the file name and content type declared to
the API, the bytes, and what must happen to the job: ``rejected`` with an exact error code (costing nothing), or
``succeeded`` with exactly one charge. ``forbidden`` lists byte strings that must not survive into the result
image (a polyglot's payload, a script in metadata: results are re-encoded and their metadata stripped).

``bad_input_corpus()`` builds the whole list (about 1 s); every case is the same bytes on every run.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from typing import Literal

import pillow_heif
from PIL import Image

from bench.load import garment_image
from tests import hostile_images as hostile
from tests.image_support import ADOBE_RGB_D50, make_icc_profile

pillow_heif.register_heif_opener()

Outcome = Literal["rejected", "succeeded"]

ZIP_MARKER = b"POLYGLOT-ZIP-PAYLOAD-7f3a"
SCRIPT_MARKER = b"<script>alert('polyglot-7f3a')</script>"
COMMENT_MARKER = b"<html><body onload=alert('jpeg-comment-7f3a')>"
EXIF_MARKER = b"javascript:alert('exif-7f3a')"


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    content_type: str
    data: bytes
    expect: Outcome
    code: str | None = None  # the job's error code when rejected
    forbidden: tuple[bytes, ...] = ()  # must not appear in the result image's bytes

    def __post_init__(self) -> None:
        if (self.expect == "rejected") != (self.code is not None):
            raise ValueError(f"{self.name}: a rejected case needs a code, a succeeded one none")


# ---- building blocks ---------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png_file(
    width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes, level: int = 9
) -> bytes:
    """A PNG written by hand: IHDR, one IDAT of ``raw_rows`` (filter bytes included), IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw_rows, level))
        + png_chunk(b"IEND", b"")
    )


def png_chunks(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(offset, type, body) of each chunk of a PNG."""
    out, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        out.append((offset, kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return out


@cache
def bomb_png(side: int) -> bytes:
    """A one-colour 1-bit PNG of side x side pixels: a few KB on disk, ``side²`` pixels when decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def png_declaring(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR (CRC fixed up) claims ``width`` x ``height``."""
    data = encode(garment_image((96, 96)), "PNG")
    ihdr = struct.pack(">II", width, height) + data[24:29]
    return data[:8] + png_chunk(b"IHDR", ihdr) + data[33:]


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF0 frame header claims ``width`` x ``height``."""
    data = bytearray(encode(garment_image((96, 96)), "JPEG", quality=85))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def with_text_chunk(png: bytes, keyword: bytes, text: bytes) -> bytes:
    """``png`` with a tEXt chunk inserted right after IHDR."""
    return png[:33] + png_chunk(b"tEXt", keyword + b"\x00" + text) + png[33:]


def corrupt_idat(png: bytes) -> bytes:
    """Flip bytes in the middle of the first IDAT: its CRC no longer matches and the zlib stream is damaged."""
    data = bytearray(png)
    offset, _, body = next(c for c in png_chunks(png) if c[1] == b"IDAT")
    start = offset + 8 + len(body) // 2
    for i in range(start, start + 16):
        data[i] ^= 0xFF
    return bytes(data)


def garbage_jpeg_scan(jpeg: bytes) -> bytes:
    """The scan data after SOS replaced by a run of 0xFF fill bytes and bogus RST/SOF markers."""
    sos = jpeg.index(b"\xff\xda")
    (length,) = struct.unpack(">H", jpeg[sos + 2 : sos + 4])
    scan = sos + 2 + length
    junk = (b"\xff\xd0\xff\xc0\x00\x02" * 64)[: len(jpeg) - scan - 2]
    return jpeg[:scan] + junk + b"\xff\xd9"


def rgb16_png(width: int = 320, height: int = 400) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one): a garment-like gradient drawn row by row."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            inside = 0.25 * width < x < 0.75 * width and 0.2 * height < y < 0.85 * height
            r, g, b = (8000, 16000, 40000) if inside else (55000, 55500, 56000)
            row += struct.pack(">HHH", r + 7 * x, g + 5 * y, b)
        rows.append(bytes(row))
    return png_file(width, height, 16, 2, b"".join(rows), level=6)


def minimal_pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


def zip_archive(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), content)
    return buffer.getvalue()


def elf_header() -> bytes:
    """The start of a 64-bit little-endian x86-64 ELF executable."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    rest = struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x401000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    return ident + rest + b"\x90" * 448


def gif_js_polyglot() -> bytes:
    """A GIF that is also JavaScript: the logical screen width is ``/*`` (a comment opener) and the script
    follows the trailer (``GIF89a/*...*/=1;alert(...)``)."""
    gif = bytearray(encode(Image.new("P", (96, 96), 1), "GIF"))
    gif[6:8] = b"/*"  # width 10799: the header reads as GIF89a/*
    return bytes(gif) + b"*/=1;alert('gif-js-7f3a');"


def jpeg_with_comment(jpeg: bytes, comment: bytes) -> bytes:
    """A COM segment right after SOI."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def exif_bytes(orientation: int | None = None, description: bytes | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if description is not None:
        exif[0x010E] = description.decode()
    return exif.tobytes()


def cut(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


# ---- the corpus ----------------------------------------------------------------------------------------------------


def bad_input_corpus() -> list[Case]:
    rng = random.Random(9)
    photo = garment_image((360, 450))
    jpeg = encode(photo, "JPEG", quality=90)
    png = encode(photo, "PNG")
    webp = encode(photo, "WEBP", quality=85)
    big_jpeg = encode(garment_image((1200, 1500)), "JPEG", quality=92)
    cases: list[Case] = []

    def reject(name: str, filename: str, content_type: str, data: bytes, code: str) -> None:
        cases.append(Case(name, filename, content_type, data, "rejected", code))

    def accept(
        name: str, filename: str, content_type: str, data: bytes, forbidden: tuple[bytes, ...] = ()
    ) -> None:
        cases.append(Case(name, filename, content_type, data, "succeeded", None, forbidden))

    # -- not images at all, named and declared as images
    reject(
        "text as .png",
        "notes.png",
        "image/png",
        b"meeting notes: ship the autumn range on Monday\n" * 20,
        "not_an_image",
    )
    reject(
        "html as .jpg",
        "page.jpg",
        "image/jpeg",
        b"<!DOCTYPE html><html><head><title>x</title></head><body>" + SCRIPT_MARKER + b"</body></html>",
        "not_an_image",
    )
    reject(
        "svg as .png",
        "vector.png",
        "image/png",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800"><rect width="800" height="800"/>'
        b"<script>alert(1)</script></svg>",
        "not_an_image",
    )
    reject(
        "xml-declared svg as .webp",
        "vector.webp",
        "image/webp",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        "not_an_image",
    )
    reject("pdf as .jpg", "catalogue.jpg", "image/jpeg", minimal_pdf(), "not_an_image")
    reject("zip as .png", "photos.png", "image/png", zip_archive("a.txt", b"hello" * 100), "not_an_image")
    reject("elf as .jpg", "run.jpg", "image/jpeg", elf_header(), "not_an_image")
    reject("json as .png", "data.png", "image/png", b'{"image": "no", "pixels": [1, 2, 3]}', "not_an_image")
    reject("random bytes as .jpg", "noise.jpg", "image/jpeg", rng.randbytes(4096), "not_an_image")
    reject("png magic only", "magic.png", "image/png", b"\x89PNG\r\n\x1a\n", "truncated_image")
    reject("jpeg magic only", "magic.jpg", "image/jpeg", b"\xff\xd8\xff", "truncated_image")

    # -- truncated at several cut points
    for fraction in (0.1, 0.5, 0.9, 0.99):
        reject(
            f"jpeg cut at {fraction:.0%}",
            f"cut{int(fraction * 100)}.jpg",
            "image/jpeg",
            cut(big_jpeg, fraction),
            "truncated_image",
        )
    reject("jpeg without its EOI", "noeoi.jpg", "image/jpeg", big_jpeg[:-2] + b"", "truncated_image")
    reject("png cut after IHDR", "ihdr.png", "image/png", png[:33], "truncated_image")
    for fraction in (0.5, 0.95):
        reject(
            f"png cut at {fraction:.0%}",
            f"cut{int(fraction * 100)}.png",
            "image/png",
            cut(png, fraction),
            "truncated_image",
        )
    for fraction in (0.3, 0.9):
        reject(
            f"webp cut at {fraction:.0%}",
            f"cut{int(fraction * 100)}.webp",
            "image/webp",
            cut(webp, fraction),
            "truncated_image",
        )

    # -- corrupt data
    reject("png with a damaged IDAT", "crc.png", "image/png", corrupt_idat(png), "truncated_image")
    reject(
        "jpeg with a garbage scan", "scan.jpg", "image/jpeg", garbage_jpeg_scan(big_jpeg), "truncated_image"
    )

    # -- decompression bombs and huge declared dimensions (refused from the header, before any decoding)
    reject("png bomb 20000x20000 one colour", "bomb.png", "image/png", bomb_png(20_000), "too_many_pixels")
    reject(
        "png bomb 9000x9000 (between 1x and 2x Pillow's limit)",
        "bomb9k.png",
        "image/png",
        bomb_png(9_000),
        "too_many_pixels",
    )
    reject(
        "png 7100x7100 just over the pixel budget",
        "bomb7k.png",
        "image/png",
        bomb_png(7_100),
        "too_many_pixels",
    )
    reject(
        "png header claiming 65000x65000",
        "huge.png",
        "image/png",
        png_declaring(65_000, 65_000),
        "too_many_pixels",
    )
    reject(
        "jpeg header claiming 65000x65000",
        "huge.jpg",
        "image/jpeg",
        jpeg_declaring(65_000, 65_000),
        "too_many_pixels",
    )

    # -- too small
    reject("png 1x1", "dot.png", "image/png", encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "too_small")
    reject("jpeg 63x63", "small.jpg", "image/jpeg", encode(garment_image((63, 63)), "JPEG"), "too_small")
    reject(
        "png 2000x40 strip", "strip.png", "image/png", encode(garment_image((2000, 40)), "PNG"), "too_small"
    )

    # -- formats Pillow identifies but the pipeline does not take
    small = garment_image((120, 150))
    for fmt, ext in (
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("ICO", "ico"),
        ("TGA", "tga"),
        ("PCX", "pcx"),
        ("JPEG2000", "jp2"),
        ("PPM", "ppm"),
        ("QOI", "qoi"),
        ("SGI", "sgi"),
        ("DDS", "dds"),
    ):
        reject(f"{fmt} named .{ext}", f"photo.{ext}", "image/png", encode(small, fmt), "unsupported_format")
    reject("GIF named .jpg", "animated.jpg", "image/jpeg", encode(small, "GIF"), "unsupported_format")
    reject("gif-js polyglot", "polyglot.gif.png", "image/png", gif_js_polyglot(), "unsupported_format")

    # -- polyglots that are valid images: processed, and nothing of the payload survives
    accept(
        "jpeg with a zip appended",
        "jpgzip.jpg",
        "image/jpeg",
        jpeg + zip_archive("payload.txt", ZIP_MARKER * 8),
        (ZIP_MARKER, b"PK\x03\x04"),
    )
    accept(
        "png with a script in tEXt",
        "script.png",
        "image/png",
        with_text_chunk(png, b"Comment", SCRIPT_MARKER),
        (SCRIPT_MARKER, b"<script"),
    )
    accept(
        "jpeg with html in a COM segment",
        "comment.jpg",
        "image/jpeg",
        jpeg_with_comment(jpeg, COMMENT_MARKER),
        (COMMENT_MARKER,),
    )
    accept(
        "jpeg with a script in EXIF",
        "exifscript.jpg",
        "image/jpeg",
        encode(photo, "JPEG", quality=90, exif=exif_bytes(description=EXIF_MARKER)),
        (EXIF_MARKER,),
    )

    # -- accepted but awkward: must succeed, charged once
    accept("cmyk jpeg", "cmyk.jpg", "image/jpeg", encode(photo.convert("CMYK"), "JPEG", quality=90))
    accept("16-bit rgb png", "rgb16.png", "image/png", rgb16_png())
    accept(
        "16-bit grey png",
        "grey16.png",
        "image/png",
        encode(photo.convert("L").point(lambda v: v * 256, "I").convert("I;16"), "PNG"),
    )
    accept("rgba png", "rgba.png", "image/png", encode(photo.convert("RGBA"), "PNG"))
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    accept(
        "palette png with transparency",
        "palette.png",
        "image/png",
        encode(palette, "PNG", transparency=palette.getpixel((0, 0))),
    )
    accept("greyscale jpeg", "grey.jpg", "image/jpeg", encode(photo.convert("L"), "JPEG", quality=90))
    accept(
        "exif orientation 6 jpeg",
        "rotated.jpg",
        "image/jpeg",
        encode(photo.rotate(90, expand=True), "JPEG", quality=90, exif=exif_bytes(orientation=6)),
    )
    accept(
        "adobe rgb icc jpeg",
        "adobergb.jpg",
        "image/jpeg",
        encode(
            photo,
            "JPEG",
            quality=90,
            icc_profile=make_icc_profile(2.2, "Adobe RGB compatible (test)", ADOBE_RGB_D50),
        ),
    )
    accept("tiff", "scan.tiff", "image/tiff", encode(photo, "TIFF", compression="tiff_lzw"))
    accept(
        "webp with alpha", "alpha.webp", "image/webp", encode(photo.convert("RGBA"), "WEBP", lossless=True)
    )
    accept("heic", "phone.heic", "image/heic", encode(photo, "HEIF", quality=80))
    accept("avif", "phone.avif", "image/avif", encode(photo, "AVIF", quality=70))
    accept("smallest accepted 64x64", "tiny64.png", "image/png", encode(garment_image((64, 64)), "PNG"))

    # -- issue 15, items 12-15 (tests/hostile_images.py): camera JPEGs, decoding work bounded by what the file
    # declares, JPEG variants and float data that decode to nonsense, codes and messages
    accept("camera jpeg with an mpf preview (MPO)", "DSC01234.JPG", "image/jpeg", hostile.camera_mpo(photo))
    reject(
        "progressive jpeg repeating its last scan 3000 times",
        "scans.jpg",
        "image/jpeg",
        hostile.repeated_scan_jpeg(small, 3000),
        "too_complex",
    )
    reject(
        "jpeg with 5000 empty markers",
        "markers.jpg",
        "image/jpeg",
        hostile.empty_markers_jpeg(jpeg, 5000),
        "too_complex",
    )
    reject(
        "png of 60000 empty chunks",
        "chunks.png",
        "image/png",
        hostile.many_chunks_png(png, 60_000),
        "too_complex",
    )
    reject(
        "tiff declaring one 23168x23168 tile for 1000x1000",
        "tile.tiff",
        "image/tiff",
        hostile.tiff_with_tile(1000, 1000, 23168),
        "too_complex",
    )
    reject(
        "jpeg claiming arithmetic coding (SOF9) over baseline data",
        "sof9.jpg",
        "image/jpeg",
        hostile.arithmetic_sof_jpeg(jpeg),
        "unsupported_format",
    )
    reject(
        "float tiff with nan and inf stripes",
        "stripes.tiff",
        "image/tiff",
        hostile.float_tiff(hostile.with_nan_stripes(hostile.float_garment(photo))),
        "truncated_image",
    )
    reject(
        "avif declaring 65000x65000",
        "huge.avif",
        "image/avif",
        hostile.avif_declaring(encode(photo, "AVIF", quality=70), 65_000, 65_000),
        "too_many_pixels",
    )
    reject(
        "photo of 64x20000",
        "strip64.png",
        "image/png",
        encode(garment_image((64, 20_000)), "PNG"),
        "extreme_aspect_ratio",
    )
    accept(
        "png with a 1.2 MB colour profile",
        "bigicc.png",
        "image/png",
        hostile.png_with_icc(photo, hostile.large_icc_profile(1_200_000)),
    )
    # their results are checked pixel by pixel in test_bad_input.test_awkward_photos_come_out_right
    accept("cmyk jpeg without adobe marker", "plaincmyk.jpg", "image/jpeg", hostile.plain_cmyk_jpeg(photo))
    accept(
        "float tiff with one +inf pixel",
        "oneinf.tiff",
        "image/tiff",
        hostile.float_tiff(hostile.with_one_inf(hostile.float_garment(photo))),
    )
    return cases
