"""Property tests of the credits ledger on a real PostgreSQL.

Hypothesis drives random sequences of grant / reserve / capture / release / adjust (clamped debits, positive
adjustments, unclamped debits) and replays of earlier operations with the same keys, over 1-3 tenants and several
jobs. Every operation goes through the application role (row-level security) in ``db.atomic``, as the handlers
do. A pure-Python model predicts each result; after every step the database must agree with it:

- balance >= 0 and balance == SUM(ledger) for every tenant, and equal to the model's balance;
- the ledger holds exactly the entries the model expects (a replay appends nothing);
- every hold is held, captured or released, with exactly one reserve entry and at most one capture-or-release
  entry that matches its status; a job without a hold has no ledger entries.

One database serves a whole test function (the ledger is append-only: each example creates its own tenants and
jobs instead of truncating). A second property runs random operation lists from several threads at once and
checks the same invariants on the outcome.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from functions.common import credits, db
from functions.common.errors import InsufficientCredits
from tests.functions.common.test_credits import make_job

DEBIT_KINDS = ("refund", "dispute", "expiry", "adjustment")


def new_tenant(conn: psycopg.Connection) -> str:
    return str(conn.execute("INSERT INTO tenants (name) VALUES ('prop') RETURNING id").fetchone()["id"])


def as_app(tenant_id: str, work: Callable[[db.Conn], Any]) -> Any:
    """One transaction as the application role acting for ``tenant_id`` (row-level security applies)."""
    return db.atomic(tenant_id, work)


def attempt(call: Callable[[], Any]) -> Any:
    """The call's result, or the InsufficientCredits it raised."""
    try:
        return call()
    except InsufficientCredits as exc:
        return exc


# --- model --------------------------------------------------------------------------------------------------


@dataclass
class TenantModel:
    id: str
    balance: int = 0
    entries: int = 0  # ledger rows expected for this tenant


@dataclass(eq=False)
class JobModel:
    id: str
    tenant: TenantModel
    status: str = "none"  # none | held | captured | released
    amount: int = 0


@dataclass(frozen=True)
class AdjustOp:
    """One grant/adjust call; replaying it repeats exactly the same arguments (same key)."""

    tenant: TenantModel = field(compare=False)
    kind: str
    amount: int
    key: str
    clamp: bool

    def call(self, conn: db.Conn) -> int | bool:
        if self.kind == "grant":
            return credits.grant(conn, self.tenant.id, self.amount, self.key, "prop")
        return credits.adjust(conn, self.tenant.id, self.amount, self.kind, self.key, {}, clamp=self.clamp)


def check_database(
    conn: psycopg.Connection, tenants: list[TenantModel], jobs: list[JobModel], used_keys: set[str]
) -> None:
    """Compare the database with the model for these tenants and jobs (as the owner: sees every tenant)."""
    ids = [t.id for t in tenants]
    rows = conn.execute(
        "SELECT t.id::text AS id, t.balance, COALESCE(l.s, 0) AS s, COALESCE(l.n, 0) AS n FROM tenants t"
        " LEFT JOIN (SELECT tenant_id, SUM(amount) AS s, COUNT(*) AS n FROM ledger"
        "            WHERE tenant_id = ANY(%s::uuid[]) GROUP BY tenant_id) l ON l.tenant_id = t.id"
        " WHERE t.id = ANY(%s::uuid[])",
        (ids, ids),
    ).fetchall()
    found = {r["id"]: r for r in rows}
    for tenant in tenants:
        row = found[tenant.id]
        assert row["balance"] >= 0
        assert row["balance"] == row["s"], f"balance {row['balance']} != ledger sum {row['s']}"
        assert row["balance"] == tenant.balance, f"balance {row['balance']} != model {tenant.balance}"
        assert row["n"] == tenant.entries, f"{row['n']} ledger entries, model expects {tenant.entries}"

    holds = {
        r["job_id"]: r
        for r in conn.execute(
            "SELECT job_id::text AS job_id, tenant_id::text AS tenant_id, amount, status FROM holds"
            " WHERE tenant_id = ANY(%s::uuid[])",
            (ids,),
        )
    }
    entries: dict[str, dict[str, tuple[int, int]]] = {}
    for r in conn.execute(
        "SELECT job_id::text AS job_id, kind, COUNT(*) AS n, SUM(amount) AS s FROM ledger"
        " WHERE tenant_id = ANY(%s::uuid[]) AND job_id IS NOT NULL GROUP BY job_id, kind",
        (ids,),
    ):
        entries.setdefault(r["job_id"], {})[r["kind"]] = (r["n"], r["s"])
    keys = {
        r["idempotency_key"]
        for r in conn.execute(
            "SELECT idempotency_key FROM ledger WHERE tenant_id = ANY(%s::uuid[]) AND job_id IS NULL", (ids,)
        )
    }
    assert keys == used_keys

    known = {j.id for j in jobs}
    assert set(holds) <= known, "a hold exists for a job the model does not know"
    assert set(entries) <= known, "a ledger entry names a job the model does not know"
    for job in jobs:
        hold, kinds = holds.get(job.id), entries.get(job.id, {})
        if job.status == "none":
            assert hold is None, f"job {job.id} has no hold in the model"
            assert kinds == {}, f"job {job.id} has no hold in the model but ledger entries {kinds}"
            continue
        assert hold is not None, f"job {job.id} lost its hold"
        assert (hold["tenant_id"], hold["amount"], hold["status"]) == (job.tenant.id, job.amount, job.status)
        expected = {"reserve": (1, -job.amount)}
        if job.status == "captured":
            expected["capture"] = (1, 0)
        elif job.status == "released":
            expected["release"] = (1, job.amount)
        assert kinds == expected, f"job {job.id} ({job.status}): ledger entries {kinds}"


# --- sequential state machine -------------------------------------------------------------------------------


class CreditsMachine(RuleBasedStateMachine):
    """Random operations on 1-3 fresh tenants; the model predicts every result and the database must agree."""

    jobs = Bundle("jobs")
    ops = Bundle("ops")

    def __init__(self, owner: psycopg.Connection) -> None:
        super().__init__()
        self.owner = owner
        self.tenants: list[TenantModel] = []
        self.all_jobs: list[JobModel] = []
        self.used: set[str] = set()  # keys with a ledger entry (grants and adjustments)
        self.prefix = uuid.uuid4().hex[:12]
        self.seq = 0

    def tenant(self, index: int) -> TenantModel:
        return self.tenants[index % len(self.tenants)]

    def key(self) -> str:
        self.seq += 1
        return f"prop:{self.prefix}:{self.seq}"

    @initialize(starts=st.lists(st.integers(0, 30), min_size=1, max_size=3))
    def make_tenants(self, starts: list[int]) -> None:
        self.tenants = [TenantModel(new_tenant(self.owner)) for _ in starts]
        for tenant, start in zip(self.tenants, starts, strict=True):
            if start:
                self.apply(AdjustOp(tenant, "grant", start, self.key(), False))

    # grants and adjustments ---------------------------------------------------------------------------------

    def apply(self, op: AdjustOp) -> None:
        tenant = op.tenant
        replay = op.key in self.used
        short = op.amount < 0 and not op.clamp and -op.amount > tenant.balance
        result = attempt(lambda: as_app(tenant.id, op.call))
        if isinstance(result, InsufficientCredits):
            # A new unclamped debit larger than the balance is refused and changes nothing. (Replaying an
            # already applied one can raise too: see test_adjust_replay_is_a_no_op_after_the_balance_fell
            # in test_credits.py; either way the invariants prove that nothing changed.)
            assert short, f"{op} refused with balance {tenant.balance}: {result}"
            assert result.details == {"required": -op.amount, "balance": tenant.balance}
            event("adjust: refused" + (" (replay)" if replay else ""))
            return
        if replay:
            event("adjust: replay")
            assert result is False if op.kind == "grant" else result == 0
            return
        assert not short, f"{op} overdrew a balance of {tenant.balance}"
        applied = max(op.amount, -tenant.balance)
        event("adjust: clamped" if applied != op.amount else f"adjust: {op.kind}")
        assert result is True if op.kind == "grant" else result == applied
        entry = self.owner.execute(
            "SELECT tenant_id::text AS tenant_id, kind, amount, meta FROM ledger WHERE idempotency_key = %s",
            (op.key,),
        ).fetchone()
        assert (entry["tenant_id"], entry["kind"], entry["amount"]) == (tenant.id, op.kind, applied)
        if applied != op.amount:  # clamped at the balance: the shortfall is on record
            assert entry["meta"]["unrecovered"] == applied - op.amount
            assert entry["meta"]["requested"] == op.amount
        tenant.balance += applied
        tenant.entries += 1
        self.used.add(op.key)

    @rule(target=ops, t=st.integers(0, 2), amount=st.integers(1, 20))
    def grant(self, t: int, amount: int) -> AdjustOp:
        op = AdjustOp(self.tenant(t), "grant", amount, self.key(), False)
        self.apply(op)
        return op

    @rule(target=ops, t=st.integers(0, 2), amount=st.integers(1, 10))
    def adjust_up(self, t: int, amount: int) -> AdjustOp:
        op = AdjustOp(self.tenant(t), "adjustment", amount, self.key(), False)
        self.apply(op)
        return op

    @rule(
        target=ops,
        t=st.integers(0, 2),
        amount=st.integers(1, 30),
        kind=st.sampled_from(DEBIT_KINDS),
        clamp=st.booleans(),
    )
    def debit(self, t: int, amount: int, kind: str, clamp: bool) -> AdjustOp:
        op = AdjustOp(self.tenant(t), kind, -amount, self.key(), clamp)
        self.apply(op)
        return op

    @rule(op=ops)
    def replay(self, op: AdjustOp) -> None:
        self.apply(op)

    @precondition(lambda self: len(self.tenants) > 1)
    @rule(op=ops, shift=st.integers(1, 2))
    def key_reused_by_another_tenant(self, op: AdjustOp, shift: int) -> None:
        """Idempotency keys are global: a used key applies nothing for any tenant."""
        if op.key not in self.used:
            return
        other = self.tenants[(self.tenants.index(op.tenant) + shift) % len(self.tenants)]
        if other is op.tenant:
            return
        self.apply(AdjustOp(other, "adjustment", abs(op.amount), op.key, True))

    # holds ------------------------------------------------------------------------------------------------

    @rule(target=jobs, t=st.integers(0, 2), amount=st.integers(1, 6))
    def reserve_make_job(self, t: int, amount: int) -> JobModel:
        tenant = self.tenant(t)
        job = JobModel(make_job(self.owner, tenant.id), tenant)
        self.all_jobs.append(job)
        self.reserve(job, amount)
        return job

    @rule(job=jobs, amount=st.integers(1, 6))
    def reserve(self, job: JobModel, amount: int) -> None:
        """First call reserves (or is refused); later calls are replays that return the existing hold."""
        tenant = job.tenant
        hold = attempt(
            lambda: as_app(tenant.id, lambda c: credits.reserve(c, tenant.id, job.id, amount, 600))
        )
        if isinstance(hold, InsufficientCredits):
            assert job.status == "none"
            assert tenant.balance < amount
            assert hold.details == {"required": amount, "balance": tenant.balance}
            event("reserve: refused")
            return
        event(f"reserve: {'new' if job.status == 'none' else 'replay of ' + job.status}")
        if job.status == "none":
            assert tenant.balance >= amount, "reserved more than the balance"
            job.status, job.amount = "held", amount
            tenant.balance -= amount
            tenant.entries += 1
        assert hold == credits.Hold(job.id, job.amount, job.status)  # type: ignore[arg-type]

    def settle(self, job: JobModel, outcome: str) -> None:
        if outcome == "captured":
            hold = as_app(job.tenant.id, lambda c: credits.capture(c, job.id))
        else:
            hold = as_app(job.tenant.id, lambda c: credits.release(c, job.id, "prop"))
        event(f"{outcome[:-2]}: {'settles' if job.status == 'held' else 'finds ' + job.status}")
        if job.status == "held":
            job.status = outcome
            job.tenant.entries += 1
            if outcome == "released":
                job.tenant.balance += job.amount
        assert hold == credits.Hold(job.id, job.amount, job.status)  # type: ignore[arg-type]

    @rule(job=jobs)
    def capture(self, job: JobModel) -> None:
        self.settle(job, "captured")

    @rule(job=jobs)
    def release(self, job: JobModel) -> None:
        self.settle(job, "released")

    @precondition(lambda self: any(j.status == "held" for j in self.all_jobs))
    @rule(pick=st.integers(0, 1000), capture=st.booleans())
    def settle_a_held_job(self, pick: int, capture: bool) -> None:
        held = [j for j in self.all_jobs if j.status == "held"]
        self.settle(held[pick % len(held)], "captured" if capture else "released")

    @precondition(lambda self: len(self.tenants) > 1)
    @rule(job=jobs, shift=st.integers(1, 2), capture=st.booleans())
    def settle_as_another_tenant(self, job: JobModel, shift: int, capture: bool) -> None:
        """Row-level security: another tenant's transaction cannot see, capture or release this hold."""
        other = self.tenants[(self.tenants.index(job.tenant) + shift) % len(self.tenants)]
        if other is job.tenant:
            return
        if capture:
            hold = as_app(other.id, lambda c: credits.capture(c, job.id))
        else:
            hold = as_app(other.id, lambda c: credits.release(c, job.id, "foreign"))
        assert hold == credits.Hold(job.id, 0, "none")

    @invariant()
    def database_agrees_with_model(self) -> None:
        if self.tenants:
            check_database(self.owner, self.tenants, self.all_jobs, self.used)


def test_random_operation_sequences_agree_with_the_model(conn: psycopg.Connection, database_url: str) -> None:
    run_state_machine_as_test(
        lambda: CreditsMachine(conn),
        settings=settings(max_examples=40, stateful_step_count=30, deadline=None),
    )


@pytest.mark.slow
def test_longer_operation_sequences_agree_with_the_model(conn: psycopg.Connection, database_url: str) -> None:
    run_state_machine_as_test(
        lambda: CreditsMachine(conn),
        settings=settings(max_examples=25, stateful_step_count=120, deadline=None),
    )


# --- concurrent interleavings -------------------------------------------------------------------------------

KEYS = 6  # few keys per example, so that threads replay each other's grants and debits
JOBS = 4  # jobs per tenant

grant_op = st.tuples(st.just("grant"), st.integers(0, 1), st.integers(1, 8), st.integers(0, KEYS - 1))
debit_op = st.tuples(st.just("debit"), st.integers(0, 1), st.integers(1, 12), st.integers(0, KEYS - 1))
reserve_op = st.tuples(st.just("reserve"), st.integers(0, 1), st.integers(0, JOBS - 1), st.integers(1, 4))
settle_op = st.tuples(
    st.sampled_from(["capture", "release"]), st.integers(0, 1), st.integers(0, JOBS - 1), st.just(0)
)
operation = st.one_of(grant_op, debit_op, reserve_op, settle_op)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(operation, min_size=4, max_size=30),
    threads=st.integers(2, 4),
    seed=st.lists(st.integers(0, 10), min_size=2, max_size=2),
)
def test_concurrent_operations_keep_the_invariants(
    conn: psycopg.Connection,
    database_url: str,
    plan: list[tuple[str, int, int, int]],
    threads: int,
    seed: list[int],
) -> None:
    """The same operations from several threads at once: whatever the interleaving, nothing is lost or doubled."""
    tenants = [TenantModel(new_tenant(conn)) for _ in range(2)]
    prefix = uuid.uuid4().hex[:12]
    for tenant, start in zip(tenants, seed, strict=True):
        if start:
            credits.grant(conn, tenant.id, start, f"seed:{prefix}:{tenant.id}", "seed")
    jobs = [[JobModel(make_job(conn, t.id), t) for _ in range(JOBS)] for t in tenants]
    results: list[tuple[tuple[str, int, int, int], Any]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def run(op: tuple[str, int, int, int]) -> Any:
        name, t, a, b = op
        tenant = tenants[t]
        if name == "grant":
            return as_app(tenant.id, lambda c: credits.grant(c, tenant.id, a, f"{prefix}:{b}", "prop"))
        if name == "debit":
            return as_app(
                tenant.id, lambda c: credits.adjust(c, tenant.id, -a, "refund", f"{prefix}:{b}", clamp=True)
            )
        job = jobs[t][a]
        if name == "reserve":
            try:
                return as_app(tenant.id, lambda c: credits.reserve(c, tenant.id, job.id, b, 600))
            except InsufficientCredits:
                return "refused"
        if name == "capture":
            return as_app(tenant.id, lambda c: credits.capture(c, job.id))
        return as_app(tenant.id, lambda c: credits.release(c, job.id, "prop"))

    def worker(chunk: list[tuple[str, int, int, int]]) -> None:
        try:
            barrier.wait()
            for op in chunk:
                results.append((op, run(op)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.reset()

    pool = [threading.Thread(target=worker, args=(plan[i::threads],)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors

    # What the database says, checked against itself and against what every call returned.
    for tenant, tenant_jobs in zip(tenants, jobs, strict=True):
        balance = credits.balance(conn, tenant.id)
        assert balance >= 0
        assert balance == credits.ledger_sum(conn, tenant.id)
        holds = {h.job_id: h for j in tenant_jobs if (h := credits.get_hold(conn, j.id)) is not None}
        for job in tenant_jobs:
            hold = holds.get(job.id)
            kinds = Counter(
                r["kind"] for r in conn.execute("SELECT kind FROM ledger WHERE job_id = %s", (job.id,))
            )
            if hold is None:
                assert kinds == Counter()
                continue
            assert kinds["reserve"] == 1
            assert kinds["capture"] + kinds["release"] == (0 if hold.status == "held" else 1)
            assert kinds["capture"] == (hold.status == "captured")
            job.status, job.amount = hold.status, hold.amount
        non_hold = conn.execute(
            "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger WHERE tenant_id = %s AND job_id IS NULL",
            (tenant.id,),
        ).fetchone()["s"]
        spent_or_held = sum(h.amount for h in holds.values() if h.status in {"held", "captured"})
        assert balance == non_hold - spent_or_held

    for (name, t, a, _), result in results:
        if name in {"capture", "release"}:
            job = jobs[t][a]
            # a settle call returns the final status of the hold, or "none" if no hold existed at that moment
            assert result.status in {job.status, "none"}
            if result.status != "none":
                assert result.amount == job.amount
            if name == "capture" and result.status == "captured":
                assert job.status == "captured"
        elif name == "reserve" and result != "refused":
            job = jobs[t][a]
            assert (result.job_id, result.amount) == (job.id, job.amount)
    per_key = Counter(
        r["idempotency_key"]
        for r in conn.execute(
            "SELECT idempotency_key FROM ledger WHERE tenant_id = ANY(%s::uuid[])", ([t.id for t in tenants],)
        )
    )
    assert max(per_key.values(), default=1) == 1
