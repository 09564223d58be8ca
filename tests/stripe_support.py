"""Stripe, offline: events shaped like Stripe's (tests/events/stripe), signed with the stripe library's own
``WebhookSignature.generate_signature_header``, and a fake ``stripe.HTTPClient`` for the API calls."""

from __future__ import annotations

import copy
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe

from functions.common import billing, credits, db
from functions.common.tenants import Identity, ensure_user

STRIPE_EVENTS = Path(__file__).parent / "events" / "stripe"
API_KEY = "sk_test_51ModamodaTestKey000000000000000000000000000000000000"
WEBHOOK_SECRET = "whsec_modamoda_test_signing_secret_0123456789"
DEPLOYMENT = "123456789012/us-east-1/Modamoda-test"  # MODAMODA_DEPLOYMENT in the tests
SUCCESS_URL = "https://app.example/credits?checkout=done&session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://app.example/credits?checkout=cancelled"


# The Stripe API the billing code reaches while a test runs (the ``stripe_env`` fixture sets it): checkouts
# started with ``start_checkout`` put their charge in it.
stripe_api: FakeStripeHTTP | None = None


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((STRIPE_EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def sign(payload: str | bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send (the library's helper: ``t=...,v1=HMAC-SHA256``)."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    return stripe.WebhookSignature.generate_signature_header(text, secret, timestamp)


def signed(event: dict[str, Any], **kwargs: Any) -> tuple[bytes, str]:
    payload = json.dumps(
        event, indent=2
    )  # Stripe delivers pretty-printed JSON; the signature covers the bytes
    return payload.encode("utf-8"), sign(payload, **kwargs)


def deliver(event: dict[str, Any], **kwargs: Any) -> billing.WebhookResult:
    return billing.handle_webhook(*signed(event, **kwargs))


class FakeStripeHTTP(stripe.HTTPClient):
    """Answers ``POST /v1/checkout/sessions`` like Stripe (replaying by idempotency key), ``GET /v1/charges/{id}``
    (``expand[]=payment_intent`` too) and ``GET /v1/payment_intents/{id}`` (``expand[]=latest_charge`` too) from
    ``charges``; records every request."""

    name = "fake"

    def __init__(self, *, status: int = 200, error: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.status, self.error = status, error
        self.requests: list[dict[str, Any]] = []
        self.charges: dict[str, dict[str, Any]] = {}
        self._replies: dict[str, str] = {}

    def _charge(self, url: str) -> tuple[str, int]:
        parts = urllib.parse.urlsplit(url)
        charge_id = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
        charge = copy.deepcopy(self.charges.get(charge_id))
        if charge is None:
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "id",
                "message": f"No such charge: '{charge_id}'",
            }
            return json.dumps({"error": error}), 404
        expand = [v for k, v in urllib.parse.parse_qsl(parts.query) if k.startswith("expand")]
        if "payment_intent" in expand and charge.get("payment_intent"):
            charge["payment_intent"] = {
                "id": charge["payment_intent"],
                "object": "payment_intent",
                "amount": charge["amount"],
                "currency": charge["currency"],
                "status": "succeeded",
                "latest_charge": charge["id"],
                "livemode": charge["livemode"],
                "metadata": dict(charge["metadata"]),
            }
        return json.dumps(charge), 200

    def _payment_intent(self, url: str) -> tuple[str, int]:
        """``GET /v1/payment_intents/{id}`` (``expand[]=latest_charge`` too) for the charges in ``charges``."""
        parts = urllib.parse.urlsplit(url)
        intent_id = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
        charge = next((c for c in self.charges.values() if c.get("payment_intent") == intent_id), None)
        if charge is None:
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "intent",
                "message": f"No such payment_intent: '{intent_id}'",
            }
            return json.dumps({"error": error}), 404
        expand = [v for k, v in urllib.parse.parse_qsl(parts.query) if k.startswith("expand")]
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": charge["amount"],
            "currency": charge["currency"],
            "status": "succeeded",
            "latest_charge": copy.deepcopy(charge) if "latest_charge" in expand else charge["id"],
            "livemode": charge["livemode"],
            "metadata": dict(charge["metadata"]),
        }
        return json.dumps(intent), 200

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None, *, _usage: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        text = post_data.decode() if isinstance(post_data, bytes) else post_data or ""
        params = {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}
        headers = dict(headers or {})
        self.requests.append({"method": method, "url": url, "headers": headers, "params": params})
        reply_headers = {"request-id": f"req_{uuid.uuid4().hex[:14]}"}
        if self.status != 200:
            body = self.error or {"error": {"type": "api_error", "message": "boom"}}
            return json.dumps(body), self.status, reply_headers
        if method == "get" and urllib.parse.urlsplit(url).path.startswith("/v1/charges/"):
            body, status = self._charge(url)
            return body, status, reply_headers
        if method == "get" and urllib.parse.urlsplit(url).path.startswith("/v1/payment_intents/"):
            body, status = self._payment_intent(url)
            return body, status, reply_headers
        key = headers.get("Idempotency-Key", "")
        if key in self._replies:
            return self._replies[key], 200, reply_headers
        assert method == "post", method
        assert url.endswith("/v1/checkout/sessions"), url
        session = fixture("checkout_session_object")
        session_id = f"cs_test_{uuid.uuid4().hex}{uuid.uuid4().hex[:20]}"
        session.update(
            id=session_id,
            url=f"https://checkout.stripe.com/c/pay/{session_id}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
            amount_subtotal=int(params["line_items[0][price_data][unit_amount]"]),
            amount_total=int(params["line_items[0][price_data][unit_amount]"]),
            currency=params["line_items[0][price_data][currency]"],
            client_reference_id=params.get("client_reference_id"),
            metadata={k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")},
            success_url=params["success_url"],
            cancel_url=params["cancel_url"],
            customer_email=params.get("customer_email"),
            created=int(time.time()),
        )
        self._replies[key] = json.dumps(session)
        return self._replies[key], 200, reply_headers

    def close(self) -> None:
        pass


@dataclass
class Checkout:
    """A started checkout (a pending purchase) and the ids Stripe will use for its payment."""

    who: Identity
    session_id: str
    purchase_id: str
    pack_id: str
    credits: int
    amount_total: int
    payment_intent: str
    charge_id: str
    sent_metadata: dict[str, str]  # what checkout put on the session and its payment intent

    @property
    def tenant_id(self) -> str:
        return self.who.tenant_id

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.sent_metadata)


def customer(sub: str = "buyer", welcome: int = 0) -> Identity:
    return ensure_user(sub, f"{sub}@example.com", welcome)


def start_checkout(who: Identity, pack_id: str = "studio") -> Checkout:
    http = FakeStripeHTTP()
    created = billing.create_checkout(
        billing.stripe_client(http_client=http), who, pack_id, SUCCESS_URL, CANCEL_URL
    )
    params = http.requests[-1]["params"]
    suffix = uuid.uuid4().hex[:16]
    prefix = "metadata["
    checkout = Checkout(
        who=who,
        session_id=created.session_id,
        purchase_id=params["metadata[purchase_id]"],
        pack_id=pack_id,
        credits=int(params["metadata[credits]"]),
        amount_total=int(params["line_items[0][price_data][unit_amount]"]),
        payment_intent=f"pi_3{suffix}",
        charge_id=f"ch_3{suffix}",
        sent_metadata={k[len(prefix) : -1]: v for k, v in params.items() if k.startswith(prefix)},
    )
    intent_prefix = "payment_intent_data[metadata]["
    intent_metadata = {
        k[len(intent_prefix) : -1]: v for k, v in params.items() if k.startswith(intent_prefix)
    }
    if stripe_api is not None:  # the charge Stripe will make: the payment intent's metadata copied onto it
        stripe_api.charges[checkout.charge_id] = charge_object(checkout, metadata=intent_metadata)
    return checkout


def charge_object(
    c: Checkout, *, amount_refunded: int = 0, metadata: dict[str, str] | None = None, livemode: bool = False
) -> dict[str, Any]:
    """The checkout's charge as ``GET /v1/charges/{id}`` returns it."""
    charge: dict[str, Any] = fixture("charge.refunded")["data"]["object"]
    charge.update(
        id=c.charge_id,
        payment_intent=c.payment_intent,
        amount=c.amount_total,
        amount_captured=c.amount_total,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= c.amount_total,
        livemode=livemode,
        metadata=c.metadata if metadata is None else metadata,
        receipt_url=receipt_url(c),
    )
    charge.pop("refunds", None)
    return charge


def receipt_url(c: Checkout) -> str:
    """Where Stripe's hosted receipt of the checkout's charge is (the shape of Stripe's receipt URLs)."""
    return f"https://pay.stripe.com/receipts/payment/{c.charge_id}"


def _event(name: str, obj: dict[str, Any], event_id: str | None, created: int | None) -> dict[str, Any]:
    event = fixture(name)
    event["id"] = event_id or f"evt_{uuid.uuid4().hex[:24]}"
    event["created"] = created or int(time.time())
    event["data"]["object"].update(obj)
    return event


def session_event(
    c: Checkout,
    type_: str = "checkout.session.completed",
    payment_status: str = "paid",
    *,
    event_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return _event(
        type_,
        {
            "id": c.session_id,
            "payment_status": payment_status,
            "payment_intent": c.payment_intent,
            "client_reference_id": c.tenant_id,
            "metadata": c.metadata if metadata is None else metadata,
            "amount_subtotal": c.amount_total,
            "amount_total": c.amount_total,
        },
        event_id,
        None,
    )


def refund_event(
    c: Checkout, amount_refunded: int, *, event_id: str | None = None, metadata: dict[str, str] | None = None
) -> dict[str, Any]:
    event = _event(
        "charge.refunded",
        {
            "id": c.charge_id,
            "payment_intent": c.payment_intent,
            "amount": c.amount_total,
            "amount_captured": c.amount_total,
            "amount_refunded": amount_refunded,
            "refunded": amount_refunded >= c.amount_total,
            "metadata": c.metadata if metadata is None else metadata,
        },
        event_id,
        None,
    )
    event["data"]["previous_attributes"] = {"amount_refunded": 0, "refunded": False}
    return event


def dispute_event(
    c: Checkout,
    type_: str = "charge.dispute.created",
    status: str = "needs_response",
    *,
    amount: int | None = None,
    dispute_id: str | None = None,
    event_id: str | None = None,
    created: int | None = None,
    balance_transactions: list[int] | None = None,
) -> dict[str, Any]:
    """A dispute event; ``balance_transactions`` are the amounts of the dispute's withdrawals (negative) and
    reinstatements (positive) so far, as Stripe lists them on the dispute."""
    base = type_ if (STRIPE_EVENTS / f"{type_}.json").exists() else "charge.dispute.created"
    dispute_id = dispute_id or f"dp_{c.charge_id[3:]}"
    event = _event(
        base,
        {
            "id": dispute_id,
            "charge": c.charge_id,
            "payment_intent": c.payment_intent,
            "amount": c.amount_total if amount is None else amount,
            "status": status,
            "balance_transactions": [
                {
                    "id": f"txn_{dispute_id[3:]}_{i}",
                    "object": "balance_transaction",
                    "amount": value,
                    "currency": "usd",
                    "reporting_category": "dispute" if value < 0 else "dispute_reversal",
                    "source": dispute_id,
                    "type": "adjustment",
                }
                for i, value in enumerate(balance_transactions or [])
            ],
        },
        event_id,
        created,
    )
    event["type"] = type_
    return event


def books(tenant_id: str) -> int:
    """The tenant's balance, after checking the money invariants: balance = SUM(ledger), never negative."""
    with db.transaction(tenant_id) as conn:
        balance = credits.balance(conn, tenant_id)
        assert balance == credits.ledger_sum(conn, tenant_id)
    assert balance >= 0
    return balance


def ledger(tenant_id: str) -> list[dict[str, Any]]:
    with db.transaction(tenant_id) as conn:
        rows = conn.execute(
            "SELECT kind, amount, idempotency_key, meta FROM ledger WHERE tenant_id = %s ORDER BY id",
            (tenant_id,),
        ).fetchall()
    return [dict(r) for r in rows]


def purchase(c: Checkout) -> dict[str, Any]:
    with db.transaction(c.tenant_id) as conn:
        row = conn.execute("SELECT * FROM purchases WHERE id = %s", (c.purchase_id,)).fetchone()
    assert row is not None
    return dict(row)


def copy_event(event: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(event)
