"""The local Stripe: the billing code's real API calls over HTTP, the test Checkout page, and signed webhooks that
grant credits exactly once."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
import requests
import stripe

from functions.common import billing
from local.stack import LocalStack
from local.stripe_emulator import StripeEmulator, decode_params, format_amount
from tests.local.conftest import User, new_user
from tests.stripe_support import fixture as stripe_fixture

pytestmark = pytest.mark.e2e  # the module's stack; the unit tests at the top need none

API_KEY = "sk_test_local_unit"
SECRET = "whsec_local_unit"


# ---- unit ----------------------------------------------------------------------------------------------------


def test_stripe_form_encoding_is_decoded_to_nested_objects() -> None:
    text = (
        "mode=payment&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd"
        "&line_items[0][price_data][unit_amount]=900&line_items[0][price_data][product_data][name]=Starter"
        "&line_items[1][quantity]=2&metadata[tenant_id]=t1&expand[]=a&expand[]=b"
    )
    assert decode_params(text) == {
        "mode": "payment",
        "line_items": [
            {
                "quantity": "1",
                "price_data": {"currency": "usd", "unit_amount": "900", "product_data": {"name": "Starter"}},
            },
            {"quantity": "2"},
        ],
        "metadata": {"tenant_id": "t1"},
        "expand": ["a", "b"],
    }


def test_amounts_are_shown_in_the_currencys_units() -> None:
    assert format_amount(3900, "usd") == "39.00 USD"
    assert format_amount(123456, "eur") == "1,234.56 EUR"
    assert format_amount(500, "jpy") == "500 JPY"


def call(emulator: StripeEmulator, params: str, key: str | None = None, api_key: str = API_KEY) -> Any:
    headers = {"authorization": f"Bearer {api_key}"}
    if key:
        headers["idempotency-key"] = key
    status, reply_headers, body = emulator.handle_api(
        "POST", "/v1/checkout/sessions", headers, params.encode()
    )
    return status, reply_headers, json.loads(body)


PARAMS = (
    "mode=payment&line_items[0][quantity]=1&line_items[0][price_data][currency]=usd"
    "&line_items[0][price_data][unit_amount]=900&line_items[0][price_data][product_data][name]=Starter"
    "&success_url=http://127.0.0.1:1/ok&cancel_url=http://127.0.0.1:1/no&metadata[purchase_id]=p1"
)


def test_the_emulator_answers_like_stripe() -> None:
    emulator = StripeEmulator(API_KEY, SECRET, "http://127.0.0.1:1/local/stripe/checkout")
    status, _, session = call(emulator, PARAMS, key="k1")
    assert status == 200
    assert session["object"] == "checkout.session"
    assert session["id"].startswith("cs_test_")
    assert session["url"] == f"http://127.0.0.1:1/local/stripe/checkout/{session['id']}"
    assert (session["amount_total"], session["currency"], session["status"]) == (900, "usd", "open")
    assert session["payment_status"] == "unpaid"
    assert session["metadata"] == {"purchase_id": "p1"}

    status, headers, again = call(emulator, PARAMS, key="k1")  # a retried request: the same session
    assert (status, again["id"], headers.get("idempotent-replayed")) == (200, session["id"], "true")
    status, _, error = call(emulator, PARAMS.replace("900", "901"), key="k1")
    assert status == 400
    assert error["error"]["type"] == "idempotency_error"

    status, _, error = call(emulator, PARAMS, api_key="sk_test_wrong")
    assert status == 401
    assert error["error"]["type"] == "invalid_request_error"
    status, _, error = call(emulator, PARAMS.replace("mode=payment&", ""))
    assert (status, error["error"]["code"], error["error"]["param"]) == (400, "parameter_missing", "mode")

    headers = {"authorization": f"Bearer {API_KEY}"}
    status, _, body = emulator.handle_api("GET", f"/v1/checkout/sessions/{session['id']}", headers, b"")
    assert (status, json.loads(body)["id"]) == (200, session["id"])
    status, _, body = emulator.handle_api(
        "POST", f"/v1/checkout/sessions/{session['id']}/expire", headers, b""
    )
    assert (status, json.loads(body)["status"]) == (200, "expired")
    assert emulator.pay(session["id"])[0] == 410  # an expired session cannot be paid
    status, _, body = emulator.handle_api("GET", "/v1/customers", headers, b"")
    assert status == 404


def test_a_paid_session_has_a_charge_with_the_payment_intents_metadata() -> None:
    emulator = StripeEmulator(API_KEY, SECRET, "http://127.0.0.1:1/local/stripe/checkout", retry_seconds=0)
    status, _, session = call(emulator, PARAMS + "&payment_intent_data[metadata][modamoda_deployment]=local")
    assert status == 200
    assert emulator.pay(session["id"])[0] == 303  # paid (no webhook endpoint here), then to success_url
    intent_id = emulator.sessions[session["id"]]["payment_intent"]
    charge_id = f"ch_{intent_id[3:]}"
    headers = {"authorization": f"Bearer {API_KEY}"}
    status, _, body = emulator.handle_api("GET", f"/v1/charges/{charge_id}", headers, b"")
    charge = json.loads(body)
    assert (status, charge["object"], charge["payment_intent"]) == (200, "charge", intent_id)
    assert charge["metadata"] == {"modamoda_deployment": "local"}
    status, _, body = emulator.handle_api(
        "GET", f"/v1/charges/{charge_id}?expand%5B0%5D=payment_intent", headers, b""
    )
    expanded = json.loads(body)["payment_intent"]
    assert (status, expanded["id"], expanded["metadata"]) == (
        200,
        intent_id,
        {"modamoda_deployment": "local"},
    )
    status, _, body = emulator.handle_api("GET", "/v1/charges/ch_3nothing", headers, b"")
    assert (status, json.loads(body)["error"]["code"]) == (404, "resource_missing")


def test_stripe_python_talks_to_the_emulator_through_stripe_api_base(stack: LocalStack) -> None:
    client = billing.stripe_client()
    created = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 900,
                        "product_data": {"name": "Starter"},
                    },
                }
            ],
            "success_url": f"{stack.web_url}/#/credits",
        },
        options={"idempotency_key": "direct-1"},
    )
    assert created.url == f"{stack.web_url}/local/stripe/checkout/{created.id}"
    assert client.v1.checkout.sessions.retrieve(created.id).amount_total == 900
    wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": f"{stack.web_url}/local/stripe/api"})
    with pytest.raises(stripe.AuthenticationError):
        wrong.v1.checkout.sessions.retrieve(created.id)


# ---- end to end: checkout via the API, the page, payment, the webhook --------------------------------------------


def balance(user: User) -> int:
    return int(user.api.request("GET", "/v1/credits")["balance"])


def start_checkout(
    stack: LocalStack, user: User, pack_id: str = "studio", key: str | None = None
) -> dict[str, Any]:
    headers = {**user.headers, **({"Idempotency-Key": key} if key else {})}
    response = requests.post(
        f"{stack.api_url}/v1/credits/checkout",
        headers=headers,
        json={
            "pack_id": pack_id,
            "success_url": f"{stack.web_url}/#/credits?checkout=done&session={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{stack.web_url}/#/credits?checkout=cancelled",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(stack: LocalStack, session_id: str) -> list[Any]:
    return [
        d
        for d in stack.stripe.deliveries
        if d.event_id in stack.stripe.events
        and stack.stripe.events[d.event_id]["data"]["object"]["id"] == session_id
    ]


def test_checkout_pay_grants_the_pack_exactly_once(stack: LocalStack) -> None:
    user = new_user(stack)
    before = balance(user)
    checkout = start_checkout(stack, user, "studio")
    session_id = checkout["session_id"]
    assert checkout["checkout_url"] == f"{stack.web_url}/local/stripe/checkout/{session_id}"

    page = requests.get(checkout["checkout_url"], timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "Modamoda Studio: 50 credits" in page.text
    assert "39.00 USD" in page.text
    assert 'id="pay"' in page.text
    assert "Pay with test card" in page.text
    assert f'id="cancel" href="{stack.web_url}/#/credits?checkout=cancelled"' in page.text
    assert "<script" not in page.text  # no inline script: the CSP forbids it

    paid = requests.post(f"{checkout['checkout_url']}/pay", allow_redirects=False, timeout=60)
    assert paid.status_code == 303
    assert paid.headers["location"] == f"{stack.web_url}/#/credits?checkout=done&session={session_id}"
    assert balance(user) == before + 50
    [delivery] = deliveries(stack, session_id)
    assert delivery.ok
    assert json.loads(delivery.body)["status"] == "processed"
    event = stack.stripe.events[delivery.event_id]
    assert event["type"] == "checkout.session.completed"
    session = event["data"]["object"]
    assert session["payment_status"] == "paid"
    assert session["payment_intent"].startswith("pi_")
    assert session["client_reference_id"] == user.api.me()["tenant_id"]
    assert session["metadata"]["credits"] == "50"
    assert (session["amount_total"], session["currency"]) == (3900, "usd")

    # Paying again (back button, double click) sends nothing new; the page now says it is paid.
    again = requests.post(f"{checkout['checkout_url']}/pay", allow_redirects=False, timeout=60)
    assert again.status_code == 303
    assert len(deliveries(stack, session_id)) == 1
    assert "Already paid" in requests.get(checkout["checkout_url"], timeout=30).text
    # Stripe delivers at least once: a replayed event is a duplicate.
    replay = stack.stripe.resend(delivery.event_id)
    assert replay.ok
    assert json.loads(replay.body)["status"] == "duplicate"
    assert balance(user) == before + 50

    ledger = user.api.request("GET", "/v1/credits/ledger")["items"]
    purchases = [e for e in ledger if (e["meta"] or {}).get("checkout_session") == session_id]
    assert [(e["kind"], e["amount"], e["meta"]["reason"]) for e in purchases] == [("grant", 50, "purchase")]


def test_a_dispute_is_claimed_through_its_charge_in_the_emulator(stack: LocalStack) -> None:
    """A dispute names only its charge (no payment intent, no metadata): the webhook retrieves the charge from the
    local Stripe over HTTP, finds this deployment's purchase in its metadata and takes the credits back; a dispute
    on a charge the account does not have is acknowledged and ignored."""
    user = new_user(stack)
    before = balance(user)
    checkout = start_checkout(stack, user, "studio")
    assert (
        requests.post(f"{checkout['checkout_url']}/pay", allow_redirects=False, timeout=60).status_code == 303
    )
    assert balance(user) == before + 50
    intent = stack.stripe.sessions[checkout["session_id"]]["payment_intent"]
    charge_id = f"ch_{intent[3:]}"
    assert stack.stripe.charges[charge_id]["metadata"]["modamoda_deployment"] == "local"
    outcomes = {}
    for charge in (charge_id, "ch_3NotThisAccount0001"):
        event = stripe_fixture("charge.dispute.created")
        event.update(id=f"evt_{uuid.uuid4().hex[:24]}", created=int(time.time()))
        event["data"]["object"].update(
            id=f"dp_{charge[3:]}", charge=charge, payment_intent=None, amount=3900, status="needs_response"
        )
        delivery = stack.stripe.deliver(event)
        assert delivery.ok, delivery
        outcomes[charge] = json.loads(delivery.body)["status"]
    assert outcomes == {charge_id: "processed", "ch_3NotThisAccount0001": "ignored"}
    assert balance(user) == before


def test_following_the_redirect_lands_on_the_app(stack: LocalStack) -> None:
    user = new_user(stack)
    checkout = start_checkout(stack, user, "starter")
    landed = requests.post(f"{checkout['checkout_url']}/pay", timeout=60)  # follows the 303
    assert landed.status_code == 200
    assert landed.url.startswith(f"{stack.web_url}/")
    assert "app shell" in landed.text


def test_concurrent_payments_of_one_session_grant_once(stack: LocalStack) -> None:
    user = new_user(stack)
    before = balance(user)
    checkout = start_checkout(stack, user, "starter")
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def pay() -> None:
        barrier.wait()
        statuses.append(
            requests.post(f"{checkout['checkout_url']}/pay", allow_redirects=False, timeout=60).status_code
        )

    threads = [threading.Thread(target=pay) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [303] * 4
    assert len(deliveries(stack, checkout["session_id"])) == 1
    assert balance(user) == before + 10


def test_cancel_grants_nothing(stack: LocalStack) -> None:
    user = new_user(stack)
    before = balance(user)
    checkout = start_checkout(stack, user, "pro")
    page = requests.get(checkout["checkout_url"], timeout=30).text
    cancel_url = page.split('id="cancel" href="')[1].split('"')[0]
    assert cancel_url == f"{stack.web_url}/#/credits?checkout=cancelled"
    assert requests.get(cancel_url, timeout=30).status_code == 200  # back in the app
    assert deliveries(stack, checkout["session_id"]) == []
    assert balance(user) == before
    assert stack.stripe.sessions[checkout["session_id"]]["status"] == "open"


def test_a_retried_checkout_request_returns_the_same_session(stack: LocalStack) -> None:
    user = new_user(stack)
    first = start_checkout(stack, user, "starter", key="retry-1")
    second = start_checkout(stack, user, "starter", key="retry-1")
    assert first["session_id"] == second["session_id"]
    assert start_checkout(stack, user, "starter", key="retry-2")["session_id"] != first["session_id"]


def test_return_urls_must_be_on_the_apps_origin(stack: LocalStack) -> None:
    user = new_user(stack)
    response = requests.post(
        f"{stack.api_url}/v1/credits/checkout",
        headers=user.headers,
        json={
            "pack_id": "starter",
            "success_url": "https://evil.example/done",
            "cancel_url": f"{stack.web_url}/#/credits",
        },
        timeout=30,
    )
    assert 400 <= response.status_code < 500
    # The app opened as http://localhost:<port> is the same app.
    local = stack.web_url.replace("127.0.0.1", "localhost")
    response = requests.post(
        f"{stack.api_url}/v1/credits/checkout",
        headers=user.headers,
        json={"pack_id": "starter", "success_url": f"{local}/#/credits", "cancel_url": f"{local}/#/credits"},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def test_the_webhook_route_needs_no_token_but_a_signature(stack: LocalStack) -> None:
    event = {
        "id": "evt_forged",
        "object": "event",
        "type": "checkout.session.completed",
        "created": 1,
        "data": {},
    }
    response = requests.post(
        f"{stack.api_url}/v1/billing/stripe/webhook",
        data=json.dumps(event),
        headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"},
        timeout=30,
    )
    assert response.status_code == 400  # reached the billing function (no 401), which refused the signature
    assert response.json()["error"]["code"]
