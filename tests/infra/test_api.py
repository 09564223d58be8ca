"""The Api function's extra permissions for API v1: API keys in its own user pool only, and job deletion that can
list versions only under uploads/."""

from __future__ import annotations

import pytest

from tests.infra.synthesis import Synth, as_list

pytestmark = pytest.mark.synth

API = "functions.api.handler.lambda_handler"
WEBHOOKS = "functions.webhooks.handler.lambda_handler"


def test_api_key_admin_calls_are_limited_to_the_user_pool(synth: Synth) -> None:
    (pool_id, _) = synth.one("AWS::Cognito::UserPool")
    cognito = [
        s
        for s in synth.policy_statements(API)
        if any(a.startswith("cognito-idp:") for a in as_list(s["Action"]))
    ]
    assert len(cognito) == 1
    assert set(as_list(cognito[0]["Action"])) == {
        "cognito-idp:AdminCreateUser",
        "cognito-idp:AdminSetUserPassword",
        "cognito-idp:AdminGetUser",
        "cognito-idp:AdminDeleteUser",
    }
    assert cognito[0]["Resource"] == {"Fn::GetAtt": [pool_id, "Arn"]}
    for handler in synth.functions():
        if handler != API:
            found = {a for a in synth.allowed_actions(handler) if a.startswith("cognito-idp:")}
            # the Webhooks function looks up a batch owner's e-mail address (infra/notifications.py)
            allowed = {"cognito-idp:ListUsers"} if handler == WEBHOOKS else set()
            assert found == allowed, handler


def test_api_knows_its_user_pool(synth: Synth) -> None:
    (pool_id, _) = synth.one("AWS::Cognito::UserPool")
    env = synth.functions()[API]["Environment"]["Variables"]
    assert env["USER_POOL_ID"] == {"Ref": pool_id}


def test_version_listing_is_limited_to_uploads(synth: Synth) -> None:
    """Listing (to delete a job's photo versions, to seal a batch) only under uploads/ and drop/."""
    listings = [s for s in synth.policy_statements(API) if "s3:ListBucketVersions" in as_list(s["Action"])]
    assert sorted(str(s["Condition"]) for s in listings) == sorted(
        str({"StringLike": {"s3:prefix": [prefix]}}) for prefix in ("uploads/*", "drop/*")
    )
    for statement in synth.policy_statements(API):
        if {"s3:ListBucket", "s3:ListBucketVersions"} & set(as_list(statement["Action"])):
            assert "Condition" in statement


def test_public_packs_need_no_token(synth: Synth) -> None:
    """The landing page's prices (``GET /v1/public/packs``) are public like the health route: no authorizer, the
    same Api function behind it; everything else under /v1 keeps the JWT authorizer."""
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
    }
    public = routes["GET /v1/public/packs"]
    assert public["AuthorizationType"] == "NONE"
    assert "AuthorizationScopes" not in public
    assert public["Target"] == routes["GET /v1/health"]["Target"] == routes["GET /v1/{proxy+}"]["Target"]
    assert routes["GET /v1/{proxy+}"]["AuthorizationType"] == "JWT"
    assert {key for key, route in routes.items() if route["AuthorizationType"] == "NONE"} == {
        "GET /v1/health",
        "GET /v1/public/packs",
        "POST /v1/billing/stripe/webhook",
    }
