"""The money and job invariants, read as the database owner (outside row-level security), after a test's work:

- every job is final (no stuck job; ``awaiting_upload`` only where the test never uploaded);
- per job: at most one reserve, one capture and one release entry, never both a capture and a release;
  a succeeded job's hold is captured, any other final job's hold is released (or it never reserved);
- per tenant: balance = SUM(ledger.amount) and balance >= 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from functions.common import db
from functions.common.models import FINAL_STATUSES


@dataclass
class Books:
    tenants: int = 0
    jobs: Counter[str] = field(default_factory=Counter)  # status → count
    captured: int = 0  # credits captured (spent)
    released: int = 0  # holds released
    problems: list[str] = field(default_factory=list)


def admin() -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(db.dsn(admin=True), autocommit=True, row_factory=dict_row)


def audit(tenant_ids: list[str], *, allow_awaiting_upload: bool = False) -> Books:
    books = Books(tenants=len(tenant_ids))
    with admin() as conn:
        for tenant in tenant_ids:
            balance = conn.execute("SELECT balance FROM tenants WHERE id = %s", (tenant,)).fetchone()
            total = conn.execute(
                "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger WHERE tenant_id = %s", (tenant,)
            ).fetchone()
            if balance is None:
                books.problems.append(f"tenant {tenant}: no such tenant")
                continue
            if balance["balance"] != total["s"]:
                books.problems.append(
                    f"tenant {tenant}: balance {balance['balance']} != ledger sum {total['s']}"
                )
            if balance["balance"] < 0:
                books.problems.append(f"tenant {tenant}: negative balance {balance['balance']}")
            rows = conn.execute(
                """SELECT j.id, j.status, j.cost, h.status AS hold, h.amount,
                          ARRAY(SELECT kind FROM ledger l WHERE l.job_id = j.id ORDER BY l.id) AS kinds
                     FROM jobs j LEFT JOIN holds h ON h.job_id = j.id
                    WHERE j.tenant_id = %s""",
                (tenant,),
            ).fetchall()
            for row in rows:
                _check_job(books, row, allow_awaiting_upload)
    return books


def _check_job(books: Books, row: dict[str, Any], allow_awaiting_upload: bool) -> None:
    job, status, kinds = row["id"], row["status"], Counter(row["kinds"])
    books.jobs[status] += 1
    if status not in FINAL_STATUSES and not (allow_awaiting_upload and status == "awaiting_upload"):
        books.problems.append(f"job {job}: stuck in {status}")
    for kind in ("reserve", "capture", "release"):
        if kinds[kind] > 1:
            books.problems.append(f"job {job}: {kinds[kind]} {kind} entries")
    if kinds["capture"] and kinds["release"]:
        books.problems.append(f"job {job}: both captured and released")
    hold = row["hold"]
    if status == "succeeded":
        if hold != "captured" or kinds["capture"] != 1:
            books.problems.append(f"job {job}: succeeded but hold {hold}, ledger {dict(kinds)}")
        else:
            books.captured += row["amount"]
    elif status in FINAL_STATUSES:
        if kinds["capture"]:
            books.problems.append(f"job {job}: {status} but charged")
        if hold is not None and hold != "released":
            books.problems.append(f"job {job}: {status} with its hold {hold}")
        if hold == "released":
            books.released += 1


def assert_balanced(tenant_ids: list[str], **kwargs: Any) -> Books:
    books = audit(tenant_ids, **kwargs)
    assert not books.problems, "\n".join(books.problems)
    return books
