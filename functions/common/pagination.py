"""Keyset pagination: an opaque cursor holds the sort key of the last row returned; pages never skip or repeat."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from functions.common.errors import InputRejected


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values), default=str).encode()).decode()


def decode_cursor(cursor: str, parse: Callable[[list[Any]], tuple[Any, ...]]) -> tuple[Any, ...]:
    """The sort key in ``cursor``, checked by ``parse``: anything ``parse`` cannot read (wrong length, types or
    values) is an ``invalid_cursor`` error, never a server error."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(values, list):
            raise TypeError("cursor must hold a list")
        return parse(values)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise InputRejected("cursor is not valid", code="invalid_cursor") from exc


def page(
    rows: Sequence[Any], limit: int, key: Callable[[dict[str, Any]], Sequence[Any]]
) -> tuple[list[dict[str, Any]], str | None]:
    """The first ``limit`` of ``limit + 1`` fetched rows, and the cursor of the next page if there is one."""
    items = [dict(r) for r in rows[:limit]]
    return items, encode_cursor(key(items[-1])) if len(rows) > limit else None
