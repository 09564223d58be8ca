"""Cursors are opaque: whatever a client sends back, a cursor that does not hold a valid sort key is a 422
``invalid_cursor``, never a server error."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.common.errors import InputRejected
from functions.common.pagination import decode_cursor, encode_cursor


def parse_job_key(values: list[Any]) -> tuple[Any, ...]:  # the jobs list's sort key: (created_at, id)
    return datetime.fromisoformat(values[0]), str(uuid.UUID(values[1]))


def wrap(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def test_a_cursor_round_trips() -> None:
    created, job_id = datetime(2026, 11, 23, 12, tzinfo=UTC), str(uuid.uuid4())
    assert decode_cursor(encode_cursor([created.isoformat(), job_id]), parse_job_key) == (created, job_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        wrap([]),
        wrap(["2026-11-23T12:00:00+00:00"]),
        wrap(["2026-11-23T12:00:00+00:00", 5]),
        wrap([5, str(uuid.uuid4())]),
        wrap(["yesterday", str(uuid.uuid4())]),
        wrap({"created": "2026-11-23"}),
        wrap(None),
        wrap([None, None]),
        wrap([["nested"], {"x": 1}]),
    ],
)
def test_malformed_cursors_are_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InputRejected) as raised:
        decode_cursor(cursor, parse_job_key)
    assert raised.value.code == "invalid_cursor"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c, max_size=3)))
def test_any_json_in_a_cursor_is_rejected_or_parsed(value: Any) -> None:
    error: InputRejected | None = None
    try:
        decode_cursor(wrap(value), parse_job_key)
    except InputRejected as exc:  # anything else (a server error) fails the test
        error = exc
    assert error is None or error.code == "invalid_cursor"
