"""Faults injected into the whole local stack (local/faults.py), each test ending with the books audited:

- the model answers an error (500, 4xx) → the job fails, its credits are released;
- the completion notification is lost → the job times out and is released; the late result is discarded;
- the notifier dies after capturing → SNS/SQS redelivers and the job succeeds once; if every delivery dies, the
  execution times out, its release finds the hold captured and the job stays succeeded, charged once;
- PostgreSQL becomes unavailable to the application (its role loses LOGIN, its sessions are killed) while a job
  waits for inference, around validate/reserve, and for longer than the retries (then the sweeper releases the
  expired hold); cached connections recover;
- events delivered twice, concurrently, late or out of order: SNS notifications, S3 "Object Created" events,
  Stripe webhooks.

Every test ends with every job final, no execution running, each hold settled at most once and
balance = ledger sum for each tenant (``books.assert_balanced``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import requests

from functions.common import db
from functions.common.errors import TransientError
from functions.common.models import FINAL_STATUSES
from local import faults
from local.client import ApiError
from local.lambda_runtime import Invocation, LocalLambda
from local.stack import DROP_BUCKET, RESULTS_BUCKET, UPLOAD_BUCKET, LocalStack
from tests import stripe_support
from tests.reliability import books
from tests.reliability.conftest import Tenant, garment_jpeg, new_tenant
from tests.reliability.tally import TALLY

pytestmark = pytest.mark.e2e

T = TypeVar("T")
PHOTO = garment_jpeg()
NOTIFY_DLQ = "modamoda-local-notify-dlq"


# ---- fixtures and helpers -----------------------------------------------------------------------------------


@pytest.fixture
def faulty(stack: LocalStack) -> Iterator[LocalStack]:
    """The module's stack; every fault flag and hook is reset afterwards, whatever the test did."""
    yield stack
    stack.endpoint.fail_with = None
    stack.endpoint.drop_notifications = False
    stack.lambdas.faults.clear()
    faults.restore_database()
    stack.wait_idle(timeout=90)


def concurrently(work: Callable[[T], Any], items: list[T]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(work, items))


def create_upload(tenant: Tenant, mode: str = "ghost") -> tuple[str, dict[str, Any]]:
    """POST /v1/uploads: the job id and its pre-signed POST (nothing uploaded yet)."""
    created = tenant.api.request(
        "POST",
        "/v1/uploads",
        json={"filename": "shirt.jpg", "content_type": "image/jpeg", "mode": mode, "options": {}},
    )
    return str(created["job_id"]), created["upload"]


def post_photo(post: dict[str, Any], data: bytes = PHOTO) -> None:
    response = requests.post(
        post["url"], data=post["fields"], files={"file": ("shirt.jpg", data, "image/jpeg")}, timeout=60
    )
    assert response.status_code in (200, 201, 204), response.text


def upload(tenant: Tenant) -> str:
    return tenant.api.upload("shirt.jpg", PHOTO, "image/jpeg")


def run_job(tenant: Tenant) -> dict[str, Any]:
    return tenant.api.wait(upload(tenant), timeout=90)


def wait_final(tenant: Tenant, job_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """Like ``ApiClient.wait``, but an API answer of 503 (the database is down) means "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = tenant.api.job(job_id)
        except ApiError as exc:
            if exc.status != 503:
                raise
        else:
            if job["status"] in FINAL_STATUSES:
                return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not final after {timeout}s")
        time.sleep(0.1)


def executions_of(stack: LocalStack, job_id: str) -> list[dict[str, Any]]:
    sfn = stack.client("stepfunctions")
    found: list[dict[str, Any]] = []
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.state_machine_arn):
        found += [e for e in page["executions"] if e["name"].startswith(f"job-{job_id}-")]
    return found


def finished_execution(
    stack: LocalStack, job_id: str, timeout: float = 90.0
) -> tuple[dict[str, Any], list[str]]:
    """The job's one execution, once it has ended, and the states it entered."""
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        found = executions_of(stack, job_id)
        assert len(found) <= 1, found
        if found:
            described = sfn.describe_execution(executionArn=found[0]["executionArn"])
            if described["status"] != "RUNNING":
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the execution of job {job_id} still runs after {timeout}s")
        time.sleep(0.1)
    events = sfn.get_execution_history(executionArn=described["executionArn"], maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    return described, entered


def job_ledger(job_id: str) -> list[str]:
    with books.admin() as conn:
        rows = conn.execute("SELECT kind FROM ledger WHERE job_id = %s ORDER BY id", (job_id,)).fetchall()
    return [r["kind"] for r in rows]


def job_row(job_id: str) -> dict[str, Any]:
    with books.admin() as conn:
        row = conn.execute(
            "SELECT j.status, j.error_code, j.source_version, j.result_key, h.status AS hold"
            " FROM jobs j LEFT JOIN holds h ON h.job_id = j.id WHERE j.id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None
    return dict(row)


def calls(stack: LocalStack, function: str, job_id: str) -> list[Invocation]:
    return [
        i
        for i in list(stack.lambdas.invocations)
        if i.function == function and job_id in json.dumps(i.payload)
    ]


def notifier_calls(stack: LocalStack, message: str) -> list[Invocation]:
    return [
        i
        for i in list(stack.lambdas.invocations)
        if i.function == "modamoda-notifier" and i.payload["Records"][0]["Sns"]["Message"] == message
    ]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def result_exists(stack: LocalStack, key: str) -> bool:
    listing = stack.client("s3").list_objects_v2(Bucket=RESULTS_BUCKET, Prefix=key)
    return bool(listing.get("KeyCount"))


def settled(stack: LocalStack, tenants: list[Tenant]) -> books.Books:
    """The end of every test: nothing running, every job final, holds settled once, balance = ledger sum."""
    stack.wait_idle(timeout=90)
    running = stack.client("stepfunctions").list_executions(
        stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING"
    )["executions"]
    assert running == []
    audited = books.assert_balanced([t.tenant_id for t in tenants])
    TALLY.zero("faults", "jobs left unsettled")
    TALLY.zero("faults", "credits captured or released twice")
    return audited


# ---- 1. the model answers an error ----------------------------------------------------------------------------


def test_inference_errors_fail_the_job_and_release_its_credits(faulty: LocalStack) -> None:
    tenant = new_tenant(faulty)
    cases = [
        (500, "CUDA error: an illegal memory access was encountered", "inference_failed"),
        (400, "unsupported option: background", "inference_rejected"),
    ]
    for status, message, code in cases:
        with faults.inference_errors(faulty.endpoint, status, message):
            jobs = concurrently(lambda _: run_job(tenant), [0, 1])
        TALLY.add("faults", "inference errors injected", len(jobs))
        for job in jobs:
            assert (job["status"], job["error"]["code"]) == ("failed", code), job
            assert job_ledger(job["id"]) == ["reserve", "release"]
            described, entered = finished_execution(faulty, job["id"])
            assert (described["status"], described["error"]) == ("FAILED", "JobFailed")
            assert "CaptureCredits" not in entered
            assert entered[-3:] == ["ReleaseCredits", "CheckRelease", "JobFailed"]
    assert tenant.api.me()["balance"] == tenant.balance
    audited = settled(faulty, [tenant])
    assert audited.jobs == {"failed": 4}
    assert (audited.captured, audited.released) == (0, 4)


# ---- 2. the notification never arrives; then it arrives late --------------------------------------------------


def test_a_lost_notification_times_out_and_its_late_result_is_discarded(
    faulty: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", "2")
    tenant = new_tenant(faulty)
    with faults.dropped_notifications(faulty.endpoint):
        jobs = concurrently(lambda _: run_job(tenant), [0, 1])
        late = [faults.wait_dropped(faulty.endpoint, job["id"]) for job in jobs]
    TALLY.add("faults", "inference timeouts injected", len(jobs))
    for job in jobs:
        assert (job["status"], job["error"]["code"]) == ("failed", "inference_timeout"), job
        assert job_ledger(job["id"]) == ["reserve", "release"]
        described, entered = finished_execution(faulty, job["id"])
        assert (described["status"], described["error"]) == ("FAILED", "JobFailed")
        assert entered[-4:] == ["RunInference", "ReleaseCredits", "CheckRelease", "JobFailed"]

    # The result was computed after all: its success notification arrives after the job was settled.
    for topic, message in late:
        assert topic == faulty.success_topic_arn
        faults.publish_notification(faulty, message)
    for _, message in late:
        wait_for(
            lambda m=message: any(i.error_type is None for i in notifier_calls(faulty, m)),
            "the late notification was not processed",
        )
    TALLY.add("faults", "out-of-order SNS notifications injected", len(late))
    for job in jobs:
        assert tenant.api.job(job["id"])["status"] == "failed"
        row = job_row(job["id"])
        assert (row["status"], row["error_code"], row["hold"]) == ("failed", "inference_timeout", "released")
        assert row["result_key"] is None
        assert not result_exists(faulty, f"results/{tenant.tenant_id}/{job['id']}")  # not delivered
        assert job_ledger(job["id"]) == ["reserve", "release"]  # not charged
    assert tenant.api.me()["balance"] == tenant.balance
    settled(faulty, [tenant])


# ---- 3. the notifier dies after capturing, before resuming the execution --------------------------------------


def test_a_notifier_crash_after_capture_is_redelivered_and_charged_once(faulty: LocalStack) -> None:
    tenant = new_tenant(faulty)
    with faults.ResumeCrash(times=1) as crash:
        job = run_job(tenant)
        described, entered = finished_execution(faulty, job["id"])
    TALLY.add("faults", "notifier crashes injected", crash.crashes)
    assert crash.crashes == 1
    assert job["status"] == "succeeded", job
    deliveries = calls(faulty, "modamoda-notifier", job["id"])
    assert [i.error_type for i in deliveries] == ["LambdaCrashed", None]  # redelivered by the notify queue
    assert described["status"] == "SUCCEEDED"
    assert entered[-3:] == ["CaptureCredits", "CheckCapture", "JobSucceeded"]
    assert job_ledger(job["id"]) == ["reserve", "capture"]
    assert tenant.api.me()["balance"] == tenant.balance - 1
    audited = settled(faulty, [tenant])
    assert (audited.captured, audited.released) == (1, 0)


def test_a_notifier_that_always_crashes_after_capture_leaves_the_job_succeeded(
    faulty: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every delivery captures (once) and dies: the message ends in the notify DLQ, the execution times out and
    its ReleaseCredits finds the hold captured, so CheckRelease ends it in JobSucceeded: the job, the books and the
    execution agree (succeeded, charged once, nothing released)."""
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", "6")  # the DLQ takes ~10 s anyway
    tenant = new_tenant(faulty)
    dead_letters = faults.queue_depth(faulty, NOTIFY_DLQ)
    with faults.ResumeCrash(times=None) as crash:
        job = run_job(tenant)
        assert job["status"] == "succeeded", job  # settled by the first delivery, before it died
        described, entered = finished_execution(faulty, job["id"])
        wait_for(lambda: faults.queue_depth(faulty, NOTIFY_DLQ) == dead_letters + 1, "no dead letter", 40)
    TALLY.add("faults", "notifier crashes injected", crash.crashes)
    deliveries = calls(faulty, "modamoda-notifier", job["id"])
    assert crash.crashes == len(deliveries) == 5  # the queue's maxReceiveCount
    assert {i.error_type for i in deliveries} == {"LambdaCrashed"}
    assert described["status"] == "SUCCEEDED"
    assert "CaptureCredits" not in entered
    assert entered[-4:] == ["RunInference", "ReleaseCredits", "CheckRelease", "JobSucceeded"]
    row = job_row(job["id"])
    assert (row["status"], row["hold"], row["error_code"]) == ("succeeded", "captured", None)
    assert job_ledger(job["id"]) == ["reserve", "capture"]
    assert tenant.api.download(tenant.api.job(job["id"]))[:8] == b"\x89PNG\r\n\x1a\n"
    assert tenant.api.me()["balance"] == tenant.balance - 1
    audited = settled(faulty, [tenant])
    assert (audited.captured, audited.released) == (1, 0)


# ---- 4. the database becomes unavailable ---------------------------------------------------------------------


def test_a_database_outage_while_the_job_waits_for_inference(faulty: LocalStack) -> None:
    """The notification arrives during the outage: its delivery fails, the notify queue redelivers it after its
    visibility timeout, and once the database is back the job succeeds, charged once."""
    tenant = new_tenant(faulty)
    job_id, post = create_upload(tenant)
    outage = faults.DatabaseOutage()
    with faults.outage_on_call(
        faulty.lambdas, "modamoda-notifier", outage, 2.5, when=lambda e: job_id in json.dumps(e)
    ) as hook:
        post_photo(post)
        job = wait_final(tenant, job_id)
    TALLY.add("faults", "database outages injected")
    assert hook.fired.is_set()
    assert outage.seconds >= 2.5
    assert job["status"] == "succeeded", job
    deliveries = calls(faulty, "modamoda-notifier", job_id)
    assert len(deliveries) >= 2
    assert deliveries[0].error_type == "TransientError"
    assert deliveries[-1].error_type is None
    described, _ = finished_execution(faulty, job_id)
    assert described["status"] == "SUCCEEDED"
    assert job_ledger(job_id) == ["reserve", "capture"]
    settled(faulty, [tenant])


@pytest.mark.parametrize("function", ["modamoda-validate-input", "modamoda-reserve-credits"])
def test_a_short_database_outage_around_a_task_is_retried_by_step_functions(
    faulty: LocalStack, function: str
) -> None:
    tenant = new_tenant(faulty)
    job_id, post = create_upload(tenant)
    outage = faults.DatabaseOutage()
    with faults.outage_on_call(
        faulty.lambdas, function, outage, 1.5, when=lambda e: e.get("job_id") == job_id
    ):
        post_photo(post)
        job = wait_final(tenant, job_id)
    TALLY.add("faults", "database outages injected")
    assert job["status"] == "succeeded", job
    attempts = calls(faulty, function, job_id)
    assert len(attempts) >= 2  # retried with backoff (TransientError), within the state's MaxAttempts
    assert attempts[0].error_type == "TransientError"
    assert attempts[-1].error_type is None
    described, entered = finished_execution(faulty, job_id)
    assert described["status"] == "SUCCEEDED"
    assert "ReleaseCredits" not in entered
    assert job_ledger(job_id) == ["reserve", "capture"]
    settled(faulty, [tenant])


def test_an_outage_longer_than_the_retries_fails_the_execution_and_the_sweeper_releases(
    faulty: LocalStack,
) -> None:
    """The database goes down once the credits are held and stays down through every retry of RunInference and
    of ReleaseCredits (their waits run 100 times faster): the execution fails with SettlementFailed, the hold stays
    held. The database comes back; once the hold's deadline has passed the sweeper releases it: the job fails
    with ``hold_expired`` and nothing is charged."""
    tenant = new_tenant(faulty)
    job_id, post = create_upload(tenant)
    outage = faults.DatabaseOutage()
    with (
        faults.fast_retries(0.01),
        faults.outage_on_call(
            faulty.lambdas,
            "modamoda-enqueue-inference",
            outage,
            None,
            when=lambda e: e.get("job_id") == job_id,
        ) as hook,
    ):
        post_photo(post)
        described, entered = finished_execution(faulty, job_id)
        assert outage.active
    TALLY.add("faults", "database outages injected")
    assert hook.fired.is_set()
    assert (described["status"], described["error"]) == ("FAILED", "SettlementFailed")
    assert entered[-3:] == ["RunInference", "ReleaseCredits", "SettlementFailed"]
    invokes = calls(faulty, "modamoda-enqueue-inference", job_id)
    releases = calls(faulty, "modamoda-release-credits", job_id)
    assert [i.error_type for i in invokes] == ["TransientError"] * 5  # 1 + MaxAttempts 4
    assert [i.error_type for i in releases] == ["TransientError"] * 9  # 1 + MaxAttempts 8
    row = job_row(job_id)
    assert (row["status"], row["hold"]) == ("validated", "held")
    assert job_ledger(job_id) == ["reserve"]

    # The database is back: the API answers again (the pooled connections recovered).
    assert tenant.api.job(job_id)["status"] == "validated"
    with books.admin() as conn:  # the clock moves past the hold's deadline
        conn.execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE job_id = %s", (job_id,))
    sweeper = LocalLambda({"modamoda-sweeper": "functions.sweeper.handler.lambda_handler"})
    swept, error = sweeper.invoke("modamoda-sweeper", {})
    assert error is None, swept
    assert (swept["expired"], swept["released"]) == (1, 1)
    job = tenant.api.job(job_id)
    assert (job["status"], job["error"]["code"]) == ("failed", "hold_expired")
    assert job_ledger(job_id) == ["reserve", "release"]
    assert tenant.api.me()["balance"] == tenant.balance
    again, error = sweeper.invoke("modamoda-sweeper", {})  # the next run finds nothing
    assert error is None
    assert (again["expired"], again["released"]) == (0, 0)
    settled(faulty, [tenant])


def test_a_cached_connection_is_replaced_after_the_server_ended_it(faulty: LocalStack) -> None:
    """A warm container's connection killed by a failover fails on its next statement; the first transaction
    after the outage replaces it instead of failing (functions/common/db.py ``_begin``)."""
    errors: list[BaseException] = []
    results: list[int] = []

    def worker() -> None:
        try:
            before = db.connection()
            with db.transaction(None) as conn:
                conn.execute("SELECT 1")
            with faults.DatabaseOutage() as outage:  # a failover: the cached session is ended meanwhile
                assert outage.sessions_terminated >= 1
            with db.transaction(None) as conn:  # the first transaction after it, on the stale connection
                row = conn.execute("SELECT 41 + 1 AS n").fetchone()
                assert row is not None
                results.append(int(row["n"]))
            assert db.connection() is not before
            assert before.closed
            with faults.DatabaseOutage(), pytest.raises(TransientError):  # while it lasts: refused, retryable
                with db.transaction(None) as conn:
                    conn.execute("SELECT 1")
            with db.transaction(None) as conn:
                conn.execute("SELECT 1")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.reset()

    thread = threading.Thread(target=worker)  # its own cached connection, as a Lambda container has
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    assert results == [42]
    TALLY.add("faults", "database outages injected", 2)
    settled(faulty, [])


# ---- 4b. a batch cancelled while its files wait in the GPU queue ----------------------------------------------


def gpu_queue(batch_id: str) -> dict[str, tuple[str, str | None, int]]:
    """The batch's jobs by file name: (status, queue_state, dispatch_attempts)."""
    with books.admin() as conn:
        rows = conn.execute(
            "SELECT filename, status, queue_state, dispatch_attempts FROM jobs WHERE batch_id = %s",
            (batch_id,),
        ).fetchall()
    return {r["filename"]: (r["status"], r["queue_state"], r["dispatch_attempts"]) for r in rows}


def test_a_batch_cancelled_while_its_files_wait_for_the_gpu(
    faulty: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One file holds the endpoint's only place (its notification is lost), the others wait in our queue; the
    batch is cancelled: the waiting files end cancelled without ever reaching the endpoint, their holds released
    once and their executions ended; the one at the endpoint runs on and ends by its inference timeout, counted
    from its hand-over."""
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "1")
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", "15")  # the first file's, from its hand-over
    tenant = new_tenant(faulty)
    batch = tenant.api.request("POST", "/v1/batches", json={"name": "cancel mid-queue"})
    names = [f"p{n}.jpg" for n in range(4)]
    with faults.dropped_notifications(faulty.endpoint):
        for name in names:
            faulty.client("s3").put_object(Bucket=DROP_BUCKET, Key=batch["drop_prefix"] + name, Body=PHOTO)

        def one_at_the_endpoint_and_three_queued() -> bool:
            states = sorted((status, state or "") for status, state, _ in gpu_queue(batch["id"]).values())
            return states == [("processing", "dispatched")] + [("validated", "queued")] * 3

        wait_for(one_at_the_endpoint_and_three_queued, "the files did not queue behind the first", 60)
        cancelled = tenant.api.request("POST", f"/v1/batches/{batch['id']}/cancel")
        assert cancelled["status"] == "cancelled"
        waiting = {n for n, (status, _, _) in gpu_queue(batch["id"]).items() if status == "cancelled"}
        assert len(waiting) == 3
        jobs = {
            j["filename"]: j for j in tenant.api.request("GET", f"/v1/batches/{batch['id']}/jobs")["items"]
        }
        (running,) = set(names) - waiting
        final = wait_final(tenant, jobs[running]["id"], timeout=60)
    TALLY.add("faults", "jobs cancelled while queued for the GPU", len(waiting))
    assert (final["status"], final["error"]["code"]) == ("failed", "inference_timeout")
    handed_over = {i.inference_id for i in list(faulty.endpoint.invocations)}
    for name in waiting:
        job = tenant.api.job(jobs[name]["id"])
        assert (job["status"], job["error"]["code"]) == ("cancelled", "batch_cancelled")
        assert job_ledger(job["id"]) == ["reserve", "release"]
        assert job["id"] not in handed_over
        assert gpu_queue(batch["id"])[name][2] == 0  # never claimed
        wait_for(lambda j=job["id"]: executions_of(faulty, j)[0]["status"] != "RUNNING", "still running", 30)
    assert jobs[running]["id"] in handed_over
    assert job_ledger(jobs[running]["id"]) == ["reserve", "release"]
    assert tenant.api.me()["balance"] == tenant.balance
    audited = settled(faulty, [tenant])
    assert audited.jobs == {"cancelled": 3, "failed": 1}
    assert (audited.captured, audited.released) == (0, 4)


# ---- 5. duplicate and out-of-order events ---------------------------------------------------------------------


def test_duplicate_and_out_of_order_sns_notifications(faulty: LocalStack) -> None:
    tenant = new_tenant(faulty)
    dead_letters = faults.queue_depth(faulty, NOTIFY_DLQ)
    # Malformed notifications first: they are retried and dead-lettered while the rest goes on (no wedged pump).
    nonce = uuid.uuid4().hex  # this round's messages only (make stress repeats the test on one stack)
    malformed = [
        f"not json {{ {nonce}",
        json.dumps({"inferenceId": 5, "invocationStatus": "Completed", "eventName": nonce}),
    ]
    for message in malformed:
        faults.publish_notification(faulty, message)
    unknown = str(uuid.uuid4())
    strangers = [
        faults.success_notification(unknown, f"s3://{RESULTS_BUCKET}/inference/output/{unknown}.out"),
        faults.error_notification(str(uuid.uuid4()), 500),
    ]
    faults.publish_notification(faulty, strangers[0])
    faults.publish_notification(faulty, strangers[1], success=False)

    # The same success notification three times at once (three concurrent notifier invocations) and once more
    # through SNS, later.
    with faults.dropped_notifications(faulty.endpoint):
        job_id = upload(tenant)
        topic, message = faults.wait_dropped(faulty.endpoint, job_id)
    barrier = threading.Barrier(3)

    def deliver(_: int) -> tuple[Any, str | None]:
        barrier.wait()
        return faulty.lambdas.invoke("modamoda-notifier", faults.notifier_event(topic, message))

    outcomes = concurrently(deliver, [0, 1, 2])
    assert [error for _, error in outcomes] == [None, None, None]
    assert sorted(result["outcomes"][0] for result, _ in outcomes) == ["succeeded"] * 3
    faults.publish_notification(faulty, message)
    wait_for(lambda: len(notifier_calls(faulty, message)) == 4, "the SNS duplicate was not delivered")
    TALLY.add("faults", "duplicate SNS notifications injected", 3)
    job = tenant.api.wait(job_id)
    assert job["status"] == "succeeded"
    described, entered = finished_execution(faulty, job_id)
    assert described["status"] == "SUCCEEDED"
    assert entered.count("CaptureCredits") == 1

    # An error notification after the success changes nothing.
    error = faults.error_notification(job_id, 500, "late failure")
    faults.publish_notification(faulty, error, success=False)
    wait_for(lambda: any(i.error_type is None for i in notifier_calls(faulty, error)), "not delivered")
    assert job_row(job_id)["status"] == "succeeded"
    assert job_ledger(job_id) == ["reserve", "capture"]

    # A success notification after a failure changes nothing either.
    with faults.inference_errors(faulty.endpoint, 500, "model crashed"):
        failed = run_job(tenant)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "inference_failed")
    success = faults.success_notification(
        failed["id"], f"s3://{RESULTS_BUCKET}/inference/output/{failed['id']}.out"
    )
    faults.publish_notification(faulty, success)
    wait_for(lambda: any(i.error_type is None for i in notifier_calls(faulty, success)), "not delivered")
    TALLY.add("faults", "out-of-order SNS notifications injected", 2)
    row = job_row(failed["id"])
    assert (row["status"], row["error_code"], row["hold"], row["result_key"]) == (
        "failed",
        "inference_failed",
        "released",
        None,
    )
    assert job_ledger(failed["id"]) == ["reserve", "release"]

    # Meanwhile the notify pump kept working: a job runs normally while the malformed ones are retried.
    assert run_job(tenant)["status"] == "succeeded"
    for stranger in strangers:  # unknown jobs: acknowledged, nothing changes, no dead letter
        wait_for(lambda s=stranger: any(i.error_type is None for i in notifier_calls(faulty, s)), "not acked")
    wait_for(lambda: faults.queue_depth(faulty, NOTIFY_DLQ) == dead_letters + 2, "not dead-lettered", 60)
    for message in malformed:
        attempts = notifier_calls(faulty, message)
        assert len(attempts) == 5
        assert {i.error_type for i in attempts} == {"ValidationError"}
    TALLY.add("faults", "malformed or unknown SNS notifications injected", len(malformed) + len(strangers))
    assert tenant.api.me()["balance"] == tenant.balance - 2
    audited = settled(faulty, [tenant])
    assert audited.jobs == {"succeeded": 2, "failed": 1}
    assert (audited.captured, audited.released) == (2, 1)


def test_replayed_s3_events_start_one_execution(faulty: LocalStack) -> None:
    tenant = new_tenant(faulty)
    with faults.captured_s3_events(faulty) as held:
        job_id = upload(tenant)
        [event] = held.take(1)
    assert job_id in json.loads(event)["detail"]["object"]["key"]
    # Four deliveries through the start queue, and three concurrent invocations of start-workflow.
    for _ in range(4):
        faults.send_to_start_queue(faulty, event)
    record = {
        "messageId": "",
        "receiptHandle": "r",
        "body": event,
        "attributes": {},
        "eventSource": "aws:sqs",
    }
    barrier = threading.Barrier(3)

    def start(n: int) -> tuple[Any, str | None]:
        barrier.wait()
        return faulty.lambdas.invoke(
            "modamoda-start-workflow", {"Records": [{**record, "messageId": f"m{n}"}]}
        )

    started = concurrently(start, [0, 1, 2])
    assert [error for _, error in started] == [None, None, None]
    assert all(result["batchItemFailures"] == [] for result, _ in started)
    TALLY.add("faults", "duplicate S3 events injected", 6)  # 7 deliveries of one event
    job = tenant.api.wait(job_id)
    assert job["status"] == "succeeded"
    faulty.wait_idle(timeout=60)  # every queued replay handled
    assert len(executions_of(faulty, job_id)) == 1
    assert len(calls(faulty, "modamoda-validate-input", job_id)) == 1  # the job ran once
    assert job_ledger(job_id) == ["reserve", "capture"]
    settled(faulty, [tenant])


def test_two_versions_of_one_upload_whose_events_arrive_reversed_run_once(faulty: LocalStack) -> None:
    tenant = new_tenant(faulty)
    job_id, post = create_upload(tenant)
    with faults.captured_s3_events(faulty) as held:
        post_photo(post, garment_jpeg(colour=(30, 60, 140)))
        post_photo(
            post, garment_jpeg(colour=(140, 30, 60))
        )  # the same pre-signed key again: a second version
        first, second = held.take(2)
    listed = faulty.client("s3").list_object_versions(
        Bucket=UPLOAD_BUCKET, Prefix=f"uploads/{tenant.tenant_id}/"
    )
    assert len(listed["Versions"]) == 2  # the same key twice: two versions
    [newest] = [v["VersionId"] for v in listed["Versions"] if v["IsLatest"]]
    by_version = {json.loads(body)["detail"]["object"]["version-id"]: body for body in (first, second)}
    assert len(by_version) == 2
    assert newest in by_version
    [older] = [body for version, body in by_version.items() if version != newest]
    faults.send_to_start_queue(faulty, by_version[newest])  # the newer version's event arrives first...
    wait_for(lambda: job_row(job_id)["source_version"] is not None, "the newer version was not claimed")
    faults.send_to_start_queue(faulty, older)  # ...the older one after it
    TALLY.add("faults", "out-of-order S3 events injected")
    job = tenant.api.wait(job_id)
    assert job["status"] == "succeeded"
    faulty.wait_idle(timeout=60)
    assert len(calls(faulty, "modamoda-start-workflow", job_id)) == 2  # both events were handled
    assert job_row(job_id)["source_version"] == newest
    assert len(executions_of(faulty, job_id)) == 1
    assert len(calls(faulty, "modamoda-validate-input", job_id)) == 1  # run once
    assert job_ledger(job_id) == ["reserve", "capture"]
    settled(faulty, [tenant])


# ---- Stripe ----------------------------------------------------------------------------------------------------


def credits_balance(tenant: Tenant) -> int:
    return int(tenant.api.request("GET", "/v1/credits")["balance"])


def paid_checkouts(stack: LocalStack, buyers: list[Tenant], pack: str = "starter") -> list[dict[str, Any]]:
    """Each buyer buys a pack (concurrently) through the API and the emulator's Checkout page; the
    ``checkout.session.completed`` events are held back instead of delivered, and returned in the buyers' order."""

    def buy(tenant: Tenant) -> None:
        response = requests.post(
            f"{stack.api_url}/v1/credits/checkout",
            headers=tenant.headers,
            json={
                "pack_id": pack,
                "success_url": f"{stack.web_url}/#/credits",
                "cancel_url": f"{stack.web_url}/#/",
            },
            timeout=30,
        )
        assert response.status_code == 201, response.text
        paid = requests.post(f"{response.json()['checkout_url']}/pay", allow_redirects=False, timeout=30)
        assert paid.status_code == 303

    with faults.held_stripe_webhooks(stack.stripe) as held:
        concurrently(buy, buyers)
    assert {e["type"] for e in held} == {"checkout.session.completed"}
    by_tenant = {e["data"]["object"]["client_reference_id"]: e for e in held}
    assert len(held) == len(by_tenant) == len(buyers)
    return [by_tenant[b.tenant_id] for b in buyers]


def stripe_event(type_: str, obj: dict[str, Any]) -> dict[str, Any]:
    base = type_ if (stripe_support.STRIPE_EVENTS / f"{type_}.json").exists() else "charge.dispute.created"
    event = stripe_support.fixture(base)
    event.update(id=f"evt_{uuid.uuid4().hex[:24]}", created=int(time.time()), type=type_)
    event["data"]["object"].update(obj)
    return event


def refund_of(completed: dict[str, Any], amount_refunded: int) -> dict[str, Any]:
    session = completed["data"]["object"]
    total = session["amount_total"]
    return stripe_event(
        "charge.refunded",
        {
            "id": f"ch_{session['payment_intent'][3:]}",
            "payment_intent": session["payment_intent"],
            "amount": total,
            "amount_captured": total,
            "amount_refunded": amount_refunded,
            "refunded": amount_refunded >= total,
            "metadata": session["metadata"],
        },
    )


def dispute_of(completed: dict[str, Any], type_: str, status: str) -> dict[str, Any]:
    session = completed["data"]["object"]
    return stripe_event(
        type_,
        {
            "id": f"dp_{session['payment_intent'][3:]}",
            "charge": f"ch_{session['payment_intent'][3:]}",
            "payment_intent": session["payment_intent"],
            "amount": session["amount_total"],
            "status": status,
        },
    )


def deliver(stack: LocalStack, event: dict[str, Any]) -> str:
    """POST the event, signed with the stack's webhook secret, to the API's webhook route; the outcome."""
    delivery = stack.stripe.deliver(event)
    assert delivery.ok, delivery
    return str(json.loads(delivery.body)["status"])


def test_duplicate_and_out_of_order_stripe_webhooks(faulty: LocalStack) -> None:
    buyers = [new_tenant(faulty, "stripe") for _ in range(7)]
    events = paid_checkouts(faulty, buyers)
    credits_of_pack = int(events[0]["data"]["object"]["metadata"]["credits"])

    # The same checkout.session.completed, five deliveries at once: granted once.
    barrier = threading.Barrier(5)

    def concurrent_delivery(_: int) -> str:
        barrier.wait()
        return deliver(faulty, events[0])

    assert sorted(concurrently(concurrent_delivery, list(range(5)))) == ["duplicate"] * 4 + ["processed"]
    assert deliver(faulty, events[0]) == "duplicate"  # and once more, later
    TALLY.add("faults", "duplicate Stripe events injected", 5)
    assert credits_balance(buyers[0]) == buyers[0].balance + credits_of_pack

    # A half refund before its checkout.session.completed ends as it does in order.
    half = events[1]["data"]["object"]["amount_total"] // 2
    reversed_, in_order = (buyers[1], events[1]), (buyers[2], events[2])
    assert deliver(faulty, refund_of(reversed_[1], half)) == "processed"
    assert deliver(faulty, reversed_[1]) == "processed"
    assert deliver(faulty, in_order[1]) == "processed"
    assert deliver(faulty, refund_of(in_order[1], half)) == "processed"
    refunded = credits_of_pack * half // events[1]["data"]["object"]["amount_total"]
    for buyer, _ in (reversed_, in_order):
        assert credits_balance(buyer) == buyer.balance + credits_of_pack - refunded

    # A dispute closed before it was created (lost: the share stays debited; won: nothing is taken in the end).
    for (buyer_closed_first, completed_a), (buyer_in_order, completed_b), outcome, kept in (
        ((buyers[3], events[3]), (buyers[4], events[4]), "lost", 0),
        ((buyers[5], events[5]), (buyers[6], events[6]), "won", credits_of_pack),
    ):
        for completed in (completed_a, completed_b):
            assert deliver(faulty, completed) == "processed"
        assert deliver(faulty, dispute_of(completed_a, "charge.dispute.closed", outcome)) == "processed"
        assert (
            deliver(faulty, dispute_of(completed_a, "charge.dispute.created", "needs_response"))
            == "processed"
        )
        assert (
            deliver(faulty, dispute_of(completed_b, "charge.dispute.created", "needs_response"))
            == "processed"
        )
        assert deliver(faulty, dispute_of(completed_b, "charge.dispute.closed", outcome)) == "processed"
        for buyer in (buyer_closed_first, buyer_in_order):
            assert credits_balance(buyer) == buyer.balance + kept
    TALLY.add("faults", "out-of-order Stripe events injected", 3)
    settled(faulty, buyers)
