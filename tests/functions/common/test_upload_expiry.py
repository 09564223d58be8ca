"""Jobs whose photo never arrives: the sweep's query (``app_expired_uploads`` + the re-check under the row lock)
ends each one once, ``cancelled`` with ``upload_expired``, and leaves alone what was uploaded, renewed, deleted or
expired by another sweep meanwhile; a batch counts the expired file as ended."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from functions.common import batches, credits, db, jobs, pipeline
from functions.common.models import BatchRequest
from tests.conftest import create_job

STALE = "25 hours"  # past the default 24-hour wait


def age(
    conn: psycopg.Connection, job_id: str, interval: str = STALE, column: str = "upload_requested_at"
) -> None:
    conn.execute(f"UPDATE jobs SET {column} = now() - %s::interval WHERE id = %s", (interval, job_id))


def row(conn: psycopg.Connection, job_id: str) -> dict[str, Any]:
    found = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert found is not None
    return dict(found)


def job_events(conn: psycopg.Connection, job_id: str) -> list[str]:
    return [
        r["type"]
        for r in conn.execute(
            "SELECT type FROM notifications WHERE subject = %s ORDER BY id", (f"job:{job_id}",)
        ).fetchall()
    ]


@pytest.fixture
def with_webhook(conn: psycopg.Connection) -> Any:
    """Give a tenant a webhook, so that ending a job records its ``job.<status>`` event (counted below)."""

    def give(tenant_id: str) -> None:
        conn.execute(
            "UPDATE tenants SET webhook_url = 'https://hooks.example.com/modamoda', webhook_secret = 'secret'"
            " WHERE id = %s",
            (tenant_id,),
        )

    return give


def test_a_job_waiting_past_the_bound_ends_once_and_nothing_else_moves(
    database_url: str, conn: psycopg.Connection, with_webhook: Any
) -> None:
    tenant_id, stale = create_job(sub="alice")
    with_webhook(tenant_id)
    _, fresh = create_job(sub="alice", filename="fresh.jpg")
    _, deleted = create_job(sub="alice", filename="deleted.jpg")
    _, claimed = create_job(sub="alice", filename="claimed.jpg")
    with db.transaction(tenant_id) as tx:
        jobs.mark_deleted(tx, deleted)
        key = jobs.load(tx, claimed)["source_key"]
        assert jobs.claim_upload(tx, claimed, tenant_id, key, "v1", "exec-claimed") is not None
    for job_id in (stale, deleted, claimed):
        age(conn, job_id)

    assert pipeline.sweep_expired_uploads() == 1
    assert pipeline.sweep_expired_uploads() == 0  # idempotent: the next run finds nothing

    ended = row(conn, stale)
    assert (ended["status"], ended["error_code"]) == ("cancelled", "upload_expired")
    assert ended["error_message"] == (
        "The photo did not arrive within 24 hours of its upload link, so this job was closed; nothing was "
        "charged. Create a new job to process the photo."
    )
    assert "cancelled" in ended["stages"]
    assert job_events(conn, stale) == ["job.cancelled"]  # the webhook hears of it once
    assert row(conn, fresh)["status"] == "awaiting_upload"
    assert row(conn, deleted)["status"] == "awaiting_upload"  # deleted: out of every list already
    assert row(conn, claimed)["status"] == "queued"  # its photo arrived
    with db.transaction(tenant_id) as tx:
        assert credits.get_hold(tx, stale) is None  # nothing was ever held
        assert credits.balance(tx, tenant_id) == credits.ledger_sum(tx, tenant_id) == 5
    kinds = conn.execute("SELECT kind FROM ledger WHERE job_id = %s", (stale,)).fetchall()
    assert kinds == []  # nothing charged, nothing released: no ledger entry at all


def test_the_wait_counts_from_the_newest_upload_url(database_url: str, conn: psycopg.Connection) -> None:
    tenant_id, renewed = create_job(sub="bob")
    _, legacy = create_job(sub="bob", filename="legacy.jpg")
    age(conn, renewed, column="created_at")  # created long ago, but a fresh URL was issued since
    with db.transaction(tenant_id) as tx:
        jobs.renew_upload(tx, tenant_id, renewed)
    conn.execute(
        "UPDATE jobs SET upload_requested_at = NULL WHERE id = %s", (legacy,)
    )  # before migration 0009
    age(conn, legacy, column="created_at")

    assert pipeline.sweep_expired_uploads() == 1
    assert row(conn, renewed)["status"] == "awaiting_upload"
    assert row(conn, legacy)["error_code"] == "upload_expired"  # no upload clock: counted from its creation


@pytest.mark.parametrize("meanwhile", ["renewed", "claimed", "expired"])
def test_a_job_that_changed_after_the_listing_is_left_alone(
    database_url: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """The sweep lists overdue jobs outside any tenant, then ends each in its tenant's transaction: a fresh URL,
    an upload's claim or another sweep that came in between wins, and this sweep changes nothing."""
    tenant_id, job_id = create_job(sub="carol")
    age(conn, job_id)
    listed = db.system_rows(
        "SELECT job_id, tenant_id FROM app_expired_uploads(%s, %s)",
        (pipeline.config.upload_wait_seconds(), 10),
    )
    assert [str(r["job_id"]) for r in listed] == [job_id]
    with db.transaction(tenant_id) as tx:
        if meanwhile == "renewed":
            jobs.renew_upload(tx, tenant_id, job_id)
        elif meanwhile == "claimed":
            key = jobs.load(tx, job_id)["source_key"]
            assert jobs.claim_upload(tx, job_id, tenant_id, key, "v1", "exec") is not None
    if meanwhile == "expired":
        assert pipeline.sweep_expired_uploads() == 1
    before = row(conn, job_id)
    monkeypatch.setattr(pipeline.db, "system_rows", lambda query, params: listed)  # the stale listing
    assert pipeline.sweep_expired_uploads() == 0
    assert row(conn, job_id) == before


def test_concurrent_sweeps_end_each_job_once(
    database_url: str, conn: psycopg.Connection, with_webhook: Any
) -> None:
    made = [create_job(sub="dave", filename=f"{i}.jpg") for i in range(6)]
    with_webhook(made[0][0])
    for _, job_id in made:
        age(conn, job_id)
    barrier = threading.Barrier(3)
    counts: list[int] = []
    failures: list[BaseException] = []

    def sweep() -> None:
        try:
            barrier.wait()
            counts.append(pipeline.sweep_expired_uploads())
        except BaseException as exc:  # surfaced below
            failures.append(exc)
        finally:
            db.reset()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sum(counts) == len(made)
    for _, job_id in made:
        assert row(conn, job_id)["error_code"] == "upload_expired"
        assert job_events(conn, job_id) == ["job.cancelled"]


def test_an_upload_after_the_expiry_claims_nothing(database_url: str, conn: psycopg.Connection) -> None:
    tenant_id, job_id = create_job(sub="erin")
    age(conn, job_id)
    assert pipeline.sweep_expired_uploads() == 1
    with db.transaction(tenant_id) as tx:
        key = jobs.load(tx, job_id)["source_key"]
        assert jobs.claim_upload(tx, job_id, tenant_id, key, "v1", "exec-late") is None
    assert row(conn, job_id)["status"] == "cancelled"


def test_an_expired_batch_file_ends_its_batch(
    mocked_aws: None, database_url: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch file whose job still waits (it cannot linger in practice: a file's job is created and claimed by
    its own upload event) counts as ended: the sealed batch finishes, its report says cancelled/upload_expired
    and that nothing was spent."""
    import boto3

    monkeypatch.setenv("RESULTS_BUCKET", "modamoda-test-results")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="modamoda-test-results")
    tenant_id, job_id = create_job(sub="frank", filename="a.jpg")
    with db.transaction(tenant_id) as tx:
        batch = batches.create(tx, tenant_id, None, BatchRequest(name="spring"))
    conn.execute("UPDATE jobs SET batch_id = %s WHERE id = %s", (batch["id"], job_id))
    conn.execute(
        "UPDATE batches SET sealed_at = now(), status = 'sealed', expected_files = ARRAY['a.jpg'] WHERE id = %s",
        (batch["id"],),
    )
    age(conn, job_id)

    assert pipeline.sweep_expired_uploads() == 1
    finished = conn.execute("SELECT * FROM batches WHERE id = %s", (batch["id"],)).fetchone()
    assert finished is not None
    assert finished["finished_at"] is not None
    assert finished["status"] == "completed"
    report = finished["report"]
    assert report["totals"]["cancelled"] == 1
    assert report["totals"]["credits_spent"] == 0
    [entry] = report["files"]
    assert (entry["status"], entry["error_code"], entry["cost"]) == ("cancelled", "upload_expired", 0)
    assert finished["report_written_at"] is not None  # written after the commit, as for any finishing job


def test_the_wait_is_never_shorter_than_the_upload_url_plus_a_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.common import config

    monkeypatch.delenv("UPLOAD_WAIT_SECONDS", raising=False)
    monkeypatch.delenv("UPLOAD_URL_TTL_SECONDS", raising=False)
    assert config.upload_wait_seconds() == 86_400
    monkeypatch.setenv("UPLOAD_WAIT_SECONDS", "7200")
    assert config.upload_wait_seconds() == 7200
    monkeypatch.setenv("UPLOAD_WAIT_SECONDS", "60")
    assert config.upload_wait_seconds() == 300 + config.UPLOAD_WAIT_MARGIN_SECONDS
    assert pipeline.upload_expired_message(7200).startswith("The photo did not arrive within 2 hours ")
    assert " 20 minutes " in pipeline.upload_expired_message(1200)
