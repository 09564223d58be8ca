"""Re-render and retry (POST /v1/jobs/{job_id}/rerender and /retry): a new job on the stored photo, copied
server-side to the new job's own key (no upload), whose copy event starts it like an upload; the source is
recorded; refusals come before anything is created (404 for others' jobs, 409 when the photo is gone or the job
cannot be retried, 422 for options the preset or the deployment does not allow)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import psycopg
import pytest

from functions.common import pipeline, storage
from tests.functions.api.conftest import DROP, UPLOADS, finish_job
from tests.functions.api.test_handler import call

PHOTO = b"\xff\xd8\xff\xe0 a stored garment photo"
DEFINITION = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": True}}}


@pytest.fixture
def sfn(api_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Versioned uploads (as deployed) and a state machine that only waits: start-workflow really starts jobs."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})
    client = boto3.client("stepfunctions", region_name="us-east-1")
    arn = client.create_state_machine(
        name="job", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", arn)
    return client


def object_created(sfn: Any, bucket: str, key: str, version: str | None) -> str | None:
    """What S3's "Object Created" event (EventBridge → start queue) makes start-workflow do."""
    return pipeline.start_workflow(
        sfn, {"bucket": {"name": bucket}, "object": {"key": key, "version-id": version}}
    )


def processed(
    sfn: Any, conn: psycopg.Connection, status: str = "succeeded", sub: str = "user-a", **body: Any
) -> dict[str, Any]:
    """A job whose photo was uploaded and that then ended ``status``: its view."""
    code, created = call(
        "POST", "/v1/jobs", sub=sub, body={"filename": "shirt.jpg", "content_type": "image/jpeg", **body}
    )
    assert code == 201, created
    key = created["upload"]["fields"]["key"]
    version = boto3.client("s3").put_object(Bucket=UPLOADS, Key=key, Body=PHOTO)["VersionId"]
    assert object_created(sfn, UPLOADS, key, version) is not None
    finish_job(conn, created["job_id"], status)
    return dict(call("GET", f"/v1/jobs/{created['job_id']}", sub=sub)[1])


def stored_key(conn: psycopg.Connection, job_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT source_bucket, source_key, source_version, source_job_id, status FROM jobs WHERE id = %s",
        (job_id,),
    ).fetchone()
    assert row is not None
    return dict(row)


def unfinished(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM jobs WHERE deleted_at IS NULL AND status <> ALL(%s)",
        (["succeeded", "failed", "rejected", "cancelled"],),
    ).fetchone()
    assert row is not None
    return int(row["n"])


def test_rerender_copies_the_stored_photo_and_its_event_starts_the_new_job(
    sfn: Any, conn: psycopg.Connection
) -> None:
    source = processed(sfn, conn, options={"preset": "zalando", "shadow": "drop"}, priority="low")
    status, body = call(
        "POST", f"/v1/jobs/{source['id']}/rerender", body={"options": {"background": "#eeeeee"}}
    )
    assert status == 201, body
    assert set(body) == {"job_id", "job"}
    job = body["job"]
    assert job["id"] == body["job_id"] != source["id"]
    assert job["source_job_id"] == source["id"]
    assert job["status"] == "awaiting_upload"
    assert job["filename"] == "shirt.jpg"
    assert job["mode"] == "ghost"
    assert job["priority"] == "low"
    # the options named change; the others stay as the source had them
    assert job["options"] == {**source["options"], "background": "#eeeeee"}
    assert job["options"]["preset"] == "zalando"
    assert job["options"]["shadow"] == "drop"

    new = stored_key(conn, body["job_id"])
    assert new["source_bucket"] == UPLOADS
    assert new["source_key"].endswith(f"/{body['job_id']}/shirt.jpg")
    copied = boto3.client("s3").get_object(Bucket=UPLOADS, Key=new["source_key"])
    assert copied["Body"].read() == PHOTO
    # the copy's "Object Created" event starts the job as an upload's would, once per object version
    name = object_created(sfn, UPLOADS, new["source_key"], copied["VersionId"])
    assert name == pipeline.execution_name(body["job_id"], UPLOADS, new["source_key"], copied["VersionId"])
    assert object_created(sfn, UPLOADS, new["source_key"], copied["VersionId"]) == name  # replay: same name
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 2  # the source's and this one
    assert call("GET", f"/v1/jobs/{body['job_id']}")[1]["status"] == "queued"
    assert call("GET", f"/v1/jobs/{source['id']}")[1]["source_job_id"] is None


def test_rerender_can_change_mode_and_priority(sfn: Any, conn: psycopg.Connection) -> None:
    source = processed(sfn, conn)
    status, body = call(
        "POST", f"/v1/jobs/{source['id']}/rerender", body={"mode": "on-model", "priority": "low"}
    )
    assert status == 201, body
    assert body["job"]["mode"] == "on-model"
    assert body["job"]["priority"] == "low"
    assert body["job"]["options"]["pose_id"]  # on-model always has a pose, as POST /v1/jobs gives one


@pytest.mark.parametrize("request_body", [{}, None])
def test_an_empty_or_missing_body_rerenders_as_it_was(
    sfn: Any, conn: psycopg.Connection, request_body: dict[str, Any] | None
) -> None:
    source = processed(sfn, conn, options={"preset": "shopify"})
    status, body = call("POST", f"/v1/jobs/{source['id']}/rerender", body=request_body)
    assert status == 201, body
    assert body["job"]["options"] == source["options"]


def test_the_marketplace_rule_applies_to_the_merged_options(sfn: Any, conn: psycopg.Connection) -> None:
    source = processed(sfn, conn, options={"preset": "amazon"})
    before = unfinished(conn)
    status, body = call(
        "POST", f"/v1/jobs/{source['id']}/rerender", body={"options": {"background": "#f5f5dc"}}
    )
    assert status == 422, body
    assert body["error"]["code"] == "preset_background"
    assert body["error"]["message"].startswith("Amazon asks for a pure white background")
    assert unfinished(conn) == before  # nothing created
    # naming both in the body is refused by the request check itself, with the same code
    status, body = call(
        "POST",
        f"/v1/jobs/{source['id']}/rerender",
        body={"options": {"preset": "amazon", "background": "transparent"}},
    )
    assert (status, body["error"]["code"]) == (422, "preset_background")
    # choosing another preset for a coloured background is fine
    status, body = call(
        "POST",
        f"/v1/jobs/{source['id']}/rerender",
        body={"options": {"preset": "square", "background": "#f5f5dc"}},
    )
    assert status == 201, body


def test_other_invalid_options_are_a_validation_error(sfn: Any, conn: psycopg.Connection) -> None:
    source = processed(sfn, conn, options={"output_format": "jpeg"})
    status, body = call(
        "POST", f"/v1/jobs/{source['id']}/rerender", body={"options": {"background": "transparent"}}
    )
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"][0]["loc"][:2] == ["body", "options"]


def test_on_model_is_refused_where_it_cannot_run(
    sfn: Any, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = processed(sfn, conn)
    monkeypatch.setenv("ON_MODEL_AVAILABLE", "false")
    status, body = call("POST", f"/v1/jobs/{source['id']}/rerender", body={"mode": "on-model"})
    assert (status, body["error"]["code"]) == (422, "on_model_unavailable")


@pytest.mark.parametrize("route", ["rerender", "retry"])
def test_another_tenants_or_an_unknown_job_is_not_found(
    sfn: Any, conn: psycopg.Connection, route: str
) -> None:
    source = processed(sfn, conn, status="failed", sub="user-b")
    for job_id in (source["id"], "5d0c1c34-6f55-4f5b-9a3e-0d6c3d1b2a10", "not-a-uuid"):
        status, body = call("POST", f"/v1/jobs/{job_id}/{route}", sub="user-a", body={})
        assert (status, body["error"]["code"]) == (404, "not_found"), job_id


@pytest.mark.parametrize("route", ["rerender", "retry"])
def test_a_deleted_job_has_no_original(sfn: Any, conn: psycopg.Connection, route: str) -> None:
    source = processed(sfn, conn, status="failed")
    assert call("DELETE", f"/v1/jobs/{source['id']}")[0] == 204
    status, body = call("POST", f"/v1/jobs/{source['id']}/{route}", body={})
    assert (status, body["error"]["code"]) == (409, "original_unavailable")
    assert "Upload the photo again" in body["error"]["message"]


def test_a_job_whose_photo_never_arrived_has_no_original(sfn: Any) -> None:
    status, created = call("POST", "/v1/jobs", body={"filename": "a.jpg", "content_type": "image/jpeg"})
    assert status == 201
    status, body = call("POST", f"/v1/jobs/{created['job_id']}/rerender", body={})
    assert (status, body["error"]["code"]) == (409, "original_unavailable")


def test_a_photo_removed_from_storage_is_unavailable(sfn: Any, conn: psycopg.Connection) -> None:
    source = processed(sfn, conn)
    where = stored_key(conn, source["id"])
    storage.delete_object_versions(boto3.client("s3"), where["source_bucket"], where["source_key"])
    before = unfinished(conn)
    status, body = call("POST", f"/v1/jobs/{source['id']}/rerender", body={})
    assert (status, body["error"]["code"]) == (409, "original_unavailable")
    assert unfinished(conn) == before


def test_a_failed_copy_leaves_no_job_behind(
    sfn: Any, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.common.errors import NotFound

    source = processed(sfn, conn)
    before = unfinished(conn)

    def gone(*args: Any) -> None:
        raise NotFound("the version vanished")

    monkeypatch.setattr(storage, "copy_version", gone)
    status, body = call("POST", f"/v1/jobs/{source['id']}/rerender", body={})
    assert (status, body["error"]["code"]) == (409, "original_unavailable")

    def broken(*args: Any) -> None:
        raise RuntimeError("S3 is down")

    monkeypatch.setattr(storage, "copy_version", broken)
    status, body = call("POST", f"/v1/jobs/{source['id']}/rerender", body={})
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert unfinished(conn) == before  # both new jobs were removed again
    assert call("GET", "/v1/jobs", query="status=awaiting_upload")[1]["items"] == []


@pytest.mark.parametrize("ended", ["failed", "rejected", "cancelled"])
def test_retry_runs_an_unfinished_job_again_as_it_was(sfn: Any, conn: psycopg.Connection, ended: str) -> None:
    source = processed(sfn, conn, status=ended, options={"preset": "portrait_4_5"}, priority="low")
    status, body = call("POST", f"/v1/jobs/{source['id']}/retry")
    assert status == 201, body
    job = body["job"]
    assert job["source_job_id"] == source["id"]
    assert (job["mode"], job["priority"], job["options"]) == (source["mode"], "low", source["options"])
    new = stored_key(conn, body["job_id"])
    assert boto3.client("s3").get_object(Bucket=UPLOADS, Key=new["source_key"])["Body"].read() == PHOTO


@pytest.mark.parametrize("status_now", ["succeeded", "queued"])
def test_only_a_job_that_ended_without_an_image_can_be_retried(
    sfn: Any, conn: psycopg.Connection, status_now: str
) -> None:
    source = processed(sfn, conn)
    conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status_now, source["id"]))
    status, body = call("POST", f"/v1/jobs/{source['id']}/retry")
    assert (status, body["error"]["code"]) == (409, "not_retryable")
    assert "re-render" in body["error"]["message"]


def test_a_batch_files_photo_is_copied_from_the_drop_folder(sfn: Any, conn: psycopg.Connection) -> None:
    s3 = boto3.client("s3")
    status, batch = call("POST", "/v1/batches", body={"defaults": {"options": {"preset": "shopify"}}})
    assert status == 201, batch
    key = f"{batch['drop_prefix']}My Dress (1).jpg"
    version = s3.put_object(Bucket=DROP, Key=key, Body=PHOTO)["VersionId"]
    assert object_created(sfn, DROP, key, version) is not None
    (row,) = conn.execute("SELECT id FROM jobs WHERE batch_id = %s", (batch["id"],)).fetchall()
    finish_job(conn, str(row["id"]), "failed")
    status, body = call("POST", f"/v1/jobs/{row['id']}/retry")
    assert status == 201, body
    job = body["job"]
    assert job["batch_id"] is None
    assert job["source_job_id"] == str(row["id"])
    assert job["options"]["preset"] == "shopify"
    new = stored_key(conn, body["job_id"])
    assert new["source_bucket"] == UPLOADS
    assert new["source_key"].endswith("/My_Dress_1_.jpg")  # a plain key, as an upload's
    assert s3.get_object(Bucket=UPLOADS, Key=new["source_key"])["Body"].read() == PHOTO
