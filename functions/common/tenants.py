"""Users and tenants. A first sign-in provisions an individual tenant and its welcome credits, exactly once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from functions.common import credits, db
from functions.common.errors import Unauthorized


@dataclass(frozen=True)
class Identity:
    user_id: str
    email: str | None
    tenant_id: str
    tenant_kind: str
    api_key_id: str | None = None  # set when the caller signed in with an API key


def _identity(sub: str, row: dict[str, Any]) -> Identity:
    if row.get("revoked"):
        raise Unauthorized("this API key has been revoked", code="api_key_revoked")
    key = row.get("api_key_id")
    return Identity(
        user_id=sub,
        email=row["email"],
        tenant_id=str(row["tenant_id"]),
        tenant_kind=row["kind"],
        api_key_id=str(key) if key else None,
    )


def find_user(sub: str) -> Identity | None:
    """The identity of a subject already provisioned (a person or an API key), or None.

    The subject of a revoked API key is known and refused (``Unauthorized``)."""
    found = db.system_lookup("SELECT * FROM app_user_identity(%s)", (sub,))
    return None if found is None else _identity(sub, found)


def ensure_user(sub: str, email: str | None, welcome_credits: int) -> Identity:
    """The caller's identity, creating user + tenant (+ welcome grant) on first sight. Race-free and idempotent.

    The subject of a revoked API key is known and refused (``Unauthorized``), never provisioned again. Whether a new
    subject may be provisioned at all (a verified e-mail address) is the caller's check (``signups``)."""
    found = find_user(sub)
    if found is not None:
        return found
    tenant_id = str(uuid.uuid4())

    def provision(conn: db.Conn) -> dict[str, Any]:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"user:{sub}",))
        existing = conn.execute("SELECT * FROM app_user_identity(%s)", (sub,)).fetchone()
        if existing is not None:  # provisioned concurrently: our new tenant id is simply not used
            return dict(existing)
        conn.execute(
            "INSERT INTO tenants (id, kind, name) VALUES (%s, 'individual', %s)", (tenant_id, email or sub)
        )
        conn.execute("INSERT INTO users (sub, tenant_id, email) VALUES (%s, %s, %s)", (sub, tenant_id, email))
        if welcome_credits > 0:
            credits.grant(conn, tenant_id, welcome_credits, f"welcome:{tenant_id}", "welcome")
        return {"tenant_id": tenant_id, "kind": "individual", "email": email}

    return _identity(sub, db.atomic(tenant_id, provision))
