"""Fixtures shared by the function tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from tests import stripe_support
from tests.stripe_support import API_KEY, DEPLOYMENT, WEBHOOK_SECRET


@pytest.fixture
def stripe_env(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The Stripe secret in (moto) Secrets Manager, named by STRIPE_SECRET_ARN, this deployment's id, a migrated
    database, and a fake Stripe API (``stripe_support.stripe_api``) for the calls the webhook makes."""
    from functions.common import billing

    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="modamoda/test/stripe",
        SecretString=json.dumps({"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}),
    )["ARN"]
    monkeypatch.setenv("STRIPE_SECRET_ARN", arn)
    monkeypatch.setenv("MODAMODA_DEPLOYMENT", DEPLOYMENT)
    api = stripe_support.FakeStripeHTTP()
    monkeypatch.setattr(stripe_support, "stripe_api", api)
    real_client = billing.stripe_client
    monkeypatch.setattr(
        billing, "stripe_client", lambda http_client=None: real_client(http_client=http_client or api)
    )
    billing.reset()
    yield arn
    billing.reset()
