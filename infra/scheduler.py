"""The fair scheduler in front of the GPU endpoint (``functions/common/scheduler.py``): the enqueue function
(``RunInference``'s task: the job joins our queue with its task token) and the dispatcher (hands queued jobs to the
SageMaker asynchronous endpoint, at most ``instances x MaxConcurrentInvocationsPerInstance + buffer`` at once, by
lane and round-robin across tenants; ends overdue entries; publishes the queue's depth, which the endpoint's
autoscaling follows: ``infra/inference.py``).

The dispatcher runs when a job is queued and when a result was settled (the enqueue function and the notifier
invoke it asynchronously: :meth:`GpuScheduler.grant_kick`) and on a schedule (EventBridge, every
``interval_minutes``: retries after backoff, queue and inference timeouts, the depth metric while nothing else
happens). It takes its cap from the same values the endpoint is deployed with (``InferenceProps.max_instances``,
``MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE``). Asynchronous invocations it still fails after Lambda's retries go to the
events dead-letter queue (alarmed), as the sweeper's do.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.inference import MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE, Inference
from infra.lambdas import LambdaPackaging
from infra.storage import INFERENCE_INPUT_PREFIX, OBJECT_WRITE, Storage, grant_objects

ENQUEUE_HANDLER = "functions.enqueue_inference.handler.lambda_handler"
DISPATCH_HANDLER = "functions.dispatch_inference.handler.lambda_handler"
DISPATCH_TIMEOUT = Duration.seconds(60)


@dataclass(frozen=True)
class SchedulerProps:
    storage: Storage
    inference: Inference
    packaging: LambdaPackaging
    events_dead_letter_queue: sqs.IQueue
    max_instances: int
    """The endpoint's most instances (``InferenceProps.max_instances``): with its per-instance concurrency, the cap."""
    dispatch_buffer: int = 1
    """Jobs handed over beyond the endpoint's capacity, so that the next one is already there when one finishes."""
    interval_minutes: int = 1
    """How often the dispatcher runs on its own (retries after backoff, timeouts, the depth metric). Each run opens
    a database connection: a run every minute keeps an idle Aurora Serverless v2 cluster from pausing."""


class GpuScheduler(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: SchedulerProps) -> None:
        super().__init__(scope, construct_id)
        storage, inference, packaging = props.storage, props.inference, props.packaging
        self.dispatch = packaging.function(
            self,
            "DispatchInference",
            handler=DISPATCH_HANDLER,
            environment={
                "RESULTS_BUCKET": storage.results.bucket_name,
                "INFERENCE_ENDPOINT_NAME": inference.endpoint_name,
                "INFERENCE_INSTANCES": str(props.max_instances),
                "INFERENCE_CONCURRENCY_PER_INSTANCE": str(MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE),
                "INFERENCE_DISPATCH_BUFFER": str(props.dispatch_buffer),
            },
            timeout=DISPATCH_TIMEOUT,
            description="GPU queue: hands queued jobs to the async endpoint (lanes, round-robin across tenants)",
        )
        self.dispatch.add_to_role_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpointAsync"], resources=[inference.endpoint_arn])
        )
        # Started asynchronously (by EventBridge, the enqueue function, the notifier): after Lambda's two retries,
        # or once the next scheduled run is due, a failed event goes to the events dead-letter queue (alarmed).
        self.dispatch.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.minutes(max(1, props.interval_minutes)),
            on_failure=destinations.SqsDestination(props.events_dead_letter_queue),
        )
        self.schedule = events.Rule(
            self,
            "DispatchSchedule",
            description="Run the GPU queue's dispatcher: retries, queue and inference timeouts, the depth metric",
            schedule=events.Schedule.rate(Duration.minutes(props.interval_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.dispatch,
                    retry_attempts=2,
                    max_event_age=Duration.minutes(5),
                    dead_letter_queue=props.events_dead_letter_queue,
                )
            ],
        )

        self.enqueue = packaging.function(
            self,
            "EnqueueInference",
            handler=ENQUEUE_HANDLER,
            environment={"RESULTS_BUCKET": storage.results.bucket_name},
            description="RunInference: the job joins the GPU queue with its task token",
        )
        grant_objects(
            self.enqueue,
            storage.results,
            INFERENCE_INPUT_PREFIX,
            OBJECT_WRITE,
            why="writes the request document of each job (inference/input/{job}.json)",
        )
        self.grant_kick(self.enqueue)

    def allow_task_response(self, state_machine: sfn.IStateMachine) -> None:
        """Let the dispatcher answer the executions' task tokens (queue and inference timeouts), through a policy
        of its own: the dispatcher function does not depend on it (it depends on its role's default policy only),
        so the state machine, whose definition names the enqueue function, may name it without a cycle. The
        schedule starts once the policy exists."""
        policy = iam.Policy(
            self,
            "DispatchTaskResponse",
            statements=[
                iam.PolicyStatement(
                    actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
                    resources=[state_machine.state_machine_arn],
                )
            ],
        )
        assert self.dispatch.role is not None
        policy.attach_to_role(self.dispatch.role)
        self.schedule.node.add_dependency(policy)

    def grant_kick(self, function: lambda_.Function) -> None:
        """Let ``function`` start the dispatcher (``DISPATCH_FUNCTION_NAME``, an asynchronous invoke)."""
        function.add_environment("DISPATCH_FUNCTION_NAME", self.dispatch.function_name)
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.dispatch.function_arn])
        )
