"""The sweeper releases holds past their deadline once, ends their jobs, and leaves live holds alone; it ends jobs
whose photo never arrived once."""

from __future__ import annotations

import boto3
import psycopg
import pytest

from functions.common import credits, db, jobs
from functions.sweeper import handler
from tests.conftest import FakeLambdaContext, create_job


@pytest.fixture
def holds(mocked_aws: None, database_url: str, conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    made = {}
    for name in ("stale", "live"):
        tenant_id, job_id = create_job(sub=name)
        with db.transaction(tenant_id) as tx:
            jobs.transition(tx, job_id, "processing", cost=1, task_token=f"token-{name}")
            credits.reserve(tx, tenant_id, job_id, 1, 3600)
        made[name] = (tenant_id, job_id)
    conn.execute(
        "UPDATE holds SET expires_at = now() - interval '1 minute' WHERE job_id = %s", (made["stale"][1],)
    )
    return made


def test_expired_hold_is_released_once_and_the_job_ends(holds: dict[str, tuple[str, str]]) -> None:
    assert handler.lambda_handler({}, FakeLambdaContext()) == {
        "expired": 1,
        "released": 1,
        "batch_reports_written": 0,
        "queue_expired": {},
        "uploads_expired": 0,
        "notifications_dispatched": 0,
        "stripe_events_pruned": 0,
    }
    assert handler.lambda_handler({}, FakeLambdaContext()) == {
        "expired": 0,
        "released": 0,
        "batch_reports_written": 0,
        "queue_expired": {},
        "uploads_expired": 0,
        "notifications_dispatched": 0,
        "stripe_events_pruned": 0,
    }
    tenant_id, job_id = holds["stale"]
    with db.transaction(tenant_id) as conn:
        job = jobs.load(conn, job_id)
        assert (job["status"], job["error_code"]) == ("failed", "hold_expired")
        assert credits.balance(conn, tenant_id) == credits.ledger_sum(conn, tenant_id) == 5
    live_tenant, live_job = holds["live"]
    with db.transaction(live_tenant) as conn:
        assert jobs.load(conn, live_job)["status"] == "processing"
        assert credits.get_hold(conn, live_job).status == "held"
        assert credits.balance(conn, live_tenant) == 4


def test_a_job_whose_photo_never_arrived_is_ended_by_the_sweeper(
    mocked_aws: None, database_url: str, conn: psycopg.Connection
) -> None:
    tenant_id, job_id = create_job(sub="waiting")
    _, fresh = create_job(sub="waiting", filename="fresh.jpg")
    conn.execute("UPDATE jobs SET upload_requested_at = now() - interval '25 hours' WHERE id = %s", (job_id,))
    assert handler.lambda_handler({}, FakeLambdaContext())["uploads_expired"] == 1
    assert handler.lambda_handler({}, FakeLambdaContext())["uploads_expired"] == 0
    with db.transaction(tenant_id) as tx:
        job = jobs.load(tx, job_id)
        assert (job["status"], job["error_code"]) == ("cancelled", "upload_expired")
        assert jobs.load(tx, fresh)["status"] == "awaiting_upload"
        assert credits.balance(tx, tenant_id) == credits.ledger_sum(tx, tenant_id) == 5


def test_a_job_waiting_in_the_gpu_queue_keeps_its_hold_until_its_queue_wait_ends(
    mocked_aws: None, database_url: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweeper never releases a queued job's hold early (the hold covers the queue wait and the inference), and
    never leaves one forever: past its queue-wait bound it ends ``queue_timeout``, released once."""
    from functions.common import scheduler
    from functions.common.models import EnqueueInput, ImageRef

    monkeypatch.setenv("RESULTS_BUCKET", "modamoda-test-results")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="modamoda-test-results")
    tenant_id, job_id = create_job(sub="queued")
    with db.transaction(tenant_id) as tx:
        jobs.transition(tx, job_id, "validated", cost=1)
        credits.reserve(tx, tenant_id, job_id, 1, 60)  # a short deadline at reservation...
    scheduler.enqueue(
        boto3.client("s3", region_name="us-east-1"),
        EnqueueInput(
            job_id=job_id,
            tenant_id=tenant_id,
            task_token="token-queued",
            mode="on-model",
            image=ImageRef(bucket="b", key="k", format="JPEG", width=10, height=10, bytes=1),
            options={},
            timeout_seconds=7200,
            queue_wait_seconds=3600,
        ),
    )
    hold = conn.execute(
        "SELECT expires_at - now() AS left FROM holds WHERE job_id = %s", (job_id,)
    ).fetchone()
    assert (
        hold["left"].total_seconds() > 7200
    )  # ...stretched at enqueue over the queue wait and the inference
    swept = handler.lambda_handler({}, FakeLambdaContext())
    assert (swept["expired"], swept["queue_expired"]) == (0, {})
    with db.transaction(tenant_id) as tx:
        assert jobs.load(tx, job_id)["status"] == "validated"
    conn.execute("UPDATE jobs SET queue_deadline = now() - interval '1 second' WHERE id = %s", (job_id,))
    swept = handler.lambda_handler({}, FakeLambdaContext())
    assert (swept["expired"], swept["queue_expired"]) == (0, {"queue_timeout": 1})
    with db.transaction(tenant_id) as tx:
        job = jobs.load(tx, job_id)
        assert (job["status"], job["error_code"]) == ("failed", "queue_timeout")
        assert credits.get_hold(tx, job_id).status == "released"
        assert credits.balance(tx, tenant_id) == credits.ledger_sum(tx, tenant_id) == 5
    assert handler.lambda_handler({}, FakeLambdaContext())["queue_expired"] == {}
