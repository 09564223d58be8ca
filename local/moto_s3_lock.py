"""moto's in-memory S3 is not safe for concurrent requests on one object: overwriting a key closes the old
version's spooled buffer, and a request still reading it (a copy computing its ETag, a GET) fails with "I/O operation
on closed file". S3 itself serves concurrent overwrites of one key (the last write wins), and the local stack runs
concurrent Lambda invocations (duplicate notifications settling one job), so object requests are served one at a
time here. They are in-memory and quick; bucket-level requests are unaffected."""

from __future__ import annotations

import functools
import threading
from typing import Any

_lock = threading.RLock()
_installed = False


def install() -> None:
    """Serialise moto's S3 object requests in this process (idempotent; stays for the process's life)."""
    global _installed
    with _lock:
        if _installed:
            return
        from moto.s3.responses import S3Response

        original = S3Response.key_response

        @functools.wraps(original)
        def key_response(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _lock:
                return original(self, *args, **kwargs)

        S3Response.key_response = key_response  # type: ignore[method-assign]
        _installed = True
