"""Reading the input photo from S3 (moto, offline)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from modamoda_inference.errors import InvalidImage, InvalidRequest, StorageError
from modamoda_inference.s3io import S3ImageSource
from moto import mock_aws

BUCKET = "modamoda-test-uploads"


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_fetch_latest_and_a_given_version(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=BUCKET, Key="t1/in.jpg", Body=b"first")["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="t1/in.jpg", Body=b"second")
    source = S3ImageSource()  # lazily built default client
    assert source.fetch(f"s3://{BUCKET}/t1/in.jpg") == b"second"
    assert source.fetch(f"s3://{BUCKET}/t1/in.jpg", first) == b"first"


def test_missing_object_bucket_or_version(s3: Any) -> None:
    source = S3ImageSource(s3)
    with pytest.raises(InvalidRequest, match="does not exist"):
        source.fetch(f"s3://{BUCKET}/nope.jpg")
    with pytest.raises(InvalidRequest, match="does not exist"):
        source.fetch("s3://no-such-bucket-here/x.jpg")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")
    with pytest.raises(InvalidRequest) as info:
        source.fetch(f"s3://{BUCKET}/k", "3HL4kqtJvjVBH40Nrjfkd")
    assert "k" in info.value.message


def test_too_large(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="big", Body=b"x" * 2000)
    with pytest.raises(InvalidImage, match="too large"):
        S3ImageSource(s3, max_bytes=1000).fetch(f"s3://{BUCKET}/big")


def test_bad_uri() -> None:
    with pytest.raises(InvalidRequest, match="s3://bucket/key"):
        S3ImageSource(client=object()).fetch("http://x/y")


def test_other_errors_are_storage_errors() -> None:
    from botocore.exceptions import ClientError

    class Denied:
        def get_object(self, **kwargs: object) -> None:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")

    with pytest.raises(StorageError, match="AccessDenied") as info:
        S3ImageSource(Denied()).fetch("s3://bucket-a/key")
    assert info.value.http_status == 500
