"""Bulk end to end on the local stack: a batch's drop folder gets a manifest and ~20 photos (through the API's
pre-signed POSTs and straight into S3, some twice), every photo becomes exactly one job, the results carry the SKU
in their names, the report (CSV + JSON) is written once, and every image is charged once (ledger sum = balance).
A 500-photo drop (``slow``, opt-in with ``MODAMODA_BULK_500=1``) checks the same at volume and prints how long
it took."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from functions.common import credits, db
from local.client import ApiError
from local.stack import DROP_BUCKET, RESULTS_BUCKET, LocalSettings, LocalStack
from tests.local.conftest import User, new_user

pytestmark = pytest.mark.e2e
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples" / "garments").glob("*.jpg"))


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(LocalSettings()) as running:
        yield running


def photos(size: int = 384) -> list[bytes]:
    """The sample garments at ``size`` px (the studio engine is quick at this size)."""
    out = []
    for path in SAMPLES:
        with Image.open(path) as image:
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            out.append(buffer.getvalue())
    return out


def grant(tenant_id: str, amount: int, key: str) -> None:
    with db.transaction(tenant_id) as conn:
        credits.grant(conn, tenant_id, amount, key, "test")


def upload(user: User, batch_id: str, filename: str, data: bytes, content_type: str) -> str:
    """Through the API: a pre-signed POST into the drop folder, sent to the local S3 proxy as a browser would."""
    created = user.api.request(
        "POST", f"/v1/batches/{batch_id}/uploads", json={"filename": filename, "content_type": content_type}
    )
    response = requests.post(
        created["upload"]["url"],
        data=created["upload"]["fields"],
        files={"file": (filename, data, content_type)},
        timeout=60,
    )
    assert response.status_code in {200, 201, 204}, response.text
    return str(created["key"])


def wait_finished(user: User, batch_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = user.api.request("GET", f"/v1/batches/{batch_id}")
        if batch["finished_at"] and batch["report"]:
            return dict(batch)
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch still {batch['status']}: {batch['counts']}")
        time.sleep(0.25)


def ledger_by_job(tenant_id: str) -> dict[str, list[tuple[str, int]]]:
    with db.transaction(tenant_id) as conn:
        rows = conn.execute(
            "SELECT job_id, kind, amount FROM ledger WHERE tenant_id = %s AND job_id IS NOT NULL",
            (tenant_id,),
        ).fetchall()
    out: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        out.setdefault(str(row["job_id"]), []).append((row["kind"], int(row["amount"])))
    return out


def check_money(tenant_id: str, succeeded: set[str], others: set[str]) -> None:
    """Each succeeded image reserved and captured once; nothing else kept a credit; ledger sum = balance."""
    by_job = ledger_by_job(tenant_id)
    for job_id in succeeded:
        assert sorted(by_job[job_id]) == [("capture", 0), ("reserve", -1)], job_id
    for job_id in others:  # rejected before a reservation, or reserved and released exactly once
        entries = sorted(by_job.get(job_id, []))
        assert [k for k, _ in entries] in ([], ["release", "reserve"]), (job_id, entries)
        assert sum(a for _, a in entries) == 0, (job_id, entries)
    with db.transaction(tenant_id) as conn:
        assert credits.balance(conn, tenant_id) == credits.ledger_sum(conn, tenant_id)
        assert credits.held(conn, tenant_id) == 0


def test_a_drop_of_twenty_photos_with_a_manifest(stack: LocalStack) -> None:
    user = new_user(stack)
    tenant_id = user.api.me()["tenant_id"]
    grant(tenant_id, 20, f"test:bulk:{tenant_id}")
    batch = user.api.request(
        "POST", "/v1/batches", json={"name": "Spring", "defaults": {"options": {"preset": "square"}}}
    )
    batch_id = batch["id"]
    images = photos()
    names = [f"photo {i:02d}.jpg" for i in range(18)]
    rows = [{"file": name, "sku": f"SKU-{i:03d}"} for i, name in enumerate(names)]
    rows[3]["sku"] = "SKU-000"  # a duplicate SKU still gets its own result name
    rows[5]["preset"] = "ebay"  # a bad row: that file is rejected, nothing charged
    rows.append({"file": "notes.jpg", "sku": "NOTES"})  # not an image: rejected by content
    rows.append({"file": "model.jpg", "sku": "MODEL", "mode": "on-model"})  # not offered locally: refused
    upload(user, batch_id, "manifest.json", json.dumps({"files": rows}).encode(), "application/json")

    started = time.monotonic()
    for i, name in enumerate(names):
        if i % 3 == 0:  # some straight into the drop folder (a customer's own S3 tooling)
            stack.client("s3").put_object(
                Bucket=DROP_BUCKET, Key=f"{batch['drop_prefix']}{name}", Body=images[i % len(images)]
            )
        else:
            upload(user, batch_id, name, images[i % len(images)], "image/jpeg")
    upload(user, batch_id, names[1], images[2], "image/jpeg")  # uploaded again: still one job
    upload(user, batch_id, "notes.jpg", b"meeting notes, not a photo", "image/jpeg")
    # the API refuses an upload link for an on-model row here; a file dropped straight into the folder is refused
    with pytest.raises(ApiError, match="on_model_unavailable"):
        upload(user, batch_id, "model.jpg", images[0], "image/jpeg")
    stack.client("s3").put_object(Bucket=DROP_BUCKET, Key=f"{batch['drop_prefix']}model.jpg", Body=images[0])
    finished = wait_finished(user, batch_id, timeout=240)
    seconds = time.monotonic() - started
    stack.wait_idle(60)
    assert stack.pump_errors == []

    assert finished["status"] == "completed"
    assert finished["counts"] == {
        "expected": 20, "total": 20, "awaiting": 0, "queued": 0, "processing": 0, "succeeded": 17, "failed": 0,
        "rejected": 3, "cancelled": 0,
    }  # fmt: skip
    assert finished["credits_spent"] == 17
    jobs = user.api.request("GET", f"/v1/batches/{batch_id}/jobs", params={"limit": 100})["items"]
    assert len(jobs) == 20
    assert len({j["filename"] for j in jobs}) == 20
    by_file = {j["filename"]: j for j in jobs}
    assert (by_file[names[5]]["status"], by_file[names[5]]["error"]["code"]) == (
        "rejected",
        "manifest_invalid",
    )
    assert (by_file["notes.jpg"]["status"], by_file["notes.jpg"]["error"]["code"]) == (
        "rejected",
        "not_an_image",
    )
    assert (by_file["model.jpg"]["status"], by_file["model.jpg"]["error"]["code"]) == (
        "rejected",
        "on_model_unavailable",
    )
    assert all(j["batch_id"] == batch_id for j in jobs)

    # results: results/{tenant}/{batch}/{sku}-{mode}.png, unique within the batch
    prefix = f"results/{tenant_id}/{batch_id}/"
    listing = stack.client("s3").list_objects_v2(Bucket=RESULTS_BUCKET, Prefix=prefix)["Contents"]
    keys = sorted(o["Key"][len(prefix) :] for o in listing)
    expected = [
        *sorted(f"SKU-{i:03d}-ghost.png" for i in range(18) if i not in {3, 5}),
        "SKU-000_2-ghost.png",
    ]
    assert keys == sorted([*expected, "report.csv", "report.json"])
    one = requests.get(by_file[names[0]]["result_url"], timeout=30)
    assert one.status_code == 200
    with Image.open(io.BytesIO(one.content)) as result:
        assert result.size == (2000, 2000)

    # the report, through its pre-signed links
    report = requests.get(finished["report"]["json_url"], timeout=30).json()
    table = list(csv.DictReader(io.StringIO(requests.get(finished["report"]["csv_url"], timeout=30).text)))
    assert report["totals"]["succeeded"] == 17
    assert report["totals"]["credits_spent"] == 17
    assert [r["file"] for r in table] == sorted([*names, "notes.jpg", "model.jpg"])
    assert {r["sku"] for r in table if r["status"] == "succeeded"} >= {"SKU-001", "SKU-017"}
    assert report["consistency"]["count"] == 17
    assert report["consistency"]["judged"]
    assert sum(int(r["cost"]) for r in table) == 17

    # money: each image charged once, nothing else
    succeeded = {j["id"] for j in jobs if j["status"] == "succeeded"}
    check_money(tenant_id, succeeded, {j["id"] for j in jobs} - succeeded)
    assert user.api.request("GET", "/v1/credits")["balance"] == 10 + 20 - 17
    print(f"\n  20-photo batch finished in {seconds:.1f}s")


def test_an_upload_is_not_held_up_by_a_drop_folder_backlog(stack: LocalStack) -> None:
    """Uploads and drop-folder files reach StartWorkflow through start queues of their own (infra/pipeline.py): with
    the drop folder's event source stopped and its files waiting, a customer's single upload still starts, runs and
    is charged once; the dropped files start when their source runs again."""
    user = new_user(stack)
    tenant_id = user.api.me()["tenant_id"]
    grant(tenant_id, 4, f"test:backlog:{tenant_id}")
    batch = user.api.request("POST", "/v1/batches", json={"name": "Backlog"})
    images = photos(256)
    names = [f"waiting {i}.jpg" for i in range(3)]
    manifest = {"files": [{"file": name, "sku": f"W-{i}"} for i, name in enumerate(names)]}
    s3 = stack.client("s3")
    with stack.paused("pump-drop-start"):
        s3.put_object(
            Bucket=DROP_BUCKET, Key=f"{batch['drop_prefix']}manifest.json", Body=json.dumps(manifest).encode()
        )
        for i, name in enumerate(names):
            s3.put_object(
                Bucket=DROP_BUCKET, Key=f"{batch['drop_prefix']}{name}", Body=images[i % len(images)]
            )
        deadline = time.monotonic() + 30
        while stack.queue_depth(stack.drop_start_queue_url) < 4:  # the manifest's and the files' events
            assert time.monotonic() < deadline, "the drop folder's events never reached their start queue"
            time.sleep(0.05)
        job = user.api.wait(user.api.upload("single.jpg", images[0], "image/jpeg"), timeout=120)
        assert job["status"] == "succeeded", job["error"]
        assert stack.queue_depth(stack.drop_start_queue_url) == 4  # the drop is still waiting, untouched
        assert user.api.request("GET", f"/v1/batches/{batch['id']}")["counts"]["total"] == 0
    finished = wait_finished(user, batch["id"], timeout=120)
    assert (finished["status"], finished["counts"]["succeeded"]) == ("completed", 3)
    stack.wait_idle(60)
    jobs = user.api.request("GET", f"/v1/batches/{batch['id']}/jobs", params={"limit": 10})["items"]
    check_money(tenant_id, {job["id"], *(j["id"] for j in jobs)}, set())


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    os.environ.get("MODAMODA_BULK_500") != "1",
    reason="about 10 minutes on 2 cores (one local inference worker at ~1-1.3 s a photo in one Python "
    "process): run with MODAMODA_BULK_500=1",
)
def test_a_drop_of_500_photos(stack: LocalStack) -> None:
    user = new_user(stack)
    tenant_id = user.api.me()["tenant_id"]
    grant(tenant_id, 500, f"test:bulk500:{tenant_id}")
    s3 = stack.client("s3")
    folder = "bulk-500"  # an unknown folder of the tenant: the batch is created implicitly
    prefix = f"drop/{tenant_id}/{folder}/"
    images = photos()
    names = [f"img-{i:04d}.jpg" for i in range(500)]
    manifest = "file,sku,output_format\n" + "".join(f"{n},SKU-{i:04d},jpeg\n" for i, n in enumerate(names))
    started = time.monotonic()
    s3.put_object(Bucket=DROP_BUCKET, Key=prefix + "manifest.csv", Body=manifest.encode())
    for i, name in enumerate(names):
        s3.put_object(Bucket=DROP_BUCKET, Key=prefix + name, Body=images[i % len(images)])
    for name in names[:10]:  # and ten of them once more
        s3.put_object(Bucket=DROP_BUCKET, Key=prefix + name, Body=images[0])
    batch = None
    while batch is None:
        found = user.api.request("GET", "/v1/batches")["items"]
        batch = next((b for b in found if b["name"] == folder), None)
        time.sleep(0.2)
    finished = wait_finished(user, batch["id"], timeout=1500)
    seconds = time.monotonic() - started
    stack.wait_idle(60)
    assert stack.pump_errors == []
    assert finished["status"] == "completed"
    assert finished["counts"]["total"] == 500
    assert finished["counts"]["succeeded"] == 500
    assert finished["credits_spent"] == 500
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = user.api.request("GET", f"/v1/batches/{batch['id']}/jobs", params=params)
        jobs += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(jobs) == 500
    assert {j["filename"] for j in jobs} == set(names)
    listing = s3.get_paginator("list_objects_v2").paginate(
        Bucket=RESULTS_BUCKET, Prefix=f"results/{tenant_id}/{batch['id']}/"
    )
    keys = {o["Key"].rsplit("/", 1)[-1] for page in listing for o in page.get("Contents", ())}
    assert keys == {f"SKU-{i:04d}-ghost.jpg" for i in range(500)} | {"report.csv", "report.json"}
    check_money(tenant_id, {j["id"] for j in jobs}, set())
    print(f"\n  500-photo batch finished in {seconds:.1f}s ({seconds / 500:.2f}s per photo)")
