"""Row-level security: the application role sees only the tenant its transaction names, and nothing without one."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from functions.common import credits, db
from tests.conftest import create_job

TABLES = ("tenants", "users", "jobs", "holds", "ledger")


@pytest.fixture
def two_tenants(database_url: str) -> dict[str, tuple[str, str]]:
    a = create_job(sub="alice")
    b = create_job(sub="bob")
    for tenant, job in (a, b):
        db.atomic(tenant, lambda conn, t=tenant, j=job: credits.reserve(conn, t, j, 1, 60))
    return {"a": a, "b": b}


def counts(tenant_id: str | None) -> dict[str, int]:
    with db.transaction(tenant_id) as conn:
        return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}  # type: ignore[index]


def test_no_tenant_sees_nothing(two_tenants: dict) -> None:
    assert counts(None) == dict.fromkeys(TABLES, 0)


def test_each_tenant_sees_only_its_rows(two_tenants: dict) -> None:
    tenant_a, _job_a = two_tenants["a"]
    tenant_b, job_b = two_tenants["b"]
    assert counts(tenant_a) == {"tenants": 1, "users": 1, "jobs": 1, "holds": 1, "ledger": 2}
    with db.transaction(tenant_a) as conn:
        assert conn.execute("SELECT id FROM jobs WHERE id = %s", (job_b,)).fetchone() is None
        assert (
            conn.execute("UPDATE jobs SET status = 'failed' WHERE id = %s RETURNING id", (job_b,)).fetchone()
            is None
        )
        assert (
            conn.execute(
                "UPDATE tenants SET balance = 1000 WHERE id = %s RETURNING id", (tenant_b,)
            ).fetchone()
            is None
        )
    with db.transaction(tenant_b) as conn:
        assert (
            conn.execute("SELECT status FROM jobs WHERE id = %s", (job_b,)).fetchone()["status"]
            == "awaiting_upload"
        )


def test_forged_rows_for_another_tenant_are_refused(two_tenants: dict) -> None:
    tenant_a, _ = two_tenants["a"]
    tenant_b, _job_b = two_tenants["b"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        with db.transaction(tenant_a) as conn:  # acting for A, writing a grant into B's ledger
            conn.execute(
                "INSERT INTO ledger (tenant_id, kind, amount, idempotency_key) VALUES (%s, 'grant', 100, 'forged')",
                (tenant_b,),
            )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        with db.transaction(tenant_a) as conn:
            conn.execute("UPDATE jobs SET tenant_id = %s WHERE tenant_id = %s", (tenant_b, tenant_a))


def test_tenant_setting_is_transaction_local(two_tenants: dict) -> None:
    tenant_a, _ = two_tenants["a"]
    conn = db.connection()
    with conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_a,))
        assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 1
    assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


def test_app_role_cannot_bypass_or_rewrite_history(
    database_url: str, admin_url: str, two_tenants: dict
) -> None:
    tenant_a, _ = two_tenants["a"]
    with psycopg.connect(admin_url, row_factory=dict_row) as admin:
        role = admin.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (db.APP_ROLE,)
        ).fetchone()
        assert role == {"rolsuper": False, "rolbypassrls": False}
        owners = admin.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
            (list(TABLES),),
        ).fetchall()
        assert db.APP_ROLE not in {o["tableowner"] for o in owners}
        forced = admin.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relrowsecurity AND relforcerowsecurity",
            (list(TABLES),),
        ).fetchall()
        assert {r["relname"] for r in forced} == set(TABLES)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(tenant_a) as conn:
        conn.execute("UPDATE ledger SET amount = 100")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(tenant_a) as conn:
        conn.execute("DELETE FROM jobs")


def test_system_lookups_reveal_only_the_owner(two_tenants: dict) -> None:
    tenant_a, job_a = two_tenants["a"]
    assert db.system_lookup("SELECT app_job_tenant(%s) AS t", (job_a,)) == {
        "t": __import__("uuid").UUID(tenant_a)
    }
    assert db.system_lookup("SELECT * FROM app_user_identity(%s)", ("alice",))[
        "tenant_id"
    ].hex == tenant_a.replace("-", "")
