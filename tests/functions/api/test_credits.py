"""Credit routes of the HTTP API: balance and holds, the ledger (keyset-paginated, tenant-scoped), packs, and
Checkout through a fake Stripe HTTP client (no network)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from functions.api import handler
from functions.common import billing, credits, db
from tests.conftest import FakeLambdaContext, create_job, load_event
from tests.functions.api.test_handler import call
from tests.stripe_support import CANCEL_URL, SUCCESS_URL, FakeStripeHTTP, books

CHECKOUT = {"pack_id": "studio", "success_url": SUCCESS_URL, "cancel_url": CANCEL_URL}


@pytest.fixture
def stripe_http(stripe_env: str, monkeypatch: pytest.MonkeyPatch) -> FakeStripeHTTP:
    from functions.common import signups

    # callers with a verified e-mail (they have no Cognito user here; test_signup_verification.py runs the check)
    monkeypatch.setattr(signups, "require_verified_email", lambda claims, welcome_credits: None)
    monkeypatch.setenv("SIGNUP_GRANT_CREDITS", "10")
    http = FakeStripeHTTP()
    monkeypatch.setattr(handler, "stripe_client", lambda: billing.stripe_client(http_client=http))
    return http


def test_balance_and_held_credits(stripe_http: FakeStripeHTTP) -> None:
    tenant_id, job_id = create_job(sub="user-a", welcome=10)
    assert call("GET", "/v1/credits") == (200, {"balance": 10, "held": 0})
    db.atomic(tenant_id, lambda conn: credits.reserve(conn, tenant_id, job_id, 3, 600))
    assert call("GET", "/v1/credits") == (200, {"balance": 7, "held": 3})
    assert call("GET", "/v1/credits", sub="user-b") == (200, {"balance": 10, "held": 0})


def test_packs_are_listed_in_order(stripe_http: FakeStripeHTTP) -> None:
    status, body = call("GET", "/v1/credits/packs")
    assert status == 200
    assert [(p["id"], p["credits"], p["price_cents"], p["currency"]) for p in body["items"]] == [
        ("starter", 10, 900, "usd"),
        ("studio", 50, 3900, "usd"),
        ("pro", 200, 12900, "usd"),
        ("agency", 1000, 54900, "usd"),
    ]


def test_checkout_returns_the_stripe_page(stripe_http: FakeStripeHTTP) -> None:
    _, me = call("GET", "/v1/me")
    status, body = call("POST", "/v1/credits/checkout", body=CHECKOUT)
    assert status == 201
    assert body["checkout_url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert body["session_id"].startswith("cs_test_")
    (request,) = stripe_http.requests
    params = request["params"]
    assert request["url"] == "https://api.stripe.com/v1/checkout/sessions"
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == me["tenant_id"]
    assert params["metadata[tenant_id]"] == me["tenant_id"]
    assert params["metadata[pack_id]"] == "studio"
    assert params["metadata[credits]"] == "50"
    assert params["payment_intent_data[metadata][tenant_id]"] == me["tenant_id"]
    assert params["payment_intent_data[metadata][purchase_id]"] == params["metadata[purchase_id]"]
    assert params["line_items[0][price_data][unit_amount]"] == "3900"
    assert params["success_url"] == SUCCESS_URL
    with db.transaction(me["tenant_id"]) as conn:
        row = conn.execute("SELECT checkout_session, status FROM purchases").fetchone()
    assert row == {"checkout_session": body["session_id"], "status": "pending"}
    assert call("GET", "/v1/credits")[1]["balance"] == 10  # nothing granted until Stripe says it is paid


def test_checkout_honours_the_idempotency_key(stripe_http: FakeStripeHTTP) -> None:
    def checkout(key: str) -> dict[str, Any]:
        event = copy.deepcopy(load_event("apigw_http_get_me.json"))
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/credits/checkout"
        event["requestContext"]["http"]["method"] = "POST"
        event["headers"].update({"content-type": "application/json", "idempotency-key": key})
        event["body"] = json.dumps(CHECKOUT)
        response = handler.lambda_handler(event, FakeLambdaContext())
        assert response["statusCode"] == 201
        return dict(json.loads(response["body"]))

    assert checkout("retry-1") == checkout("retry-1")
    assert checkout("retry-2") != checkout("retry-1")


def test_unknown_pack_is_404(stripe_http: FakeStripeHTTP) -> None:
    status, body = call("POST", "/v1/credits/checkout", body={**CHECKOUT, "pack_id": "platinum"})
    assert status == 404
    assert body["error"]["code"] == "pack_not_found"
    assert stripe_http.requests == []


@pytest.mark.parametrize(
    "change",
    [
        {"success_url": "http://app.example/done"},
        {"cancel_url": "javascript:alert(1)"},
        {"success_url": "https://user:secret@app.example/"},
        {"success_url": "not a url"},
        {"pack_id": "Studio!"},
        {"extra": True},
    ],
)
def test_bad_checkout_requests_are_422(stripe_http: FakeStripeHTTP, change: dict[str, Any]) -> None:
    status, body = call("POST", "/v1/credits/checkout", body={**CHECKOUT, **change})
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]
    assert stripe_http.requests == []


def test_ledger_paginates_newest_first_and_is_tenant_scoped(stripe_http: FakeStripeHTTP) -> None:
    _, me = call("GET", "/v1/me")
    tenant_id = me["tenant_id"]
    for i in range(6):
        db.atomic(tenant_id, lambda conn, i=i: credits.grant(conn, tenant_id, i + 1, f"bonus:{i}", "bonus"))
    seen: list[int] = []
    cursor = None
    while True:
        status, page = call(
            "GET", "/v1/credits/ledger", query="limit=3" + (f"&cursor={cursor}" if cursor else "")
        )
        assert status == 200
        assert len(page["items"]) <= 3
        seen += [item["amount"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [6, 5, 4, 3, 2, 1, 10]  # newest first; the welcome grant is the oldest
    assert sum(seen) == books(tenant_id) == call("GET", "/v1/credits")[1]["balance"]
    first = call("GET", "/v1/credits/ledger", query="limit=1")[1]["items"][0]
    assert (first["kind"], first["meta"]) == ("grant", {"reason": "bonus"})
    _, other = call("GET", "/v1/credits/ledger", sub="user-b")
    assert [item["amount"] for item in other["items"]] == [10]
    assert call("GET", "/v1/credits/ledger", query="cursor=garbage")[0] == 422
    assert call("GET", "/v1/credits/ledger", query="cursor=eyJhIjogMX0=")[0] == 422  # {"a": 1}
    assert call("GET", "/v1/credits/ledger", query="limit=0")[0] == 422
