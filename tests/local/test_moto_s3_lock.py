"""Concurrent writes of one object through moto's S3 (duplicate notifications settling one job copy the same
result at once): with ``local.moto_s3_lock`` installed every request succeeds and the object is whole."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from moto import mock_aws

from local import moto_s3_lock


def test_concurrent_copies_onto_one_key_all_succeed(monkeypatch: Any) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    moto_s3_lock.install()
    body = os.urandom(3 * 1024 * 1024)  # larger than moto's in-memory buffer: it spools to a file
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="copies")
        s3.put_object(Bucket="copies", Key="source", Body=body)

        def copy(_: int) -> str:
            return str(
                s3.copy_object(
                    Bucket="copies", Key="target", CopySource={"Bucket": "copies", "Key": "source"}
                )
            )

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(copy, range(60)))
        assert s3.get_object(Bucket="copies", Key="target")["Body"].read() == body
