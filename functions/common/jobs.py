"""Jobs: creation, tenant-scoped reads, and status transitions that never leave a final state."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, cast

import psycopg
from psycopg.rows import DictRow

from functions.common import config, lanes, refusals
from functions.common.errors import Conflict, NotFound, OnModelUnavailable, ValidationFailed
from functions.common.models import (
    FINAL_STATUSES,
    IN_PROGRESS_STATUSES,
    JOB_STATUSES,
    JobError,
    JobFilters,
    JobProgress,
    JobQuality,
    JobStatus,
    JobView,
    Mode,
    UploadRequest,
)
from functions.common.pagination import decode_cursor, page

Conn = psycopg.Connection[DictRow]
_FINAL = tuple(FINAL_STATUSES)
# A job whose photo never arrived ends ``cancelled`` with this code (the sweeper, ``pipeline.sweep_expired_uploads``).
UPLOAD_EXPIRED = "upload_expired"
# What the history leaves out unless a status filter names it: jobs that never got their photo (still waiting,
# or ended waiting). They cost nothing and hold nothing.
_UNUPLOADED = "status = 'awaiting_upload' OR (status = 'cancelled' AND error_code IS NOT DISTINCT FROM %s)"


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


def ensure_mode_available(mode: str) -> None:
    """Refuse an on-model job up front (``on_model_unavailable``) where the endpoint has no diffusion weights: the
    caller learns it before uploading anything, and no job, hold or GPU time is spent on it."""
    if mode == "on-model" and not config.on_model_available():
        raise OnModelUnavailable()


def create(
    conn: Conn, tenant_id: str, request: UploadRequest, bucket: str, *, source_job_id: str | None = None
) -> dict[str, Any]:
    """A job awaiting its photo at ``uploads/{tenant}/{job}/{filename}``; ``source_job_id``: the earlier job whose
    stored photo will be copied there (re-render, retry) instead of an upload."""
    job_id = str(uuid.uuid4())
    key = source_key(tenant_id, job_id, request.filename)
    row = conn.execute(
        "INSERT INTO jobs (id, tenant_id, mode, options, priority, lane, status, filename, source_bucket,"
        "                  source_key, upload_content_type, source_job_id, stages)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'awaiting_upload', %s, %s, %s, %s, %s,"
        "         jsonb_build_object('awaiting_upload', to_char(now() AT TIME ZONE 'UTC',"
        '                            \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')))'
        " RETURNING *",
        (
            job_id,
            tenant_id,
            request.mode,
            request.options.model_dump_json(),
            request.priority,
            lanes.lane_for(request.priority),  # a single job: interactive (bulk when its priority is low)
            request.filename,
            bucket,
            key,
            request.content_type,
            source_job_id,
        ),
    ).fetchone()
    assert row is not None
    return dict(row)


def get(
    conn: Conn, tenant_id: str, job_id: str, *, lock: bool = False, include_deleted: bool = False
) -> dict[str, Any]:
    """A job of this tenant; another tenant's job, or a deleted one, is indistinguishable from a missing one
    (``include_deleted``: a deleted job of this tenant too, with its ``deleted_at``)."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"job {job_id} not found") from None
    row = conn.execute(
        "SELECT * FROM jobs WHERE id = %s AND tenant_id = %s"
        + ("" if include_deleted else " AND deleted_at IS NULL")
        + (" FOR UPDATE" if lock else ""),
        (job_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return dict(row)


def parse_filters(
    mode: Mode | None = None,
    status: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    q: str | None = None,
) -> JobFilters:
    """The history filters from query strings. ``status`` is a comma list; dates are ``YYYY-MM-DD`` or ISO 8601
    date-times (UTC when no offset is given). ``created_after`` is inclusive; ``created_before`` is exclusive,
    and a bare date there means the end of that day. Every problem is reported (422 ``validation_error``)."""
    problems: list[dict[str, Any]] = []

    def problem(name: str, message: str, kind: str) -> None:
        problems.append({"loc": ["query", name], "message": message, "type": kind})

    statuses: list[JobStatus] = []
    for item in (status or "").split(","):
        item = item.strip()
        if not item or item in statuses:
            continue
        if item in JOB_STATUSES:
            statuses.append(cast(JobStatus, item))
        else:
            problem("status", f"unknown status {item!r}; one of {', '.join(JOB_STATUSES)}", "enum")
    after = _instant(created_after, end_of_day=False, name="created_after", problem=problem)
    before = _instant(created_before, end_of_day=True, name="created_before", problem=problem)
    if after and before and after >= before:
        problem("created_before", "must be later than created_after", "value_error")
    if problems:
        raise ValidationFailed("the request is not valid", details=problems)
    return JobFilters(
        mode=mode,
        statuses=tuple(statuses),
        created_after=after,
        created_before=before,
        q=q or None,
    )


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _instant(raw: str | None, *, end_of_day: bool, name: str, problem: Any) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        if _DATE.fullmatch(text):
            day = date.fromisoformat(text)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        if not _DATE.match(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        problem(name, "must be a date (YYYY-MM-DD) or an ISO 8601 date-time", "datetime_parsing")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _like_pattern(text: str) -> str:
    """``%text%`` for ILIKE with the pattern characters of ``text`` matched literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_page(
    conn: Conn, tenant_id: str, limit: int, cursor: str | None, filters: JobFilters | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset pagination on (created_at, id); the filters apply to every page alike."""
    filters = filters or JobFilters()
    params: list[Any] = [tenant_id]
    where = ["tenant_id = %s", "deleted_at IS NULL"]
    if filters.batch_id:
        where.append("batch_id = %s")
        params.append(filters.batch_id)
    if filters.mode:
        where.append("mode = %s")
        params.append(filters.mode)
    if filters.statuses:
        where.append("status = ANY(%s)")
        params.append(list(filters.statuses))
    elif not filters.batch_id:  # the history without a status filter: only jobs whose photo arrived
        where.append(f"NOT ({_UNUPLOADED})")
        params.append(UPLOAD_EXPIRED)
    if filters.created_after:
        where.append("created_at >= %s")
        params.append(filters.created_after)
    if filters.created_before:
        where.append("created_at < %s")
        params.append(filters.created_before)
    if filters.q:
        where.append("filename ILIKE %s ESCAPE '\\'")
        params.append(_like_pattern(filters.q))
    if cursor:
        created, last_id = decode_cursor(
            cursor, lambda v: (datetime.fromisoformat(v[0]), str(uuid.UUID(v[1])))
        )
        params += [created, last_id]
        where.append("(created_at, id) < (%s, %s)")
    rows = conn.execute(
        f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    return page(rows, limit, lambda last: (last["created_at"].isoformat(), str(last["id"])))


def lock_for_delete(conn: Conn, tenant_id: str, job_id: str) -> dict[str, Any]:
    """The job, locked until the transaction ends, if it may be deleted now (not while it is being processed).

    The lock makes a concurrent ``claim_upload`` wait; once this transaction has set ``deleted_at`` the claim
    finds nothing to claim and the late upload is ignored.
    """
    job = get(conn, tenant_id, job_id, lock=True)
    if job["status"] in IN_PROGRESS_STATUSES:
        raise Conflict(
            f"job {job_id} is {job['status']}; delete it once it has finished", code="job_in_progress"
        )
    return job


def mark_deleted(conn: Conn, job_id: str) -> None:
    conn.execute(
        "UPDATE jobs SET deleted_at = now(), updated_at = now(), task_token = NULL"
        " WHERE id = %s AND deleted_at IS NULL",
        (job_id,),
    )


def renew_upload(conn: Conn, tenant_id: str, job_id: str) -> dict[str, Any]:
    """The job, if it still waits for its photo, with its upload clock restarted (``upload_requested_at``): a new
    pre-signed POST for the same key may be issued. Any other job is a Conflict (``not_awaiting_upload``).

    The row lock orders this against the sweeper's expiry and an upload's claim: whichever commits first wins,
    the others find the job changed."""
    job = get(conn, tenant_id, job_id, lock=True)
    if job["status"] != "awaiting_upload":
        if job["error_code"] == UPLOAD_EXPIRED:
            message = (
                f"job {job_id} was closed because its photo was not uploaded in time (nothing was charged); "
                "create a new job to process the photo"
            )
        else:
            message = (
                f"job {job_id} is {job['status']}: its photo was received already, so it takes no new upload; "
                "only a job still waiting for its photo gets a new upload URL"
            )
        raise Conflict(message, code="not_awaiting_upload")
    if job["batch_id"]:
        raise Conflict(
            f"job {job_id} is a file of batch {job['batch_id']}: upload it with "
            f"POST /v1/batches/{job['batch_id']}/uploads",
            code="not_awaiting_upload",
        )
    ensure_mode_available(job["mode"])  # as at creation: refused before any upload where it cannot run
    upload_content_type(job)  # the same constraints as the first URL, or a Conflict now
    row = conn.execute(
        "UPDATE jobs SET upload_requested_at = now(), updated_at = now() WHERE id = %s RETURNING *", (job_id,)
    ).fetchone()
    assert row is not None
    return dict(row)


_EXTENSION_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "avif": "image/avif",
    "heic": "image/heic",
    "heif": "image/heif",
}


def upload_content_type(job: dict[str, Any]) -> str:
    """The content type the job's pre-signed POST requires: the one it was created with (a job from before that
    was recorded: the type its file name's extension stands for)."""
    if job.get("upload_content_type"):
        return str(job["upload_content_type"])
    guessed = _EXTENSION_TYPES.get(str(job["filename"]).rsplit(".", 1)[-1].lower())
    if guessed is None:
        raise Conflict(
            f"job {job['id']} does not record which type of image it expects; create a new job for the photo",
            code="not_awaiting_upload",
        )
    return guessed


def lock_overdue_upload(conn: Conn, job_id: str, wait_seconds: int) -> bool:
    """Lock the job if it still waits for its photo ``wait_seconds`` after its newest upload URL was issued
    (the condition of ``app_expired_uploads``, checked again under the row lock: a fresh URL or an upload may
    have come since the sweeper listed it). True when it may be expired now."""
    row = conn.execute(
        "SELECT id FROM jobs WHERE id = %s AND status = 'awaiting_upload' AND deleted_at IS NULL"
        " AND coalesce(upload_requested_at, created_at) < now() - make_interval(secs => %s) FOR UPDATE",
        (job_id, wait_seconds),
    ).fetchone()
    return row is not None


def load(conn: Conn, job_id: str, *, lock: bool = False) -> dict[str, Any]:
    """A job by id for the workflow (trusted system caller; the tenant comes from the job itself)."""
    row = conn.execute(
        "SELECT * FROM jobs WHERE id = %s" + (" FOR UPDATE" if lock else ""), (job_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return dict(row)


def claim_upload(
    conn: Conn, job_id: str, tenant_id: str, key: str, version_id: str | None, execution_name: str
) -> dict[str, Any] | None:
    """Mark the job's upload received (``awaiting_upload → queued``) for this object version; the claimed job's
    ``id``, ``priority``, ``lane`` and ``batch_id``, or None.

    Only the job's own key claims it (the key the pre-signed POST allowed): another file written under the job's
    prefix is ignored. Replays of the same version claim again (so a crashed start can be retried); a second,
    different upload for the same job, or an upload for a deleted job, returns None and is ignored.
    """
    row = conn.execute(
        "UPDATE jobs SET status = 'queued', source_version = %(v)s, execution_name = %(e)s, updated_at = now(),"
        " stages = stages || jsonb_build_object('queued', COALESCE(stages->>'queued', %(now)s))"
        " WHERE id = %(id)s AND tenant_id = %(t)s AND source_key = %(k)s AND deleted_at IS NULL"
        "   AND (status = 'awaiting_upload' OR (status = 'queued' AND execution_name = %(e)s))"
        " RETURNING id, priority, lane, batch_id",
        {
            "v": version_id,
            "e": execution_name,
            "id": job_id,
            "t": tenant_id,
            "k": key,
            "now": _now_text(conn),
        },
    ).fetchone()
    return dict(row) if row is not None else None


def queue_done(conn: Conn, job_id: str) -> None:
    """The job's result was settled and its waiting execution resumed: it no longer counts as at the GPU endpoint
    (``functions/common/scheduler.py``)."""
    conn.execute(
        "UPDATE jobs SET queue_state = 'done' WHERE id = %s AND queue_state IN ('dispatching', 'dispatched')",
        (job_id,),
    )


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
    allowed = {
        "image",
        "cost",
        "task_token",
        "result_key",
        "error_code",
        "error_message",
        "quality",
        "preview_key",
        "thumb_key",
    }
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
        params[name] = json.dumps(value) if name in {"image", "quality"} else value
    row = conn.execute(
        f"UPDATE jobs SET {', '.join(sets)} WHERE id = %(id)s AND NOT (status = ANY(%(final)s)) RETURNING id",
        params,
    ).fetchone()
    return row is not None


Stage = Literal["upload", "validation", "queue", "inference", "done"]
_PROGRESS: dict[str, tuple[Stage, str, int, int]] = {
    # status: (stage, label, percent, step)
    "awaiting_upload": ("upload", "Waiting for the upload", 0, 1),
    "queued": ("validation", "Checking the photo", 15, 2),
    "validated": ("queue", "Waiting for a GPU", 30, 3),
    "processing": ("inference", "Creating the image", 60, 4),
    "succeeded": ("done", "Ready", 100, 5),
    "failed": ("done", "Failed; no credits were charged", 100, 5),
    "rejected": ("done", "Rejected; no credits were charged", 100, 5),
    "cancelled": ("done", "Cancelled; no credits were charged", 100, 5),
}
PROGRESS_STEPS = 5


def progress(status: str) -> JobProgress:
    stage, label, percent, step = _PROGRESS[status]
    return JobProgress(stage=stage, label=label, percent=percent, step=step, steps=PROGRESS_STEPS)


def result_filename(job: dict[str, Any]) -> str:
    """The file name a succeeded job's result downloads as (``GET /v1/jobs/{id}/download``, archives): a batch
    job's result is already named ``{sku or file stem}-{mode}.{ext}``; another is ``{file stem}-{mode}.{ext}``."""
    if job.get("batch_id"):
        return str(job["result_key"]).rsplit("/", 1)[-1]
    return f"{job['filename'].rsplit('.', 1)[0]}-{job['mode']}.{job['result_key'].rsplit('.', 1)[-1]}"


def to_view(
    row: dict[str, Any],
    result_url: str | None = None,
    *,
    thumbnail_url: str | None = None,
    original_url: str | None = None,
) -> JobView:
    error = None
    if row.get("error_code"):
        # never the raw text of an SDK or service error, even on rows written before messages were checked
        error = JobError(
            code=row["error_code"],
            message=refusals.shown(row.get("error_message"), client_error=row["status"] == "rejected"),
        )
    return JobView(
        id=str(row["id"]),
        mode=row["mode"],
        status=row["status"],
        priority=row.get("priority") or "normal",
        lane=lanes.lane_of(row),
        filename=row["filename"],
        options=row["options"] or {},
        cost=row["cost"],
        error=error,
        result_url=result_url,
        thumbnail_url=thumbnail_url,
        original_url=original_url,
        progress=progress(row["status"]),
        stages=row["stages"] or {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        batch_id=str(row["batch_id"]) if row.get("batch_id") else None,
        sku=row.get("sku"),
        quality=_quality(row.get("quality")),
        source_job_id=str(row["source_job_id"]) if row.get("source_job_id") else None,
    )


def _quality(value: Any) -> JobQuality | None:
    if not isinstance(value, dict):
        return None
    try:
        return JobQuality(score=value["score"], threshold=value["threshold"])
    except (KeyError, ValueError):  # the column's CHECK keeps this from happening; never fail a read over it
        return None
