"""Image fixtures shared by test packages: ICC profiles built byte by byte (no profile files are shipped)."""

from __future__ import annotations

import struct

XYZ = tuple[float, float, float]
# Red, green and blue colorants, D50-adapted (as ICC v2 matrix/TRC profiles store them).
SRGB_D50: tuple[XYZ, XYZ, XYZ] = (
    (0.4361, 0.2225, 0.0139),
    (0.3851, 0.7169, 0.0971),
    (0.1431, 0.0606, 0.7141),
)
ADOBE_RGB_D50: tuple[XYZ, XYZ, XYZ] = (
    (0.6097, 0.3111, 0.0195),
    (0.2053, 0.6257, 0.0609),
    (0.1492, 0.0632, 0.7446),
)


def make_icc_profile(
    gamma: float = 1.0,
    description: str = "Linear RGB (test)",
    primaries: tuple[XYZ, XYZ, XYZ] = SRGB_D50,
) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile: the given primaries (default sRGB's) with a pure
    power-law curve."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    def curve(g: float) -> bytes:
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(g * 256)) + b"\0\0"

    def desc(text: str) -> bytes:
        raw = text.encode("ascii") + b"\0"
        return (
            b"desc\0\0\0\0"
            + struct.pack(">I", len(raw))
            + raw
            + struct.pack(">IIHB", 0, 0, 0, 0)
            + b"\0" * 67
        )

    def text(value: str) -> bytes:
        return b"text\0\0\0\0" + value.encode("ascii") + b"\0"

    tags = [
        (b"desc", desc(description)),
        (b"cprt", text("No copyright, test data")),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(*primaries[0])),
        (b"gXYZ", xyz(*primaries[1])),
        (b"bXYZ", xyz(*primaries[2])),
        (b"rTRC", curve(gamma)),
        (b"gTRC", curve(gamma)),
        (b"bTRC", curve(gamma)),
    ]
    table = b""
    data = b""
    offset = 128 + 4 + 12 * len(tags)
    for sig, payload in tags:
        padded = payload + b"\0" * (-len(payload) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(payload))
        data += padded
    body = struct.pack(">I", len(tags)) + table + data
    size = 128 + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + b"\0" * 4  # flags
        + b"\0" * 8  # manufacturer, model
        + b"\0" * 8  # attributes
        + struct.pack(">I", 0)  # rendering intent
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 4  # creator
        + b"\0" * 16  # profile id
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + body
