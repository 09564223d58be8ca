"""dispatch-inference: one pass of the GPU queue (nothing queued: nothing handed over) and the queue's depth as
metrics with the endpoint's name (the dimension the autoscaling alarm reads, infra/inference.py)."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common import scheduler
from functions.common.observability import metrics
from functions.dispatch_inference import handler
from tests.conftest import FakeLambdaContext


def test_a_pass_reports_and_publishes_the_queue(
    mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESULTS_BUCKET", "modamoda-test-results")
    monkeypatch.setenv("INFERENCE_ENDPOINT_NAME", "modamoda-test-inference")
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "3")
    published: dict[str, Any] = {}
    dimensions: dict[str, str] = {}
    monkeypatch.setattr(metrics, "add_metric", lambda name, unit, value: published.__setitem__(name, value))
    monkeypatch.setattr(metrics, "add_dimension", lambda name, value: dimensions.__setitem__(name, value))
    result = handler.lambda_handler({"source": "aws.events"}, FakeLambdaContext())
    assert result == {
        "mode": "fair",
        "capacity": 3,
        "dispatched": 0,
        "returned": 0,
        "ended": {},
        "queued": 0,
        "in_flight": 0,
        "lanes": {
            lane: {"queued": 0, "in_flight": 0, "oldest_wait_seconds": 0.0}
            for lane in ("interactive", "normal", "bulk")
        },
    }
    assert dimensions == {"EndpointName": "modamoda-test-inference"}
    assert published[scheduler.QUEUE_DEPTH_METRIC] == 0  # published even when empty: scale-in sees zero
