"""Jobs: creation, tenant-scoped reads, and status transitions that never leave a final state."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow

from functions.common.errors import NotFound
from functions.common.models import FINAL_STATUSES, JobError, JobView, UploadRequest
from functions.common.pagination import decode_cursor, page

Conn = psycopg.Connection[DictRow]
_FINAL = tuple(FINAL_STATUSES)


def source_key(tenant_id: str, job_id: str, filename: str) -> str:
    return f"uploads/{tenant_id}/{job_id}/{filename}"


def parse_source_key(key: str) -> tuple[str, str] | None:
    """``uploads/{tenant}/{job}/{file}`` → (tenant_id, job_id); None for keys of another layout."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "uploads" or not parts[3]:
        return None
    try:
        return str(uuid.UUID(parts[1])), str(uuid.UUID(parts[2]))
    except ValueError:
        return None


def create(conn: Conn, tenant_id: str, request: UploadRequest, bucket: str) -> dict[str, Any]:
    job_id = str(uuid.uuid4())
    key = source_key(tenant_id, job_id, request.filename)
    row = conn.execute(
        "INSERT INTO jobs (id, tenant_id, mode, options, status, filename, source_bucket, source_key, stages)"
        " VALUES (%s, %s, %s, %s, 'awaiting_upload', %s, %s, %s,"
        "         jsonb_build_object('awaiting_upload', to_char(now() AT TIME ZONE 'UTC',"
        '                            \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')))'
        " RETURNING *",
        (job_id, tenant_id, request.mode, request.options.model_dump_json(), request.filename, bucket, key),
    ).fetchone()
    assert row is not None
    return dict(row)


def get(conn: Conn, tenant_id: str, job_id: str) -> dict[str, Any]:
    """A job of this tenant; another tenant's job is indistinguishable from a missing one."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"job {job_id} not found") from None
    row = conn.execute("SELECT * FROM jobs WHERE id = %s AND tenant_id = %s", (job_id, tenant_id)).fetchone()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return dict(row)


def list_page(
    conn: Conn, tenant_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset pagination on (created_at, id)."""
    params: list[Any] = [tenant_id]
    where = "tenant_id = %s"
    if cursor:
        created, last_id = decode_cursor(
            cursor, lambda v: (datetime.fromisoformat(v[0]), str(uuid.UUID(v[1])))
        )
        params += [created, last_id]
        where += " AND (created_at, id) < (%s, %s)"
    rows = conn.execute(
        f"SELECT * FROM jobs WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    return page(rows, limit, lambda last: (last["created_at"].isoformat(), str(last["id"])))


def load(conn: Conn, job_id: str, *, lock: bool = False) -> dict[str, Any]:
    """A job by id for the workflow (trusted system caller; the tenant comes from the job itself)."""
    row = conn.execute(
        "SELECT * FROM jobs WHERE id = %s" + (" FOR UPDATE" if lock else ""), (job_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return dict(row)


def claim_upload(
    conn: Conn, job_id: str, tenant_id: str, version_id: str | None, execution_name: str
) -> bool:
    """Mark the job's upload received (``awaiting_upload → queued``) for this object version.

    Replays of the same version return True again (so a crashed start can be retried); a second, different
    upload for the same job returns False and is ignored.
    """
    row = conn.execute(
        "UPDATE jobs SET status = 'queued', source_version = %(v)s, execution_name = %(e)s, updated_at = now(),"
        " stages = stages || jsonb_build_object('queued', COALESCE(stages->>'queued', %(now)s))"
        " WHERE id = %(id)s AND tenant_id = %(t)s AND (status = 'awaiting_upload'"
        "   OR (status = 'queued' AND execution_name = %(e)s))"
        " RETURNING id",
        {"v": version_id, "e": execution_name, "id": job_id, "t": tenant_id, "now": _now_text(conn)},
    ).fetchone()
    return row is not None


def _now_text(conn: Conn) -> str:
    row = conn.execute(
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS t"
    ).fetchone()
    assert row is not None
    return str(row["t"])


def transition(conn: Conn, job_id: str, status: str, **fields: Any) -> bool:
    """Move a job to ``status`` and set ``fields``, unless it is already final. Returns whether it moved.

    The first time a status is reached is kept in ``stages`` (seconds per stage for reports).
    """
    allowed = {"image", "cost", "task_token", "result_key", "error_code", "error_message"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot set job fields {sorted(unknown)}")
    sets = ["status = %(status)s", "updated_at = now()"]
    sets.append(
        "stages = stages || jsonb_build_object(%(status)s::text, COALESCE(stages->>%(status)s, %(now)s))"
    )
    params: dict[str, Any] = {"status": status, "id": job_id, "final": list(_FINAL), "now": _now_text(conn)}
    for name, value in fields.items():
        sets.append(f"{name} = %({name})s")
        params[name] = json.dumps(value) if name == "image" else value
    row = conn.execute(
        f"UPDATE jobs SET {', '.join(sets)} WHERE id = %(id)s AND NOT (status = ANY(%(final)s)) RETURNING id",
        params,
    ).fetchone()
    return row is not None


def to_view(row: dict[str, Any], result_url: str | None = None) -> JobView:
    error = None
    if row.get("error_code"):
        error = JobError(code=row["error_code"], message=row.get("error_message") or "")
    return JobView(
        id=str(row["id"]),
        mode=row["mode"],
        status=row["status"],
        filename=row["filename"],
        options=row["options"] or {},
        cost=row["cost"],
        error=error,
        result_url=result_url,
        stages=row["stages"] or {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
