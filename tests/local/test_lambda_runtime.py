"""The in-process Lambda runtime keeps Lambda's execution-environment contract: one invocation at a time per
function (module state is per container), functions side by side, and the service's error contract."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.lambda_runtime import LocalLambda

_state: dict[str, Any] = {"current": None}
_active: dict[str, int] = {}
_peak: dict[str, int] = {}
_guard = threading.Lock()


def stateful_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Keeps the current event in a module global, as powertools' resolver keeps ``app.current_event``."""
    name = context.function_name
    with _guard:
        _active[name] = _active.get(name, 0) + 1
        _peak[name] = max(_peak.get(name, 0), _active[name])
    _state["current"] = event
    time.sleep(0.05)
    seen = _state["current"]["caller"]
    with _guard:
        _active[name] -= 1
    return {"caller": seen}


def failing_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise ValueError("bad event")


def runtime() -> LocalLambda:
    path = f"{__name__}.stateful_handler"
    return LocalLambda({"one": path, "other": path, "fails": f"{__name__}.failing_handler"})


def test_invocations_of_one_function_never_overlap() -> None:
    lambdas = runtime()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: lambdas.invoke("one", {"caller": i}), range(6)))
    assert [payload["caller"] for payload, _ in results] == list(range(6))  # nobody read another's event
    assert _peak["one"] == 1


def test_different_functions_run_side_by_side() -> None:
    lambdas = runtime()
    barrier = threading.Barrier(2, timeout=5)
    lambdas.faults["one"] = lambdas.faults["other"] = lambda event: (
        barrier.wait()
    )  # both must be inside at once
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda name: lambdas.invoke(name, {"caller": name}), ["one", "other"]))
    assert [error for _, error in results] == [None, None]


def test_exceptions_become_function_errors() -> None:
    payload, error = runtime().invoke("fails", {})
    assert error == "ValueError"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "bad event"
    _, error = runtime().invoke("nope", {})
    assert error == "KeyError"
