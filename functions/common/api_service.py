"""What the HTTP API does, apart from HTTP: the caller's identity is resolved first, every read is tenant-scoped."""

from __future__ import annotations

from typing import Any

from functions.common import accounts, billing, config, credits, db, jobs, storage, tenants
from functions.common.errors import Conflict, Unauthorized
from functions.common.models import (
    Account,
    ApiKeyCreated,
    ApiKeyList,
    CheckoutRequest,
    CheckoutResponse,
    CreditBalance,
    CreditPackList,
    DownloadLink,
    JobFilters,
    JobPage,
    JobView,
    LedgerEntry,
    LedgerPage,
    Me,
    Mode,
    PresignedPost,
    UploadRequest,
    UploadResponse,
    WebhookCreated,
)


def identity(claims: dict[str, Any]) -> tenants.Identity:
    """The caller from verified JWT claims (API Gateway's JWT authorizer has already checked the token)."""
    sub = claims.get("sub")
    if not sub or claims.get("token_use", "access") != "access":
        raise Unauthorized("an access token is required")
    email = claims.get("email") or claims.get("username")
    return tenants.ensure_user(
        str(sub), email if isinstance(email, str) else None, config.signup_grant_credits()
    )


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
    bucket = config.upload_bucket()
    with db.transaction(who.tenant_id) as conn:
        job = jobs.create(conn, who.tenant_id, request, bucket)
    ttl, max_bytes = config.upload_url_ttl_seconds(), config.upload_max_bytes()
    post = storage.presigned_post(s3, bucket, job["source_key"], request.content_type, max_bytes, ttl)
    return UploadResponse(
        job_id=str(job["id"]),
        job=jobs.to_view(job),
        upload=PresignedPost(url=post["url"], fields={k: str(v) for k, v in post["fields"].items()}),
        expires_in=ttl,
        max_bytes=max_bytes,
    )


def _result_name(job: dict[str, Any]) -> str:
    return f"{job['filename'].rsplit('.', 1)[0]}-{job['mode']}.{job['result_key'].rsplit('.', 1)[-1]}"


def _result_url(s3: Any, job: dict[str, Any]) -> str | None:
    """An inline pre-signed GET of a succeeded job's result (thumbnails, previews)."""
    if job["status"] != "succeeded" or not job["result_key"]:
        return None
    return storage.presigned_get(
        s3, config.results_bucket(), job["result_key"], config.result_url_ttl_seconds()
    )


def get_job(s3: Any, who: tenants.Identity, job_id: str) -> JobView:
    with db.transaction(who.tenant_id) as conn:
        job = jobs.get(conn, who.tenant_id, job_id)
    return jobs.to_view(job, _result_url(s3, job))


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
    return JobPage(items=[jobs.to_view(r, _result_url(s3, r)) for r in rows], next_cursor=next_cursor)


def download(s3: Any, who: tenants.Identity, job_id: str) -> DownloadLink:
    with db.transaction(who.tenant_id) as conn:
        job = jobs.get(conn, who.tenant_id, job_id)
    if job["status"] != "succeeded" or not job["result_key"]:
        raise Conflict(f"job {job_id} has no result (it is {job['status']})", code="no_result")
    name, ttl = _result_name(job), config.download_url_ttl_seconds()
    url = storage.presigned_get(s3, config.results_bucket(), job["result_key"], ttl, name)
    return DownloadLink(url=url, filename=name, expires_in=ttl)


def delete_job(s3: Any, who: tenants.Identity, job_id: str) -> None:
    """Delete the photo (every version) and the result from S3, then hide the job (``deleted_at``).

    The job row stays locked while S3 is cleaned, so a late upload's claim waits and then finds the job deleted;
    a failure leaves the job as it was, and the delete can be retried.
    """
    with db.transaction(who.tenant_id) as conn:
        job = jobs.lock_for_delete(conn, who.tenant_id, job_id)
        storage.delete_object_versions(s3, job["source_bucket"], job["source_key"])
        if job["result_key"]:
            storage.delete_object(s3, config.results_bucket(), job["result_key"])
        jobs.mark_deleted(conn, str(job["id"]))


def credit_balance(who: tenants.Identity) -> CreditBalance:
    with db.transaction(who.tenant_id) as conn:
        return CreditBalance(
            balance=credits.balance(conn, who.tenant_id), held=credits.held(conn, who.tenant_id)
        )


def list_ledger(who: tenants.Identity, limit: int, cursor: str | None) -> LedgerPage:
    with db.transaction(who.tenant_id) as conn:
        rows, next_cursor = credits.ledger_page(conn, who.tenant_id, limit, cursor)
    items = [
        LedgerEntry(
            **{**r, "job_id": str(r["job_id"]) if r["job_id"] else None, "meta": dict(r["meta"] or {})}
        )
        for r in rows
    ]
    return LedgerPage(items=items, next_cursor=next_cursor)


def list_packs() -> CreditPackList:
    with db.transaction(None) as conn:
        return CreditPackList(items=billing.list_packs(conn))


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
