"""A local Stripe: the API calls the billing code makes, a test Checkout page, and signed webhooks.

The real billing code talks to it over HTTP (``STRIPE_API_BASE``, the same setting that points it at
stripe-mock). It answers ``POST /v1/checkout/sessions`` (form-encoded like Stripe, idempotency keys replayed,
reused with other parameters refused), ``GET /v1/checkout/sessions/{id}`` and ``POST .../{id}/expire``, and
``GET /v1/charges/{id}`` (``expand[]=payment_intent`` too) and ``GET /v1/payment_intents/{id}``
(``expand[]=latest_charge`` too) for the payments of paid sessions (the payment intent carries
``payment_intent_data.metadata``, copied onto its charge). Each charge has a ``receipt_url``,
``<web_url>/local/stripe/receipts/<ch_id>``: a simple receipt page (``receipt_page``: pack, amount, date). A
session's ``url`` is ``<web_url>/local/stripe/checkout/<cs_id>``: a page with the pack, the amount, a
"Pay with test card" button (id ``pay``) and a Cancel link. Paying completes the session once, builds the
``checkout.session.completed`` event Stripe would send, signs it with the endpoint's webhook secret
(``stripe.WebhookSignature.generate_signature_header``), POSTs it to the billing webhook route of the local API
(retrying a failed delivery a few times, as Stripe does over days) and 303-redirects to ``success_url``.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import requests
import stripe

log = logging.getLogger("modamoda.local.stripe")

ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)  # amounts in whole units
DELIVERY_ATTEMPTS = 3
Reply = tuple[int, dict[str, str], bytes]


def new_id(prefix: str, length: int = 24) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def decode_params(text: str) -> dict[str, Any]:
    """Stripe's form encoding (``line_items[0][price_data][currency]=usd``) → nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        head = key.split("[", 1)[0]
        path = [head, *re.findall(r"\[([^\]]*)\]", key[len(head) :])]
        node = root
        for i, part in enumerate(path):
            part = part or str(len(node))  # "a[]" appends
            if i == len(path) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def format_amount(amount: int, currency: str) -> str:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


class StripeError(Exception):
    def __init__(self, status: int, type_: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": type_, "message": message, **extra}}


def _missing(param: str) -> StripeError:
    return StripeError(
        400,
        "invalid_request_error",
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
    )


def _integer(value: Any, param: str, minimum: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise StripeError(
            400,
            "invalid_request_error",
            f"Invalid integer: {value}",
            code="parameter_invalid_integer",
            param=param,
        )
    return number


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery attempt."""

    event_id: str
    type: str
    attempt: int
    status: int | None  # HTTP status, None when the endpoint could not be reached
    body: str
    at: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class StripeEmulator:
    """State lives in memory; one instance per local stack."""

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        checkout_base_url: str,
        webhook_url: str | None = None,
        retry_seconds: float = 0.25,
    ) -> None:
        self.api_key, self.webhook_secret = api_key, webhook_secret
        self.checkout_base_url = checkout_base_url.rstrip("/")
        # receipts beside the checkout pages: <web_url>/local/stripe/receipts/<ch_id>
        self.receipt_base_url = self.checkout_base_url.rsplit("/", 1)[0] + "/receipts"
        self.webhook_url = webhook_url  # the local API's POST /v1/billing/stripe/webhook (set once it runs)
        self.retry_seconds = retry_seconds
        self.sessions: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        self.payment_intent_data: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.charge_sessions: dict[str, str] = {}  # charge → the checkout session it paid
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[Delivery] = []
        self.requests: list[dict[str, Any]] = []  # every API request (method, path, params, headers)
        self._idempotent: dict[str, tuple[str, Reply]] = {}
        self._lock = threading.RLock()

    # ---- the API -----------------------------------------------------------------------------------------------

    def handle_api(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """``path`` starts at ``/v1/...``; ``headers`` have lower-case names."""
        request_id = new_id("req_", 14)
        try:
            self._authenticate(headers.get("authorization", ""))
            path, _, query = path.partition("?")
            text = body.decode("utf-8")
            params = decode_params(query if method == "GET" else text)
            with self._lock:
                self.requests.append(
                    {"method": method, "path": path, "params": params, "headers": dict(headers)}
                )
                key = headers.get("idempotency-key", "")
                if method == "POST" and key:
                    fingerprint = hashlib.sha256(f"{method} {path}\n{text}".encode()).hexdigest()
                    seen = self._idempotent.get(key)
                    if seen is not None:
                        if seen[0] != fingerprint:
                            raise StripeError(
                                400,
                                "idempotency_error",
                                "Keys for idempotent requests can only be used with the same parameters "
                                f"they were first used with. Try using a key other than '{key}' if you meant "
                                "to execute a different request.",
                            )
                        status, reply_headers, data = seen[1]
                        return status, {**reply_headers, "idempotent-replayed": "true"}, data
                reply = self._json(200, self._route(method, path, params), request_id)
                if method == "POST" and key:
                    self._idempotent[key] = (fingerprint, reply)
                return reply
        except StripeError as exc:
            return self._json(exc.status, exc.body, request_id)
        except UnicodeDecodeError:
            return self._json(
                400, {"error": {"type": "invalid_request_error", "message": "Bad body"}}, request_id
            )

    def _json(self, status: int, body: dict[str, Any], request_id: str) -> Reply:
        headers = {
            "content-type": "application/json",
            "request-id": request_id,
            "stripe-version": stripe.api_version,
            "cache-control": "no-cache, no-store",
        }
        return status, headers, json.dumps(body, indent=2).encode()

    def _authenticate(self, authorization: str) -> None:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise StripeError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if not secrets.compare_digest(key.strip(), self.api_key):
            raise StripeError(
                401, "invalid_request_error", f"Invalid API Key provided: {key[:8]}{'*' * 12}{key[-4:]}"
            )

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        payment = re.fullmatch(r"/v1/(charges|payment_intents)/([A-Za-z0-9_]+)", path)
        if method == "GET" and payment is not None:
            return self._payment_object(payment.group(1), payment.group(2), params)
        match = re.fullmatch(r"/v1/checkout/sessions/(cs_[A-Za-z0-9_]+)(/expire)?", path)
        if match is not None:
            session = self.sessions.get(match.group(1))
            if session is None:
                raise StripeError(
                    404,
                    "invalid_request_error",
                    f"No such checkout.session: '{match.group(1)}'",
                    code="resource_missing",
                    param="session",
                )
            if method == "GET" and not match.group(2):
                return copy.deepcopy(session)
            if method == "POST" and match.group(2):
                if session["status"] != "open":
                    raise StripeError(
                        400,
                        "invalid_request_error",
                        f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                        f'Session has a status of "{session["status"]}".',
                    )
                session.update(status="expired", url=None)
                return copy.deepcopy(session)
        raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _payment_object(self, kind: str, object_id: str, params: dict[str, Any]) -> dict[str, Any]:
        found = (self.charges if kind == "charges" else self.payment_intents).get(object_id)
        if found is None:
            name = "charge" if kind == "charges" else "payment_intent"
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such {name}: '{object_id}'",
                code="resource_missing",
                param="id",
            )
        obj = copy.deepcopy(found)
        expand = params.get("expand") or []
        expand = expand if isinstance(expand, list) else [expand]
        if kind == "charges" and "payment_intent" in expand:
            obj["payment_intent"] = copy.deepcopy(self.payment_intents[obj["payment_intent"]])
        if kind == "payment_intents" and "latest_charge" in expand and obj.get("latest_charge"):
            obj["latest_charge"] = copy.deepcopy(self.charges[obj["latest_charge"]])
        return obj

    def _pay_session(self, session: dict[str, Any]) -> str:
        """The payment intent and its succeeded charge for a paid session (metadata from payment_intent_data)."""
        intent_id, now = new_id("pi_3"), int(time.time())
        charge_id = f"ch_{intent_id[3:]}"
        metadata = dict(self.payment_intent_data.get(session["id"], {}).get("metadata") or {})
        amount, currency = session["amount_total"], session["currency"]
        self.payment_intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount,
            "created": now,
            "currency": currency,
            "latest_charge": charge_id,
            "livemode": False,
            "metadata": metadata,
            "status": "succeeded",
        }
        self.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "captured": True,
            "created": now,
            "currency": currency,
            "disputed": False,
            "livemode": False,
            "metadata": dict(metadata),
            "paid": True,
            "payment_intent": intent_id,
            "receipt_url": f"{self.receipt_base_url}/{charge_id}",
            "refunded": False,
            "status": "succeeded",
        }
        self.charge_sessions[charge_id] = session["id"]
        return intent_id

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode") or ""
        if not mode:
            raise _missing("mode")
        if mode != "payment":
            raise StripeError(
                400, "invalid_request_error", f"The local emulator supports mode=payment only, not {mode!r}."
            )
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(
                400,
                "invalid_request_error",
                "You must specify either `line_items` or `price` in `payment` mode.",
                param="line_items",
            )
        line_items, total, currency = [], 0, None
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _missing(f"line_items[{i}][price_data]")
            if "price" in item:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"No such price: '{item['price']}'",
                    code="resource_missing",
                    param=f"line_items[{i}][price]",
                )
            data = item.get("price_data")
            if not isinstance(data, dict):
                raise _missing(f"line_items[{i}][price_data]")
            for field in ("currency", "unit_amount"):
                if not data.get(field):
                    raise _missing(f"line_items[{i}][price_data][{field}]")
            product = data.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise _missing(f"line_items[{i}][price_data][product_data][name]")
            quantity = _integer(item.get("quantity", ""), f"line_items[{i}][quantity]", 1)
            unit = _integer(data["unit_amount"], f"line_items[{i}][price_data][unit_amount]", 0)
            if currency not in (None, data["currency"].lower()):
                raise StripeError(400, "invalid_request_error", "All line items must use the same currency.")
            currency = data["currency"].lower()
            total += unit * quantity
            line_items.append(
                {
                    "id": new_id("li_"),
                    "object": "item",
                    "amount_subtotal": unit * quantity,
                    "amount_total": unit * quantity,
                    "currency": currency,
                    "description": product["name"],
                    "quantity": quantity,
                    "price": {
                        "id": new_id("price_"),
                        "object": "price",
                        "currency": currency,
                        "unit_amount": unit,
                        "product": new_id("prod_", 14),
                        "type": "one_time",
                        "metadata": {},
                    },
                    "product_metadata": dict(product.get("metadata") or {}),
                }
            )
        for name in ("success_url", "cancel_url"):
            value = params.get(name)
            if value is not None and not re.match(r"https?://", str(value)):
                raise StripeError(400, "invalid_request_error", "Not a valid URL", param=name)
        now = int(time.time())
        session_id = new_id("cs_test_a1", 56)
        metadata = dict(params.get("metadata") or {})
        session: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currency,
            "custom_fields": [],
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": now + 24 * 3600,
            "invoice": None,
            "livemode": False,
            "locale": None,
            "metadata": metadata,
            "mode": "payment",
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "if_required",
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": params.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{self.checkout_base_url}/{session_id}",
        }
        self.sessions[session_id] = session
        self.line_items[session_id] = line_items
        self.payment_intent_data[session_id] = dict(params.get("payment_intent_data") or {})
        return copy.deepcopy(session)

    # ---- the hosted page ---------------------------------------------------------------------------------------

    def checkout_page(self, session_id: str) -> Reply:
        with self._lock:
            session = copy.deepcopy(self.sessions.get(session_id))
            items = copy.deepcopy(self.line_items.get(session_id, []))
        if session is None:
            return _page(404, "Checkout not found", "<p>This checkout session does not exist.</p>")
        esc = html.escape
        amount = format_amount(session["amount_total"], session["currency"])
        rows = "".join(
            f"<tr><td>{esc(i['description'])}</td><td>{i['quantity']}</td>"
            f"<td>{esc(format_amount(i['amount_total'], i['currency']))}</td></tr>"
            for i in items
        )
        cancel = session.get("cancel_url")
        cancel_link = f'<a id="cancel" href="{esc(cancel)}">Cancel</a>' if cancel else ""
        if session["status"] == "complete":
            done = session.get("success_url")
            link = f'<a id="continue" href="{esc(_success_url(session))}">Continue</a>' if done else ""
            return _page(200, "Already paid", f"<p>This checkout is complete ({esc(amount)} paid).</p>{link}")
        if session["status"] != "open":
            return _page(410, "Checkout expired", f"<p>This checkout has expired.</p>{cancel_link}")
        email = session.get("customer_email")
        receipt = f'<p>Receipt to <span id="email">{esc(email)}</span></p>' if email else ""
        body = f"""
<p class="test">Test mode: no card is charged and nothing leaves this machine.</p>
<table>
  <caption>Order</caption>
  <thead><tr><th scope="col">Item</th><th scope="col">Qty</th><th scope="col">Amount</th></tr></thead>
  <tbody>{rows}</tbody>
  <tfoot><tr><th scope="row" colspan="2">Total</th><td id="amount">{esc(amount)}</td></tr></tfoot>
</table>
{receipt}
<p>Card: <span id="card">4242 4242 4242 4242</span> (Stripe's test Visa), any future date, any CVC.</p>
<form method="post" action="/local/stripe/checkout/{esc(session_id)}/pay">
  <button id="pay" type="submit">Pay with test card</button>
</form>
<p>{cancel_link}</p>"""
        return _page(200, f"Pay {amount}", body)

    def receipt_page(self, charge_id: str) -> Reply:
        """The receipt a charge's ``receipt_url`` shows: what was bought, the amount and the date paid."""
        with self._lock:
            charge = copy.deepcopy(self.charges.get(charge_id))
            items = copy.deepcopy(self.line_items.get(self.charge_sessions.get(charge_id, ""), []))
        if charge is None:
            return _page(404, "Receipt not found", "<p>There is no receipt at this address.</p>")
        esc = html.escape
        amount = format_amount(charge["amount"], charge["currency"])
        paid = datetime.fromtimestamp(charge["created"], UTC)
        rows = "".join(
            f"<tr><td>{esc(i['description'])}</td><td>{i['quantity']}</td>"
            f"<td>{esc(format_amount(i['amount_total'], i['currency']))}</td></tr>"
            for i in items
        )
        refunded = ""
        if charge.get("amount_refunded"):
            refunded = (
                f'<p>Refunded: <span id="refunded">'
                f"{esc(format_amount(charge['amount_refunded'], charge['currency']))}</span></p>"
            )
        body = f"""
<p class="test">Test mode: no card was charged.</p>
<p>Receipt <span id="receipt-number">{esc(charge_id[3:15].upper())}</span></p>
<p>Paid on <time id="date" datetime="{paid.isoformat()}">{paid.strftime("%d %B %Y")}</time></p>
<table>
  <caption>Items</caption>
  <thead><tr><th scope="col">Item</th><th scope="col">Qty</th><th scope="col">Amount</th></tr></thead>
  <tbody>{rows}</tbody>
  <tfoot><tr><th scope="row" colspan="2">Amount paid</th><td id="amount">{esc(amount)}</td></tr></tfoot>
</table>
{refunded}
<p>Paid with the test card ending 4242.</p>"""
        return _page(200, f"Receipt from Modamoda: {amount}", body)

    def pay(self, session_id: str) -> Reply:
        """Complete the session (once), send its ``checkout.session.completed`` webhook, go to success_url."""
        with self._lock:
            session = self.sessions.get(session_id)
            if session is None:
                return _page(404, "Checkout not found", "<p>This checkout session does not exist.</p>")
            if session["status"] == "expired":
                return _page(410, "Checkout expired", "<p>This checkout has expired.</p>")
            event = None
            if session["status"] == "open":  # paying again (a double submit, the back button) changes nothing
                session.update(
                    status="complete",
                    payment_status="paid",
                    payment_intent=self._pay_session(session),
                    customer_details={
                        "address": None,
                        "email": session.get("customer_email") or "buyer@example.com",
                        "name": "Test Buyer",
                        "phone": None,
                        "tax_exempt": "none",
                        "tax_ids": [],
                    },
                )
                event = self._event("checkout.session.completed", session)
            target = _success_url(session)
        if event is not None:
            self.deliver(event)
        if not target:
            return _page(200, "Payment complete", "<p>Payment complete. You can close this page.</p>")
        return 303, {"location": target, "content-type": "text/plain", "cache-control": "no-store"}, b""

    # ---- events and webhooks -----------------------------------------------------------------------------------

    def _event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": new_id("evt_1"),
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        self.events[event["id"]] = event
        return event

    def deliver(self, event: dict[str, Any]) -> Delivery:
        """POST the signed event to the webhook endpoint; a few retries on failure. Returns the last attempt."""
        payload = json.dumps(
            event, indent=2
        )  # Stripe sends pretty-printed JSON; the signature covers the bytes
        last: Delivery | None = None
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            status: int | None = None
            if self.webhook_url is None:
                text = "no webhook endpoint"
            else:
                header = stripe.WebhookSignature.generate_signature_header(payload, self.webhook_secret)
                try:
                    response = requests.post(
                        self.webhook_url,
                        data=payload.encode("utf-8"),
                        headers={
                            "content-type": "application/json; charset=utf-8",
                            "stripe-signature": header,
                            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                        },
                        timeout=30,
                    )
                    status, text = response.status_code, response.text[:2000]
                except requests.RequestException as exc:
                    text = repr(exc)
            last = Delivery(event["id"], event["type"], attempt, status, text, time.time())
            with self._lock:
                self.deliveries.append(last)
            if last.ok:
                break
            log.warning("webhook %s attempt %d failed: %s %s", event["id"], attempt, status, text[:200])
            time.sleep(self.retry_seconds * attempt)
        assert last is not None
        return last

    def resend(self, event_id: str) -> Delivery:
        """Deliver an event again (``stripe events resend``): the billing webhook must treat it as a duplicate."""
        with self._lock:
            event = self.events[event_id]
        return self.deliver(event)


def _success_url(session: dict[str, Any]) -> str:
    return str(session.get("success_url") or "").replace("{CHECKOUT_SESSION_ID}", session["id"])


def _page(status: int, title: str, body: str) -> Reply:
    text = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · Modamoda test checkout</title>
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 32rem; padding: 1rem; color: #1a1a1a; }}
  h1 {{ font-size: 1.4rem; }}
  table {{ width: 100%; border-collapse: collapse; margin: 1rem 0; }}
  caption {{ text-align: left; font-weight: 600; }}
  th, td {{ text-align: left; padding: .4rem; border-bottom: 1px solid #ccc; }}
  .test {{ background: #fff4d6; color: #5c3d00; padding: .5rem; border-radius: .3rem; }}
  button {{ font: inherit; padding: .6rem 1.2rem; background: #4b2fd6; color: #fff; border: 0; border-radius: .3rem;
           cursor: pointer; }}
  button:focus-visible, a:focus-visible {{ outline: 3px solid #1a1a1a; outline-offset: 2px; }}
  a {{ color: #3920b0; }}
</style>
</head>
<body>
<main id="main">
<h1>{html.escape(title)}</h1>
{body}
</main>
</body>
</html>
"""
    return status, {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}, text.encode()
