"""enqueue-inference (RunInference's task): the request goes to S3, the job joins the GPU queue with its task token
(the notifier resumes it), the dispatcher is started; the dispatcher hands it to the endpoint with the job id as the
InferenceId and timeouts that fit the wait left from the hand-over."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from modamoda_inference.schemas import parse_request  # inference_container/ is on the test path

from functions.common import credits, db, jobs, pipeline
from functions.dispatch_inference import handler as dispatch_handler
from functions.enqueue_inference import handler
from tests.conftest import FakeLambdaContext, create_job

RESULTS = "modamoda-test-results"


@pytest.fixture
def event(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS)
    monkeypatch.setenv("INFERENCE_ENDPOINT_NAME", "modamoda-test-inference")
    monkeypatch.delenv("DISPATCH_FUNCTION_NAME", raising=False)
    monkeypatch.delenv("SCHEDULER_MODE", raising=False)
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=RESULTS)
    tenant_id, job_id = create_job()
    with db.transaction(tenant_id) as conn:
        jobs.transition(conn, job_id, "validated", cost=1)
        credits.reserve(conn, tenant_id, job_id, 1, 600)
    return {
        "job_id": job_id,
        "tenant_id": tenant_id,
        "task_token": "t" * 1500,
        "mode": "ghost",
        "image": {
            "bucket": "modamoda-test-uploads",
            "key": f"uploads/{tenant_id}/{job_id}/shirt.jpg",
            "version_id": "v1",
            "format": "JPEG",
            "width": 800,
            "height": 1000,
            "bytes": 1234,
        },
        "options": {"preset": "amazon", "background": "#F5F5F5", "output_format": "png"},
        "timeout_seconds": 1800,
        "queue_wait_seconds": 900,
    }


def invocations() -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def capture(params: dict, **_: object) -> None:
        calls.append(params)

    boto3.DEFAULT_SESSION.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpointAsync", capture
    )
    return calls


def test_the_job_is_queued_with_its_token_and_handed_over_by_the_dispatcher(event: dict) -> None:
    calls = invocations()
    queued = handler.lambda_handler(event, FakeLambdaContext())
    assert queued == {"job_id": event["job_id"], "lane": "interactive", "queue_state": "queued"}
    assert calls == []  # nothing goes to the endpoint from the enqueue function itself
    with db.transaction(event["tenant_id"]) as conn:
        row = jobs.load(conn, event["job_id"])
    assert (row["status"], row["task_token"], row["queue_state"]) == ("validated", "t" * 1500, "queued")
    assert row["inference_wait_seconds"] == 900  # the inference timeout counts from the hand-over

    result = dispatch_handler.lambda_handler({"source": "aws.events"}, FakeLambdaContext())
    assert (result["dispatched"], result["queued"], result["in_flight"]) == (1, 0, 1)
    assert calls[0]["InferenceId"] == event["job_id"]
    assert calls[0]["EndpointName"] == "modamoda-test-inference"
    assert calls[0]["InputLocation"] == f"s3://{RESULTS}/inference/input/{event['job_id']}.json"
    # 900 s from the hand-over: the request may queue at the endpoint and run only as long as it can still be
    # reported in time
    assert calls[0]["InvocationTimeoutSeconds"] == 390
    assert calls[0]["RequestTTLSeconds"] == 390
    assert calls[0]["RequestTTLSeconds"] + calls[0]["InvocationTimeoutSeconds"] + 120 <= 900
    body = (
        boto3.client("s3", region_name="us-east-1")
        .get_object(Bucket=RESULTS, Key=f"inference/input/{event['job_id']}.json")["Body"]
        .read()
    )
    request = json.loads(body)
    assert request == {
        "job_id": event["job_id"],
        "mode": "ghost",
        "image": {"s3_uri": f"s3://modamoda-test-uploads/{event['image']['key']}", "version_id": "v1"},
        "options": event["options"],
        "metadata_s3_uri": f"s3://{RESULTS}/inference/metadata/{event['job_id']}.json",
    }
    parse_request(body)  # the container accepts it as it is
    with db.transaction(event["tenant_id"]) as conn:
        row = jobs.load(conn, event["job_id"])
    assert (row["status"], row["queue_state"], row["dispatch_attempts"]) == ("processing", "dispatched", 1)


def test_a_replay_records_the_new_token_and_queues_nothing_twice(event: dict) -> None:
    handler.lambda_handler(event, FakeLambdaContext())
    dispatch_handler.lambda_handler({}, FakeLambdaContext())
    again = handler.lambda_handler(event | {"task_token": "u" * 20}, FakeLambdaContext())
    assert again["queue_state"] == "dispatched"
    with db.transaction(event["tenant_id"]) as conn:
        row = jobs.load(conn, event["job_id"])
    assert (row["status"], row["task_token"], row["dispatch_attempts"]) == ("processing", "u" * 20, 1)


def test_an_ended_job_is_not_queued(event: dict) -> None:
    with db.transaction(event["tenant_id"]) as conn:
        jobs.transition(conn, event["job_id"], "cancelled", error_code="batch_cancelled")
    with pytest.raises(pipeline.JobEnded):
        handler.lambda_handler(event, FakeLambdaContext())


def test_the_dispatcher_is_started_after_the_job_is_queued(
    event: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []

    def capture(params: dict, **_: object) -> None:
        started.append(params)

    monkeypatch.setenv("DISPATCH_FUNCTION_NAME", "modamoda-test-dispatch")
    boto3.DEFAULT_SESSION.events.register("provide-client-params.lambda.Invoke", capture)
    handler.lambda_handler(event, FakeLambdaContext())  # moto has no such function: logged, not raised
    assert [(p["FunctionName"], p["InvocationType"]) for p in started] == [
        ("modamoda-test-dispatch", "Event")
    ]


def test_oversized_task_token_is_refused(event: dict) -> None:
    with pytest.raises(ValueError, match="task_token"):
        handler.lambda_handler(event | {"task_token": "t" * 2049}, FakeLambdaContext())


def test_the_queue_wait_leaves_time_for_the_inference(event: dict) -> None:
    with pytest.raises(ValueError, match="queue_wait_seconds"):
        handler.lambda_handler(event | {"queue_wait_seconds": 1800}, FakeLambdaContext())


@pytest.mark.parametrize("wait", [300, 900, 3600, 4 * 3600, 24 * 3600])
def test_a_request_never_outlives_the_wait_for_it(wait: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """RequestTTLSeconds (time in the endpoint's queue) + InvocationTimeoutSeconds (time on the GPU) + the time to
    report back stay within the wait from the hand-over: the GPU never starts a job whose execution has already
    timed out and released its credits. Both stay within InvokeEndpointAsync's limits (TTL 60..21600, invocation
    1..3600)."""
    monkeypatch.delenv("INFERENCE_INVOCATION_TIMEOUT_SECONDS", raising=False)
    invocation, ttl = pipeline.async_timeouts(wait)
    assert 60 <= ttl <= 21_600
    assert 1 <= invocation <= 3600
    assert ttl + invocation + pipeline.ASYNC_SETTLE_MARGIN_SECONDS <= wait
    assert ttl < wait  # the issue: TTL used to equal the whole wait
    if wait >= 3600:
        assert invocation == 900  # SageMaker's default, ample for one image
    monkeypatch.setenv("INFERENCE_INVOCATION_TIMEOUT_SECONDS", "60")
    invocation, ttl = pipeline.async_timeouts(wait)
    assert invocation == 60
    assert ttl == min(wait - 60 - pipeline.ASYNC_SETTLE_MARGIN_SECONDS, 21_600)
