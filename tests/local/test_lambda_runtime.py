"""The in-process Lambda runtime keeps Lambda's execution-environment contract: concurrent requests to one function
run in separate environments, each with its own module state, one request at a time in each, up to a cap;
functions side by side; asynchronous invokes accepted at once; and the service's error contract."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from local.lambda_runtime import SINGLE_ENVIRONMENT, LocalLambda
from tests.local import stateful_lambda
from tests.local.lambda_probe import PROBE, Probe

HANDLERS = "tests.local.stateful_lambda"


@pytest.fixture(autouse=True)
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Probe]:
    fresh = Probe()
    for attr in ("active", "peak", "modules", "release"):
        monkeypatch.setattr(PROBE, attr, getattr(fresh, attr))
    yield PROBE
    PROBE.release.set()


def runtime(environments: int = 3) -> LocalLambda:
    path = f"{HANDLERS}.stateful_handler"
    functions = {
        "one": path,
        "other": path,
        "fails": f"{HANDLERS}.failing_handler",
        "blocks": f"{HANDLERS}.blocking_handler",
        **dict.fromkeys(SINGLE_ENVIRONMENT, path),
    }
    return LocalLambda(functions, environments=environments)


def invoke_many(lambdas: LocalLambda, name: str, count: int) -> list[int]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda i: lambdas.invoke(name, {"caller": i}), range(count)))
    assert [error for _, error in results] == [None] * count
    return [payload["caller"] for payload, _ in results]


def test_concurrent_requests_run_in_separate_environments_up_to_the_cap() -> None:
    lambdas = runtime(environments=3)
    assert invoke_many(lambdas, "one", 9) == list(range(9))  # nobody read another's event
    assert PROBE.peak["one"] == 3  # three at once, never more
    assert len(PROBE.modules["one"]) == 3  # each environment has its own module state


def test_one_environment_runs_one_request_at_a_time() -> None:
    lambdas = runtime(environments=1)
    assert invoke_many(lambdas, "one", 6) == list(range(6))
    assert PROBE.peak["one"] == 1


def test_the_studio_engine_keeps_its_one_environment() -> None:
    """Its module holds the engine the stack loads into it: a second copy would have none."""
    (name,) = SINGLE_ENVIRONMENT
    lambdas = runtime(environments=4)
    assert invoke_many(lambdas, name, 4) == list(range(4))
    assert PROBE.peak[name] == 1


def test_the_first_environment_is_the_imported_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """One request at a time goes to the warm first environment: the module tests import (and patch)."""
    monkeypatch.setattr(stateful_lambda, "GREETING", "patched")
    lambdas = runtime()
    for caller in range(3):
        payload, error = lambdas.invoke("one", {"caller": caller})
        assert error is None
        assert payload["greeting"] == "patched"
    assert PROBE.modules["one"] == {id(stateful_lambda._state)}


def test_different_functions_run_side_by_side() -> None:
    lambdas = runtime(environments=1)
    barrier = threading.Barrier(2, timeout=5)
    lambdas.faults["one"] = lambdas.faults["other"] = lambda event: barrier.wait()  # both inside at once
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda name: lambdas.invoke(name, {"caller": name}), ["one", "other"]))
    assert [error for _, error in results] == [None, None]


def test_an_asynchronous_invoke_is_accepted_at_once_and_runs_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    session = boto3.Session(region_name="us-east-1")
    lambdas = runtime()
    lambdas.install(session)
    try:
        client = session.client("lambda")
        started = time.monotonic()
        response = client.invoke(FunctionName="blocks", InvocationType="Event", Payload=b"{}")
        assert response["StatusCode"] == 202
        assert (
            time.monotonic() - started < 5
        )  # the caller did not wait for the handler, blocked until released
        deadline = time.monotonic() + 5
        while PROBE.active["blocks"] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert PROBE.active["blocks"] == 1  # it is running, on a thread of its own
        assert not lambdas.invocations
        PROBE.release.set()
        lambdas.drain()
        assert [(i.function, i.error_type) for i in lambdas.invocations] == [("blocks", None)]
        sync = client.invoke(FunctionName="one", Payload=b'{"caller": 7}')
        assert sync["StatusCode"] == 200
        assert b'"caller": 7' in sync["Payload"].read()
    finally:
        lambdas.uninstall(session)


def test_exceptions_become_function_errors() -> None:
    payload, error = runtime().invoke("fails", {})
    assert error == "ValueError"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "bad event"
    _, error = runtime().invoke("nope", {})
    assert error == "KeyError"


def test_environments_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="1 or more"):
        LocalLambda({}, environments=0)
