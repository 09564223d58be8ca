"""Observability: an alarm on every silent failure (state machine, each function, each dead-letter queue, the
async endpoint's backlog age and failures, API 5xx), all notifying one topic; a dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.synthesis import Synth, render

pytestmark = pytest.mark.synth


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """Alarms that notify the alarm topic (the scaling alarms of the endpoint act on its policies instead)."""
    (topic,) = [lid for lid in synth.of_type("AWS::SNS::Topic") if lid.startswith("ObservabilityAlarmTopic")]
    found = {}
    for alarm in synth.of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if {"Ref": topic} in props.get("AlarmActions", []):
            assert props["OKActions"] == [{"Ref": topic}]
            assert props["TreatMissingData"] == "notBreaching"
            found[props["AlarmName"]] = props
    return found


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}


def test_every_function_has_error_and_throttle_alarms(synth: Synth) -> None:
    alarms = _alarms(synth)
    functions = {props["LogicalId"] for props in synth.functions().values()} | {synth.studio_function()[0]}
    for metric in ("Errors", "Throttles"):
        alarmed = {
            _dimensions(a)["FunctionName"]["Ref"]
            for a in alarms.values()
            if a["Namespace"] == "AWS/Lambda" and a["MetricName"] == metric
        }
        assert alarmed == functions, metric
    validate = synth.function_id("functions.validate_input.handler.lambda_handler")
    thresholds = {
        _dimensions(a)["FunctionName"]["Ref"]: a["Threshold"]
        for a in alarms.values()
        if a["MetricName"] == "Errors"
    }
    assert thresholds.pop(validate) == 5  # refused uploads are function errors by design
    assert thresholds.pop(synth.studio_function()[0]) == 5  # and so are the photos the studio engine refuses
    assert set(thresholds.values()) == {1}


def test_every_dead_letter_queue_alarms_on_its_first_message(synth: Synth) -> None:
    alarms = _alarms(synth)
    dead_letter_queues = {lid for lid in synth.of_type("AWS::SQS::Queue") if "DeadLetterQueue" in lid}
    assert len(dead_letter_queues) == 4
    alarmed = {
        _dimensions(a)["QueueName"]["Fn::GetAtt"][0]: a
        for a in alarms.values()
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert set(alarmed) == dead_letter_queues
    for alarm in alarmed.values():
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_state_machine_alarms(synth: Synth) -> None:
    (state_machine, _) = synth.one("AWS::StepFunctions::StateMachine")
    by_metric = {a["MetricName"]: a for a in _alarms(synth).values() if a["Namespace"] == "AWS/States"}
    assert set(by_metric) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionThrottled"}
    for alarm in by_metric.values():
        assert _dimensions(alarm) == {"StateMachineArn": {"Ref": state_machine}}
    assert by_metric["ExecutionsTimedOut"]["Threshold"] == 1
    assert by_metric["ExecutionsFailed"]["Threshold"] == 5


def _endpoint(synth: Synth) -> tuple[dict[str, Any], str]:
    """The endpoint's name as the template gives it (its Fn::GetAtt) and its variant's name (the EndpointConfig's)."""
    (endpoint_id, _) = synth.one("AWS::SageMaker::Endpoint")
    (_, config) = synth.one("AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    return {"Fn::GetAtt": [endpoint_id, "EndpointName"]}, variant["VariantName"]


def test_inference_alarms_use_the_dimensions_sagemaker_publishes(synth: Synth) -> None:
    """The queue metrics are published per EndpointName; failures and notifications per EndpointName and
    VariantName (AWS: "Alarms and logs for tracking metrics from asynchronous endpoints"). An alarm without the
    variant dimension watches a metric that never receives data and stays OK forever."""
    endpoint, variant = _endpoint(synth)
    assert variant == "AllTraffic"
    by_metric = {a["MetricName"]: a for a in _alarms(synth).values() if a["Namespace"] == "AWS/SageMaker"}
    assert set(by_metric) == {"ApproximateAgeOfOldestRequest", "InvocationFailures", "NotificationFailures"}
    assert by_metric["ApproximateAgeOfOldestRequest"]["Dimensions"] == [
        {"Name": "EndpointName", "Value": endpoint}
    ]
    for name in ("InvocationFailures", "NotificationFailures"):
        assert _dimensions(by_metric[name]) == {"EndpointName": endpoint, "VariantName": variant}, name
        assert by_metric[name]["Statistic"] == "Sum"
    age = by_metric["ApproximateAgeOfOldestRequest"]
    assert age["Statistic"] == "Maximum"
    assert age["Threshold"] == 1200


def test_api_5xx_alarm(synth: Synth) -> None:
    (api_id, _) = synth.one("AWS::ApiGatewayV2::Api")
    (alarm,) = [a for a in _alarms(synth).values() if a["Namespace"] == "AWS/ApiGateway"]
    assert alarm["MetricName"] == "5xx"
    assert _dimensions(alarm) == {"ApiId": {"Ref": api_id}}


def test_alarm_topic_accepts_only_this_accounts_alarms_and_tls(synth: Synth, prod_synth: Synth) -> None:
    (topic,) = [lid for lid in synth.of_type("AWS::SNS::Topic") if lid.startswith("ObservabilityAlarmTopic")]
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.of_type("AWS::SNS::TopicPolicy").values()
        if {"Ref": topic} in p["Properties"]["Topics"]
    ]
    (allow,) = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in policy)
    # the e-mail subscription comes from context (set for prod in these tests, not for dev)
    assert not [
        s for s in synth.of_type("AWS::SNS::Subscription").values() if s["Properties"]["Protocol"] == "email"
    ]
    (email,) = [
        s["Properties"]
        for s in prod_synth.of_type("AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    ]
    assert email["Endpoint"] == "ops@example.com"


def test_dashboard_shows_the_key_widgets(synth: Synth) -> None:
    (_, dashboard) = synth.one("AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == "modamoda-dev"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in (
        "Alarms",
        "Jobs (executions)",
        "Inference backlog",
        "API requests and errors",
        "Aurora capacity (ACU) and connections",
        "Lambda errors",
        "Dead-letter queues",
    ):
        assert title in body, title
    assert "ApproximateBacklogSize" in body
    # every SageMaker metric on the dashboard carries the dimensions SageMaker publishes it with
    endpoint, variant = _endpoint(synth)
    endpoint_text = render(endpoint)
    widgets = json.loads(render(dashboard["Properties"]["DashboardBody"]))["widgets"]
    sagemaker = {
        metric[1]: dict(zip(metric[2::2], metric[3::2], strict=False))
        for widget in widgets
        for metric in widget.get("properties", {}).get("metrics", [])
        if metric[0] == "AWS/SageMaker"
    }
    for name in ("InvocationsProcesssed", "InvocationFailures", "NotificationFailures", "ExpiredRequests"):
        assert sagemaker.pop(name) == {"EndpointName": endpoint_text, "VariantName": variant}, name
    assert set(sagemaker) == {
        "ApproximateBacklogSize",
        "HasBacklogWithoutCapacity",
        "ApproximateAgeOfOldestRequest",
    }
    assert all(dims == {"EndpointName": endpoint_text} for dims in sagemaker.values())
    assert synth.template["Outputs"]["DashboardName"]["Value"] == {
        "Ref": synth.one("AWS::CloudWatch::Dashboard")[0]
    }
