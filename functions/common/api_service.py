"""What the HTTP API does, apart from HTTP: the caller's identity is resolved first, every read is tenant-scoped."""

from __future__ import annotations

from typing import Any

from functions.common import (
    accounts,
    archives,
    batches,
    billing,
    config,
    credit_history,
    credits,
    db,
    jobs,
    previews,
    pricing,
    signups,
    storage,
    tenants,
)
from functions.common.errors import Conflict, Unauthorized
from functions.common.models import (
    MANIFEST_FILES,
    Account,
    ApiKeyCreated,
    ApiKeyList,
    ArchiveLink,
    ArchiveRequest,
    BatchPage,
    BatchRequest,
    BatchUploadRequest,
    BatchUploadResponse,
    BatchView,
    CheckoutRequest,
    CheckoutResponse,
    CreditBalance,
    CreditPackList,
    DownloadLink,
    JobFilters,
    JobPage,
    JobView,
    LedgerPage,
    Me,
    Mode,
    PresignedPost,
    PublicPackList,
    UploadRequest,
    UploadResponse,
    WebhookCreated,
)
from functions.common.observability import logger


def identity(claims: dict[str, Any]) -> tenants.Identity:
    """The caller from verified JWT claims (API Gateway's JWT authorizer has already checked the token).

    A subject seen for the first time is provisioned (tenant, welcome credits) only once its e-mail address is
    verified in the user pool; until then ``403 email_not_verified`` (``signups``)."""
    sub = claims.get("sub")
    if not sub or claims.get("token_use", "access") != "access":
        raise Unauthorized("an access token is required")
    user_name = signups.username(claims)
    known = tenants.find_user(str(sub))
    if known is not None:
        if known.api_key_id is not None or signups.looks_like_email(known.email, str(sub), user_name):
            return known  # the usual case: no call to the user pool
        return _correct_profile(known, claims, {str(sub), user_name, *([known.email] if known.email else [])})
    welcome = config.signup_grant_credits()
    profile = signups.require_verified_email(claims, welcome)
    claimed = claims.get("email")
    email = (
        (profile.email if profile else None) or (claimed if isinstance(claimed, str) else None) or user_name
    )
    return tenants.ensure_user(str(sub), email, welcome, name=profile.name if profile else None)


def _correct_profile(known: tenants.Identity, claims: dict[str, Any], stale: set[str]) -> tenants.Identity:
    """An account provisioned before its e-mail address was stored (``users.email`` holds the Cognito user name):
    take the address and name from the user pool, once; if the pool cannot tell now, the next call tries again."""
    profile = signups.lookup_profile(claims)
    if profile is None or not signups.looks_like_email(profile.email, *stale):
        return known
    assert profile.email is not None
    return tenants.correct_profile(known, profile.email, profile.name, stale)


def me(who: tenants.Identity) -> Me:
    with db.transaction(who.tenant_id) as conn:
        balance = credits.balance(conn, who.tenant_id)
    return Me(
        user_id=who.user_id,
        email=who.email,
        tenant_id=who.tenant_id,
        tenant_kind=who.tenant_kind,
        balance=balance,
    )


def create_upload(s3: Any, who: tenants.Identity, request: UploadRequest) -> UploadResponse:
    """``POST /v1/jobs`` (and its older name ``POST /v1/uploads``): a job awaiting its upload, and the upload."""
    jobs.ensure_mode_available(request.mode)
    bucket = config.upload_bucket()
    with db.transaction(who.tenant_id) as conn:
        job = jobs.create(conn, who.tenant_id, request, bucket)
    return _upload_response(s3, job, request.content_type)


def renew_upload(s3: Any, who: tenants.Identity, job_id: str) -> UploadResponse:
    """``POST /v1/jobs/{id}/upload``: a fresh pre-signed POST for a job still waiting for its photo (the same key,
    content type and size range, a new expiry); the job's wait for its upload starts again. 409
    ``not_awaiting_upload`` for any other job."""
    with db.transaction(who.tenant_id) as conn:
        job = jobs.renew_upload(conn, who.tenant_id, job_id)
    return _upload_response(s3, job, jobs.upload_content_type(job))


def _upload_response(s3: Any, job: dict[str, Any], content_type: str) -> UploadResponse:
    ttl, max_bytes = config.upload_url_ttl_seconds(), config.upload_max_bytes()
    post = storage.presigned_post(s3, job["source_bucket"], job["source_key"], content_type, max_bytes, ttl)
    return UploadResponse(
        job_id=str(job["id"]),
        job=jobs.to_view(job),
        upload=PresignedPost(url=post["url"], fields={k: str(v) for k, v in post["fields"].items()}),
        expires_in=ttl,
        max_bytes=max_bytes,
    )


def _result_name(job: dict[str, Any]) -> str:
    return jobs.result_filename(job)


def _result_url(s3: Any, job: dict[str, Any]) -> str | None:
    """An inline pre-signed GET of a succeeded job's result (thumbnails, previews)."""
    if job["status"] != "succeeded" or not job["result_key"]:
        return None
    return storage.presigned_get(
        s3, config.results_bucket(), job["result_key"], config.result_url_ttl_seconds()
    )


def _job_view(s3: Any, job: dict[str, Any]) -> JobView:
    """The job with its short-lived links: the result, its thumbnail (succeeded jobs), the photo's preview."""
    bucket, ttl = config.results_bucket(), config.result_url_ttl_seconds()
    succeeded = job["status"] == "succeeded" and bool(job["result_key"])
    return jobs.to_view(
        job,
        _result_url(s3, job),
        thumbnail_url=previews.url(s3, bucket, job.get("thumb_key"), ttl) if succeeded else None,
        original_url=previews.url(s3, bucket, job.get("preview_key"), ttl),
    )


def get_job(s3: Any, who: tenants.Identity, job_id: str) -> JobView:
    with db.transaction(who.tenant_id) as conn:
        job = jobs.get(conn, who.tenant_id, job_id)
    return _job_view(s3, job)


def job_filters(
    mode: Mode | None,
    status: str | None,
    created_after: str | None,
    created_before: str | None,
    q: str | None,
) -> JobFilters:
    return jobs.parse_filters(mode, status, created_after, created_before, q)


def list_jobs(
    s3: Any, who: tenants.Identity, limit: int, cursor: str | None, filters: JobFilters | None = None
) -> JobPage:
    with db.transaction(who.tenant_id) as conn:
        rows, next_cursor = jobs.list_page(conn, who.tenant_id, limit, cursor, filters)
    return JobPage(items=[_job_view(s3, r) for r in rows], next_cursor=next_cursor)


def download(s3: Any, who: tenants.Identity, job_id: str) -> DownloadLink:
    with db.transaction(who.tenant_id) as conn:
        job = jobs.get(conn, who.tenant_id, job_id)
    if job["status"] != "succeeded" or not job["result_key"]:
        raise Conflict(f"job {job_id} has no result (it is {job['status']})", code="no_result")
    name, ttl = _result_name(job), config.download_url_ttl_seconds()
    url = storage.presigned_get(s3, config.results_bucket(), job["result_key"], ttl, name)
    return DownloadLink(url=url, filename=name, expires_in=ttl)


def delete_job(s3: Any, who: tenants.Identity, job_id: str) -> None:
    """Delete the photo (every version), the result and its previews from S3, then hide the job (``deleted_at``).

    The job row stays locked while S3 is cleaned, so a late upload's claim waits and then finds the job deleted;
    a failure leaves the job as it was, and the delete can be retried.
    """
    with db.transaction(who.tenant_id) as conn:
        job = jobs.lock_for_delete(conn, who.tenant_id, job_id)
        storage.delete_object_versions(s3, job["source_bucket"], job["source_key"])
        if job["result_key"]:
            storage.delete_object(s3, config.results_bucket(), job["result_key"])
        previews.delete(s3, config.results_bucket(), job)
        jobs.mark_deleted(conn, str(job["id"]))


def create_archive(s3: Any, who: tenants.Identity, request: ArchiveRequest) -> ArchiveLink:
    """``POST /v1/jobs/archive``: one ZIP of the results of the caller's chosen succeeded jobs (``archives``)."""
    with db.transaction(who.tenant_id) as conn:
        rows = archives.select(conn, who.tenant_id, request.job_ids)
    made = archives.create(
        s3, config.results_bucket(), who.tenant_id, rows, config.download_url_ttl_seconds()
    )
    return ArchiveLink(
        url=made.url, filename=made.filename, count=made.count, bytes=made.bytes, expires_at=made.expires_at
    )


def credit_balance(who: tenants.Identity) -> CreditBalance:
    with db.transaction(who.tenant_id) as conn:
        return CreditBalance(
            balance=credits.balance(conn, who.tenant_id), held=credits.held(conn, who.tenant_id)
        )


def list_ledger(who: tenants.Identity, limit: int, cursor: str | None) -> LedgerPage:
    with db.transaction(who.tenant_id) as conn:
        rows, next_cursor = credits.ledger_page(conn, who.tenant_id, limit, cursor)
    return LedgerPage(items=[credit_history.entry(r) for r in rows], next_cursor=next_cursor)


def list_packs() -> CreditPackList:
    with db.transaction(None) as conn:
        return CreditPackList(items=billing.list_packs(conn))


def public_packs() -> PublicPackList:
    """``GET /v1/public/packs`` (no sign-in): the packs on sale and the credits one image costs, for each mode this
    deployment can run (on-model only where its image model is installed)."""
    costs = {
        mode: credits
        for mode, credits in pricing.CREDITS_PER_IMAGE.items()
        if mode != "on-model" or config.on_model_available()
    }
    return PublicPackList(items=list_packs().items, costs=costs)


def checkout(
    stripe_client: Any, who: tenants.Identity, request: CheckoutRequest, idempotency_key: str | None = None
) -> CheckoutResponse:
    return billing.create_checkout(
        stripe_client,
        who,
        request.pack_id,
        request.success_url,
        request.cancel_url,
        idempotency_key=idempotency_key,
    )


# ---- account ---------------------------------------------------------------------------------------------------


def account(who: tenants.Identity) -> Account:
    return accounts.account(who)


def rename_account(who: tenants.Identity, name: str) -> Account:
    return accounts.rename(who, name)


def set_webhook(who: tenants.Identity, url: str) -> WebhookCreated:
    return accounts.set_webhook(who, url)


def clear_webhook(who: tenants.Identity) -> None:
    accounts.clear_webhook(who)


def list_api_keys(who: tenants.Identity) -> ApiKeyList:
    return accounts.list_api_keys(who)


def create_api_key(cognito: Any, who: tenants.Identity, name: str) -> ApiKeyCreated:
    return accounts.create_api_key(cognito, config.user_pool_id(), who, name, config.max_api_keys())


def revoke_api_key(cognito: Any, who: tenants.Identity, key_id: str) -> None:
    accounts.revoke_api_key(cognito, config.user_pool_id(), who, key_id)


# ---- batches (bulk) --------------------------------------------------------------------------------------------


def _batch_views(s3: Any, conn: db.Conn, rows: list[dict[str, Any]]) -> list[BatchView]:
    stats = batches.stats(conn, rows)
    return [batches.to_view(r, stats[str(r["id"])], batches.report_links(s3, r)) for r in rows]


def create_batch(who: tenants.Identity, request: BatchRequest) -> BatchView:
    """``POST /v1/batches``: its drop folder is ``drop/{tenant}/{batch id}/`` in the drop bucket."""
    jobs.ensure_mode_available(request.defaults.mode)
    with db.transaction(who.tenant_id) as conn:
        row = batches.create(conn, who.tenant_id, who.user_id, request)
        return batches.to_view(row, batches.stats(conn, [row])[str(row["id"])])


def get_batch(s3: Any, who: tenants.Identity, batch_id: str) -> BatchView:
    with db.transaction(who.tenant_id) as conn:
        return _batch_views(s3, conn, [batches.get(conn, who.tenant_id, batch_id)])[0]


def list_batches(s3: Any, who: tenants.Identity, limit: int, cursor: str | None) -> BatchPage:
    with db.transaction(who.tenant_id) as conn:
        rows, next_cursor = batches.list_page(conn, who.tenant_id, limit, cursor)
        return BatchPage(items=_batch_views(s3, conn, rows), next_cursor=next_cursor)


def batch_upload(
    s3: Any, who: tenants.Identity, batch_id: str, request: BatchUploadRequest
) -> BatchUploadResponse:
    """A pre-signed POST for ``drop/{tenant}/{batch}/{filename}``. Asking again for the same name is fine (the
    pipeline makes one job per file name); a cancelled or finished batch takes no files, a sealed one only
    the files it expects."""
    with db.transaction(who.tenant_id) as conn:
        batch = batches.get(conn, who.tenant_id, batch_id)
    if batch["status"] == "cancelled" or batch["finished_at"] is not None:
        raise Conflict(f"batch {batch_id} is {batch['status']}; it takes no more files", code="batch_closed")
    manifest = batch["manifest"]
    is_manifest = request.filename in MANIFEST_FILES
    if is_manifest and batch["sealed_at"] is not None and manifest is None:
        raise Conflict(f"batch {batch_id} was sealed without a manifest", code="batch_sealed")
    if not is_manifest and manifest is not None and request.filename not in manifest["files"]:
        raise Conflict(
            f"the manifest of batch {batch_id} does not list {request.filename}", code="not_in_manifest"
        )
    if (
        not is_manifest
        and manifest is None
        and batch["sealed_at"] is not None
        and request.filename not in (batch["expected_files"] or [])
    ):
        raise Conflict(f"batch {batch_id} is sealed; it expects no more files", code="batch_sealed")
    if not is_manifest:  # the file's mode: its manifest row's, else the batch's default
        entry = manifest["files"].get(request.filename, {}) if manifest is not None else {}
        jobs.ensure_mode_available(entry.get("mode") or (batch["defaults"] or {}).get("mode", "ghost"))
    key = batches.drop_prefix(who.tenant_id, batch["folder"]) + request.filename
    ttl = config.upload_url_ttl_seconds()
    max_bytes = config.manifest_max_bytes() if is_manifest else config.upload_max_bytes()
    post = storage.presigned_post(s3, config.drop_bucket(), key, request.content_type, max_bytes, ttl)
    return BatchUploadResponse(
        key=key,
        upload=PresignedPost(url=post["url"], fields={k: str(v) for k, v in post["fields"].items()}),
        expires_in=ttl,
        max_bytes=max_bytes,
    )


def seal_batch(s3: Any, who: tenants.Identity, batch_id: str) -> BatchView:
    """No more files: the ones in the drop folder now are the complete set (idempotent)."""
    with db.transaction(who.tenant_id) as conn:
        batch = batches.get(conn, who.tenant_id, batch_id)
    if batch["sealed_at"] is None and batch["status"] != "cancelled" and batch["finished_at"] is None:
        listed = batches.list_drop_files(
            s3, config.drop_bucket(), batches.drop_prefix(who.tenant_id, batch["folder"])
        )
        db.atomic(
            who.tenant_id,
            lambda conn: batches.seal(conn, batches.get(conn, who.tenant_id, batch_id, lock=True), listed),
        )
        batches.after_commit(who.tenant_id, batch_id, s3)
    return get_batch(s3, who, batch_id)


def cancel_batch(s3: Any, sfn: Any, who: tenants.Identity, batch_id: str) -> BatchView:
    """Stop what has not started (hold released, execution stopped, nothing charged); what is processing
    finishes. Idempotent; a finished batch is 409 ``batch_finished``."""
    executions = db.atomic(
        who.tenant_id,
        lambda conn: batches.cancel(conn, batches.get(conn, who.tenant_id, batch_id, lock=True)),
    )
    if executions:
        prefix = config.state_machine_arn().replace(":stateMachine:", ":execution:", 1)
        for name in executions:
            try:
                sfn.stop_execution(
                    executionArn=f"{prefix}:{name}", error="BatchCancelled", cause="the batch was cancelled"
                )
            except (
                sfn.exceptions.ClientError
            ) as exc:  # best effort: a job that runs on finds itself cancelled
                logger.info("execution not stopped", extra={"execution": name, "error": str(exc)[:200]})
    batches.after_commit(who.tenant_id, batch_id, s3)
    return get_batch(s3, who, batch_id)


def list_batch_jobs(
    s3: Any, who: tenants.Identity, batch_id: str, limit: int, cursor: str | None, status: str | None
) -> JobPage:
    with db.transaction(who.tenant_id) as conn:
        batch = batches.get(conn, who.tenant_id, batch_id)
    filters = jobs.parse_filters(status=status).model_copy(update={"batch_id": str(batch["id"])})
    return list_jobs(s3, who, limit, cursor, filters)
