"""Pre-signed URLs: unchanged in the cloud; rewritten onto the local web server's S3 proxy in local mode."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from functions.common import storage

LOCAL = "http://127.0.0.1:8787/local/s3"


@pytest.mark.parametrize(
    "url",
    [
        "https://bucket-one.s3.amazonaws.com/uploads/a%20b.jpg?X-Amz-Signature=abc",
        "https://s3.amazonaws.com/bucket-one/k",
        "https://example.com/bucket-one/k",
    ],
)
def test_urls_are_unchanged_without_s3_public_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.delenv("S3_PUBLIC_URL", raising=False)
    assert storage.public_url(url) == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bucket-one.s3.amazonaws.com/", f"{LOCAL}/bucket-one/"),
        (
            "https://bucket-one.s3.amazonaws.com/uploads/t/a%20b%2Bc.jpg?X-Amz-Date=1&X-Amz-Signature=ab%3D",
            f"{LOCAL}/bucket-one/uploads/t/a%20b%2Bc.jpg?X-Amz-Date=1&X-Amz-Signature=ab%3D",
        ),
        ("https://bucket-one.s3.us-east-1.amazonaws.com/k?a=1", f"{LOCAL}/bucket-one/k?a=1"),
        ("https://my.dotted.bucket.s3.eu-west-1.amazonaws.com/k", f"{LOCAL}/my.dotted.bucket/k"),
        ("https://bucket-one.s3-us-west-2.amazonaws.com/k", f"{LOCAL}/bucket-one/k"),
        ("https://s3.amazonaws.com/bucket-one/dir/k?x=1", f"{LOCAL}/bucket-one/dir/k?x=1"),
        ("https://s3.us-east-1.amazonaws.com/bucket-one/k", f"{LOCAL}/bucket-one/k"),
        ("https://s3.amazonaws.com/bucket-one", f"{LOCAL}/bucket-one/"),
        # Not S3: left alone.
        ("https://example.com/bucket-one/k", "https://example.com/bucket-one/k"),
        ("https://s3.amazonaws.com.evil.example/k", "https://s3.amazonaws.com.evil.example/k"),
        ("https://s3.amazonaws.com/", "https://s3.amazonaws.com/"),
        ("ftp://bucket-one.s3.amazonaws.com/k", "ftp://bucket-one.s3.amazonaws.com/k"),
    ],
)
def test_s3_urls_are_rewritten_in_local_mode(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("S3_PUBLIC_URL", f"{LOCAL}/")  # a trailing slash is tolerated
    assert storage.public_url(url) == expected


@pytest.mark.parametrize("addressing", ["virtual", "path"])
def test_presigned_post_and_get_use_the_public_url(
    monkeypatch: pytest.MonkeyPatch, aws_env: None, addressing: str
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", config=Config(s3={"addressing_style": addressing}))
    monkeypatch.delenv("S3_PUBLIC_URL", raising=False)
    cloud = storage.presigned_post(s3, "bucket-one", "uploads/k.jpg", "image/jpeg", 100, 60)
    assert cloud["url"].startswith("https://")
    assert "amazonaws.com" in cloud["url"]

    monkeypatch.setenv("S3_PUBLIC_URL", LOCAL)
    post = storage.presigned_post(s3, "bucket-one", "uploads/k.jpg", "image/jpeg", 100, 60)
    assert post["url"] == f"{LOCAL}/bucket-one/"
    assert post["fields"]["key"] == "uploads/k.jpg"
    get = storage.presigned_get(s3, "bucket-one", "results/a b.png", 60, "a b.png")
    path, query = get.split("?", 1)
    assert path == f"{LOCAL}/bucket-one/results/a%20b.png"
    assert "response-content-disposition=attachment" in query
    assert "Signature=" in query
