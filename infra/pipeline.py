"""The job workflow: upload event → start queue → StartWorkflow → Step Functions (from ``statemachines/``) →
task Lambdas → SageMaker async inference → SNS → Notifier (resumes the execution with its task token).

At-least-once everywhere, so every hop is idempotent or has a place where failures wait:

* S3 "Object Created" → EventBridge rules → two start queues (SQS): the PWA's and the API's uploads into
  ``StartQueue``, the bulk drop folder into ``DropStartQueue``, each with its own event source on StartWorkflow, so
  a customer's single photo never waits behind another shop's thousands of dropped files before its job exists
  (the GPU scheduler's lanes can only order jobs that exist). A rule that cannot deliver puts the event in
  ``EventsDeadLetterQueue``; a message StartWorkflow fails five times goes to ``StartDeadLetterQueue``.
  StartWorkflow names the execution after the object version (``ExecutionAlreadyExists`` is success) and reports
  partial batch failures. Each event source has a maximum concurrency
  (``start_max_concurrency``: 2 in dev, 10 in prod): a bulk drop of thousands of files waits in the queue rather
  than fanning out into as many functions, and database connections, as the account's concurrency allows (with
  maximum concurrency Lambda stops polling instead of throttling, so waiting messages are not pushed towards the
  dead-letter queue).
* The state machine is the file ``statemachines/job.asl.json``; CDK only substitutes the task functions' ARNs (the
  studio engine's function among them, ``infra/studio.py``: ghost work runs there, synchronously, unless
  ``ghost_on_lambda`` is off), the results bucket's metadata prefix and the stack's partition
  (``arn:${Partition}:states:::lambda:invoke``: ``aws``, ``aws-cn``, ...). Every task has a
  timeout, every retry backs off with full jitter and stops; the Lambda tasks retry AWS's recommended transient
  errors (``Lambda.ServiceException``, ``Lambda.AWSLambdaException``, ``Lambda.SdkClientException``,
  ``Lambda.ClientExecutionTimeoutException``, ``Lambda.TooManyRequestsException``); executions are traced and
  logged.
* The GPU path (``RunInference``, ``infra/scheduler.py``): the enqueue function puts the job in our queue with its
  task token; the dispatcher (started at every enqueue and settled result, and on a schedule) hands queued jobs to
  the endpoint by lane and round-robin across tenants, a capped number at a time, and ends queue and inference
  timeouts (releasing the hold, failing the token).
* SNS → Notifier: a delivery SNS cannot make, or an invocation Lambda fails after its retries, lands in
  ``NotificationDeadLetterQueue``. A lost notification ends in the inference timeout (the dispatcher's, counted
  from the hand-over, or the task's own), which releases.
* The sweeper (every 5 minutes) releases holds past their deadline; undeliverable schedule events go to
  ``EventsDeadLetterQueue``, and so does an invocation the sweeper still fails after Lambda's asynchronous retries
  (its on-failure destination; the event expires once the next sweep is due).
Alarms on every dead-letter queue are in ``infra/observability.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import STATE_MACHINE_FILE
from infra.inference import Inference
from infra.lambdas import LambdaPackaging
from infra.nag import acknowledge
from infra.scheduler import ENQUEUE_HANDLER, GpuScheduler, SchedulerProps
from infra.storage import (
    DROP_PREFIX,
    INFERENCE_METADATA_PREFIX,
    INFERENCE_OUTPUT_PREFIX,
    OBJECT_READ,
    OBJECT_WRITE,
    PREVIEWS_PREFIX,
    RESULTS_PREFIX,
    UPLOADS_PREFIX,
    Storage,
    grant_batch_reports,
    grant_objects,
)
from infra.studio import StudioEngine, StudioEngineProps

UPLOAD_MAX_BYTES = 25 * 1024 * 1024
START_WORKFLOW_TIMEOUT = Duration.seconds(30)
DEAD_LETTER_RETENTION = Duration.days(14)

# Task Lambdas of the state machine: CDK id → (handler, substitution key in the ASL file).
TASK_HANDLERS = {
    "ValidateInput": "functions.validate_input.handler.lambda_handler",
    "ReserveCredits": "functions.reserve_credits.handler.lambda_handler",
    "EnqueueInference": ENQUEUE_HANDLER,
    "CaptureCredits": "functions.capture_credits.handler.lambda_handler",
    "ReleaseCredits": "functions.release_credits.handler.lambda_handler",
}


def substitution_key(task: str) -> str:
    """``ValidateInput`` → ``ValidateInputFunctionArn`` (the ``${...}`` placeholder in the ASL file)."""
    return f"{task}FunctionArn"


PARTITION_KEY = "Partition"
"""The ``${Partition}`` placeholder of the ASL file: the stack's AWS partition in each ``Resource`` ARN."""
METADATA_PREFIX_KEY = "InferenceMetadataS3Prefix"
"""The ``${InferenceMetadataS3Prefix}`` placeholder: ``s3://{results bucket}/inference/metadata/``, where ``RunStudio``
asks the engine to write each job's metadata document (``functions/common/pipeline.py`` reads it there)."""


def definition_substitutions(
    scope: Construct, task_functions: Mapping[str, lambda_.IFunction], results_bucket: str | None = None
) -> dict[str, str]:
    """What CDK substitutes in the ASL file: each task function's ARN, the partition (``aws``, ``aws-cn``, ...;
    ``{"Ref": "AWS::Partition"}`` in an environment-agnostic stack) and, given the results bucket's name, its
    metadata prefix."""
    values = {
        PARTITION_KEY: Stack.of(scope).partition,
        **{substitution_key(name): fn.function_arn for name, fn in task_functions.items()},
    }
    if results_bucket is not None:
        values[METADATA_PREFIX_KEY] = f"s3://{results_bucket}/{INFERENCE_METADATA_PREFIX}"
    return values


def queue(
    scope: Construct,
    construct_id: str,
    *,
    retention_period: Duration,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """An SQS queue that refuses plain HTTP and is encrypted at rest (SSE-SQS: usable by EventBridge and SNS)."""
    return sqs.Queue(
        scope,
        construct_id,
        enforce_ssl=True,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        retention_period=retention_period,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
    )


def dead_letter_queue(scope: Construct, construct_id: str, what: str) -> sqs.Queue:
    dlq = queue(scope, construct_id, retention_period=DEAD_LETTER_RETENTION)
    acknowledge(
        dlq, "SQS3", f"this queue is itself a dead-letter queue ({what}); it is alarmed, not redriven"
    )
    return dlq


@dataclass(frozen=True)
class PipelineProps:
    storage: Storage
    inference: Inference
    packaging: LambdaPackaging
    removal_policy: RemovalPolicy
    inference_timeout_seconds: int = 3600
    sweep_interval_minutes: int = 5
    """How often expired holds are released. Each sweep opens a database connection, so it also decides whether
    an idle dev cluster can pause (min 0 ACU, pause after 5 idle minutes): dev sweeps hourly."""
    upload_max_bytes: int = UPLOAD_MAX_BYTES
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    start_max_concurrency: int = 2
    """StartWorkflow instances the start queue may run at once (``ScalingConfig.MaximumConcurrency``, 2 to 1000)."""
    ghost_on_lambda: bool = True
    """Ghost work the studio engine does runs on its Lambda function (``GHOST_ON_LAMBDA``); False: on the endpoint."""
    studio_reserved_concurrency: int | None = None
    """Reserved concurrency of the studio engine's function (``infra/studio.py``); None: the unreserved pool."""
    inference_max_instances: int = 2
    """The endpoint's most instances (``InferenceProps.max_instances``): the dispatcher's cap is derived from it."""
    dispatch_interval_minutes: int = 1
    """How often the GPU queue's dispatcher runs on its own (infra/scheduler.py); it also runs at every enqueue and
    every settled result. Each run opens a database connection (dev: hourly, so an idle cluster can pause)."""
    queue_wait_seconds: int = 3600
    """``QUEUE_WAIT_SECONDS``: the longest an interactive job waits in the GPU queue (``queue_timeout`` after)."""
    batch_queue_wait_seconds: int = 86_400
    """``BATCH_QUEUE_WAIT_SECONDS``: the longest a batch job (lanes normal, bulk) waits in the GPU queue."""


class Pipeline(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: PipelineProps) -> None:
        super().__init__(scope, construct_id)
        storage, inference, packaging = props.storage, props.inference, props.packaging
        self.events_dead_letter_queue = dead_letter_queue(
            self,
            "EventsDeadLetterQueue",
            "events EventBridge could not deliver to the start queue or the sweeper, and sweeper invocations that "
            "failed after Lambda's retries",
        )
        self._packaging = packaging
        uploads, results = storage.uploads, storage.results

        self.validate_input = packaging.function(
            self,
            "ValidateInput",
            handler=TASK_HANDLERS["ValidateInput"],
            environment={
                "UPLOAD_BUCKET": uploads.bucket_name,
                "DROP_BUCKET": storage.drop.bucket_name,
                "UPLOAD_MAX_BYTES": str(props.upload_max_bytes),
                "RESULTS_BUCKET": results.bucket_name,  # the photo's WebP preview goes to previews/
                # where each job runs (pipeline.engine_path): ghost work on the studio function, or all on the GPU
                "GHOST_ON_LAMBDA": "true" if props.ghost_on_lambda else "false",
            },
            timeout=Duration.seconds(60),
            memory_size=1536,  # decodes the image with Pillow to check it
        )
        grant_objects(
            self.validate_input,
            results,
            PREVIEWS_PREFIX,
            OBJECT_WRITE,
            why="writes each photo's WebP preview (previews/{tenant}/{job}/original.webp)",
        )
        # Reads the object version named by the event; s3:ListBucket makes a missing key a 404 (upload_missing)
        # rather than a 403.
        for bucket, prefix in ((uploads, UPLOADS_PREFIX), (storage.drop, DROP_PREFIX)):
            grant_objects(
                self.validate_input,
                bucket,
                prefix,
                OBJECT_READ,
                why="checks each upload of any tenant by content",
            )
            self.validate_input.add_to_role_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
            )

        self.reserve_credits = packaging.function(
            self, "ReserveCredits", handler=TASK_HANDLERS["ReserveCredits"]
        )

        # The GPU path (RunInference): the enqueue function, the dispatcher and its schedule (infra/scheduler.py).
        self.scheduler = GpuScheduler(
            self,
            "Scheduler",
            SchedulerProps(
                storage=storage,
                inference=inference,
                packaging=packaging,
                events_dead_letter_queue=self.events_dead_letter_queue,
                max_instances=props.inference_max_instances,
                interval_minutes=props.dispatch_interval_minutes,
            ),
        )
        self.enqueue_inference = self.scheduler.enqueue

        self.capture_credits = packaging.function(
            self,
            "CaptureCredits",
            handler=TASK_HANDLERS["CaptureCredits"],
            environment={"RESULTS_BUCKET": results.bucket_name},
        )
        # RecordStudioResult: the studio function's image is stored as the notifier stores an async result
        for prefix, actions, why in (
            (
                INFERENCE_OUTPUT_PREFIX,
                ("s3:GetObject",),
                "copies the studio function's image (the copy's source)",
            ),
            (
                INFERENCE_METADATA_PREFIX,
                ("s3:GetObject",),
                "reads each job's metadata JSON (its quality score)",
            ),
            (RESULTS_PREFIX, OBJECT_WRITE, "stores each studio job's result under results/{tenant}/"),
            (
                PREVIEWS_PREFIX,
                OBJECT_WRITE,
                "writes each result's WebP thumbnail (previews/{tenant}/{job}/thumb.webp)",
            ),
        ):
            grant_objects(self.capture_credits, results, prefix, actions, why=why)
        self.release_credits = packaging.function(
            self, "ReleaseCredits", handler=TASK_HANDLERS["ReleaseCredits"]
        )
        self.studio = StudioEngine(
            self,
            "StudioEngine",
            StudioEngineProps(
                storage=storage,
                removal_policy=props.removal_policy,
                log_retention=props.log_retention,
                log_level=packaging.props.log_level,
                reserved_concurrency=props.studio_reserved_concurrency,
            ),
        )
        self.task_functions: dict[str, lambda_.Function] = {
            "ValidateInput": self.validate_input,
            "ReserveCredits": self.reserve_credits,
            "EnqueueInference": self.enqueue_inference,
            "CaptureCredits": self.capture_credits,
            "ReleaseCredits": self.release_credits,
            "StudioEngine": self.studio.function,  # RunStudio (a container image, not a handler of functions/)
        }

        # The flow is defined once, in the ASL file; CDK only fills in the function ARNs and the partition.
        self.state_machine = sfn.StateMachine(
            self,
            "JobStateMachine",
            definition_body=sfn.DefinitionBody.from_file(str(STATE_MACHINE_FILE)),
            definition_substitutions=definition_substitutions(self, self.task_functions, results.bucket_name),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            # Every state transition is logged (ALL), without inputs and outputs: those hold task tokens and
            # tenant data; the job row in PostgreSQL has the details.
            logs=sfn.LogOptions(
                destination=logs.LogGroup(
                    self,
                    "JobStateMachineLogs",
                    retention=props.log_retention,
                    removal_policy=props.removal_policy,
                ),
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
        )
        # Exactly the unqualified function ARNs the definition names (grant_invoke would add ARN:*).
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[fn.function_arn for fn in self.task_functions.values()],
            )
        )
        acknowledge(
            self.state_machine,
            "IAM5[Resource::*]",
            "X-Ray tracing and CloudWatch Logs delivery (logs:CreateLogDelivery, ...) have no resource-level "
            "permissions",
        )

        # The dispatcher fails the task tokens of jobs that time out in the queue or at the endpoint. A policy of its
        # own, not the function's default one: the function must not depend on the state machine, whose definition
        # names the enqueue function, which names the dispatcher (a dependency cycle otherwise).
        self.scheduler.allow_task_response(self.state_machine)

        self._add_start(props)
        self._add_notifier(props)
        self._add_sweeper(props)
        self._add_batches(props)

    def _add_start(self, props: PipelineProps) -> None:
        """S3 Object Created → EventBridge → StartQueue (uploads/) and DropStartQueue (drop/) → StartWorkflow
        (idempotent starts). Two queues, so uploads never wait behind a bulk drop's backlog."""
        storage = props.storage
        self.start_dead_letter_queue = dead_letter_queue(
            self, "StartDeadLetterQueue", "start messages StartWorkflow failed five times"
        )

        def start_queue(construct_id: str) -> sqs.Queue:
            return queue(
                self,
                construct_id,
                visibility_timeout=Duration.seconds(START_WORKFLOW_TIMEOUT.to_seconds() * 6),
                retention_period=Duration.days(4),
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=self.start_dead_letter_queue, max_receive_count=5
                ),
            )

        self.start_queue = start_queue("StartQueue")
        self.drop_start_queue = start_queue("DropStartQueue")
        self.upload_rule = self._object_created_rule(
            "UploadCreatedRule",
            "Uploads of the PWA start a job",
            storage.uploads,
            UPLOADS_PREFIX,
            self.start_queue,
        )
        self.drop_rule = self._object_created_rule(
            "DropCreatedRule",
            "Files in the bulk drop folder start jobs",
            storage.drop,
            DROP_PREFIX,
            self.drop_start_queue,
        )
        self.start_workflow = props.packaging.function(
            self,
            "StartWorkflow",
            handler="functions.start_workflow.handler.lambda_handler",
            environment={
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                # each job's RunInference wait: its lane's queue-wait bound + the inference timeout (lanes.py)
                "INFERENCE_TIMEOUT_SECONDS": str(props.inference_timeout_seconds),
                "QUEUE_WAIT_SECONDS": str(props.queue_wait_seconds),
                "BATCH_QUEUE_WAIT_SECONDS": str(props.batch_queue_wait_seconds),
                "UPLOAD_BUCKET": storage.uploads.bucket_name,
                "DROP_BUCKET": storage.drop.bucket_name,
            },
            timeout=START_WORKFLOW_TIMEOUT,
        )
        self.state_machine.grant_start_execution(self.start_workflow)
        for start in (self.start_queue, self.drop_start_queue):
            self.start_workflow.add_event_source(
                event_sources.SqsEventSource(
                    start,
                    batch_size=10,
                    report_batch_item_failures=True,
                    max_concurrency=props.start_max_concurrency,
                )
            )

    def _object_created_rule(
        self, construct_id: str, description: str, bucket: s3.IBucket, prefix: str, target: sqs.IQueue
    ) -> events.Rule:
        return events.Rule(
            self,
            construct_id,
            description=description,
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.bucket_name]}, "object": {"key": [{"prefix": prefix}]}},
            ),
            targets=[
                targets.SqsQueue(
                    target,
                    dead_letter_queue=self.events_dead_letter_queue,
                    retry_attempts=185,
                    max_event_age=Duration.hours(24),
                )
            ],
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
        self.scheduler.grant_kick(self.notifier)  # a settled result frees a place at the endpoint
        grant_objects(
            self.notifier,
            results,
            INFERENCE_OUTPUT_PREFIX,
            ("s3:GetObject",),
            why="copies each job's inference output (the copy's source)",
        )
        grant_objects(
            self.notifier,
            results,
            INFERENCE_METADATA_PREFIX,
            ("s3:GetObject",),
            why="reads each job's metadata JSON (the engine's refusal, its quality score)",
        )
        grant_objects(
            self.notifier,
            results,
            RESULTS_PREFIX,
            OBJECT_WRITE,
            why="stores each job's result under results/{tenant}/",
        )
        grant_objects(
            self.notifier,
            results,
            PREVIEWS_PREFIX,
            OBJECT_WRITE,
            why="writes each result's WebP thumbnail (previews/{tenant}/{job}/thumb.webp)",
        )
        self.notification_dead_letter_queue = dead_letter_queue(
            self,
            "NotificationDeadLetterQueue",
            "SNS notifications that could not be delivered to, or were not handled by, the notifier",
        )
        # SNS invokes the notifier asynchronously: after Lambda's own retries a failed event goes to the queue.
        self.notifier.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.notification_dead_letter_queue),
        )
        for topic in (inference.success_topic, inference.error_topic):
            topic.add_subscription(
                subscriptions.LambdaSubscription(
                    self.notifier, dead_letter_queue=self.notification_dead_letter_queue
                )
            )

    def _add_sweeper(self, props: PipelineProps) -> None:
        """On a schedule: release credit holds past their deadline (lost executions, failed settlements)."""
        self.sweeper = self._packaging.function(
            self,
            "Sweeper",
            handler="functions.sweeper.handler.lambda_handler",
            timeout=Duration.seconds(120),
        )
        self.state_machine.grant_task_response(self.sweeper)
        # EventBridge invokes the sweeper asynchronously: after Lambda's two retries, or once the next sweep is due,
        # the event goes to the events dead-letter queue (alarmed), like an event EventBridge could not deliver.
        self.sweeper.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.minutes(props.sweep_interval_minutes),
            on_failure=destinations.SqsDestination(self.events_dead_letter_queue),
        )
        self.sweep_rule = events.Rule(
            self,
            "SweepSchedule",
            description="Release expired credit holds",
            schedule=events.Schedule.rate(Duration.minutes(props.sweep_interval_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.sweeper,
                    retry_attempts=2,
                    max_event_age=Duration.minutes(5),  # the next run is due by then
                    dead_letter_queue=self.events_dead_letter_queue,
                )
            ],
        )

    def _add_batches(self, props: PipelineProps) -> None:
        """Bulk: StartWorkflow reads a batch's manifest from its drop folder (and lists the folder for one that
        landed before its event); every function that can end a batch's last job writes the batch's report."""
        storage = props.storage
        grant_objects(
            self.start_workflow,
            storage.drop,
            DROP_PREFIX,
            OBJECT_READ,
            why="reads each batch's manifest (drop/{tenant}/{batch}/manifest.json|csv) by its event's version",
        )
        # ListBucket: a missing key is a 404, not a 403 (URL-encoded event keys), and the manifest lookup lists
        # drop/{tenant}/{batch}/manifest.
        self.start_workflow.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[storage.drop.bucket_arn])
        )
        for function in (
            self.start_workflow,  # files refused on arrival (stopped batch, manifest) can be a batch's last
            self.reserve_credits,  # a failed reservation stops the batch and rejects what had not started
            self.capture_credits,
            self.release_credits,
            self.sweeper,  # and re-writes a report whose writer died after the commit
            self.scheduler.dispatch,  # a queue or inference timeout can end a batch's last job
        ):
            function.add_environment("RESULTS_BUCKET", storage.results.bucket_name)
            grant_batch_reports(
                function, storage.results, why="writes the report of a batch whose last job it ended"
            )
        # The notifier already writes under results/ (each result, and so a batch's report too).
