"""The account shows the person's real e-mail address and name although access tokens carry neither: they come
from the user pool (the AdminGetUser the sign-up check makes anyway), are stored with the user, and accounts
provisioned before (their stored address is the Cognito user name, a UUID) are corrected on their next call, once.
Real tokens of moto's Cognito, real PostgreSQL."""

from __future__ import annotations

from typing import Any

import boto3
import jwt
import psycopg
import pytest

from functions.common import signups, tenants
from tests.functions.api.test_handler import call
from tests.functions.api.test_signup_verification import REAL_CHECK

PASSWORD = "Real-Address-42x"


@pytest.fixture
def pool(user_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setattr(signups, "require_verified_email", REAL_CHECK)
    return user_pool


def cognito() -> Any:
    return boto3.client("cognito-idp", region_name="us-east-1")


def signed_up(pool: dict[str, str], email: str, name: str | None = None) -> dict[str, str]:
    """A confirmed sign-up with a verified address (and a ``name`` attribute if given): its access token's claims."""
    attributes = [{"Name": "email", "Value": email}]
    if name is not None:
        attributes.append({"Name": "name", "Value": name})
    client = cognito()
    client.sign_up(ClientId=pool["client_id"], Username=email, Password=PASSWORD, UserAttributes=attributes)
    client.admin_confirm_sign_up(UserPoolId=pool["pool_id"], Username=email)
    client.admin_update_user_attributes(
        UserPoolId=pool["pool_id"],
        Username=email,
        UserAttributes=[{"Name": "email_verified", "Value": "true"}],
    )
    token = client.initiate_auth(
        ClientId=pool["client_id"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]["AccessToken"]
    claims = {k: str(v) for k, v in jwt.decode(token, options={"verify_signature": False}).items()}
    assert "email" not in claims  # access tokens carry no e-mail claims
    assert claims["username"] != email  # pools that sign in with the address: the user name is an id
    return claims


def count_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    real = signups.profile

    def counted(client: Any, user_pool_id: str, name: str) -> signups.Profile:
        asked.append(name)
        return real(client, user_pool_id, name)

    monkeypatch.setattr(signups, "profile", counted)
    return asked


def test_an_access_token_without_email_shows_the_real_address_and_name(
    pool: dict[str, str], conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = signed_up(pool, "ada@example.com", name="Ada Lovelace")
    asked = count_lookups(monkeypatch)
    status, account = call("GET", "/v1/account", claims=claims)
    assert status == 200
    assert account["email"] == "ada@example.com"
    assert account["tenant_name"] == "Ada Lovelace"
    assert call("GET", "/v1/me", claims=claims)[1]["email"] == "ada@example.com"
    assert asked == [claims["username"]]  # once, at provisioning; then from the database
    row = conn.execute("SELECT email FROM users WHERE sub = %s", (claims["sub"],)).fetchone()
    assert row == {"email": "ada@example.com"}


def test_without_a_name_the_account_is_named_after_the_address(pool: dict[str, str]) -> None:
    claims = signed_up(pool, "shop@example.com")
    _, account = call("GET", "/v1/account", claims=claims)
    assert (account["email"], account["tenant_name"]) == ("shop@example.com", "shop@example.com")


def test_an_account_from_before_is_corrected_once(
    pool: dict[str, str], conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = signed_up(pool, "early@example.com", name="Early Bird")
    # provisioned as the API did before: the token's user name (a UUID) as address and as the tenant's name
    old = tenants.ensure_user(claims["sub"], claims["username"], 10)
    assert old.email == claims["username"]
    asked = count_lookups(monkeypatch)
    status, account = call("GET", "/v1/account", claims=claims)
    assert status == 200
    assert (account["email"], account["tenant_name"], account["balance"]) == (
        "early@example.com",
        "Early Bird",
        10,
    )
    assert call("GET", "/v1/me", claims=claims)[1]["email"] == "early@example.com"
    assert call("GET", "/v1/account", claims=claims)[1]["email"] == "early@example.com"
    assert len(asked) == 1  # corrected on the first call; later calls read the database only
    row = conn.execute("SELECT email FROM users WHERE sub = %s", (claims["sub"],)).fetchone()
    assert row == {"email": "early@example.com"}


def test_a_name_the_customer_chose_is_kept(pool: dict[str, str], conn: psycopg.Connection) -> None:
    claims = signed_up(pool, "named@example.com", name="Someone")
    old = tenants.ensure_user(claims["sub"], claims["username"], 0)
    conn.execute("UPDATE tenants SET name = 'Atelier Nord' WHERE id = %s", (old.tenant_id,))
    _, account = call("GET", "/v1/account", claims=claims)
    assert (account["email"], account["tenant_name"]) == ("named@example.com", "Atelier Nord")


def test_an_old_account_keeps_working_when_the_pool_cannot_tell(
    pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = signed_up(pool, "busy@example.com")
    tenants.ensure_user(claims["sub"], claims["username"], 3)
    real = signups.profile

    def busy(client: Any, user_pool_id: str, name: str) -> signups.Profile:
        raise signups.TransientError("the identity service is busy")

    monkeypatch.setattr(signups, "profile", busy)
    status, account = call("GET", "/v1/account", claims=claims)
    assert (status, account["balance"]) == (200, 3)  # shown as before; the next call tries again
    monkeypatch.setattr(signups, "profile", real)
    assert call("GET", "/v1/account", claims=claims)[1]["email"] == "busy@example.com"
