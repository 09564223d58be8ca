"""Billing on a real PostgreSQL: Checkout, and Stripe webhooks that grant, refund and dispute credits exactly once,
in any order, however often they are delivered. Payloads are signed offline with the stripe library's helper."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest

from functions.common import billing, credits, db
from functions.common.errors import (
    ConfigError,
    InputRejected,
    ModamodaError,
    NotFound,
    PaymentProviderError,
    SignatureError,
    TransientError,
)
from tests.conftest import create_job
from tests.stripe_support import (
    CANCEL_URL,
    SUCCESS_URL,
    FakeStripeHTTP,
    books,
    customer,
    deliver,
    dispute_event,
    fixture,
    ledger,
    purchase,
    refund_event,
    session_event,
    sign,
    signed,
    start_checkout,
)

pytestmark = pytest.mark.usefixtures("stripe_env")


def event_row(event_id: str) -> dict[str, Any] | None:
    with db.transaction(None) as conn:
        row = conn.execute("SELECT * FROM stripe_events WHERE id = %s", (event_id,)).fetchone()
    return dict(row) if row else None


# ---- configuration ---------------------------------------------------------------------------------------


def test_config_is_read_once_per_container(stripe_env: str) -> None:
    first = billing.stripe_config()
    assert first.webhook_secret.startswith("whsec_")
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId=stripe_env, ForceDeleteWithoutRecovery=True
    )
    assert billing.stripe_config() is first


def test_missing_or_placeholder_config_fails_fast(stripe_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIPE_SECRET_ARN")
    billing.reset()
    with pytest.raises(ConfigError, match="STRIPE_SECRET_ARN"):
        billing.stripe_config()
    placeholder = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="placeholder",
        SecretString=json.dumps({"api_key": "sk_test_REPLACE_ME", "webhook_secret": "whsec_REPLACE_ME"}),
    )["ARN"]
    monkeypatch.setenv("STRIPE_SECRET_ARN", placeholder)
    with pytest.raises(ConfigError, match="placeholders"):
        billing.stripe_config()
    monkeypatch.setenv("STRIPE_SECRET_ARN", placeholder.replace("placeholder", "nothing"))
    with pytest.raises(ConfigError, match="cannot read"):
        billing.stripe_config()


# ---- checkout ----------------------------------------------------------------------------------------------


def test_checkout_creates_a_session_and_a_pending_purchase() -> None:
    who = customer()
    http = FakeStripeHTTP()
    created = billing.create_checkout(billing.stripe_client(http), who, "pro", SUCCESS_URL, CANCEL_URL)
    assert created.checkout_url.startswith("https://checkout.stripe.com/")
    (request,) = http.requests
    assert request["method"] == "post"
    assert request["url"] == "https://api.stripe.com/v1/checkout/sessions"
    assert request["headers"]["Authorization"] == f"Bearer {billing.stripe_config().api_key}"
    assert request["headers"]["Idempotency-Key"].startswith("modamoda-checkout-")
    params = request["params"]
    purchase_id = params["metadata[purchase_id]"]
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == who.tenant_id
    assert params["line_items[0][quantity]"] == "1"
    assert params["line_items[0][price_data][unit_amount]"] == "12900"
    assert params["line_items[0][price_data][currency]"] == "usd"
    assert "200 credits" in params["line_items[0][price_data][product_data][name]"]
    expected = {"tenant_id": who.tenant_id, "purchase_id": purchase_id, "pack_id": "pro", "credits": "200"}
    for key, value in expected.items():
        assert params[f"metadata[{key}]"] == value
        assert params[f"payment_intent_data[metadata][{key}]"] == value
    assert params["success_url"] == SUCCESS_URL
    assert params["cancel_url"] == CANCEL_URL
    assert params["customer_email"] == "buyer@example.com"
    with db.transaction(who.tenant_id) as conn:
        row = conn.execute("SELECT * FROM purchases WHERE id = %s", (purchase_id,)).fetchone()
    assert row is not None
    assert (row["checkout_session"], row["status"], row["credits"], row["amount_total"]) == (
        created.session_id,
        "pending",
        200,
        12900,
    )
    assert books(who.tenant_id) == 0


def test_checkout_with_the_same_idempotency_key_returns_the_same_session() -> None:
    who = customer()
    http = FakeStripeHTTP()
    client = billing.stripe_client(http)
    first = billing.create_checkout(client, who, "starter", SUCCESS_URL, CANCEL_URL, idempotency_key="k1")
    again = billing.create_checkout(client, who, "starter", SUCCESS_URL, CANCEL_URL, idempotency_key="k1")
    other = billing.create_checkout(client, who, "starter", SUCCESS_URL, CANCEL_URL, idempotency_key="k2")
    assert first == again
    assert other.session_id != first.session_id
    with db.transaction(who.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM purchases").fetchone()["n"] == 2  # type: ignore[index]


def test_checkout_refuses_unknown_packs_and_unsafe_urls() -> None:
    who = customer()
    http = FakeStripeHTTP()
    client = billing.stripe_client(http)
    with pytest.raises(NotFound):
        billing.create_checkout(client, who, "platinum", SUCCESS_URL, CANCEL_URL)
    for url in (
        "http://app.example/ok",
        "javascript:alert(1)",
        "ftp://x",
        "https://user:pw@app.example/",
        "/ok",
    ):
        with pytest.raises(InputRejected):
            billing.create_checkout(client, who, "starter", url, CANCEL_URL)
    assert http.requests == []
    billing.create_checkout(client, who, "starter", "http://localhost:5173/ok", "http://127.0.0.1:5173/no")
    assert len(http.requests) == 1


def test_stripe_refusals_and_outages_record_nothing() -> None:
    who = customer()
    refused = FakeStripeHTTP(
        status=400, error={"error": {"type": "invalid_request_error", "message": "No such currency"}}
    )
    with pytest.raises(PaymentProviderError):
        billing.create_checkout(billing.stripe_client(refused), who, "starter", SUCCESS_URL, CANCEL_URL)
    down = FakeStripeHTTP(status=503)
    with pytest.raises(TransientError):
        billing.create_checkout(billing.stripe_client(down), who, "starter", SUCCESS_URL, CANCEL_URL)
    assert len(down.requests) == 3  # the client retried twice
    with db.transaction(who.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM purchases").fetchone()["n"] == 0  # type: ignore[index]


# ---- grants ------------------------------------------------------------------------------------------------


def test_paid_checkout_grants_once_under_replay() -> None:
    c = start_checkout(customer())
    event = session_event(c)
    body, header = signed(event)
    results = [billing.handle_webhook(body, header) for _ in range(3)]
    assert [r.status for r in results] == ["processed", "duplicate", "duplicate"]
    assert books(c.tenant_id) == 50
    grants = [e for e in ledger(c.tenant_id) if e["kind"] == "grant"]
    assert [(g["amount"], g["idempotency_key"]) for g in grants] == [(50, f"purchase:{c.session_id}")]
    assert grants[0]["meta"]["pack_id"] == "studio"
    p = purchase(c)
    assert (p["status"], p["credits_granted"], p["payment_intent"]) == ("paid", 50, c.payment_intent)
    row = event_row(event["id"])
    assert row is not None
    assert row["processed_at"] is not None
    assert row["type"] == "checkout.session.completed"
    assert row["created"] == datetime.fromtimestamp(event["created"], UTC)


def test_concurrent_deliveries_grant_once() -> None:
    c = start_checkout(customer())
    completed = signed(session_event(c))
    succeeded = signed(session_event(c, "checkout.session.async_payment_succeeded"))
    deliveries = [completed] * 6 + [succeeded] * 6
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(deliveries))

    def run(body: bytes, header: str) -> None:
        try:
            barrier.wait()
            results.append(billing.handle_webhook(body, header).status)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.reset()

    threads = [threading.Thread(target=run, args=d) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == ["duplicate"] * 10 + ["processed"] * 2
    assert books(c.tenant_id) == 50
    assert [e["amount"] for e in ledger(c.tenant_id)] == [50]


def test_unpaid_completion_then_async_success_grants_once() -> None:
    c = start_checkout(customer())
    result = deliver(session_event(c, payment_status="unpaid"))
    assert result.status == "processed"
    assert "awaiting payment" in result.detail
    assert books(c.tenant_id) == 0
    assert purchase(c)["status"] == "pending"
    assert purchase(c)["payment_intent"] == c.payment_intent
    succeeded = session_event(c, "checkout.session.async_payment_succeeded")
    assert deliver(succeeded).detail == "granted 50"
    assert deliver(succeeded).status == "duplicate"
    assert deliver(session_event(c, "checkout.session.async_payment_succeeded")).detail == "already granted"
    assert books(c.tenant_id) == 50
    assert purchase(c)["status"] == "paid"


@pytest.mark.parametrize("failed_first", [False, True])
def test_async_payment_failure_grants_nothing(failed_first: bool) -> None:
    c = start_checkout(customer())
    events = [
        session_event(c, payment_status="unpaid"),
        session_event(c, "checkout.session.async_payment_failed", payment_status="unpaid"),
    ]
    for event in reversed(events) if failed_first else events:
        assert deliver(event).status == "processed"
    assert books(c.tenant_id) == 0
    assert purchase(c)["status"] == "failed"
    assert ledger(c.tenant_id) == []


def test_completed_and_async_succeeded_grant_once() -> None:
    c = start_checkout(customer())
    deliver(session_event(c))
    deliver(session_event(c, "checkout.session.async_payment_succeeded"))
    assert books(c.tenant_id) == 50
    assert len(ledger(c.tenant_id)) == 1


def test_purchase_is_recovered_from_metadata_when_checkout_never_recorded_it() -> None:
    c = start_checkout(customer())
    with psycopg.connect(db.dsn(admin=True), autocommit=True) as owner:
        owner.execute("DELETE FROM purchases WHERE id = %s", (c.purchase_id,))
    assert deliver(session_event(c)).detail == "granted 50"
    assert books(c.tenant_id) == 50
    assert purchase(c)["checkout_session"] == c.session_id


def test_sessions_and_charges_that_are_not_ours_are_acknowledged_and_ignored() -> None:
    c = start_checkout(customer())
    foreign = session_event(c, metadata={})
    foreign["data"]["object"]["id"] = "cs_test_someone_elses_checkout"
    assert deliver(foreign).status == "ignored"
    foreign_charge = refund_event(c, 100, metadata={})
    assert deliver(foreign_charge).status == "ignored"
    assert deliver(fixture("payment_intent.succeeded")).status == "ignored"
    assert books(c.tenant_id) == 0


def test_failed_processing_is_recorded_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    c = start_checkout(customer())
    event = session_event(c)
    real_grant = credits.grant

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise psycopg.OperationalError("connection lost mid-grant")

    monkeypatch.setattr(credits, "grant", broken)
    with pytest.raises(TransientError):
        deliver(event)
    row = event_row(event["id"])
    assert row is not None
    assert (row["processed_at"], row["outcome"], row["attempts"]) == (None, "failed", 1)
    assert "connection lost" in row["last_error"]
    assert books(c.tenant_id) == 0
    monkeypatch.setattr(credits, "grant", real_grant)
    assert deliver(event).status == "processed"
    row = event_row(event["id"])
    assert row is not None
    assert row["processed_at"] is not None
    assert row["attempts"] == 2
    assert books(c.tenant_id) == 50


# ---- refunds -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refunds", "expected"),
    [
        ([1950, 3900], 0),  # partial, then the rest
        ([3900, 1950], 0),  # delivered in reverse: the smaller cumulative amount changes nothing
        ([1000, 2000], 25),  # floor(50 * 1000 / 3900) = 12, then floor(50 * 2000 / 3900) = 25 in all
        ([1000], 38),
        ([77], 50),  # less than one credit's worth
    ],
)
def test_refunds_are_cumulative(refunds: list[int], expected: int) -> None:
    c = start_checkout(customer())
    deliver(session_event(c))
    for amount in refunds:
        assert deliver(refund_event(c, amount)).status == "processed"
        books(c.tenant_id)
    assert books(c.tenant_id) == expected
    p = purchase(c)
    assert p["amount_refunded"] == max(refunds)
    assert p["credits_refunded"] == 50 - expected
    assert p["charge_id"] == c.charge_id


def test_refund_replayed_debits_once() -> None:
    c = start_checkout(customer())
    deliver(session_event(c))
    refund = refund_event(c, 3900)
    assert [deliver(refund).status for _ in range(3)] == ["processed", "duplicate", "duplicate"]
    deliver(refund_event(c, 3900))  # the same refund state in a new event
    assert books(c.tenant_id) == 0
    assert [e["amount"] for e in ledger(c.tenant_id)] == [50, -50]


def test_refund_after_credits_were_spent_never_goes_negative() -> None:
    tenant_id, job_id = create_job(sub="spender", welcome=0)
    c = start_checkout(customer("spender"))
    assert c.tenant_id == tenant_id
    deliver(session_event(c))
    db.atomic(tenant_id, lambda conn: credits.reserve(conn, tenant_id, job_id, 45, 600))
    db.atomic(tenant_id, lambda conn: credits.capture(conn, job_id))
    assert books(tenant_id) == 5
    deliver(refund_event(c, 3900))
    assert books(tenant_id) == 0
    refund = ledger(tenant_id)[-1]
    assert (refund["kind"], refund["amount"]) == ("refund", -5)
    assert refund["meta"]["unrecovered"] == 45
    assert refund["meta"]["requested"] == -50


def test_refund_before_the_grant_is_applied_when_the_payment_lands() -> None:
    c = start_checkout(customer())
    result = deliver(refund_event(c, 1950))
    assert result.status == "processed"
    assert "applies once paid" in result.detail
    assert books(c.tenant_id) == 0
    assert ledger(c.tenant_id) == []
    deliver(session_event(c))
    assert books(c.tenant_id) == 25
    assert [e["amount"] for e in ledger(c.tenant_id)] == [50, -25]
    deliver(refund_event(c, 3900))
    assert books(c.tenant_id) == 0


def test_grant_and_refunds_delivered_concurrently_end_right() -> None:
    c = start_checkout(customer())
    deliveries = [
        signed(e)
        for e in (
            session_event(c),
            session_event(c, "checkout.session.async_payment_succeeded"),
            refund_event(c, 1000),
            refund_event(c, 1950),
        )
    ] * 3
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(deliveries))

    def run(body: bytes, header: str) -> None:
        try:
            barrier.wait()
            billing.handle_webhook(body, header)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.reset()

    threads = [threading.Thread(target=run, args=d) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert books(c.tenant_id) == 25  # 50 granted once, floor(50 * 1950 / 3900) taken back
    assert sum(e["amount"] for e in ledger(c.tenant_id) if e["kind"] == "grant") == 50


# ---- disputes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("closed_status", "expected"),
    [("won", 50), ("lost", 0)],
)
def test_dispute_debits_then_won_restores_or_lost_stays(closed_status: str, expected: int) -> None:
    c = start_checkout(customer())
    deliver(session_event(c))
    created = dispute_event(c)
    assert deliver(created).status == "processed"
    assert deliver(created).status == "duplicate"
    assert books(c.tenant_id) == 0
    closed = dispute_event(c, "charge.dispute.closed", closed_status)
    assert deliver(closed).status == "processed"
    assert deliver(closed).status == "duplicate"
    assert books(c.tenant_id) == expected
    kinds = [(e["kind"], e["amount"]) for e in ledger(c.tenant_id)]
    assert kinds == [("grant", 50), ("dispute", -50)] + ([("dispute", 50)] if closed_status == "won" else [])


@pytest.mark.parametrize(("closed_status", "expected"), [("won", 50), ("lost", 0)])
def test_dispute_closed_before_created_ends_right(closed_status: str, expected: int) -> None:
    c = start_checkout(customer())
    deliver(session_event(c))
    deliver(dispute_event(c, "charge.dispute.closed", closed_status))
    assert books(c.tenant_id) == expected
    deliver(dispute_event(c, "charge.dispute.created", "needs_response"))
    assert books(c.tenant_id) == expected
    with db.transaction(c.tenant_id) as conn:
        row = conn.execute("SELECT status FROM disputes").fetchone()
    assert row is not None
    assert row["status"] == closed_status


def test_won_dispute_restores_exactly_what_was_debited() -> None:
    tenant_id, job_id = create_job(sub="spender", welcome=0)
    c = start_checkout(customer("spender"))
    deliver(session_event(c))
    db.atomic(tenant_id, lambda conn: credits.reserve(conn, tenant_id, job_id, 30, 600))
    deliver(dispute_event(c, amount=3900))
    assert books(tenant_id) == 0  # 20 of 50 could be taken back; 30 are held by a job
    debit = ledger(tenant_id)[-1]
    assert (debit["amount"], debit["meta"]["unrecovered"]) == (-20, 30)
    deliver(dispute_event(c, "charge.dispute.closed", "won"))
    assert books(tenant_id) == 20


def test_partial_dispute_debits_its_share_and_inquiries_debit_nothing() -> None:
    c = start_checkout(customer())
    deliver(session_event(c))
    deliver(dispute_event(c, status="warning_needs_response", dispute_id="dp_inquiry1", amount=1950))
    assert books(c.tenant_id) == 50
    deliver(
        dispute_event(c, "charge.dispute.updated", "needs_response", dispute_id="dp_inquiry1", amount=1950)
    )
    assert books(c.tenant_id) == 25
    deliver(dispute_event(c, "charge.dispute.closed", "lost", dispute_id="dp_inquiry1", amount=1950))
    assert books(c.tenant_id) == 25


def test_dispute_before_the_grant_is_applied_when_the_payment_lands() -> None:
    c = start_checkout(customer())
    deliver(session_event(c, payment_status="unpaid"))  # an async payment method: links the payment intent
    result = deliver(dispute_event(c))
    assert "applies once paid" in result.detail
    assert books(c.tenant_id) == 0
    deliver(session_event(c, "checkout.session.async_payment_succeeded"))
    assert books(c.tenant_id) == 0
    assert [(e["kind"], e["amount"]) for e in ledger(c.tenant_id)] == [("grant", 50), ("dispute", -50)]
    deliver(dispute_event(c, "charge.dispute.closed", "won"))
    assert books(c.tenant_id) == 50


def test_dispute_for_an_unlinked_payment_fails_so_stripe_retries() -> None:
    c = start_checkout(customer())
    with psycopg.connect(
        db.dsn(admin=True), autocommit=True
    ) as owner:  # checkout never recorded the purchase
        owner.execute("DELETE FROM purchases WHERE id = %s", (c.purchase_id,))
    early = dispute_event(
        c
    )  # its charge names this deployment's purchase: ours, but nothing to link it to yet
    with pytest.raises(TransientError, match="Stripe will retry"):
        deliver(early)
    row = event_row(early["id"])
    assert row is not None
    assert (row["processed_at"], row["outcome"]) == (None, "failed")
    deliver(session_event(c))  # records the purchase from its metadata and links the payment intent
    assert deliver(early).status == "processed"  # Stripe's retry
    assert books(c.tenant_id) == 0


# ---- signatures --------------------------------------------------------------------------------------------


def _no_change(c: Any, event: dict[str, Any]) -> None:
    assert books(c.tenant_id) == 0
    assert event_row(event["id"]) is None
    assert purchase(c)["status"] == "pending"


def test_tampered_body_is_refused() -> None:
    c = start_checkout(customer())
    event = session_event(c)
    body, header = signed(event)
    tampered = body.replace(b'"amount_total": 3900', b'"amount_total": 390000')
    assert tampered != body
    with pytest.raises(SignatureError):
        billing.handle_webhook(tampered, header)
    _no_change(c, event)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=deadbeef",
        "t=notanumber,v1=deadbeef",
        "t=1795433712",
    ],
)
def test_missing_or_malformed_signature_is_refused(header: str | None) -> None:
    c = start_checkout(customer())
    event = session_event(c)
    body, _ = signed(event)
    with pytest.raises(SignatureError):
        billing.handle_webhook(body, header)
    _no_change(c, event)


@pytest.mark.parametrize(
    ("secret", "skew"),
    [
        ("whsec_not_our_endpoint", 0),  # wrong secret
        (None, -301),  # stale: signed more than 300 s ago
        (None, -3600),
        (None, 301),  # signed in the future
        (None, 86_400),
    ],
)
def test_wrong_secret_and_timestamps_outside_the_tolerance_are_refused(secret: str | None, skew: int) -> None:
    c = start_checkout(customer())
    event = session_event(c)
    payload = json.dumps(event).encode()
    kwargs: dict[str, Any] = {"timestamp": int(time.time()) + skew}
    if secret:
        kwargs["secret"] = secret
    with pytest.raises(SignatureError):
        billing.handle_webhook(payload, sign(payload, **kwargs))
    _no_change(c, event)


def test_timestamps_within_the_tolerance_are_accepted() -> None:
    c = start_checkout(customer())
    now = int(time.time())
    assert deliver(session_event(c), timestamp=now - 250).status == "processed"
    assert deliver(session_event(c, "checkout.session.async_payment_succeeded"), timestamp=now + 250).status
    assert books(c.tenant_id) == 50


def test_signed_body_that_is_not_an_event_is_refused() -> None:
    for body in (b"not json", b'{"object": "list"}', b'{"id": "evt_1", "object": "event"}'):
        with pytest.raises(ModamodaError) as caught:
            billing.handle_webhook(body, sign(body))
        assert caught.value.http_status == 400


# ---- retention, isolation ----------------------------------------------------------------------------------


def test_prune_deletes_only_processed_events_older_than_30_days(admin_url: str) -> None:
    now = datetime.now(UTC)
    rows = {
        "evt_old_done": (now - timedelta(days=31), now - timedelta(days=31)),
        "evt_old_failed": (now - timedelta(days=40), None),
        "evt_recent_done": (now - timedelta(days=29), now - timedelta(days=29)),
        "evt_fresh": (now, now),
    }
    with psycopg.connect(admin_url, autocommit=True) as owner:
        for event_id, (received, processed) in rows.items():
            owner.execute(
                "INSERT INTO stripe_events (id, type, created, received_at, processed_at)"
                " VALUES (%s, 'charge.refunded', %s, %s, %s)",
                (event_id, received, received, processed),
            )
    assert billing.prune_events(now + timedelta(days=365)) == 1  # asking for more never cuts below 30 days
    with db.transaction(None) as conn:
        left = {r["id"] for r in conn.execute("SELECT id FROM stripe_events").fetchall()}
    assert left == {"evt_old_failed", "evt_recent_done", "evt_fresh"}
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(None) as conn:
        conn.execute("DELETE FROM stripe_events")


def test_purchases_disputes_and_ledgers_are_tenant_scoped() -> None:
    a = start_checkout(customer("alice"))
    b = start_checkout(customer("bob"))
    for c in (a, b):
        deliver(session_event(c))
    deliver(refund_event(a, 1950))
    deliver(dispute_event(a))
    with db.transaction(b.tenant_id) as conn:
        purchases = conn.execute("SELECT id FROM purchases").fetchall()
        assert [str(r["id"]) for r in purchases] == [b.purchase_id]
        assert conn.execute("SELECT count(*) AS n FROM disputes").fetchone()["n"] == 0  # type: ignore[index]
        assert {str(r["tenant_id"]) for r in conn.execute("SELECT tenant_id FROM ledger")} == {b.tenant_id}
    with db.transaction(None) as conn:
        assert conn.execute("SELECT count(*) AS n FROM purchases").fetchone()["n"] == 0  # type: ignore[index]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(b.tenant_id) as conn:
        conn.execute("UPDATE purchases SET tenant_id = %s", (a.tenant_id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction(b.tenant_id) as conn:
        conn.execute("DELETE FROM purchases")
    assert books(a.tenant_id) == 0
    assert books(b.tenant_id) == 50


def test_billing_tables_force_row_level_security(admin_url: str) -> None:
    with psycopg.connect(admin_url) as owner:
        rows = owner.execute(
            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class"
            " WHERE relname IN ('purchases', 'disputes', 'stripe_events', 'credit_packs')"
        ).fetchall()
        grants = owner.execute(
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) FROM"
            " information_schema.role_table_grants WHERE grantee = 'modamoda_app'"
            " AND table_name IN ('purchases', 'disputes', 'stripe_events', 'credit_packs') GROUP BY table_name"
        ).fetchall()
    assert dict(rows) == {"purchases": True, "disputes": True, "stripe_events": False, "credit_packs": False}
    assert dict(grants) == {
        "credit_packs": "SELECT",
        "purchases": "INSERT,SELECT,UPDATE",
        "disputes": "INSERT,SELECT,UPDATE",
        "stripe_events": "INSERT,SELECT,UPDATE",
    }
