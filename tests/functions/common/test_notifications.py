"""Notifications outbox: recording job and batch events exactly once, tenant-isolated."""

from __future__ import annotations

import uuid

import pytest

from functions.common import db, jobs, notifications
from tests.conftest import create_job


def _set_webhook(tenant_id: str, url: str = "https://hooks.example.com/modamoda") -> None:
    with db.transaction(tenant_id) as conn:
        conn.execute(
            "UPDATE tenants SET webhook_url = %s, webhook_secret = 'whsec_test', webhook_updated_at = now()"
            " WHERE id = %s",
            (url, tenant_id),
        )


def _finish(tenant_id: str, job_id: str, status: str = "succeeded") -> dict:
    with db.transaction(tenant_id) as conn:
        jobs.transition(conn, job_id, status, error_code=None if status == "succeeded" else "boom")
        job = jobs.load(conn, job_id)
        notifications.job_finished(conn, job)
    return job


def _rows(conn, tenant_id: str) -> list[dict]:
    return conn.execute(
        "SELECT * FROM notifications WHERE tenant_id = %s ORDER BY created_at", (tenant_id,)
    ).fetchall()


def test_job_finished_records_one_webhook_event(database_url: str, conn) -> None:
    tenant_id, job_id = create_job()
    _set_webhook(tenant_id)
    job = _finish(tenant_id, job_id)
    with db.transaction(tenant_id) as c:  # a replay records nothing twice
        notifications.job_finished(c, job)
    rows = _rows(conn, tenant_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["channel"] == "webhook"
    assert row["type"] == "job.succeeded"
    assert row["status"] == "pending"
    assert str(row["id"]) == notifications.event_id(tenant_id, "webhook", f"job:{job_id}")
    payload = row["payload"]
    assert payload["id"] == str(row["id"])
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert payload["created_at"].endswith("Z")


def test_no_webhook_url_records_nothing(database_url: str, conn) -> None:
    tenant_id, job_id = create_job()
    _finish(tenant_id, job_id, "failed")
    assert _rows(conn, tenant_id) == []


def test_non_final_status_records_nothing(database_url: str, conn) -> None:
    tenant_id, job_id = create_job()
    _set_webhook(tenant_id)
    with db.transaction(tenant_id) as c:
        notifications.job_finished(c, jobs.load(c, job_id))
    assert _rows(conn, tenant_id) == []


@pytest.mark.parametrize("status", ["failed", "rejected"])
def test_failed_and_rejected_jobs(database_url: str, conn, status: str) -> None:
    tenant_id, job_id = create_job()
    _set_webhook(tenant_id)
    _finish(tenant_id, job_id, status)
    (row,) = _rows(conn, tenant_id)
    assert row["type"] == f"job.{status}"
    assert row["payload"]["data"]["error"]["code"] == "boom"


def test_batch_finished_records_webhook_and_email(database_url: str, conn) -> None:
    tenant_id, _ = create_job(sub="owner-1")
    _set_webhook(tenant_id)
    batch = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "name": "spring",
        "status": "completed",
        "counts": {"total": 2, "succeeded": 2},
        "credits_spent": 2,
    }
    report = {"csv_key": "results/t/b/report.csv", "json_key": "results/t/b/report.json", "other": 1}
    for _ in range(2):
        with db.transaction(tenant_id) as c:
            notifications.batch_finished(c, batch, report)
    rows = _rows(conn, tenant_id)
    assert sorted(r["channel"] for r in rows) == ["email", "webhook"]
    email = next(r for r in rows if r["channel"] == "email")
    assert email["recipient"] == "owner-1@example.com"
    assert email["type"] == "batch.completed"
    assert email["payload"]["data"]["report"] == {
        "csv_key": report["csv_key"],
        "json_key": report["json_key"],
    }


def test_rows_are_tenant_isolated(database_url: str, conn) -> None:
    tenant_a, job_a = create_job(sub="a")
    tenant_b, _ = create_job(sub="b")
    _set_webhook(tenant_a)
    _finish(tenant_a, job_a)
    with db.transaction(tenant_b) as c:
        assert c.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 0
    with db.transaction(None) as c:
        assert c.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 0
    with db.transaction(tenant_a) as c:
        assert c.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 1
