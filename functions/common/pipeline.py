"""The job pipeline's steps as plain functions: S3 event → workflow start, the state machine's tasks, and the
SageMaker async notification. Handlers only parse the event, call one of these, and return the result.
Each step is idempotent: events are delivered at least once and tasks are retried.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from functions.common import config, credits, db, images, jobs, notifications, storage
from functions.common.errors import InputRejected, NotFound, split_cause
from functions.common.models import (
    AsyncInferenceNotification,
    ImageRef,
    InvokeInput,
    ReserveInput,
    SettleInput,
    SettleResult,
    Validated,
    WorkflowInput,
)
from functions.common.observability import logger
from functions.common.pricing import cost_of

RESULT_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
MAX_WORKFLOW_TIMEOUT_SECONDS = 86_400  # WorkflowInput's bound
HOLD_GRACE_SECONDS = (
    900  # a hold outlives the inference timeout, so the workflow settles it before the sweeper
)


def execution_name(job_id: str, bucket: str, key: str, version_id: str | None) -> str:
    """Deterministic Step Functions execution name (≤ 80 chars) for one object version of one job."""
    digest = hashlib.sha256(f"{bucket}/{key}#{version_id or 'null'}".encode()).hexdigest()[:16]
    return f"job-{job_id}-{digest}"


def inference_timeout(priority: str) -> int:
    """How long the workflow waits for the GPU (and holds the credits). A ``low`` job can wait
    ``LOW_PRIORITY_TIMEOUT_FACTOR`` (4) times longer; the async endpoint's single FIFO queue still serves jobs
    in arrival order, so priority never reorders work."""
    base = config.inference_timeout_seconds()
    if priority == "low":
        base *= config.low_priority_timeout_factor()
    return max(1, min(base, MAX_WORKFLOW_TIMEOUT_SECONDS))


# ---- S3 "Object Created" (via EventBridge → SQS) → start the workflow once ------------------------------------


def start_workflow(sfn: Any, detail: dict[str, Any]) -> str | None:
    """Start the job's execution for an uploaded object. Returns the execution name, or None when ignored."""
    bucket = detail["bucket"]["name"]
    key = detail["object"]["key"]
    version_id = detail["object"].get("version-id")
    parsed = jobs.parse_source_key(key)
    if parsed is None:
        logger.warning("ignoring object outside the upload layout", extra={"bucket": bucket, "key": key})
        return None
    tenant_id, job_id = parsed
    name = execution_name(job_id, bucket, key, version_id)
    with db.transaction(tenant_id) as conn:
        claimed = jobs.claim_upload(conn, job_id, tenant_id, version_id, name)
    if claimed is None:
        logger.info("upload already handled, unknown or deleted job", extra={"job_id": job_id, "key": key})
        return None
    workflow_input = WorkflowInput(
        job_id=job_id,
        tenant_id=tenant_id,
        bucket=bucket,
        key=key,
        version_id=version_id,
        inference_timeout_seconds=inference_timeout(claimed["priority"]),
    )
    try:
        sfn.start_execution(
            stateMachineArn=config.state_machine_arn(), name=name, input=workflow_input.model_dump_json()
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        logger.info("execution already started", extra={"job_id": job_id, "execution": name})
    return name


# ---- state machine tasks --------------------------------------------------------------------------------------


def validate_input(s3: Any, event: WorkflowInput) -> Validated:
    """Check the upload by content before anything is charged. Raises InputRejected with a precise code."""
    with db.transaction(event.tenant_id) as conn:
        job = jobs.load(conn, event.job_id)
    try:
        data, size = storage.read_object(
            s3, event.bucket, event.key, event.version_id, config.upload_max_bytes()
        )
    except NotFound as exc:
        raise InputRejected(str(exc.message), code="upload_missing") from exc
    info = images.inspect(data, config.max_image_pixels())
    image = ImageRef(
        bucket=event.bucket,
        key=event.key,
        version_id=event.version_id,
        format=info.format,
        width=info.width,
        height=info.height,
        bytes=size,
    )
    cost = cost_of(job["mode"])
    with db.transaction(event.tenant_id) as conn:
        jobs.transition(conn, event.job_id, "validated", image=image.model_dump(), cost=cost)
    return Validated(
        job_id=event.job_id,
        tenant_id=event.tenant_id,
        mode=job["mode"],
        cost=cost,
        image=image,
        options=job["options"] or {},
    )


def reserve_credits(event: ReserveInput) -> dict[str, Any]:
    def reserve(conn: db.Conn) -> tuple[credits.Hold, int]:
        ttl = event.hold_ttl_seconds + HOLD_GRACE_SECONDS
        hold = credits.reserve(conn, event.tenant_id, event.job_id, event.cost, ttl)
        return hold, credits.balance(conn, event.tenant_id)

    hold, balance = db.atomic(event.tenant_id, reserve)
    return {"job_id": event.job_id, "hold": hold.status, "amount": hold.amount, "balance": balance}


def invoke_inference(s3: Any, sagemaker_runtime: Any, event: InvokeInput) -> dict[str, Any]:
    """Write the inference request to S3 and submit it to the async endpoint; the task token waits in the DB."""
    bucket = config.results_bucket()
    request = {
        "job_id": event.job_id,
        "mode": event.mode,
        "image": {
            "s3_uri": f"s3://{event.image.bucket}/{event.image.key}",
            **({"version_id": event.image.version_id} if event.image.version_id else {}),
        },
        "options": event.options,
    }
    input_key = f"inference/input/{event.job_id}.json"
    s3.put_object(
        Bucket=bucket, Key=input_key, Body=json.dumps(request).encode(), ContentType="application/json"
    )
    with db.transaction(event.tenant_id) as conn:
        jobs.transition(conn, event.job_id, "processing", task_token=event.task_token)
    response = sagemaker_runtime.invoke_endpoint_async(
        EndpointName=config.inference_endpoint_name(),
        InputLocation=f"s3://{bucket}/{input_key}",
        ContentType="application/json",
        Accept="image/*",
        InferenceId=event.job_id,
        InvocationTimeoutSeconds=min(event.timeout_seconds, 3600),
        RequestTTLSeconds=max(60, min(event.timeout_seconds, 21_600)),
    )
    return {
        "inference_id": response.get("InferenceId", event.job_id),
        "output_location": response["OutputLocation"],
    }


def _outcome_of(error: dict[str, Any] | None) -> tuple[str, str, str]:
    """(status, code, message) for a job that ends through the release path."""
    if not error:
        return "failed", "internal_error", "the job ended without a result"
    name = str(error.get("Error", ""))
    code, message = split_cause(error.get("Cause"))
    if name == "InputRejected":
        return "rejected", code or "input_rejected", message
    if name == "InsufficientCredits":
        return "rejected", "insufficient_credits", message
    if name in {"States.Timeout", "States.HeartbeatTimeout"}:
        return "failed", "inference_timeout", "the inference did not finish in time; no credits were charged"
    if name == "InferenceFailed":
        return "failed", code or "inference_failed", message
    return "failed", "internal_error", message or name


def _settle(event: SettleInput, settle: Any) -> SettleResult:
    def work(conn: db.Conn) -> SettleResult:
        hold = settle(conn)
        job = jobs.load(conn, event.job_id)
        return SettleResult(
            job_id=event.job_id, status=job["status"], hold=hold.status, error_code=job["error_code"]
        )

    result = db.atomic(event.tenant_id, work)
    notifications.dispatch(event.tenant_id)  # after commit: the outbox rows this settlement recorded
    return result


def capture_credits(event: SettleInput) -> SettleResult:
    """After a successful inference: spend the hold (once) and mark the job succeeded."""

    def capture(conn: db.Conn) -> credits.Hold:
        hold = credits.capture(conn, event.job_id)
        if hold.status == "captured" and jobs.transition(conn, event.job_id, "succeeded"):
            notifications.job_finished(conn, jobs.load(conn, event.job_id))
        return hold

    return _settle(event, capture)


def release_credits(event: SettleInput) -> SettleResult:
    """On rejection, failure or timeout: return the hold (if any, once) and record why the job ended."""
    status, code, message = _outcome_of(event.error)

    def release(conn: db.Conn) -> credits.Hold:
        hold = credits.release(conn, event.job_id, reason=code)
        if hold.status != "captured":  # a captured hold means the result was delivered: the job succeeded
            if jobs.transition(conn, event.job_id, status, error_code=code, error_message=message[:1000]):
                notifications.job_finished(conn, jobs.load(conn, event.job_id))
        return hold

    return _settle(event, release)


def sweep_expired_holds(sfn: Any, limit: int = 200) -> dict[str, int]:
    """Release holds past their deadline (a lost execution, a failed settlement) and end their jobs.

    A still-waiting execution is told the inference failed, so it ends through its own (now no-op) release.
    """
    try:
        return _sweep(sfn, limit)
    finally:
        db.reset()  # hold no idle connection between runs: an idle Aurora Serverless v2 cluster can pause


def _sweep(sfn: Any, limit: int) -> dict[str, int]:
    released = 0
    expired = db.system_rows("SELECT job_id, tenant_id FROM app_expired_holds(%s)", (limit,))
    for row in expired:
        job_id, tenant_id = str(row["job_id"]), str(row["tenant_id"])
        result = release_credits(
            SettleInput(
                job_id=job_id,
                tenant_id=tenant_id,
                error={
                    "Error": "InferenceFailed",
                    "Cause": "hold_expired: the job did not finish before its credit hold expired; nothing was charged",
                },
            )
        )
        if result.hold == "released":
            released += 1
            with db.transaction(tenant_id) as conn:
                token = jobs.load(conn, job_id)["task_token"]
            if token:
                _resume(sfn, token, failure=("InferenceFailed", "hold_expired: the credit hold expired"))
    return {"expired": len(expired), "released": released}


# ---- SageMaker async notification (SNS) → settle and resume the workflow --------------------------------------


def handle_inference_notification(s3: Any, sfn: Any, note: AsyncInferenceNotification) -> str:
    """Record the result, settle credits and resume the waiting execution. Safe to replay."""
    job_id = note.inference_id
    tenant_id = job_tenant(job_id)
    if tenant_id is None:
        logger.warning("notification for an unknown job", extra={"inference_id": job_id})
        return "unknown_job"
    with db.transaction(tenant_id) as conn:
        job = jobs.load(conn, job_id)
    token = job["task_token"]
    if note.succeeded:
        output = note.response_parameters.output_location
        if not output:
            raise ValueError(f"success notification for {job_id} has no outputLocation")
        content_type = (note.response_parameters.content_type or "image/png").split(";")[0].strip()
        result_key = f"results/{job['tenant_id']}/{job_id}.{RESULT_EXTENSIONS.get(content_type, 'bin')}"
        if job["status"] not in {"failed", "rejected"}:
            storage.copy(s3, output, config.results_bucket(), result_key, content_type)

        def capture(conn: db.Conn) -> credits.Hold:
            hold = credits.capture(conn, job_id)
            if hold.status == "captured" and jobs.transition(conn, job_id, "succeeded", result_key=result_key):
                notifications.job_finished(conn, jobs.load(conn, job_id))
            return hold

        hold = db.atomic(tenant_id, capture)
        notifications.dispatch(tenant_id)  # after commit
        if hold.status != "captured":
            logger.warning(
                "late result for a settled job is discarded", extra={"job_id": job_id, "hold": hold.status}
            )
        outcome = "succeeded" if hold.status == "captured" else "late"
        if token:
            _resume(sfn, token, success={"result_key": result_key, "output_location": output})
        return outcome
    reason = note.failure_reason or "inference failed"
    code = "inference_rejected" if "(4" in reason else "inference_failed"  # "Received client error (400) ..."
    cause = f"{code}: {reason}"
    release_credits(
        SettleInput(
            job_id=job_id, tenant_id=str(job["tenant_id"]), error={"Error": "InferenceFailed", "Cause": cause}
        )
    )
    if token:
        _resume(sfn, token, failure=("InferenceFailed", cause))
    return "failed"


def job_tenant(job_id: str) -> str | None:
    """The tenant owning a job, looked up outside any tenant (``app_job_tenant``); None if there is no such job."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        return None
    row = db.system_lookup("SELECT app_job_tenant(%s) AS tenant_id", (job_id,))
    return str(row["tenant_id"]) if row and row["tenant_id"] else None


def _resume(
    sfn: Any, token: str, *, success: dict[str, Any] | None = None, failure: tuple[str, str] | None = None
) -> None:
    try:
        if failure is not None:
            sfn.send_task_failure(taskToken=token, error=failure[0], cause=failure[1][:32_000])
        else:
            sfn.send_task_success(taskToken=token, output=json.dumps(success))
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken) as exc:
        logger.info("execution no longer waits for this token", extra={"error": type(exc).__name__})
