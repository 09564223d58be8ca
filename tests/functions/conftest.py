"""Fixtures shared by the function tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from tests.stripe_support import API_KEY, WEBHOOK_SECRET


@pytest.fixture
def stripe_env(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The Stripe secret in (moto) Secrets Manager, named by STRIPE_SECRET_ARN, and a migrated database."""
    from functions.common import billing

    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="modamoda/test/stripe",
        SecretString=json.dumps({"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}),
    )["ARN"]
    monkeypatch.setenv("STRIPE_SECRET_ARN", arn)
    billing.reset()
    yield arn
    billing.reset()
