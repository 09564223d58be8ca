"""Customer notifications: signed webhooks for finished jobs and batches, and an e-mail for a finished batch.

Recording is an outbox: ``job_finished`` / ``batch_finished`` insert rows into ``notifications`` inside the
transaction that makes the job or batch final, so each event is recorded exactly once (its id is derived from the
tenant, channel and subject, and a replay inserts nothing). Delivery happens after commit.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from functions.common import db

# Event ids are uuid5 of (tenant, channel, subject) in this namespace: a replayed transition records nothing twice.
_NAMESPACE = uuid.UUID("6d6f6461-6d6f-6461-8e6f-746966790000")
API_KEY_EMAIL_DOMAIN = "@api-keys.modamoda.invalid"
JOB_EVENT_TYPES = {
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "rejected": "job.rejected",
    "cancelled": "job.cancelled",
}
BATCH_EVENT_TYPES = {
    "completed": "batch.completed",
    "stopped": "batch.stopped",
    "cancelled": "batch.cancelled",
}


def event_id(tenant_id: str, channel: str, subject: str) -> str:
    """The deterministic id of the event about ``subject`` (``job:<id>``, ``batch:<id>``) on ``channel``."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}:{channel}:{subject}"))


def _plain(value: Any) -> Any:
    """JSON-ready copy of a DB row value (UUIDs, datetimes, decimals)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _record(
    conn: db.Conn,
    tenant_id: str,
    channel: str,
    event_type: str,
    subject: str,
    data: dict[str, Any],
    recipient: str | None = None,
) -> str | None:
    """Insert one outbox row (nothing if it exists). Returns the event id when a row was inserted."""
    ident = event_id(tenant_id, channel, subject)
    created = conn.execute("SELECT now() AS now").fetchone()
    assert created is not None
    payload: dict[str, Any] = {
        "id": ident,
        "type": event_type,
        "created_at": _plain(created["now"]),
        "data": _plain(data),
    }
    row = conn.execute(
        "INSERT INTO notifications (id, tenant_id, channel, type, subject, payload, recipient, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id",
        (ident, tenant_id, channel, event_type, subject, json.dumps(payload), recipient, created["now"]),
    ).fetchone()
    return ident if row is not None else None


def _webhook_configured(conn: db.Conn, tenant_id: str) -> bool:
    row = conn.execute("SELECT webhook_url FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return bool(row and row["webhook_url"])


def job_data(job: dict[str, Any]) -> dict[str, Any]:
    """What a job event tells the customer (no URLs: fetch ``GET /v1/jobs/{id}`` for a fresh result link)."""
    error = None
    if job.get("error_code"):
        error = {"code": job["error_code"], "message": job.get("error_message") or ""}
    data: dict[str, Any] = {
        "id": job["id"],
        "status": job["status"],
        "mode": job.get("mode"),
        "filename": job.get("filename"),
        "priority": job.get("priority") or "normal",
        "cost": job.get("cost"),
        "error": error,
        "has_result": bool(job.get("result_key")) and job["status"] == "succeeded",
        "created_at": job.get("created_at"),
        "finished_at": job.get("updated_at"),
    }
    for optional in ("batch_id", "sku"):
        if optional in job:
            data[optional] = job[optional]
    return data


def job_finished(conn: db.Conn, job: dict[str, Any]) -> None:
    """Record ``job.<status>`` for the tenant's webhook in the transaction that made ``job`` final.

    Nothing is recorded when the tenant has no webhook URL, or for a status that is not final."""
    event_type = JOB_EVENT_TYPES.get(str(job.get("status")))
    if event_type is None:
        return
    tenant_id = str(job["tenant_id"])
    if not _webhook_configured(conn, tenant_id):
        return
    _record(conn, tenant_id, "webhook", event_type, f"job:{job['id']}", job_data(job))


def owner_email(conn: db.Conn, tenant_id: str, batch: dict[str, Any] | None = None) -> str | None:
    """Where a batch's e-mail goes: its creator's address if the batch names one, else the tenant's first person
    (API keys have no mailbox)."""
    batch = batch or {}
    for key in ("owner_email", "email"):
        if isinstance(batch.get(key), str) and "@" in batch[key]:
            return str(batch[key])
    creator = batch.get("created_by")
    if creator:
        row = conn.execute(
            "SELECT email FROM users WHERE sub = %s AND tenant_id = %s", (str(creator), tenant_id)
        ).fetchone()
        if row and row["email"] and not row["email"].endswith(API_KEY_EMAIL_DOMAIN):
            return str(row["email"])
    row = conn.execute(
        "SELECT email FROM users WHERE tenant_id = %s AND email IS NOT NULL AND email LIKE '%%@%%'"
        " AND email NOT LIKE %s ORDER BY created_at, sub LIMIT 1",
        (tenant_id, "%" + API_KEY_EMAIL_DOMAIN),
    ).fetchone()
    return str(row["email"]) if row else None


def batch_data(batch: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """What a batch event tells the customer: the batch, its totals and where its report is."""
    keep = (
        "id",
        "name",
        "status",
        "sealed",
        "counts",
        "credits_spent",
        "drop_prefix",
        "created_at",
        "finished_at",
    )
    data = {k: batch[k] for k in keep if k in batch}
    data["report"] = {
        k: report[k]
        for k in ("csv_key", "json_key", "csv_url", "json_url", "totals", "consistency")
        if k in report
    }
    return data


def batch_finished(conn: db.Conn, batch: dict[str, Any], report: dict[str, Any]) -> None:
    """Record ``batch.<status>`` for the tenant's webhook and an e-mail to the batch owner, in the transaction
    that finished the batch."""
    status = str(batch.get("status"))
    event_type = BATCH_EVENT_TYPES.get(status)
    if event_type is None:
        return
    tenant_id = str(batch["tenant_id"])
    subject = f"batch:{batch['id']}"
    data = batch_data(batch, report)
    if _webhook_configured(conn, tenant_id):
        _record(conn, tenant_id, "webhook", event_type, subject, data)
    recipient = owner_email(conn, tenant_id, batch)
    if recipient:
        _record(conn, tenant_id, "email", event_type, subject, data, recipient=recipient)
