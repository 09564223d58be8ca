"""The job workflow: upload event → start queue → StartWorkflow → Step Functions (from ``statemachines/``) →
task Lambdas → SageMaker async inference → SNS → Notifier (resumes the execution with its task token).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import STATE_MACHINE_FILE
from infra.inference import Inference
from infra.lambdas import LambdaPackaging
from infra.storage import (
    DROP_PREFIX,
    INFERENCE_FAILURE_PREFIX,
    INFERENCE_INPUT_PREFIX,
    INFERENCE_OUTPUT_PREFIX,
    RESULTS_PREFIX,
    UPLOADS_PREFIX,
    Storage,
)

UPLOAD_MAX_BYTES = 25 * 1024 * 1024
START_WORKFLOW_TIMEOUT = Duration.seconds(30)

# Task Lambdas of the state machine: CDK id → (handler, substitution key in the ASL file).
TASK_HANDLERS = {
    "ValidateInput": "functions.validate_input.handler.lambda_handler",
    "ReserveCredits": "functions.reserve_credits.handler.lambda_handler",
    "InvokeInference": "functions.invoke_inference.handler.lambda_handler",
    "CaptureCredits": "functions.capture_credits.handler.lambda_handler",
    "ReleaseCredits": "functions.release_credits.handler.lambda_handler",
}


def substitution_key(task: str) -> str:
    """``ValidateInput`` → ``ValidateInputFunctionArn`` (the ``${...}`` placeholder in the ASL file)."""
    return f"{task}FunctionArn"


@dataclass(frozen=True)
class PipelineProps:
    storage: Storage
    inference: Inference
    packaging: LambdaPackaging
    removal_policy: RemovalPolicy
    inference_timeout_seconds: int = 3600
    upload_max_bytes: int = UPLOAD_MAX_BYTES
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH


class Pipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: PipelineProps) -> None:
        super().__init__(scope, construct_id)
        storage, inference, packaging = props.storage, props.inference, props.packaging
        self._packaging = packaging
        uploads, results = storage.uploads, storage.results
        inference_timeout = str(props.inference_timeout_seconds)

        self.validate_input = packaging.function(
            self,
            "ValidateInput",
            handler=TASK_HANDLERS["ValidateInput"],
            environment={
                "UPLOAD_BUCKET": uploads.bucket_name,
                "UPLOAD_MAX_BYTES": str(props.upload_max_bytes),
            },
            timeout=Duration.seconds(60),
            memory_size=1536,  # decodes the image with Pillow to check it
        )
        uploads.grant_read(self.validate_input, f"{UPLOADS_PREFIX}*")
        uploads.grant_read(self.validate_input, f"{DROP_PREFIX}*")

        self.reserve_credits = packaging.function(
            self, "ReserveCredits", handler=TASK_HANDLERS["ReserveCredits"]
        )

        self.invoke_inference = packaging.function(
            self,
            "InvokeInference",
            handler=TASK_HANDLERS["InvokeInference"],
            environment={
                "RESULTS_BUCKET": results.bucket_name,
                "INFERENCE_ENDPOINT_NAME": inference.endpoint_name,
                "INFERENCE_TIMEOUT_SECONDS": inference_timeout,
            },
        )
        self.invoke_inference.add_to_role_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpointAsync"], resources=[inference.endpoint_arn])
        )
        uploads.grant_read(self.invoke_inference, f"{UPLOADS_PREFIX}*")
        uploads.grant_read(self.invoke_inference, f"{DROP_PREFIX}*")
        results.grant_put(self.invoke_inference, f"{INFERENCE_INPUT_PREFIX}*")

        self.capture_credits = packaging.function(
            self,
            "CaptureCredits",
            handler=TASK_HANDLERS["CaptureCredits"],
            environment={"RESULTS_BUCKET": results.bucket_name},
        )
        self.release_credits = packaging.function(
            self, "ReleaseCredits", handler=TASK_HANDLERS["ReleaseCredits"]
        )
        self.task_functions: dict[str, lambda_.Function] = {
            "ValidateInput": self.validate_input,
            "ReserveCredits": self.reserve_credits,
            "InvokeInference": self.invoke_inference,
            "CaptureCredits": self.capture_credits,
            "ReleaseCredits": self.release_credits,
        }

        # The flow is defined once, in the ASL file; CDK only fills in the function ARNs.
        self.state_machine = sfn.StateMachine(
            self,
            "JobStateMachine",
            definition_body=sfn.DefinitionBody.from_file(str(STATE_MACHINE_FILE)),
            definition_substitutions={
                substitution_key(name): fn.function_arn for name, fn in self.task_functions.items()
            },
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(
                    self,
                    "JobStateMachineLogs",
                    retention=props.log_retention,
                    removal_policy=props.removal_policy,
                ),
                level=sfn.LogLevel.ERROR,
                include_execution_data=False,
            ),
        )
        for fn in self.task_functions.values():
            fn.grant_invoke(self.state_machine)

        self._add_start(props)
        self._add_notifier(props)
        self._add_sweeper()

    def _add_start(self, props: PipelineProps) -> None:
        """S3 Object Created (uploads/) → EventBridge → StartQueue → StartWorkflow (idempotent starts)."""
        uploads = props.storage.uploads
        self.start_dead_letter_queue = sqs.Queue(
            self, "StartDeadLetterQueue", retention_period=Duration.days(14), enforce_ssl=True
        )
        self.start_queue = sqs.Queue(
            self,
            "StartQueue",
            visibility_timeout=Duration.seconds(START_WORKFLOW_TIMEOUT.to_seconds() * 6),
            retention_period=Duration.days(4),
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.start_dead_letter_queue, max_receive_count=5),
        )
        self.upload_rule = events.Rule(
            self,
            "UploadCreatedRule",
            description="Uploads of the PWA start a job",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [uploads.bucket_name]},
                    "object": {"key": [{"prefix": UPLOADS_PREFIX}]},
                },
            ),
            targets=[targets.SqsQueue(self.start_queue)],
        )
        self.start_workflow = props.packaging.function(
            self,
            "StartWorkflow",
            handler="functions.start_workflow.handler.lambda_handler",
            environment={
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "INFERENCE_TIMEOUT_SECONDS": str(props.inference_timeout_seconds),
            },
            timeout=START_WORKFLOW_TIMEOUT,
        )
        self.state_machine.grant_start_execution(self.start_workflow)
        self.start_workflow.add_event_source(
            event_sources.SqsEventSource(self.start_queue, batch_size=10, report_batch_item_failures=True)
        )

    def _add_notifier(self, props: PipelineProps) -> None:
        """SageMaker async SNS notifications → Notifier: store the result, settle credits, resume the job."""
        results, inference = props.storage.results, props.inference
        self.notifier = props.packaging.function(
            self,
            "Notifier",
            handler="functions.notifier.handler.lambda_handler",
            environment={"RESULTS_BUCKET": results.bucket_name},
            timeout=Duration.seconds(60),
        )
        self.state_machine.grant_task_response(self.notifier)
        results.grant_read(self.notifier, f"{INFERENCE_OUTPUT_PREFIX}*")
        results.grant_read(self.notifier, f"{INFERENCE_FAILURE_PREFIX}*")
        results.grant_put(self.notifier, f"{RESULTS_PREFIX}*")
        self.notification_dead_letter_queue = sqs.Queue(
            self, "NotificationDeadLetterQueue", retention_period=Duration.days(14), enforce_ssl=True
        )
        for topic in (inference.success_topic, inference.error_topic):
            topic.add_subscription(
                subscriptions.LambdaSubscription(
                    self.notifier, dead_letter_queue=self.notification_dead_letter_queue
                )
            )

    def _add_sweeper(self) -> None:
        """Every 5 minutes: release credit holds past their deadline (lost executions, failed settlements)."""
        self.sweeper = self._packaging.function(
            self,
            "Sweeper",
            handler="functions.sweeper.handler.lambda_handler",
            timeout=Duration.seconds(120),
        )
        self.state_machine.grant_task_response(self.sweeper)
        self.sweep_rule = events.Rule(
            self,
            "SweepSchedule",
            description="Release expired credit holds",
            schedule=events.Schedule.rate(Duration.minutes(5)),
            targets=[targets.LambdaFunction(self.sweeper, retry_attempts=2)],
        )
