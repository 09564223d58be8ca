"""The billing Lambda with API Gateway HTTP API (payload 2.0) webhook deliveries, moto Secrets Manager and a
real PostgreSQL: 200 for processed / duplicate / ignored events, 400 for bad signatures or bodies (nothing
changes), 500 when Stripe should retry."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import psycopg
import pytest

from functions.billing import handler
from functions.common import db
from tests.conftest import FakeLambdaContext
from tests.stripe_support import (
    books,
    customer,
    dispute_event,
    fixture,
    purchase,
    session_event,
    sign,
    start_checkout,
)

pytestmark = pytest.mark.usefixtures("stripe_env")


def http_event(body: bytes, signature: str | None, *, base64_encoded: bool = False) -> dict[str, Any]:
    headers = {
        "content-type": "application/json; charset=utf-8",
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    if signature is not None:
        headers["stripe-signature"] = signature
    return {
        "version": "2.0",
        "routeKey": "POST /v1/billing/stripe/webhook",
        "rawPath": "/v1/billing/stripe/webhook",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/v1/billing/stripe/webhook",
                "protocol": "HTTP/1.1",
                "sourceIp": "3.18.12.63",
                "userAgent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "POST /v1/billing/stripe/webhook",
            "stage": "$default",
            "time": "23/Nov/2026:11:35:12 +0000",
            "timeEpoch": 1795433712000,
        },
        "body": base64.b64encode(body).decode() if base64_encoded else body.decode(),
        "isBase64Encoded": base64_encoded,
    }


def post(body: bytes, signature: str | None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = handler.lambda_handler(http_event(body, signature, **kwargs), FakeLambdaContext())
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def payload(event: dict[str, Any]) -> bytes:
    return json.dumps(event, indent=2).encode()


def test_paid_checkout_is_received_once() -> None:
    c = start_checkout(customer())
    event = session_event(c)
    body = payload(event)
    status, reply = post(body, sign(body))
    assert (status, reply) == (
        200,
        {"received": True, "id": event["id"], "type": "checkout.session.completed", "status": "processed"},
    )
    status, reply = post(body, sign(body))
    assert (status, reply["status"]) == (200, "duplicate")
    assert books(c.tenant_id) == 50


def test_base64_encoded_body_is_decoded_before_verification() -> None:
    c = start_checkout(customer())
    body = payload(session_event(c))
    status, reply = post(body, sign(body), base64_encoded=True)
    assert (status, reply["status"]) == (200, "processed")
    assert books(c.tenant_id) == 50


def test_unknown_event_type_is_acknowledged() -> None:
    body = payload(fixture("payment_intent.succeeded"))
    status, reply = post(body, sign(body))
    assert (status, reply["received"], reply["status"]) == (200, True, "ignored")


def _refused(body: bytes, signature: str | None, c: Any, **kwargs: Any) -> dict[str, Any]:
    status, reply = post(body, signature, **kwargs)
    assert status == 400
    assert books(c.tenant_id) == 0
    assert purchase(c)["status"] == "pending"
    return reply


def test_tampered_body_is_400_and_changes_nothing() -> None:
    c = start_checkout(customer())
    body = payload(session_event(c))
    header = sign(body)
    reply = _refused(body.replace(b'"credits": "50"', b'"credits": "5000"'), header, c)
    assert reply["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize(
    ("label", "make_header"),
    [
        ("wrong secret", lambda body: sign(body, secret="whsec_someone_else")),
        ("stale", lambda body: sign(body, timestamp=int(time.time()) - 301)),
        ("future", lambda body: sign(body, timestamp=int(time.time()) + 301)),
        ("missing", lambda body: None),
        ("garbage", lambda body: "sha256=abc"),
    ],
)
def test_bad_signatures_are_400_and_change_nothing(label: str, make_header: Any) -> None:
    c = start_checkout(customer())
    body = payload(session_event(c))
    reply = _refused(body, make_header(body), c)
    assert reply["error"]["code"] == "invalid_signature", label


def test_bad_base64_is_400() -> None:
    c = start_checkout(customer())
    event = http_event(b"", None)
    event.update(body="***not base64***", isBase64Encoded=True)
    response = handler.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_payload"
    assert books(c.tenant_id) == 0


def test_transient_failure_is_500_so_stripe_retries() -> None:
    c = start_checkout(customer())
    with psycopg.connect(
        db.dsn(admin=True), autocommit=True
    ) as owner:  # checkout never recorded the purchase
        owner.execute("DELETE FROM purchases WHERE id = %s", (c.purchase_id,))
    body = payload(dispute_event(c))  # our payment (its charge says so), not linked to a purchase yet
    status, reply = post(body, sign(body))
    assert status == 500
    assert reply["error"]["code"] == "purchase_unknown"
    completed = payload(session_event(c))
    assert post(completed, sign(completed))[0] == 200  # records the purchase and links the payment intent
    status, reply = post(body, sign(body))  # Stripe's retry, signed anew
    assert (status, reply["status"]) == (200, "processed")
    assert books(c.tenant_id) == 0


def test_missing_configuration_is_500(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.common import billing

    monkeypatch.delenv("STRIPE_SECRET_ARN")
    billing.reset()
    body = payload(fixture("payment_intent.succeeded"))
    status, reply = post(body, sign(body))
    assert status == 500
    assert reply["error"]["code"] == "config_missing"
