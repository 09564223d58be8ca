"""Jobs whose photo never arrives, through the whole local stack (issue 15, item 16): the sweeper ends a job still
waiting for its photo (cancelled, ``upload_expired``, a sentence, nothing charged) and the history and the
dashboard leave it out; a job still waiting gets a fresh upload URL that works; a job in any other status is
refused one; a photo that lands after the expiry changes nothing. Each test ends with the books audited."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local.client import ApiError
from local.lambda_runtime import LocalLambda
from local.stack import UPLOAD_BUCKET, LocalStack
from tests.reliability import books
from tests.reliability.conftest import Tenant, garment_jpeg, new_tenant

pytestmark = pytest.mark.e2e

PHOTO = garment_jpeg()
SWEEPER = "modamoda-sweeper"


def clear_sentence(message: Any) -> bool:
    """Words a person can read: not a bare code, a repr or a traceback."""
    return (
        isinstance(message, str)
        and 12 <= len(message) <= 1000
        and " " in message.strip()
        and not any(s in message for s in ("Traceback", "Error(", "None", "object at 0x"))
    )


def create_job(tenant: Tenant) -> dict[str, Any]:
    """POST /v1/jobs: the job and its pre-signed POST; nothing is uploaded."""
    return dict(
        tenant.api.request("POST", "/v1/jobs", json={"filename": "shirt.jpg", "content_type": "image/jpeg"})
    )


def post_photo(upload: dict[str, Any]) -> None:
    response = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("shirt.jpg", PHOTO, "image/jpeg")}, timeout=60
    )
    assert response.status_code in (200, 201, 204), response.text


def waited_since(job_id: str, interval: str) -> None:
    """Move the clock back: the job was created, and its newest upload URL issued, ``interval`` ago."""
    with books.admin() as conn:
        conn.execute(
            "UPDATE jobs SET created_at = now() - %s::interval, upload_requested_at = now() - %s::interval"
            " WHERE id = %s",
            (interval, interval, job_id),
        )


def sweep() -> dict[str, Any]:
    """One scheduled run of the sweeper Lambda, invoked directly."""
    swept, error = LocalLambda({SWEEPER: "functions.sweeper.handler.lambda_handler"}).invoke(SWEEPER, {})
    assert error is None, swept
    return dict(swept)


def listed(tenant: Tenant, **params: Any) -> list[str]:
    return [j["id"] for j in tenant.api.request("GET", "/v1/jobs", params={"limit": 100, **params})["items"]]


def ledger_kinds(job_id: str) -> list[str]:
    with books.admin() as conn:
        rows = conn.execute("SELECT kind FROM ledger WHERE job_id = %s ORDER BY id", (job_id,)).fetchall()
    return [r["kind"] for r in rows]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def started_for(stack: LocalStack, job_id: str) -> int:
    """How many times start-workflow was invoked with this job's upload event."""
    return sum(
        1
        for i in list(stack.lambdas.invocations)
        if i.function == "modamoda-start-workflow" and job_id in json.dumps(i.payload)
    )


def executions_of(stack: LocalStack, job_id: str) -> list[dict[str, Any]]:
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.state_machine_arn)
    return [e for e in executions["executions"] if e["name"].startswith(f"job-{job_id}-")]


def test_a_job_never_uploaded_is_expired_by_the_sweep_and_left_out_of_the_lists(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    waiting = create_job(tenant)["job_id"]
    expiring = create_job(tenant)["job_id"]
    done = tenant.api.upload("shirt.jpg", PHOTO, "image/jpeg")
    assert tenant.api.wait(done)["status"] == "succeeded"
    waited_since(expiring, "25 hours")

    swept = sweep()
    assert swept["uploads_expired"] == 1
    job = tenant.api.job(expiring)
    assert job["status"] == "cancelled"
    assert job["error"]["code"] == "upload_expired"
    assert clear_sentence(job["error"]["message"])
    assert "nothing was charged" in job["error"]["message"]
    assert job["progress"]["stage"] == "done"
    assert tenant.api.job(waiting)["status"] == "awaiting_upload"  # its wait has not run out
    assert ledger_kinds(expiring) == []  # nothing held, nothing charged
    assert tenant.api.me()["balance"] == tenant.balance - 1  # the one photo that was processed

    # the history and the dashboard (its five newest jobs) show only the job whose photo arrived
    assert listed(tenant) == [done]
    assert listed(tenant, limit=5) == [done]
    assert listed(tenant, status="awaiting_upload") == [waiting]  # asked for by status, they are there
    assert listed(tenant, status="cancelled") == [expiring]
    assert sweep()["uploads_expired"] == 0  # the next run finds nothing
    books.assert_balanced([tenant.tenant_id], allow_awaiting_upload=True)


def test_a_fresh_upload_url_for_a_waiting_job_works(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    created = create_job(tenant)
    job_id = created["job_id"]
    waited_since(job_id, "23 hours")  # the first link expired long ago; the job still waits
    renewed = tenant.api.request("POST", f"/v1/jobs/{job_id}/upload")
    assert renewed["job_id"] == job_id
    assert renewed["upload"]["fields"]["key"] == created["upload"]["fields"]["key"]
    assert sweep()["uploads_expired"] == 0  # the wait started again with the new link

    post_photo(renewed["upload"])
    job = tenant.api.wait(job_id, timeout=120)
    assert job["status"] == "succeeded"
    assert tenant.api.download(job)
    assert ledger_kinds(job_id) == ["reserve", "capture"]
    assert tenant.api.me()["balance"] == tenant.balance - 1
    assert listed(tenant) == [job_id]

    with pytest.raises(ApiError) as refused:  # a finished job takes no new upload
        tenant.api.request("POST", f"/v1/jobs/{job_id}/upload")
    assert refused.value.status == 409
    assert refused.value.body["error"]["code"] == "not_awaiting_upload"
    assert clear_sentence(refused.value.body["error"]["message"])
    stack.wait_idle(timeout=60)
    books.assert_balanced([tenant.tenant_id])


def test_a_fresh_upload_url_is_refused_for_an_expired_job_and_another_tenants(stack: LocalStack) -> None:
    tenant, intruder = new_tenant(stack), new_tenant(stack)
    expired = create_job(tenant)["job_id"]
    waiting = create_job(tenant)["job_id"]
    waited_since(expired, "25 hours")
    assert sweep()["uploads_expired"] == 1
    with pytest.raises(ApiError) as refused:
        tenant.api.request("POST", f"/v1/jobs/{expired}/upload")
    assert refused.value.status == 409
    assert refused.value.body["error"]["code"] == "not_awaiting_upload"
    assert "create a new job" in refused.value.body["error"]["message"]
    with pytest.raises(ApiError) as foreign:
        intruder.api.request("POST", f"/v1/jobs/{waiting}/upload")
    assert foreign.value.status == 404
    assert foreign.value.body["error"]["code"] == "not_found"
    books.assert_balanced([tenant.tenant_id, intruder.tenant_id], allow_awaiting_upload=True)


def test_a_late_upload_after_the_expiry_changes_nothing(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    created = create_job(tenant)
    job_id = created["job_id"]
    waited_since(job_id, "25 hours")
    assert sweep()["uploads_expired"] == 1
    before = tenant.api.job(job_id)

    post_photo(created["upload"])  # the photo lands after all (a slow client, a delayed event)
    wait_for(lambda: started_for(stack, job_id) >= 1, "the late upload's S3 event was not delivered")
    stack.wait_idle(timeout=60)
    assert tenant.api.job(job_id) == before  # still cancelled, upload_expired: the claim found it final
    assert executions_of(stack, job_id) == []  # nothing ran
    assert ledger_kinds(job_id) == []
    assert tenant.api.me()["balance"] == tenant.balance
    assert job_id not in listed(tenant)
    # the object is ignored and left in place, as for a deleted job's late upload (DELETE removes it)
    key = created["upload"]["fields"]["key"]
    assert stack.client("s3").list_objects_v2(Bucket=UPLOAD_BUCKET, Prefix=key)["KeyCount"] == 1
    books.assert_balanced([tenant.tenant_id])
