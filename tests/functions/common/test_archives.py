"""Download all: results streamed from S3 into a ZIP whose output is an S3 multipart upload, with memory bounded
by one part plus one chunk whatever the number of images; a failure leaves no upload and no object behind."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from functions.common import archives

BUCKET = "modamoda-test-results"
MIB = 1024 * 1024


@pytest.fixture
def s3(mocked_aws: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def put_images(s3: Any, count: int, size: int, prefix: str = "results/t") -> dict[str, bytes]:
    objects = {f"{prefix}/{i}.png": os.urandom(size) for i in range(count)}
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return objects


def entries(objects: dict[str, bytes]) -> list[archives.Entry]:
    names = [key.rsplit("/", 1)[-1] for key in objects]
    return [archives.Entry(BUCKET, key, name) for key, name in zip(objects, names, strict=True)]


class DiskSink:
    """The S3 client for the sources (moto) whose multipart uploads go to a file on disk instead: moto keeps every
    request body it receives, so its memory would hide ours. Reads go to moto."""

    def __init__(self, s3: Any, path: str) -> None:
        self._s3, self.path = s3, path
        self.parts: list[int] = []
        self.completed = self.aborted = False
        self._file = open(path, "wb")  # noqa: SIM115 - closed on complete/abort

    def get_object(self, **params: Any) -> Any:
        return self._s3.get_object(**params)

    def create_multipart_upload(self, **params: Any) -> dict[str, str]:
        return {"UploadId": "upload-1"}

    def upload_part(self, *, Body: Any, PartNumber: int, **params: Any) -> dict[str, str]:
        assert PartNumber == len(self.parts) + 1
        self._file.write(Body)
        self.parts.append(len(Body))
        return {"ETag": hashlib.md5(bytes(Body[:64])).hexdigest()}  # noqa: S324 - a stand-in ETag

    def complete_multipart_upload(self, **params: Any) -> None:
        assert [p["PartNumber"] for p in params["MultipartUpload"]["Parts"]] == list(
            range(1, len(self.parts) + 1)
        )
        self.completed = True
        self._file.close()

    def abort_multipart_upload(self, **params: Any) -> None:
        self.aborted = True
        self._file.close()


def test_memory_stays_bounded_by_a_part_and_a_chunk(s3: Any) -> None:
    count, size, part = 12, 6 * MIB, 5 * MIB
    objects = put_images(s3, count, size)
    digests = {key.rsplit("/", 1)[-1]: hashlib.sha256(body).hexdigest() for key, body in objects.items()}
    del objects
    with tempfile.TemporaryDirectory() as tmp:
        sink = DiskSink(s3, os.path.join(tmp, "out.zip"))
        tracemalloc.start()
        try:
            built = archives.build(
                sink,
                entries({f"results/t/{i}.png": b"" for i in range(count)}),
                BUCKET,
                "archives/t/a.zip",
                part_size=part,
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        total = count * size
        # one part being filled, one object as moto hands it over (it has no streaming body), one chunk, slack
        print(f"peak {peak / MIB:.1f} MiB for {total / MIB:.0f} MiB of images")
        assert peak < part + size + archives.CHUNK_SIZE + 4 * MIB, peak / MIB
        assert peak < total / 4, (peak / MIB, total / MIB)
        assert sink.completed
        assert not sink.aborted
        assert all(length == part for length in sink.parts[:-1])
        assert 0 < sink.parts[-1] <= part
        assert built.count == count
        assert built.bytes == os.path.getsize(sink.path) == sum(sink.parts)
        with zipfile.ZipFile(sink.path) as archive:
            assert archive.testzip() is None
            assert {
                info.filename: hashlib.sha256(archive.read(info)).hexdigest() for info in archive.infolist()
            } == digests
            assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_the_zip_in_s3_opens_and_holds_the_right_bytes(s3: Any) -> None:
    objects = put_images(s3, 3, 3 * MIB)
    s3.put_object(Bucket=BUCKET, Key="results/t/small.png", Body=b"\x89PNG tiny")
    objects["results/t/small.png"] = b"\x89PNG tiny"
    listed = entries(objects)
    listed[1] = archives.Entry(BUCKET, listed[1].key, "0.png")  # a repeated name is numbered
    listed = [
        archives.Entry(e.bucket, e.key, n, datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
        for e, n in zip(listed, archives.unique_names([e.name for e in listed]), strict=True)
    ]
    built = archives.build(s3, listed, BUCKET, "archives/t/b.zip", part_size=5 * MIB)
    data = s3.get_object(Bucket=BUCKET, Key="archives/t/b.zip")["Body"].read()
    assert (built.count, built.bytes, built.parts) == (4, len(data), 2)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["0.png", "0 (2).png", "2.png", "small.png"]
        for entry in listed:
            assert archive.read(entry.name) == objects[entry.key]
        assert archive.getinfo("small.png").date_time == (2026, 3, 4, 5, 6, 6)  # DOS time: 2-second steps


def test_a_failure_aborts_the_upload_and_leaves_nothing(s3: Any) -> None:
    objects = put_images(s3, 2, 6 * MIB)
    listed = [*entries(objects), archives.Entry(BUCKET, "results/t/gone.png", "gone.png")]
    with pytest.raises(s3.exceptions.NoSuchKey):
        archives.build(s3, listed, BUCKET, "archives/t/c.zip", part_size=5 * MIB)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="archives/").get("KeyCount", 0) == 0


def test_past_the_deadline_the_upload_is_aborted_with_a_sentence(s3: Any) -> None:
    listed = entries(put_images(s3, 2, 1024))
    with pytest.raises(archives.TooSlow) as raised:
        archives.build(s3, listed, BUCKET, "archives/t/d.zip", deadline=time.monotonic() - 1)
    assert raised.value.code == "archive_too_large"
    assert raised.value.message.startswith("The 2 images could not be packed")
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_writer_refuses_parts_s3_would_refuse(s3: Any) -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        archives.MultipartWriter(s3, BUCKET, "archives/t/e.zip", part_size=MIB)


def test_unique_names() -> None:
    assert archives.unique_names(["a.png", "A.png", "a.png", "b", "b", "../x.png", ".png"]) == [
        "a.png",
        "A (2).png",
        "a (3).png",
        "b",
        "b (2)",
        "_x.png",
        "png",
    ]


def test_archive_filename() -> None:
    moment = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    assert archives.archive_filename(7, moment) == "modamoda-2026-11-23-7-images.zip"


def test_time_per_image_is_measured(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a limit: prints how long one 2 MiB result takes locally (moto in-process), for the 29 s budget."""
    listed = entries(put_images(s3, 20, 2 * MIB))
    started = time.perf_counter()
    archives.build(s3, listed, BUCKET, "archives/t/f.zip")
    per_image = (time.perf_counter() - started) / len(listed)
    with capsys.disabled():
        print(f"\narchive: {per_image * 1000:.0f} ms per 2 MiB image locally")
    assert per_image < 2.0  # a sanity bound only: the machine running the tests may be busy
