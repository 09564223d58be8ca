"""The studio engine's Lambda function (``modamoda_inference.lambda_handler``) against S3 in moto: the request the
container's ``/invocations`` takes, the image and the metadata document written where the async endpoint would
write them, and every failure as the error type and answer the state machine reads."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from modamoda_inference import lambda_handler
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.errors import InvalidRequest, LowConfidence
from modamoda_inference.lambda_handler import InferenceFailed, InputRejected, StudioFunction
from modamoda_inference.s3io import S3ObjectWriter
from modamoda_inference.server import InferenceService
from moto import mock_aws
from PIL import Image

from tests.inference_container.conftest import CONTAINER_DIR, encode, synthetic_garment

UPLOADS = "modamoda-test-uploads"
RESULTS = "modamoda-test-results"
OUTPUT = f"s3://{RESULTS}/inference/output"
FAILURE = f"s3://{RESULTS}/inference/failure"


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in (UPLOADS, RESULTS):
            client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def function(s3: Any, studio: StudioEngine) -> StudioFunction:
    return StudioFunction(InferenceService({"studio": studio}), OUTPUT, FAILURE)


def upload(s3: Any) -> dict[str, Any]:
    rgb, _ = synthetic_garment(480, 600)
    key = f"uploads/t1/{uuid.uuid4()}/shirt.jpg"
    version = s3.put_object(Bucket=UPLOADS, Key=key, Body=encode(rgb, "JPEG", quality=92))["VersionId"]
    return {"s3_uri": f"s3://{UPLOADS}/{key}", "version_id": version}


def request(s3: Any, **options: Any) -> dict[str, Any]:
    """The request document as the state machine's RunStudio sends it (the GPU path writes the same one)."""
    job_id = str(uuid.uuid4())
    return {
        "job_id": job_id,
        "mode": "ghost",
        "image": upload(s3),
        "options": {"preset": "square", "output_format": "png", **options},
        "metadata_s3_uri": f"s3://{RESULTS}/inference/metadata/{job_id}.json",
    }


def read(s3: Any, key: str) -> tuple[bytes, str]:
    found = s3.get_object(Bucket=RESULTS, Key=key)
    return found["Body"].read(), found["ContentType"]


def test_success_writes_the_image_and_metadata_where_the_async_endpoint_would(
    s3: Any, function: StudioFunction
) -> None:
    event = request(s3, output_format="webp")
    answer = function(event)
    job_id = event["job_id"]
    assert answer["inference_id"] == job_id
    assert answer["output_location"] == f"{OUTPUT}/{job_id}.out"
    assert answer["content_type"] == "image/webp"
    assert answer["engine"] == "studio"
    assert answer["timings_ms"]["engine"] > 0
    body, content_type = read(s3, f"inference/output/{job_id}.out")
    assert content_type == "image/webp"
    assert answer["bytes"] == len(body)
    assert Image.open(io.BytesIO(body)).size == (2000, 2000)
    document = json.loads(read(s3, f"inference/metadata/{job_id}.json")[0])
    assert document["outcome"] == "succeeded"
    assert document["job_id"] == job_id
    assert document["quality"]["score"] >= document["quality"]["threshold"]
    assert json.dumps(answer)  # a Lambda payload: JSON all the way


def test_a_refusal_is_input_rejected_with_the_engine_answer(
    s3: Any, function: StudioFunction, studio: StudioEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    details = {"score": 0.2, "threshold": 0.5, "checks": {"edges": 0.1}, "path": "backdrop"}

    def refuse(*_: Any, **__: Any) -> Any:
        raise LowConfidence("We could not make a clean cut-out of this photo.", details=details)

    monkeypatch.setattr(studio, "run", refuse)
    event = request(s3)
    with pytest.raises(InputRejected) as info:
        function(event)
    answer = json.loads(str(info.value))
    assert answer == info.value.answer
    assert answer["status"] == 422
    assert answer["error"]["code"] == "low_confidence"
    assert answer["error"]["message"] == "We could not make a clean cut-out of this photo."
    assert answer["quality"] == details
    job_id = event["job_id"]
    failure, content_type = read(s3, f"inference/failure/{job_id}-error.out")
    assert content_type == "application/json"
    assert json.loads(failure)["error"]["code"] == "low_confidence"  # the body /invocations answers
    document = json.loads(read(s3, f"inference/metadata/{job_id}.json")[0])
    assert document["outcome"] == "refused"
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=RESULTS, Key=f"inference/output/{job_id}.out")


def test_an_engine_crash_is_inference_failed(
    s3: Any, function: StudioFunction, studio: StudioEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(studio, "run", crash)
    with pytest.raises(InferenceFailed) as info:
        function(request(s3))
    assert info.value.answer["status"] == 500
    assert info.value.answer["error"]["code"] == "internal_error"
    assert "boom" not in str(info.value)  # the container's own words, never the exception's


def _no_job_id(event: dict[str, Any]) -> None:
    event.pop("job_id")


def _on_model(event: dict[str, Any]) -> None:
    event["mode"] = "on-model"


def _learned(event: dict[str, Any]) -> None:
    event["options"]["segmenter"] = "learned"


def _missing_photo(event: dict[str, Any]) -> None:
    event["image"] = {"s3_uri": f"s3://{UPLOADS}/uploads/none.jpg"}


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (_no_job_id, 400, "invalid_request"),
        (_on_model, 503, "engine_unavailable"),  # the state machine sends on-model to the GPU endpoint
        (_learned, 503, "engine_unavailable"),  # and the learned segmenter: no weights here
        (_missing_photo, 400, "invalid_request"),
    ],
)
def test_requests_it_cannot_serve_fail_with_the_containers_codes(
    s3: Any, function: StudioFunction, change: Callable[[dict[str, Any]], None], status: int, code: str
) -> None:
    event = request(s3)
    change(event)
    with pytest.raises(InferenceFailed) as info:
        function(event)
    assert (info.value.answer["status"], info.value.answer["error"]["code"]) == (status, code)


def test_a_file_that_is_not_an_image_is_invalid_image(s3: Any, function: StudioFunction) -> None:
    event = request(s3)
    key = event["image"]["s3_uri"].split("/", 3)[3]
    event["image"]["version_id"] = s3.put_object(Bucket=UPLOADS, Key=key, Body=b"not an image")["VersionId"]
    with pytest.raises(InferenceFailed) as info:
        function(event)
    assert info.value.answer["error"]["code"] == "invalid_image"


def test_an_output_that_cannot_be_written_fails_the_invocation(s3: Any, studio: StudioEngine) -> None:
    function = StudioFunction(InferenceService({"studio": studio}), "s3://no-such-bucket-here/x", FAILURE)
    with pytest.raises(InferenceFailed) as info:
        function(request(s3))
    assert info.value.answer["status"] == 500
    assert info.value.answer["error"]["code"] == "storage_error"


def test_the_handler_builds_itself_from_the_environment(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lambda_handler.configure(None)
    try:
        monkeypatch.delenv(lambda_handler.OUTPUT_PATH_ENV, raising=False)
        with pytest.raises(ValueError, match=lambda_handler.OUTPUT_PATH_ENV):
            lambda_handler.handler(request(s3), None)
        monkeypatch.setenv(lambda_handler.OUTPUT_PATH_ENV, OUTPUT + "/")
        monkeypatch.setenv(lambda_handler.FAILURE_PATH_ENV, FAILURE)
        monkeypatch.setenv("MODEL_DIR", str(CONTAINER_DIR / "no-such-model-dir"))
        event = request(s3)
        answer = lambda_handler.handler(event, None)
        assert answer["output_location"] == f"{OUTPUT}/{event['job_id']}.out"
        built = lambda_handler.studio_function()
        assert list(built.service.engines) == ["studio"]
        engine = built.service.engines["studio"]
        assert isinstance(engine, StudioEngine)
        assert engine.segmenter is None  # no weights: "auto" is the colour model here
    finally:
        lambda_handler.configure(None)


def test_the_function_never_imports_the_gpu_stack() -> None:
    code = (
        "import sys; import modamoda_inference.lambda_handler, modamoda_inference.engines.studio; "
        "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=CONTAINER_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == "[]"


def test_the_object_writer_refuses_a_bad_uri() -> None:
    with pytest.raises(InvalidRequest):
        S3ObjectWriter(client=object()).put("http://x/y", b"", "image/png")
