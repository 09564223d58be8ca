"""The local HTTP API checks tokens the way API Gateway's JWT authorizer does."""

from __future__ import annotations

import base64
import gzip
import json
import time
from importlib import resources
from typing import Any

import jwt
import pytest
import requests

from local.gateway import JwtAuthorizer, LocalHttpApi, build_event, moto_cognito_jwks
from local.lambda_runtime import LocalLambda

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test"


def private_key() -> jwt.PyJWK:
    raw = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz").read_bytes()
    return jwt.PyJWK(json.loads(gzip.decompress(raw)))


def token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "user-1",
        "client_id": "web",
        "token_use": "access",
        "iat": now,
        "exp": now + 86400,  # parametrized tokens are made at collection; the suite may run long
        "scope": "aws.cognito.signin.user.admin",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    key = private_key()
    return jwt.encode(claims, key.key, algorithm="RS256", headers={"kid": key.key_id})


@pytest.fixture
def authorizer() -> JwtAuthorizer:
    return JwtAuthorizer(
        ISSUER,
        ["web"],
        moto_cognito_jwks(),
        required_scopes=["modamoda/api", "aws.cognito.signin.user.admin"],
    )


def test_a_valid_access_token_passes(authorizer: JwtAuthorizer) -> None:
    assert authorizer.verify(f"Bearer {token()}")["sub"] == "user-1"
    assert (
        authorizer.verify(f"bearer {token(scope='openid modamoda/api')}")["sub"] == "user-1"
    )  # any one scope


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer"),
        ("Basic abc", "missing bearer"),
        (f"Bearer {token(exp=int(time.time()) - 10)}", "invalid token"),
        (f"Bearer {token(iss='https://evil.example/')}", "invalid token"),
        (f"Bearer {token(client_id='other-client')}", "audience"),
        (f"Bearer {token(scope='openid email')}", "scope"),
        (f"Bearer {token(sub=None)}", "invalid token"),
        (f"Bearer {token()[:-4]}AAAA", "invalid token"),
        ("Bearer not.a.jwt", "invalid token"),
    ],
)
def test_bad_tokens_are_refused(authorizer: JwtAuthorizer, header: str | None, reason: str) -> None:
    with pytest.raises(PermissionError, match=reason):
        authorizer.verify(header)


def test_claims_reach_the_handler_as_strings() -> None:
    event = build_event(
        "GET", "/v1/jobs?limit=2&limit=3", {"host": "x"}, b"", {"sub": "u", "exp": 5}, "127.0.0.1"
    )
    assert event["queryStringParameters"] == {"limit": "2,3"}
    assert event["requestContext"]["authorizer"]["jwt"]["claims"] == {"sub": "u", "exp": "5"}
    assert event["rawPath"] == "/v1/jobs"


class RecordingLambdas(LocalLambda):
    def __init__(self) -> None:
        super().__init__({})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, name: str, event: Any) -> tuple[Any, str | None]:
        self.calls.append((name, event))
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}, None


def test_the_stripe_webhook_route_goes_to_billing_without_a_token(authorizer: JwtAuthorizer) -> None:
    lambdas = RecordingLambdas()
    api = LocalHttpApi(lambdas, authorizer, cors_origins=["http://127.0.0.1:8787"])
    try:
        status, _, _ = api.handle(
            "POST", "/v1/billing/stripe/webhook", {"stripe-signature": "t=1,v1=x"}, b"{}", "127.0.0.1"
        )
        assert status == 200
        name, event = lambdas.calls[-1]
        assert name == "modamoda-billing"
        assert event["routeKey"] == "POST /v1/billing/stripe/webhook"
        assert "authorizer" not in event["requestContext"]
        # Any other route still needs a token; GET on the webhook path is not the webhook route.
        assert api.handle("GET", "/v1/billing/stripe/webhook", {}, b"", "127.0.0.1")[0] == 401
        assert api.handle("GET", "/v1/me", {}, b"", "127.0.0.1")[0] == 401
        assert len(lambdas.calls) == 1
    finally:
        api.server.server_close()


def test_cors_admits_only_the_pwa_origins(authorizer: JwtAuthorizer) -> None:
    api = LocalHttpApi(
        RecordingLambdas(), authorizer, cors_origins=["http://127.0.0.1:8787", "http://localhost:8787"]
    )
    try:
        status, headers, _ = api.handle(
            "OPTIONS", "/v1/jobs", {"origin": "http://localhost:8787"}, b"", "::1"
        )
        assert status == 204
        assert headers["access-control-allow-origin"] == "http://localhost:8787"
        assert headers["access-control-allow-headers"] == "authorization,content-type,idempotency-key"
        assert "DELETE" in headers["access-control-allow-methods"]
        _, headers, _ = api.handle("OPTIONS", "/v1/jobs", {"origin": "https://evil.example"}, b"", "::1")
        assert "access-control-allow-origin" not in headers
        _, headers, _ = api.handle("GET", "/v1/me", {"origin": "http://127.0.0.1:8787"}, b"", "::1")
        assert headers["access-control-allow-origin"] == "http://127.0.0.1:8787"  # on the 401 too
    finally:
        api.server.server_close()


def test_methods_and_paths_without_a_route_are_404_before_authorization(authorizer: JwtAuthorizer) -> None:
    lambdas = RecordingLambdas()
    api = LocalHttpApi(lambdas, authorizer).start()
    try:
        for method, path in (("TRACE", "/v1/me"), ("PROPFIND", "/v1/jobs"), ("GET", "/"), ("GET", "/v2/me")):
            response = requests.request(method, f"{api.url}{path}", timeout=10)
            assert (response.status_code, response.json()) == (404, {"message": "Not Found"}), (method, path)
        # HEAD is routed like the cloud's /v1/{proxy+} HEAD route: behind the authorizer (health is GET only).
        head = requests.head(f"{api.url}/v1/health", timeout=10)
        assert (head.status_code, head.content) == (401, b"")
        assert lambdas.calls == []
    finally:
        api.stop()


def test_bodies_that_are_not_utf8_reach_the_handler_base64_encoded() -> None:
    body = b"\xff\xfe not utf-8"
    event = build_event("POST", "/v1/jobs", {"content-type": "application/json"}, body, None, "::1")
    assert event["isBase64Encoded"] is True
    assert event["body"] == base64.b64encode(body).decode()
    text = build_event(
        "POST", "/v1/jobs", {"content-type": "application/json"}, b'{"a": "\xc3\xbc"}', None, "::1"
    )
    assert (text["isBase64Encoded"], text["body"]) == (False, '{"a": "ü"}')
