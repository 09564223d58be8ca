"""Draw the background library shipped in ``inference_container/assets/backgrounds/`` (deterministic).

Each background is generated procedurally (studio sweeps, a soft vignette, paper and linen textures), written as
a JPEG, and listed in ``manifest.json`` with its id, version, name, size and SHA-256. The engine refuses a file
whose hash does not match the manifest. Bump an entry's ``version`` when its drawing changes.

    python scripts/make_backgrounds.py            # (re)write the files and the manifest
    python scripts/make_backgrounds.py --check    # the files match the manifest and what the generator draws
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OUT_DIR = Path(__file__).resolve().parent.parent / "inference_container" / "assets" / "backgrounds"
SIZE = 1600  # px, square; the engine scales and crops ("cover") to the preset's canvas
JPEG_QUALITY = 92
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Background:
    id: str
    version: int
    name: str
    description: str
    tags: tuple[str, ...]
    draw: Callable[[np.random.Generator, int], np.ndarray]  # → (size, size, 3) float32 0..255


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return (xx + 0.5) / size * 2 - 1, (yy + 0.5) / size * 2 - 1


def _noise(rng: np.random.Generator, size: int, sigma: float, amount: float) -> np.ndarray:
    n = rng.standard_normal((size, size)).astype(np.float32)
    if sigma > 0:
        blurred = np.asarray(cv2.GaussianBlur(n, (0, 0), sigma), np.float32)
        n = blurred / (float(blurred.std()) + 1e-6)
    return n * amount


def _rgb(lum: np.ndarray, tint: tuple[float, float, float]) -> np.ndarray:
    return lum[..., None] * (np.asarray(tint, np.float32)[None, None, :] / 255.0)


def draw_studio_white(rng: np.random.Generator, size: int) -> np.ndarray:
    xn, yn = _grid(size)
    lum = 252.0 - 7.0 * (xn**2 + (yn * 0.8) ** 2) / 2 - 3.0 * (yn + 1) / 2
    return _rgb(lum + _noise(rng, size, 0, 0.6), (255, 255, 255))


def draw_studio_grey(rng: np.random.Generator, size: int) -> np.ndarray:
    """A paper sweep: lighter behind the subject, the floor a little darker, soft fall-off to the corners."""
    xn, yn = _grid(size)
    lum = 238.0 - 16.0 * (yn + 1) / 2 - 10.0 * (xn**2 + yn**2) / 2
    lum += 4.0 * np.exp(-((xn / 0.55) ** 2 + ((yn + 0.15) / 0.6) ** 2))
    return _rgb(lum + _noise(rng, size, 0, 0.6), (253, 253, 255))


def draw_studio_charcoal(rng: np.random.Generator, size: int) -> np.ndarray:
    xn, yn = _grid(size)
    lum = 70.0 + 26.0 * np.exp(-((xn / 0.6) ** 2 + ((yn + 0.1) / 0.7) ** 2)) - 10.0 * (yn + 1) / 2
    return _rgb(lum + _noise(rng, size, 0, 0.7), (250, 252, 255))


def draw_vignette_soft(rng: np.random.Generator, size: int) -> np.ndarray:
    xn, yn = _grid(size)
    r2 = xn**2 + yn**2
    lum = 250.0 - 34.0 * np.clip(r2 - 0.35, 0.0, None) ** 1.3
    return _rgb(lum + _noise(rng, size, 0, 0.6), (255, 254, 252))


def draw_sweep_warm(rng: np.random.Generator, size: int) -> np.ndarray:
    xn, yn = _grid(size)
    lum = 240.0 - 14.0 * (yn + 1) / 2 - 8.0 * (xn**2 + yn**2) / 2
    return _rgb(lum + _noise(rng, size, 0, 0.6), (255, 246, 232))


def draw_paper(rng: np.random.Generator, size: int) -> np.ndarray:
    """Off-white paper: fibres (anisotropic noise), a faint mottling, a light vignette."""
    xn, yn = _grid(size)
    blurred = np.asarray(cv2.GaussianBlur(_noise(rng, size, 0.0, 1.0), (0, 0), sigmaX=3.0, sigmaY=0.7))
    fibres = blurred / (float(blurred.std()) + 1e-6)
    mottle = _noise(rng, size, 40.0, 1.0)
    lum = 243.0 + 1.6 * fibres + 2.0 * mottle - 9.0 * (xn**2 + yn**2) / 2 + _noise(rng, size, 0.6, 1.0)
    return _rgb(lum, (255, 250, 240))


def draw_linen(rng: np.random.Generator, size: int) -> np.ndarray:
    """Light linen: a fine woven grid with irregular threads."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = _noise(rng, size, 0.0, 1.0)
    warp_threads = cv2.GaussianBlur(warp, (0, 0), sigmaX=0.6, sigmaY=12.0)
    weft_threads = cv2.GaussianBlur(_noise(rng, size, 0.0, 1.0), (0, 0), sigmaX=12.0, sigmaY=0.6)
    weave = np.sin(xx * np.pi / 2.5) * np.sin(yy * np.pi / 2.5)
    xn, yn = _grid(size)
    lum = 232.0 + 2.0 * weave + 14.0 * warp_threads + 14.0 * weft_threads - 10.0 * (xn**2 + yn**2) / 2
    return _rgb(lum + _noise(rng, size, 30.0, 1.5), (255, 248, 236))


def draw_sage_gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted sage-green studio gradient, lighter towards the top."""
    _, yn = _grid(size)
    lum = 226.0 - 22.0 * (yn + 1) / 2 + _noise(rng, size, 0, 0.6)
    return _rgb(lum, (214, 232, 214))


def draw_concrete(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pale polished concrete: broad mottling and fine grain."""
    xn, yn = _grid(size)
    lum = 205.0 + 6.0 * _noise(rng, size, 60.0, 1.0) + 2.5 * _noise(rng, size, 6.0, 1.0)
    lum = lum - 10.0 * (xn**2 + yn**2) / 2 + _noise(rng, size, 0.6, 1.2)
    return _rgb(lum, (246, 246, 250))


BACKGROUNDS: tuple[Background, ...] = (
    Background(
        "studio-white",
        1,
        "Studio white",
        "Near-white seamless with a faint fall-off",
        ("light", "plain"),
        draw_studio_white,
    ),
    Background(
        "studio-grey",
        1,
        "Studio grey sweep",
        "Light-grey paper sweep, lighter behind the subject",
        ("light", "plain"),
        draw_studio_grey,
    ),
    Background(
        "studio-charcoal",
        1,
        "Studio charcoal",
        "Dark charcoal backdrop with a soft spotlight",
        ("dark", "plain"),
        draw_studio_charcoal,
    ),
    Background(
        "vignette-soft",
        1,
        "Soft vignette",
        "White centre fading to a soft grey at the corners",
        ("light", "plain"),
        draw_vignette_soft,
    ),
    Background("sweep-warm", 1, "Warm sweep", "Warm off-white sweep", ("light", "warm"), draw_sweep_warm),
    Background("paper", 1, "Paper", "Off-white paper texture with fibres", ("light", "texture"), draw_paper),
    Background("linen", 1, "Linen", "Light natural linen weave", ("light", "texture"), draw_linen),
    Background(
        "sage-gradient",
        1,
        "Sage gradient",
        "Muted sage-green gradient",
        ("colour", "plain"),
        draw_sage_gradient,
    ),
    Background("concrete", 1, "Concrete", "Pale polished concrete", ("light", "texture"), draw_concrete),
)


def render(bg: Background, size: int = SIZE) -> bytes:
    rng = np.random.default_rng([*bg.id.encode(), bg.version])
    rgb = np.clip(bg.draw(rng, size) + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True, subsampling=0)
    return buf.getvalue()


def manifest_entry(bg: Background, data: bytes) -> dict[str, object]:
    return {
        "id": bg.id,
        "version": bg.version,
        "name": bg.name,
        "description": bg.description,
        "tags": list(bg.tags),
        "file": f"{bg.id}.jpg",
        "content_type": "image/jpeg",
        "width": SIZE,
        "height": SIZE,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.check:
        problems = []
        manifest = json.loads((out / "manifest.json").read_text())
        listed = {e["id"]: e for e in manifest["backgrounds"]}
        if sorted(listed) != sorted(b.id for b in BACKGROUNDS):
            problems.append("the manifest does not list exactly the generator's backgrounds")
        for bg in BACKGROUNDS:
            entry = listed.get(bg.id)
            path = out / f"{bg.id}.jpg"
            if entry is None or not path.exists():
                problems.append(f"{bg.id}: missing")
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"] or entry["version"] != bg.version:
                problems.append(f"{bg.id}: file or version does not match the manifest")
            # JPEG encoders may differ by a unit here and there between library versions: compare pixels.
            if np.abs(_pixels(data) - _pixels(render(bg))).max() > 3:
                problems.append(f"{bg.id}: the generator draws something else now (bump its version)")
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for bg in BACKGROUNDS:
        data = render(bg)
        (out / f"{bg.id}.jpg").write_bytes(data)
        entries.append(manifest_entry(bg, data))
        print(f"{bg.id}.jpg  {len(data) / 1024:.0f} KiB")
    manifest = {
        "version": MANIFEST_VERSION,
        "generated_by": "scripts/make_backgrounds.py",
        "backgrounds": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
