"""Handlers for the local Lambda runtime's tests. Module state here is per execution environment, as a handler's
module globals are in Lambda (powertools' resolver keeps ``app.current_event`` on a module-level app)."""

from __future__ import annotations

import time
from typing import Any

from tests.local.lambda_probe import PROBE

_state: dict[str, Any] = {"current": None}
GREETING = "as imported"


def stateful_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = context.function_name
    PROBE.enter(name, id(_state))
    _state["current"] = event
    time.sleep(0.05)
    seen = _state["current"]["caller"]
    PROBE.leave(name)
    return {"caller": seen, "greeting": GREETING}


def blocking_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    PROBE.enter(context.function_name, id(_state))
    PROBE.release.wait(timeout=10)
    PROBE.leave(context.function_name)
    return {"done": True}


def failing_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError("bad event")
