"""The job pipeline's steps as plain functions: S3 event → workflow start, the state machine's tasks, and the
SageMaker async notification. Handlers only parse the event, call one of these, and return the result.
Each step is idempotent: events are delivered at least once and tasks are retried.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any
from urllib.parse import unquote_plus

from functions.common import (
    aws,
    batches,
    config,
    consistency,
    credits,
    db,
    durations,
    images,
    jobs,
    lanes,
    previews,
    refusals,
    storage,
)
from functions.common.errors import InputRejected, InsufficientCredits, ModamodaError, NotFound, split_cause
from functions.common.models import (
    MANIFEST_FILES,
    AsyncInferenceNotification,
    EnginePath,
    ImageRef,
    ReserveInput,
    SettleInput,
    SettleResult,
    Validated,
    WorkflowInput,
)
from functions.common.observability import logger
from functions.common.pricing import cost_of

RESULT_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
HOLD_GRACE_SECONDS = (
    900  # a hold outlives the inference timeout, so the workflow settles it before the sweeper
)
# The container writes each job's metadata JSON (quality, engine metadata, timings; or a refusal's error) here in
# the results bucket (the request's ``metadata_s3_uri``); infra/storage.py grants the endpoint's role this prefix.
METADATA_PREFIX = "inference/metadata/"
MAX_METADATA_BYTES = 256 * 1024
# Where the async endpoint (and the studio function in its place) writes each job's image: {OUTPUT_PREFIX}{job}.out
OUTPUT_PREFIX = "inference/output/"


def metadata_key(job_id: str) -> str:
    return f"{METADATA_PREFIX}{job_id}.json"


class JobEnded(ModamodaError):
    """The job ended (cancelled with its batch, rejected by a batch stop, expired) before it could run."""

    code = "job_ended"
    http_status = 409


def execution_name(job_id: str, bucket: str, key: str, version_id: str | None) -> str:
    """Deterministic Step Functions execution name (≤ 80 chars) for one object version of one job."""
    digest = hashlib.sha256(f"{bucket}/{key}#{version_id or 'null'}".encode()).hexdigest()[:16]
    return f"job-{job_id}-{digest}"


# The time around the GPU's work that the job's wait must also cover: the invoke task's start (Lambda, the request
# document, the database) before SageMaker receives the request, and the notification after it (S3 upload, SNS,
# the notifier, SendTaskSuccess/Failure).
ASYNC_SETTLE_MARGIN_SECONDS = 120
# InvokeEndpointAsync limits (AWS SageMaker Runtime API reference).
REQUEST_TTL_RANGE = (60, 21_600)  # RequestTTLSeconds: the most a request may wait in the endpoint's queue
INVOCATION_TIMEOUT_RANGE = (1, 3600)  # InvocationTimeoutSeconds: the most the container may work on it


def async_timeouts(wait_seconds: int) -> tuple[int, int]:
    """``(InvocationTimeoutSeconds, RequestTTLSeconds)`` for a job whose execution waits ``wait_seconds`` for the
    GPU (``RunInference``'s ``TimeoutSecondsPath``) and then releases its credits.

    A request that waits in the endpoint's queue for its whole TTL and then works for its whole invocation
    timeout must still be reported before the execution gives up: TTL + invocation + margin <= wait. Otherwise
    the GPU could start (and bill) a job whose execution has already timed out and released its credits. The
    invocation gets at most half of the usable wait (``INFERENCE_INVOCATION_TIMEOUT_SECONDS``, default 900 s,
    SageMaker's own default), the queue the rest. Only a wait under ~4 minutes, below SageMaker's 60 s minimum
    TTL, cannot be kept inside (tests, local runs)."""
    usable = wait_seconds - ASYNC_SETTLE_MARGIN_SECONDS
    low, high = INVOCATION_TIMEOUT_RANGE
    invocation = max(low, min(config.inference_invocation_timeout_seconds(), high, usable // 2))
    ttl_low, ttl_high = REQUEST_TTL_RANGE
    ttl = max(ttl_low, min(usable - invocation, ttl_high))
    return invocation, ttl


# ---- S3 "Object Created" (via EventBridge → SQS) → start the workflow once ------------------------------------


def start_workflow(sfn: Any, detail: dict[str, Any], s3: Any = None) -> str | None:
    """Start the job's execution for an uploaded object (``uploads/``) or a file of a batch's drop folder
    (``drop/``). Returns the execution name, or None when ignored (or, for a drop, recorded without a workflow)."""
    bucket = detail["bucket"]["name"]
    key = detail["object"]["key"]
    version_id = detail["object"].get("version-id")
    if key.startswith("drop/"):
        return _start_drop(sfn, s3 if s3 is not None else aws.client("s3"), bucket, key, version_id)
    parsed = jobs.parse_source_key(key)
    if parsed is None:
        logger.warning("ignoring object outside the upload layout", extra={"bucket": bucket, "key": key})
        return None
    tenant_id, job_id = parsed
    name = execution_name(job_id, bucket, key, version_id)
    with db.transaction(tenant_id) as conn:
        claimed = jobs.claim_upload(conn, job_id, tenant_id, key, version_id, name)
    if claimed is None:
        logger.info("upload already handled, unknown or deleted job", extra={"job_id": job_id, "key": key})
        return None
    _start_execution(sfn, job_id, tenant_id, bucket, key, version_id, lanes.lane_of(claimed), name)
    return name


def _start_execution(
    sfn: Any,
    job_id: str,
    tenant_id: str,
    bucket: str,
    key: str,
    version_id: str | None,
    lane: str,
    name: str,
) -> None:
    queue_wait, wait = lanes.workflow_waits(lane)  # RunInference waits for the queue and the inference
    workflow_input = WorkflowInput(
        job_id=job_id,
        tenant_id=tenant_id,
        bucket=bucket,
        key=key,
        version_id=version_id,
        inference_timeout_seconds=wait,
        queue_wait_seconds=queue_wait,
    )
    try:
        sfn.start_execution(
            stateMachineArn=config.state_machine_arn(), name=name, input=workflow_input.model_dump_json()
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        logger.info("execution already started", extra={"job_id": job_id, "execution": name})


def _object_key(s3: Any, bucket: str, key: str) -> str:
    """The real key of an event's object. S3's event formats URL-encode keys (``red flower.jpg`` →
    ``red+flower.jpg``); when the key as given has ``+`` or ``%`` and no such object exists, it is decoded."""
    if "+" not in key and "%" not in key:
        return key
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return key
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey"}:
            raise
    return unquote_plus(key)


def _start_drop(sfn: Any, s3: Any, bucket: str, key: str, version_id: str | None) -> str | None:
    """A file in a batch's drop folder: the manifest updates the batch; an image gets its one job (created or
    found by batch and file name), claimed for this object version and started with the uploads' execution
    naming, or rejected without a workflow when the batch refuses it."""
    if bucket != config.drop_bucket():
        logger.warning("ignoring a drop key outside the drop bucket", extra={"bucket": bucket, "key": key})
        return None
    key = _object_key(s3, bucket, key)
    drop = batches.parse_drop_key(key)
    if drop is None:
        logger.warning("ignoring object outside the drop layout", extra={"bucket": bucket, "key": key})
        return None
    if not batches.tenant_exists(drop.tenant_id):
        logger.warning("ignoring a drop for an unknown tenant", extra={"bucket": bucket, "key": key})
        return None
    if drop.filename in MANIFEST_FILES:
        _receive_manifest(s3, bucket, key, version_id, drop)
        return None
    if batches.wants_manifest(drop):  # a manifest uploaded first may have an event still on its way
        prefix = batches.drop_prefix(drop.tenant_id, drop.folder)
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}manifest.")
        present = {entry["Key"] for entry in listing.get("Contents", ())}
        for manifest_name in MANIFEST_FILES:
            if prefix + manifest_name in present:
                manifest = batches.DropKey(drop.tenant_id, drop.folder, manifest_name)
                _receive_manifest(s3, bucket, prefix + manifest_name, None, manifest)
                break

    def receive(conn: db.Conn) -> batches.FileOutcome:
        return batches.receive_file(
            conn,
            drop,
            bucket,
            key,
            version_id,
            lambda job_id: execution_name(job_id, bucket, key, version_id),
        )

    outcome = db.atomic(drop.tenant_id, receive)
    name: str | None = None
    if outcome.action == "start" and outcome.job is not None:
        job = outcome.job
        name = str(job["execution_name"])
        job_id, lane = str(job["id"]), lanes.lane_of(job)
        _start_execution(sfn, job_id, drop.tenant_id, bucket, key, version_id, lane, name)
    batches.after_commit(drop.tenant_id, outcome.batch_id, s3)
    return name


def _receive_manifest(s3: Any, bucket: str, key: str, version_id: str | None, drop: batches.DropKey) -> None:
    data, version, error = batches.read_manifest(s3, bucket, key, version_id)
    if error == "missing":
        logger.warning("manifest object is gone", extra={"key": key})
        return

    def record(conn: db.Conn) -> str:
        batches.receive_manifest(conn, drop, key, version, data, error)
        batch = batches.find_for_drop(conn, drop.tenant_id, drop.folder)
        assert batch is not None
        return str(batch["id"])

    batch_id = db.atomic(drop.tenant_id, record)
    batches.after_commit(drop.tenant_id, batch_id, s3)


# ---- state machine tasks --------------------------------------------------------------------------------------


def engine_path(mode: str, options: dict[str, Any]) -> EnginePath:
    """Where the job's image is made, decided once (``ValidateInput``; the state machine's ``ChooseEngine``):
    ``cpu`` for ghost work the studio engine does (the studio Lambda function, seconds from idle), ``gpu`` for the
    rest (on-model, the diffusion engine, and ``segmenter: "learned"``, whose weights only the GPU endpoint has).
    The studio function has no weights, so ``segmenter: "auto"`` is the studio engine's colour model there.
    ``GHOST_ON_LAMBDA=false`` sends all work to the GPU endpoint."""
    if mode != "ghost" or not config.ghost_on_lambda():
        return "gpu"
    if options.get("engine") not in (None, "studio") or options.get("segmenter") == "learned":
        return "gpu"
    return "cpu"


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
    preview = previews.OriginalCapture(event.job_id)  # the photo's preview, from the image decoded here
    info = images.inspect(
        data, config.max_image_pixels(), on_decoded=preview, draft_side=previews.ORIGINAL_SIDE
    )
    preview_key = _store_preview(s3, event, preview.webp)
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
        extra = {"preview_key": preview_key} if preview_key else {}
        jobs.transition(conn, event.job_id, "validated", image=image.model_dump(), cost=cost, **extra)
    return Validated(
        job_id=event.job_id,
        tenant_id=event.tenant_id,
        mode=job["mode"],
        cost=cost,
        image=image,
        options=job["options"] or {},
        engine_path=engine_path(job["mode"], job["options"] or {}),
    )


def _store_preview(s3: Any, event: WorkflowInput, webp: bytes | None) -> str | None:
    """Write the photo's preview to the results bucket (best effort: without a bucket, or on failure, None)."""
    if webp is None:
        return None
    try:
        bucket = config.results_bucket()
    except ModamodaError:
        logger.warning("no results bucket configured: the photo's preview is not stored")
        return None
    return previews.store_original(s3, bucket, event.tenant_id, event.job_id, webp)


def reserve_credits(event: ReserveInput) -> dict[str, Any]:
    """Hold the job's credits. For a batch job, a reservation that fails for lack of credits stops the batch in
    the same transaction (``batches.stop``), and a job of a stopped or cancelled batch reserves nothing."""

    def reserve(conn: db.Conn) -> tuple[tuple[credits.Hold, int] | InsufficientCredits, str | None]:
        batch = batches.lock_job_batch(conn, event.job_id)
        if batch is not None:
            batches.ensure_may_reserve(conn, batch, event.job_id)
        ttl = event.hold_ttl_seconds + HOLD_GRACE_SECONDS
        try:
            hold = credits.reserve(conn, event.tenant_id, event.job_id, event.cost, ttl)
        except InsufficientCredits as exc:
            if batch is None:
                raise
            batches.stop(conn, batch, event.job_id, exc.message)
            return exc, str(batch["id"])
        # The studio function runs next, with no task of ours in between: the job is being made from here on.
        if event.engine_path == "cpu" and not jobs.transition(conn, event.job_id, "processing"):
            raise JobEnded(f"the job is {jobs.load(conn, event.job_id)['status']}; it is not run")
        return (hold, credits.balance(conn, event.tenant_id)), None

    result, stopped_batch = db.atomic(event.tenant_id, reserve)
    if isinstance(result, InsufficientCredits):
        batches.after_commit(event.tenant_id, stopped_batch)  # the stop may have finished the batch
        raise result
    hold, balance = result
    return {"job_id": event.job_id, "hold": hold.status, "amount": hold.amount, "balance": balance}


def _outcome_of(error: dict[str, Any] | None) -> tuple[str, str, str]:
    """(status, code, message) for a job that ends through the release path."""
    if not error:
        return "failed", "internal_error", "the job ended without a result"
    name = str(error.get("Error", ""))
    answer = _engine_answer(error)
    if answer is not None:  # the studio function's refusal or failure: read as the async endpoint's
        ending = refusals.answer_outcome(answer)
        return ending.status, ending.code, ending.message
    code, message = split_cause(error.get("Cause"))
    if name == "InputRejected":
        return "rejected", code or "input_rejected", message
    if name == "InsufficientCredits":
        return "rejected", "insufficient_credits", message
    if name == "JobEnded":  # it had ended already (cancelled with its batch meanwhile): it keeps its ending
        return "failed", "internal_error", refusals.FAILED_MESSAGE
    if name in {"States.Timeout", "States.HeartbeatTimeout"}:
        return "failed", "inference_timeout", "the inference did not finish in time; no credits were charged"
    if name == "InferenceFailed":
        return "failed", code or "inference_failed", refusals.shown(message, client_error=False)
    # anything else (a task's own failure, a service error): the raw text is logged, never stored for the customer
    logger.warning(
        "job ended by an unexpected error", extra={"error": name, "cause": str(error.get("Cause"))[:2000]}
    )
    return "failed", "internal_error", refusals.FAILED_MESSAGE


def _engine_answer(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The engine's answer carried by a ``RunStudio`` failure (``InputRejected`` or ``InferenceFailed`` raised by
    the studio function with the answer as its message), or None for any other failure."""
    if not error or error.get("Error") not in refusals.ENGINE_ANSWER_ERRORS:
        return None
    return refusals.engine_answer(error.get("Cause"))


def _settle(event: SettleInput, settle: Any) -> SettleResult:
    def work(conn: db.Conn) -> tuple[SettleResult, str | None]:
        batch = batches.lock_job_batch(conn, event.job_id)  # first: the lock order (batch, hold, tenant, job)
        hold = settle(conn, batch)
        job = jobs.load(conn, event.job_id)
        result = SettleResult(
            job_id=event.job_id, status=job["status"], hold=hold.status, error_code=job["error_code"]
        )
        return result, str(batch["id"]) if batch else None

    result, batch_id = db.atomic(event.tenant_id, work)
    # after commit: the batch's report if this settlement finished it, the outbox rows it recorded
    batches.after_commit(event.tenant_id, batch_id)
    return result


def capture_credits(event: SettleInput, s3: Any = None) -> SettleResult:
    """After a successful inference: spend the hold (once) and mark the job succeeded. With ``event.result`` (the
    studio function's answer, ``RecordStudioResult``) the image is first stored exactly as an async success is
    (:func:`_deliver`), in the same capture."""
    if event.result is not None:
        return _capture_result(s3 if s3 is not None else aws.client("s3"), event)

    def capture(conn: db.Conn, batch: dict[str, Any] | None) -> credits.Hold:
        hold = credits.capture(conn, event.job_id)
        if hold.status == "captured":
            batches.finish_job(conn, event.job_id, "succeeded", batch=batch)
        return hold

    return _settle(event, capture)


def _capture_result(s3: Any, event: SettleInput) -> SettleResult:
    assert event.result is not None
    output = event.result.output_location
    bucket, key = storage.split_s3_uri(output)
    if bucket != config.results_bucket() or not key.startswith(OUTPUT_PREFIX):
        raise ValueError(f"an inference output must be under s3://{config.results_bucket()}/{OUTPUT_PREFIX}")
    with db.transaction(event.tenant_id) as conn:
        job = jobs.load(conn, event.job_id)
    hold, _ = _deliver(s3, job, output, event.result.content_type)
    with db.transaction(event.tenant_id) as conn:
        job = jobs.load(conn, event.job_id)
    return SettleResult(
        job_id=event.job_id, status=job["status"], hold=hold.status, error_code=job["error_code"]
    )


def release_credits(event: SettleInput, *, quality: dict[str, float] | None = None) -> SettleResult:
    """On rejection, failure or timeout: return the hold (if any, once) and record why the job ended (and the
    engine's ``quality``, when it refused a photo as not good enough), in the transaction that makes it final."""
    status, code, message = _outcome_of(event.error)
    if quality is None and status == "rejected":  # the studio function's refusal carries the engine's quality
        quality = refusals.quality(_engine_answer(event.error))
    extra: dict[str, Any] = {"quality": quality} if quality else {}

    def release(conn: db.Conn, batch: dict[str, Any] | None) -> credits.Hold:
        hold = credits.release(conn, event.job_id, reason=code)
        if hold.status != "captured":  # a captured hold means the result was delivered: the job succeeded
            batches.finish_job(
                conn,
                event.job_id,
                status,
                batch=batch,
                error_code=code,
                error_message=message[:1000],
                **extra,
            )
        return hold

    return _settle(event, release)


def sweep_expired_holds(sfn: Any, limit: int = 200) -> dict[str, int]:
    """Release holds past their deadline (a lost execution, a failed settlement) and end their jobs.

    A still-waiting execution is told the inference failed, so it ends through its own (now no-op) release.
    """
    try:
        swept = _sweep(sfn, limit)
        swept["batch_reports_written"] = batches.flush_unwritten()
        return swept
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


def upload_expired_message(wait_seconds: int) -> str:
    return (
        f"The photo did not arrive within {durations.in_words(wait_seconds)} of its upload link, so this job was closed; "
        "nothing was charged. Create a new job to process the photo."
    )


def sweep_expired_uploads(limit: int = 200) -> int:
    """End the jobs that never got their photo: still ``awaiting_upload`` ``UPLOAD_WAIT_SECONDS`` after their
    newest upload URL was issued. Each ends ``cancelled`` with ``upload_expired`` (a final status, so the webhook
    hears ``job.cancelled`` and a batch counts the file as ended). Returns how many this run ended.

    Idempotent and safe beside other sweeps, a fresh upload URL and an upload landing at the same moment: each
    job is re-checked under its row lock in its own tenant's transaction, so exactly one of them changes it (a
    claim after the expiry finds the job final and the upload is ignored, as for a deleted job). Such a job has
    reserved nothing (credits are held only after validation); a hold, if one existed, would be released once
    like any other."""
    wait = config.upload_wait_seconds()
    message = upload_expired_message(wait)
    rows = db.system_rows("SELECT job_id, tenant_id FROM app_expired_uploads(%s, %s)", (wait, limit))
    ended = 0
    for row in rows:
        job_id, tenant_id = str(row["job_id"]), str(row["tenant_id"])

        def expire(conn: db.Conn, job_id: str = job_id) -> tuple[bool, str | None]:
            batch = batches.lock_job_batch(conn, job_id)
            batch_id = str(batch["id"]) if batch else None
            if not jobs.lock_overdue_upload(conn, job_id, wait):
                return False, batch_id  # uploaded, renewed, deleted or expired by another sweep meanwhile
            # nothing is held before an upload; were anything held, it is released here, once
            credits.release(conn, job_id, reason=jobs.UPLOAD_EXPIRED)
            finished = batches.finish_job(
                conn,
                job_id,
                "cancelled",
                batch=batch,
                error_code=jobs.UPLOAD_EXPIRED,
                error_message=message,
            )
            return finished is not None, batch_id

        done, batch_id = db.atomic(tenant_id, expire)
        if done:
            ended += 1
            batches.after_commit(tenant_id, batch_id)
    return ended


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
        content_type = note.response_parameters.content_type or "image/png"
        hold, result_key = _deliver(s3, job, output, content_type)
        outcome = "succeeded" if hold.status == "captured" else "late"
        if token:
            _resume(sfn, token, success={"result_key": result_key, "output_location": output})
        _leave_endpoint(tenant_id, job_id)
        return outcome
    # An engine refusal ends the job rejected with the engine's sentence, through the same path as a photo that
    # validation refuses (InputRejected); anything else fails it with a plain message. The raw reason is logged.
    document = _read_metadata(s3, job_id)
    ending = refusals.outcome(note.failure_reason, document)
    logger.warning(
        "inference failed",
        extra={"job_id": job_id, "code": ending.code, "failure_reason": (note.failure_reason or "")[:2000]},
    )
    error_name = "InputRejected" if ending.refused else "InferenceFailed"
    cause = f"{ending.code}: {ending.message}"
    release_credits(
        SettleInput(
            job_id=job_id, tenant_id=str(job["tenant_id"]), error={"Error": error_name, "Cause": cause}
        ),
        quality=refusals.quality(document) if ending.refused else None,
    )
    if token:
        _resume(sfn, token, failure=(error_name, cause))
    _leave_endpoint(tenant_id, job_id)
    return "rejected" if ending.refused else "failed"


def _leave_endpoint(tenant_id: str, job_id: str) -> None:
    """After the execution was resumed: the job no longer counts as at the GPU endpoint (the scheduler's cap)."""
    with db.transaction(tenant_id) as conn:
        jobs.queue_done(conn, job_id)


def _deliver(s3: Any, job: dict[str, Any], output: str, content_type: str) -> tuple[credits.Hold, str]:
    """An engine's image for ``job`` (``output``: where the async endpoint, or the studio function in its place,
    wrote it): copied to the job's result key, its WebP thumbnail made, a batch job's consistency measured, the
    engine's quality read from the metadata document; then the hold captured and the job succeeded, once. A result
    for a job already settled otherwise is discarded (the hold stays as it is). Returns the hold and the result
    key. Shared by the async success notification and ``RecordStudioResult``."""
    job_id, tenant_id = str(job["id"]), str(job["tenant_id"])
    content_type = content_type.split(";")[0].strip()
    extension = RESULT_EXTENSIONS.get(content_type, "bin")
    in_batch = bool(job.get("batch_id") and job.get("result_name"))
    # a batch job's result: results/{tenant}/{batch}/{sku or file stem}-{mode}.{ext}
    result_key = (
        batches.result_key(job, extension) if in_batch else f"results/{tenant_id}/{job_id}.{extension}"
    )
    metrics = None
    quality = None
    thumb_key = None
    if job["status"] not in {"failed", "rejected", "cancelled"}:
        storage.copy(s3, output, config.results_bucket(), result_key, content_type)
        thumb_key = previews.store_thumbnail(s3, config.results_bucket(), tenant_id, job_id, output)
        if in_batch:
            metrics = _measure(s3, output, job_id)
        quality = refusals.quality(_read_metadata(s3, job_id))
    extra: dict[str, Any] = {"quality": quality} if quality else {}
    if thumb_key:
        extra["thumb_key"] = thumb_key

    def capture(conn: db.Conn) -> tuple[credits.Hold, str | None]:
        batch = batches.lock_job_batch(conn, job_id)  # first: the lock order (batch, hold, tenant, job)
        hold = credits.capture(conn, job_id)
        if hold.status == "captured":
            batches.record_metrics(conn, job_id, metrics)  # before a last job's report is fixed
            batches.finish_job(conn, job_id, "succeeded", batch=batch, result_key=result_key, **extra)
        return hold, str(batch["id"]) if batch else None

    hold, batch_id = db.atomic(tenant_id, capture)
    batches.after_commit(tenant_id, batch_id, s3)  # after commit: a finished batch's report, the outbox
    if hold.status != "captured":
        logger.warning(
            "late result for a settled job is discarded", extra={"job_id": job_id, "hold": hold.status}
        )
    return hold, result_key


def _read_metadata(s3: Any, job_id: str) -> dict[str, Any] | None:
    """The job's metadata document written by the container (``metadata_s3_uri``), or None when there is none
    or it cannot be read: it is advisory, so it never fails the notification."""
    try:
        response = s3.get_object(Bucket=config.results_bucket(), Key=metadata_key(job_id))
        data = response["Body"].read(MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            raise ValueError("metadata document over the size limit")
        document = json.loads(data)
    except Exception as exc:  # absent (an older container, a failed write), unreadable or not JSON
        missing = getattr(exc, "response", {}).get("Error", {}).get("Code") in {"NoSuchKey", "404"}
        if not missing:
            logger.warning("could not read the job's metadata", extra={"job_id": job_id, "error": repr(exc)})
        return None
    return document if isinstance(document, dict) else None


def _measure(s3: Any, output: str, job_id: str) -> dict[str, float] | None:
    """The consistency numbers of a batch job's result (the async endpoint's output object). SageMaker keeps only
    the response body, so they are measured here from the image itself (``consistency.measure_result``)."""
    try:
        bucket, key = storage.split_s3_uri(output)
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return consistency.measure_result(data)
    except Exception:  # the check is advisory: a result that cannot be measured is still delivered
        logger.warning("could not measure the result for the consistency check", extra={"job_id": job_id})
        return None


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
