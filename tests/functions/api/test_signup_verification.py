"""Welcome credits need a verified e-mail address: a user confirmed without one gets no account and a clear 403
until the address is verified, then the account and its credits, exactly once. Real tokens of moto's Cognito, the
pool asked through the Api function's own check (functions/common/signups.py), real PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import jwt
import psycopg
import pytest

from functions.common import signups
from tests.functions.api.test_handler import call

PASSWORD = "Welcome-Credits-42"  # a test user's password
# The real check: api_env replaces it with "verified" for the other API tests, whose users have no Cognito user.
REAL_CHECK = signups.require_verified_email


@pytest.fixture
def pool(user_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setattr(signups, "require_verified_email", REAL_CHECK)
    return user_pool


def cognito() -> Any:
    return boto3.client("cognito-idp", region_name="us-east-1")


def signed_up(pool: dict[str, str], email: str, *, verified: bool) -> dict[str, Any]:
    """A user who signed up and was confirmed (as ``AdminConfirmSignUp`` confirms, without the address), the address
    verified or not; the claims API Gateway passes on for its access token."""
    client = cognito()
    client.sign_up(
        ClientId=pool["client_id"],
        Username=email,
        Password=PASSWORD,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    client.admin_confirm_sign_up(UserPoolId=pool["pool_id"], Username=email)
    if verified:
        verify(pool, email)
    token = client.initiate_auth(
        ClientId=pool["client_id"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]["AccessToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "email_verified" not in claims  # access tokens carry no e-mail claims
    assert "email" not in claims
    return {key: str(value) for key, value in claims.items()}


def verify(pool: dict[str, str], email: str) -> None:
    cognito().admin_update_user_attributes(
        UserPoolId=pool["pool_id"],
        Username=email,
        UserAttributes=[{"Name": "email_verified", "Value": "true"}],
    )


def accounts(conn: psycopg.Connection, sub: str) -> tuple[int, list[tuple[str, int]]]:
    """(users rows of the subject, the (kind, amount) ledger entries of its tenant)."""
    users = conn.execute("SELECT tenant_id FROM users WHERE sub = %s", (sub,)).fetchall()
    ledger: list[tuple[str, int]] = []
    for user in users:
        ledger += [
            (row["kind"], row["amount"])
            for row in conn.execute(
                "SELECT kind, amount FROM ledger WHERE tenant_id = %s ORDER BY id", (user["tenant_id"],)
            )
        ]
    return len(users), ledger


def test_unverified_address_gets_no_account_and_a_sentence_then_the_credits_once_verified(
    pool: dict[str, str], conn: psycopg.Connection
) -> None:
    email = "new-shop@example.com"
    claims = signed_up(pool, email, verified=False)

    status, body = call("GET", "/v1/me", claims=claims)
    assert status == 403
    assert body["error"]["code"] == "email_not_verified"
    message = body["error"]["message"]
    assert message.startswith("Please confirm your e-mail address")
    assert "10 welcome credits" in message
    # every route, before anything is created: no tenant, no user, no credits
    status, body = call(
        "POST", "/v1/jobs", claims=claims, body={"filename": "a.jpg", "content_type": "image/jpeg"}
    )
    assert (status, body["error"]["code"]) == (403, "email_not_verified")
    assert accounts(conn, claims["sub"]) == (0, [])

    verify(pool, email)  # the user enters the code
    status, me = call("GET", "/v1/me", claims=claims)  # the same, still valid token
    assert status == 200
    assert me["balance"] == 10
    status, again = call("GET", "/v1/me", claims=claims)
    assert (again["tenant_id"], again["balance"]) == (me["tenant_id"], 10)
    assert accounts(conn, claims["sub"]) == (1, [("grant", 10)])


def test_a_verified_sign_up_gets_its_credits_exactly_once_under_concurrent_first_calls(
    pool: dict[str, str], conn: psycopg.Connection
) -> None:
    claims = signed_up(pool, "busy-shop@example.com", verified=True)
    with ThreadPoolExecutor(max_workers=4) as workers:
        answers = list(workers.map(lambda _: call("GET", "/v1/me", claims=claims), range(4)))
    assert {status for status, _ in answers} == {200}
    assert len({me["tenant_id"] for _, me in answers}) == 1
    assert {me["balance"] for _, me in answers} == {10}
    assert accounts(conn, claims["sub"]) == (1, [("grant", 10)])


def test_a_provisioned_user_is_not_asked_about_again(
    pool: dict[str, str], conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool is asked only for subjects the API has not provisioned: a known user costs no Cognito call (and
    keeps its account if its address later becomes unverified)."""
    claims = signed_up(pool, "known-shop@example.com", verified=True)
    assert call("GET", "/v1/me", claims=claims)[0] == 200
    asked: list[str] = []

    def unverified(cognito: Any, user_pool_id: str, name: str) -> signups.Profile:
        asked.append(name)
        return signups.Profile(email="known-shop@example.com", email_verified=False)

    monkeypatch.setattr(signups, "profile", unverified)
    status, me = call("GET", "/v1/me", claims=claims)
    assert (status, me["balance"], asked) == (200, 10, [])


def test_a_deleted_user_with_an_unexpired_token_is_unauthorized(pool: dict[str, str]) -> None:
    claims = signed_up(pool, "gone-shop@example.com", verified=False)
    cognito().admin_delete_user(UserPoolId=pool["pool_id"], Username="gone-shop@example.com")
    status, body = call("GET", "/v1/me", claims=claims)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
