"""Tenant isolation at the HTTP layer: every route that takes an ID answers another tenant's ID with the same
404 ``not_found`` as a missing one, and changes nothing. The routes come from the resolver itself, so a new ID
route without an entry in ``OWNED`` fails this test."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import boto3
import psycopg
import pytest

from functions.api import handler
from tests.functions.api.conftest import RESULTS, UPLOADS, finish_job
from tests.functions.api.test_handler import call

PARAM = re.compile(r"\{(\w+)\}")


def id_routes() -> list[tuple[str, str]]:
    """(method, OpenAPI path) of every resolver route with a path parameter."""
    routes = [*handler.app._static_routes, *handler.app._dynamic_routes]
    return sorted({(r.method, r.openapi_path) for r in routes if PARAM.search(r.openapi_path)})


# Routes that need a valid body to get past validation (so that the test reaches the ownership check).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/batches/{batch_id}/uploads"): {"filename": "a.jpg", "content_type": "image/jpeg"},
}
# The owner's calls that change a batch, in an order where each succeeds (an empty batch sealed is finished).
OWNER_ORDER = ("/uploads", "/cancel", "/seal")
# Routes that act on a job in another state than the fixture's succeeded one: the owned job of that state.
JOB_IN_STATE: dict[tuple[str, str], str] = {
    ("POST", "/v1/jobs/{job_id}/upload"): "waiting_job_id",
    ("POST", "/v1/jobs/{job_id}/retry"): "failed_job_id",
}


def concrete_path(method: str, path: str, owned: dict[str, str]) -> str:
    ids = {**owned, "job_id": owned[JOB_IN_STATE.get((method, path), "job_id")]}
    return PARAM.sub(lambda m: ids[m.group(1)], path)


def test_the_resolver_has_id_routes() -> None:
    assert ("GET", "/v1/jobs/{job_id}") in id_routes()
    assert ("DELETE", "/v1/account/api-keys/{key_id}") in id_routes()
    assert ("POST", "/v1/batches/{batch_id}/cancel") in id_routes()


@pytest.fixture
def owned(user_pool: dict[str, str], conn: psycopg.Connection) -> dict[str, str]:
    """Tenant A's resources, each in the state where A itself would succeed: a succeeded job with its photo and a
    result (download, re-render and delete work for A), a failed one with its photo (retry works), a job still
    waiting for its photo (a fresh upload URL works for A), an active API key, a dead webhook delivery and an open
    batch."""
    s3 = boto3.client("s3", region_name="us-east-1")
    _, job = call("POST", "/v1/jobs", sub="owner", body={"filename": "a.jpg", "content_type": "image/jpeg"})
    s3.put_object(Bucket=UPLOADS, Key=job["upload"]["fields"]["key"], Body=b"photo")
    finish_job(conn, job["job_id"])
    _, failed = call(
        "POST", "/v1/jobs", sub="owner", body={"filename": "c.jpg", "content_type": "image/jpeg"}
    )
    s3.put_object(Bucket=UPLOADS, Key=failed["upload"]["fields"]["key"], Body=b"photo")
    finish_job(conn, failed["job_id"], "failed")
    _, waiting = call(
        "POST", "/v1/jobs", sub="owner", body={"filename": "b.jpg", "content_type": "image/jpeg"}
    )
    _, key = call("POST", "/v1/account/api-keys", sub="owner", body={"name": "owner's key"})
    call("PUT", "/v1/account/webhook", sub="owner", body={"url": "https://shop.example.com/hooks"})
    delivery = dead_delivery(conn, job["job_id"])
    _, batch = call("POST", "/v1/batches", sub="owner", body={"name": "owner's batch"})
    return {
        "job_id": job["job_id"],
        "waiting_job_id": waiting["job_id"],  # still waiting for its photo
        "failed_job_id": failed["job_id"],
        "key_id": key["id"],
        "delivery_id": delivery,
        "batch_id": batch["id"],
    }


def dead_delivery(conn: psycopg.Connection, job_id: str) -> str:
    """A webhook event of the job's tenant whose every attempt failed (so the owner may retry it)."""
    tenant_id = conn.execute("SELECT tenant_id FROM jobs WHERE id = %s", (job_id,)).fetchone()["tenant_id"]
    delivery_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO notifications (id, tenant_id, channel, type, subject, payload, status, attempts)"
        " VALUES (%s, %s, 'webhook', 'job.succeeded', %s, %s, 'dead', 8)",
        (delivery_id, tenant_id, f"job:{job_id}", json.dumps({"id": delivery_id, "type": "job.succeeded"})),
    )
    return delivery_id


@pytest.mark.parametrize(("method", "path"), id_routes())
def test_another_tenants_id_is_not_found(
    owned: dict[str, str], conn: psycopg.Connection, method: str, path: str
) -> None:
    names = PARAM.findall(path)
    missing = [n for n in names if n not in owned]
    assert not missing, f"{method} {path}: add an owned {missing} to the fixture"
    concrete = concrete_path(method, path, owned)
    body: Any = BODIES.get((method, path), {}) if method in {"POST", "PUT", "PATCH"} else None
    status, answer = call(method, concrete, sub="intruder", body=body)
    assert status == 404, (method, concrete, answer)
    assert answer["error"]["code"] == "not_found"
    # ... and nothing of the owner's changed
    job = conn.execute("SELECT deleted_at FROM jobs WHERE id = %s", (owned["job_id"],)).fetchone()
    assert job["deleted_at"] is None
    waiting = conn.execute(
        "SELECT status, upload_requested_at = created_at AS untouched FROM jobs WHERE id = %s",
        (owned["waiting_job_id"],),
    ).fetchone()
    assert (waiting["status"], waiting["untouched"]) == ("awaiting_upload", True)
    key = conn.execute("SELECT revoked_at FROM api_keys WHERE id = %s", (owned["key_id"],)).fetchone()
    assert key["revoked_at"] is None
    batch = conn.execute(
        "SELECT status, sealed_at FROM batches WHERE id = %s", (owned["batch_id"],)
    ).fetchone()
    assert (batch["status"], batch["sealed_at"]) == ("open", None)
    delivery = conn.execute(
        "SELECT status FROM notifications WHERE id = %s", (owned["delivery_id"],)
    ).fetchone()
    assert delivery["status"] == "dead"
    assert call("GET", f"/v1/jobs/{owned['job_id']}", sub="owner")[0] == 200
    s3 = boto3.client("s3", region_name="us-east-1")
    assert s3.list_objects_v2(Bucket=RESULTS).get("KeyCount", 0) == 1


def test_the_owner_can_use_every_id_route(owned: dict[str, str]) -> None:
    """The control: the same calls by the owner succeed, so the 404s above are about ownership."""

    def order(route: tuple[str, str]) -> int:
        return next((i + 1 for i, end in enumerate(OWNER_ORDER) if route[1].endswith(end)), 0)

    for method, path in sorted(id_routes(), key=order):
        if method == "DELETE":
            continue  # checked last, below
        concrete = concrete_path(method, path, owned)
        status = call(method, concrete, sub="owner", body=BODIES.get((method, path)))[0]
        assert status in {200, 201}, (method, concrete)
    for method, path in id_routes():
        if method == "DELETE":
            concrete = PARAM.sub(lambda m: owned[m.group(1)], path)
            assert call(method, concrete, sub="owner")[0] == 204, (method, concrete)
