"""Users and tenants. A first sign-in provisions an individual tenant and its welcome credits, exactly once."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from typing import Any

from functions.common import credits, db
from functions.common.errors import Unauthorized

TENANT_NAME_MAX = 100  # as PATCH /v1/account allows
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


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


def default_tenant_name(name: str | None, email: str | None, fallback: str) -> str:
    """A new personal account's name: the person's name, else their e-mail address, else ``fallback``; one line
    without control characters, at most ``TENANT_NAME_MAX`` characters."""
    for candidate in (name, email):
        cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", candidate or "").strip()[:TENANT_NAME_MAX].strip()
        if cleaned:
            return cleaned
    return fallback


def ensure_user(sub: str, email: str | None, welcome_credits: int, *, name: str | None = None) -> Identity:
    """The caller's identity, creating user + tenant (+ welcome grant) on first sight. Race-free and idempotent.

    The tenant is named after the person (``name``), else their e-mail address. The subject of a revoked API key is
    known and refused (``Unauthorized``), never provisioned again. Whether a new subject may be provisioned at all (a
    verified e-mail address) is the caller's check (``signups``)."""
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
            "INSERT INTO tenants (id, kind, name) VALUES (%s, 'individual', %s)",
            (tenant_id, default_tenant_name(name, email, sub)),
        )
        conn.execute("INSERT INTO users (sub, tenant_id, email) VALUES (%s, %s, %s)", (sub, tenant_id, email))
        if welcome_credits > 0:
            credits.grant(conn, tenant_id, welcome_credits, f"welcome:{tenant_id}", "welcome")
        return {"tenant_id": tenant_id, "kind": "individual", "email": email}

    return _identity(sub, db.atomic(tenant_id, provision))


def correct_profile(who: Identity, email: str, name: str | None, stale: set[str]) -> Identity:
    """Store the person's real e-mail address on an account provisioned before it was known (its ``users.email`` is
    the Cognito user name or subject), and rename its personal tenant after the person where the tenant is still
    named by such an id (one of ``stale``, or a UUID). A name the customer chose is kept."""
    with db.transaction(who.tenant_id) as conn:
        conn.execute("UPDATE users SET email = %s WHERE sub = %s", (email, who.user_id))
        conn.execute(
            "UPDATE tenants SET name = %s WHERE id = %s AND kind = 'individual' AND (name = ANY(%s) OR name ~ %s)",
            (default_tenant_name(name, email, email), who.tenant_id, sorted(stale), _UUID),
        )
    return replace(who, email=email)
