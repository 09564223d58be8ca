"""A deployment without the diffusion weights (no context ``model_data``: CDK sets ``ON_MODEL_AVAILABLE=false``)
runs ghost only and says so: on-model jobs are refused up front with ``422 on_model_unavailable`` and a sentence
for the customer, before any job, upload URL or hold exists; a drop-folder file that asks for on-model ends
``rejected`` with that code and costs nothing."""

from __future__ import annotations

import json

import boto3
import pytest

from functions.common import config
from functions.common.errors import INPUT_ERROR_CODES, ON_MODEL_UNAVAILABLE_MESSAGE, ConfigError
from tests.functions.api.conftest import UPLOADS
from tests.functions.api.test_handler import call
from tests.functions.batch_support import Bulk, bulk_fixture, garment_png  # noqa: F401

JOB = {"filename": "shirt.jpg", "content_type": "image/jpeg"}


@pytest.fixture
def ghost_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ON_MODEL_AVAILABLE", "false")


def assert_refused(status: int, body: dict) -> None:
    assert status == 422, body
    assert body == {"error": {"code": "on_model_unavailable", "message": ON_MODEL_UNAVAILABLE_MESSAGE}}


def test_the_refusal_is_a_plain_sentence() -> None:
    assert "On-model images are not available" in ON_MODEL_UNAVAILABLE_MESSAGE
    assert "nothing was charged" in ON_MODEL_UNAVAILABLE_MESSAGE
    assert "on_model_unavailable" in INPUT_ERROR_CODES  # a batch file can end with it (README, error codes)


def test_on_model_job_is_refused_before_any_upload(api_env: None, ghost_only: None) -> None:
    for path in ("/v1/jobs", "/v1/uploads"):
        status, body = call("POST", path, body={**JOB, "mode": "on-model"})
        assert_refused(status, body)
    status, page = call("GET", "/v1/jobs", query="status=awaiting_upload")
    assert status == 200
    assert page["items"] == []  # no job was created, so none waits for an upload
    assert boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=UPLOADS)["KeyCount"] == 0
    status, me = call("GET", "/v1/me")
    assert me["balance"] == 10  # the welcome credits, untouched
    # ghost packshots work as before
    status, created = call("POST", "/v1/jobs", body={**JOB, "mode": "ghost"})
    assert status == 201, created
    assert created["upload"]["url"]


def test_on_model_jobs_are_taken_where_the_model_is_installed(
    api_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ON_MODEL_AVAILABLE", "true")
    status, created = call("POST", "/v1/jobs", body={**JOB, "mode": "on-model"})
    assert status == 201, created
    assert created["job"]["mode"] == "on-model"


def test_the_setting_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ON_MODEL_AVAILABLE", raising=False)
    assert config.on_model_available()  # local stack and tests: the engine decides
    for value, expected in (("true", True), ("FALSE", False), ("0", False)):
        monkeypatch.setenv("ON_MODEL_AVAILABLE", value)
        assert config.on_model_available() is expected
    monkeypatch.setenv("ON_MODEL_AVAILABLE", "maybe")
    with pytest.raises(ConfigError, match="ON_MODEL_AVAILABLE must be true or false"):
        config.on_model_available()


def test_batches_with_on_model_defaults_are_refused(api_env: None, ghost_only: None) -> None:
    status, body = call("POST", "/v1/batches", body={"name": "looks", "defaults": {"mode": "on-model"}})
    assert_refused(status, body)
    status, page = call("GET", "/v1/batches")
    assert page["items"] == []
    status, batch = call("POST", "/v1/batches", body={"name": "packshots"})
    assert status == 201, batch
    upload = {"filename": "a.png", "content_type": "image/png"}
    status, body = call("POST", f"/v1/batches/{batch['id']}/uploads", body=upload)
    assert status == 201, body


def test_manifest_rows_asking_for_on_model_are_refused_and_cost_nothing(bulk: Bulk, ghost_only: None) -> None:
    status, batch = call("POST", "/v1/batches", sub=bulk.user, body={"name": "spring"})
    assert status == 201, batch
    folder = batch["id"]
    manifest = {"files": [{"file": "look.png", "mode": "on-model"}, {"file": "pack.png", "sku": "P-1"}]}
    bulk.drop(folder, "manifest.json", json.dumps(manifest).encode())
    # the pre-signed upload of the on-model file is refused; the ghost one is issued
    path = f"/v1/batches/{folder}/uploads"
    status, body = call(
        "POST", path, sub=bulk.user, body={"filename": "look.png", "content_type": "image/png"}
    )
    assert_refused(status, body)
    status, body = call(
        "POST", path, sub=bulk.user, body={"filename": "pack.png", "content_type": "image/png"}
    )
    assert status == 201, body
    # a file written straight into the drop folder (S3 credentials, the modamoda command) is refused on arrival
    before = bulk.balance()
    for name in ("look.png", "pack.png"):
        bulk.drop(folder, name, garment_png())
    found = bulk.jobs(folder)
    look, pack = found["look.png"], found["pack.png"]
    assert (look["status"], look["error_code"], look["mode"]) == (
        "rejected",
        "on_model_unavailable",
        "on-model",
    )
    assert look["error_message"] == ON_MODEL_UNAVAILABLE_MESSAGE
    assert pack["status"] == "queued"
    started = [e["name"] for e in bulk.executions()]
    assert started == [pack["execution_name"]]  # no workflow, no hold, no GPU for the refused file
    assert bulk.balance() == before
