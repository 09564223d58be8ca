"""invoke-inference: the request goes to S3, the job id is the InferenceId, the task token waits in the DB."""

from __future__ import annotations

import json

import boto3
import pytest
from modamoda_inference.schemas import parse_request  # inference_container/ is on the test path

from functions.common import db, jobs
from functions.invoke_inference import handler
from tests.conftest import FakeLambdaContext, create_job

RESULTS = "modamoda-test-results"


@pytest.fixture
def event(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS)
    monkeypatch.setenv("INFERENCE_ENDPOINT_NAME", "modamoda-test-inference")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=RESULTS)
    tenant_id, job_id = create_job()
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
        "timeout_seconds": 900,
    }


def test_request_written_and_submitted(event: dict) -> None:
    calls: list[dict] = []

    def capture(params: dict, **_: object) -> None:
        calls.append(params)

    boto3.DEFAULT_SESSION.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpointAsync", capture
    )
    result = handler.lambda_handler(event, FakeLambdaContext())
    assert result["inference_id"]
    assert calls[0]["InferenceId"] == event["job_id"]
    assert calls[0]["EndpointName"] == "modamoda-test-inference"
    assert calls[0]["InputLocation"] == f"s3://{RESULTS}/inference/input/{event['job_id']}.json"
    # the workflow waits 900 s: the request may queue and run only as long as it can still be reported in time
    assert calls[0]["InvocationTimeoutSeconds"] == 390
    assert calls[0]["RequestTTLSeconds"] == 390
    assert (
        calls[0]["RequestTTLSeconds"] + calls[0]["InvocationTimeoutSeconds"] + 120 <= event["timeout_seconds"]
    )
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
    assert (row["status"], row["task_token"]) == ("processing", "t" * 1500)


def test_oversized_task_token_is_refused(event: dict) -> None:
    with pytest.raises(ValueError, match="task_token"):
        handler.lambda_handler(event | {"task_token": "t" * 2049}, FakeLambdaContext())


@pytest.mark.parametrize("wait", [300, 900, 3600, 4 * 3600, 24 * 3600])
def test_a_request_never_outlives_the_wait_for_it(wait: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """RequestTTLSeconds (time in the endpoint's queue) + InvocationTimeoutSeconds (time on the GPU) + the time to
    report back stay within the execution's wait: the GPU never starts a job whose execution has already timed out
    and released its credits. Both stay within InvokeEndpointAsync's limits (TTL 60..21600, invocation 1..3600)."""
    from functions.common import pipeline

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
