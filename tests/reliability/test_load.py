"""Load: concurrent customers submitting jobs against the local stack (loopback only, bounded), with throughput and
API latency reported and every job accounted for — none lost, none charged twice.

``make test`` runs 8 customers x 2 jobs; ``make stress`` sets MODAMODA_LOAD_USERS/MODAMODA_LOAD_JOBS higher
(32 x 4 by default there). The numbers land in the suite's table (tests/reliability/tally.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.load import run_load, summary
from functions.common.pricing import cost_of
from tests.reliability import books
from tests.reliability.conftest import garment_jpeg, new_tenant
from tests.reliability.tally import TALLY

pytestmark = pytest.mark.e2e

USERS = int(os.environ.get("MODAMODA_LOAD_USERS", "8"))
JOBS = int(os.environ.get("MODAMODA_LOAD_JOBS", "2"))


def test_concurrent_customers_lose_nothing_and_pay_once(stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # One local inference worker serves every job in turn: the inference timeout must cover the whole queue, or
    # the last jobs time out (failed, released: correct, but not what this test measures).
    budget = 120 + 6 * USERS * JOBS
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", str(budget))
    report = run_load(stack, USERS, JOBS, timeout=budget)
    stack.wait_idle(timeout=120)
    print("\n" + "\n".join(summary(report)))

    assert report.errors == []
    assert report.submitted == USERS * JOBS
    assert report.lost() == []
    assert report.server_errors == 0
    assert set(report.final.values()) == {"succeeded"}, report.failures
    cost = cost_of("ghost")
    for customer in report.customers:  # each paid exactly its jobs, as its own credits endpoint says
        assert customer.balance_after == customer.balance_before - JOBS * cost, customer
    audited = books.assert_balanced([c.tenant_id for c in report.customers])
    assert audited.captured == USERS * JOBS * cost
    assert audited.jobs == {"succeeded": USERS * JOBS}
    pages = stack.client("stepfunctions").get_paginator("list_executions")
    names = [
        e["name"]
        for page in pages.paginate(stateMachineArn=stack.state_machine_arn)
        for e in page["executions"]
    ]
    for job_id in report.final:  # one execution per job, whatever the retries
        assert sum(1 for n in names if n.startswith(f"job-{job_id}-")) == 1

    TALLY.add("load", "concurrent customers", USERS)
    TALLY.add("load", "jobs submitted", report.submitted)
    TALLY.add("load", "API requests made", report.requests)
    TALLY.zero("load", "jobs lost")
    TALLY.zero("load", "jobs charged twice")
    TALLY.zero("load", "API 5xx answers")
    TALLY.measure("load", "throughput (jobs/min)", f"{report.jobs_per_minute:.1f}")
    TALLY.measure(
        "load",
        "API latency p50 / p99 (ms)",
        f"{report.latency(50) * 1e3:.0f} / {report.latency(99) * 1e3:.0f}",
    )


def test_one_tenant_racing_past_its_balance_spends_exactly_its_credits(stack) -> None:  # type: ignore[no-untyped-def]
    """More concurrent submissions than credits: exactly ``balance`` jobs run, the rest are refused for lack of
    credits and cost nothing; the balance ends at zero, never below."""
    tenant = new_tenant(stack, "race")
    extra = 4
    count = tenant.balance // cost_of("ghost") + extra
    photos = [garment_jpeg(colour=(20 + 10 * i, 60, 140)) for i in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        job_ids = list(
            pool.map(lambda i: tenant.api.upload(f"race-{i}.jpg", photos[i], "image/jpeg"), range(count))
        )
    finals = [tenant.api.wait(job_id, timeout=180) for job_id in job_ids]
    stack.wait_idle(timeout=120)

    statuses = [job["status"] for job in finals]
    assert statuses.count("succeeded") == count - extra
    refused = [job for job in finals if job["status"] != "succeeded"]
    assert [(job["status"], job["error"]["code"]) for job in refused] == [
        ("rejected", "insufficient_credits")
    ] * extra
    assert tenant.api.me()["balance"] == 0
    audited = books.assert_balanced([tenant.tenant_id])
    assert audited.captured == tenant.balance

    TALLY.add("load", "jobs submitted", count)
    TALLY.add("load", "over-balance submissions refused", extra)
    TALLY.zero("load", "credits overdrawn")
