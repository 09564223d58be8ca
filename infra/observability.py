"""Observability: alarms on everything that fails silently, an alarm topic, and a dashboard.

Logs, metrics and traces come from the functions themselves: powertools writes structured JSON logs, EMF metrics
(namespace ``Modamoda``) and X-Ray segments (active tracing on every function and the state machine); API
Gateway writes JSON access logs; the state machine logs every transition (without execution data).

Alarms (all notify the ``AlarmTopic``; context ``alarm_email`` subscribes an address):

* the state machine: failed executions (a rejected upload also ends in a ``Fail`` state, so the threshold is a
  rate, not one), timed-out executions, throttled executions;
* every Lambda function: errors (``ValidateInput`` fails by design on bad input: a higher threshold) and
  throttles;
* every dead-letter queue: any visible message;
* the async endpoint: age of the oldest queued request (backlog age, dimension ``EndpointName``), failed
  invocations, and notifications SageMaker could not publish (a lost one ends in a timeout and a release); the
  last two, like every per-request async metric, are published per ``EndpointName`` and ``VariantName`` (AWS:
  *Alarms and logs for tracking metrics from asynchronous endpoints*), so they carry both dimensions;
* the HTTP API: 5xx answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import Aws, Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.inference import endpoint_metric

PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class ObservabilityProps:
    stage: str
    functions: Mapping[str, lambda_.IFunction]
    dead_letter_queues: Mapping[str, sqs.IQueue]
    state_machine: sfn.IStateMachine
    endpoint_name: str
    variant_name: str
    """The endpoint's production variant (``Inference.variant_name``, the CfnEndpointConfig's VariantName)."""
    http_api: apigw.IHttpApi
    cluster: rds.IDatabaseCluster
    alarm_email: str | None = None
    failed_executions_threshold: int = 5
    """Failed executions per 5 minutes; rejected inputs (bad files, no credits) end in a Fail state too."""
    function_error_thresholds: Mapping[str, int] = field(
        default_factory=lambda: {"ValidateInput": 5, "StudioEngine": 5}
    )
    """Errors per 5 minutes by function name; 1 for the others. ValidateInput raises for every refused upload, the
    StudioEngine function for every photo its engine refuses."""
    backlog_age_threshold_seconds: int = 20 * 60
    """Oldest queued inference request; starting an instance from zero takes ~5-10 minutes."""
    api_5xx_threshold: int = 5


class Observability(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: ObservabilityProps) -> None:
        super().__init__(scope, construct_id)
        self._prefix = f"modamoda-{props.stage}"
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name=f"Modamoda {props.stage} alarms", enforce_ssl=True
        )
        # CloudWatch publishes alarm state changes of this account only.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    },
                },
            )
        )
        if props.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(props.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        self._state_machine_alarms(props)
        self._function_alarms(props)
        self._queue_alarms(props)
        self._endpoint_alarms(props)
        self._api_alarms(props)
        self.dashboard = self._dashboard(props)

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{self._prefix}-{construct_id}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def _state_machine_alarms(self, props: ObservabilityProps) -> None:
        machine = props.state_machine
        self._alarm(
            "ExecutionsFailed",
            machine.metric_failed(period=PERIOD, statistic="Sum"),
            threshold=props.failed_executions_threshold,
            description="Jobs are failing (JobFailed, JobRejected or SettlementFailed) at an unusual rate",
        )
        self._alarm(
            "ExecutionsTimedOut",
            machine.metric_timed_out(period=PERIOD, statistic="Sum"),
            threshold=1,
            description="A job execution timed out",
        )
        self._alarm(
            "ExecutionsThrottled",
            machine.metric_throttled(period=PERIOD, statistic="Sum"),
            threshold=1,
            description="Step Functions throttled job executions",
        )

    def _function_alarms(self, props: ObservabilityProps) -> None:
        for name, function in props.functions.items():
            self._alarm(
                f"{name}Errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                threshold=props.function_error_thresholds.get(name, 1),
                description=f"The {name} function failed",
            )
            self._alarm(
                f"{name}Throttles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                threshold=1,
                description=f"The {name} function was throttled",
            )

    def _queue_alarms(self, props: ObservabilityProps) -> None:
        for name, queue in props.dead_letter_queues.items():
            self._alarm(
                f"{name}NotEmpty",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                threshold=1,
                description=f"Messages wait in the {name} dead-letter queue: inspect, fix, redrive",
            )

    def _endpoint_alarms(self, props: ObservabilityProps) -> None:
        name, variant = props.endpoint_name, props.variant_name
        age = endpoint_metric("ApproximateAgeOfOldestRequest", name).with_(statistic="Maximum", period=PERIOD)
        self._alarm(
            "InferenceBacklogAge",
            age,
            threshold=props.backlog_age_threshold_seconds,
            description="The oldest inference request has waited too long (no capacity, or a stuck instance)",
        )
        for metric_name, description in (
            ("InvocationFailures", "Async inference requests failed"),
            ("NotificationFailures", "SageMaker could not publish inference notifications"),
        ):
            self._alarm(
                f"Inference{metric_name}",
                endpoint_metric(metric_name, name, variant).with_(statistic="Sum", period=PERIOD),
                threshold=1,
                description=description,
            )

    def _api_alarms(self, props: ObservabilityProps) -> None:
        self._alarm(
            "Api5xx",
            props.http_api.metric_server_error(period=PERIOD, statistic="Sum"),
            threshold=props.api_5xx_threshold,
            description="The HTTP API answers 5xx",
        )

    def _dashboard(self, props: ObservabilityProps) -> cloudwatch.Dashboard:
        machine, api, endpoint = props.state_machine, props.http_api, props.endpoint_name
        variant = props.variant_name
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self._prefix)
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24, height=4),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Jobs (executions)",
                left=[
                    machine.metric_started(period=PERIOD, statistic="Sum"),
                    machine.metric_succeeded(period=PERIOD, statistic="Sum"),
                    machine.metric_failed(period=PERIOD, statistic="Sum"),
                    machine.metric_timed_out(period=PERIOD, statistic="Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Inference backlog",
                left=[
                    endpoint_metric("ApproximateBacklogSize", endpoint).with_(period=PERIOD),
                    endpoint_metric("HasBacklogWithoutCapacity", endpoint).with_(period=PERIOD),
                ],
                right=[
                    endpoint_metric("ApproximateAgeOfOldestRequest", endpoint).with_(
                        statistic="Maximum", period=PERIOD
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Inference results",
                left=[
                    # "InvocationsProcesssed" is spelled with three s's by SageMaker itself.
                    endpoint_metric(name, endpoint, variant).with_(statistic="Sum", period=PERIOD)
                    for name in (
                        "InvocationsProcesssed",
                        "InvocationFailures",
                        "NotificationFailures",
                        "ExpiredRequests",
                    )
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[api.metric_count(period=PERIOD, statistic="Sum")],
                right=[
                    api.metric_client_error(period=PERIOD, statistic="Sum"),
                    api.metric_server_error(period=PERIOD, statistic="Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API latency (p50, p99)",
                left=[
                    api.metric_latency(period=PERIOD, statistic="p50"),
                    api.metric_latency(period=PERIOD, statistic="p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Aurora capacity (ACU) and connections",
                left=[props.cluster.metric("ServerlessDatabaseCapacity", period=PERIOD, statistic="Average")],
                right=[props.cluster.metric_database_connections(period=PERIOD, statistic="Maximum")],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors",
                left=[
                    f.metric_errors(period=PERIOD, statistic="Sum", label=n)
                    for n, f in props.functions.items()
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Lambda duration p99 (ms)",
                left=[
                    f.metric_duration(period=PERIOD, statistic="p99", label=n)
                    for n, f in props.functions.items()
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    q.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Maximum", label=n
                    )
                    for n, q in props.dead_letter_queues.items()
                ],
                width=8,
            ),
        )
        return dashboard
