"""Customer webhooks end to end on the local stack: a job finishes, the outbox row is dispatched after commit, the
webhooks queue is pumped to the webhooks function, and a real HTTP receiver on 127.0.0.1 gets a signed POST; a
failing receiver is retried with backoff (SQS DelaySeconds); a finished batch is e-mailed through (moto) SES."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.common import db, notifications
from local.stack import EMAIL_FROM, LocalStack
from tests.local.conftest import User, new_user
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "garments" / "tshirt_navy.jpg"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def subscribe(user: User, receiver: Receiver) -> str:
    hook = user.api.request("PUT", "/v1/account/webhook", json={"url": receiver.url})
    return str(hook["secret"])


def deliveries(user: User, **query: str) -> list[dict]:
    return list(user.api.request("GET", "/v1/account/webhook/deliveries", params=query)["items"])


def wait_status(user: User, status: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = deliveries(user)
        if items and items[0]["status"] == status:
            return items[0]
        time.sleep(0.05)
    raise TimeoutError(f"no delivery became {status}: {deliveries(user)}")


def test_a_finished_job_reaches_the_customers_endpoint_signed(stack: LocalStack, receiver: Receiver) -> None:
    user = new_user(stack)
    secret = subscribe(user, receiver)
    job = user.api.wait(user.api.upload("tshirt.jpg", SAMPLE.read_bytes(), "image/jpeg"))
    assert job["status"] == "succeeded"
    (got,) = receiver.wait_for(1)
    event = got.json
    assert (event["type"], event["data"]["id"], event["data"]["status"]) == (
        "job.succeeded",
        job["id"],
        "succeeded",
    )
    assert got.headers["Modamoda-Event-Id"] == event["id"]
    assert got.headers["Modamoda-Event-Type"] == "job.succeeded"
    assert notifications.verify_signature(secret, got.headers["Modamoda-Signature"], got.body)
    delivered = wait_status(user, "delivered")
    assert (delivered["id"], delivered["attempts"], delivered["last_status_code"]) == (event["id"], 1, 200)
    # a rejected upload is an event too
    bad = user.api.wait(user.api.upload("notes.jpg", b"not an image at all", "image/jpeg"))
    assert bad["status"] == "rejected"
    second = receiver.wait_for(2)[1]
    assert second.json["type"] == "job.rejected"
    assert second.json["data"]["error"]["code"]
    assert notifications.verify_signature(secret, second.headers["Modamoda-Signature"], second.body)
    stack.wait_idle()
    assert len(receiver.received) == 2
    assert stack.pump_errors == []


def test_a_failing_endpoint_is_retried_with_backoff(
    stack: LocalStack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_BACKOFF_BASE_SECONDS", "0.5")
    monkeypatch.setenv("WEBHOOK_BACKOFF_CAP_SECONDS", "2")
    receiver.answers = [500, 502]
    user = new_user(stack)
    secret = subscribe(user, receiver)
    bad = user.api.wait(user.api.upload("junk.png", b"\x89PNG\r\n\x1a\n truncated", "image/png"))
    assert bad["status"] == "rejected"
    got = receiver.wait_for(3)
    assert [r.headers["Modamoda-Delivery-Attempt"] for r in got] == ["1", "2", "3"]
    assert len({r.headers["Modamoda-Event-Id"] for r in got}) == 1
    assert all(notifications.verify_signature(secret, r.headers["Modamoda-Signature"], r.body) for r in got)
    delivered = wait_status(user, "delivered")
    assert delivered["attempts"] == 3
    assert deliveries(user, status="pending") == []


def test_dead_deliveries_can_be_retried_through_the_api(
    stack: LocalStack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_BACKOFF_BASE_SECONDS", "0.01")
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "2")
    receiver.answers = [500, 500]
    user = new_user(stack)
    subscribe(user, receiver)
    user.api.wait(user.api.upload("junk.jpg", b"nope", "image/jpeg"))
    dead = wait_status(user, "dead")
    assert (dead["attempts"], dead["last_status_code"]) == (2, 500)
    retried = user.api.request("POST", f"/v1/account/webhook/deliveries/{dead['id']}/retry")
    assert retried["status"] == "pending"
    delivered = wait_status(user, "delivered")
    assert (delivered["id"], delivered["attempts"]) == (dead["id"], 1)
    assert len(receiver.wait_for(3)) == 3


def test_a_finished_batch_is_emailed(stack: LocalStack, receiver: Receiver) -> None:
    from moto.ses.models import ses_backends

    user = new_user(stack)
    tenant_id = user.api.me()["tenant_id"]
    batch = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "name": "SS26 tops",
        "status": "completed",
        "counts": {"total": 2, "succeeded": 2, "failed": 0, "rejected": 0, "cancelled": 0},
        "credits_spent": 2,
    }
    sent_before = len(ses_backends["123456789012"]["us-east-1"].sent_messages)
    with db.transaction(tenant_id) as conn:
        notifications.batch_finished(
            conn, batch, {"csv_url": "http://127.0.0.1/r.csv", "json_url": "http://x/r"}
        )
    notifications.dispatch(tenant_id)
    deadline = time.monotonic() + 30
    while len(ses_backends["123456789012"]["us-east-1"].sent_messages) == sent_before:
        assert time.monotonic() < deadline, "no e-mail was sent"
        time.sleep(0.05)
    mail = ses_backends["123456789012"]["us-east-1"].sent_messages[-1]
    assert mail.source == EMAIL_FROM
    assert mail.destinations["ToAddresses"] == [user.email]
    assert mail.subject == "Modamoda: batch SS26 tops is finished"
    assert "Succeeded  2" in mail.body
    assert receiver.received == []  # this tenant has no webhook: nothing is POSTed
