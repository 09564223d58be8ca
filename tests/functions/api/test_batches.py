"""The batch routes: create, list, get, pre-signed uploads into the drop folder, seal, cancel, and the batch's jobs."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from functions.common import catalogs
from tests.functions.api.conftest import DROP
from tests.functions.api.test_handler import call


@pytest.fixture
def batch(user_pool: dict[str, str]) -> dict:
    status, body = call(
        "POST",
        "/v1/batches",
        body={"name": "Spring 2026", "defaults": {"mode": "on-model", "options": {"preset": "zalando"}}},
    )
    assert status == 201, body
    return body


def test_create_a_batch(batch: dict) -> None:
    assert batch["name"] == "Spring 2026"
    assert batch["status"] == "open"
    assert batch["sealed"] is False
    assert batch["defaults"]["mode"] == "on-model"
    assert batch["defaults"]["options"]["preset"] == "zalando"
    assert batch["defaults"]["options"]["pose_id"] == catalogs.default_pose()
    assert batch["defaults"]["priority"] == "normal"
    assert batch["counts"] == {
        "expected": None, "total": 0, "awaiting": 0, "queued": 0, "processing": 0, "succeeded": 0, "failed": 0,
        "rejected": 0, "cancelled": 0,
    }  # fmt: skip
    assert batch["credits_spent"] == 0
    assert batch["report"] is None
    assert batch["finished_at"] is None
    tenant = call("GET", "/v1/me")[1]["tenant_id"]
    assert batch["drop_prefix"] == f"drop/{tenant}/{batch['id']}/"


def test_a_batch_without_a_name_is_named_by_its_id(user_pool: dict[str, str]) -> None:
    status, body = call("POST", "/v1/batches", body={})
    assert status == 201
    assert body["name"] == body["id"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "bad\u0007name"},
        {"defaults": {"mode": "painting"}},
        {"defaults": {"options": {"preset": "ebay"}}},
        {"defaults": {"options": {"pose_id": "moonwalk"}}},
        {"defaults": {"priority": "urgent"}},
        {"unknown": 1},
    ],
)
def test_invalid_batch_requests_are_422(user_pool: dict[str, str], body: dict) -> None:
    status, answer = call("POST", "/v1/batches", body=body)
    assert status == 422
    assert answer["error"]["code"] == "validation_error"


def test_get_and_list_batches(user_pool: dict[str, str]) -> None:
    made = [call("POST", "/v1/batches", body={"name": f"b{i}"})[1]["id"] for i in range(5)]
    assert call("GET", f"/v1/batches/{made[0]}")[1]["name"] == "b0"
    seen, cursor = [], None
    while True:
        status, page = call("GET", "/v1/batches", query=f"limit=2{'&cursor=' + cursor if cursor else ''}")
        assert status == 200
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(made))
    assert call("GET", "/v1/batches", sub="someone-else")[1]["items"] == []
    assert call("GET", "/v1/batches/not-a-uuid")[0] == 404
    assert call("GET", "/v1/batches", query="cursor=garbage")[0] in {400, 422}


def test_uploads_are_pre_signed_posts_into_the_drop_folder(batch: dict) -> None:
    status, body = call(
        "POST",
        f"/v1/batches/{batch['id']}/uploads",
        body={"filename": "IMG 0001.jpg", "content_type": "image/jpeg"},
    )
    assert status == 201, body
    assert body["key"] == f"{batch['drop_prefix']}IMG 0001.jpg"
    fields = body["upload"]["fields"]
    assert fields["key"] == body["key"]
    assert fields["Content-Type"] == "image/jpeg"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert {"bucket": DROP} in policy["conditions"]
    assert ["content-length-range", 1, body["max_bytes"]] in policy["conditions"]
    again = call(
        "POST",
        f"/v1/batches/{batch['id']}/uploads",
        body={"filename": "IMG 0001.jpg", "content_type": "image/jpeg"},
    )
    assert again[0] == 201
    assert again[1]["key"] == body["key"]
    status, manifest = call(
        "POST",
        f"/v1/batches/{batch['id']}/uploads",
        body={"filename": "manifest.csv", "content_type": "text/csv"},
    )
    assert status == 201
    assert manifest["upload"]["fields"]["Content-Type"] == "text/csv"


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "manifest.json", "content_type": "text/csv"},
        {"filename": "manifest.csv", "content_type": "application/json"},
        {"filename": "notes.json", "content_type": "application/json"},
        {"filename": "../a.jpg", "content_type": "image/jpeg"},
        {"filename": "a/b.jpg", "content_type": "image/jpeg"},
        {"filename": ".hidden.jpg", "content_type": "image/jpeg"},
        {"filename": "a\nb.jpg", "content_type": "image/jpeg"},
        {"filename": "a.gif", "content_type": "image/gif"},
        {"filename": "a.jpg"},
    ],
)
def test_invalid_upload_requests_are_422(batch: dict, body: dict) -> None:
    status, answer = call("POST", f"/v1/batches/{batch['id']}/uploads", body=body)
    assert status == 422, answer


def test_seal_lists_the_folder_and_cancel_closes_the_batch(batch: dict) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    for name in ("a.jpg", "b.jpg", "manifest-notes.txt", ".DS_Store", "sub/c.jpg"):
        s3.put_object(Bucket=DROP, Key=batch["drop_prefix"] + name, Body=b"x")
    status, sealed = call("POST", f"/v1/batches/{batch['id']}/seal")
    assert status == 200
    assert sealed["status"] == "sealed"
    assert sealed["sealed"]
    assert sealed["counts"]["expected"] == 3
    assert sealed["counts"]["awaiting"] == 3
    assert call("POST", f"/v1/batches/{batch['id']}/seal")[1]["counts"]["expected"] == 3  # idempotent
    upload = {"filename": "late.jpg", "content_type": "image/jpeg"}
    status, refused = call("POST", f"/v1/batches/{batch['id']}/uploads", body=upload)
    assert (status, refused["error"]["code"]) == (409, "batch_sealed")
    status, cancelled = call("POST", f"/v1/batches/{batch['id']}/cancel")
    assert status == 200
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None  # nothing was running
    assert cancelled["report"] is not None
    assert cancelled["report"]["csv_url"]
    status, refused = call("POST", f"/v1/batches/{batch['id']}/uploads", body={**upload, "filename": "a.jpg"})
    assert (status, refused["error"]["code"]) == (409, "batch_closed")


def test_batch_jobs_route(batch: dict) -> None:
    status, page = call("GET", f"/v1/batches/{batch['id']}/jobs", query="status=rejected,cancelled&limit=5")
    assert status == 200
    assert page == {"items": [], "next_cursor": None}
    status, answer = call("GET", f"/v1/batches/{batch['id']}/jobs", query="status=lost")
    assert status == 422
    assert answer["error"]["code"] == "validation_error"
    assert call("GET", f"/v1/batches/{batch['id']}/jobs", sub="intruder")[0] == 404
