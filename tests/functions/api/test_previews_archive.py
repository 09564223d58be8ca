"""The job's preview links (thumbnail_url, original_url) in the list and the detail, previews deleted with the job,
and ``POST /v1/jobs/archive`` (one ZIP of the caller's succeeded results; 404 for ids not theirs, 409 naming how
many are not ready)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import psycopg
import pytest

from tests.functions.api.conftest import RESULTS, finish_job
from tests.functions.api.test_handler import call
from tests.functions.api.test_jobs import new_job


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def key_of(url: str) -> str:
    """The object key a pre-signed URL (virtual-hosted or path style) points at."""
    parts = urlsplit(url)
    path = unquote(parts.path.lstrip("/"))
    return path.split("/", 1)[1] if parts.hostname == "s3.amazonaws.com" else path


def with_previews(
    conn: psycopg.Connection, job_id: str, *, thumb: bool = True, original: bool = True
) -> None:
    """Previews as the pipeline records them (previews.thumb_key / original_key)."""
    row = conn.execute("SELECT tenant_id FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    base = f"previews/{row['tenant_id']}/{job_id}/"
    for name, wanted in (("thumb", thumb), ("original", original)):
        if wanted:
            s3().put_object(
                Bucket=RESULTS, Key=f"{base}{name}.webp", Body=b"RIFF webp", ContentType="image/webp"
            )
    conn.execute(
        "UPDATE jobs SET thumb_key = %s, preview_key = %s WHERE id = %s",
        (f"{base}thumb.webp" if thumb else None, f"{base}original.webp" if original else None, job_id),
    )


# ---- preview links ----------------------------------------------------------------------------------------------


def test_detail_and_list_carry_short_lived_inline_preview_links(
    api_env: None, conn: psycopg.Connection
) -> None:
    job_id = new_job()["job_id"]
    finish_job(conn, job_id)
    with_previews(conn, job_id)
    status, job = call("GET", f"/v1/jobs/{job_id}")
    assert status == 200
    assert key_of(job["thumbnail_url"]).endswith(f"/{job_id}/thumb.webp")
    assert key_of(job["original_url"]).endswith(f"/{job_id}/original.webp")
    for url in (job["thumbnail_url"], job["original_url"]):
        query = parse_qs(urlsplit(url).query)
        assert "response-content-disposition" not in query  # inline: an <img> shows it
        assert query.get("X-Amz-Expires") == ["900"] or query.get("Expires")
    listed = next(item for item in call("GET", "/v1/jobs")[1]["items"] if item["id"] == job_id)
    assert key_of(listed["thumbnail_url"]) == key_of(job["thumbnail_url"])
    assert key_of(listed["original_url"]) == key_of(job["original_url"])


def test_jobs_without_previews_have_none(api_env: None, conn: psycopg.Connection) -> None:
    old = new_job()["job_id"]
    finish_job(conn, old)  # a job from before previews: no keys recorded
    job = call("GET", f"/v1/jobs/{old}")[1]
    assert job["result_url"]
    assert job["thumbnail_url"] is None
    assert job["original_url"] is None
    waiting = call("GET", f"/v1/jobs/{new_job()['job_id']}")[1]
    assert waiting["thumbnail_url"] is None
    assert waiting["original_url"] is None


def test_a_refused_job_shows_its_photo_but_no_thumbnail(api_env: None, conn: psycopg.Connection) -> None:
    job_id = new_job()["job_id"]
    finish_job(conn, job_id, "rejected")
    with_previews(conn, job_id, thumb=False)
    job = call("GET", f"/v1/jobs/{job_id}")[1]
    assert job["thumbnail_url"] is None
    assert key_of(job["original_url"]).endswith(f"/{job_id}/original.webp")


def test_previews_are_not_another_tenants(api_env: None, conn: psycopg.Connection) -> None:
    job_id = new_job(sub="user-a")["job_id"]
    finish_job(conn, job_id)
    with_previews(conn, job_id)
    assert call("GET", f"/v1/jobs/{job_id}", sub="user-b")[0] == 404
    assert all(item["id"] != job_id for item in call("GET", "/v1/jobs", sub="user-b")[1]["items"])


def test_deleting_a_job_deletes_its_previews(api_env: None, conn: psycopg.Connection) -> None:
    job_id = new_job()["job_id"]
    finish_job(conn, job_id)
    with_previews(conn, job_id)
    assert call("DELETE", f"/v1/jobs/{job_id}")[0] == 204
    assert s3().list_objects_v2(Bucket=RESULTS, Prefix="previews/").get("KeyCount", 0) == 0


# ---- download all ---------------------------------------------------------------------------------------------


def succeeded(conn: psycopg.Connection, filename: str, body: bytes, sub: str = "user-a") -> str:
    job_id = str(new_job(filename, sub=sub)["job_id"])
    finish_job(conn, job_id, body=body)
    return job_id


def read_zip(url: str) -> zipfile.ZipFile:
    data = s3().get_object(Bucket=RESULTS, Key=key_of(url))["Body"].read()
    return zipfile.ZipFile(io.BytesIO(data))


def test_archive_of_two_jobs(api_env: None, conn: psycopg.Connection) -> None:
    first = succeeded(conn, "shirt.jpg", b"\x89PNG first")
    second = succeeded(conn, "shirt.jpg", b"\x89PNG second")  # the same download name: numbered
    third = succeeded(conn, "coat.png", b"\x89PNG third")
    before = datetime.now(UTC)
    status, body = call("POST", "/v1/jobs/archive", body={"job_ids": [first, second, third, first]})
    assert status == 201, body
    assert set(body) == {"url", "filename", "count", "bytes", "expires_at"}
    assert body["count"] == 3
    assert body["filename"] == f"modamoda-{before.date().isoformat()}-3-images.zip"
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(seconds=290) < expires < datetime.now(UTC) + timedelta(seconds=310)
    key = key_of(body["url"])
    tenant = conn.execute("SELECT tenant_id FROM jobs WHERE id = %s", (first,)).fetchone()["tenant_id"]
    assert key.startswith(f"archives/{tenant}/")
    assert key.endswith(".zip")
    disposition = parse_qs(urlsplit(body["url"]).query)["response-content-disposition"][0]
    assert disposition == f'attachment; filename="{body["filename"]}"'
    archive = read_zip(body["url"])
    assert archive.namelist() == ["shirt-ghost.png", "shirt-ghost (2).png", "coat-ghost.png"]
    assert [archive.read(n) for n in archive.namelist()] == [
        b"\x89PNG first",
        b"\x89PNG second",
        b"\x89PNG third",
    ]
    assert body["bytes"] == s3().head_object(Bucket=RESULTS, Key=key)["ContentLength"]


def test_another_tenants_job_is_not_found_like_an_unknown_one(
    api_env: None, conn: psycopg.Connection
) -> None:
    mine = succeeded(conn, "shirt.jpg", b"\x89PNG mine")
    theirs = succeeded(conn, "secret.jpg", b"\x89PNG theirs", sub="user-b")
    unknown = "00000000-0000-4000-8000-000000000000"
    answers = [
        call("POST", "/v1/jobs/archive", body={"job_ids": [mine, other]}) for other in (theirs, unknown)
    ]
    assert [status for status, _ in answers] == [404, 404]
    (_, foreign), (_, missing) = answers
    assert foreign["error"]["code"] == missing["error"]["code"] == "not_found"
    assert foreign["error"]["message"] == missing["error"]["message"]
    assert foreign["error"]["message"].startswith("1 of the chosen images was not found")
    assert foreign["error"]["details"] == {"job_ids": [theirs]}
    assert call("POST", "/v1/jobs/archive", body={"job_ids": ["not-an-id"]})[0] == 404
    assert s3().list_objects_v2(Bucket=RESULTS, Prefix="archives/").get("KeyCount", 0) == 0


def test_jobs_not_succeeded_are_a_conflict_that_says_how_many(
    api_env: None, conn: psycopg.Connection
) -> None:
    done = succeeded(conn, "shirt.jpg", b"\x89PNG done")
    failed = str(new_job("a.jpg")["job_id"])
    finish_job(conn, failed, "failed")
    waiting = str(new_job("b.jpg")["job_id"])
    status, body = call("POST", "/v1/jobs/archive", body={"job_ids": [done, failed, waiting]})
    assert status == 409
    assert body["error"]["code"] == "no_result"
    assert body["error"]["message"].startswith("2 of the chosen photos have no finished image yet")
    assert sorted(body["error"]["details"]["job_ids"]) == sorted([failed, waiting])
    for word in ("Error", "S3", "{", "/"):
        assert word not in body["error"]["message"]


def test_deleted_jobs_cannot_be_archived(api_env: None, conn: psycopg.Connection) -> None:
    job_id = succeeded(conn, "shirt.jpg", b"\x89PNG x")
    assert call("DELETE", f"/v1/jobs/{job_id}")[0] == 204
    assert call("POST", "/v1/jobs/archive", body={"job_ids": [job_id]})[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        {"job_ids": []},
        {"job_ids": [f"id-{i}" for i in range(201)]},
        {},
        {"job_ids": "x"},
        {"job_ids": ["a"], "x": 1},
    ],
)
def test_archive_request_is_validated(api_env: None, body: dict[str, Any]) -> None:
    status, answer = call("POST", "/v1/jobs/archive", body=body)
    assert status == 422
    assert answer["error"]["code"] == "validation_error"


def test_archive_needs_a_caller(api_env: None) -> None:
    assert call("POST", "/v1/jobs/archive", body={"job_ids": ["x"]}, claims={})[0] in {401, 403}
