"""Concurrent customers against the local stack: API latency and job throughput under load, against one customer
alone measured in the same run.

    python -m bench.load                       # 8 customers x 3 jobs, baseline 1 customer x 3 jobs
    python -m bench.load --users 32 --jobs 4   # what `make stress` runs (through tests/reliability/test_load.py)

Each customer signs up (not timed), then, all at once: creates its jobs (``POST /v1/jobs``), uploads each photo
by its pre-signed POST, follows the jobs (``GET /v1/jobs/{id}`` every 0.25 s) until they are final, and reads its
credits and history. Every API request's latency is recorded (the uploads separately: they go to S3, not the API).

Printed: API latency p50/p99 and jobs per minute for the baseline and the loaded run, and the ratios. The local
stack is one Python process on this machine (moto, the Lambdas, PostgreSQL and the inference container share its
cores; one inference worker, as one endpoint instance), so throughput here is bounded by the engine, and latency
under load measures the stack's own contention, not AWS's.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from PIL import Image, ImageDraw

from functions.common.models import FINAL_STATUSES
from local.stack import LocalSettings, LocalStack

PASSWORD = "Load-Passw0rd-2026"  # noqa: S105 - throwaway users of the in-process Cognito
POLL_SECONDS = 0.25


def garment_image(
    size: tuple[int, int] = (480, 600), colour: tuple[int, int, int] = (30, 60, 140)
) -> Image.Image:
    """A small garment (a flat shirt shape) on a grey backdrop: quick for the studio engine."""
    width, height = size
    image = Image.new("RGB", size, (214, 216, 219))
    ImageDraw.Draw(image).polygon(
        [
            (width * 0.31, height * 0.2),
            (width * 0.69, height * 0.2),
            (width * 0.79, height * 0.33),
            (width * 0.73, height * 0.87),
            (width * 0.27, height * 0.87),
            (width * 0.21, height * 0.33),
        ],
        fill=colour,
    )
    return image


def garment_photo(seed: int, size: tuple[int, int] = (480, 600)) -> bytes:
    """A JPEG of ``garment_image``; the colour varies with ``seed`` so every upload differs."""
    colour = (30 + seed * 37 % 180, 60 + seed * 53 % 150, 140 - seed * 29 % 100)
    buffer = io.BytesIO()
    garment_image(size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Customer:
    email: str
    token: str
    tenant_id: str
    balance_before: int
    jobs: list[str] = field(default_factory=list)
    balance_after: int | None = None
    listed: set[str] = field(default_factory=set)


@dataclass
class LoadReport:
    users: int
    jobs_per_user: int
    wall_seconds: float = 0.0
    latencies: list[tuple[str, float, int]] = field(default_factory=list)  # (operation, seconds, HTTP status)
    upload_seconds: list[float] = field(default_factory=list)
    final: dict[str, str] = field(default_factory=dict)  # job id → final status
    failures: dict[str, str] = field(
        default_factory=dict
    )  # job id → error code, for jobs that did not succeed
    customers: list[Customer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def submitted(self) -> int:
        return sum(len(c.jobs) for c in self.customers)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def server_errors(self) -> int:
        return sum(1 for _, _, status in self.latencies if status >= 500)

    def latency(self, q: float, operation: str | None = None) -> float:
        values = [s for op, s, _ in self.latencies if operation is None or op == operation]
        return percentile(values, q)

    @property
    def jobs_per_minute(self) -> float:
        done = sum(1 for status in self.final.values() if status in FINAL_STATUSES)
        return done / self.wall_seconds * 60 if self.wall_seconds else 0.0

    def lost(self) -> list[str]:
        """Jobs submitted that never reached a final state or are missing from their owner's history."""
        missing = [j for c in self.customers for j in c.jobs if self.final.get(j) not in FINAL_STATUSES]
        unlisted = [j for c in self.customers for j in c.jobs if j not in c.listed]
        return sorted(set(missing) | set(unlisted))

    def record(self, operation: str, seconds: float, status: int) -> None:
        with self._lock:
            self.latencies.append((operation, seconds, status))


def _call(
    report: LoadReport, session: requests.Session, method: str, url: str, operation: str, **kwargs: Any
) -> requests.Response:
    started = time.perf_counter()
    response = session.request(method, url, timeout=60, **kwargs)
    report.record(operation, time.perf_counter() - started, response.status_code)
    return response


def sign_up(stack: LocalStack, count: int, prefix: str) -> list[Customer]:
    customers = []
    for _ in range(count):
        email = f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"
        token = stack.sign_up(email, PASSWORD)["access_token"]
        me = requests.get(f"{stack.api_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        me.raise_for_status()
        body = me.json()
        customers.append(Customer(email, token, str(body["tenant_id"]), int(body["balance"])))
    return customers


def _customer_run(
    stack: LocalStack, report: LoadReport, customer: Customer, index: int, timeout: float
) -> None:
    api = stack.api_url
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {customer.token}"
        for n in range(report.jobs_per_user):
            filename = f"load-{index:03d}-{n:02d}.jpg"
            created = _call(
                report,
                session,
                "POST",
                f"{api}/v1/jobs",
                "POST /v1/jobs",
                json={"filename": filename, "content_type": "image/jpeg", "mode": "ghost", "options": {}},
            )
            if created.status_code != 201:
                report.errors.append(f"{customer.email}: POST /v1/jobs {created.status_code} {created.text}")
                continue
            body = created.json()
            upload = body["upload"]
            started = time.perf_counter()
            posted = requests.post(
                upload["url"],
                data=upload["fields"],
                files={"file": (filename, garment_photo(index * 100 + n), "image/jpeg")},
                timeout=60,
            )
            report.upload_seconds.append(time.perf_counter() - started)
            if posted.status_code not in (200, 201, 204):
                report.errors.append(f"{customer.email}: upload {posted.status_code} {posted.text[:200]}")
                continue
            customer.jobs.append(str(body["job_id"]))
        deadline = time.monotonic() + timeout
        pending = list(customer.jobs)
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                got = _call(report, session, "GET", f"{api}/v1/jobs/{job_id}", "GET /v1/jobs/{id}")
                job = got.json() if got.status_code == 200 else {}
                if job.get("status") in FINAL_STATUSES:
                    report.final[job_id] = job["status"]
                    if job["status"] != "succeeded":
                        report.failures[job_id] = str((job.get("error") or {}).get("code"))
                    pending.remove(job_id)
            if pending:
                time.sleep(POLL_SECONDS)
        for job_id in pending:
            report.errors.append(f"{customer.email}: job {job_id} not final after {timeout:.0f}s")
        credits = _call(report, session, "GET", f"{api}/v1/credits", "GET /v1/credits")
        if credits.status_code == 200:
            customer.balance_after = int(credits.json()["balance"])
        listed = _call(report, session, "GET", f"{api}/v1/jobs?limit=100", "GET /v1/jobs")
        if listed.status_code == 200:
            customer.listed = {str(item["id"]) for item in listed.json()["items"]}


def run_load(
    stack: LocalStack, users: int, jobs_per_user: int, *, timeout: float = 600.0, prefix: str = "load"
) -> LoadReport:
    """Sign up ``users`` customers, then run them all at once; returns what happened (nothing is asserted)."""
    report = LoadReport(users=users, jobs_per_user=jobs_per_user)
    report.customers = sign_up(stack, users, prefix)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=users, thread_name_prefix="customer") as pool:
        futures = [
            pool.submit(_customer_run, stack, report, customer, i, timeout)
            for i, customer in enumerate(report.customers)
        ]
        for future in futures:
            exc = future.exception()
            if exc is not None:
                report.errors.append(f"customer thread: {exc!r}")
    report.wall_seconds = time.perf_counter() - started
    return report


def summary(report: LoadReport) -> list[str]:
    statuses = Counter(report.final.values())
    return [
        f"{report.users} customer(s) x {report.jobs_per_user} job(s): {report.submitted} submitted, "
        f"{dict(statuses)}, {len(report.lost())} lost, {report.server_errors} 5xx, in {report.wall_seconds:.1f}s",
        f"  throughput: {report.jobs_per_minute:.1f} jobs/min, {report.requests / report.wall_seconds:.1f} API requests/s"
        f" ({report.requests} requests)",
        f"  API latency: p50 {report.latency(50) * 1000:.0f} ms, p99 {report.latency(99) * 1000:.0f} ms"
        f" (POST /v1/jobs p99 {report.latency(99, 'POST /v1/jobs') * 1000:.0f} ms)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=3, help="jobs per customer (welcome credits: 10)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    with LocalStack(LocalSettings()) as stack:
        baseline = run_load(stack, 1, args.jobs, prefix="baseline")
        stack.wait_idle(timeout=120)
        loaded = run_load(stack, args.users, args.jobs)
        stack.wait_idle(timeout=120)
    for label, report in (("baseline", baseline), ("loaded", loaded)):
        print(f"{label}: " + "\n".join(summary(report)))
    print(
        f"ratios (loaded / baseline): API p50 {loaded.latency(50) / baseline.latency(50):.2f}x, "
        f"p99 {loaded.latency(99) / baseline.latency(99):.2f}x, "
        f"throughput {loaded.jobs_per_minute / baseline.jobs_per_minute:.2f}x"
    )
    problems = baseline.errors + loaded.errors + baseline.lost() + loaded.lost()
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems or baseline.server_errors or loaded.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
