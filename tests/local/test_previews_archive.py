"""Previews and "download all" end to end on the local stack: a sample photo goes through the whole pipeline; the
job then has a small WebP thumbnail and a WebP of the photo (served through the local S3 proxy as a browser gets
them), and a ZIP of two jobs downloads and unzips to exactly their results."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from local.stack import LocalSettings, LocalStack
from tests.local.conftest import new_user

pytestmark = pytest.mark.e2e
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples" / "garments").glob("*.jpg"))


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(LocalSettings()) as running:
        yield running


def photo(path: Path, size: int) -> bytes:
    with Image.open(path) as image:
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=90)
        return buffer.getvalue()


def fetch(url: str) -> requests.Response:
    response = requests.get(url, timeout=60)
    response.raise_for_status()
    return response


def test_previews_and_a_zip_of_two_jobs(stack: LocalStack) -> None:
    user = new_user(stack)
    first = user.api.upload("hoodie.jpg", photo(SAMPLES[0], 1400), "image/jpeg")
    second = user.api.upload("dress.jpg", photo(SAMPLES[1], 512), "image/jpeg")
    jobs = [user.api.wait(job_id, timeout=240) for job_id in (first, second)]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs

    job = jobs[0]
    thumb = fetch(job["thumbnail_url"])
    assert thumb.headers["Content-Type"] == "image/webp"
    assert len(thumb.content) < 60_000
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.format == "WEBP"
        assert max(image.size) == 320
    original = fetch(job["original_url"])
    with Image.open(io.BytesIO(original.content)) as image:
        assert image.format == "WEBP"
        assert max(image.size) == 1024
        assert "exif" not in image.info
    listed = {item["id"]: item for item in user.api.request("GET", "/v1/jobs")["items"]}
    assert listed[first]["thumbnail_url"]
    assert listed[first]["original_url"]

    results = [fetch(j["result_url"]).content for j in jobs]
    archive = user.api.request("POST", "/v1/jobs/archive", json={"job_ids": [first, second]})
    assert archive["count"] == 2
    download = fetch(archive["url"])
    assert f'filename="{archive["filename"]}"' in download.headers.get("Content-Disposition", "")
    assert len(download.content) == archive["bytes"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as unzipped:
        assert unzipped.testzip() is None
        assert unzipped.namelist() == ["hoodie-ghost.png", "dress-ghost.png"]
        assert [unzipped.read(name) for name in unzipped.namelist()] == results
