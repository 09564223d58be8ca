"""Fixtures for the API handler tests."""

from __future__ import annotations

import boto3
import pytest

UPLOADS = "modamoda-test-uploads"
RESULTS = "modamoda-test-results"


@pytest.fixture
def api_env(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_BUCKET", UPLOADS)
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS)
    monkeypatch.setenv("SIGNUP_GRANT_CREDITS", "10")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=UPLOADS)
    s3.create_bucket(Bucket=RESULTS)
