"""Notifications infrastructure: the webhooks queue and its alarmed dead-letter queue, the Webhooks function with
its own least-privilege role, the SES sender identity, and the functions that may hand events to the queue."""

from __future__ import annotations

import pytest

from infra.notifications import sender_address
from tests.infra.synthesis import Synth, as_list, render

pytestmark = pytest.mark.synth

WEBHOOKS = "functions.webhooks.handler.lambda_handler"
PRODUCERS = {
    "functions.api.handler.lambda_handler",
    "functions.start_workflow.handler.lambda_handler",
    "functions.reserve_credits.handler.lambda_handler",  # a failed reservation stops its batch
    "functions.capture_credits.handler.lambda_handler",
    "functions.release_credits.handler.lambda_handler",
    "functions.notifier.handler.lambda_handler",
    "functions.sweeper.handler.lambda_handler",
    "functions.dispatch_inference.handler.lambda_handler",  # ends jobs that waited too long in the GPU queue
}


def _queue_ids(synth: Synth) -> tuple[str, str]:
    (queue,) = [lid for lid in synth.of_type("AWS::SQS::Queue") if "WebhooksQueue" in lid]
    (dlq,) = [lid for lid in synth.of_type("AWS::SQS::Queue") if "WebhooksDeadLetterQueue" in lid]
    return queue, dlq


def test_queue_redrives_to_an_alarmed_dead_letter_queue(synth: Synth) -> None:
    queue_id, dlq_id = _queue_ids(synth)
    queue = synth.resources[queue_id]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    function = synth.functions()[WEBHOOKS]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    alarms = [
        a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and any(d["Value"] == {"Fn::GetAtt": [dlq_id, "QueueName"]} for d in a["Properties"]["Dimensions"])
    ]
    assert len(alarms) == 1
    assert alarms[0]["Threshold"] == 1


def test_the_function_consumes_the_queue_with_partial_batch_failures(synth: Synth) -> None:
    queue_id, _ = _queue_ids(synth)
    function = synth.functions()[WEBHOOKS]
    assert function["Architectures"] == ["arm64"]
    (mapping,) = [
        m["Properties"]
        for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    ]
    assert mapping["FunctionName"] == {"Ref": function["LogicalId"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 5
    env = function["Environment"]["Variables"]
    assert env["WEBHOOK_QUEUE_URL"] == {"Ref": queue_id}
    assert env["EMAIL_FROM"] == "Modamoda <no-reply@modamoda.example>"
    assert env["WEBHOOK_TIMEOUT_SECONDS"] == "5"
    assert "USER_POOL_ID" in env
    assert "LOCAL_WEBHOOKS_ALLOW_LOOPBACK" not in env  # loopback is for the local stack only


def test_the_sender_identity_and_least_privilege(synth: Synth) -> None:
    (identity_id, identity) = synth.one("AWS::SES::EmailIdentity")
    assert identity["Properties"]["EmailIdentity"] == "no-reply@modamoda.example"
    queue_id, _ = _queue_ids(synth)
    statements = [s for s in synth.policy_statements(WEBHOOKS) if s["Effect"] == "Allow"]
    (mail,) = [s for s in statements if "ses:SendEmail" in as_list(s["Action"])]
    assert as_list(mail["Action"]) == ["ses:SendEmail"]
    assert "identity/" in render(mail["Resource"]) or identity_id in render(mail["Resource"])
    assert "*" not in render(mail["Resource"])
    (users,) = [s for s in statements if "cognito-idp:ListUsers" in as_list(s["Action"])]
    (pool_id, _) = synth.one("AWS::Cognito::UserPool")
    assert users["Resource"] == {"Fn::GetAtt": [pool_id, "Arn"]}
    sqs_statements = [s for s in statements if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    assert {render(r) for s in sqs_statements for r in as_list(s["Resource"])} == {
        f"<<GetAtt:{queue_id}.Arn>>"
    }
    actions = synth.allowed_actions(WEBHOOKS)
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage"} <= actions
    assert not {a for a in actions if a.startswith(("s3:", "states:", "sagemaker:"))}


def test_only_the_functions_that_end_jobs_may_enqueue(synth: Synth) -> None:
    queue_id, _ = _queue_ids(synth)
    senders = set()
    for handler, function in synth.functions().items():
        sends = [
            s
            for s in synth.policy_statements(handler)
            if "sqs:SendMessage" in as_list(s["Action"])
            and f"<<GetAtt:{queue_id}.Arn>>" in {render(r) for r in as_list(s["Resource"])}
        ]
        if sends:
            senders.add(handler)
        if handler in PRODUCERS:
            assert function["Environment"]["Variables"]["WEBHOOK_QUEUE_URL"] == {"Ref": queue_id}, handler
    assert senders == PRODUCERS | {WEBHOOKS}


def test_sender_address_parsing() -> None:
    assert sender_address("Modamoda <no-reply@example.com>") == "no-reply@example.com"
    assert sender_address("ops@example.com") == "ops@example.com"
    with pytest.raises(ValueError, match="e-mail address"):
        sender_address("Modamoda")
