"""The pose and background libraries the API offers (copies of the inference container's versioned manifests,
kept in sync by ``scripts/sync_catalog.py``; a test fails when they drift)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).with_name("catalog")


@cache
def load(kind: str) -> dict[str, Any]:
    if kind not in {"poses", "backgrounds"}:
        raise ValueError(f"unknown catalog {kind!r}")
    return dict(json.loads((CATALOG_DIR / f"{kind}.json").read_text(encoding="utf-8")))


def ids(kind: str) -> frozenset[str]:
    return frozenset(item["id"] for item in load(kind)[kind])


def default_pose() -> str:
    return str(load("poses")["default"])
