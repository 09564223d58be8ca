"""Each purchase's receipt: when the webhook fulfils a checkout it asks Stripe for the payment's hosted receipt
(the session's PaymentIntent with ``expand[]=latest_charge``: ``latest_charge.receipt_url``) and stores it with the
purchase, after the credits are granted; the credits history shows it beside the purchase, in words. Stripe without
a receipt (yet), or not answering, never fails the fulfilment; a later delivery fills it in."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from functions.common import credit_history, credits, db
from functions.common.models import LedgerEntry
from tests import stripe_support
from tests.functions.billing.test_takebacks_and_ownership import send
from tests.stripe_support import (
    FakeStripeHTTP,
    books,
    customer,
    purchase,
    receipt_url,
    refund_event,
    session_event,
    start_checkout,
)

pytestmark = pytest.mark.usefixtures("stripe_env")


def api() -> FakeStripeHTTP:
    assert stripe_support.stripe_api is not None
    return stripe_support.stripe_api


def history(tenant_id: str) -> list[LedgerEntry]:
    with db.transaction(tenant_id) as conn:
        rows, _ = credits.ledger_page(conn, tenant_id, 20, None)
    return [credit_history.entry(r) for r in rows]


def intent_requests() -> list[dict[str, Any]]:
    return [r for r in api().requests if "/v1/payment_intents/" in r["url"]]


def processed(reply: tuple[int, dict[str, Any]]) -> str:
    status, body = reply
    assert status == 200, body
    return str(body["status"])


def test_a_fulfilled_checkout_stores_stripes_receipt() -> None:
    c = start_checkout(customer("receipt-buyer", welcome=10), "starter")
    event = session_event(c)
    assert processed(send(event)) == "processed"
    assert books(c.tenant_id) == 20
    assert purchase(c)["receipt_url"] == receipt_url(c)
    (asked,) = intent_requests()
    parts = urllib.parse.urlsplit(asked["url"])
    assert parts.path == f"/v1/payment_intents/{c.payment_intent}"
    assert ("expand[0]", "latest_charge") in urllib.parse.parse_qsl(parts.query)

    bought, welcome = history(c.tenant_id)
    assert (bought.kind, bought.amount) == ("grant", 10)
    assert bought.description == "Bought the Starter pack (10 credits)"
    assert bought.receipt_url == receipt_url(c)
    assert (bought.job_filename, bought.batch_id) == (None, None)
    assert (welcome.description, welcome.receipt_url) == ("Welcome credits", None)

    # a replay changes nothing and asks Stripe nothing more (the receipt is stored)
    assert processed(send(event)) == "duplicate"
    assert processed(send(session_event(c, "checkout.session.async_payment_succeeded"))) == "processed"
    assert len(intent_requests()) == 1
    assert books(c.tenant_id) == 20


def test_no_receipt_yet_never_fails_the_fulfilment_and_a_later_delivery_adds_it() -> None:
    c = start_checkout(customer("early-buyer"), "studio")
    charge = api().charges.pop(c.charge_id)  # Stripe has no charge to show for the payment yet (404)
    event = session_event(c)
    assert processed(send(event)) == "processed"
    assert books(c.tenant_id) == 50
    assert purchase(c)["receipt_url"] is None
    (bought,) = history(c.tenant_id)
    assert (bought.description, bought.receipt_url) == ("Bought the Studio pack (50 credits)", None)

    api().charges[c.charge_id] = charge  # the event delivered again (``stripe events resend``, a retry)
    assert processed(send(event)) == "duplicate"
    assert books(c.tenant_id) == 50  # granted once
    assert history(c.tenant_id)[0].receipt_url == receipt_url(c)


@pytest.mark.parametrize("status", [500, 401, 429])
def test_stripe_failing_to_answer_never_fails_the_fulfilment(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = start_checkout(customer(f"unlucky-buyer-{status}"), "starter")
    original = FakeStripeHTTP.request

    def failing(self: FakeStripeHTTP, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if "/v1/payment_intents/" in url:
            return '{"error": {"type": "api_error", "message": "boom"}}', status, {}
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(FakeStripeHTTP, "request", failing)
    assert processed(send(session_event(c))) == "processed"
    assert books(c.tenant_id) == 10
    assert purchase(c)["receipt_url"] is None


def test_a_receipt_that_is_not_a_web_address_is_not_stored() -> None:
    c = start_checkout(customer("odd-buyer"), "starter")
    api().charges[c.charge_id]["receipt_url"] = "javascript:alert(1)"
    assert processed(send(session_event(c))) == "processed"
    assert purchase(c)["receipt_url"] is None
    assert books(c.tenant_id) == 10


def test_a_refund_names_its_pack_and_carries_the_receipt() -> None:
    c = start_checkout(customer("refunded-buyer"), "studio")
    api().charges.pop(c.charge_id)
    assert processed(send(session_event(c))) == "processed"
    assert purchase(c)["receipt_url"] is None
    # the refunded charge carries its receipt: a purchase without one takes it
    assert processed(send(refund_event(c, c.amount_total // 2))) == "processed"
    refund, bought = history(c.tenant_id)
    assert (refund.kind, refund.amount) == ("refund", -25)
    assert refund.description == "25 credits removed: the Studio pack purchase was refunded"
    stored = purchase(c)["receipt_url"]
    assert stored is not None
    assert stored.startswith("https://pay.stripe.com/receipts/")
    assert refund.receipt_url == bought.receipt_url == stored
