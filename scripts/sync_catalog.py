"""Copy the pose and background library manifests from the inference container's assets into the API's catalog
(``functions/common/catalog/``), so the API Lambda serves exactly what the engine can render.

``python scripts/sync_catalog.py`` writes them; ``--check`` exits 1 when the copies are stale (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "poses": ROOT / "inference_container" / "assets" / "poses" / "manifest.json",
    "backgrounds": ROOT / "inference_container" / "assets" / "backgrounds" / "manifest.json",
}
TARGET = ROOT / "functions" / "common" / "catalog"
PUBLIC = {
    "poses": ("id", "version", "name", "description", "view", "framing", "tags", "width", "height", "sha256"),
    "backgrounds": ("id", "version", "name", "description", "tags", "width", "height", "sha256"),
}


def render(kind: str) -> str:
    manifest = json.loads(SOURCES[kind].read_text(encoding="utf-8"))
    items = [{k: item[k] for k in PUBLIC[kind] if k in item} for item in manifest[kind]]
    catalog = {"version": manifest["version"], "default": manifest.get("default"), kind: items}
    return json.dumps(catalog, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for kind in SOURCES:
        path = TARGET / f"{kind}.json"
        text = render(kind)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale catalog copies (run scripts/sync_catalog.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
