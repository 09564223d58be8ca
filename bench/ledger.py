"""Credits ledger throughput, and what a naive read-then-write balance loses, measured in the same run.

    .venv/bin/python -m bench.ledger --seconds 5

Starts its own PostgreSQL (pgserver) in a temporary directory and applies the migrations, unless both
``DATABASE_ADMIN_URL`` (owner, for migrations and inspection) and ``DATABASE_URL`` (the application role) are set;
then it runs there, on new tenants of its own (it leaves their rows behind: the ledger is append-only, and the
naive tenants' balances deliberately disagree with their ledgers).

One operation is one job's reservation and capture of ``--cost`` credits:

- **ledger**: ``credits.reserve`` then ``credits.capture``, each in its own ``db.atomic(tenant, ...)`` transaction
  as the application role (row-level security on), exactly as the pipeline's ReserveCredits and CaptureCredits
  steps do;
- **naive**: ``SELECT balance`` then ``UPDATE tenants SET balance = <computed>`` in two autocommit statements,
  no lock (the textbook lost update), on an identical tenant, same role, same table.

Workloads, each once with one connection and once with ``--threads`` threads (each its own connection, all on the
SAME tenant):

- **throughput**: a balance far larger than can be spent, for ``--seconds``; ops/s and LOST updates (debits that
  were acknowledged but are missing from the final balance: ``final - (start - acknowledged * cost)``);
- **scarcity** (threads only): a balance of ``--scarce`` credits that everyone spends until refused; OVERDRAFTS are
  debits acknowledged beyond the credits that existed (``acknowledged * cost - start``, when positive).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from functions.common import credits, db
from functions.common.errors import InsufficientCredits

APP_PASSWORD = "bench-app-password"  # noqa: S105 - a throwaway local database
ENDLESS = 10**12  # a balance the throughput runs cannot spend


@dataclass
class Result:
    impl: str  # "ledger" | "naive"
    workload: str  # "throughput" | "scarcity"
    threads: int
    cost: int
    start_balance: int
    ops: int  # debits acknowledged to the caller (reserve + capture done / balance written)
    refused: int  # attempts refused for lack of credits
    seconds: float
    final_balance: int
    ledger_sum: int | None  # None for the naive implementation (it writes no ledger)
    settled: int | None  # captured holds (ledger only)
    pool_exhausted: bool = False

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        """Credits whose debit was acknowledged but does not show in the final balance."""
        return self.final_balance - (self.start_balance - self.ops * self.cost)

    @property
    def overdrafts(self) -> int:
        """Credits handed out that the account never had."""
        return max(0, self.ops * self.cost - self.start_balance)

    @property
    def consistent(self) -> bool | None:
        return None if self.ledger_sum is None else self.ledger_sum == self.final_balance


# --- setup ----------------------------------------------------------------------------------------------------


@contextmanager
def database() -> Iterator[tuple[str, str, str]]:
    """(admin_url, app_url, description): the environment's database, or a fresh pgserver one."""
    admin_env, app_env = os.environ.get("DATABASE_ADMIN_URL"), os.environ.get("DATABASE_URL")
    if admin_env and app_env:
        with psycopg.connect(admin_env, autocommit=True) as conn:
            db.apply_migrations(conn)
        yield admin_env, app_env, "DATABASE_ADMIN_URL / DATABASE_URL"
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="mmbench-") as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="delete")
        try:
            name = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            params = conninfo_to_dict(server.get_uri())
            params["dbname"] = name
            admin_url = make_conninfo("", **params)
            with psycopg.connect(admin_url, autocommit=True) as conn:
                db.apply_migrations(conn)
                db.set_app_role_password(conn, APP_PASSWORD)
            params.update(user=db.APP_ROLE, password=APP_PASSWORD)
            yield admin_url, make_conninfo("", **params), "pgserver (local, temporary)"
        finally:
            db.reset()
            server.cleanup()


def new_tenant(admin: psycopg.Connection[Any], start: int, *, ledger: bool) -> str:
    tenant = str(
        admin.execute("INSERT INTO tenants (name) VALUES ('bench') RETURNING id").fetchone()["id"]  # type: ignore[index]
    )
    if ledger:
        credits.grant(admin, tenant, start, f"bench:{tenant}", "bench")
    else:
        admin.execute("UPDATE tenants SET balance = %s WHERE id = %s", (start, tenant))
    return tenant


def new_jobs(admin: psycopg.Connection[Any], tenant: str, count: int) -> list[str]:
    rows = admin.execute(
        "INSERT INTO jobs (id, tenant_id, mode, status, filename, source_bucket, source_key)"
        " SELECT gen_random_uuid(), %s, 'ghost', 'queued', 'bench.jpg', 'bench', 'bench/' || %s || '/' || g"
        " FROM generate_series(1, %s) AS g RETURNING id::text AS id",
        (tenant, tenant, count),
    ).fetchall()
    return [r["id"] for r in rows]


# --- the two implementations ----------------------------------------------------------------------------------

# A worker factory returns (prepare, step, close): prepare() opens the thread's connection before the clock
# starts; step() performs one operation: True (acknowledged), False (refused), None (no more work).
Worker = tuple[Callable[[], None], Callable[[], bool | None], Callable[[], None]]


def ledger_worker(tenant: str, cost: int, take_job: Callable[[], str | None]) -> Worker:
    def prepare() -> None:
        db.connection()

    def step() -> bool | None:
        job = take_job()
        if job is None:
            return None
        try:
            db.atomic(tenant, lambda conn: credits.reserve(conn, tenant, job, cost, 600))
        except InsufficientCredits:
            return False
        hold = db.atomic(tenant, lambda conn: credits.capture(conn, job))
        assert hold.status == "captured"
        return True

    return prepare, step, db.reset


def naive_worker(app_url: str, tenant: str, cost: int) -> Worker:
    state: dict[str, psycopg.Connection[Any]] = {}

    def prepare() -> None:
        conn = psycopg.connect(app_url, autocommit=True)
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (tenant,))  # RLS, as the ledger runs
        state["conn"] = conn

    def step() -> bool:
        conn = state["conn"]
        row = conn.execute("SELECT balance FROM tenants WHERE id = %s", (tenant,)).fetchone()
        assert row is not None
        have = int(row[0])
        if have < cost:
            return False
        conn.execute("UPDATE tenants SET balance = %s WHERE id = %s", (have - cost, tenant))
        return True

    def close() -> None:
        state["conn"].close()

    return prepare, step, close


def drive(workers: list[Worker], seconds: float, *, until_refused: bool) -> tuple[int, int, float, bool]:
    """Run the workers in parallel threads: (acknowledged, refused, elapsed seconds, ran out of work)."""
    barrier = threading.Barrier(len(workers))
    counts: list[tuple[int, int, float, float, bool]] = []
    errors: list[BaseException] = []

    def run(worker: Worker) -> None:
        prepare, step, close = worker
        ok = refused = 0
        exhausted = False
        try:
            prepare()
            barrier.wait()
            start = time.perf_counter()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                outcome = step()
                if outcome is None:
                    exhausted = True
                    break
                if outcome:
                    ok += 1
                else:
                    refused += 1
                    if until_refused:
                        break
            counts.append((ok, refused, start, time.perf_counter(), exhausted))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            close()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    elapsed = max(c[3] for c in counts) - min(c[2] for c in counts)
    return sum(c[0] for c in counts), sum(c[1] for c in counts), elapsed, any(c[4] for c in counts)


# --- runs -----------------------------------------------------------------------------------------------------


def run_ledger(
    admin: psycopg.Connection[Any],
    threads: int,
    seconds: float,
    *,
    start: int,
    cost: int,
    jobs: int,
    workload: str,
) -> Result:
    tenant = new_tenant(admin, start, ledger=True)
    pool = new_jobs(admin, tenant, jobs)
    counter, lock = itertools.count(), threading.Lock()

    def take_job() -> str | None:
        with lock:
            i = next(counter)
        return pool[i] if i < len(pool) else None

    workers = [ledger_worker(tenant, cost, take_job) for _ in range(threads)]
    ok, refused, elapsed, exhausted = drive(workers, seconds, until_refused=workload == "scarcity")
    captured = admin.execute(
        "SELECT COUNT(*) AS n FROM holds WHERE tenant_id = %s AND status = 'captured'", (tenant,)
    ).fetchone()
    return Result(
        impl="ledger",
        workload=workload,
        threads=threads,
        cost=cost,
        start_balance=start,
        ops=ok,
        refused=refused,
        seconds=elapsed,
        final_balance=credits.balance(admin, tenant),
        ledger_sum=credits.ledger_sum(admin, tenant),
        settled=int(captured["n"]) if captured else 0,
        pool_exhausted=exhausted,
    )


def run_naive(
    admin: psycopg.Connection[Any],
    app_url: str,
    threads: int,
    seconds: float,
    *,
    start: int,
    cost: int,
    workload: str,
) -> Result:
    tenant = new_tenant(admin, start, ledger=False)
    workers = [naive_worker(app_url, tenant, cost) for _ in range(threads)]
    ok, refused, elapsed, _ = drive(workers, seconds, until_refused=workload == "scarcity")
    final = admin.execute("SELECT balance FROM tenants WHERE id = %s", (tenant,)).fetchone()
    return Result(
        impl="naive",
        workload=workload,
        threads=threads,
        cost=cost,
        start_balance=start,
        ops=ok,
        refused=refused,
        seconds=elapsed,
        final_balance=int(final["balance"]) if final else 0,
        ledger_sum=None,
        settled=None,
    )


def run_bench(
    admin_url: str,
    app_url: str,
    *,
    seconds: float = 5.0,
    threads: int = 8,
    scarce: int = 200,
    cost: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Every run of the benchmark against this database; the application role connects with ``app_url``."""
    say = progress or (lambda _msg: None)
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = app_url  # db.connection() reads it (each thread caches its own connection)
    db.reset()
    results: list[Result] = []
    try:
        with psycopg.connect(admin_url, autocommit=True, row_factory=dict_row) as admin:
            # calibrate the job pool (jobs rows exist before a hold can name them; made outside the clock)
            probe = run_ledger(
                admin, 1, min(0.5, seconds), start=ENDLESS, cost=cost, jobs=5_000, workload="calibration"
            )
            per_thread = max(probe.ops_per_s, 50.0)
            parallel = min(threads, os.cpu_count() or 1)
            for n in (1, threads):
                jobs = int(per_thread * seconds * (1 if n == 1 else parallel) * 2) + 500
                say(f"ledger     throughput, {n} connection(s), {seconds:g} s")
                results.append(
                    run_ledger(admin, n, seconds, start=ENDLESS, cost=cost, jobs=jobs, workload="throughput")
                )
                say(f"naive      throughput, {n} connection(s), {seconds:g} s")
                results.append(
                    run_naive(admin, app_url, n, seconds, start=ENDLESS, cost=cost, workload="throughput")
                )
            say(f"ledger     scarcity, {threads} connections, {scarce} credits")
            results.append(
                run_ledger(
                    admin,
                    threads,
                    max(seconds, 30.0),
                    start=scarce,
                    cost=cost,
                    jobs=scarce // cost + threads + 1,
                    workload="scarcity",
                )
            )
            say(f"naive      scarcity, {threads} connections, {scarce} credits")
            results.append(
                run_naive(
                    admin, app_url, threads, max(seconds, 30.0), start=scarce, cost=cost, workload="scarcity"
                )
            )
    finally:
        db.reset()
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved
    return results


# --- report ---------------------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = (
        f"{'workload':<11}{'impl':<8}{'conns':>6}{'ops':>9}{'secs':>7}{'ops/s':>9}{'lost':>7}{'overdraft':>10}"
        f"{'refused':>9}{'final':>15}  balance==ledger"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        consistent = "n/a (no ledger)" if r.consistent is None else ("yes" if r.consistent else "NO")
        if r.pool_exhausted:
            consistent += "  (job pool exhausted early)"
        lines.append(
            f"{r.workload:<11}{r.impl:<8}{r.threads:>6}{r.ops:>9}{r.seconds:>7.2f}{r.ops_per_s:>9.0f}{r.lost:>7}"
            f"{r.overdrafts:>10}{r.refused:>9}{r.final_balance:>15}  {consistent}"
        )
    return "\n".join(lines)


def ratios(results: list[Result]) -> list[str]:
    out = []
    by = {(r.impl, r.workload, r.threads): r for r in results}
    for n in sorted({r.threads for r in results if r.workload == "throughput"}):
        ledger, naive = by.get(("ledger", "throughput", n)), by.get(("naive", "throughput", n))
        if ledger and naive and naive.ops_per_s:
            out.append(
                f"ledger ops/s / naive ops/s, {n} connection(s): {ledger.ops_per_s / naive.ops_per_s:.2f}"
                f"  (naive lost {naive.lost} of {naive.ops} debits; ledger lost {ledger.lost})"
            )
    return out


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run (4 runs); default 5")
    parser.add_argument(
        "--threads", type=int, default=8, help="concurrent connections on one tenant; default 8"
    )
    parser.add_argument("--scarce", type=int, default=200, help="starting balance of the scarcity runs")
    parser.add_argument("--cost", type=int, default=1, help="credits per job; default 1")
    args = parser.parse_args(argv)
    with database() as (admin_url, app_url, where):
        with psycopg.connect(admin_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            sync = conn.execute("SHOW synchronous_commit").fetchone()
            fsync = conn.execute("SHOW fsync").fetchone()
        print(f"database: PostgreSQL {version[0] if version else '?'} via {where}", flush=True)
        print(f"          synchronous_commit={sync[0] if sync else '?'} fsync={fsync[0] if fsync else '?'}")
        print(f"machine:  {machine()}", flush=True)
        results = run_bench(
            admin_url,
            app_url,
            seconds=args.seconds,
            threads=args.threads,
            scarce=args.scarce,
            cost=args.cost,
            progress=lambda m: print(f"  running {m}", file=sys.stderr, flush=True),
        )
    print()
    print(table(results))
    print()
    for line in ratios(results):
        print(line)
    ledger_ok = all(r.lost == 0 and r.overdrafts == 0 and r.consistent for r in results if r.impl == "ledger")
    print(
        f"ledger invariants (0 lost, 0 overdraft, balance == ledger sum): {'held' if ledger_ok else 'BROKEN'}"
    )
    return 0 if ledger_ok else 1


if __name__ == "__main__":
    sys.exit(main())
