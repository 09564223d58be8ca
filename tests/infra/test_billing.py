"""Billing in the synthesised template: the Stripe secret, the webhook Lambda on a public (signature-checked)
route, and Stripe access for the Api Lambda."""

from __future__ import annotations

import json
from typing import Any

import pytest

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.billing import BILLING_HANDLER, SECRET_PLACEHOLDER, WEBHOOK_PATH
from tests.infra.synthesis import Synth

pytestmark = pytest.mark.synth

API_HANDLER = "functions.api.handler.lambda_handler"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _stripe_secret(synth: Synth) -> str:
    (secret_id,) = [
        lid
        for lid, res in synth.of_type("AWS::SecretsManager::Secret").items()
        if "GenerateSecretString" not in res["Properties"]
    ]
    return secret_id


def test_stripe_secret_is_created_with_placeholders(synth: Synth) -> None:
    secret = synth.resources[_stripe_secret(synth)]
    assert json.loads(secret["Properties"]["SecretString"]) == SECRET_PLACEHOLDER
    assert secret["DeletionPolicy"] == "Delete"
    assert synth.template["Outputs"]["StripeSecretArn"]["Value"] == {"Ref": _stripe_secret(synth)}


def test_prod_keeps_the_stripe_secret(prod_synth: Synth) -> None:
    assert prod_synth.resources[_stripe_secret(prod_synth)]["DeletionPolicy"] == "Retain"


def test_webhook_and_api_lambdas_read_the_stripe_secret(synth: Synth) -> None:
    secret_id = _stripe_secret(synth)
    functions = synth.functions()
    for handler in (BILLING_HANDLER, API_HANDLER):
        env = functions[handler]["Environment"]["Variables"]
        assert env["STRIPE_SECRET_ARN"] == {"Ref": secret_id}, handler
        # the deployment's id (account/region/stack), put on every Stripe object it creates
        deployment = json.dumps(env["MODAMODA_DEPLOYMENT"])
        assert all(part in deployment for part in ("AWS::AccountId", "AWS::Region", "Modamoda-")), deployment
        reads = [
            s
            for s in synth.policy_statements(handler)
            if "secretsmanager:GetSecretValue" in s["Action"]
            and {"Ref": secret_id} in _as_list(s["Resource"])
        ]
        assert reads, handler
    webhook = functions[BILLING_HANDLER]
    assert "DB_SECRET_ARN" in webhook["Environment"]["Variables"]  # it writes purchases and the ledger
    assert webhook["Timeout"] <= 29
    others = set(functions) - {BILLING_HANDLER, API_HANDLER}
    for handler in others:
        assert "STRIPE_SECRET_ARN" not in functions[handler]["Environment"]["Variables"], handler
        resources = json.dumps([s["Resource"] for s in synth.policy_statements(handler)])
        assert secret_id not in resources, handler


def test_webhook_route_is_public_and_reaches_the_billing_lambda(synth: Synth) -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
    }
    route = routes[f"POST {WEBHOOK_PATH}"]
    assert route["AuthorizationType"] == "NONE"
    assert "AuthorizerId" not in route
    assert [key for key in routes if WEBHOOK_PATH in key] == [f"POST {WEBHOOK_PATH}"]
    # the protected catch-all still exists; the exact path is more specific, so API Gateway picks it
    assert routes["POST /v1/{proxy+}"]["AuthorizationType"] == "JWT"

    integration_id = route["Target"]["Fn::Join"][1][1]["Ref"]
    integration = synth.resources[integration_id]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    webhook_id = synth.function_id(BILLING_HANDLER)
    assert integration["IntegrationUri"] == {"Fn::GetAtt": [webhook_id, "Arn"]}
    permissions = [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [webhook_id, "Arn"]}
    ]
    assert [p["Principal"] for p in permissions] == ["apigateway.amazonaws.com"]
    assert WEBHOOK_PATH in json.dumps(permissions[0]["SourceArn"])


def test_webhook_waits_for_the_schema(synth: Synth) -> None:
    webhook = synth.resources[synth.function_id(BILLING_HANDLER)]
    (migrations_id, _) = synth.one("Custom::ModamodaMigrations")
    assert migrations_id in webhook.get("DependsOn", [])
