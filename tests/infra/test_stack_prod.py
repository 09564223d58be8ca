"""The prod stage keeps its data: retained buckets and secret, deletion-protected database and user pool."""

from __future__ import annotations

import pytest

from tests.infra.synthesis import Synth

pytestmark = pytest.mark.synth


def test_prod_retains_data(prod_synth: Synth) -> None:
    buckets = prod_synth.of_type("AWS::S3::Bucket")
    assert len(buckets) == 2
    for bucket in buckets.values():
        assert bucket["DeletionPolicy"] == "Retain"
    assert not prod_synth.of_type("Custom::S3AutoDeleteObjects")
    secrets = prod_synth.of_type("AWS::SecretsManager::Secret")
    assert len(secrets) == 3  # the database owner's and app role's, and the Stripe keys
    assert all(secret["DeletionPolicy"] == "Retain" for secret in secrets.values())


def test_prod_database_is_protected_and_never_pauses(prod_synth: Synth) -> None:
    (_, cluster) = prod_synth.one("AWS::RDS::DBCluster")
    assert cluster["Properties"]["DeletionProtection"] is True
    assert cluster["DeletionPolicy"] == "Snapshot"
    assert cluster["Properties"]["ServerlessV2ScalingConfiguration"]["MinCapacity"] >= 0.5
    assert cluster["Properties"]["BackupRetentionPeriod"] >= 7


def test_prod_user_pool_and_names(prod_synth: Synth) -> None:
    (_, pool) = prod_synth.one("AWS::Cognito::UserPool")
    assert pool["Properties"]["DeletionProtection"] == "ACTIVE"
    assert pool["DeletionPolicy"] == "Retain"
    assert prod_synth.template["Outputs"]["InferenceEndpointName"]["Value"] == "modamoda-prod-inference"
    (_, api) = prod_synth.one("AWS::ApiGatewayV2::Api")
    assert api["Properties"]["CorsConfiguration"]["AllowOrigins"] == ["https://app.example"]
