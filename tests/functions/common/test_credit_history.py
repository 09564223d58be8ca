"""The credits history in the customer's words: every ledger kind and every reason a hold is returned for has a
sentence that names the photo (and its batch) and never shows a raw code; the API's ledger joins the photo, the
batch and the purchase's pack and receipt within the tenant."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.common import batches, credit_history, credits, db
from functions.common.errors import INPUT_ERROR_CODES, REFUSAL_CODES, SERVICE_ERROR_CODES
from functions.common.models import BatchRequest
from tests.conftest import create_job

RAW = re.compile(r"[a-z]+_[a-z_]+")  # a snake_case code


def row(kind: str, amount: int, **extra: Any) -> dict[str, Any]:
    meta = extra.pop("meta", {})
    return {
        "id": 1,
        "kind": kind,
        "amount": amount,
        "job_id": None,
        "meta": meta,
        "created_at": datetime(2026, 11, 23, tzinfo=UTC),
        **extra,
    }


PHOTO = {"job_id": "j", "job_filename": "dress.jpg"}
IN_BATCH = {**PHOTO, "batch_id": "b1", "batch_name": "Spring drop"}
STARTER = {"pack_name": "Starter", "pack_credits": 10}


@pytest.mark.parametrize(
    ("entry", "sentence"),
    [
        (row("grant", 10, meta={"reason": "welcome"}), "Welcome credits"),
        (
            row("grant", 100, meta={"reason": "purchase", "pack_id": "starter"}, **STARTER),
            "Bought the Starter pack (100 credits)",
        ),
        (row("grant", 1, meta={"reason": "purchase"}), "Bought credits (1 credit)"),
        (row("grant", 5, meta={"reason": "bonus"}), "5 credits added"),
        (row("reserve", -1, **PHOTO), "1 credit set aside for dress.jpg"),
        (row("reserve", -1, **PHOTO, job_status="succeeded"), "1 credit used for dress.jpg"),
        (
            row("reserve", -1, **PHOTO, job_status="processing"),
            "1 credit set aside for dress.jpg while its image is made",
        ),
        (row("reserve", -1, **PHOTO, job_status="rejected"), "1 credit set aside for dress.jpg"),
        (row("reserve", -4, **IN_BATCH), "4 credits set aside for dress.jpg (batch “Spring drop”)"),
        (row("capture", 0, meta={"spent": 1}, **PHOTO), "Charged 1 credit for dress.jpg"),
        (
            row("capture", 0, meta={"spent": 4}, **IN_BATCH),
            "Charged 4 credits for dress.jpg (batch “Spring drop”)",
        ),
        (
            row("release", 1, meta={"reason": "inference_failed"}, **PHOTO),
            "1 credit returned: dress.jpg could not be processed",
        ),
        (
            row("release", 1, meta={"reason": "no_garment_found"}, **PHOTO),
            "1 credit returned: dress.jpg was refused (no garment found)",
        ),
        (
            row("release", 1, meta={"reason": "batch_cancelled"}, **IN_BATCH),
            "1 credit returned: dress.jpg was cancelled with its batch (batch “Spring drop”)",
        ),
        (
            row("release", 1, meta={"reason": "hold_expired"}, job_id="j", batch_id="b2", batch_name="b2"),
            "1 credit returned: a photo took too long and was stopped (in a batch)",
        ),
        (
            row("release", 2, meta={"reason": "some_new_code"}, **PHOTO),
            "2 credits returned: dress.jpg could not be processed",
        ),
        (
            row("refund", -5, meta={"purchase_id": "p"}, **STARTER),
            "5 credits removed: the Starter pack purchase was refunded",
        ),
        (
            row("refund", 0, meta={"purchase_id": "p", "unrecovered": 5}, **STARTER),
            "Refund of the Starter pack purchase: its credits had already been used",
        ),
        (
            row("dispute", -10, meta={"dispute_id": "dp_1"}, **STARTER),
            "10 credits held back: the payment for the Starter pack purchase is disputed",
        ),
        (
            row("dispute", 10, meta={"dispute_id": "dp_1", "status": "won"}, **STARTER),
            "10 credits given back: the payment dispute about the Starter pack purchase has ended",
        ),
        (
            row("dispute", 0, meta={"dispute_id": "dp_1"}),
            "The payment for a credit purchase is disputed: its credits had already been used",
        ),
        (row("expiry", -3), "3 credits expired"),
        (row("adjustment", 2), "2 credits added by Modamoda support"),
        (row("adjustment", -2), "2 credits removed by Modamoda support"),
    ],
)
def test_each_entry_has_a_sentence(entry: dict[str, Any], sentence: str) -> None:
    assert credit_history.describe(entry) == sentence


@pytest.mark.parametrize(
    "code",
    sorted(set(INPUT_ERROR_CODES) | set(REFUSAL_CODES) | set(SERVICE_ERROR_CODES)),
)
def test_every_reason_a_hold_is_returned_for_is_in_words(code: str) -> None:
    """The codes jobs end with (``pipeline``, ``batches``) each have their words; none shows its code."""
    assert code in credit_history.RELEASE_REASONS
    sentence = credit_history.describe(row("release", 1, meta={"reason": code}, **PHOTO))
    assert sentence.startswith("1 credit returned: dress.jpg ")
    assert not RAW.search(sentence), sentence


def test_the_ledger_names_the_photo_and_batch_within_the_tenant(database_url: str) -> None:
    tenant_id, job_id = create_job(sub="history-a", welcome=10, filename="dress.jpg")
    _, batch_job = create_job(sub="history-a", welcome=10, filename="coat.png")
    other_tenant, other_job = create_job(sub="history-b", welcome=10, filename="secret.jpg")

    def work(conn: db.Conn) -> None:
        batch = batches.create(conn, tenant_id, "history-a", BatchRequest(name="Spring drop"))
        conn.execute("UPDATE jobs SET batch_id = %s WHERE id = %s", (batch["id"], batch_job))
        credits.reserve(conn, tenant_id, job_id, 1, 600)
        credits.release(conn, job_id, reason="no_garment_found")
        credits.reserve(conn, tenant_id, batch_job, 1, 600)
        credits.capture(conn, batch_job)
        conn.execute("UPDATE jobs SET status = 'rejected' WHERE id = %s", (job_id,))
        conn.execute("UPDATE jobs SET status = 'succeeded' WHERE id = %s", (batch_job,))

    db.atomic(tenant_id, work)
    with db.transaction(tenant_id) as conn:
        rows, cursor = credits.ledger_page(conn, tenant_id, 10, None)
    assert cursor is None
    entries = [credit_history.entry(r) for r in rows]
    assert [e.description for e in entries] == [
        "Charged 1 credit for coat.png (batch “Spring drop”)",
        "1 credit used for coat.png (batch “Spring drop”)",
        "1 credit returned: dress.jpg was refused (no garment found)",
        "1 credit set aside for dress.jpg",
        "Welcome credits",
    ]
    assert [e.job_filename for e in entries] == ["coat.png", "coat.png", "dress.jpg", "dress.jpg", None]
    assert entries[0].batch_id is not None
    assert entries[0].batch_id == entries[1].batch_id
    assert entries[2].batch_id is None
    assert all(e.receipt_url is None for e in entries)
    # the other tenant sees only its own (its job's name never shows up here, nor ours there)
    with db.transaction(other_tenant) as conn:
        theirs, _ = credits.ledger_page(conn, other_tenant, 10, None)
    assert [credit_history.describe(r) for r in theirs] == ["Welcome credits"]
    assert other_job not in {str(r["job_id"]) for r in rows}
