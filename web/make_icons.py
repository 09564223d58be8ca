"""Draw the PWA icons (a white coat hanger on navy) into ``web/app/icons``; the PNGs are committed.

Run from the repository root: ``.venv/bin/python web/make_icons.py``. Needs only Pillow. Shapes are drawn at four
times the size and scaled down for smooth edges. The maskable icon fills the whole square and keeps the drawing
inside the central safe zone (a circle of 40 % radius), as the platform may crop it to a circle or squircle.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent / "app" / "icons"
NAVY = (20, 33, 61, 255)  # #14213d, the manifest's theme colour
WHITE = (255, 255, 255, 255)
SUPERSAMPLE = 4


def draw_hanger(draw: ImageDraw.ImageDraw, size: int, scale: float) -> None:
    """A coat hanger centred in a ``size`` square, ``scale`` = its width as a fraction of the square."""

    def p(x: float, y: float) -> tuple[float, float]:  # unit coordinates, (0.5, 0.5) is the centre
        return (size * (0.5 + (x - 0.5) * scale), size * (0.5 + (y - 0.5) * scale))

    width = 0.065  # stroke, in unit coordinates
    stroke = max(1, round(size * scale * width))
    # hook: three quarters of a circle, open at the lower left, its lower end joining the neck
    cx, cy, radius = 0.50, 0.22, 0.10
    draw.arc(
        (*p(cx - radius, cy - radius), *p(cx + radius, cy + radius)),
        start=200,
        end=90,
        fill=WHITE,
        width=stroke,
    )
    mid = radius - width / 2  # the arc's centre line (Pillow draws its width inwards)
    neck_top = p(cx, cy + mid)
    hook_end = p(cx + mid * math.cos(math.radians(200)), cy + mid * math.sin(math.radians(200)))
    # shoulders and bar
    apex, left, right = p(0.50, 0.42), p(0.06, 0.82), p(0.94, 0.82)
    draw.line([neck_top, apex], fill=WHITE, width=stroke)
    draw.line([apex, left], fill=WHITE, width=stroke, joint="curve")
    draw.line([apex, right], fill=WHITE, width=stroke, joint="curve")
    draw.line([left, right], fill=WHITE, width=stroke)
    r = stroke / 2
    for x, y in (left, right, apex, neck_top, hook_end):  # round caps and joints
        draw.ellipse((x - r, y - r, x + r, y + r), fill=WHITE)


def icon(size: int, *, maskable: bool) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if maskable:
        draw.rectangle((0, 0, big, big), fill=NAVY)
        draw_hanger(draw, big, scale=0.58)
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=round(big * 0.22), fill=NAVY)
        draw_hanger(draw, big, scale=0.74)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    targets = {
        "icon-192.png": icon(192, maskable=False),
        "icon-512.png": icon(512, maskable=False),
        "icon-maskable-512.png": icon(512, maskable=True),
    }
    for name, image in targets.items():
        image.save(OUT / name, optimize=True)
        print(OUT / name)


if __name__ == "__main__":
    main()
