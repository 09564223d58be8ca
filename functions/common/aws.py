"""boto3 adapter: the one place clients are made. Cached per process (Lambda container reuse)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    with _lock:
        found = _clients.get(service)
        if found is None:
            found = _clients[service] = boto3.client(service, config=_CONFIG)
        return found


def reset() -> None:
    """Forget cached clients (tests and the local runner switch emulated accounts)."""
    with _lock:
        _clients.clear()
