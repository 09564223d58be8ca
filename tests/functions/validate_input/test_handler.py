"""validate-input: the upload is checked by content; bad files end with a code, good ones get a price."""

from __future__ import annotations

import io

import boto3
import pytest
from PIL import Image

from functions.common import db, jobs
from functions.common.errors import InputRejected
from functions.validate_input import handler
from tests.conftest import FakeLambdaContext, create_job

BUCKET = "modamoda-test-uploads"


@pytest.fixture
def job(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("UPLOAD_BUCKET", BUCKET)
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "200000")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    tenant_id, job_id = create_job()
    return {"tenant": tenant_id, "job": job_id, "key": f"uploads/{tenant_id}/{job_id}/shirt.jpg"}


def put(job: dict[str, str], data: bytes) -> dict:
    version = boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key=job["key"], Body=data)
    return {
        "job_id": job["job"],
        "tenant_id": job["tenant"],
        "bucket": BUCKET,
        "key": job["key"],
        "version_id": version.get("VersionId"),
        "inference_timeout_seconds": 600,
    }


def jpeg(size: tuple[int, int] = (320, 400)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_valid_image_is_priced_and_described(job: dict[str, str]) -> None:
    result = handler.lambda_handler(put(job, jpeg()), FakeLambdaContext())
    assert result["cost"] == 1
    assert result["mode"] == "ghost"
    assert result["image"] | {"version_id": None} == {
        "bucket": BUCKET,
        "key": job["key"],
        "version_id": None,
        "format": "JPEG",
        "width": 320,
        "height": 400,
        "bytes": len(jpeg()),
    }
    assert result["options"]["preset"] == "square"
    with db.transaction(job["tenant"]) as conn:
        row = jobs.load(conn, job["job"])
    assert (row["status"], row["cost"], row["image"]["width"]) == ("validated", 1, 320)


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty_file"), (b"x" * 200_001, "file_too_large"), (b"GIF89a....", "not_an_image")],
)
def test_bad_files_are_rejected_with_a_code(job: dict[str, str], data: bytes, code: str) -> None:
    with pytest.raises(InputRejected) as raised:
        handler.lambda_handler(put(job, data), FakeLambdaContext())
    assert raised.value.code == code
    assert str(raised.value).startswith(f"{code}: ")  # the code survives into the Step Functions Cause


def test_missing_object_is_rejected(job: dict[str, str]) -> None:
    event = put(job, jpeg()) | {"key": f"uploads/{job['tenant']}/{job['job']}/other.jpg"}
    with pytest.raises(InputRejected) as raised:
        handler.lambda_handler(event, FakeLambdaContext())
    assert raised.value.code == "upload_missing"
