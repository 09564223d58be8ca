"""Notifications outbox: recording job and batch events exactly once, tenant-isolated."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.common import db, jobs, notifications
from tests.conftest import create_job


def _set_webhook(tenant_id: str, url: str = "https://hooks.example.com/modamoda") -> None:
    with db.transaction(tenant_id) as conn:
        conn.execute(
            "UPDATE tenants SET webhook_url = %s, webhook_secret = 'whsec_test', webhook_updated_at = now()"
            " WHERE id = %s",
            (url, tenant_id),
        )


def _finish(tenant_id: str, job_id: str, status: str = "succeeded") -> dict:
    with db.transaction(tenant_id) as conn:
        jobs.transition(conn, job_id, status, error_code=None if status == "succeeded" else "boom")
        job = jobs.load(conn, job_id)
        notifications.job_finished(conn, job)
    return job


def _rows(conn, tenant_id: str) -> list[dict]:
    return conn.execute(
        "SELECT * FROM notifications WHERE tenant_id = %s ORDER BY created_at", (tenant_id,)
    ).fetchall()


def test_job_finished_records_one_webhook_event(database_url: str, conn) -> None:
    tenant_id, job_id = create_job()
    _set_webhook(tenant_id)
    job = _finish(tenant_id, job_id)
    with db.transaction(tenant_id) as c:  # a replay records nothing twice
        notifications.job_finished(c, job)
    rows = _rows(conn, tenant_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["channel"] == "webhook"
    assert row["type"] == "job.succeeded"
    assert row["status"] == "pending"
    assert str(row["id"]) == notifications.event_id(tenant_id, "webhook", f"job:{job_id}")
    payload = row["payload"]
    assert payload["id"] == str(row["id"])
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert payload["created_at"].endswith("Z")


def test_no_webhook_url_records_nothing(database_url: str, conn) -> None:
    tenant_id, job_id = create_job()
    _finish(tenant_id, job_id, "failed")
    assert _rows(conn, tenant_id) == []


def test_non_final_status_records_nothing(database_url: str, conn) -> None:
    tenant_id, job_id = create_job()
    _set_webhook(tenant_id)
    with db.transaction(tenant_id) as c:
        notifications.job_finished(c, jobs.load(c, job_id))
    assert _rows(conn, tenant_id) == []


@pytest.mark.parametrize("status", ["failed", "rejected"])
def test_failed_and_rejected_jobs(database_url: str, conn, status: str) -> None:
    tenant_id, job_id = create_job()
    _set_webhook(tenant_id)
    _finish(tenant_id, job_id, status)
    (row,) = _rows(conn, tenant_id)
    assert row["type"] == f"job.{status}"
    assert row["payload"]["data"]["error"]["code"] == "boom"


def test_batch_finished_records_webhook_and_email(database_url: str, conn) -> None:
    tenant_id, _ = create_job(sub="owner-1")
    _set_webhook(tenant_id)
    batch = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "name": "spring",
        "status": "completed",
        "counts": {"total": 2, "succeeded": 2},
        "credits_spent": 2,
    }
    report = {"csv_key": "results/t/b/report.csv", "json_key": "results/t/b/report.json", "other": 1}
    for _ in range(2):
        with db.transaction(tenant_id) as c:
            notifications.batch_finished(c, batch, report)
    rows = _rows(conn, tenant_id)
    assert sorted(r["channel"] for r in rows) == ["email", "webhook"]
    email = next(r for r in rows if r["channel"] == "email")
    assert email["recipient"] == "owner-1@example.com"
    assert email["type"] == "batch.completed"
    assert email["payload"]["data"]["report"] == {
        "csv_key": report["csv_key"],
        "json_key": report["json_key"],
    }


def test_rows_are_tenant_isolated(database_url: str, conn) -> None:
    tenant_a, job_a = create_job(sub="a")
    tenant_b, _ = create_job(sub="b")
    _set_webhook(tenant_a)
    _finish(tenant_a, job_a)
    with db.transaction(tenant_b) as c:
        assert c.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 0
    with db.transaction(None) as c:
        assert c.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 0
    with db.transaction(tenant_a) as c:
        assert c.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 1


# ---- signatures ---------------------------------------------------------------------------------------------------

SECRET = "whsec_test_secret"
BODY = b'{"id":"e-1","type":"job.succeeded","created_at":"2026-11-23T12:00:00Z","data":{}}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    header = notifications.sign(SECRET, BODY, 1_800_000_000)
    expected = hmac.new(SECRET.encode(), b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={expected}"
    assert notifications.verify_signature(SECRET, header, BODY, now=1_800_000_000)
    assert notifications.verify_signature(SECRET, header, BODY.decode(), now=1_800_000_100)  # str bodies too


@pytest.mark.parametrize(
    ("secret", "body", "now", "why"),
    [
        (SECRET, BODY.replace(b"succeeded", b"failed"), 1_800_000_000, "tampered body"),
        (SECRET, BODY + b" ", 1_800_000_000, "one byte more"),
        ("whsec_wrong", BODY, 1_800_000_000, "wrong secret"),
        (SECRET, BODY, 1_800_000_301, "stale: older than the tolerance (a replay)"),
        (SECRET, BODY, 1_799_999_699, "from the future"),
    ],
)
def test_verification_refuses(secret: str, body: bytes, now: int, why: str) -> None:
    header = notifications.sign(SECRET, BODY, 1_800_000_000)
    assert not notifications.verify_signature(secret, header, body, now=now), why


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=1800000000",
        "v1=abc",
        "t=abc,v1=def",
        "t=1800000000,v1=",
        "garbage",
        "t=-1,v1=00",
        "t=\u00b2,v1=00",  # a Unicode digit
        "t=1800000000,v1=\u00e9\u00e9",  # a non-ASCII signature
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    assert not notifications.verify_signature(SECRET, header, BODY, now=1_800_000_000)


def test_any_of_several_signatures_may_match() -> None:
    good = notifications.sign(SECRET, BODY, 1_800_000_000)
    header = f"t=1800000000,v1={'0' * 64},{good.split(',')[1]}"
    assert notifications.verify_signature(SECRET, header, BODY, now=1_800_000_000)


def test_tolerance_is_configurable() -> None:
    header = notifications.sign(SECRET, BODY, 1_800_000_000)
    assert notifications.verify_signature(SECRET, header, BODY, tolerance=600, now=1_800_000_500)
    assert not notifications.verify_signature(SECRET, header, BODY, tolerance=60, now=1_800_000_061)


def test_the_documented_snippet_needs_only_the_standard_library() -> None:
    """verify_signature is meant to be copied into a customer's code: run its source on its own."""
    import inspect

    namespace: dict = {}
    source = inspect.getsource(notifications.verify_signature).replace(
        "body: bytes | str", "body"
    )  # no annotations needed
    exec(compile("from __future__ import annotations\n" + source, "snippet", "exec"), namespace)  # noqa: S102
    header = notifications.sign(SECRET, BODY, 1_800_000_000)
    assert namespace["verify_signature"](SECRET, header, BODY, now=1_800_000_000)


# ---- backoff and address checks -----------------------------------------------------------------------------------


def test_backoff_is_exponential_capped_with_full_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_BACKOFF_BASE_SECONDS", "30")
    monkeypatch.setenv("WEBHOOK_BACKOFF_CAP_SECONDS", "3600")
    ceilings = [notifications.backoff_delay(n, rng=lambda: 1.0) for n in range(1, 10)]
    assert ceilings == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert notifications.backoff_delay(5, rng=lambda: 0.0) == 0
    assert notifications.backoff_delay(3, rng=lambda: 0.5) == 60
    import random

    rng = random.Random(0)
    delays = [notifications.backoff_delay(4, rng=rng.random) for _ in range(200)]
    assert all(0 <= d <= 240 for d in delays)
    assert min(delays) < 30
    assert max(delays) > 200  # spread over the whole range (full jitter)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse
        "127.0.0.1",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(notifications.DeliveryRefused):
        notifications.resolve_public(address, 443, loopback_ok=False)


def test_loopback_only_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WEBHOOKS_ALLOW_LOOPBACK", raising=False)
    with pytest.raises(notifications.DeliveryRefused):
        notifications.resolve_public("127.0.0.1", 80)
    monkeypatch.setenv("LOCAL_WEBHOOKS_ALLOW_LOOPBACK", "1")
    assert notifications.resolve_public("127.0.0.1", 80) == "127.0.0.1"
    with pytest.raises(notifications.DeliveryRefused):
        notifications.resolve_public("10.1.2.3", 80)  # only loopback is let through locally


def test_public_addresses_are_allowed() -> None:
    assert notifications.resolve_public("93.184.216.34", 443, loopback_ok=False) == "93.184.216.34"
    assert notifications.resolve_public("2606:2800:220:1:248:1893:25c8:1946", 443, loopback_ok=False)


def test_post_refuses_without_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WEBHOOKS_ALLOW_LOOPBACK", raising=False)
    status, error = notifications.post("http://127.0.0.1:9/hook", b"{}", {}, 1.0)
    assert status is None
    assert "non-public address" in (error or "")
    assert notifications.post("ftp://example.com/x", b"{}", {}, 1.0) == (
        None,
        "the webhook URL is not http(s)",
    )


def test_batch_events_summarise_the_report() -> None:
    report = {
        "csv_key": "results/t/b/report.csv",
        "json_key": "results/t/b/report.json",
        "totals": {"total": 3, "succeeded": 3, "failed": 0, "credits_spent": 3, "files": 3},
        "files": [{"file": f"{i}.jpg"} for i in range(3)],
        "consistency": {"judged": True, "note": None, "flagged": ["2.jpg"], "images": [{"id": "2.jpg"}] * 3},
    }
    data = notifications.batch_data({"id": "b-1", "name": "SS26", "status": "completed"}, report)
    assert "files" not in data["report"]
    assert data["report"]["consistency"] == {
        "judged": True,
        "note": None,
        "flagged_count": 1,
        "flagged": ["2.jpg"],
    }
    _, text, _ = notifications.render_email({"type": "batch.completed", "data": notifications._plain(data)})
    assert "Succeeded  3" in text
    assert "Credits    3" in text
    assert "Consistency check: 1 image(s) stand out" in text
    assert "JSON: results/t/b/report.json" in text


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=1), body=st.binary(), header=st.text(), at=st.integers(0, 2**40))
def test_signatures_round_trip_and_never_raise(secret: str, body: bytes, header: str, at: int) -> None:
    assert notifications.verify_signature(secret, notifications.sign(secret, body, at), body, now=at)
    assert notifications.verify_signature(secret, header, body, now=at) in {True, False}
    assert not notifications.verify_signature(
        secret, notifications.sign(secret, body, at), body + b"x", now=at
    )
