"""Refunds plus disputes, disputes that reopen, and whose payment an event is about: replays of Stripe-shaped
events through the billing Lambda on a real PostgreSQL.

- Everything taken back for a purchase (refunds plus disputes, in any order, a dispute closed and reopened) is
  capped at what that purchase granted: it never comes out of another purchase's credits; a won dispute gives
  back exactly what its own take-back took; the ledger sum is the balance throughout.
- Events about payments that are not this deployment's (a charge of another integration on the account, objects
  of another deployment sharing the Stripe account) are acknowledged (200) and change nothing; our own payment
  that cannot be linked to a purchase yet is still retried (500); an event of the other mode than the API key's
  (livemode) is acknowledged and ignored.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

import boto3
import psycopg
import pytest

from functions.billing import handler
from functions.common import billing, credits, db
from tests import stripe_support
from tests.conftest import FakeLambdaContext, create_job
from tests.functions.billing.test_handler import http_event
from tests.stripe_support import (
    CANCEL_URL,
    DEPLOYMENT,
    SUCCESS_URL,
    WEBHOOK_SECRET,
    Checkout,
    FakeStripeHTTP,
    books,
    charge_object,
    customer,
    dispute_event,
    ledger,
    purchase,
    refund_event,
    session_event,
    sign,
    start_checkout,
)

pytestmark = pytest.mark.usefixtures("stripe_env")

T0 = int(time.time()) - 3600  # when the disputes below begin (event times matter to a dispute's history)
OTHER_DEPLOYMENT = "210987654321/eu-west-1/Modamoda-staging"


def send(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Deliver the event, signed now, through the Lambda handler as API Gateway would."""
    body = json.dumps(event, indent=2).encode()
    response = handler.lambda_handler(http_event(body, sign(body)), FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def accepted(event: dict[str, Any]) -> str:
    status, reply = send(event)
    assert status == 200, reply
    return str(reply["status"])


def two_packs(sub: str = "buyer") -> tuple[Checkout, Checkout]:
    """One customer, two paid Studio packs (50 credits each, $39): A is refunded/disputed, B must stay whole."""
    who = customer(sub)
    a, b = start_checkout(who), start_checkout(who)
    for c in (a, b):
        assert accepted(session_event(c)) == "processed"
    assert books(who.tenant_id) == 100
    return a, b


def taken_back(c: Checkout) -> int:
    """Credits the ledger took back for the purchase, net (refunds and disputes, minus what disputes gave back)."""
    entries = [e for e in ledger(c.tenant_id) if e["meta"].get("purchase_id") == c.purchase_id]
    return -sum(int(e["amount"]) for e in entries if e["kind"] in {"refund", "dispute"})


def dispute(c: Checkout, type_: str, status: str, at: int, transactions: list[int]) -> dict[str, Any]:
    return dispute_event(c, type_, status, created=T0 + at, balance_transactions=transactions)


# ---- 5. refunds plus disputes never take more than the purchase granted ----------------------------------------

W, R = -3900, 3900  # a dispute's balance transactions: funds withdrawn, funds reinstated

OUTCOMES = {
    "lost": [("charge.dispute.closed", "lost", 20, [W])],
    "won": [
        ("charge.dispute.funds_reinstated", "won", 20, [W, R]),
        ("charge.dispute.closed", "won", 20, [W, R]),
    ],
    "reopened, then lost": [
        ("charge.dispute.closed", "won", 20, [W, R]),
        ("charge.dispute.updated", "needs_response", 30, [W, R, W]),
        ("charge.dispute.funds_withdrawn", "needs_response", 30, [W, R, W]),
        ("charge.dispute.closed", "lost", 40, [W, R, W]),
    ],
    "reopened, then won": [
        ("charge.dispute.closed", "won", 20, [W, R]),
        ("charge.dispute.updated", "warning_under_review", 30, [W, R]),
        ("charge.dispute.updated", "under_review", 40, [W, R, W]),
        ("charge.dispute.funds_reinstated", "won", 50, [W, R, W, R]),
    ],
}


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_full_refund_then_dispute_takes_nothing_more(outcome: str) -> None:
    a, b = two_packs()
    assert accepted(refund_event(a, 3900)) == "processed"
    assert books(a.tenant_id) == 50
    steps = [
        ("charge.dispute.created", "needs_response", 0, [W]),
        ("charge.dispute.funds_withdrawn", "needs_response", 0, [W]),
        *OUTCOMES[outcome],
    ]
    for type_, status, at, transactions in steps:
        assert accepted(dispute(a, type_, status, at, transactions)) == "processed"
        assert books(a.tenant_id) == 50, (type_, status)  # B's 50 are untouched at every step
        assert taken_back(a) == 50
    assert purchase(a)["credits_refunded"] == 50
    assert all(e["meta"].get("purchase_id") != b.purchase_id for e in ledger(a.tenant_id)[2:])


@pytest.mark.parametrize(("closed", "expected"), [("won", 50), ("lost", 50)])
def test_dispute_then_full_refund_takes_back_once(closed: str, expected: int) -> None:
    a, _ = two_packs()
    accepted(dispute(a, "charge.dispute.created", "needs_response", 0, [W]))
    assert books(a.tenant_id) == 50
    accepted(refund_event(a, 3900))  # the dispute already holds all of A: the refund waits for room
    assert books(a.tenant_id) == 50
    accepted(dispute(a, "charge.dispute.closed", closed, 20, [W, R] if closed == "won" else [W]))
    assert books(a.tenant_id) == expected
    assert taken_back(a) == 50
    kinds = [(e["kind"], e["amount"]) for e in ledger(a.tenant_id)[2:]]
    if closed == "won":  # the win gives back exactly what the dispute took; then the refund takes its share
        assert kinds == [("dispute", -50), ("dispute", 50), ("refund", -50)]
    else:
        assert kinds == [("dispute", -50)]


@pytest.mark.parametrize(("closed", "expected"), [("lost", 50), ("won", 75)])
def test_partial_refund_then_full_dispute_takes_only_the_rest(closed: str, expected: int) -> None:
    a, _ = two_packs()
    accepted(refund_event(a, 1950))  # 25 credits back
    accepted(dispute(a, "charge.dispute.created", "needs_response", 0, [W]))  # disputed in full: 25 are left
    assert books(a.tenant_id) == 50
    accepted(dispute(a, "charge.dispute.closed", closed, 20, [W, R] if closed == "won" else [W]))
    assert books(a.tenant_id) == expected
    with db.transaction(a.tenant_id) as conn:
        row = conn.execute("SELECT credits_debited, credits_restored FROM disputes").fetchone()
    assert row is not None
    assert (row["credits_debited"], row["credits_restored"]) == (25, 25 if closed == "won" else 0)


def test_a_clamped_take_back_still_counts_against_the_purchase() -> None:
    """Credits already spent: the dispute takes what the balance has, and all it claimed (not only what it got)
    counts against the purchase, so a later refund of it takes nothing from credits bought afterwards."""
    tenant_id, job_id = create_job(sub="spender", welcome=0)
    a = start_checkout(customer("spender"))
    accepted(session_event(a))
    db.atomic(tenant_id, lambda conn: credits.reserve(conn, tenant_id, job_id, 45, 600))
    db.atomic(tenant_id, lambda conn: credits.capture(conn, job_id))
    accepted(dispute(a, "charge.dispute.created", "needs_response", 0, [W]))
    assert books(tenant_id) == 0  # 5 taken, 45 unrecovered
    b = start_checkout(customer("spender"))
    accepted(session_event(b))
    accepted(refund_event(a, 3900))
    accepted(dispute(a, "charge.dispute.closed", "lost", 20, [W]))
    assert books(tenant_id) == 50
    assert purchase(b)["status"] == "paid"


# ---- 5. disputes that reopen ------------------------------------------------------------------------------------

REOPENING = {
    "won, reopened, lost, won on appeal": [
        ("charge.dispute.created", "needs_response", 0, [W], 50),
        ("charge.dispute.closed", "won", 10, [W, R], 100),
        ("charge.dispute.updated", "needs_response", 20, [W, R, W], 50),
        ("charge.dispute.closed", "lost", 30, [W, R, W], 50),
        ("charge.dispute.funds_reinstated", "won", 40, [W, R, W, R], 100),
    ],
    "an inquiry closed, then escalated": [
        ("charge.dispute.created", "warning_needs_response", 0, [], 100),
        ("charge.dispute.closed", "warning_closed", 10, [], 100),
        ("charge.dispute.updated", "needs_response", 20, [W], 50),
        ("charge.dispute.funds_withdrawn", "needs_response", 20, [W], 50),
        ("charge.dispute.updated", "under_review", 30, [W], 50),
        ("charge.dispute.closed", "lost", 40, [W], 50),
    ],
    "late and stale snapshots reopen nothing": [
        ("charge.dispute.closed", "won", 10, [W, R], 100),
        ("charge.dispute.funds_withdrawn", "needs_response", 0, [W], 100),  # an older event
        ("charge.dispute.updated", "under_review", 10, [W], 100),  # the same second, fewer transactions
        ("charge.dispute.created", "needs_response", 50, [W], 100),  # a created never overrides
        ("charge.dispute.funds_reinstated", "won", 10, [W, R], 100),
    ],
}


@pytest.mark.parametrize("history", list(REOPENING))
def test_disputes_that_reopen_end_in_the_right_balance(history: str) -> None:
    a, _ = two_packs()
    for type_, status, at, transactions, balance in REOPENING[history]:
        assert accepted(dispute(a, type_, status, at, transactions)) == "processed"
        assert books(a.tenant_id) == balance, (type_, status, at)
        assert 0 <= taken_back(a) <= 50
    if history.startswith("won, reopened"):
        keys = [e["idempotency_key"] for e in ledger(a.tenant_id) if e["kind"] == "dispute"]
        dp = f"dp_{a.charge_id[3:]}"
        assert keys == [
            f"dispute:{dp}",
            f"dispute-restore:{dp}",
            f"dispute:{dp}:2",
            f"dispute-restore:{dp}:2",
        ]


def test_reopened_dispute_replayed_and_out_of_order_ends_the_same() -> None:
    in_order, shuffled = two_packs("first"), two_packs("second")
    history = REOPENING["won, reopened, lost, won on appeal"][:4]  # ends lost after a reopen
    for a, order in ((in_order[0], [0, 1, 2, 3]), (shuffled[0], [3, 0, 2, 1, 3, 0])):
        for i in order:
            type_, status, at, transactions, _ = history[i]
            accepted(dispute(a, type_, status, at, transactions))
    assert books(in_order[0].tenant_id) == books(shuffled[0].tenant_id) == 50


# ---- 6. whose payment: acknowledge what is not ours, retry only our own unlinked payment -----------------------


def test_dispute_on_a_charge_that_is_not_ours_is_acknowledged_and_changes_nothing() -> None:
    a, _ = two_packs()
    unknown = dataclasses.replace(a, payment_intent="pi_3NotOurs0000001", charge_id="ch_3NotOurs0000001")
    plain = dataclasses.replace(a, payment_intent="pi_3NoMetadata0001", charge_id="ch_3NoMetadata0001")
    api = stripe_support.stripe_api
    assert api is not None
    api.charges[plain.charge_id] = charge_object(plain, metadata={"order": "1234"})  # another integration's
    for c in (unknown, plain):
        for type_, status in (
            ("charge.dispute.created", "needs_response"),
            ("charge.dispute.closed", "lost"),
        ):
            status_code, reply = send(dispute_event(c, type_, status))
            assert (status_code, reply["status"]) == (200, "ignored")
    # (the purchases' receipts are retrieved too: GET /v1/payment_intents)
    retrieved = [r for r in api.requests if r["method"] == "get" and "/v1/charges/" in r["url"]]
    assert {r["url"].split("?")[0].rsplit("/", 1)[1] for r in retrieved} == {
        unknown.charge_id,
        plain.charge_id,
    }
    assert all("expand" in r["url"] and "payment_intent" in r["url"] for r in retrieved)
    assert books(a.tenant_id) == 100
    with db.transaction(a.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM disputes").fetchone()["n"] == 0  # type: ignore[index]


def _foreign(template: Checkout, metadata: dict[str, str]) -> Checkout:
    """A checkout of someone else on the same Stripe account: ids this database has never seen."""
    suffix = uuid.uuid4().hex[:16]
    return dataclasses.replace(
        template,
        session_id=f"cs_test_{uuid.uuid4().hex}{uuid.uuid4().hex[:20]}",
        purchase_id=metadata.get("purchase_id", str(uuid.uuid4())),
        payment_intent=f"pi_3{suffix}",
        charge_id=f"ch_3{suffix}",
        sent_metadata=metadata,
    )


def _no_trace(c: Checkout) -> None:
    with psycopg.connect(db.dsn(admin=True), autocommit=True) as owner:
        purchases = owner.execute(
            "SELECT count(*) FROM purchases WHERE id = %s OR checkout_session = %s OR payment_intent = %s"
            " OR charge_id = %s",
            (c.purchase_id, c.session_id, c.payment_intent, c.charge_id),
        ).fetchone()
        disputes = owner.execute(
            "SELECT count(*) FROM disputes WHERE charge_id = %s", (c.charge_id,)
        ).fetchone()
    assert (purchases, disputes) == ((0,), (0,))


@pytest.mark.parametrize("whose", ["another deployment", "before deployment ids, an unknown tenant"])
def test_events_of_another_deployment_are_acknowledged_and_change_nothing(whose: str) -> None:
    ours = start_checkout(customer())
    metadata = {
        "tenant_id": str(uuid.uuid4()),
        "purchase_id": str(uuid.uuid4()),
        "pack_id": "studio",
        "credits": "50",
    }
    if whose == "another deployment":
        metadata["modamoda_deployment"] = OTHER_DEPLOYMENT
    theirs = _foreign(ours, metadata)
    api = stripe_support.stripe_api
    assert api is not None
    api.charges[theirs.charge_id] = charge_object(theirs)
    events = [
        session_event(theirs),
        session_event(theirs, "checkout.session.async_payment_succeeded"),
        refund_event(theirs, 1950),
        dispute_event(theirs),
        dispute_event(theirs, "charge.dispute.closed", "lost"),
    ]
    for event in events:
        status, reply = send(event)
        assert (status, reply["status"]) == (200, "ignored"), event["type"]
    _no_trace(theirs)
    assert books(ours.tenant_id) == 0
    assert purchase(ours)["status"] == "pending"
    assert accepted(session_event(ours)) == "processed"  # our own events still count
    assert books(ours.tenant_id) == 50


def test_objects_from_before_deployment_ids_are_ours_when_the_tenant_is() -> None:
    c = start_checkout(customer())
    with psycopg.connect(db.dsn(admin=True), autocommit=True) as owner:  # only the metadata can tell
        owner.execute("DELETE FROM purchases WHERE id = %s", (c.purchase_id,))
    legacy = {k: v for k, v in c.metadata.items() if k != "modamoda_deployment"}
    refund = refund_event(c, 1950, metadata=legacy)
    status, reply = send(refund)  # ours (our tenant), but its purchase is not recorded yet: retried
    assert (status, reply["error"]["code"]) == (500, "purchase_unknown")
    assert accepted(session_event(c, metadata=legacy)) == "processed"
    assert accepted(refund) == "processed"
    assert books(c.tenant_id) == 25


def test_our_dispute_before_any_other_event_is_linked_through_its_charge() -> None:
    c = start_checkout(customer())  # recorded as pending; no event has named its payment yet
    status, reply = send(dispute_event(c))
    assert (status, reply["status"]) == (200, "processed")
    assert purchase(c)["charge_id"] == c.charge_id
    assert books(c.tenant_id) == 0
    accepted(session_event(c))  # paid: granted, and the dispute takes its share back
    assert books(c.tenant_id) == 0
    accepted(dispute_event(c, "charge.dispute.closed", "won"))
    assert books(c.tenant_id) == 50


def test_our_payment_not_recorded_yet_is_retried() -> None:
    c = start_checkout(customer())
    with psycopg.connect(db.dsn(admin=True), autocommit=True) as owner:
        owner.execute("DELETE FROM purchases WHERE id = %s", (c.purchase_id,))  # checkout's insert was lost
    early = [dispute_event(c), refund_event(c, 3900)]
    for event in early:
        status, reply = send(event)
        assert (status, reply["error"]["code"]) == (500, "purchase_unknown"), event["type"]
    accepted(session_event(c))  # the purchase is recorded from the session's metadata
    assert [accepted(event) for event in early] == ["processed", "processed"]  # Stripe's retries
    assert books(c.tenant_id) == 0
    assert taken_back(c) == 50


def test_checkout_objects_name_the_deployment() -> None:
    http = FakeStripeHTTP()
    billing.create_checkout(billing.stripe_client(http), customer(), "starter", SUCCESS_URL, CANCEL_URL)
    params = http.requests[-1]["params"]
    assert params["metadata[modamoda_deployment]"] == DEPLOYMENT
    assert params["payment_intent_data[metadata][modamoda_deployment]"] == DEPLOYMENT


def test_missing_deployment_id_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    c = start_checkout(customer())
    monkeypatch.delenv("MODAMODA_DEPLOYMENT")
    status, reply = send(session_event(c))
    assert (status, reply["error"]["code"]) == (500, "config_missing")
    assert books(c.tenant_id) == 0


# ---- 6. livemode must match the API key's mode ------------------------------------------------------------------


@pytest.mark.parametrize("key_mode", ["test", "live"])
def test_an_event_of_the_other_mode_is_acknowledged_and_ignored(
    key_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if key_mode == "live":
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="modamoda/test/stripe-live",
            SecretString=json.dumps(
                {"api_key": "sk_live_51ModamodaLiveKey0000", "webhook_secret": WEBHOOK_SECRET}
            ),
        )["ARN"]
        monkeypatch.setenv("STRIPE_SECRET_ARN", arn)
        billing.reset()
    c = start_checkout(customer())
    wrong = session_event(c)
    wrong["livemode"] = key_mode == "test"
    wrong["data"]["object"]["livemode"] = wrong["livemode"]
    status, reply = send(wrong)
    assert (status, reply["status"]) == (200, "ignored")
    assert books(c.tenant_id) == 0
    assert purchase(c)["status"] == "pending"
    right = session_event(c)
    right["livemode"] = key_mode == "live"
    assert accepted(right) == "processed"
    assert books(c.tenant_id) == 50
