"""What the HTTP API does, apart from HTTP: the caller's identity is resolved first, every read is tenant-scoped."""

from __future__ import annotations

from typing import Any

from functions.common import billing, config, credits, db, jobs, storage, tenants
from functions.common.errors import Unauthorized
from functions.common.models import (
    CheckoutRequest,
    CheckoutResponse,
    CreditBalance,
    CreditPackList,
    JobPage,
    JobView,
    LedgerEntry,
    LedgerPage,
    Me,
    PresignedPost,
    UploadRequest,
    UploadResponse,
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
    bucket = config.upload_bucket()
    with db.transaction(who.tenant_id) as conn:
        job = jobs.create(conn, who.tenant_id, request, bucket)
    ttl, max_bytes = config.upload_url_ttl_seconds(), config.upload_max_bytes()
    post = storage.presigned_post(s3, bucket, job["source_key"], request.content_type, max_bytes, ttl)
    return UploadResponse(
        job_id=str(job["id"]),
        upload=PresignedPost(url=post["url"], fields={k: str(v) for k, v in post["fields"].items()}),
        expires_in=ttl,
        max_bytes=max_bytes,
    )


def get_job(s3: Any, who: tenants.Identity, job_id: str) -> JobView:
    with db.transaction(who.tenant_id) as conn:
        job = jobs.get(conn, who.tenant_id, job_id)
    url = None
    if job["status"] == "succeeded" and job["result_key"]:
        name = f"{job['filename'].rsplit('.', 1)[0]}-{job['mode']}.{job['result_key'].rsplit('.', 1)[-1]}"
        url = storage.presigned_get(
            s3, config.results_bucket(), job["result_key"], config.result_url_ttl_seconds(), name
        )
    return jobs.to_view(job, url)


def list_jobs(who: tenants.Identity, limit: int, cursor: str | None) -> JobPage:
    with db.transaction(who.tenant_id) as conn:
        rows, next_cursor = jobs.list_page(conn, who.tenant_id, limit, cursor)
    return JobPage(items=[jobs.to_view(r) for r in rows], next_cursor=next_cursor)


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
