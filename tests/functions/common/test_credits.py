"""Credits on a real PostgreSQL: holds settle once, balances never go negative, ledger sum = balance."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import psycopg
import pytest

from functions.common import credits, db
from functions.common.errors import InsufficientCredits, NotFound


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


def run_at_once(workers: list[Callable[[], str]]) -> list[str]:
    """Run each worker in its own thread (its own cached connection), all released together by a barrier."""
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(work: Callable[[], str]) -> None:
        try:
            barrier.wait()
            outcomes.append(work())
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.reset()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return outcomes


@pytest.mark.parametrize(("n", "balance"), [(12, 5), (8, 8), (16, 0), (10, 30)])
def test_concurrent_reservations_never_overdraw(
    conn: psycopg.Connection, database_url: str, n: int, balance: int
) -> None:
    """N parallel reservations of 1 credit on a balance of B: exactly min(N, B) succeed, never negative."""
    tenant = make_tenant(conn, balance)
    job_ids = [make_job(conn, tenant) for _ in range(n)]

    def reserve(job_id: str) -> str:
        try:
            return db.atomic(tenant, lambda own: credits.reserve(own, tenant, job_id, 1, 60)).status
        except InsufficientCredits:
            return "refused"

    outcomes = run_at_once([lambda j=j: reserve(j) for j in job_ids])
    assert outcomes.count("held") == min(n, balance)
    assert outcomes.count("refused") == n - min(n, balance)
    assert credits.balance(conn, tenant) == balance - min(n, balance)
    held = conn.execute(
        "SELECT COUNT(*) AS n FROM holds WHERE tenant_id = %s AND status = 'held'", (tenant,)
    ).fetchone()
    assert held["n"] == min(n, balance)
    assert_consistent(conn, tenant)


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_capture_and_release_settle_once(
    conn: psycopg.Connection, database_url: str, round_: int
) -> None:
    """Many threads capture and release the same hold at once: exactly one settles it, everyone sees that."""
    tenant = make_tenant(conn, 10)
    job = make_job(conn, tenant)
    credits.reserve(conn, tenant, job, 3, 60)

    def capture() -> str:
        return db.atomic(tenant, lambda own: credits.capture(own, job)).status

    def release() -> str:
        return db.atomic(tenant, lambda own: credits.release(own, job, "race")).status

    workers = [capture, release] * 6
    if round_ % 2:
        workers.reverse()
    outcomes = run_at_once(workers)
    final = credits.get_hold(conn, job)
    assert final is not None
    assert final.status in {"captured", "released"}
    assert set(outcomes) == {final.status}  # losers return the winner's outcome, never a second settlement
    entries = [
        r["kind"] for r in conn.execute("SELECT kind FROM ledger WHERE job_id = %s ORDER BY id", (job,))
    ]
    assert entries == ["reserve", "capture" if final.status == "captured" else "release"]
    assert credits.balance(conn, tenant) == (7 if final.status == "captured" else 10)
    assert_consistent(conn, tenant)


# --- regressions: defects found by the property tests, now fixed ---------------------------------------


def test_atomic_retries_a_serialization_failure(conn: psycopg.Connection, database_url: str) -> None:
    tenant = make_tenant(conn, 3)
    job = make_job(conn, tenant)
    attempts: list[int] = []

    def work(own: psycopg.Connection) -> credits.Hold:
        attempts.append(1)
        if len(attempts) == 1:  # a real server-side error with SQLSTATE 40001, as a conflicting writer causes
            own.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
        return credits.reserve(own, tenant, job, 1, 60)

    assert db.atomic(tenant, work).status == "held"
    assert len(attempts) == 2
    assert_consistent(conn, tenant)


def test_adjust_replay_is_a_no_op_after_the_balance_fell(conn: psycopg.Connection) -> None:
    tenant = make_tenant(conn, 5)
    assert credits.adjust(conn, tenant, -3, "dispute", "dispute:dp_1") == -3
    assert credits.adjust(conn, tenant, -2, "refund", "refund:re_1") == -2
    assert credits.adjust(conn, tenant, -3, "dispute", "dispute:dp_1") == 0  # redelivery: a no-op
    assert credits.balance(conn, tenant) == 0
    assert_consistent(conn, tenant)


def test_reserve_refuses_another_tenants_job(conn: psycopg.Connection, database_url: str) -> None:
    tenant_a, tenant_b = make_tenant(conn, 3), make_tenant(conn, 3)
    job = make_job(conn, tenant_a)
    with pytest.raises(NotFound):
        db.atomic(tenant_b, lambda own: credits.reserve(own, tenant_b, job, 1, 60))
    assert credits.get_hold(conn, job) is None
    assert credits.balance(conn, tenant_b) == 3
