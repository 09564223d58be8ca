"""Credits: grants, holds (reserve → capture | release) and the append-only ledger.

Every operation is idempotent by key and runs in one transaction that updates the cached balance and appends
the ledger row together, so ``balance == SUM(ledger.amount)`` always holds and a CHECK keeps it ≥ 0.
Reservations serialise on the tenant row (``UPDATE ... WHERE balance >= amount``): concurrent reservations can
never overdraw. A hold is settled at most once: ``held → captured`` or ``held → released``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import DictRow

from functions.common.errors import InsufficientCredits, NotFound
from functions.common.pagination import decode_cursor, page

Conn = psycopg.Connection[DictRow]
HoldStatus = Literal["held", "captured", "released", "none"]


@dataclass(frozen=True)
class Hold:
    job_id: str
    amount: int
    status: HoldStatus


def balance(conn: Conn, tenant_id: str) -> int:
    row = conn.execute("SELECT balance FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    if row is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return int(row["balance"])


def _append(
    conn: Conn, tenant_id: str, kind: str, amount: int, key: str, job_id: str | None, meta: dict[str, Any]
) -> bool:
    row = conn.execute(
        "INSERT INTO ledger (tenant_id, kind, amount, job_id, idempotency_key, meta)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        (tenant_id, kind, amount, job_id, key, json.dumps(meta)),
    ).fetchone()
    return row is not None


def grant(conn: Conn, tenant_id: str, amount: int, key: str, reason: str, **meta: Any) -> bool:
    """Add credits once per ``key``. Returns False when that key was already granted."""
    if amount <= 0:
        raise ValueError("a grant must be positive")
    return adjust(conn, tenant_id, amount, "grant", key, {"reason": reason, **meta}) != 0


def adjust(
    conn: Conn,
    tenant_id: str,
    amount: int,
    kind: str,
    key: str,
    meta: dict[str, Any] | None = None,
    *,
    clamp: bool = False,
) -> int:
    """Append one signed ledger entry (grant, refund, dispute, expiry, adjustment) once per ``key``.

    Returns the amount applied (0 when ``key`` was already used). A debit never overdraws: with ``clamp`` it is
    limited to the balance and the shortfall is recorded in the entry's ``meta["unrecovered"]``; without it, a
    debit larger than the balance raises InsufficientCredits and changes nothing.
    """
    if amount == 0:
        raise ValueError("an adjustment must not be zero")
    if kind in {"reserve", "capture", "release"}:
        raise ValueError(f"{kind} entries belong to holds; use reserve/capture/release")
    meta = dict(meta or {})
    with conn.transaction():
        row = conn.execute("SELECT balance FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,)).fetchone()
        if row is None:
            raise NotFound(f"tenant {tenant_id} not found")
        if conn.execute("SELECT 1 FROM ledger WHERE idempotency_key = %s", (key,)).fetchone() is not None:
            return 0  # a replay: applied before, whatever the balance is now
        have = int(row["balance"])
        applied = amount
        if amount < 0 and -amount > have:
            if not clamp:
                raise InsufficientCredits(
                    f"cannot remove {-amount} credit(s); the account has {have}",
                    details={"required": -amount, "balance": have},
                )
            applied = -have
            meta["unrecovered"] = -amount - have
            meta["requested"] = amount
        if not _append(conn, tenant_id, kind, applied, key, None, meta):
            return 0
        if applied:
            conn.execute("UPDATE tenants SET balance = balance + %s WHERE id = %s", (applied, tenant_id))
        return applied


def get_hold(conn: Conn, job_id: str, *, lock: bool = False) -> Hold | None:
    row = conn.execute(
        "SELECT job_id, amount, status FROM holds WHERE job_id = %s" + (" FOR UPDATE" if lock else ""),
        (job_id,),
    ).fetchone()
    if row is None:
        return None
    return Hold(str(row["job_id"]), int(row["amount"]), row["status"])


def reserve(conn: Conn, tenant_id: str, job_id: str, amount: int, ttl_seconds: int) -> Hold:
    """Hold ``amount`` credits for a job, once. Raises InsufficientCredits (and holds nothing) if short."""
    if amount <= 0:
        raise ValueError("a reservation must be positive")
    with conn.transaction():
        created = conn.execute(
            "INSERT INTO holds (job_id, tenant_id, amount, status, expires_at)"
            " SELECT id, tenant_id, %s, 'held', now() + make_interval(secs => %s) FROM jobs"
            " WHERE id = %s AND tenant_id = %s"
            " ON CONFLICT (job_id) DO NOTHING RETURNING job_id",
            (amount, ttl_seconds, job_id, tenant_id),
        ).fetchone()
        if created is None:
            existing = get_hold(conn, job_id)
            if existing is None:  # no such job for this tenant (or another tenant's hold: invisible)
                raise NotFound(f"job {job_id} not found")
            return existing
        debited = conn.execute(
            "UPDATE tenants SET balance = balance - %s WHERE id = %s AND balance >= %s RETURNING balance",
            (amount, tenant_id, amount),
        ).fetchone()
        if debited is None:
            have = balance(conn, tenant_id)
            raise InsufficientCredits(
                f"this image costs {amount} credit(s); the account has {have}",
                details={"required": amount, "balance": have},
            )
        _append(conn, tenant_id, "reserve", -amount, f"reserve:{job_id}", job_id, {})
        return Hold(job_id, amount, "held")


def _settle(conn: Conn, job_id: str, outcome: Literal["captured", "released"], meta: dict[str, Any]) -> Hold:
    """Settle a held reservation once: ``held → captured`` (spent) or ``held → released`` (returned)."""
    with conn.transaction():
        hold = get_hold(conn, job_id, lock=True)
        if hold is None or hold.status != "held":
            return hold or Hold(job_id, 0, "none")
        row = conn.execute(
            "UPDATE holds SET status = %s, settled_at = now() WHERE job_id = %s RETURNING tenant_id",
            (outcome, job_id),
        ).fetchone()
        assert row is not None
        tenant_id = str(row["tenant_id"])
        if outcome == "released":
            conn.execute("UPDATE tenants SET balance = balance + %s WHERE id = %s", (hold.amount, tenant_id))
            _append(conn, tenant_id, "release", hold.amount, f"release:{job_id}", job_id, meta)
        else:
            _append(
                conn, tenant_id, "capture", 0, f"capture:{job_id}", job_id, {**meta, "spent": hold.amount}
            )
        return Hold(job_id, hold.amount, outcome)


def capture(conn: Conn, job_id: str) -> Hold:
    """Spend a held reservation. Idempotent; a released hold stays released (returned as is)."""
    return _settle(conn, job_id, "captured", {})


def release(conn: Conn, job_id: str, reason: str) -> Hold:
    """Return a held reservation to the balance. Idempotent; a captured hold stays captured."""
    return _settle(conn, job_id, "released", {"reason": reason})


def ledger_sum(conn: Conn, tenant_id: str) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger WHERE tenant_id = %s", (tenant_id,)
    ).fetchone()
    assert row is not None
    return int(row["s"])


def held(conn: Conn, tenant_id: str) -> int:
    """Credits reserved by jobs still in progress (already taken out of the balance)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) AS s FROM holds WHERE tenant_id = %s AND status = 'held'",
        (tenant_id,),
    ).fetchone()
    assert row is not None
    return int(row["s"])


def ledger_page(
    conn: Conn, tenant_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The tenant's ledger, newest first, keyset-paginated on the entry id (an opaque cursor).

    Each row comes with what the customer knows it by (``credit_history``): its job's file name and batch
    (``job_filename``, ``batch_id``, ``batch_name``) and its purchase's pack and receipt (``pack_name``,
    ``pack_credits``, ``receipt_url``); the joins stay within the tenant (and row-level security holds)."""

    def parse(values: list[Any]) -> tuple[int]:
        (last_id,) = values
        if not isinstance(last_id, int) or isinstance(last_id, bool):
            raise TypeError("cursor id must be an integer")
        return (last_id,)

    params: list[Any] = [tenant_id]
    where = "l.tenant_id = %s"
    if cursor:
        params += decode_cursor(cursor, parse)
        where += " AND l.id < %s"
    rows = conn.execute(
        "SELECT l.id, l.kind, l.amount, l.job_id, l.meta, l.created_at,"
        " j.filename AS job_filename, j.batch_id, j.status AS job_status, b.name AS batch_name,"
        " p.receipt_url, cp.name AS pack_name, COALESCE(p.credits, cp.credits) AS pack_credits"
        " FROM ledger l"
        " LEFT JOIN jobs j ON j.id = l.job_id AND j.tenant_id = l.tenant_id"
        " LEFT JOIN batches b ON b.id = j.batch_id AND b.tenant_id = l.tenant_id"
        " LEFT JOIN purchases p ON p.id::text = l.meta ->> 'purchase_id' AND p.tenant_id = l.tenant_id"
        " LEFT JOIN credit_packs cp ON cp.id = COALESCE(p.pack_id, l.meta ->> 'pack_id')"
        f" WHERE {where} ORDER BY l.id DESC LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    return page(rows, limit, lambda last: (last["id"],))
