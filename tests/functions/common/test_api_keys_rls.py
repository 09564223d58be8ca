"""Row-level security on api_keys (migration 0004) and the identity lookup that refuses revoked keys."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from functions.common import db, tenants
from functions.common.errors import Unauthorized
from tests.conftest import create_job


def add_key(tenant_id: str, sub: str) -> str:
    key_id = str(uuid.uuid4())
    with db.transaction(tenant_id) as conn:
        conn.execute("INSERT INTO users (sub, tenant_id, email) VALUES (%s, %s, %s)", (sub, tenant_id, sub))
        conn.execute(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, cognito_username, sub)"
            " VALUES (%s, %s, 'k', 'mmk_x', %s, %s)",
            (key_id, tenant_id, f"user-{sub}", sub),
        )
    return key_id


def test_keys_are_tenant_rows(database_url: str, conn: psycopg.Connection) -> None:
    tenant_a, _ = create_job(sub="alice")
    tenant_b, _ = create_job(sub="bob")
    key_a = add_key(tenant_a, "key-sub-a")
    add_key(tenant_b, "key-sub-b")
    with db.transaction(None) as tx:
        assert tx.execute("SELECT count(*) AS n FROM api_keys").fetchone()["n"] == 0  # type: ignore[index]
    with db.transaction(tenant_b) as tx:
        assert [r["sub"] for r in tx.execute("SELECT sub FROM api_keys").fetchall()] == ["key-sub-b"]
        revoked = tx.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s RETURNING id", (key_a,)
        ).fetchone()
        assert revoked is None
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        with db.transaction(tenant_a) as tx:
            tx.execute(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, cognito_username, sub)"
                " VALUES (%s, %s, 'forged', 'mmk_f', 'forged', 'alice')",
                (str(uuid.uuid4()), tenant_b),
            )
    forced = conn.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'api_keys'"
    ).fetchone()
    assert forced == {"relrowsecurity": True, "relforcerowsecurity": True}


def test_identity_knows_keys_and_refuses_revoked_ones(database_url: str) -> None:
    tenant_a, _ = create_job(sub="alice")
    key_id = add_key(tenant_a, "key-sub")
    who = tenants.ensure_user("key-sub", None, 10)
    assert (who.tenant_id, who.api_key_id) == (tenant_a, key_id)
    assert tenants.ensure_user("alice", None, 10).api_key_id is None
    with db.transaction(tenant_a) as tx:
        tx.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (key_id,))
    with pytest.raises(Unauthorized) as raised:
        tenants.ensure_user("key-sub", None, 10)
    assert raised.value.code == "api_key_revoked"
