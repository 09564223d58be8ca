"""Credits on a real PostgreSQL: holds settle once, balances never go negative, ledger sum = balance."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from functions.common import credits, db
from functions.common.errors import InsufficientCredits


def make_tenant(conn: psycopg.Connection, balance: int = 0) -> str:
    tenant_id = str(conn.execute("INSERT INTO tenants (name) VALUES ('t') RETURNING id").fetchone()["id"])
    if balance:
        credits.grant(conn, tenant_id, balance, f"seed:{tenant_id}", "test")
    return tenant_id


def make_job(conn: psycopg.Connection, tenant_id: str) -> str:
    job_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO jobs (id, tenant_id, mode, status, filename, source_bucket, source_key)"
        " VALUES (%s, %s, 'ghost', 'queued', 'a.jpg', 'b', %s)",
        (job_id, tenant_id, f"uploads/{tenant_id}/{job_id}/a.jpg"),
    )
    return job_id


def assert_consistent(conn: psycopg.Connection, tenant_id: str) -> None:
    assert credits.ledger_sum(conn, tenant_id) == credits.balance(conn, tenant_id) >= 0


def test_grant_is_idempotent_by_key(conn: psycopg.Connection) -> None:
    tenant = make_tenant(conn)
    assert credits.grant(conn, tenant, 5, "pay:1", "purchase") is True
    assert credits.grant(conn, tenant, 5, "pay:1", "purchase") is False
    assert credits.balance(conn, tenant) == 5
    assert_consistent(conn, tenant)


def test_reserve_capture_once(conn: psycopg.Connection) -> None:
    tenant = make_tenant(conn, 3)
    job = make_job(conn, tenant)
    assert credits.reserve(conn, tenant, job, 2, 60).status == "held"
    assert credits.reserve(conn, tenant, job, 2, 60).status == "held"  # replay: no second debit
    assert credits.balance(conn, tenant) == 1
    assert credits.capture(conn, job).status == "captured"
    assert credits.capture(conn, job).status == "captured"
    assert (
        credits.release(conn, job, "late").status == "captured"
    )  # a captured hold is never refunded by release
    assert credits.balance(conn, tenant) == 1
    kinds = [
        r["kind"] for r in conn.execute("SELECT kind FROM ledger WHERE tenant_id = %s ORDER BY id", (tenant,))
    ]
    assert kinds == ["grant", "reserve", "capture"]
    assert_consistent(conn, tenant)


def test_release_returns_credits_once(conn: psycopg.Connection) -> None:
    tenant = make_tenant(conn, 2)
    job = make_job(conn, tenant)
    credits.reserve(conn, tenant, job, 2, 60)
    assert credits.balance(conn, tenant) == 0
    assert credits.release(conn, job, "failed").status == "released"
    assert credits.release(conn, job, "failed").status == "released"
    assert credits.capture(conn, job).status == "released"  # a late success cannot spend a released hold
    assert credits.balance(conn, tenant) == 2
    assert_consistent(conn, tenant)


def test_insufficient_credits_holds_nothing(conn: psycopg.Connection) -> None:
    tenant = make_tenant(conn, 1)
    job = make_job(conn, tenant)
    with pytest.raises(InsufficientCredits) as raised:
        credits.reserve(conn, tenant, job, 4, 60)
    assert raised.value.details == {"required": 4, "balance": 1}
    assert credits.get_hold(conn, job) is None
    assert credits.balance(conn, tenant) == 1
    assert credits.release(conn, job, "x").status == "none"
    assert_consistent(conn, tenant)


def test_ledger_is_append_only(conn: psycopg.Connection) -> None:
    tenant = make_tenant(conn, 1)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE ledger SET amount = 100 WHERE tenant_id = %s", (tenant,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM ledger WHERE tenant_id = %s", (tenant,))


def test_balance_check_constraint(conn: psycopg.Connection) -> None:
    tenant = make_tenant(conn, 1)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE tenants SET balance = -1 WHERE id = %s", (tenant,))


def test_concurrent_reservations_never_overdraw(conn: psycopg.Connection, database_url: str) -> None:
    tenant = make_tenant(conn, 5)
    job_ids = [make_job(conn, tenant) for _ in range(12)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(job_ids))

    def worker(job_id: str) -> None:
        barrier.wait()
        try:
            db.atomic(tenant, lambda own: credits.reserve(own, tenant, job_id, 1, 60))
            outcomes.append("held")
        except InsufficientCredits:
            outcomes.append("refused")
        finally:
            db.reset()

    threads = [threading.Thread(target=worker, args=(j,)) for j in job_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("held") == 5
    assert outcomes.count("refused") == 7
    assert credits.balance(conn, tenant) == 0
    assert_consistent(conn, tenant)
