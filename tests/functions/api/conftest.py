"""Fixtures for the API handler tests."""

from __future__ import annotations

from typing import Any

import boto3
import psycopg
import pytest

UPLOADS = "modamoda-test-uploads"
RESULTS = "modamoda-test-results"
DROP = "modamoda-test-drop"
# local/stack.py's pool; the cloud pool (infra/api.py) also requires a symbol: API key secrets satisfy both.
LOCAL_PASSWORD_POLICY = {
    "MinimumLength": 12,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": False,
}


@pytest.fixture
def api_env(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Buckets and settings of the Api function. Its callers are users whose e-mail address is verified, as every
    self sign-up is once confirmed (they have no Cognito user here, so the pool is not asked);
    test_signup_verification.py runs the real check against moto's Cognito."""
    from functions.common import signups

    monkeypatch.setattr(signups, "require_verified_email", lambda claims, welcome_credits: None)
    monkeypatch.setenv("UPLOAD_BUCKET", UPLOADS)
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS)
    monkeypatch.setenv("SIGNUP_GRANT_CREDITS", "10")
    monkeypatch.setenv("DROP_BUCKET", DROP)
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:job")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=UPLOADS)
    s3.create_bucket(Bucket=RESULTS)
    s3.create_bucket(Bucket=DROP)
    s3.put_bucket_versioning(Bucket=DROP, VersioningConfiguration={"Status": "Enabled"})


def make_user_pool(password_policy: dict[str, Any] | None = None) -> tuple[str, str]:
    """A moto user pool shaped like the real one (e-mail usernames) and its web client: (pool id, client id)."""
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    pool_id = cognito.create_user_pool(
        PoolName="modamoda-test",
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        Policies={"PasswordPolicy": password_policy or LOCAL_PASSWORD_POLICY},
    )["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="modamoda-web",
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return pool_id, client_id


@pytest.fixture
def user_pool(api_env: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    pool_id, client_id = make_user_pool()
    monkeypatch.setenv("USER_POOL_ID", pool_id)
    return {"pool_id": pool_id, "client_id": client_id}


def finish_job(
    conn: psycopg.Connection, job_id: str, status: str = "succeeded", body: bytes = b"\x89PNG result"
) -> str | None:
    """Move a job to a final status as the workflow would; a succeeded one gets a result object in S3."""
    row = conn.execute("SELECT tenant_id FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    result_key = None
    if status == "succeeded":
        result_key = f"results/{row['tenant_id']}/{job_id}.png"
        boto3.client("s3", region_name="us-east-1").put_object(Bucket=RESULTS, Key=result_key, Body=body)
    conn.execute(
        "UPDATE jobs SET status = %s, result_key = %s, cost = 1, updated_at = now(),"
        " stages = stages || jsonb_build_object(%s::text, '2026-11-23T12:00:00Z') WHERE id = %s",
        (status, result_key, status, job_id),
    )
    return result_key
