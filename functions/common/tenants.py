"""Users and tenants. A first sign-in provisions an individual tenant and its welcome credits, exactly once."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import DictRow

from functions.common import credits

Conn = psycopg.Connection[DictRow]


@dataclass(frozen=True)
class Identity:
    user_id: str
    email: str | None
    tenant_id: str
    tenant_kind: str


_FIND_USER = (
    "SELECT u.sub, u.email, t.id AS tenant_id, t.kind FROM users u JOIN tenants t ON t.id = u.tenant_id"
    " WHERE u.sub = %s"
)


def ensure_user(conn: Conn, sub: str, email: str | None, welcome_credits: int) -> Identity:
    """Return the caller's identity, creating user + tenant (+ welcome grant) on first sight. Race-free."""
    row = conn.execute(_FIND_USER, (sub,)).fetchone()
    if row is None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"user:{sub}",))
            row = conn.execute(_FIND_USER, (sub,)).fetchone()
            if row is None:
                tenant = conn.execute(
                    "INSERT INTO tenants (kind, name) VALUES ('individual', %s) RETURNING id, kind",
                    (email or sub,),
                ).fetchone()
                assert tenant is not None
                conn.execute(
                    "INSERT INTO users (sub, tenant_id, email) VALUES (%s, %s, %s)",
                    (sub, tenant["id"], email),
                )
                if welcome_credits > 0:
                    credits.grant(
                        conn, str(tenant["id"]), welcome_credits, f"welcome:{tenant['id']}", "welcome"
                    )
                row = {"sub": sub, "email": email, "tenant_id": tenant["id"], "kind": tenant["kind"]}
    return Identity(
        user_id=row["sub"], email=row["email"], tenant_id=str(row["tenant_id"]), tenant_kind=row["kind"]
    )
