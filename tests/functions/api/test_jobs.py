"""Job routes of API v1: creation with priority, the history with filters (keyset pages stay correct under
filters), progress and result URLs, download links, and deletion (S3 objects gone, 409 while processing, a late
upload ignored)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import psycopg
import pytest

from functions.common import db, jobs, pipeline
from tests.conftest import create_job, load_event
from tests.functions.api.conftest import RESULTS, UPLOADS, finish_job
from tests.functions.api.test_handler import call

DEFINITION = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}}}


def new_job(filename: str = "shirt.jpg", sub: str = "user-a", **extra: Any) -> dict[str, Any]:
    status, created = call(
        "POST", "/v1/jobs", sub=sub, body={"filename": filename, "content_type": "image/jpeg", **extra}
    )
    assert status == 201, created
    return created


def set_created(conn: psycopg.Connection, job_id: str, when: str) -> None:
    conn.execute("UPDATE jobs SET created_at = %s WHERE id = %s", (when, job_id))


def ids(query: str = "", sub: str = "user-a", limit: int = 100) -> list[str]:
    """Every job id the list returns for ``query``, following the cursor page by page (``limit`` per page)."""
    seen: list[str] = []
    cursor = None
    while True:
        parts = [f"limit={limit}", *([query] if query else []), *([f"cursor={cursor}"] if cursor else [])]
        status, page = call("GET", "/v1/jobs", sub=sub, query="&".join(parts))
        assert status == 200, page
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


# ---- creation ---------------------------------------------------------------------------------------------------


def test_post_jobs_returns_the_job_and_its_upload(api_env: None) -> None:
    created = new_job(priority="low", mode="ghost")
    job = created["job"]
    assert job["id"] == created["job_id"]
    assert job["status"] == "awaiting_upload"
    assert job["priority"] == "low"
    assert job["progress"] == {
        "stage": "upload",
        "label": "Waiting for the upload",
        "percent": 0,
        "step": 1,
        "steps": 5,
    }
    assert job["result_url"] is None
    assert created["upload"]["fields"]["key"].endswith(f"/{created['job_id']}/shirt.jpg")
    assert call("GET", f"/v1/jobs/{created['job_id']}")[1]["priority"] == "low"


def test_uploads_is_the_same_operation_and_priority_defaults_to_normal(api_env: None) -> None:
    status, created = call("POST", "/v1/uploads", body={"filename": "a.jpg", "content_type": "image/jpeg"})
    assert status == 201
    assert created["job"]["priority"] == "normal"
    assert set(created) == {"job_id", "job", "upload", "expires_in", "max_bytes"}


def test_unknown_priority_is_refused(api_env: None) -> None:
    status, body = call(
        "POST", "/v1/jobs", body={"filename": "a.jpg", "content_type": "image/jpeg", "priority": "urgent"}
    )
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert any(d["loc"][-1] == "priority" for d in body["error"]["details"])


@pytest.mark.parametrize(
    ("priority", "lane", "queue_wait"), [("normal", "interactive", 1800), ("low", "bulk", 86_400)]
)
def test_priority_chooses_the_lane_and_its_wait(
    api_env: None, monkeypatch: pytest.MonkeyPatch, priority: str, lane: str, queue_wait: int
) -> None:
    """A single job waits in the interactive lane (``QUEUE_WAIT_SECONDS``); ``priority: low`` puts it in the bulk
    lane, which may wait ``BATCH_QUEUE_WAIT_SECONDS``; either then has the inference timeout."""
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="job", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", "900")
    monkeypatch.setenv("QUEUE_WAIT_SECONDS", "1800")
    monkeypatch.delenv("BATCH_QUEUE_WAIT_SECONDS", raising=False)
    created = new_job(priority=priority)
    assert created["job"]["lane"] == lane
    assert pipeline.start_workflow(sfn, upload_detail(created)) is not None
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    payload = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert (payload["queue_wait_seconds"], payload["inference_timeout_seconds"]) == (
        queue_wait,
        queue_wait + 900,
    )


def upload_detail(created: dict[str, Any]) -> dict[str, Any]:
    return {
        "bucket": {"name": UPLOADS},
        "object": {"key": created["upload"]["fields"]["key"], "version-id": "v1"},
    }


# ---- history filters --------------------------------------------------------------------------------------------


@pytest.fixture
def history(api_env: None, conn: psycopg.Connection) -> dict[str, str]:
    """Seven jobs of user-a across November 2026 with different modes, statuses and names (and one of user-b)."""
    jobs = {}
    spec = [
        ("red_shirt.jpg", "ghost", "succeeded", "2026-11-01T09:00:00Z"),
        ("blue_shirt.jpg", "on-model", "failed", "2026-11-05T10:00:00Z"),
        ("dress.jpg", "ghost", "rejected", "2026-11-10T11:00:00Z"),
        ("100%_cotton.jpg", "ghost", "succeeded", "2026-11-15T12:00:00Z"),
        ("shirt_v2.jpg", "on-model", "succeeded", "2026-11-20T13:00:00Z"),
        ("jacket.jpg", "ghost", "awaiting_upload", "2026-11-30T12:00:00Z"),
        ("shirtless.jpg", "ghost", "processing", "2026-11-30T23:59:59Z"),
    ]
    for filename, mode, status, when in spec:
        job_id = new_job(filename.replace("%", "_"), mode=mode)["job_id"]
        conn.execute("UPDATE jobs SET filename = %s WHERE id = %s", (filename, job_id))
        if status in {"succeeded", "failed", "rejected"}:
            finish_job(conn, job_id, status)
        elif status != "awaiting_upload":
            conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status, job_id))
        set_created(conn, job_id, when)
        jobs[filename] = job_id
    other = new_job("red_shirt.jpg", sub="user-b")["job_id"]
    set_created(conn, other, "2026-11-02T00:00:00Z")
    return jobs


def names(history: dict[str, str], found: list[str]) -> list[str]:
    by_id = {v: k for k, v in history.items()}
    return [by_id[i] for i in found]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (  # without a status filter, the job still waiting for its photo (jacket.jpg) is left out
            "",
            [
                "shirtless.jpg",
                "shirt_v2.jpg",
                "100%_cotton.jpg",
                "dress.jpg",
                "blue_shirt.jpg",
                "red_shirt.jpg",
            ],
        ),
        ("status=awaiting_upload", ["jacket.jpg"]),
        ("status=awaiting_upload,processing", ["shirtless.jpg", "jacket.jpg"]),
        ("mode=on-model", ["shirt_v2.jpg", "blue_shirt.jpg"]),
        ("status=succeeded", ["shirt_v2.jpg", "100%_cotton.jpg", "red_shirt.jpg"]),
        ("status=succeeded,failed", ["shirt_v2.jpg", "100%_cotton.jpg", "blue_shirt.jpg", "red_shirt.jpg"]),
        ("status=failed,%20rejected,", ["dress.jpg", "blue_shirt.jpg"]),
        ("mode=ghost&status=succeeded", ["100%_cotton.jpg", "red_shirt.jpg"]),
        (
            "created_after=2026-11-10",
            ["shirtless.jpg", "shirt_v2.jpg", "100%_cotton.jpg", "dress.jpg"],
        ),
        ("created_before=2026-11-09", ["blue_shirt.jpg", "red_shirt.jpg"]),
        ("created_before=2026-11-10", ["dress.jpg", "blue_shirt.jpg", "red_shirt.jpg"]),
        # a bare date as the upper bound includes that whole day
        ("created_after=2026-11-30&created_before=2026-11-30", ["shirtless.jpg"]),
        (
            "created_before=2026-11-30T12:00:00Z",
            ["shirt_v2.jpg", "100%_cotton.jpg", "dress.jpg", "blue_shirt.jpg", "red_shirt.jpg"],
        ),
        (
            "created_after=2026-11-05T10:00:00Z&created_before=2026-11-15T12:00:00.000001Z",
            ["100%_cotton.jpg", "dress.jpg", "blue_shirt.jpg"],
        ),
        (
            "created_after=2026-11-05T11:00:00%2B01:00",
            ["shirtless.jpg", "shirt_v2.jpg", "100%_cotton.jpg", "dress.jpg", "blue_shirt.jpg"],
        ),
        ("q=shirt", ["shirtless.jpg", "shirt_v2.jpg", "blue_shirt.jpg", "red_shirt.jpg"]),
        ("q=SHIRT_", ["shirt_v2.jpg"]),  # "_" is literal, and the search ignores case
        ("q=%25", ["100%_cotton.jpg"]),  # "%" is literal
        ("q=_", ["shirt_v2.jpg", "100%_cotton.jpg", "blue_shirt.jpg", "red_shirt.jpg"]),
        ("q=nothing", []),
        (
            "q=shirt&mode=ghost&status=succeeded,processing&created_after=2026-11-01",
            ["shirtless.jpg", "red_shirt.jpg"],
        ),
    ],
)
def test_history_filters(history: dict[str, str], query: str, expected: list[str]) -> None:
    assert names(history, ids(query)) == expected


@pytest.mark.parametrize("limit", [1, 2, 3])
@pytest.mark.parametrize(
    "query", ["status=succeeded,failed,rejected", "mode=ghost", "q=shirt", "created_after=2026-11-05"]
)
def test_pages_under_filters_neither_skip_nor_repeat(history: dict[str, str], query: str, limit: int) -> None:
    assert ids(query, limit=limit) == ids(query, limit=100)


def test_pages_stay_correct_when_jobs_share_a_timestamp(api_env: None, conn: psycopg.Connection) -> None:
    made = [new_job(f"same{i}.jpg")["job_id"] for i in range(5)]
    for job_id in made:
        set_created(conn, job_id, "2026-11-11T11:11:11Z")
    query = "q=same&status=awaiting_upload"  # still waiting for their photos: listed when asked for
    assert sorted(ids(query, limit=2)) == sorted(made)
    assert ids(query, limit=2) == sorted(made, reverse=True)  # ties broken by id, newest first


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("status=succeeded,bogus", "status"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2026-13-01", "created_after"),
        ("created_before=2026-11-31", "created_before"),
        ("created_before=1700000000", "created_before"),
        ("created_after=2026-11-30&created_before=2026-11-01", "created_before"),
        ("mode=video", "mode"),
        ("q=" + "x" * 101, "q"),
    ],
)
def test_bad_filters_are_a_422_with_details(api_env: None, query: str, field: str) -> None:
    status, body = call("GET", "/v1/jobs", query=query)
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert any(d["loc"][-1] == field for d in body["error"]["details"]), body


def test_every_bad_filter_is_reported_at_once(api_env: None) -> None:
    status, body = call("GET", "/v1/jobs", query="status=nope&created_after=soon&created_before=later")
    assert status == 422
    assert {d["loc"][-1] for d in body["error"]["details"]} == {"status", "created_after", "created_before"}


# ---- views: progress and result URLs ---------------------------------------------------------------------------


def test_succeeded_jobs_have_an_inline_result_url_in_lists_too(history: dict[str, str]) -> None:
    _, page = call("GET", "/v1/jobs", query="limit=100")
    by_name = {item["filename"]: item for item in page["items"]}
    done = by_name["red_shirt.jpg"]
    assert done["status"] == "succeeded"
    assert done["progress"]["stage"] == "done"
    assert done["progress"]["percent"] == 100
    url = urlsplit(done["result_url"])
    assert url.path.endswith(f"/results/{call('GET', '/v1/me')[1]['tenant_id']}/{done['id']}.png")
    assert "response-content-disposition" not in parse_qs(url.query)  # inline: usable as a thumbnail
    assert by_name["blue_shirt.jpg"]["result_url"] is None
    assert by_name["shirtless.jpg"]["progress"]["stage"] == "inference"
    assert (
        call("GET", f"/v1/jobs/{done['id']}")[1]["result_url"].split("?")[0]
        == done["result_url"].split("?")[0]
    )


def test_download_is_a_short_lived_attachment(api_env: None, conn: psycopg.Connection) -> None:
    job_id = new_job("My_Shirt.jpg", mode="on-model")["job_id"]
    status, body = call("GET", f"/v1/jobs/{job_id}/download")
    assert status == 409
    assert body["error"]["code"] == "no_result"
    finish_job(conn, job_id, body=b"the result")
    status, link = call("GET", f"/v1/jobs/{job_id}/download")
    assert status == 200
    assert link["filename"] == "My_Shirt-on-model.png"
    assert link["expires_in"] == 300
    query = parse_qs(urlsplit(link["url"]).query)
    assert query["response-content-disposition"] == ['attachment; filename="My_Shirt-on-model.png"']
    assert int(query.get("X-Amz-Expires", query.get("Expires", ["0"]))[0]) > 0


# ---- deletion ---------------------------------------------------------------------------------------------------


def versions(bucket: str, key: str) -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [
        v["VersionId"]
        for v in (*listing.get("Versions", []), *listing.get("DeleteMarkers", []))
        if v["Key"] == key
    ]


def test_delete_removes_every_version_of_the_photo_and_the_result(
    api_env: None, conn: psycopg.Connection
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})
    created = new_job("shirt.jpg")
    job_id, key = created["job_id"], created["upload"]["fields"]["key"]
    for body in (b"first", b"second"):
        s3.put_object(Bucket=UPLOADS, Key=key, Body=body)
    s3.delete_object(Bucket=UPLOADS, Key=key)  # a delete marker too
    s3.put_object(Bucket=UPLOADS, Key=key + ".keep", Body=b"another key with the same prefix")
    result_key = finish_job(conn, job_id)
    assert len(versions(UPLOADS, key)) == 3

    status, body = call("DELETE", f"/v1/jobs/{job_id}")
    assert (status, body) == (204, {})
    assert versions(UPLOADS, key) == []
    assert versions(UPLOADS, key + ".keep") != []
    assert s3.list_objects_v2(Bucket=RESULTS, Prefix=str(result_key)).get("KeyCount", 0) == 0
    assert call("GET", f"/v1/jobs/{job_id}")[0] == 404
    assert call("GET", f"/v1/jobs/{job_id}/download")[0] == 404
    assert job_id not in ids()
    assert call("DELETE", f"/v1/jobs/{job_id}")[0] == 404  # already gone
    row = conn.execute("SELECT deleted_at, status FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row["deleted_at"] is not None
    assert row["status"] == "succeeded"


def test_delete_in_an_unversioned_bucket(api_env: None, conn: psycopg.Connection) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    created = new_job("shirt.jpg")
    s3.put_object(Bucket=UPLOADS, Key=created["upload"]["fields"]["key"], Body=b"photo")
    finish_job(conn, created["job_id"], "rejected")
    assert call("DELETE", f"/v1/jobs/{created['job_id']}")[0] == 204
    assert s3.list_objects_v2(Bucket=UPLOADS).get("KeyCount", 0) == 0


@pytest.mark.parametrize("status", ["queued", "validated", "processing"])
def test_jobs_in_progress_cannot_be_deleted(api_env: None, conn: psycopg.Connection, status: str) -> None:
    created = new_job()
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=UPLOADS, Key=created["upload"]["fields"]["key"], Body=b"photo"
    )
    conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status, created["job_id"]))
    code, body = call("DELETE", f"/v1/jobs/{created['job_id']}")
    assert code == 409
    assert body["error"]["code"] == "job_in_progress"
    assert call("GET", f"/v1/jobs/{created['job_id']}")[1]["status"] == status
    assert versions(UPLOADS, created["upload"]["fields"]["key"]) != []


def test_an_upload_after_delete_is_ignored(api_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.start_workflow import handler as start_handler
    from tests.conftest import FakeLambdaContext

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="job", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    _, me = call("GET", "/v1/me")
    created = new_job()
    assert call("DELETE", f"/v1/jobs/{created['job_id']}")[0] == 204
    event = load_event("sqs_s3_object_created.json", TENANT=me["tenant_id"], JOB=created["job_id"])
    assert start_handler.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []


def test_deleted_jobs_cannot_be_claimed(database_url: str) -> None:
    tenant_id, job_id = create_job(sub="alice")
    with db.transaction(tenant_id) as tx:
        jobs.mark_deleted(tx, job_id)
        key = jobs.load(tx, job_id)["source_key"]
        assert jobs.claim_upload(tx, job_id, tenant_id, key, "v1", "exec") is None


# ---- jobs whose photo never arrived: a fresh upload URL, expiry, the history ------------------------------------


def post_policy(created: dict[str, Any]) -> dict[str, Any]:
    """The decoded POST policy of a pre-signed upload (its expiry and conditions)."""
    import base64

    return dict(json.loads(base64.b64decode(created["upload"]["fields"]["policy"])))


def test_a_waiting_job_gets_a_fresh_upload_with_the_same_constraints(
    api_env: None, conn: psycopg.Connection
) -> None:
    created = new_job("shirt.png", content_type="image/png")
    job_id = created["job_id"]
    conn.execute("UPDATE jobs SET upload_requested_at = now() - interval '23 hours' WHERE id = %s", (job_id,))
    status, renewed = call("POST", f"/v1/jobs/{job_id}/upload")
    assert status == 200, renewed
    assert set(renewed) == {"job_id", "job", "upload", "expires_in", "max_bytes"}
    assert renewed["job_id"] == job_id
    assert renewed["job"]["status"] == "awaiting_upload"
    assert (renewed["expires_in"], renewed["max_bytes"]) == (created["expires_in"], created["max_bytes"])
    fields = renewed["upload"]["fields"]
    assert fields["key"] == created["upload"]["fields"]["key"]
    assert fields["Content-Type"] == "image/png"
    conditions = post_policy(renewed)["conditions"]
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1, created["max_bytes"]] in conditions
    assert post_policy(renewed)["expiration"] >= post_policy(created)["expiration"]
    waited = conn.execute(
        "SELECT now() - upload_requested_at AS waited FROM jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert waited["waited"].total_seconds() < 60  # the 24-hour wait starts again


def test_a_fresh_upload_is_refused_unless_the_job_still_waits(
    api_env: None, conn: psycopg.Connection
) -> None:
    done = new_job("done.jpg")["job_id"]
    finish_job(conn, done)
    status, body = call("POST", f"/v1/jobs/{done}/upload")
    assert status == 409
    assert body["error"]["code"] == "not_awaiting_upload"
    assert body["error"]["message"].startswith(f"job {done} is succeeded: its photo was received already")

    expired = new_job("late.jpg")["job_id"]
    conn.execute(
        "UPDATE jobs SET upload_requested_at = now() - interval '25 hours' WHERE id = %s", (expired,)
    )
    assert pipeline.sweep_expired_uploads() == 1
    status, body = call("POST", f"/v1/jobs/{expired}/upload")
    assert status == 409
    assert body["error"]["code"] == "not_awaiting_upload"
    assert "was not uploaded in time" in body["error"]["message"]

    waiting = new_job("waiting.jpg")["job_id"]
    assert call("POST", f"/v1/jobs/{waiting}/upload", sub="user-b")[0] == 404  # another tenant's job
    assert call("POST", f"/v1/jobs/{waiting}/upload")[0] == 200


def test_jobs_whose_photo_never_arrived_are_out_of_the_default_history(
    api_env: None, conn: psycopg.Connection
) -> None:
    done = new_job("done.jpg")["job_id"]
    finish_job(conn, done)
    waiting = new_job("waiting.jpg")["job_id"]
    expired = new_job("expired.jpg")["job_id"]
    conn.execute(
        "UPDATE jobs SET upload_requested_at = now() - interval '25 hours' WHERE id = %s", (expired,)
    )
    assert pipeline.sweep_expired_uploads() == 1
    assert ids() == [done]
    assert ids("status=awaiting_upload") == [waiting]
    assert ids("status=cancelled") == [expired]  # a status filter lists what it names
    assert call("GET", f"/v1/jobs/{expired}")[1]["error"]["code"] == "upload_expired"
