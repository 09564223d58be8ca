"""Webhook and e-mail delivery through the webhooks queue: signed POSTs to a real HTTP receiver on 127.0.0.1,
retries with backoff, dead-lettering and manual retry, duplicate messages, the sweeper, SES e-mails."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest

from functions.common import credits, db, jobs, notifications, pipeline
from functions.common.models import SettleInput
from functions.webhooks import handler
from tests.conftest import FakeLambdaContext, create_job
from tests.functions.api.test_handler import call
from tests.webhook_receiver import Receiver

REGION = "us-east-1"
SENDER = "no-reply@modamoda.test"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def queue(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="modamoda-test-webhooks")["QueueUrl"]
    boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress=SENDER)
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", url)
    monkeypatch.setenv("EMAIL_FROM", f"Modamoda <{SENDER}>")
    monkeypatch.setenv("LOCAL_WEBHOOKS_ALLOW_LOOPBACK", "1")
    monkeypatch.setenv("WEBHOOK_BACKOFF_BASE_SECONDS", "0.001")
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "2")
    return url


def set_webhook(tenant_id: str, url: str, secret: str = "whsec_test_secret") -> str:  # noqa: S107
    with db.transaction(tenant_id) as conn:
        conn.execute(
            "UPDATE tenants SET webhook_url = %s, webhook_secret = %s, webhook_updated_at = now() WHERE id = %s",
            (url, secret, tenant_id),
        )
    return secret


def processing_job(sub: str = "shop") -> tuple[str, str]:
    tenant_id, job_id = create_job(sub=sub)
    with db.transaction(tenant_id) as conn:
        jobs.transition(conn, job_id, "validated", cost=1)
        credits.reserve(conn, tenant_id, job_id, 1, 600)
        jobs.transition(conn, job_id, "processing")
    return tenant_id, job_id


def fail(tenant_id: str, job_id: str) -> None:
    pipeline.release_credits(
        SettleInput(
            job_id=job_id,
            tenant_id=tenant_id,
            error={"Error": "InferenceFailed", "Cause": "inference_failed: the GPU caught fire"},
        )
    )


def messages(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    for m in got:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return got


def consume(batch: list[dict[str, Any]]) -> dict[str, Any]:
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:modamoda-test-webhooks",
                "awsRegion": REGION,
            }
            for m in batch
        ]
    }
    return dict(handler.lambda_handler(event, FakeLambdaContext()))


def drain(queue_url: str, timeout: float = 20.0) -> int:
    """Play the event-source mapping until the queue (delayed messages included) is empty; messages consumed."""
    sqs = boto3.client("sqs", region_name=REGION)
    deadline, consumed = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        batch = messages(queue_url)
        if batch:
            assert consume(batch) == {"batchItemFailures": []}
            consumed += len(batch)
            continue
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        if not any(
            int(attributes.get(a, 0))
            for a in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed")
        ):
            return consumed
        time.sleep(0.05)
    raise TimeoutError("the webhooks queue did not drain")


def row(conn: psycopg.Connection, tenant_id: str, subject: str, channel: str = "webhook") -> dict[str, Any]:
    found = conn.execute(
        "SELECT * FROM notifications WHERE tenant_id = %s AND subject = %s AND channel = %s",
        (tenant_id, subject, channel),
    ).fetchone()
    assert found is not None
    return dict(found)


# ---- end to end through the queue ---------------------------------------------------------------------------------


def test_a_finished_job_is_posted_signed_once(
    queue: str, receiver: Receiver, conn: psycopg.Connection
) -> None:
    tenant_id, job_id = processing_job()
    secret = set_webhook(tenant_id, receiver.url)
    before = int(time.time())
    fail(tenant_id, job_id)  # the release records job.failed and dispatches it after commit
    fail(tenant_id, job_id)  # a replay records and sends nothing more
    assert drain(queue) == 1
    (got,) = receiver.received
    assert got.path == "/hooks/modamoda"
    assert got.headers["Content-Type"] == "application/json"
    event = got.json
    assert set(event) == {"id", "type", "created_at", "data"}
    assert event["type"] == "job.failed" == got.headers["Modamoda-Event-Type"]
    assert event["id"] == got.headers["Modamoda-Event-Id"] == str(row(conn, tenant_id, f"job:{job_id}")["id"])
    assert event["data"]["id"] == job_id
    assert event["data"]["error"] == {"code": "inference_failed", "message": "the GPU caught fire"}
    signature = got.headers["Modamoda-Signature"]
    timestamp = int(signature.split(",")[0].removeprefix("t="))
    assert before <= timestamp <= time.time() + 1
    assert notifications.verify_signature(secret, signature, got.body)
    assert not notifications.verify_signature("whsec_other", signature, got.body)
    delivered = row(conn, tenant_id, f"job:{job_id}")
    assert (delivered["status"], delivered["attempts"], delivered["last_status_code"]) == (
        "delivered",
        1,
        200,
    )


def test_the_notifier_capture_records_job_succeeded(
    queue: str, receiver: Receiver, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.common.models import AsyncInferenceNotification

    monkeypatch.setenv("RESULTS_BUCKET", "modamoda-test-results")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="modamoda-test-results")
    tenant_id, job_id = processing_job()
    set_webhook(tenant_id, receiver.url)
    s3.put_object(Bucket="modamoda-test-results", Key=f"out/{job_id}.out", Body=b"png")
    note = AsyncInferenceNotification.model_validate(
        {
            "invocationStatus": "Completed",
            "inferenceId": job_id,
            "responseParameters": {
                "contentType": "image/png",
                "outputLocation": f"s3://modamoda-test-results/out/{job_id}.out",
            },
        }
    )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    for _ in range(2):  # SNS delivers at least once
        pipeline.handle_inference_notification(s3, sfn, note)
    drain(queue)
    (got,) = receiver.received
    assert got.json["type"] == "job.succeeded"
    assert got.json["data"]["has_result"] is True
    assert got.json["data"]["cost"] == 1


def test_retries_with_backoff_until_a_2xx(queue: str, receiver: Receiver, conn: psycopg.Connection) -> None:
    receiver.answers = [500, 503]
    tenant_id, job_id = processing_job()
    secret = set_webhook(tenant_id, receiver.url)
    fail(tenant_id, job_id)
    drain(queue)
    got = receiver.wait_for(3)
    assert len(got) == 3
    assert len({r.headers["Modamoda-Event-Id"] for r in got}) == 1  # the same event on every attempt
    assert [r.headers["Modamoda-Delivery-Attempt"] for r in got] == ["1", "2", "3"]
    assert all(notifications.verify_signature(secret, r.headers["Modamoda-Signature"], r.body) for r in got)
    delivered = row(conn, tenant_id, f"job:{job_id}")
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 3)


def test_timeouts_and_redirects_are_failures(
    queue: str, receiver: Receiver, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "0.3")
    elsewhere = Receiver().start()
    try:
        receiver.answers, receiver.location = [302], elsewhere.url
        tenant_id, job_id = processing_job()
        set_webhook(tenant_id, receiver.url)
        receiver.delay = 0.0
        fail(tenant_id, job_id)
        first = messages(queue)
        consume(first)  # attempt 1: a redirect, not followed
        assert elsewhere.received == []
        failed = row(conn, tenant_id, f"job:{job_id}")
        assert (failed["status"], failed["last_status_code"]) == ("pending", 302)
        assert "redirect" in failed["last_error"]
        receiver.delay = 1.0  # attempt 2: no answer in time
        drain(queue)
        dead = row(conn, tenant_id, f"job:{job_id}")
        assert (dead["status"], dead["attempts"], dead["last_status_code"]) == ("dead", 2, None)
        assert "timed out" in dead["last_error"].lower() or "timeout" in dead["last_error"].lower()
    finally:
        elsewhere.stop()


def test_dead_after_the_last_attempt_then_a_manual_retry(
    queue: str, receiver: Receiver, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("UPLOAD_BUCKET", "modamoda-test-uploads")
    receiver.answers = [500, 500, 500, 500]
    tenant_id, job_id = processing_job(sub="dead-shop")
    set_webhook(tenant_id, receiver.url)
    fail(tenant_id, job_id)
    drain(queue)
    assert len(receiver.received) == 3
    dead = row(conn, tenant_id, f"job:{job_id}")
    assert (dead["status"], dead["attempts"], dead["last_status_code"]) == ("dead", 3, 500)
    # visible to the tenant as a dead-letter record ...
    status, page = call("GET", "/v1/account/webhook/deliveries", sub="dead-shop", query="status=dead")
    assert status == 200
    (item,) = page["items"]
    assert (item["id"], item["status"], item["attempts"], item["max_attempts"]) == (
        str(dead["id"]),
        "dead",
        3,
        3,
    )
    assert item["next_attempt_at"] is None
    assert item["event"]["type"] == "job.failed"
    # ... and retried by hand: a fresh set of attempts (the receiver fails once more, then answers 200)
    status, retried = call(
        "POST", f"/v1/account/webhook/deliveries/{dead['id']}/retry", sub="dead-shop", body={}
    )
    assert status == 200
    assert (retried["status"], retried["attempts"]) == ("pending", 0)
    drain(queue)
    assert len(receiver.received) == 5
    delivered = row(conn, tenant_id, f"job:{job_id}")
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 2)
    status, again = call(
        "POST", f"/v1/account/webhook/deliveries/{dead['id']}/retry", sub="dead-shop", body={}
    )
    assert (status, again["error"]["code"]) == (409, "delivery_not_dead")


def test_duplicate_messages_send_once(queue: str, receiver: Receiver, conn: psycopg.Connection) -> None:
    tenant_id, job_id = processing_job()
    set_webhook(tenant_id, receiver.url)
    fail(tenant_id, job_id)
    (message,) = messages(queue)
    duplicate = {**message, "MessageId": str(uuid.uuid4())}
    assert consume([message, duplicate]) == {"batchItemFailures": []}  # SQS delivers at least once
    assert consume([duplicate]) == {"batchItemFailures": []}  # ... even later
    assert len(receiver.received) == 1
    assert drain(queue) == 0


def test_no_webhook_url_sends_nothing(queue: str, receiver: Receiver, conn: psycopg.Connection) -> None:
    tenant_id, job_id = processing_job()
    fail(tenant_id, job_id)
    assert drain(queue) == 0
    assert receiver.received == []
    assert conn.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 0


def test_a_webhook_removed_before_delivery_ends_the_event(
    queue: str, receiver: Receiver, conn: psycopg.Connection
) -> None:
    tenant_id, job_id = processing_job()
    set_webhook(tenant_id, receiver.url)
    fail(tenant_id, job_id)
    with db.transaction(tenant_id) as c:
        c.execute("UPDATE tenants SET webhook_url = NULL, webhook_secret = NULL WHERE id = %s", (tenant_id,))
    drain(queue)
    assert receiver.received == []
    dead = row(conn, tenant_id, f"job:{job_id}")
    assert (dead["status"], dead["last_error"]) == ("dead", "no webhook URL is configured")


def test_private_addresses_are_refused_in_the_cloud(
    queue: str, receiver: Receiver, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_WEBHOOKS_ALLOW_LOOPBACK")
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "1")
    tenant_id, job_id = processing_job()
    set_webhook(tenant_id, receiver.url)
    fail(tenant_id, job_id)
    drain(queue)
    assert receiver.received == []
    dead = row(conn, tenant_id, f"job:{job_id}")
    assert dead["status"] == "dead"
    assert "non-public address (127.0.0.1)" in dead["last_error"]


def test_an_early_message_waits_for_its_row(queue: str, receiver: Receiver, conn: psycopg.Connection) -> None:
    tenant_id, job_id = processing_job()
    set_webhook(tenant_id, receiver.url)
    fail(tenant_id, job_id)
    (message,) = messages(queue)
    conn.execute(
        "UPDATE notifications SET next_attempt_at = now() + interval '2 seconds' WHERE tenant_id = %s",
        (tenant_id,),
    )
    due = row(conn, tenant_id, f"job:{job_id}")["next_attempt_at"].isoformat()
    body = json.loads(message["Body"])
    assert notifications.handle_message(json.dumps(body), sqs=None, ses=None) == "stale"  # an older schedule
    sqs = boto3.client("sqs", region_name=REGION)
    outcome = notifications.handle_message(json.dumps({**body, "due": due}), sqs=sqs, ses=None)
    assert outcome == "not_due"  # sent again, delayed until the row is due
    assert receiver.received == []
    drain(queue)
    assert len(receiver.received) == 1


# ---- the sweeper: rows whose queue message never left, or was lost ---------------------------------------------


def test_sweep_sends_what_dispatch_missed(
    queue: str, receiver: Receiver, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id, job_id = processing_job()
    set_webhook(tenant_id, receiver.url)
    monkeypatch.delenv("WEBHOOK_QUEUE_URL")  # the after-commit dispatch cannot send (as if it crashed)
    fail(tenant_id, job_id)
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue)
    assert notifications.sweep() == 1
    assert notifications.sweep() == 0  # handed over: not sent twice
    drain(queue)
    assert len(receiver.received) == 1
    # a message lost after hand-over: the row stays pending past its due time, and is sent again
    tenant_b, job_b = processing_job(sub="other-shop")
    set_webhook(tenant_b, receiver.url)
    fail(tenant_b, job_b)
    assert messages(queue)  # lost
    assert notifications.sweep() == 0  # within the grace period
    conn.execute(
        "UPDATE notifications SET next_attempt_at = now() - interval '10 minutes',"
        " enqueued_at = now() - interval '10 minutes' WHERE tenant_id = %s",
        (tenant_b,),
    )
    assert notifications.sweep() == 1
    drain(queue)
    assert len(receiver.received) == 2
    assert row(conn, tenant_b, f"job:{job_b}")["status"] == "delivered"


def test_the_sweeper_function_sweeps(queue: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.sweeper import handler as sweeper

    tenant_id, job_id = processing_job()
    set_webhook(tenant_id, receiver.url)
    monkeypatch.delenv("WEBHOOK_QUEUE_URL")
    fail(tenant_id, job_id)
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", queue)
    assert sweeper.lambda_handler({}, FakeLambdaContext())["notifications_dispatched"] == 1
    drain(queue)
    assert len(receiver.received) == 1


# ---- e-mail for a finished batch (SES) ----------------------------------------------------------------------------


def ses_sent() -> list[Any]:
    from moto.ses.models import ses_backends

    return list(ses_backends["123456789012"][REGION].sent_messages)


def test_a_finished_batch_is_emailed_to_its_owner_once(
    queue: str, receiver: Receiver, conn: psycopg.Connection
) -> None:
    tenant_id, _ = create_job(sub="batch-owner")
    secret = set_webhook(tenant_id, receiver.url)
    batch_id = str(uuid.uuid4())
    batch = {
        "id": batch_id,
        "tenant_id": tenant_id,
        "name": "Spring <collection>",
        "status": "stopped",
        "counts": {"total": 3, "succeeded": 1, "failed": 0, "rejected": 2, "cancelled": 0},
        "credits_spent": 1,
    }
    report = {
        "csv_url": "https://results.example.com/report.csv?X-Amz-Signature=abc",
        "json_url": "https://results.example.com/report.json?X-Amz-Signature=abc",
    }
    for _ in range(2):  # a replay records nothing twice
        with db.transaction(tenant_id) as c:
            notifications.batch_finished(c, batch, report)
    notifications.dispatch(tenant_id)
    drain(queue)
    (mail,) = ses_sent()
    assert mail.source == f"Modamoda <{SENDER}>"
    assert mail.destinations["ToAddresses"] == ["batch-owner@example.com"]
    assert mail.subject == "Modamoda: batch Spring <collection> was stopped"
    assert "Your batch Spring &lt;collection&gt; was stopped." in mail.body  # moto keeps the HTML part
    assert "ran out of credits" in mail.body
    assert "Rejected   2" in mail.body
    assert 'href="https://results.example.com/report.csv?X-Amz-Signature=abc"' in mail.body
    (hook,) = receiver.received
    assert hook.json["type"] == "batch.stopped"
    assert hook.json["data"]["counts"]["rejected"] == 2
    assert hook.json["data"]["report"]["csv_url"] == report["csv_url"]
    assert notifications.verify_signature(secret, hook.headers["Modamoda-Signature"], hook.body)
    email_row = row(conn, tenant_id, f"batch:{batch_id}", channel="email")
    assert (email_row["status"], email_row["recipient"]) == ("delivered", "batch-owner@example.com")
    # the e-mail is no webhook delivery: the tenant's delivery log lists the webhook event only
    status, page = call("GET", "/v1/account/webhook/deliveries", sub="batch-owner")
    assert status == 200
    assert [i["event"]["type"] for i in page["items"]] == ["batch.stopped"]


def test_email_text_has_totals_and_report_links() -> None:
    subject, text, html = notifications.render_email(
        {
            "type": "batch.completed",
            "data": {
                "id": "b-1",
                "name": "SS26",
                "counts": {"total": 2, "succeeded": 2, "failed": 0},
                "credits_spent": 2,
                "report": {"csv_url": "https://r.example/report.csv?a=1&b=2", "json_url": "https://r/j"},
            },
        }
    )
    assert subject == "Modamoda: batch SS26 is finished"
    assert "Total      2" in text
    assert "Succeeded  2" in text
    assert "Credits    2" in text
    assert "CSV: https://r.example/report.csv?a=1&b=2" in text
    assert "GET /v1/batches/b-1" in text
    assert 'href="https://r.example/report.csv?a=1&amp;b=2"' in html


def test_ses_failures_are_retried_then_dead(
    queue: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMAIL_FROM", "unverified@elsewhere.test")
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "2")
    tenant_id, _ = create_job(sub="mail-owner")
    batch = {"id": str(uuid.uuid4()), "tenant_id": tenant_id, "status": "completed", "counts": {"total": 0}}
    with db.transaction(tenant_id) as c:
        notifications.batch_finished(c, batch, {})
    notifications.dispatch(tenant_id)
    drain(queue)
    assert ses_sent() == []
    dead = row(conn, tenant_id, f"batch:{batch['id']}", channel="email")
    assert (dead["status"], dead["attempts"]) == ("dead", 2)
    assert "MessageRejected" in dead["last_error"]


def test_the_owner_address_comes_from_the_user_pool(
    queue: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access tokens carry no e-mail address (users.email holds the Cognito username), so the recipient is
    looked up in the user pool when the e-mail is sent; API keys are never the owner."""
    from functions.common.tenants import ensure_user

    cognito = boto3.client("cognito-idp", region_name=REGION)
    pool = cognito.create_user_pool(PoolName="modamoda-test", UsernameAttributes=["email"])["UserPool"]["Id"]
    monkeypatch.setenv("USER_POOL_ID", pool)
    created = cognito.admin_create_user(
        UserPoolId=pool,
        Username="buyer@shop.example.com",
        UserAttributes=[{"Name": "email", "Value": "buyer@shop.example.com"}],
        MessageAction="SUPPRESS",
    )["User"]
    sub = next(a["Value"] for a in created["Attributes"] if a["Name"] == "sub")
    who = ensure_user(sub, sub, 0)  # as the API provisions from an access token: the username, no address
    conn.execute(
        "INSERT INTO users (sub, tenant_id, email, created_at) VALUES"
        " ('key-sub', %s, 'apikey-1@api-keys.modamoda.invalid', now() - interval '1 day')",
        (who.tenant_id,),
    )
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, cognito_username, sub)"
        " VALUES (%s, %s, 'k', 'mmk_1', 'apikey-1@api-keys.modamoda.invalid', 'key-sub')",
        (str(uuid.uuid4()), who.tenant_id),
    )
    batch = {"id": str(uuid.uuid4()), "tenant_id": who.tenant_id, "status": "cancelled", "counts": {}}
    with db.transaction(who.tenant_id) as c:
        notifications.batch_finished(c, batch, {})
    assert row(conn, who.tenant_id, f"batch:{batch['id']}", "email")["recipient"] == f"cognito-sub:{sub}"
    notifications.dispatch(who.tenant_id)
    drain(queue)
    (mail,) = ses_sent()
    assert mail.destinations["ToAddresses"] == ["buyer@shop.example.com"]
    assert mail.subject.endswith("was cancelled")
