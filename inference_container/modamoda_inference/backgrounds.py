"""The background library: versioned images under ``assets/backgrounds/`` listed in ``manifest.json``.

The assets are drawn by ``scripts/make_backgrounds.py``. A request names one as ``"background":
"library:<id>"``; the image is scaled and centre-cropped to cover the preset's canvas. Every file's SHA-256 is
checked against the manifest the first time it is read. :func:`manifest` returns the manifest as a
JSON-serialisable dict, for the API to serve.

``MODAMODA_ASSETS_DIR`` overrides where the assets are (default: ``assets/`` beside the package, which is
``/opt/program/assets`` in the container).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from modamoda_inference.assets import assets_dir, read_manifest
from modamoda_inference.errors import EngineUnavailable, InvalidRequest

_CACHE_ENTRIES = 6  # rendered canvases kept (a 2048 px canvas is 12 MiB)


def _library_dir() -> Path:
    return assets_dir() / "backgrounds"


def _load_manifest(path: str) -> dict[str, Any]:
    return read_manifest(path, "background", "backgrounds")


def manifest() -> dict[str, Any]:
    """The library's manifest: ``{"version", "backgrounds": [{"id", "version", "name", "width", "height",
    "sha256", ...}]}``."""
    return _load_manifest(str(_library_dir() / "manifest.json"))


def library_ids() -> list[str]:
    return [str(entry["id"]) for entry in manifest()["backgrounds"]]


def _entry(background_id: str) -> dict[str, Any]:
    for entry in manifest()["backgrounds"]:
        if entry.get("id") == background_id:
            return dict(entry)
    known = ", ".join(library_ids())
    raise InvalidRequest(f"unknown background library id {background_id!r}; known: {known}")


@lru_cache(maxsize=16)
def _source(background_id: str, path: str, sha256: str) -> np.ndarray:
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EngineUnavailable(f"background {background_id}: the file does not match the manifest's sha256")
    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(im.convert("RGB"))
    rgb.setflags(write=False)
    return rgb


def load(background_id: str) -> np.ndarray:
    """The library image (H, W, 3) uint8, read-only; InvalidRequest for an unknown id."""
    entry = _entry(background_id)
    path = _library_dir() / str(entry["file"])
    if not path.is_file():
        raise EngineUnavailable(f"background {background_id}: {path} is missing")
    return _source(background_id, str(path), str(entry["sha256"]))


_rendered: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
_rendered_lock = threading.Lock()


def render(background_id: str, width: int, height: int) -> np.ndarray:
    """The background scaled and centre-cropped to cover ``width`` x ``height``: (H, W, 3) uint8, read-only."""
    key = (background_id, width, height)
    with _rendered_lock:
        cached = _rendered.get(key)
        if cached is not None:
            _rendered.move_to_end(key)
            return cached
    src = load(background_id)
    sh, sw = src.shape[:2]
    scale = max(width / sw, height / sh)
    rw, rh = max(width, round(sw * scale)), max(height, round(sh * scale))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    big = cv2.resize(src, (rw, rh), interpolation=interp)
    x0, y0 = (rw - width) // 2, (rh - height) // 2
    out = np.ascontiguousarray(big[y0 : y0 + height, x0 : x0 + width])
    out.setflags(write=False)
    with _rendered_lock:
        _rendered[key] = out
        while len(_rendered) > _CACHE_ENTRIES:
            _rendered.popitem(last=False)
    return out


def verify() -> list[str]:
    """Read and check every asset (hash and decode); returns the ids. Raises EngineUnavailable on a problem."""
    ids = library_ids()
    for background_id in ids:
        load(background_id)
    return ids
