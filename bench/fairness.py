"""Fairness of the GPU path: one customer's single photo beside another customer's bulk drop, through the local
stack, FIFO (every job handed to the endpoint at once, its queue decides) beside the fair scheduler, in one run.

    python -m bench.fairness                        # N = 200, 1.0 s per invocation, fifo then fair
    python -m bench.fairness --n 20 --delay 0.6 --modes fifo

For each mode a fresh local stack with ONE endpoint worker (one instance, one invocation at a time), the ghost
work routed to the GPU path (``ghost_on_lambda=False``: ``GHOST_ON_LAMBDA=false``), ``SCHEDULER_MODE`` set to the
mode (the in-flight cap as the stack derives it: one instance x one worker + the dispatch buffer) and every
endpoint invocation paced to exactly ``--delay`` seconds (``LocalSettings.endpoint_invocation_seconds``: the
container answers with a stand-in engine that does no work, ``local/standin_engine.py``, and the worker waits out
the rest of the pace, so the measurement sees queueing, not the studio engine's variable CPU time; an invocation
that took longer than the pace, the machine being busy, is counted and printed). The pace must be longer than the
local stack's own work per job (about 0.3 s on 2 cores: S3 events, the state machine on moto, validation, the
notifier, all in one Python process), or the endpoint is not the bottleneck and there is no GPU queue to be
fair about. Three measurements, one after the other on the same stack, the stack idle between them:

* **B idle**: tenant B submits one interactive job (``POST /v1/jobs`` + its pre-signed upload), alone: the
  median of ``--idle-runs`` jobs (after one unmeasured warm-up job);
* **A alone**: tenant A drops N small photos as a bulk batch (``POST /v1/batches`` with ``priority: low``, a
  manifest naming every file, the files by pre-signed POST into the drop folder, 8 at a time), timed from the
  first upload to the batch's ``finished_at``;
* **mixed**: A drops N photos again, and just after its last upload B submits one job, then one more every
  ``--mixed-gap`` seconds while A's drop runs, ``--mixed-runs`` in all (each a single interactive photo, as an
  idle B's were): B's latency (from each ``POST /v1/jobs`` to the time that job reached its final status; the
  median, as for B idle, with the first, the issue's moment, and the worst beside it), A's total, and where B's
  first job finished among A's N and itself (the jobs' final-status times). With one endpoint worker a B job
  waits for whatever A job is running (up to one pace): one sample is one draw of that remainder.

Printed per mode: B mixed ÷ B idle, A mixed ÷ A alone, B's place; the issue's targets (with the scheduler: B
within 2x its idle latency, A within 10 % of A alone). Then the books, checked for real on both tenants after
the mode's rounds: every job final and succeeded (nothing lost), exactly one endpoint invocation and one
execution per job (nothing run twice), no hold left ``held``, balance = ledger sum (the reliability suite's books
audit, ``tests/reliability/books.py``), every batch ``completed`` with N succeeded. Exit status 1 when any of
those fails (the targets are reported, not enforced).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
import uuid
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from bench.load import garment_photo
from functions.common.models import FINAL_STATUSES
from local.client import ApiClient
from local.stack import LocalSettings, LocalStack

PASSWORD = "Fair-Passw0rd-2026"  # noqa: S105 - throwaway users of the in-process Cognito
PHOTO_SIZE = (240, 300)  # small photos: quick to upload and validate
UPLOAD_THREADS = 8
B_TARGET = 2.0  # the scheduler's targets (issue 17): B's latency at most 2x its idle latency ...
A_TARGET = 0.10  # ... and A's total within 10 % of A alone


@dataclass
class Tenant:
    label: str
    client: ApiClient
    tenant_id: str


@dataclass
class Mixed:
    b_runs: list[float]  # each of B's jobs beside the drop, in submission order (the first: just after A's)
    a_seconds: float
    b_place: (
        int  # 1-based: B's first job among the drop's N and itself, by the time each reached its final status
    )
    jobs: int

    @property
    def b_seconds(self) -> float:
        return statistics.median(self.b_runs)


@dataclass
class ModeResult:
    mode: str
    n: int
    delay: float
    b_idle: float = 0.0
    b_idle_runs: list[float] = field(default_factory=list)
    a_alone: float = 0.0
    mixed: Mixed | None = None
    invocations: int = 0
    overran: int = 0  # invocations that took longer than the pace (the engine needed more)
    slowest: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def b_ratio(self) -> float:
        assert self.mixed is not None
        return self.mixed.b_seconds / self.b_idle

    @property
    def a_ratio(self) -> float:
        assert self.mixed is not None
        return self.mixed.a_seconds / self.a_alone


# ---- the customers ----------------------------------------------------------------------------------------------


def new_tenant(stack: LocalStack, label: str, credits: int) -> Tenant:
    """A signed-up customer with ``credits`` granted on top of the welcome credits (an operator's grant)."""
    from functions.common import credits as ledger
    from functions.common import db

    email = f"fair-{label}-{uuid.uuid4().hex[:8]}@example.com"
    tokens = stack.sign_up(email, PASSWORD)
    client = ApiClient(stack.api_url, tokens["access_token"], timeout=120)
    tenant_id = str(client.me()["tenant_id"])
    with db.transaction(tenant_id) as conn:
        ledger.grant(conn, tenant_id, credits, f"bench-fairness-{tenant_id}", "benchmark")
    return Tenant(label, client, tenant_id)


def post_file(slot: dict[str, Any], name: str, data: bytes, content_type: str) -> None:
    response = requests.post(
        slot["url"], data=slot["fields"], files={"file": (name, data, content_type)}, timeout=120
    )
    response.raise_for_status()


def drop(tenant: Tenant, files: list[tuple[str, bytes]]) -> tuple[str, float]:
    """A bulk drop: a batch (``priority: low``), its manifest, then the files 8 at a time. Returns the batch id
    and the wall time (``time.time()``) its first upload started."""
    client = tenant.client
    batch = client.request(
        "POST",
        "/v1/batches",
        json={"name": f"fairness {tenant.label}", "defaults": {"mode": "ghost", "priority": "low"}},
    )
    manifest = json.dumps({"files": [{"file": name} for name, _ in files]}).encode()

    def upload(item: tuple[str, bytes]) -> None:
        name, data = item
        content_type = "application/json" if name.endswith(".json") else "image/jpeg"
        slot = client.request(
            "POST",
            f"/v1/batches/{batch['id']}/uploads",
            json={"filename": name, "content_type": content_type},
        )
        post_file(slot["upload"], name, data, content_type)

    started = time.time()
    upload(("manifest.json", manifest))
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="drop") as pool:
        list(pool.map(upload, files))
    return str(batch["id"]), started


def submit(tenant: Tenant, data: bytes) -> tuple[str, float]:
    """One interactive job: ``POST /v1/jobs`` and its upload. Returns the job id and when the POST started."""
    started = time.time()
    created = tenant.client.request(
        "POST",
        "/v1/jobs",
        json={"filename": "single.jpg", "content_type": "image/jpeg", "mode": "ghost", "options": {}},
    )
    post_file(created["upload"], "single.jpg", data, "image/jpeg")
    return str(created["job_id"]), started


def wait_job(tenant: Tenant, job_id: str, timeout: float) -> dict[str, Any]:
    return tenant.client.wait(job_id, timeout=timeout, interval=0.25)


def wait_batch(tenant: Tenant, batch_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = tenant.client.request("GET", f"/v1/batches/{batch_id}")
        if view["status"] in {"completed", "stopped", "cancelled"}:
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"batch {batch_id} still {view['status']} after {timeout:.0f}s: {view['counts']}"
            )
        time.sleep(0.5)


# ---- what the database says (as its owner) ----------------------------------------------------------------------


def _admin() -> Any:
    from tests.reliability.books import admin

    return admin()


def _stage_time(stages: dict[str, str], status: str) -> float:
    return datetime.fromisoformat(stages[status].replace("Z", "+00:00")).timestamp()


STAGES = ("queued", "validated", "processing")


def stage_breakdown(job_id: str, submitted: float) -> str:
    """Where a job's time went: submission → queued (the upload's event started it) → validated (and reserved)
    → processing (handed to the endpoint) → final."""
    with _admin() as conn:
        row = conn.execute("SELECT status, stages FROM jobs WHERE id = %s", (job_id,)).fetchone()
    marks = [("submitted", submitted)]
    marks += [(s, _stage_time(row["stages"], s)) for s in STAGES if s in row["stages"]]
    marks.append((row["status"], _stage_time(row["stages"], row["status"])))
    return ", ".join(f"{b[0]} +{b[1] - a[1]:.2f}" for a, b in itertools.pairwise(marks))


def job_finished(job_id: str) -> float:
    """When the job reached its final status (the pipeline's own record, ``jobs.stages``), as ``time.time()``."""
    with _admin() as conn:
        row = conn.execute("SELECT status, stages FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return _stage_time(row["stages"], row["status"])


def batch_finished(batch_id: str) -> float:
    with _admin() as conn:
        row = conn.execute("SELECT finished_at FROM batches WHERE id = %s", (batch_id,)).fetchone()
    return float(row["finished_at"].timestamp())


def finish_order(batch_id: str, job_id: str) -> tuple[int, int]:
    """B's place among the batch's jobs and B's job, by final-status time; and how many jobs that is."""
    with _admin() as conn:
        rows = conn.execute(
            "SELECT id::text AS id, status, stages FROM jobs WHERE batch_id = %s OR id = %s",
            (batch_id, job_id),
        ).fetchall()
    ordered = sorted(rows, key=lambda r: (_stage_time(r["stages"], r["status"]), r["id"] != job_id))
    return [r["id"] for r in ordered].index(job_id) + 1, len(rows)


# ---- the rounds -------------------------------------------------------------------------------------------------


def run_mode(
    mode: str,
    n: int,
    delay: float,
    *,
    idle_runs: int = 3,
    mixed_runs: int = 3,
    mixed_gap: float = 10.0,
    max_in_flight: int | None = None,
    log: Any = print,
) -> ModeResult:
    from functions.common.pricing import cost_of

    result = ModeResult(mode, n, delay)
    cost = cost_of("ghost")
    photos = [(f"garment-{i:04d}.jpg", garment_photo(i, PHOTO_SIZE)) for i in range(n)]
    single = garment_photo(10_000, PHOTO_SIZE)
    # One worker serves every job in turn: the inference timeout must outlast the longest queue, or the last jobs
    # time out (failed and released: correct, but not what this measures).
    timeout = max(600, int(4 * n * delay) + 300)
    settings = LocalSettings(
        log_level="ERROR",
        ghost_on_lambda=False,  # ghost work on the GPU path, as all work was before the studio function
        endpoint_invocation_seconds=delay,
        inference_timeout_seconds=timeout,
        scheduler_mode=mode,
        inference_max_in_flight=max_in_flight,
    )
    with LocalStack(settings) as stack:
        from functions.common import config

        cap = (
            "no cap"
            if mode == "fifo"
            else f"at most {config.inference_max_in_flight()} job(s),"
            f" {config.inference_batch_max_in_flight()} of them from the batch lanes"
        )
        log(f"  [{mode}] at the endpoint: {cap}")
        a = new_tenant(stack, "a", 2 * n * cost)
        b = new_tenant(stack, "b", (idle_runs + 1 + mixed_runs) * cost)
        batches: list[str] = []

        job_id, _ = submit(b, single)  # warm-up: first imports, connections (not measured)
        wait_job(b, job_id, timeout)
        stack.wait_idle(timeout=120)
        for _ in range(idle_runs):
            job_id, started = submit(b, single)
            wait_job(b, job_id, timeout)
            result.b_idle_runs.append(job_finished(job_id) - started)
            log(f"  [{mode}] B idle: {stage_breakdown(job_id, started)}")
            stack.wait_idle(timeout=120)
        result.b_idle = statistics.median(result.b_idle_runs)
        log(
            f"  [{mode}] B idle: {result.b_idle:.2f} s (median of {', '.join(f'{s:.2f}' for s in result.b_idle_runs)})"
        )

        batch_id, started = drop(a, photos)
        batches.append(batch_id)
        wait_batch(a, batch_id, timeout)
        result.a_alone = batch_finished(batch_id) - started
        stack.wait_idle(timeout=120)
        log(f"  [{mode}] A alone: {result.a_alone:.1f} s for {n} photos")

        batch_id, a_started = drop(a, photos)
        batches.append(batch_id)
        a_uploaded = time.time()
        with _admin() as conn:
            behind = conn.execute(
                "SELECT status, count(*) AS c FROM jobs WHERE batch_id = %s GROUP BY status", (batch_id,)
            ).fetchall()
        log(
            f"  [{mode}] A's uploads took {a_uploaded - a_started:.1f} s; A's jobs when B first submitted:"
            f" { ({r['status']: r['c'] for r in behind}) }"
        )
        b_jobs: list[tuple[str, float]] = []
        for k in range(mixed_runs):  # one single photo every mixed_gap seconds, each on its own
            time.sleep(max(0.0, a_uploaded + k * mixed_gap - time.time()))
            b_jobs.append(submit(b, single))
        for k, (job_id, b_started) in enumerate(b_jobs):
            wait_job(b, job_id, timeout)
            latency = job_finished(job_id) - b_started
            log(
                f"  [{mode}] B beside the drop, job {k + 1} (+{b_started - a_uploaded:.0f} s): {latency:.2f} s"
                f" = {latency / result.b_idle:.2f}x idle; {stage_breakdown(job_id, b_started)}"
            )
        wait_batch(a, batch_id, timeout)
        place, jobs = finish_order(batch_id, b_jobs[0][0])
        result.mixed = Mixed(
            b_runs=[job_finished(job_id) - b_started for job_id, b_started in b_jobs],
            a_seconds=batch_finished(batch_id) - a_started,
            b_place=place,
            jobs=jobs,
        )
        stack.wait_idle(timeout=120)
        log(
            f"  [{mode}] mixed: B {result.mixed.b_seconds:.2f} s (median of"
            f" {', '.join(f'{s:.2f}' for s in result.mixed.b_runs)}), A {result.mixed.a_seconds:.1f} s,"
            f" B's first finished {place} of {jobs}"
        )
        check_books(stack, result, [a, b], batches)
    return result


def check_books(stack: LocalStack, result: ModeResult, tenants: list[Tenant], batches: list[str]) -> None:
    """Nothing lost, nothing run twice, every hold settled, balance = ledger sum; the batches complete."""
    from tests.reliability import books

    audited = books.audit([t.tenant_id for t in tenants])
    result.problems.extend(audited.problems)
    with _admin() as conn:
        jobs = conn.execute(
            "SELECT id::text AS id, status, error_code FROM jobs WHERE tenant_id = ANY(%s::uuid[])",
            ([t.tenant_id for t in tenants],),
        ).fetchall()
        held = conn.execute(
            "SELECT count(*) AS c FROM holds WHERE tenant_id = ANY(%s::uuid[]) AND status = 'held'",
            ([t.tenant_id for t in tenants],),
        ).fetchone()["c"]
        views = conn.execute(
            "SELECT id::text AS id, status,"
            " (SELECT count(*) FROM jobs j WHERE j.batch_id = b.id AND j.status = 'succeeded') AS succeeded"
            " FROM batches b WHERE id = ANY(%s::uuid[])",
            (batches,),
        ).fetchall()
    if held:
        result.problems.append(f"{held} hold(s) still held")
    for job in jobs:
        if job["status"] != "succeeded":
            result.problems.append(f"job {job['id']}: {job['status']} ({job['error_code']})")
    mixed_runs = len(result.mixed.b_runs) if result.mixed else 0
    expected = result.n * len(batches) + mixed_runs + (len(result.b_idle_runs) + 1)
    if len(jobs) != expected:
        result.problems.append(f"{len(jobs)} jobs in the database, {expected} submitted")
    for view in views:
        if view["status"] != "completed" or view["succeeded"] != result.n:
            result.problems.append(
                f"batch {view['id']}: {view['status']}, {view['succeeded']} of {result.n} succeeded"
            )
    invocations = Counter(i.inference_id for i in stack.endpoint.invocations)
    for job in jobs:
        if invocations[job["id"]] != 1:
            result.problems.append(f"job {job['id']}: {invocations[job['id']]} endpoint invocations")
    strangers = set(invocations) - {j["id"] for j in jobs}
    if strangers:
        result.problems.append(f"{len(strangers)} endpoint invocation(s) of no job of these tenants")
    pages = stack.client("stepfunctions").get_paginator("list_executions")
    executions = Counter(  # execution names are job-{job id}-{digest} (pipeline.execution_name)
        e["name"][4:40]
        for page in pages.paginate(stateMachineArn=stack.state_machine_arn)
        for e in page["executions"]
        if e["name"].startswith("job-")
    )
    for job in jobs:
        if executions[job["id"]] != 1:
            result.problems.append(f"job {job['id']}: {executions[job['id']]} executions")
    if stack.pump_errors:
        result.problems.append(f"event pump errors: {stack.pump_errors[:3]}")
    durations = [i.finished - i.started for i in stack.endpoint.invocations]
    result.invocations = len(durations)
    result.overran = sum(1 for d in durations if d > result.delay + 0.05)
    result.slowest = max(durations, default=0.0)
    if not result.problems and any(s not in FINAL_STATUSES for s in audited.jobs):
        result.problems.append(f"jobs not final: {dict(audited.jobs)}")


# ---- the report -------------------------------------------------------------------------------------------------


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, {platform.system()}"


def report(results: list[ModeResult]) -> list[str]:
    lines = [
        f"{'mode':<6} {'B idle s':>9} {'B mixed s':>10} {'B ratio':>8} {'B place':>10}"
        f" {'A alone s':>10} {'A mixed s':>10} {'A ratio':>8}  books",
    ]
    for r in results:
        assert r.mixed is not None
        lines.append(
            f"{r.mode:<6} {r.b_idle:>9.2f} {r.mixed.b_seconds:>10.2f} {r.b_ratio:>7.2f}x"
            f" {f'{r.mixed.b_place}/{r.mixed.jobs}':>10} {r.a_alone:>10.1f} {r.mixed.a_seconds:>10.1f}"
            f" {r.a_ratio:>7.3f}x  {'held' if not r.problems else f'{len(r.problems)} problem(s)'}"
        )
    for r in results:
        assert r.mixed is not None
        lines.append(
            f"{r.mode}: B's latency beside A's drop = {r.b_ratio:.2f} x B idle (median of {len(r.mixed.b_runs)};"
            f" first {r.mixed.b_runs[0] / r.b_idle:.2f}x, worst {max(r.mixed.b_runs) / r.b_idle:.2f}x);"
            f" A's total = {r.a_ratio:.3f} x A alone; B's first finished {r.mixed.b_place} of {r.mixed.jobs}"
        )
        lines.append(
            f"  endpoint: {r.invocations} invocations paced at {r.delay:.2f} s, {r.overran} needed longer"
            f" (slowest {r.slowest:.2f} s)"
        )
        if r.mode != "fifo":
            b_met, a_met = r.b_ratio <= B_TARGET, abs(r.a_ratio - 1) <= A_TARGET
            lines.append(
                f"  targets: B <= {B_TARGET:g}x idle {'met' if b_met else 'NOT met'};"
                f" A within {A_TARGET:.0%} of alone {'met' if a_met else 'NOT met'}"
            )
    problems = [f"{r.mode}: {p}" for r in results for p in r.problems]
    if problems:
        lines.append(f"books: {len(problems)} problem(s)")
        lines.extend(f"  {p}" for p in problems[:20])
    else:
        lines.append(
            "books: nothing lost, nothing run twice, every hold settled (every job succeeded once, one endpoint"
            " invocation and one execution per job, no hold held, balance = ledger sum, every batch completed)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="photos in tenant A's drop")
    parser.add_argument(
        "--delay", type=float, default=1.0, help="seconds per endpoint invocation (the slow engine's pace)"
    )
    parser.add_argument("--modes", default="fifo,fair", help="SCHEDULER_MODE values, comma-separated")
    parser.add_argument("--idle-runs", type=int, default=3, help="B's idle jobs (the median is used)")
    parser.add_argument(
        "--mixed-runs", type=int, default=3, help="B's jobs beside A's drop (the median is used)"
    )
    parser.add_argument(
        "--mixed-gap", type=float, default=10.0, help="seconds between B's jobs beside A's drop"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="INFERENCE_MAX_IN_FLIGHT for the fair scheduler (default: as the stack derives it, 1 x 1 + 1)",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="No application metrics to publish")  # EMF off locally
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    from functions.common import config

    unknown = [m for m in modes if m not in config.SCHEDULER_MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; SCHEDULER_MODE takes {', '.join(config.SCHEDULER_MODES)}")
    print(
        f"fairness benchmark: N = {args.n} photos of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} in A's drop, one endpoint"
        f" worker, {args.delay:.2f} s per invocation, modes {', '.join(modes)}",
        flush=True,
    )
    print(f"machine: {machine()}", flush=True)
    results = []
    for mode in modes:
        results.append(
            run_mode(
                mode,
                args.n,
                args.delay,
                idle_runs=args.idle_runs,
                mixed_runs=args.mixed_runs,
                mixed_gap=args.mixed_gap,
                max_in_flight=args.max_in_flight,
                log=lambda s: print(s, flush=True),
            )
        )
    for line in report(results):
        print(line)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
