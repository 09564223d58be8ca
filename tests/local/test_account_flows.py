"""The local stack as a new customer meets it, with sign-ups confirmed by code (``confirm_sign_ups``): the codes
Cognito would mail land in a local mailbox, confirmation and reset codes are checked, a resend replaces the code;
the account then shows the real e-mail address and name; the landing page's prices need no token; a purchase's
credits-history entry names its pack and links Stripe's (emulated) receipt, a page the local web server serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from local.client import ApiClient
from local.stack import LocalSettings, LocalStack
from local.stripe_emulator import StripeEmulator
from local.web import COGNITO_OPERATIONS, CognitoProxy, masked_address
from tests.local.conftest import PASSWORD, cognito, write_app

# ---- the Cognito proxy on moto alone (no stack) ------------------------------------------------------------------


@pytest.fixture
def pool(mocked_aws: None) -> tuple[Any, str, str]:
    client = boto3.client("cognito-idp", region_name="us-east-1")
    pool_id = client.create_user_pool(
        PoolName="p", UsernameAttributes=["email"], AutoVerifiedAttributes=["email"]
    )["UserPool"]["Id"]
    client_id = client.create_user_pool_client(
        UserPoolId=pool_id, ClientName="web", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    return client, pool_id, client_id


def proxy_call(proxy: CognitoProxy, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, _, data = proxy.handle(
        f"AWSCognitoIdentityProviderService.{operation}", json.dumps(body).encode()
    )
    return status, json.loads(data)


def sign_up(proxy: CognitoProxy, email: str) -> tuple[int, dict[str, Any]]:
    return proxy_call(
        proxy,
        "SignUp",
        {
            "ClientId": proxy.client_id,
            "Username": email,
            "Password": PASSWORD,
            "UserAttributes": [{"Name": "email", "Value": email}],
        },
    )


def attributes(client: Any, pool_id: str, email: str) -> dict[str, str]:
    user = client.admin_get_user(UserPoolId=pool_id, Username=email)
    return {a["Name"]: a["Value"] for a in user["UserAttributes"]} | {"status": user["UserStatus"]}


def test_resend_is_an_allowed_operation() -> None:
    assert "ResendConfirmationCode" in COGNITO_OPERATIONS
    assert masked_address("ada@example.com") == "a***@e***"


def test_by_default_a_sign_up_is_confirmed_and_verified_at_once(pool: tuple[Any, str, str]) -> None:
    client, pool_id, client_id = pool
    proxy = CognitoProxy(client, pool_id, client_id)
    status, body = sign_up(proxy, "quick@example.com")
    assert (status, body["UserConfirmed"]) == (200, True)
    assert "CodeDeliveryDetails" not in body
    assert attributes(client, pool_id, "quick@example.com")["email_verified"] == "true"
    assert proxy.mailbox == []  # nothing to mail
    # nothing to resend for a confirmed user, as Cognito answers
    status, body = proxy_call(
        proxy, "ResendConfirmationCode", {"ClientId": client_id, "Username": "quick@example.com"}
    )
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    # a reset code is mailed (and recorded) but, in this mode, any code is accepted
    status, body = proxy_call(
        proxy, "ForgotPassword", {"ClientId": client_id, "Username": "quick@example.com"}
    )
    assert status == 200
    assert body["CodeDeliveryDetails"]["Destination"] == "q***@e***"
    assert proxy.last_code("quick@example.com", "forgot_password") is not None
    status, _ = proxy_call(
        proxy,
        "ConfirmForgotPassword",
        {
            "ClientId": client_id,
            "Username": "quick@example.com",
            "ConfirmationCode": "000000",
            "Password": "Another-Passw0rd-1",
        },
    )
    assert status == 200


def test_in_confirm_mode_only_the_newest_mailed_code_confirms(pool: tuple[Any, str, str]) -> None:
    client, pool_id, client_id = pool
    proxy = CognitoProxy(client, pool_id, client_id, confirm_sign_ups=True)
    email = "careful@example.com"
    status, body = sign_up(proxy, email)
    assert (status, body["UserConfirmed"]) == (200, False)
    assert body["CodeDeliveryDetails"] == {
        "Destination": "c***@e***",
        "DeliveryMedium": "EMAIL",
        "AttributeName": "email",
    }
    [mail] = proxy.mailbox
    assert (mail["to"], mail["purpose"]) == (email, "sign_up")
    first = mail["code"]
    assert len(first) == 6
    assert first.isdigit()
    assert attributes(client, pool_id, email)["status"] == "UNCONFIRMED"

    status, body = proxy_call(proxy, "ResendConfirmationCode", {"ClientId": client_id, "Username": email})
    assert status == 200
    assert body["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    second = proxy.last_code(email)
    assert proxy.mailbox[-1]["purpose"] == "resend"
    assert second is not None

    def confirm(code: str) -> tuple[int, dict[str, Any]]:
        return proxy_call(
            proxy, "ConfirmSignUp", {"ClientId": client_id, "Username": email, "ConfirmationCode": code}
        )

    wrong = "000000" if second != "000000" else "111111"
    for code in {first, wrong} - {second}:  # the replaced code and a made-up one
        status, body = confirm(code)
        assert (status, body["__type"]) == (400, "CodeMismatchException")
        assert attributes(client, pool_id, email)["status"] == "UNCONFIRMED"
    assert confirm(second)[0] == 200
    confirmed = attributes(client, pool_id, email)
    assert (confirmed["status"], confirmed["email_verified"]) == ("CONFIRMED", "true")
    assert confirm(second)[1]["__type"] == "CodeMismatchException"  # used up
    status, body = proxy_call(
        proxy,
        "ConfirmSignUp",
        {"ClientId": client_id, "Username": "nobody@example.com", "ConfirmationCode": "1"},
    )
    assert (status, body["__type"]) == (400, "UserNotFoundException")
    status, body = proxy_call(proxy, "ResendConfirmationCode", {"ClientId": "other", "Username": email})
    assert (status, body["__type"]) == (400, "ResourceNotFoundException")


def test_in_confirm_mode_a_password_reset_needs_its_code(pool: tuple[Any, str, str]) -> None:
    client, pool_id, client_id = pool
    proxy = CognitoProxy(client, pool_id, client_id, confirm_sign_ups=True)
    email = "forgetful@example.com"
    sign_up(proxy, email)
    assert (
        proxy_call(
            proxy,
            "ConfirmSignUp",
            {"ClientId": client_id, "Username": email, "ConfirmationCode": proxy.last_code(email)},
        )[0]
        == 200
    )
    assert proxy_call(proxy, "ForgotPassword", {"ClientId": client_id, "Username": email})[0] == 200
    code = proxy.last_code(email, "forgot_password")
    assert code is not None
    assert code != proxy.last_code(email, "sign_up")

    def reset(with_code: str, password: str) -> tuple[int, dict[str, Any]]:
        return proxy_call(
            proxy,
            "ConfirmForgotPassword",
            {"ClientId": client_id, "Username": email, "ConfirmationCode": with_code, "Password": password},
        )

    status, body = reset(proxy.last_code(email, "sign_up") or "", "Wrong-Code-Passw0rd")
    assert (status, body["__type"]) == (400, "CodeMismatchException")
    assert reset(code, "Brand-New-Passw0rd")[0] == 200
    auth = client.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": "Brand-New-Passw0rd"},
    )
    assert auth["AuthenticationResult"]["AccessToken"]
    # an unknown address gets Cognito's usual answer, and nothing is mailed
    before = len(proxy.mailbox)
    assert (
        proxy_call(proxy, "ForgotPassword", {"ClientId": client_id, "Username": "ghost@example.com"})[0]
        == 200
    )
    assert len(proxy.mailbox) == before


# ---- the Stripe emulator's receipts (no stack) --------------------------------------------------------------------


def test_a_paid_sessions_payment_intent_expands_to_its_charge_and_receipt() -> None:
    emulator = StripeEmulator(
        "sk_test_x", "whsec_x", "http://127.0.0.1:1/local/stripe/checkout", retry_seconds=0
    )
    headers = {"authorization": "Bearer sk_test_x"}
    params = (
        "mode=payment&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd"
        "&line_items[0][price_data][unit_amount]=900"
        "&line_items[0][price_data][product_data][name]=Modamoda Starter: 10 credits"
        "&success_url=http://127.0.0.1:1/ok"
    )
    status, _, body = emulator.handle_api("POST", "/v1/checkout/sessions", headers, params.encode())
    session = json.loads(body)
    assert emulator.pay(session["id"])[0] == 303
    intent_id = emulator.sessions[session["id"]]["payment_intent"]
    status, _, body = emulator.handle_api(
        "GET", f"/v1/payment_intents/{intent_id}?expand%5B0%5D=latest_charge", headers, b""
    )
    charge = json.loads(body)["latest_charge"]
    assert status == 200
    assert charge["object"] == "charge"
    assert charge["receipt_url"] == f"http://127.0.0.1:1/local/stripe/receipts/{charge['id']}"
    status, _, body = emulator.handle_api("GET", f"/v1/payment_intents/{intent_id}", headers, b"")
    assert json.loads(body)["latest_charge"] == charge["id"]  # not expanded: the id

    status, page_headers, page = emulator.receipt_page(charge["id"])
    text = page.decode()
    assert (status, page_headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert "Modamoda Starter: 10 credits" in text
    assert "9.00 USD" in text
    assert 'id="date"' in text
    assert "<script" not in text
    assert emulator.receipt_page("ch_nothing")[0] == 404


# ---- the whole stack, sign-ups confirmed by code -------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    app = write_app(tmp_path_factory.mktemp("app"))
    with LocalStack(LocalSettings(web_app_dir=app, confirm_sign_ups=True)) as running:
        yield running


@pytest.mark.e2e
def test_a_new_customer_confirms_by_code_and_sees_their_address_and_name(stack: LocalStack) -> None:
    email = "grace@example.com"
    signed_up = cognito(
        stack,
        "SignUp",
        {
            "ClientId": stack.client_id,
            "Username": email,
            "Password": PASSWORD,
            "UserAttributes": [{"Name": "email", "Value": email}, {"Name": "name", "Value": "Grace Hopper"}],
        },
    )
    assert signed_up.status_code == 200, signed_up.text
    assert signed_up.json()["UserConfirmed"] is False
    sign_in = {
        "ClientId": stack.client_id,
        "AuthFlow": "USER_PASSWORD_AUTH",
        "AuthParameters": {"USERNAME": email, "PASSWORD": PASSWORD},
    }
    refused = cognito(stack, "InitiateAuth", sign_in)
    assert (refused.status_code, refused.json()["__type"]) == (400, "UserNotConfirmedException")
    assert cognito(stack, "ResendConfirmationCode", {"ClientId": stack.client_id, "Username": email}).ok
    assert [m["purpose"] for m in stack.web.mailbox if m["to"] == email] == ["sign_up", "resend"]
    code = stack.last_code(email)
    assert code == stack.web.mailbox[-1]["code"]
    confirmed = cognito(
        stack, "ConfirmSignUp", {"ClientId": stack.client_id, "Username": email, "ConfirmationCode": code}
    )
    assert confirmed.status_code == 200, confirmed.text

    token = cognito(stack, "InitiateAuth", sign_in).json()["AuthenticationResult"]["AccessToken"]
    api = ApiClient(stack.api_url, token)
    account = api.request("GET", "/v1/account")
    assert (account["email"], account["tenant_name"]) == (email, "Grace Hopper")
    assert api.me()["email"] == email


@pytest.mark.e2e
def test_the_landing_pages_prices_need_no_token(stack: LocalStack) -> None:
    response = requests.get(f"{stack.api_url}/v1/public/packs", timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["costs"] == {"ghost": 1}  # the local stack runs no diffusion engine: on-model is not offered
    assert [p["id"] for p in body["items"]] == ["starter", "studio", "pro", "agency"]
    assert requests.get(f"{stack.api_url}/v1/credits/packs", timeout=30).status_code == 401


@pytest.mark.e2e
def test_a_purchase_in_the_history_names_its_pack_and_links_its_receipt(stack: LocalStack) -> None:
    email = "buyer@example.com"
    tokens = stack.sign_up(email, PASSWORD)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = requests.post(
        f"{stack.api_url}/v1/credits/checkout",
        headers=headers,
        json={
            "pack_id": "starter",
            "success_url": f"{stack.web_url}/#/credits?checkout=done",
            "cancel_url": f"{stack.web_url}/#/credits",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    paid = requests.post(f"{created.json()['checkout_url']}/pay", allow_redirects=False, timeout=60)
    assert paid.status_code == 303
    ledger = requests.get(f"{stack.api_url}/v1/credits/ledger", headers=headers, timeout=30).json()["items"]
    bought, welcome = ledger
    assert bought["description"] == "Bought the Starter pack (10 credits)"
    assert welcome["description"] == "Welcome credits"
    receipt = bought["receipt_url"]
    assert receipt.startswith(f"{stack.web_url}/local/stripe/receipts/ch_")
    page = requests.get(receipt, timeout=30)
    assert page.status_code == 200
    assert "Modamoda Starter: 10 credits" in page.text
    assert "9.00 USD" in page.text
    assert 'id="date"' in page.text
    account = requests.get(f"{stack.api_url}/v1/account", headers=headers, timeout=30).json()
    assert (account["email"], account["tenant_name"]) == (email, email)
