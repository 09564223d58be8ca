"""The versioned asset libraries shipped with the container (``assets/backgrounds``, ``assets/poses``)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from modamoda_inference.errors import EngineUnavailable

DEFAULT_ASSETS = Path(__file__).resolve().parent.parent / "assets"


def assets_dir() -> Path:
    return Path(os.environ.get("MODAMODA_ASSETS_DIR") or DEFAULT_ASSETS)


@lru_cache(maxsize=8)
def read_manifest(path: str, library: str, key: str) -> dict[str, Any]:
    """A library's ``manifest.json`` holding a ``key`` list; a missing or malformed one is EngineUnavailable."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EngineUnavailable(f"the {library} library is not installed (no {path})") from None
    except (OSError, ValueError) as exc:
        raise EngineUnavailable(f"the {library} library's manifest cannot be read: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise EngineUnavailable(f"the {library} library's manifest has no '{key}' list")
    return data
