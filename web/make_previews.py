"""Small previews of the background library for the process page, in ``web/app/img/backgrounds/<id>.webp``
(committed, like the icons). The catalog API names the backgrounds but carries no image; these are the library's own
files (``inference_container/assets/backgrounds/``, drawn by ``scripts/make_backgrounds.py``) scaled down, so the
customer sees what they choose. Regenerate when the library changes:

    .venv/bin/python web/make_previews.py            # (re)write the previews
    .venv/bin/python web/make_previews.py --check    # every library background has its preview, and no other

Needs only Pillow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "inference_container" / "assets" / "backgrounds"
OUT = Path(__file__).resolve().parent / "app" / "img" / "backgrounds"
SIZE = 128  # px, square; shown at 64 CSS px (sharp on 2x screens)


def library() -> list[dict[str, str]]:
    return list(json.loads((LIBRARY / "manifest.json").read_text(encoding="utf-8"))["backgrounds"])


def write() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for entry in library():
        with Image.open(LIBRARY / entry["file"]) as image:
            small = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        target = OUT / f"{entry['id']}.webp"
        small.save(target, format="WEBP", quality=80, method=6)
        wanted.add(target.name)
    for stale in OUT.glob("*.webp"):
        if stale.name not in wanted:
            stale.unlink()


def check() -> list[str]:
    ids = {entry["id"] for entry in library()}
    have = {p.stem for p in OUT.glob("*.webp")}
    return [f"no preview for {i}" for i in sorted(ids - have)] + [
        f"stale preview {i}" for i in sorted(have - ids)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    if parser.parse_args().check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
