"""Account routes: profile and rename, the webhook (URL rules, secret shown once), and API keys as Cognito users
of the tenant (moto Cognito: a key signs in and acts for its tenant; a revoked key is refused at once)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import boto3
import psycopg
import pytest

from functions.common import accounts
from tests.functions.api.conftest import make_user_pool
from tests.functions.api.test_handler import call


def test_account_shows_the_tenant(api_env: None) -> None:
    status, account = call("GET", "/v1/account")
    assert status == 200
    _, me = call("GET", "/v1/me")
    assert {k: account[k] for k in me} == me
    assert account["tenant_name"] == "user-a"  # a new tenant is named after its first user
    assert account["webhook"] is None
    assert account["created_at"]


def test_rename_account(api_env: None) -> None:
    status, account = call("PATCH", "/v1/account", body={"name": "  Shop of Anna  "})
    assert status == 200
    assert account["tenant_name"] == "Shop of Anna"
    assert call("GET", "/v1/account")[1]["tenant_name"] == "Shop of Anna"
    assert call("GET", "/v1/account", sub="user-b")[1]["tenant_name"] != "Shop of Anna"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "a\nb"},
        {},
        {"name": "a", "kind": "business"},
    ],
)
def test_bad_names_are_refused(api_env: None, body: dict[str, Any]) -> None:
    status, error = call("PATCH", "/v1/account", body=body)
    assert status == 422
    assert error["error"]["code"] == "validation_error"
    assert error["error"]["details"]


# ---- webhook ----------------------------------------------------------------------------------------------------


def test_webhook_secret_is_shown_once_and_rotates(api_env: None) -> None:
    status, hook = call("PUT", "/v1/account/webhook", body={"url": "https://shop.example.com/hooks/modamoda"})
    assert status == 200
    assert hook["url"] == "https://shop.example.com/hooks/modamoda"
    assert hook["secret"].startswith("whsec_")
    assert len(hook["secret"]) > 40
    account = call("GET", "/v1/account")[1]
    assert account["webhook"]["url"] == hook["url"]
    assert account["webhook"]["secret_hint"] == "whsec_…" + hook["secret"][-4:]
    assert hook["secret"] not in json.dumps(account)
    again = call("PUT", "/v1/account/webhook", body={"url": "http://localhost:8080/hook"})[1]
    assert again["secret"] != hook["secret"]
    assert call("GET", "/v1/account", sub="user-b")[1]["webhook"] is None
    assert call("DELETE", "/v1/account/webhook") == (204, {})
    assert call("GET", "/v1/account")[1]["webhook"] is None
    assert call("DELETE", "/v1/account/webhook") == (204, {})  # idempotent


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/hook",
        "https://shop.example.com:8443/hook?token=abc",
        "https://8.8.8.8/hook",
        "https://[2001:4860:4860::8888]/hook",
        "http://localhost:3000/hook",
        "http://127.0.0.1/hook",
        "http://[::1]:9000/hook",
        "https://xn--bcher-kva.example/hook",
    ],
)
def test_good_webhook_urls(api_env: None, url: str) -> None:
    assert call("PUT", "/v1/account/webhook", body={"url": url})[0] == 200


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example.com/hook",  # http only for localhost
        "ftp://shop.example.com/hook",
        "javascript:alert(1)",
        "shop.example.com/hook",
        "https://user:pass@shop.example.com/hook",
        "https://user@shop.example.com/hook",
        "https://shop.example.com/hook#fragment",
        "https://shop.example.com/ hook",
        "https:///hook",
        "https://localhost/hook",
        "https://app.localhost/hook",
        "https://10.0.0.5/hook",
        "https://192.168.1.1/hook",
        "https://172.16.0.1/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://2130706433/hook",  # 127.0.0.1 spelled as a number
        "https://0x7f.1/hook",
        "https://127.1/hook",
        "https://intranet/hook",
        "https://shop.example.com:99999/hook",
        "https://" + "a" * 2000 + ".example/hook",
    ],
)
def test_bad_webhook_urls(api_env: None, url: str) -> None:
    status, body = call("PUT", "/v1/account/webhook", body={"url": url})
    assert status == 422, url
    assert body["error"]["code"] == "validation_error"
    assert call("GET", "/v1/account")[1]["webhook"] is None


# ---- API keys ---------------------------------------------------------------------------------------------------


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def sign_in_with(api_key: str, client_id: str) -> dict[str, str]:
    """What a machine client does: the key is the password of its Cognito user; the access token's claims."""
    parsed = accounts.parse_api_key(api_key)
    assert parsed is not None
    username, password = parsed
    result = boto3.client("cognito-idp", region_name="us-east-1").initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )["AuthenticationResult"]
    return {k: str(v) for k, v in claims_of(result["AccessToken"]).items()}


def test_api_key_signs_in_and_acts_for_its_tenant(user_pool: dict[str, str]) -> None:
    _, me = call("GET", "/v1/me")
    status, key = call("POST", "/v1/account/api-keys", body={"name": "Shopify sync"})
    assert status == 201
    assert key["name"] == "Shopify sync"
    assert key["api_key"].startswith(f"mmk_{key['id']}_")
    assert key["prefix"] == f"mmk_{key['id'][:8]}"
    claims = sign_in_with(key["api_key"], user_pool["client_id"])
    assert claims["token_use"] == "access"
    status, machine = call("GET", "/v1/me", claims=claims)
    assert status == 200
    assert machine["tenant_id"] == me["tenant_id"]
    assert machine["balance"] == me["balance"]  # no second welcome grant, no new tenant
    assert (
        call("POST", "/v1/jobs", claims=claims, body={"filename": "a.jpg", "content_type": "image/jpeg"})[0]
        == 201
    )
    # the person sees the machine's job (still waiting for its photo: listed when the status is asked for)
    assert len(call("GET", "/v1/jobs", query="status=awaiting_upload")[1]["items"]) == 1

    status, listed = call("GET", "/v1/account/api-keys")
    assert status == 200
    assert listed["items"] == [
        {
            "id": key["id"],
            "name": "Shopify sync",
            "prefix": key["prefix"],
            "created_at": key["created_at"],
            "revoked_at": None,
        }
    ]
    assert key["api_key"] not in json.dumps(listed)
    assert call("GET", "/v1/account/api-keys", sub="user-b")[1]["items"] == []


def test_secrets_meet_the_strict_cloud_password_policy(
    api_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_id, client_id = make_user_pool(
        {
            "MinimumLength": 12,
            "RequireUppercase": True,
            "RequireLowercase": True,
            "RequireNumbers": True,
            "RequireSymbols": True,  # infra/api.py
        }
    )
    monkeypatch.setenv("USER_POOL_ID", pool_id)
    for i in range(5):
        status, key = call("POST", "/v1/account/api-keys", body={"name": f"key {i}"})
        assert status == 201, key
        assert sign_in_with(key["api_key"], client_id)["sub"]


def test_revoked_key_is_refused_even_with_an_unexpired_token(
    user_pool: dict[str, str], conn: psycopg.Connection
) -> None:
    _, key = call("POST", "/v1/account/api-keys", body={"name": "ci"})
    claims = sign_in_with(key["api_key"], user_pool["client_id"])
    assert call("GET", "/v1/me", claims=claims)[0] == 200
    assert call("DELETE", f"/v1/account/api-keys/{key['id']}") == (204, {})
    status, body = call("GET", "/v1/me", claims=claims)  # the same, still unexpired token
    assert status == 401
    assert body["error"]["code"] == "api_key_revoked"
    assert call("GET", "/v1/jobs", claims=claims)[0] == 401
    with pytest.raises(boto3.client("cognito-idp", region_name="us-east-1").exceptions.ClientError):
        sign_in_with(key["api_key"], user_pool["client_id"])  # its Cognito user is gone
    (listed,) = call("GET", "/v1/account/api-keys")[1]["items"]
    assert listed["revoked_at"] is not None
    assert call("DELETE", f"/v1/account/api-keys/{key['id']}") == (204, {})  # idempotent
    row = conn.execute("SELECT tenant_id FROM users WHERE sub = %s", (claims["sub"],)).fetchone()
    assert row is not None  # kept, so the subject is never provisioned as a new tenant


def test_api_keys_cannot_manage_api_keys(user_pool: dict[str, str]) -> None:
    _, key = call("POST", "/v1/account/api-keys", body={"name": "robot"})
    claims = sign_in_with(key["api_key"], user_pool["client_id"])
    status, body = call("POST", "/v1/account/api-keys", claims=claims, body={"name": "more"})
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    assert call("DELETE", f"/v1/account/api-keys/{key['id']}", claims=claims)[0] == 403
    assert len(call("GET", "/v1/account/api-keys")[1]["items"]) == 1


def test_active_keys_are_limited(user_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_API_KEYS", "2")
    first = call("POST", "/v1/account/api-keys", body={"name": "one"})[1]
    assert call("POST", "/v1/account/api-keys", body={"name": "two"})[0] == 201
    status, body = call("POST", "/v1/account/api-keys", body={"name": "three"})
    assert status == 409
    assert body["error"]["code"] == "too_many_api_keys"
    users = boto3.client("cognito-idp", region_name="us-east-1").list_users(UserPoolId=user_pool["pool_id"])
    assert len(users["Users"]) == 2  # the refused key left no Cognito user behind
    call("DELETE", f"/v1/account/api-keys/{first['id']}")
    assert call("POST", "/v1/account/api-keys", body={"name": "three"})[0] == 201


def test_a_failed_key_leaves_no_cognito_user(
    user_pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.common import db

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(db, "atomic", broken)
    status, body = call("POST", "/v1/account/api-keys", body={"name": "doomed"})
    assert status == 500
    assert body["error"]["code"] == "internal_error"
    users = boto3.client("cognito-idp", region_name="us-east-1").list_users(UserPoolId=user_pool["pool_id"])
    assert users["Users"] == []


@pytest.mark.parametrize("body", [{"name": ""}, {"name": " "}, {}, {"name": "x" * 101}])
def test_bad_key_names(user_pool: dict[str, str], body: dict[str, Any]) -> None:
    assert call("POST", "/v1/account/api-keys", body=body)[0] == 422


def test_unknown_or_malformed_key_ids_are_not_found(user_pool: dict[str, str]) -> None:
    assert call("DELETE", f"/v1/account/api-keys/{uuid.uuid4()}")[1]["error"]["code"] == "not_found"
    assert call("DELETE", "/v1/account/api-keys/not-a-uuid")[0] == 404


def test_parse_api_key() -> None:
    key_id = str(uuid.uuid4())
    assert accounts.parse_api_key(f"mmk_{key_id}_Ab1-x_y") == (
        f"apikey-{key_id}@api-keys.modamoda.invalid",
        "Ab1-x_y",
    )
    for bad in ("", "mmk_", f"mmk_{key_id}", f"mmk_{key_id}_", f"xyz_{key_id}_secret", "mmk_nope_secret"):
        assert accounts.parse_api_key(bad) is None


def test_new_secrets_meet_the_policy() -> None:
    for _ in range(200):
        secret = accounts.new_secret()
        assert len(secret) >= 12
        assert any(c.isupper() for c in secret)
        assert any(c.islower() for c in secret)
        assert any(c.isdigit() for c in secret)
        assert any(c in "-_" for c in secret)
