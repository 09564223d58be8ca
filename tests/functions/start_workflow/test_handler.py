"""S3 upload events (EventBridge → SQS) start exactly one execution per uploaded object version."""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from functions.common import db, jobs
from functions.start_workflow import handler
from tests.conftest import FakeLambdaContext, create_job, load_event

DEFINITION = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}}}


@pytest.fixture
def setup(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="job", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", "900")
    monkeypatch.delenv("QUEUE_WAIT_SECONDS", raising=False)
    monkeypatch.setenv("DROP_BUCKET", "modamoda-test-drop")  # drop/ keys count only in this bucket
    tenant_id, job_id = create_job()
    return {"arn": arn, "tenant": tenant_id, "job": job_id}


def event_for(setup: dict[str, str], version: str | None = None, key: str | None = None) -> dict:
    event = load_event("sqs_s3_object_created.json", TENANT=setup["tenant"], JOB=setup["job"])
    if version or key:
        body = json.loads(event["Records"][0]["body"])
        if version:
            body["detail"]["object"]["version-id"] = version
        if key:
            body["detail"]["object"]["key"] = key
        event["Records"][0]["body"] = json.dumps(body)
    return event


def executions(arn: str) -> list[dict]:
    return boto3.client("stepfunctions", region_name="us-east-1").list_executions(stateMachineArn=arn)[
        "executions"
    ]


def test_upload_event_starts_one_execution_even_when_redelivered(setup: dict[str, str]) -> None:
    event = event_for(setup)
    for _ in range(3):  # at-least-once delivery
        assert handler.lambda_handler(copy.deepcopy(event), FakeLambdaContext()) == {"batchItemFailures": []}
    started = executions(setup["arn"])
    assert len(started) == 1
    assert started[0]["name"].startswith(f"job-{setup['job']}-")
    assert len(started[0]["name"]) <= 80
    execution = boto3.client("stepfunctions", region_name="us-east-1").describe_execution(
        executionArn=started[0]["executionArn"]
    )
    payload = json.loads(execution["input"])
    assert payload["job_id"] == setup["job"]
    assert payload["tenant_id"] == setup["tenant"]
    # a single job waits in the interactive lane: its queue-wait bound (default 1 hour), then the inference
    assert (payload["queue_wait_seconds"], payload["inference_timeout_seconds"]) == (3600, 3600 + 900)
    with db.transaction(setup["tenant"]) as conn:
        assert jobs.load(conn, setup["job"])["status"] == "queued"


def test_a_second_different_upload_for_the_same_job_is_ignored(setup: dict[str, str]) -> None:
    handler.lambda_handler(event_for(setup), FakeLambdaContext())
    handler.lambda_handler(event_for(setup, version="another-version"), FakeLambdaContext())
    assert len(executions(setup["arn"])) == 1


def test_objects_outside_the_upload_layout_are_ignored(setup: dict[str, str]) -> None:
    result = handler.lambda_handler(event_for(setup, key="drop/elsewhere/file.jpg"), FakeLambdaContext())
    assert result == {"batchItemFailures": []}
    assert executions(setup["arn"]) == []


def test_database_outage_reports_the_record_for_retry(
    setup: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db.reset()
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    # Every record failed: the whole batch goes back to the queue (and to its DLQ after maxReceiveCount).
    with pytest.raises(BatchProcessingError, match="All records failed"):
        handler.lambda_handler(event_for(setup), FakeLambdaContext())
    assert executions(setup["arn"]) == []
