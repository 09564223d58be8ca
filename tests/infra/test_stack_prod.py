"""Stages: prod keeps its data (retained buckets, secrets, logs; deletion-protected database, user pool, stack);
dev is disposable. Names and origins follow the context, and no account or region is written into the app."""

from __future__ import annotations

import json
import re

import pytest

from infra.config import PROJECT_ROOT
from tests.infra.conftest import PROD_ACCOUNT
from tests.infra.synthesis import Synth

pytestmark = pytest.mark.synth

DATA_TYPES = (
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
    "AWS::Cognito::UserPool",
)


def test_prod_retains_data(prod_synth: Synth) -> None:
    assert len(prod_synth.of_type("AWS::S3::Bucket")) == 5
    assert not prod_synth.of_type("Custom::S3AutoDeleteObjects")
    secrets = prod_synth.of_type("AWS::SecretsManager::Secret")
    assert len(secrets) == 3  # the database owner's and app role's, and the Stripe keys
    for resource_type in DATA_TYPES:
        for lid, resource in prod_synth.of_type(resource_type).items():
            assert resource["DeletionPolicy"] == "Retain", lid


def test_dev_deletes_everything_with_the_stack(synth: Synth) -> None:
    for resource_type in DATA_TYPES:
        for lid, resource in synth.of_type(resource_type).items():
            assert resource["DeletionPolicy"] == "Delete", lid
    (_, cluster) = synth.one("AWS::RDS::DBCluster")
    assert cluster["DeletionPolicy"] == "Delete"
    assert cluster["Properties"]["DeletionProtection"] is False
    (_, pool) = synth.one("AWS::Cognito::UserPool")
    assert pool["Properties"]["DeletionProtection"] == "INACTIVE"


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
    (endpoint_id, endpoint) = prod_synth.one("AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointName"] == "modamoda-prod-g5-xlarge"
    assert prod_synth.template["Outputs"]["InferenceEndpointName"]["Value"] == {
        "Fn::GetAtt": [endpoint_id, "EndpointName"]
    }
    (_, api) = prod_synth.one("AWS::ApiGatewayV2::Api")
    assert api["Properties"]["CorsConfiguration"]["AllowOrigins"] == ["https://app.example"]
    (_, client) = prod_synth.one("AWS::Cognito::UserPoolClient")
    assert client["Properties"]["CallbackURLs"] == [
        "https://app.example/",
        "https://app.example/auth/callback",
    ]
    assert client["Properties"]["LogoutURLs"] == ["https://app.example/"]
    api_env = prod_synth.functions()["functions.api.handler.lambda_handler"]["Environment"]["Variables"]
    assert api_env["WEB_ORIGINS"] == "https://app.example"


def test_prod_can_require_the_api_scope(prod_synth: Synth) -> None:
    """With ``accept_signin_scope=false`` only access tokens carrying ``modamoda/api`` (hosted UI) pass."""
    protected = [
        r["Properties"]
        for r in prod_synth.of_type("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["RouteKey"].endswith(" /v1/{proxy+}")
    ]
    assert protected
    for route in protected:
        assert route["AuthorizationType"] == "JWT"
        assert route["AuthorizationScopes"] == ["modamoda/api"]


def test_no_account_or_region_is_hard_coded_in_the_app() -> None:
    """Only the CDK CLI's environment (or a test's) names an account or region: the dev template is
    environment-agnostic, and the sources hold no account id or region name."""
    sources = [
        PROJECT_ROOT / "app.py",
        PROJECT_ROOT / "cdk.json",
        *sorted((PROJECT_ROOT / "infra").glob("*.py")),
    ]
    account = re.compile(r"\b\d{12}\b")
    region = re.compile(
        r"\b(us|eu|ap|sa|ca|me|af|il|mx)-(north|south|east|west|central|northeast|southeast)-\d\b"
    )
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not account.search(text), path
        assert not region.search(text), path


def test_dev_template_is_environment_agnostic(synth: Synth) -> None:
    text = json.dumps(synth.template)
    assert '"AWS::Region"' in text
    assert '"AWS::AccountId"' in text
    assert PROD_ACCOUNT not in text
