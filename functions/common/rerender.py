"""Re-render and retry: a new job made from the photo an earlier job of the same customer already stored, with no
new upload (``POST /v1/jobs/{job_id}/rerender`` with new options, ``POST /v1/jobs/{job_id}/retry`` with the same).

The new job is an ordinary job: it is created awaiting its photo, then the earlier job's photo (the exact version
that job processed) is copied server-side to the new job's own upload key, ``uploads/{tenant}/{new job}/{file}``.
That copy is an S3 "Object Created" event like an upload, so the normal pipeline runs it (start-workflow claims the
job for that object version, then validate → reserve → inference → capture or release): it is charged only when
it succeeds, a lack of credits ends it ``rejected`` as for any new job, and the execution's name still derives
from the bucket, key and version, so a repeated event starts nothing twice.

The job row is committed before the copy, so the copy's event always finds it; if the copy fails, the job is
removed again (hidden as a deleted job) and the customer is told why.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from functions.common import config, db, jobs, presets, storage, tenants
from functions.common.errors import Conflict, NotFound, ValidationFailed
from functions.common.models import JobCreated, JobOptions, Mode, Priority, RerenderRequest, UploadRequest
from functions.common.observability import logger

# The endings a job can be retried from: it made no image and cost nothing.
RETRYABLE_STATUSES = frozenset({"failed", "rejected", "cancelled"})

ORIGINAL_UNAVAILABLE = "original_unavailable"
ORIGINAL_UNAVAILABLE_MESSAGE = (
    "The original photo of this job is no longer stored, so it cannot be processed again. Upload the photo again "
    "to make a new image; nothing was charged."
)
NOT_RETRYABLE = "not_retryable"
NOT_RETRYABLE_MESSAGE = (
    "Only a job that failed, was refused or was cancelled can be retried. To make another version of this image, "
    "re-render it with new options instead."
)


class OriginalUnavailable(Conflict):
    code = ORIGINAL_UNAVAILABLE

    def __init__(self, message: str = ORIGINAL_UNAVAILABLE_MESSAGE) -> None:
        super().__init__(message)


def rerender(s3: Any, who: tenants.Identity, job_id: str, request: RerenderRequest) -> JobCreated:
    """A new job on ``job_id``'s stored photo; ``request``'s mode, options and priority over the source's."""
    source = _source(who, job_id)
    options = _known_options(source["options"])
    if request.options is not None:
        options |= request.options.model_dump(include=request.options.model_fields_set)
    return _start(
        s3,
        who,
        source,
        request.mode or source["mode"],
        options,
        request.priority or source.get("priority") or "normal",
    )


def retry(s3: Any, who: tenants.Identity, job_id: str) -> JobCreated:
    """A new job on ``job_id``'s stored photo with its own mode, options and priority; only for a job that ended
    without an image (failed, rejected, cancelled)."""
    source = _source(who, job_id)
    if source["status"] not in RETRYABLE_STATUSES:
        raise Conflict(NOT_RETRYABLE_MESSAGE, code=NOT_RETRYABLE)
    return _start(
        s3,
        who,
        source,
        source["mode"],
        _known_options(source["options"]),
        source.get("priority") or "normal",
    )


def _source(who: tenants.Identity, job_id: str) -> dict[str, Any]:
    """The caller's job (404 for another tenant's or an unknown one); a deleted one is 409: its photo is gone."""
    with db.transaction(who.tenant_id) as conn:
        source = jobs.get(conn, who.tenant_id, job_id, include_deleted=True)
    if source.get("deleted_at") is not None:
        raise OriginalUnavailable()
    return source


def _known_options(stored: Any) -> dict[str, Any]:
    """The stored options that are job options today (a row written by an older version may have others)."""
    return {k: v for k, v in dict(stored or {}).items() if k in JobOptions.model_fields}


def _photo_arrived(source: dict[str, Any]) -> bool:
    """Whether a photo ever arrived for the job: not one still waiting for it, nor one that ended waiting."""
    return source["status"] != "awaiting_upload" and source.get("error_code") != jobs.UPLOAD_EXPIRED


def _content_type(source: dict[str, Any]) -> str:
    """The content type the new job records (only a fresh upload link for it would use it)."""
    try:
        return jobs.upload_content_type(source)
    except Conflict:  # a batch file with an unusual extension: the copy keeps the object's own type anyway
        return "image/jpeg"


def _request(
    source: dict[str, Any], mode: Mode, options: dict[str, Any], priority: Priority
) -> UploadRequest:
    """The new job's request, checked as ``POST /v1/jobs`` checks one (a marketplace's background rule, an
    on-model pose); 422 ``validation_error`` or ``preset_background`` otherwise."""
    fields = {"content_type": _content_type(source), "mode": mode, "options": options, "priority": priority}
    try:
        try:
            return UploadRequest.model_validate({"filename": source["filename"], **fields})
        except ValidationError as exc:
            if not any(e["loc"][:1] == ("filename",) for e in exc.errors()):
                raise
            return UploadRequest.model_validate({"filename": "photo", **fields})  # a name with nothing usable
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {"loc": ["body", *(str(p) for p in e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        refused = presets.refusal_of(errors)
        if refused is not None:
            raise refused from None
        details = [{"loc": e["loc"], "message": e["msg"], "type": e["type"]} for e in errors]
        raise ValidationFailed("the request is not valid", details=details) from None


def _start(
    s3: Any,
    who: tenants.Identity,
    source: dict[str, Any],
    mode: Mode,
    options: dict[str, Any],
    priority: Priority,
) -> JobCreated:
    request = _request(source, mode, options, priority)
    jobs.ensure_mode_available(request.mode)  # as POST /v1/jobs: refused before anything is created
    bucket, key, version = source["source_bucket"], source["source_key"], source.get("source_version")
    if not _photo_arrived(source) or not storage.version_exists(s3, bucket, key, version):
        raise OriginalUnavailable()
    upload_bucket = config.upload_bucket()
    with db.transaction(who.tenant_id) as conn:  # committed first: the copy's event must find the job
        job = jobs.create(conn, who.tenant_id, request, upload_bucket, source_job_id=str(source["id"]))
    job_id = str(job["id"])
    try:
        storage.copy_version(s3, bucket, key, version, upload_bucket, job["source_key"])
    except Exception as exc:
        with db.transaction(who.tenant_id) as conn:  # never shown: the job did not get its photo
            jobs.mark_deleted(conn, job_id)
        if isinstance(exc, NotFound):
            logger.info("stored photo gone", extra={"job_id": job_id, "source_job_id": str(source["id"])})
            raise OriginalUnavailable() from exc
        raise
    with db.transaction(who.tenant_id) as conn:  # its start may have been quicker than this answer
        job = jobs.get(conn, who.tenant_id, job_id)
    return JobCreated(job_id=job_id, job=jobs.to_view(job))
