"""Batches under test: moto S3 (versioned drop bucket, results bucket), a stand-in state machine, a real
PostgreSQL, and the workflow's steps run one by one through the pipeline's own functions, so a test can stop
between any two of them (a cancel while a job waits for its reservation, a stop while others are processing).

Use the ``bulk`` fixture: ``from tests.functions.batch_support import bulk_fixture  # noqa: F401``.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from PIL import Image, ImageDraw

from functions.common import credits, db, jobs, pipeline, scheduler
from functions.common.errors import ModamodaError
from functions.common.models import (
    AsyncInferenceNotification,
    EnqueueInput,
    ReserveInput,
    SettleInput,
    WorkflowInput,
)
from functions.start_workflow import handler as start_handler
from tests.conftest import FakeLambdaContext, load_event

DROP = "modamoda-test-drop"
RESULTS = "modamoda-test-results"
UPLOADS = "modamoda-test-uploads"
WAIT_DEFINITION = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 300, "End": True}}}


def garment_png(seed: int = 0, size: int = 96, scale: float = 0.5, shade: int = 60) -> bytes:
    """A small photo-like image: a coloured block on a light backdrop (a valid image for validation)."""
    image = Image.new("RGB", (size, size), (235, 235, 232))
    side = int(size * scale)
    x0 = (size - side) // 2
    colour = ((shade + seed * 37) % 200, (shade + seed * 11) % 200, (shade * 2 + seed) % 200)
    ImageDraw.Draw(image).rectangle((x0, x0, x0 + side, x0 + side), fill=colour)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class FakeSageMaker:
    """``invoke_endpoint_async`` as the async endpoint answers it (the work itself is done by ``Bulk.deliver``)."""

    def __init__(self) -> None:
        self.invoked: list[str] = []

    def invoke_endpoint_async(self, **kwargs: Any) -> dict[str, Any]:
        self.invoked.append(kwargs["InferenceId"])
        return {
            "InferenceId": kwargs["InferenceId"],
            "OutputLocation": f"s3://{RESULTS}/inference/output/{kwargs['InferenceId']}.out",
        }


@dataclass
class Bulk:
    tenant_id: str
    user: str
    state_machine_arn: str
    s3: Any = field(default_factory=lambda: boto3.client("s3", region_name="us-east-1"))
    sfn: Any = field(default_factory=lambda: boto3.client("stepfunctions", region_name="us-east-1"))
    sagemaker: FakeSageMaker = field(default_factory=FakeSageMaker)

    # ---- the drop folder and its events ----

    def key(self, folder: str, name: str, tenant_id: str | None = None) -> str:
        return f"drop/{tenant_id or self.tenant_id}/{folder}/{name}"

    def put(self, folder: str, name: str, body: bytes, tenant_id: str | None = None) -> str | None:
        """Write a file into the drop folder (no event yet); returns its version id."""
        response = self.s3.put_object(Bucket=DROP, Key=self.key(folder, name, tenant_id), Body=body)
        return response.get("VersionId")

    def event(self, key: str, version_id: str | None, bucket: str = DROP) -> dict[str, Any]:
        """The SQS message (EventBridge "Object Created") the start queue delivers for this object."""
        event = load_event("sqs_s3_object_created.json", TENANT="t", JOB="j")
        body = json.loads(event["Records"][0]["body"])
        body["detail"]["bucket"]["name"] = bucket
        body["detail"]["object"]["key"] = key
        body["detail"]["object"]["version-id"] = version_id
        event["Records"][0]["body"] = json.dumps(body)
        event["Records"][0]["messageId"] = str(uuid.uuid4())
        return event

    def deliver(self, key: str, version_id: str | None, bucket: str = DROP) -> dict[str, Any]:
        """The start-workflow Lambda handles the event (as the SQS event-source mapping would call it)."""
        result: dict[str, Any] = start_handler.lambda_handler(
            copy.deepcopy(self.event(key, version_id, bucket)), FakeLambdaContext()
        )
        return result

    def drop(self, folder: str, name: str, body: bytes) -> str | None:
        version = self.put(folder, name, body)
        assert self.deliver(self.key(folder, name), version) == {"batchItemFailures": []}
        return version

    # ---- reading state ----

    def batch(self, folder: str) -> dict[str, Any]:
        with db.transaction(self.tenant_id) as conn:
            row = conn.execute(
                "SELECT * FROM batches WHERE tenant_id = %s AND folder = %s", (self.tenant_id, folder)
            ).fetchone()
        assert row is not None, f"no batch for folder {folder}"
        return dict(row)

    def jobs(self, folder: str) -> dict[str, dict[str, Any]]:
        """The batch's jobs by file name."""
        batch = self.batch(folder)
        with db.transaction(self.tenant_id) as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE batch_id = %s", (batch["id"],)).fetchall()
        return {r["filename"]: dict(r) for r in rows}

    def balance(self) -> tuple[int, int, int]:
        """(balance, ledger sum, held)."""
        with db.transaction(self.tenant_id) as conn:
            return (
                credits.balance(conn, self.tenant_id),
                credits.ledger_sum(conn, self.tenant_id),
                credits.held(conn, self.tenant_id),
            )

    def executions(self) -> list[dict[str, Any]]:
        return list(self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"])

    # ---- the workflow's steps, one at a time ----

    def workflow_input(self, job_id: str) -> WorkflowInput:
        with db.transaction(self.tenant_id) as conn:
            job = jobs.load(conn, job_id)
        return WorkflowInput(
            job_id=job_id,
            tenant_id=self.tenant_id,
            bucket=job["source_bucket"],
            key=job["source_key"],
            version_id=job["source_version"],
            inference_timeout_seconds=900,
        )

    def release(self, job_id: str, error: ModamodaError | dict[str, Any]) -> str:
        """The Catch → ReleaseCredits path with the error a task raised."""
        if isinstance(error, ModamodaError):
            error = {
                "Error": type(error).__name__,
                "Cause": json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}),
            }
        return pipeline.release_credits(
            SettleInput(job_id=job_id, tenant_id=self.tenant_id, error=error)
        ).status

    def validate_and_reserve(self, job_id: str) -> str:
        """ValidateInput → ReserveCredits (→ ReleaseCredits on an error). Returns "reserved" or the final status."""
        try:
            validated = pipeline.validate_input(self.s3, self.workflow_input(job_id))
        except ModamodaError as exc:
            return self.release(job_id, exc)
        try:
            pipeline.reserve_credits(
                ReserveInput(
                    job_id=job_id, tenant_id=self.tenant_id, cost=validated.cost, hold_ttl_seconds=900
                )
            )
        except ModamodaError as exc:
            return self.release(job_id, exc)
        return "reserved"

    def invoke(self, job_id: str) -> str:
        """RunInference's Lambda (the job joins the GPU queue), then a dispatch pass (the async endpoint is a fake
        that only accepts the request); the job's status after both."""
        validated = pipeline.validate_input(self.s3, self.workflow_input(job_id))
        try:
            scheduler.enqueue(
                self.s3,
                EnqueueInput(
                    job_id=job_id,
                    tenant_id=self.tenant_id,
                    task_token="token-" + job_id,
                    mode=validated.mode,
                    image=validated.image,
                    options=validated.options,
                    timeout_seconds=1800,
                    queue_wait_seconds=900,
                ),
            )
        except ModamodaError as exc:
            return self.release(job_id, exc)
        scheduler.dispatch(self.sagemaker, _NoSfn())
        return self.status(job_id)

    def complete(self, job_id: str, result: bytes | None = None, *, fail: str | None = None) -> str:
        """The async endpoint's notification (success with ``result`` as the output image, or a failure)."""
        if fail:
            note = {"invocationStatus": "Failed", "inferenceId": job_id, "failureReason": fail}
        else:
            key = f"inference/output/{job_id}.out"
            self.s3.put_object(Bucket=RESULTS, Key=key, Body=result or garment_png())
            note = {
                "invocationStatus": "Completed",
                "inferenceId": job_id,
                "responseParameters": {"contentType": "image/png", "outputLocation": f"s3://{RESULTS}/{key}"},
            }
        return pipeline.handle_inference_notification(
            self.s3, _NoSfn(), AsyncInferenceNotification.model_validate(note)
        )

    def run(self, job_id: str, result: bytes | None = None) -> str:
        """The whole workflow of one job; returns its final status."""
        if self.validate_and_reserve(job_id) != "reserved":
            return self.status(job_id)
        if self.invoke(job_id) != "processing":
            return self.status(job_id)
        self.complete(job_id, result)
        return self.status(job_id)

    def status(self, job_id: str) -> str:
        with db.transaction(self.tenant_id) as conn:
            return str(jobs.load(conn, job_id)["status"])


class _NoSfn:
    """The waiting execution is not resumed in these tests (no task token is waiting in moto)."""

    class exceptions:
        class TaskTimedOut(Exception):
            pass

        TaskDoesNotExist = TaskTimedOut
        InvalidToken = TaskTimedOut

    def send_task_success(self, **_: Any) -> None:
        pass

    def send_task_failure(self, **_: Any) -> None:
        pass


def new_tenant(sub: str, welcome: int) -> str:
    from functions.common.tenants import ensure_user

    return ensure_user(sub, f"{sub}@example.com", welcome).tenant_id


@pytest.fixture(name="bulk")
def bulk_fixture(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Bulk:
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in (DROP, RESULTS, UPLOADS):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=DROP, VersioningConfiguration={"Status": "Enabled"})
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="job", definition=json.dumps(WAIT_DEFINITION), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    for name, value in {
        "STATE_MACHINE_ARN": arn,
        "DROP_BUCKET": DROP,
        "RESULTS_BUCKET": RESULTS,
        "UPLOAD_BUCKET": UPLOADS,
        "INFERENCE_ENDPOINT_NAME": "modamoda-test-endpoint",
        "INFERENCE_TIMEOUT_SECONDS": "900",
        "INFERENCE_MAX_IN_FLIGHT": "100",  # every job is handed to the (fake) endpoint at once
        "SIGNUP_GRANT_CREDITS": "10",
    }.items():
        monkeypatch.setenv(name, value)
    return Bulk(tenant_id=new_tenant("bulk-owner", 10), user="bulk-owner", state_machine_arn=arn)
