"""The local HTTP API checks tokens the way API Gateway's JWT authorizer does."""

from __future__ import annotations

import gzip
import json
import time
from importlib import resources
from typing import Any

import jwt
import pytest

from local.gateway import JwtAuthorizer, build_event, moto_cognito_jwks

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
        "exp": now + 300,
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
