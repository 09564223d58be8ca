"""The job's metadata document (``metadata_s3_uri``): written on success and when the engine refuses the photo,
best effort (a write that fails never changes the answer); refusals answer 422 with their code and details."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from modamoda_inference.engines.base import Engine, EngineResult
from modamoda_inference.errors import (
    REFUSAL_CODES,
    InvalidImage,
    LowConfidence,
    ModamodaError,
    NoGarmentFound,
    PersonInPhoto,
)
from modamoda_inference.s3io import S3MetadataWriter
from modamoda_inference.schemas import InferenceRequest, parse_request
from modamoda_inference.server import InferenceService, quality_of
from moto import mock_aws
from PIL import Image

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"
URI = "s3://modamoda-test-results/inference/metadata/0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60.json"
QUALITY = {"score": 0.91, "threshold": 0.6, "checks": {"edge": 0.95, "coverage": 0.88}}


class FakeEngine(Engine):
    """Answers every job with ``metadata`` or raises ``error``."""

    name = "studio"
    modes = frozenset({"ghost"})

    def __init__(self, metadata: dict[str, Any] | None = None, error: ModamodaError | None = None) -> None:
        super().__init__()
        self.metadata = metadata or {}
        self.error = error

    def load(self, model_dir: Path) -> None:
        self._ready = True

    def run(
        self, image: Image.Image, request: InferenceRequest, inside: Image.Image | None = None
    ) -> EngineResult:
        if self.error is not None:
            raise self.error
        return EngineResult(Image.new("RGB", (64, 64), (255, 255, 255)), dict(self.metadata))


class RecordingWriter(S3MetadataWriter):
    def __init__(self, ok: bool = True) -> None:
        super().__init__(client=object())
        self.ok = ok
        self.written: list[tuple[str, dict[str, Any]]] = []

    def write(self, uri: str, document: Any) -> bool:
        self.written.append((uri, json.loads(json.dumps(document, default=str))))
        return self.ok


def service(engine: Engine, writer: S3MetadataWriter) -> InferenceService:
    engine.load(Path("."))
    return InferenceService({"studio": engine}, metadata_writer=writer)


def body(metadata_uri: str | None = URI) -> bytes:
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 200, 200)).save(png, "PNG")
    request: dict[str, Any] = {
        "job_id": JOB,
        "mode": "ghost",
        "image": {"b64": base64.b64encode(png.getvalue()).decode()},
    }
    if metadata_uri is not None:
        request["metadata_s3_uri"] = metadata_uri
    return json.dumps(request).encode()


def test_the_request_takes_an_optional_metadata_uri() -> None:
    assert parse_request(body()).metadata_s3_uri == URI
    assert parse_request(body(None)).metadata_s3_uri is None
    with pytest.raises(ModamodaError, match="metadata_s3_uri"):
        parse_request(body("https://example.com/x.json"))


def test_success_writes_quality_bbox_and_timings() -> None:
    writer = RecordingWriter()
    engine = FakeEngine({"quality": QUALITY, "bbox": [1, 2, 30, 40]})
    response = service(engine, writer).invoke(body())
    assert response.status == 200
    [(uri, document)] = writer.written
    assert uri == URI
    assert document["outcome"] == "succeeded"
    assert document["quality"] == QUALITY
    assert document["engine_meta"]["bbox"] == [1, 2, 30, 40]
    assert document["job_id"] == JOB
    assert document["engine"] == "studio"
    assert set(document["timings_ms"]) >= {"engine", "total"}
    assert len(json.dumps(document)) < 4096  # small


def test_success_without_quality_and_without_uri() -> None:
    writer = RecordingWriter()
    assert service(FakeEngine(), writer).invoke(body()).status == 200
    assert writer.written[0][1]["quality"] is None
    writer.written.clear()
    assert service(FakeEngine({"quality": QUALITY}), writer).invoke(body(None)).status == 200
    assert writer.written == []


@pytest.mark.parametrize(
    "error",
    [
        NoGarmentFound("No garment was found in the photo. Reshoot it on a plain backdrop."),
        LowConfidence(
            "The cut-out is not clean enough to sell with. Reshoot on an evenly lit, plain backdrop.",
            details={"score": 0.31, "threshold": 0.6, "checks": {"edge": 0.2}},
        ),
        PersonInPhoto("Someone is wearing the garment. Photograph it on a mannequin or laid flat."),
    ],
    ids=lambda e: e.code,
)
def test_a_refusal_is_422_with_its_code_and_writes_the_error(error: ModamodaError) -> None:
    assert error.code in REFUSAL_CODES
    writer = RecordingWriter()
    response = service(FakeEngine(error=error), writer).invoke(body())
    assert response.status == 422
    answer = json.loads(response.body)["error"]
    assert (answer["code"], answer["message"]) == (error.code, error.message)
    [(uri, document)] = writer.written
    assert uri == URI
    assert document["outcome"] == "refused"
    assert document["error"] == error.to_dict()["error"]
    if error.code == "low_confidence":
        assert answer["details"]["score"] == 0.31
        assert document["quality"] == {"score": 0.31, "threshold": 0.6, "checks": {"edge": 0.2}}
    else:
        assert document["quality"] is None


def test_other_errors_after_the_request_was_read_are_written_as_failed() -> None:
    writer = RecordingWriter()
    response = service(FakeEngine(error=InvalidImage("the photo is odd")), writer).invoke(body())
    assert response.status == 400
    assert writer.written[0][1]["outcome"] == "failed"
    writer.written.clear()
    assert service(FakeEngine(), writer).invoke(b"{not json").status == 400
    assert writer.written == []  # nothing to write to before the request is read


def test_a_failed_write_does_not_change_the_answer(aws_env: None) -> None:
    with mock_aws():  # the bucket does not exist: the real writer reports False, the job still succeeds
        writer = S3MetadataWriter()
        assert writer.write(URI, {"a": 1}) is False
        assert service(FakeEngine({"quality": QUALITY}), writer).invoke(body()).status == 200
        refused = service(FakeEngine(error=NoGarmentFound("No garment was found.")), writer).invoke(body())
        assert refused.status == 422
    crashing = RecordingWriter(ok=False)
    assert service(FakeEngine(), crashing).invoke(body()).status == 200


def test_the_real_writer_puts_compact_json(aws_env: None) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="modamoda-test-results")
        assert service(FakeEngine({"quality": QUALITY}), S3MetadataWriter()).invoke(body()).status == 200
        key = URI.removeprefix("s3://modamoda-test-results/")
        stored = s3.get_object(Bucket="modamoda-test-results", Key=key)
        assert stored["ContentType"] == "application/json"
        assert json.loads(stored["Body"].read())["quality"] == QUALITY


def test_quality_of_keeps_numbers_only() -> None:
    assert quality_of({"score": 0.5, "threshold": 0.6}) == {"score": 0.5, "threshold": 0.6}
    assert quality_of({"score": "high", "threshold": 0.6}) is None
    assert quality_of({"score": True, "threshold": 0.6}) is None
    assert quality_of(None) is None
    assert quality_of({"threshold": 0.6}) is None
    textured = {"score": 0.9, "threshold": 0.5, "checks": {"edges": 1.0}, "path": "textured", "extra": [1]}
    assert quality_of(textured) == {
        "score": 0.9,
        "threshold": 0.5,
        "checks": {"edges": 1.0},
        "path": "textured",
    }
