"""The fair scheduler in front of the GPU endpoint: diffusion jobs wait in our queue (PostgreSQL, on their job
rows) and a dispatcher hands them to the SageMaker asynchronous endpoint a few at a time, so that the endpoint's own
first-in-first-out queue stays short and the order is ours.

* **Enqueue** (``RunInference``'s task, :func:`enqueue`): the request document goes to S3 and the job joins the
  queue of its lane (``functions/common/lanes.py``) with its task token, as ``queued``. Its credit hold is
  stretched to cover the queue-wait bound plus the inference timeout (and the grace the sweeper leaves). Then the
  dispatcher is started (:func:`kick`).
* **Dispatch** (:func:`dispatch`; run when a job is queued, when a result was settled, and on a schedule): under
  one advisory lock, while fewer than ``INFERENCE_MAX_IN_FLIGHT`` jobs are at the endpoint, the next job is claimed
  (``queued → dispatching``, status ``processing``; its row and its hold locked with ``SKIP LOCKED``) by lane
  (interactive, normal, bulk), then the tenant whose last dispatch in that lane is oldest, then arrival
  (``app_inference_next``). The claim resets the hold's deadline to now + the inference wait + the grace: the
  inference timeout counts from here. After the commit each claimed job is handed over (``InvokeEndpointAsync``,
  InferenceId = job id) and marked ``dispatched``. A failed call puts the job back in the queue with backoff, and
  fails it (``inference_failed``, nothing charged) after ``INFERENCE_DISPATCH_ATTEMPTS``.
* **Expire** (:func:`expire_overdue`, by every dispatch and every sweep): a job still queued after its queue-wait
  bound fails ``queue_timeout``; a job at the endpoint past its inference deadline fails ``inference_timeout``;
  each releases its hold and fails its task token, in the transaction that re-checks the condition under the
  locks. A queued job that ended otherwise (cancelled with its batch) has its waiting execution told.
* ``SCHEDULER_MODE=fifo``: no cap and arrival order (every job handed over at once, the endpoint's queue decides),
  as before the scheduler; the job's whole wait then counts from the hand-over.

Safe under at-least-once delivery and concurrent dispatchers: only one claims at a time (the advisory lock), a
claim is a state transition on a locked row (``queued`` only), and a job whose hand-over outcome is unknown (a
dispatcher that died after claiming) stays counted at the endpoint until its inference deadline ends it: no job
is handed over twice by us, none is lost.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.common import batches, config, credits, db, jobs, lanes, pipeline
from functions.common.models import FINAL_STATUSES, LANES, EnqueueInput
from functions.common.observability import logger

LOCK_ID = 0x4D6F_6471  # "Modq": serialises the dispatchers' claims (pg_advisory_xact_lock)
REQUEST_PREFIX = "inference/input/"  # the request document of each job: {REQUEST_PREFIX}{job}.json
CLAIM_BATCH = 100  # the most jobs one claim transaction takes
MAX_ROUNDS = 10  # claims per dispatch pass (fifo: up to 1000 jobs handed over per pass)
UNLIMITED = 1_000_000  # fifo's cap
BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 300
_NOW_TEXT = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

# Why a job leaves the queue without a result: (the Step Functions error its task token is failed with, the code
# the job ends with, the customer's sentence). ``ended``: the job ended otherwise; its own code is kept.
QUEUE_TIMEOUT = "queue_timeout"
INFERENCE_TIMEOUT = "inference_timeout"
DISPATCH_FAILED = "dispatch_failed"
ENDED = "ended"
_ENDINGS: dict[str, tuple[str, str, str]] = {
    QUEUE_TIMEOUT: (
        "InferenceFailed",
        "queue_timeout",
        "The image engine was too busy to start this photo in time; nothing was charged.",
    ),
    INFERENCE_TIMEOUT: (
        "InferenceFailed",
        "inference_timeout",
        "the inference did not finish in time; no credits were charged",
    ),
    DISPATCH_FAILED: (
        "InferenceFailed",
        "inference_failed",
        "The image engine could not be reached; nothing was charged. Please try again.",
    ),
}
# The condition each ending re-checks under the job's row lock (the lookup that found it took no lock).
_STILL: dict[str, str] = {
    QUEUE_TIMEOUT: "queue_state = 'queued' AND status = 'validated' AND queue_deadline < now()",
    INFERENCE_TIMEOUT: "queue_state IN ('dispatching', 'dispatched') AND inference_deadline < now()",
    DISPATCH_FAILED: "queue_state = 'dispatching' AND status = 'processing'",
    ENDED: "queue_state = 'queued' AND status = ANY(%(final)s)",
}


@dataclass(frozen=True)
class Claimed:
    job_id: str
    tenant_id: str
    lane: str
    wait_seconds: int  # from the hand-over: the inference's wait (fifo: the whole wait)
    attempts: int


@dataclass
class Pass:
    """What one dispatch pass did."""

    mode: str
    capacity: int
    dispatched: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)  # handed back to the queue (the call failed; backoff)
    ended: dict[str, int] = field(default_factory=dict)  # reason → jobs ended (timeouts, failed hand-overs)
    lanes: dict[str, dict[str, float]] = field(default_factory=dict)  # lane → queued, in_flight, oldest wait

    @property
    def queued(self) -> int:
        return int(sum(v["queued"] for v in self.lanes.values()))

    @property
    def in_flight(self) -> int:
        return int(sum(v["in_flight"] for v in self.lanes.values()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "capacity": self.capacity,
            "dispatched": len(self.dispatched),
            "returned": len(self.returned),
            "ended": dict(self.ended),
            "queued": self.queued,
            "in_flight": self.in_flight,
            "lanes": self.lanes,
        }


def request_key(job_id: str) -> str:
    return f"{REQUEST_PREFIX}{job_id}.json"


# ---- enqueue (RunInference) -------------------------------------------------------------------------------------


def enqueue(s3: Any, event: EnqueueInput) -> dict[str, Any]:
    """Write the job's request document and put the job in the GPU queue with its task token. Idempotent: a
    replay (Step Functions retries the task) only records the newer token of a job queued or dispatched already."""
    bucket = config.results_bucket()
    request = {
        "job_id": event.job_id,
        "mode": event.mode,
        "image": {
            "s3_uri": f"s3://{event.image.bucket}/{event.image.key}",
            **({"version_id": event.image.version_id} if event.image.version_id else {}),
        },
        "options": event.options,
        "metadata_s3_uri": f"s3://{bucket}/{pipeline.metadata_key(event.job_id)}",
    }
    s3.put_object(
        Bucket=bucket,
        Key=request_key(event.job_id),
        Body=json.dumps(request).encode(),
        ContentType="application/json",
    )
    fair = config.scheduler_mode() == "fair"
    # fair: the inference timeout counts from the hand-over; fifo: the job waits in the endpoint's queue instead
    wait = event.timeout_seconds - event.queue_wait_seconds if fair else event.timeout_seconds

    def work(conn: db.Conn) -> dict[str, Any]:
        # the lock order: the hold, then the job's row
        conn.execute("SELECT 1 FROM holds WHERE job_id = %s FOR UPDATE", (event.job_id,))
        job = jobs.load(conn, event.job_id, lock=True)
        if job["status"] in FINAL_STATUSES:  # cancelled with its batch (or ended otherwise) meanwhile
            raise pipeline.JobEnded(f"the job is {job['status']}; it is not run")
        if job["queue_state"] is not None:  # a replay: queued or handed over already
            conn.execute("UPDATE jobs SET task_token = %s WHERE id = %s", (event.task_token, event.job_id))
            return {"job_id": event.job_id, "lane": job["lane"], "queue_state": job["queue_state"]}
        if job["status"] != "validated":
            raise pipeline.JobEnded(f"the job is {job['status']}; it cannot wait for the GPU")
        lane = lanes.lane_of(job)
        conn.execute(
            "UPDATE jobs SET task_token = %(token)s, lane = %(lane)s, queue_state = 'queued', enqueued_at = now(),"
            " queue_deadline = now() + make_interval(secs => %(queue)s), dispatch_after = now(),"
            " inference_wait_seconds = %(wait)s, updated_at = now() WHERE id = %(id)s",
            {
                "token": event.task_token,
                "lane": lane,
                "queue": event.queue_wait_seconds,
                "wait": wait,
                "id": event.job_id,
            },
        )
        # the hold covers the whole wait: in the queue, then at the endpoint (and the sweeper's grace)
        conn.execute(
            "UPDATE holds SET expires_at = GREATEST(expires_at, now() + make_interval(secs => %s))"
            " WHERE job_id = %s AND status = 'held'",
            (event.timeout_seconds + pipeline.HOLD_GRACE_SECONDS, event.job_id),
        )
        return {"job_id": event.job_id, "lane": lane, "queue_state": "queued"}

    return db.atomic(event.tenant_id, work)


def kick(lambda_client: Any, trigger: str) -> bool:
    """Start the dispatcher asynchronously (``DISPATCH_FUNCTION_NAME``); best effort: the schedule runs it anyway.
    Returns whether it was started."""
    name = config.dispatch_function_name()
    if not name:
        return False
    try:
        lambda_client.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"trigger": trigger}).encode()
        )
    except Exception as exc:  # never fail the caller's own work over it
        logger.warning("could not start the dispatcher", extra={"trigger": trigger, "error": repr(exc)[:500]})
        return False
    return True


# ---- dispatch ---------------------------------------------------------------------------------------------------


def dispatch(sagemaker_runtime: Any, sfn: Any) -> Pass:
    """One dispatch pass: end what is overdue, then hand the next jobs to the endpoint while there is room."""
    fair = config.scheduler_mode() == "fair"
    capacity = config.inference_max_in_flight() if fair else UNLIMITED
    batch_capacity = config.inference_batch_max_in_flight() if fair else UNLIMITED
    result = Pass(mode="fair" if fair else "fifo", capacity=capacity)
    result.ended = expire_overdue(sfn)
    for _ in range(MAX_ROUNDS):
        claimed = claim(capacity, fair=fair, limit=CLAIM_BATCH, batch_capacity=batch_capacity)
        for job in claimed:
            outcome = hand_over(sagemaker_runtime, sfn, job)
            if outcome == "dispatched":
                result.dispatched.append(job.job_id)
            elif outcome == "returned":
                result.returned.append(job.job_id)
            else:
                result.ended[DISPATCH_FAILED] = result.ended.get(DISPATCH_FAILED, 0) + 1
        if len(claimed) < CLAIM_BATCH:
            break
    result.lanes = queue_stats()
    return result


def claim(capacity: int, *, fair: bool, limit: int, batch_capacity: int | None = None) -> list[Claimed]:
    """Claim the next jobs for the endpoint, up to ``capacity`` in flight (``batch_capacity`` for a job of the
    batch lanes: the dispatch buffer is kept for interactive work) and ``limit`` now, in one transaction under
    the dispatchers' advisory lock."""
    batch_capacity = capacity if batch_capacity is None else min(batch_capacity, capacity)

    def work(conn: db.Conn) -> list[Claimed]:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        row = conn.execute("SELECT app_inference_in_flight() AS n").fetchone()
        assert row is not None
        in_flight = int(row["n"])
        free = min(limit, capacity - in_flight)
        claimed: list[Claimed] = []
        skipped: list[str] = []
        while len(claimed) < free:
            head = conn.execute(
                "SELECT job_id, tenant_id, lane FROM app_inference_next(%s, %s::uuid[])", (fair, skipped)
            ).fetchone()
            if head is None:
                break
            if head["lane"] != lanes.INTERACTIVE and in_flight + len(claimed) >= batch_capacity:
                break  # the head is the best waiting job: no interactive job waits, and the rest is its buffer
            job_id, tenant_id = str(head["job_id"]), str(head["tenant_id"])
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))  # the job's own tenant
            got = _claim_one(conn, job_id)
            if got is None:
                skipped.append(job_id)  # locked by someone else (a cancel, a settlement): not now
            else:
                claimed.append(got)
        return claimed

    return db.atomic(None, work)


def _claim_one(conn: db.Conn, job_id: str) -> Claimed | None:
    """``queued → dispatching`` for one job of the transaction's tenant, its hold locked first (the lock order)
    and its deadline reset to now + the inference wait; None when either is locked or the job changed."""
    hold = conn.execute(
        "SELECT status FROM holds WHERE job_id = %s FOR UPDATE SKIP LOCKED", (job_id,)
    ).fetchone()
    if hold is None:
        if conn.execute("SELECT 1 FROM holds WHERE job_id = %s", (job_id,)).fetchone() is not None:
            return None  # locked: being settled or cancelled
    elif hold["status"] != "held":
        return None  # settled: the job is ending
    row = conn.execute(
        "WITH c AS (SELECT id FROM jobs WHERE id = %s AND queue_state = 'queued' AND status = 'validated'"
        "           AND deleted_at IS NULL AND dispatch_after <= now() FOR UPDATE SKIP LOCKED)"
        # clock_timestamp(): each claim of a pass has its own instant, so the next pick sees this one's turn
        " UPDATE jobs j SET status = 'processing', queue_state = 'dispatching', dispatched_at = clock_timestamp(),"
        "   dispatch_attempts = j.dispatch_attempts + 1, updated_at = now(),"
        "   inference_deadline = clock_timestamp() + make_interval(secs => j.inference_wait_seconds),"
        f"   stages = j.stages || jsonb_build_object('processing', COALESCE(j.stages->>'processing', {_NOW_TEXT}))"
        " FROM c WHERE j.id = c.id"
        " RETURNING j.id, j.tenant_id, j.lane, j.inference_wait_seconds, j.dispatch_attempts",
        (job_id,),
    ).fetchone()
    if row is None:
        return None
    if hold is not None:
        conn.execute(
            "UPDATE holds SET expires_at = now() + make_interval(secs => %s) WHERE job_id = %s",
            (int(row["inference_wait_seconds"]) + pipeline.HOLD_GRACE_SECONDS, job_id),
        )
    return Claimed(
        job_id=str(row["id"]),
        tenant_id=str(row["tenant_id"]),
        lane=str(row["lane"]),
        wait_seconds=int(row["inference_wait_seconds"]),
        attempts=int(row["dispatch_attempts"]),
    )


def hand_over(sagemaker_runtime: Any, sfn: Any, job: Claimed) -> str:
    """``InvokeEndpointAsync`` for a claimed job: ``dispatched``, ``returned`` (the call failed: back in the queue
    with backoff) or ``failed`` (the call failed for the last time: the job failed, nothing charged)."""
    invocation_timeout, request_ttl = pipeline.async_timeouts(job.wait_seconds)
    try:
        sagemaker_runtime.invoke_endpoint_async(
            EndpointName=config.inference_endpoint_name(),
            InputLocation=f"s3://{config.results_bucket()}/{request_key(job.job_id)}",
            ContentType="application/json",
            Accept="image/*",
            InferenceId=job.job_id,
            InvocationTimeoutSeconds=invocation_timeout,
            RequestTTLSeconds=request_ttl,
        )
    except (
        Exception
    ) as exc:  # throttled, endpoint missing or updating, network: the job is not at the endpoint
        logger.warning(
            "the endpoint refused a job",
            extra={"job_id": job.job_id, "attempt": job.attempts, "error": repr(exc)[:500]},
        )
        return _dispatch_failed(sfn, job, exc)
    try:
        db.atomic(
            job.tenant_id,
            lambda conn: conn.execute(
                "UPDATE jobs SET queue_state = 'dispatched' WHERE id = %s AND queue_state = 'dispatching'",
                (job.job_id,),
            ),
        )
    except Exception as exc:  # it is at the endpoint all the same; ``dispatching`` counts as at the endpoint
        logger.warning("could not mark a job dispatched", extra={"job_id": job.job_id, "error": repr(exc)})
    return "dispatched"


def backoff_seconds(attempt: int) -> float:
    """The wait before a job whose hand-over failed ``attempt`` times is tried again (capped, jittered)."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter


def _dispatch_failed(sfn: Any, job: Claimed, error: Exception) -> str:
    if job.attempts >= config.inference_dispatch_attempts():
        return "failed" if _end(sfn, job.job_id, job.tenant_id, DISPATCH_FAILED) else "returned"

    def back(conn: db.Conn) -> None:
        conn.execute("SELECT 1 FROM holds WHERE job_id = %s FOR UPDATE", (job.job_id,))
        row = conn.execute(
            "UPDATE jobs SET status = 'validated', queue_state = 'queued', inference_deadline = NULL,"
            " dispatch_after = now() + make_interval(secs => %s), dispatch_error = %s, updated_at = now()"
            " WHERE id = %s AND queue_state = 'dispatching' AND status = 'processing' RETURNING queue_deadline",
            (backoff_seconds(job.attempts), repr(error)[:1000], job.job_id),
        ).fetchone()
        if row is not None:  # the hold covers the queue again
            conn.execute(
                "UPDATE holds SET expires_at = GREATEST(%s, now()) + make_interval(secs => %s)"
                " WHERE job_id = %s AND status = 'held'",
                (row["queue_deadline"], job.wait_seconds + pipeline.HOLD_GRACE_SECONDS, job.job_id),
            )

    db.atomic(job.tenant_id, back)
    return "returned"


# ---- expiry ------------------------------------------------------------------------------------------------------


def expire_overdue(sfn: Any, limit: int = 200) -> dict[str, int]:
    """End the queue entries past their deadlines (and tell the executions of queued jobs that ended otherwise).
    Returns reason → how many were ended by this call."""
    rows = db.system_rows("SELECT job_id, tenant_id, reason FROM app_inference_overdue(%s)", (limit,))
    ended: dict[str, int] = {}
    for row in rows:
        reason = str(row["reason"])
        if _end(sfn, str(row["job_id"]), str(row["tenant_id"]), reason):
            ended[reason] = ended.get(reason, 0) + 1
    return ended


def _end(sfn: Any, job_id: str, tenant_id: str, reason: str) -> bool:
    """End one queue entry for ``reason`` if its condition still holds under the locks (batch, hold, job: the lock
    order): the job leaves the queue (``done``) and, if it was still running, fails with the reason's code and its
    hold is released, in one transaction; then the waiting execution is told. False when it changed meanwhile."""

    def work(conn: db.Conn) -> tuple[dict[str, Any], str | None] | None:
        batch = batches.lock_job_batch(conn, job_id)
        credits.get_hold(conn, job_id, lock=True)
        job = conn.execute(
            f"SELECT * FROM jobs WHERE id = %(id)s AND {_STILL[reason]} FOR UPDATE",
            {"id": job_id, "final": list(FINAL_STATUSES)},
        ).fetchone()
        if job is None:
            return None
        conn.execute("UPDATE jobs SET queue_state = 'done', updated_at = now() WHERE id = %s", (job_id,))
        if reason != ENDED and job["status"] not in FINAL_STATUSES:
            _, code, message = _ENDINGS[reason]
            credits.release(conn, job_id, reason=code)
            batches.finish_job(conn, job_id, "failed", batch=batch, error_code=code, error_message=message)
        return dict(job), str(batch["id"]) if batch else None

    done = db.atomic(tenant_id, work)
    if done is None:
        return False
    job, batch_id = done
    try:
        batches.after_commit(tenant_id, batch_id)  # a finished batch's report, the outbox
    except Exception:  # the sweeper writes a report left unwritten; the execution is told all the same
        logger.exception("after-commit work failed", extra={"job_id": job_id, "batch_id": batch_id})
    if job.get("task_token"):
        try:
            pipeline._resume(sfn, str(job["task_token"]), failure=_failure(reason, job))
        except Exception as exc:  # the execution ends at its own timeout; the rest of the pass goes on
            logger.warning("could not tell the execution", extra={"job_id": job_id, "error": repr(exc)[:500]})
    logger.info("job left the GPU queue", extra={"job_id": job_id, "reason": reason})
    return True


def _failure(reason: str, job: dict[str, Any]) -> tuple[str, str]:
    """The error and cause the waiting execution is failed with (its ReleaseCredits reads the code from it)."""
    if reason == ENDED:
        code = job.get("error_code") or job["status"]
        return "JobEnded", f"{code}: the job ended while it waited for the GPU ({job['status']})"
    error, code, message = _ENDINGS[reason]
    return error, f"{code}: {message}"


# ---- the queue's depth (metrics, autoscaling) --------------------------------------------------------------------


def queue_stats() -> dict[str, dict[str, float]]:
    """lane → ``queued``, ``in_flight`` and ``oldest_wait_seconds`` (every lane, zeros included)."""
    stats: dict[str, dict[str, float]] = {
        lane: {"queued": 0, "in_flight": 0, "oldest_wait_seconds": 0.0} for lane in LANES
    }
    for row in db.system_rows("SELECT * FROM app_inference_queue_stats()", ()):
        stats[str(row["lane"])] = {
            "queued": int(row["queued"]),
            "in_flight": int(row["in_flight"]),
            "oldest_wait_seconds": round(float(row["oldest_wait_seconds"]), 3),
        }
    return stats


QUEUE_DEPTH_METRIC = (
    "InferenceQueueDepth"  # queued + at the endpoint: what autoscaling follows (infra/inference.py)
)


def publish(add_metric: Callable[..., Any], add_dimension: Callable[..., Any], result: Pass) -> None:
    """The queue's depth as CloudWatch metrics (powertools ``Metrics``; dimension ``EndpointName``):
    ``InferenceQueueDepth`` (queued + at the endpoint, the autoscaling metric), ``InferenceQueued``,
    ``InferenceInFlight``, ``InferenceOldestWaitSeconds`` and ``InferenceDispatched``."""
    add_dimension(name="EndpointName", value=config.inference_endpoint_name())
    oldest = max((v["oldest_wait_seconds"] for v in result.lanes.values()), default=0.0)
    add_metric(name=QUEUE_DEPTH_METRIC, unit="Count", value=result.queued + result.in_flight)
    add_metric(name="InferenceQueued", unit="Count", value=result.queued)
    add_metric(name="InferenceInFlight", unit="Count", value=result.in_flight)
    add_metric(name="InferenceOldestWaitSeconds", unit="Seconds", value=oldest)
    add_metric(name="InferenceDispatched", unit="Count", value=len(result.dispatched))
