"""Credit packs bought with Stripe Checkout, and the Stripe webhook that turns payments into credits.

Configuration: ``STRIPE_SECRET_ARN`` names a Secrets Manager secret ``{"api_key": "sk_...", "webhook_secret":
"whsec_..."}``, read once per container; a missing or placeholder secret fails fast with ``ConfigError``.

Checkout: ``create_checkout`` records a ``pending`` purchase and returns the hosted Checkout page. The tenant,
pack, credits, our purchase id and this deployment's id (``modamoda_deployment``: ``MODAMODA_DEPLOYMENT``, set by
CDK) travel in the session's ``metadata`` and in the PaymentIntent's (Stripe copies those onto the charge), so every
later object can be traced back to the purchase, and of several deployments sharing one Stripe account (two stages
on one test account) only the one that created an object claims it.

Webhook: ``handle_webhook`` verifies the signature on the raw body (``stripe.Webhook.construct_event``, 300 s
tolerance, and timestamps more than 300 s in the future are refused too), then processes each event once:
``stripe_events`` holds one row per event id, claimed with insert-if-absent + ``FOR UPDATE`` in the same
transaction as the ledger change, so a replayed or concurrently delivered event is a ``duplicate`` and an event
whose earlier attempt failed (the transaction rolled back) is simply processed again. An event whose ``livemode``
differs from the API key's mode (``sk_live_`` / ``sk_test_``) is acknowledged, logged and never applied.

Money: the grant is keyed by the checkout session (``purchase:{session}``) so ``completed`` and
``async_payment_succeeded`` grant once. Everything taken back for a purchase, refunds plus disputes, is capped at
what the purchase granted. Refunds are cumulative (``charge.amount_refunded``): the target is
``floor(credits * amount_refunded / amount_total)``, and only the difference is debited, as far as disputes that
hold credits of the purchase leave room. A dispute takes back its share of the purchase's credits while its funds
are withdrawn (``needs_response``, ``under_review``, ``lost``), as far as refunds and other disputes leave room, and
gives back exactly what that take-back took when it ends without loss (``won``, ``warning_closed``, ``prevented``)
or turns out to be an inquiry; a dispute that reopens (closed won, then ``needs_response`` again) takes back
again, in a new round. Every debit is clamped at the balance (the shortfall is recorded as ``unrecovered`` and
still counts against the purchase). The newest snapshot of a dispute wins: more balance transactions, then a later
event; a late ``charge.dispute.created`` never overrides a state seen before.

Out-of-order delivery: refunds and disputes are recorded against their purchase whatever its state, and their
ledger effect is derived from that state (``_reconcile``) whenever the purchase is paid, right away or when the
grant arrives later; so any order of the events ends in the same balance.

Ownership: a purchase is found by payment intent or charge (linked by earlier events), or by our metadata on the
session or charge; a dispute carries no metadata, so its charge is retrieved from Stripe (with its payment
intent). Metadata naming another deployment, no Modamoda metadata, or (objects from before the deployment id)
a tenant this database does not have: not ours, acknowledged and ignored, like unknown event types. Our own
payment whose purchase is not recorded yet is answered with a transient error (HTTP 500), so Stripe retries it
(for up to three days).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import stripe
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from functions.common import aws, config, credits, db
from functions.common.errors import (
    ConfigError,
    InputRejected,
    ModamodaError,
    NotFound,
    PaymentProviderError,
    SignatureError,
    TransientError,
)
from functions.common.models import (
    CheckoutResponse,
    CreditPack,
    StripeCharge,
    StripeCheckoutSession,
    StripeDispute,
    StripeEvent,
    return_url,
)
from functions.common.observability import logger
from functions.common.tenants import Identity

TOLERANCE_SECONDS = 300
PURCHASE_NAMESPACE = uuid.UUID("6c0b6f1e-3f0a-4c55-9d7e-6d6f64616d6f")
_PLACEHOLDER = "REPLACE_ME"

DEPLOYMENT_KEY = "modamoda_deployment"  # metadata naming the deployment that created a Stripe object

# Dispute statuses (https://docs.stripe.com/api/disputes/object#dispute_object-status).
DISPUTE_FINAL = frozenset({"won", "lost", "warning_closed", "prevented"})
DISPUTE_NO_LOSS = frozenset({"won", "warning_closed", "prevented"})  # nothing withdrawn in the end
DISPUTE_INQUIRY = frozenset({"warning_needs_response", "warning_under_review"})  # no funds withdrawn yet
DISPUTE_WITHDRAWN = frozenset({"needs_response", "under_review", "lost"})  # the disputed funds are withdrawn
# Same-second snapshots of one dispute: the later stage of its life wins.
_DISPUTE_STAGE = {
    "warning_needs_response": 0,
    "warning_under_review": 1,
    "needs_response": 2,
    "under_review": 3,
    **dict.fromkeys(DISPUTE_FINAL, 4),
}


@dataclass(frozen=True)
class StripeConfig:
    api_key: str
    webhook_secret: str


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    type: str
    status: str  # processed | duplicate | ignored
    detail: str = ""


_lock = threading.Lock()
_configs: dict[str, StripeConfig] = {}
_clients: dict[str, stripe.StripeClient] = {}


def reset() -> None:
    """Forget the cached secret and client (tests; a rotated secret reaches new containers anyway)."""
    with _lock:
        _configs.clear()
        _clients.clear()


def stripe_config() -> StripeConfig:
    """The Stripe keys from the secret named by ``STRIPE_SECRET_ARN``, cached per container."""
    arn = config.required("STRIPE_SECRET_ARN")
    with _lock:
        found = _configs.get(arn)
    if found is not None:
        return found
    try:
        raw = aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"ThrottlingException", "InternalServiceError", "InternalServiceErrorException"}:
            raise TransientError(f"Stripe secret unavailable: {code}") from exc
        raise ConfigError(f"cannot read the Stripe secret {arn}: {code}", code="config_missing") from exc
    except BotoCoreError as exc:
        raise TransientError(f"Stripe secret unavailable: {exc}") from exc
    try:
        values = json.loads(raw)
        api_key, webhook_secret = str(values["api_key"]).strip(), str(values["webhook_secret"]).strip()
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            'the Stripe secret must be JSON {"api_key": "sk_...", "webhook_secret": "whsec_..."}',
            code="config_missing",
        ) from exc
    if (
        not api_key.startswith(("sk_", "rk_"))
        or not webhook_secret.startswith("whsec_")
        or _PLACEHOLDER in api_key
        or _PLACEHOLDER in webhook_secret
    ):
        raise ConfigError(
            f"the Stripe secret {arn} still holds placeholders: put the account's API key (sk_...) and the "
            "webhook endpoint's signing secret (whsec_...) in it",
            code="config_missing",
        )
    found = StripeConfig(api_key=api_key, webhook_secret=webhook_secret)
    with _lock:
        _configs[arn] = found
    return found


def stripe_client(http_client: stripe.HTTPClient | None = None) -> stripe.StripeClient:
    """A Stripe API client with the configured key (cached per container unless an HTTP client is given).

    ``STRIPE_API_BASE`` points it at another Stripe API endpoint: the local stack's Stripe emulator, or
    stripe-mock (``http://localhost:12111``); unset, it talks to api.stripe.com."""
    api_key, base = stripe_config().api_key, config.stripe_api_base()
    extra: dict[str, Any] = {"base_addresses": {"api": base}} if base else {}
    if http_client is not None:
        return stripe.StripeClient(api_key, http_client=http_client, max_network_retries=2, **extra)
    with _lock:
        found = _clients.get(f"{base}|{api_key}")
        if found is None:
            found = _clients[f"{base}|{api_key}"] = stripe.StripeClient(
                api_key, max_network_retries=2, **extra
            )
    return found


# ---- packs and checkout ----------------------------------------------------------------------------------


def list_packs(conn: db.Conn) -> list[CreditPack]:
    rows = conn.execute(
        "SELECT id, name, credits, price_cents, currency FROM credit_packs WHERE active ORDER BY sort, id"
    ).fetchall()
    return [CreditPack(**r) for r in rows]


def get_pack(conn: db.Conn, pack_id: str) -> CreditPack:
    row = conn.execute(
        "SELECT id, name, credits, price_cents, currency FROM credit_packs WHERE id = %s AND active",
        (pack_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no credit pack {pack_id!r}", code="pack_not_found")
    return CreditPack(**row)


def _checked_url(name: str, value: str) -> str:
    try:
        return return_url(value)
    except ValueError as exc:
        raise InputRejected(f"{name} {exc}", code="invalid_url", details={"field": name}) from exc


def create_checkout(
    client: stripe.StripeClient,
    who: Identity,
    pack_id: str,
    success_url: str,
    cancel_url: str,
    *,
    idempotency_key: str | None = None,
) -> CheckoutResponse:
    """A Stripe Checkout Session for one credit pack, and its ``pending`` purchase.

    ``idempotency_key`` (the client's ``Idempotency-Key``) makes a retried request return the same session.
    """
    success_url = _checked_url("success_url", success_url)
    cancel_url = _checked_url("cancel_url", cancel_url)
    deployment = config.deployment_id()  # fail fast: every object we create names its deployment
    with db.transaction(who.tenant_id) as conn:
        pack = get_pack(conn, pack_id)
    purchase_id = (
        uuid.uuid5(PURCHASE_NAMESPACE, f"{who.tenant_id}:{idempotency_key}")
        if idempotency_key
        else uuid.uuid4()
    )
    metadata = {
        "tenant_id": who.tenant_id,
        "purchase_id": str(purchase_id),
        "pack_id": pack.id,
        "credits": str(pack.credits),
        DEPLOYMENT_KEY: deployment,
    }
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": pack.currency,
                    "unit_amount": pack.price_cents,
                    "product_data": {
                        "name": f"Modamoda {pack.name}: {pack.credits} credits",
                        "metadata": {"pack_id": pack.id},
                    },
                },
            }
        ],
        "client_reference_id": who.tenant_id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if who.email and "@" in who.email:
        params["customer_email"] = who.email
    try:
        session = client.v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"modamoda-checkout-{purchase_id}"},
        )
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise TransientError(f"Stripe is unavailable: {exc.user_message or exc}") from exc
    except stripe.StripeError as exc:
        if isinstance(exc, stripe.APIError) and (exc.http_status or 500) >= 500:
            raise TransientError(f"Stripe is unavailable: {exc.user_message or exc}") from exc
        raise PaymentProviderError(f"Stripe refused the checkout: {exc.user_message or exc}") from exc
    if not session.url:
        raise PaymentProviderError("Stripe returned a checkout session without a URL")

    def record(conn: db.Conn) -> None:
        conn.execute(
            "INSERT INTO purchases (id, tenant_id, checkout_session, pack_id, credits, amount_total, currency)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (
                purchase_id,
                who.tenant_id,
                session.id,
                pack.id,
                pack.credits,
                session.amount_total or pack.price_cents,
                session.currency or pack.currency,
            ),
        )

    db.atomic(who.tenant_id, record)
    return CheckoutResponse(checkout_url=session.url, session_id=session.id)


# ---- webhook: verification ---------------------------------------------------------------------------------


def _signed_at(header: str) -> int:
    stamps = [item.split("=", 1)[1] for item in header.split(",") if item.strip().startswith("t=")]
    try:
        return int(stamps[0].strip())
    except (IndexError, ValueError) as exc:
        raise SignatureError("the Stripe-Signature header has no timestamp") from exc


def verify(raw_body: bytes, signature_header: str | None, secret: str, now: float) -> StripeEvent:
    """The event, if ``raw_body`` is signed with ``secret`` within ±300 s of ``now``; SignatureError otherwise."""
    if not signature_header:
        raise SignatureError("the Stripe-Signature header is missing")
    signed_at = _signed_at(signature_header)
    if abs(now - signed_at) > TOLERANCE_SECONDS:
        raise SignatureError(
            "the signature timestamp is outside the tolerance",
            details={"tolerance_seconds": TOLERANCE_SECONDS, "skew_seconds": int(now - signed_at)},
        )
    try:
        stripe.Webhook.construct_event(raw_body, signature_header, secret, tolerance=TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(f"the signature does not verify: {exc.user_message or exc}") from exc
    except ValueError as exc:  # signed, but not a JSON Stripe event (not something Stripe sends)
        raise ModamodaError("the body is not a Stripe event", code="invalid_payload") from exc
    try:
        return StripeEvent.model_validate_json(raw_body)
    except ValidationError as exc:
        raise ModamodaError("the body is not a Stripe event", code="invalid_payload") from exc


# ---- webhook: event bookkeeping ----------------------------------------------------------------------------


def _claim(conn: db.Conn, event: StripeEvent) -> bool:
    """Insert-if-absent and lock the event's row; False when it was processed already (a duplicate)."""
    conn.execute(
        "INSERT INTO stripe_events (id, type, livemode, created) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (event.id, event.type, event.livemode, datetime.fromtimestamp(event.created, UTC)),
    )
    row = conn.execute(
        "SELECT processed_at FROM stripe_events WHERE id = %s FOR UPDATE", (event.id,)
    ).fetchone()
    assert row is not None
    return row["processed_at"] is None


def _finish(conn: db.Conn, event: StripeEvent, outcome: str) -> None:
    conn.execute(
        "UPDATE stripe_events SET processed_at = now(), outcome = %s, attempts = attempts + 1, last_error = NULL"
        " WHERE id = %s",
        (outcome, event.id),
    )


def _record_failure(event: StripeEvent, error: BaseException) -> None:
    """Note a failed attempt (best effort, its own transaction): the event stays unprocessed, so it runs again."""
    try:
        with db.transaction(None) as conn:
            conn.execute(
                "INSERT INTO stripe_events (id, type, livemode, created, attempts, outcome, last_error)"
                " VALUES (%s, %s, %s, %s, 1, 'failed', %s)"
                " ON CONFLICT (id) DO UPDATE SET attempts = stripe_events.attempts + 1, outcome = 'failed',"
                " last_error = EXCLUDED.last_error WHERE stripe_events.processed_at IS NULL",
                (
                    event.id,
                    event.type,
                    event.livemode,
                    datetime.fromtimestamp(event.created, UTC),
                    str(error)[:1000],
                ),
            )
    except (ModamodaError, psycopg.Error):
        pass


def _once(
    event: StripeEvent, tenant_id: str | None, work: Callable[[db.Conn], str], status: str
) -> WebhookResult:
    """Run ``work`` for the event exactly once, in one transaction with the event's row."""

    def run(conn: db.Conn) -> tuple[str, str]:
        if not _claim(conn, event):
            return "duplicate", ""
        detail = work(conn)
        _finish(conn, event, f"{status}: {detail}" if detail else status)
        return status, detail

    result_status, detail = db.atomic(tenant_id, run)
    return WebhookResult(event.id, event.type, result_status, detail)


def _ignore(event: StripeEvent, reason: str) -> WebhookResult:
    return _once(event, None, lambda _conn: reason, "ignored")


def prune_events(before: datetime | None = None) -> int:
    """Delete processed events received before ``before`` (never younger than 30 days). Returns the count."""
    row = db.system_lookup("SELECT app_prune_stripe_events(%s) AS n", (before or datetime.now(UTC),))
    return int(row["n"]) if row else 0


# ---- webhook: purchases ------------------------------------------------------------------------------------


def _uuid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def _lock_purchase(conn: db.Conn, purchase_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM purchases WHERE id = %s FOR UPDATE", (purchase_id,)).fetchone()
    return dict(row) if row is not None else None


def _purchase_for_session(conn: db.Conn, tenant_id: str, session: StripeCheckoutSession) -> dict[str, Any]:
    """The session's purchase, locked; recreated from the session's metadata if checkout never recorded it."""
    row = conn.execute(
        "SELECT * FROM purchases WHERE checkout_session = %s FOR UPDATE", (session.id,)
    ).fetchone()
    if row is not None:
        return dict(row)
    meta = session.metadata
    pack = conn.execute("SELECT id FROM credit_packs WHERE id = %s", (meta.get("pack_id"),)).fetchone()
    purchase_id, credit_count = _uuid(meta.get("purchase_id")), meta.get("credits", "")
    if pack is None or purchase_id is None or not credit_count.isdigit() or not session.amount_total:
        raise ModamodaError(f"checkout session {session.id} has no usable metadata", code="invalid_payload")
    conn.execute(
        "INSERT INTO purchases (id, tenant_id, checkout_session, pack_id, credits, amount_total, currency)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (
            purchase_id,
            tenant_id,
            session.id,
            pack["id"],
            int(credit_count),
            session.amount_total,
            session.currency or "usd",
        ),
    )
    found = _lock_purchase(conn, purchase_id)
    if found is None or found["checkout_session"] != session.id:
        raise ModamodaError(
            f"checkout session {session.id} does not match its purchase", code="invalid_payload"
        )
    return found


def _grant(conn: db.Conn, purchase: dict[str, Any], event: StripeEvent) -> str:
    """Pay a purchase: grant its credits once, then apply refunds/disputes that arrived before the payment."""
    if purchase["status"] == "paid":
        return "already granted"
    tenant_id = str(purchase["tenant_id"])
    credits.grant(
        conn,
        tenant_id,
        int(purchase["credits"]),
        f"purchase:{purchase['checkout_session']}",
        "purchase",
        purchase_id=str(purchase["id"]),
        pack_id=purchase["pack_id"],
        checkout_session=purchase["checkout_session"],
        event_id=event.id,
    )
    conn.execute(
        "UPDATE purchases SET status = 'paid', credits_granted = credits, paid_at = now(), updated_at = now()"
        " WHERE id = %s",
        (purchase["id"],),
    )
    purchase.update(status="paid", credits_granted=purchase["credits"])
    _reconcile(conn, purchase)
    return f"granted {purchase['credits']}"


def _reconcile(conn: db.Conn, purchase: dict[str, Any]) -> None:
    """Bring the ledger in line with the purchase's refunds and disputes (only once it is paid). Idempotent.

    Refunds and the disputes that hold credits never take back more than the purchase granted, in any order:
    disputes that no longer withdraw funds give back first (that frees room), then the refund target is topped
    up as far as the room allows, then disputes that withdraw funds take back their share of what is left."""
    if purchase["status"] != "paid":
        return
    disputes = [
        dict(row)
        for row in conn.execute(
            "SELECT * FROM disputes WHERE purchase_id = %s ORDER BY id FOR UPDATE", (purchase["id"],)
        ).fetchall()
    ]
    for dispute in disputes:
        if _holds(dispute) and _withdraws(dispute["status"]) is False:
            _give_back(conn, purchase, dispute)
    _refund(conn, purchase, disputes)
    for dispute in disputes:
        if not _holds(dispute) and _withdraws(dispute["status"]) is True:
            _take_back(conn, purchase, dispute, disputes)


def _holds(dispute: dict[str, Any]) -> bool:
    """Whether the dispute's take-back is on the books (taken and not given back yet)."""
    return int(dispute["rounds"]) > int(dispute["restores"])


def _withdraws(status: str) -> bool | None:
    """Whether a dispute in ``status`` keeps the disputed funds (None: a status we do not know; no change)."""
    if status in DISPUTE_WITHDRAWN:
        return True
    if status in DISPUTE_NO_LOSS | DISPUTE_INQUIRY:
        return False
    return None


def _room(purchase: dict[str, Any], disputes: list[dict[str, Any]]) -> int:
    """Credits of the purchase that neither refunds nor held disputes have claimed yet."""
    claimed = int(purchase["credits_refunded"]) + sum(
        int(d["credits_claimed"]) for d in disputes if _holds(d)
    )
    return max(0, int(purchase["credits"]) - claimed)


def _refund(conn: db.Conn, purchase: dict[str, Any], disputes: list[dict[str, Any]]) -> None:
    total, pack_credits = int(purchase["amount_total"]), int(purchase["credits"])
    target = pack_credits * min(int(purchase["amount_refunded"]), total) // total
    already = int(purchase["credits_refunded"])
    claim = min(target, already + _room(purchase, disputes))
    if claim <= already:
        return
    meta: dict[str, Any] = {
        "purchase_id": str(purchase["id"]),
        "amount_refunded": int(purchase["amount_refunded"]),
    }
    if claim < target:
        meta["target"] = target  # the rest waits for room (a dispute holds it)
    credits.adjust(
        conn,
        str(purchase["tenant_id"]),
        -(claim - already),
        "refund",
        f"refund:{purchase['checkout_session']}:{claim}",
        meta,
        clamp=True,
    )
    conn.execute(
        "UPDATE purchases SET credits_refunded = %s, updated_at = now() WHERE id = %s",
        (claim, purchase["id"]),
    )
    purchase["credits_refunded"] = claim


def _round_key(prefix: str, dispute_id: str, round_: int) -> str:
    """Ledger keys of a dispute's take-backs and give-backs; the first round keeps the original key."""
    return f"{prefix}:{dispute_id}" if round_ == 1 else f"{prefix}:{dispute_id}:{round_}"


def _take_back(
    conn: db.Conn, purchase: dict[str, Any], dispute: dict[str, Any], disputes: list[dict[str, Any]]
) -> None:
    """A new round: take back the dispute's share of the purchase, as far as refunds and other disputes left room."""
    pack_credits, total = int(purchase["credits"]), int(purchase["amount_total"])
    share = min(pack_credits, pack_credits * int(dispute["amount"]) // total)
    claim = min(share, _room(purchase, disputes))
    round_ = int(dispute["rounds"]) + 1
    applied = 0
    if claim > 0:
        meta: dict[str, Any] = {
            "purchase_id": str(purchase["id"]),
            "dispute_id": dispute["id"],
            "amount": dispute["amount"],
            "round": round_,
        }
        if claim < share:
            meta["share"] = share  # refunds or other disputes already claimed the rest
        applied = -credits.adjust(
            conn,
            str(purchase["tenant_id"]),
            -claim,
            "dispute",
            _round_key("dispute", dispute["id"], round_),
            meta,
            clamp=True,
        )
    conn.execute(
        "UPDATE disputes SET rounds = %s, credits_held = %s, credits_claimed = %s,"
        " credits_debited = credits_debited + %s, debited_at = now(), updated_at = now() WHERE id = %s",
        (round_, applied, claim, applied, dispute["id"]),
    )
    dispute.update(rounds=round_, credits_held=applied, credits_claimed=claim)


def _give_back(conn: db.Conn, purchase: dict[str, Any], dispute: dict[str, Any]) -> None:
    """End the current round without loss: give back exactly what its take-back took."""
    round_ = int(dispute["restores"]) + 1
    restore = int(dispute["credits_held"])
    if restore > 0:
        credits.adjust(
            conn,
            str(purchase["tenant_id"]),
            restore,
            "dispute",
            _round_key("dispute-restore", dispute["id"], round_),
            {
                "purchase_id": str(purchase["id"]),
                "dispute_id": dispute["id"],
                "status": dispute["status"],
                "round": round_,
            },
        )
    conn.execute(
        "UPDATE disputes SET restores = %s, credits_held = 0, credits_claimed = 0,"
        " credits_restored = credits_restored + %s, restored_at = now(), updated_at = now() WHERE id = %s",
        (round_, restore, dispute["id"]),
    )
    dispute.update(restores=round_, credits_held=0, credits_claimed=0)


# ---- webhook: ownership -------------------------------------------------------------------------------------


def _ours(metadata: dict[str, str]) -> tuple[str, str] | None:
    """(tenant, purchase) named by Modamoda metadata, if the object is this deployment's; None if it is not ours.

    Objects name the deployment that created them; those created before they did are ours if the tenant is."""
    tenant_id, purchase_id = _uuid(metadata.get("tenant_id")), _uuid(metadata.get("purchase_id"))
    if tenant_id is None or purchase_id is None:
        return None
    deployment = (metadata.get(DEPLOYMENT_KEY) or "").strip()
    if deployment:
        return (tenant_id, purchase_id) if deployment == config.deployment_id() else None
    found = db.system_lookup("SELECT app_tenant_exists(%s) AS ours", (tenant_id,))
    return (tenant_id, purchase_id) if found is not None and found["ours"] else None


def _plain(value: Any) -> dict[str, str]:
    """Metadata (a dict, or anything else: none) as a plain dict of strings."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def charge_metadata(charge_id: str) -> dict[str, str]:
    """The metadata of a charge of this Stripe account (its payment intent's where the charge has none);
    ``{}`` when Stripe has no such charge. Raises TransientError when Stripe cannot answer now."""
    try:
        charge = stripe_client().v1.charges.retrieve(charge_id, params={"expand": ["payment_intent"]})
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return {}
        raise TransientError(f"Stripe refused to show charge {charge_id}: {exc.user_message or exc}") from exc
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise ConfigError(
            f"the Stripe API key cannot read charges: {exc.user_message or exc}", code="config_missing"
        ) from exc
    except stripe.StripeError as exc:
        raise TransientError(f"Stripe is unavailable: {exc.user_message or exc}") from exc
    data = charge.to_dict()
    intent = data.get("payment_intent")  # expanded: an object with its metadata
    return {
        **_plain(intent.get("metadata") if isinstance(intent, dict) else None),
        **_plain(data.get("metadata")),
    }


def _key_livemode(api_key: str) -> bool | None:
    """Whether the API key is a live-mode key (None: a key whose mode its prefix does not tell)."""
    if api_key.startswith(("sk_live_", "rk_live_")):
        return True
    if api_key.startswith(("sk_test_", "rk_test_")):
        return False
    return None


# ---- webhook: event handlers -------------------------------------------------------------------------------


def _session_tenant(session: StripeCheckoutSession) -> str | None:
    found = db.system_lookup("SELECT * FROM app_purchase_by_session(%s)", (session.id,))
    if found is not None:
        return str(found["tenant_id"])
    owned = _ours(session.metadata)
    return owned[0] if owned is not None else None


def _on_session(event: StripeEvent) -> WebhookResult:
    session = StripeCheckoutSession.model_validate(event.data.object)
    tenant_id = _session_tenant(session)
    if tenant_id is None:
        return _ignore(event, "not this deployment's checkout")

    def work(conn: db.Conn) -> str:
        purchase = _purchase_for_session(conn, tenant_id, session)
        if session.payment_intent and not purchase["payment_intent"]:
            conn.execute(
                "UPDATE purchases SET payment_intent = %s, updated_at = now() WHERE id = %s",
                (session.payment_intent, purchase["id"]),
            )
        if event.type == "checkout.session.async_payment_failed":
            if purchase["status"] == "paid":
                return "already paid"
            conn.execute(
                "UPDATE purchases SET status = 'failed', updated_at = now() WHERE id = %s", (purchase["id"],)
            )
            return "payment failed"
        if event.type == "checkout.session.async_payment_succeeded" or session.payment_status == "paid":
            return _grant(conn, purchase, event)
        return f"awaiting payment ({session.payment_status})"

    result = _once(event, tenant_id, work, "processed")
    attach_receipt(tenant_id, session.id)  # after the grant has committed: it never depends on the receipt
    return result


# ---- receipts ----------------------------------------------------------------------------------------------


def receipt_url(payment_intent: str) -> str | None:
    """Stripe's hosted receipt of a payment: its PaymentIntent's ``latest_charge.receipt_url`` (retrieved with
    ``expand[]=latest_charge``). None when Stripe has none (yet) or cannot answer now."""
    try:
        intent = stripe_client().v1.payment_intents.retrieve(
            payment_intent, params={"expand": ["latest_charge"]}, options={"max_network_retries": 0}
        )
        charge = intent.to_dict().get("latest_charge")
    except Exception as exc:  # a receipt is a convenience: no Stripe problem may fail a fulfilment
        logger.warning(
            "no receipt from Stripe", extra={"payment_intent": payment_intent, "reason": str(exc)[:300]}
        )
        return None
    url = charge.get("receipt_url") if isinstance(charge, dict) else None
    return _receipt(url)


def _receipt(url: Any) -> str | None:
    """A receipt URL fit to show: an http(s) address of at most 2,000 characters."""
    if not isinstance(url, str) or len(url) > 2000 or not url.startswith(("https://", "http://")):
        return None
    return url


def attach_receipt(tenant_id: str, checkout_session: str) -> str | None:
    """Store the receipt of a paid purchase that has none yet (best effort: Stripe may not have it yet, and a later
    delivery of the session's events tries again). Returns the URL stored, if any."""
    try:
        with db.transaction(tenant_id) as conn:
            row = conn.execute(
                "SELECT id, payment_intent FROM purchases"
                " WHERE checkout_session = %s AND status = 'paid' AND receipt_url IS NULL",
                (checkout_session,),
            ).fetchone()
        if row is None or not row["payment_intent"]:
            return None
        url = receipt_url(str(row["payment_intent"]))
        if url is None:
            return None
        with db.transaction(tenant_id) as conn:
            conn.execute(
                "UPDATE purchases SET receipt_url = %s WHERE id = %s AND receipt_url IS NULL",
                (url, row["id"]),
            )
        return url
    except Exception as exc:
        logger.warning(
            "receipt not stored", extra={"checkout_session": checkout_session, "reason": str(exc)[:300]}
        )
        return None


def _payment_purchase(
    payment_intent: str | None, charge_id: str | None, metadata: dict[str, str]
) -> tuple[str, str] | None:
    """(tenant, purchase) of a payment: linked by an earlier event, or named by our metadata on the charge."""
    if payment_intent or charge_id:
        found = db.system_lookup("SELECT * FROM app_purchase_by_payment(%s, %s)", (payment_intent, charge_id))
        if found is not None:
            return str(found["tenant_id"]), str(found["purchase_id"])
    return _ours(metadata)


def _link(conn: db.Conn, purchase: dict[str, Any], payment_intent: str | None, charge_id: str | None) -> None:
    conn.execute(
        "UPDATE purchases SET payment_intent = COALESCE(payment_intent, %s), charge_id = COALESCE(charge_id, %s),"
        " updated_at = now() WHERE id = %s",
        (payment_intent, charge_id, purchase["id"]),
    )


def _recorded(conn: db.Conn, purchase_id: str) -> dict[str, Any]:
    """Our purchase, locked; a transient error (Stripe retries) while checkout has not recorded it yet."""
    purchase = _lock_purchase(conn, purchase_id)
    if purchase is None:
        raise TransientError(
            f"purchase {purchase_id} is not recorded yet; Stripe will retry", code="purchase_unknown"
        )
    return purchase


def _on_charge_refunded(event: StripeEvent) -> WebhookResult:
    charge = StripeCharge.model_validate(event.data.object)
    found = _payment_purchase(charge.payment_intent, charge.id, charge.metadata)
    if found is None:
        return _ignore(event, "not this deployment's payment")
    tenant_id, purchase_id = found

    def work(conn: db.Conn) -> str:
        purchase = _recorded(conn, purchase_id)
        _link(conn, purchase, charge.payment_intent, charge.id)
        # the charge's receipt (it lists the refund too), if the purchase has none yet
        receipt = _receipt(event.data.object.get("receipt_url"))
        if receipt is not None:
            conn.execute(
                "UPDATE purchases SET receipt_url = COALESCE(receipt_url, %s) WHERE id = %s",
                (receipt, purchase_id),
            )
        refunded = max(
            int(purchase["amount_refunded"]), min(charge.amount_refunded, int(purchase["amount_total"]))
        )
        conn.execute(
            "UPDATE purchases SET amount_refunded = %s, updated_at = now() WHERE id = %s",
            (refunded, purchase_id),
        )
        purchase["amount_refunded"] = refunded
        _reconcile(conn, purchase)
        return f"refunded {refunded} of {purchase['amount_total']}" + (
            "" if purchase["status"] == "paid" else " (applies once paid)"
        )

    return _once(event, tenant_id, work, "processed")


def _newer(row: dict[str, Any], snapshot: tuple[int, datetime, int]) -> bool:
    """Whether a dispute snapshot (balance transactions, event time, stage) is at least as new as the row's."""
    seen = (
        int(row["balance_transactions"]),
        row["event_created"] or datetime.min.replace(tzinfo=UTC),
        _DISPUTE_STAGE.get(row["status"], 2),
    )
    return snapshot >= seen


def _on_dispute(event: StripeEvent) -> WebhookResult:
    dispute = StripeDispute.model_validate(event.data.object)
    found = _payment_purchase(dispute.payment_intent, dispute.charge, {})
    if found is None:  # disputes carry no metadata of ours: the charge tells whose payment it is
        found = _ours(charge_metadata(dispute.charge))
        if found is None:
            return _ignore(event, f"not this deployment's payment ({dispute.charge})")
    tenant_id, purchase_id = found
    transactions = event.data.object.get("balance_transactions")
    snapshot = (
        len(transactions) if isinstance(transactions, list) else 0,
        datetime.fromtimestamp(event.created, UTC),
        _DISPUTE_STAGE.get(dispute.status, 2),
    )

    def work(conn: db.Conn) -> str:
        purchase = _recorded(conn, purchase_id)
        _link(conn, purchase, dispute.payment_intent, dispute.charge)
        row = conn.execute("SELECT * FROM disputes WHERE id = %s FOR UPDATE", (dispute.id,)).fetchone()
        note = ""
        if row is None:
            conn.execute(
                "INSERT INTO disputes (id, tenant_id, purchase_id, charge_id, amount, status,"
                " balance_transactions, event_created) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    dispute.id,
                    tenant_id,
                    purchase_id,
                    dispute.charge,
                    dispute.amount,
                    dispute.status,
                    *snapshot[:2],
                ),
            )
        elif event.type != "charge.dispute.created" and _newer(dict(row), snapshot):
            conn.execute(
                "UPDATE disputes SET status = %s, amount = %s, balance_transactions = %s, event_created = %s,"
                " updated_at = now() WHERE id = %s",
                (dispute.status, dispute.amount, *snapshot[:2], dispute.id),
            )
        else:
            note = f" (an older snapshot: {dispute.status})"
        _reconcile(conn, purchase)
        row = conn.execute(
            "SELECT status, rounds, credits_held, credits_debited, credits_restored FROM disputes WHERE id = %s",
            (dispute.id,),
        ).fetchone()
        assert row is not None
        return (
            f"dispute {row['status']}: debited {row['credits_debited']}, restored {row['credits_restored']},"
            f" holds {row['credits_held']} (round {row['rounds']}){note}"
            + ("" if purchase["status"] == "paid" else " (applies once paid)")
        )

    return _once(event, tenant_id, work, "processed")


HANDLERS: dict[str, Callable[[StripeEvent], WebhookResult]] = {
    "checkout.session.completed": _on_session,
    "checkout.session.async_payment_succeeded": _on_session,
    "checkout.session.async_payment_failed": _on_session,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.funds_withdrawn": _on_dispute,
    "charge.dispute.funds_reinstated": _on_dispute,
    "charge.dispute.closed": _on_dispute,
}


def handle_webhook(raw_body: bytes, signature_header: str | None, now: float | None = None) -> WebhookResult:
    """Verify and process one Stripe webhook delivery. Raises SignatureError (nothing changed) when the body is
    not signed by our endpoint's secret within the tolerance, TransientError when Stripe should retry."""
    keys = stripe_config()
    config.deployment_id()  # fail fast: which objects are ours depends on it
    event = verify(raw_body, signature_header, keys.webhook_secret, time.time() if now is None else now)
    key_livemode = _key_livemode(keys.api_key)
    if key_livemode is not None and event.livemode != key_livemode:
        logger.warning(
            "stripe event ignored: its mode does not match the API key's",
            extra={"event_id": event.id, "type": event.type, "livemode": event.livemode},
        )
        return _ignore(event, f"livemode {str(event.livemode).lower()} does not match the API key's mode")
    handler = HANDLERS.get(event.type)
    if handler is None:
        return _ignore(event, "event type not handled")
    try:
        return handler(event)
    except ValidationError as exc:
        _record_failure(event, exc)
        raise ModamodaError(f"{event.type} has an unexpected shape", code="invalid_payload") from exc
    except Exception as exc:
        _record_failure(event, exc)
        raise
