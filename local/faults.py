"""Fault injectors for the local stack: what goes wrong in the cloud, made to happen on purpose and undone after.

Used by ``tests/reliability/test_faults.py`` (and meant for a stress run against a long-lived stack). Each one
acts on the real pieces of a running :class:`local.stack.LocalStack`, never on a copy of the flow:

- :func:`inference_errors`: the model answers an HTTP error (the async endpoint publishes the error notification);
- :func:`engine_answers`: the inference container's engine (and the studio function's) refuses photos
  (``no_garment_found``, ``low_confidence``, ``person_in_photo``) or reports metadata (its quality score) of the
  tests' choosing, inside the real container, so its answer and its metadata document go the whole way;
- :func:`dropped_notifications`: SageMaker's notification never arrives (kept, so a test can publish it late);
- :class:`ResumeCrash`: the notifier Lambda dies after its settlement committed, before it resumed the execution;
- :class:`DatabaseOutage`: PostgreSQL refuses the application (its role loses LOGIN and its sessions are ended,
  as in a failover); :func:`outage_on_call` starts one when a given Lambda function is next invoked;
- :func:`fast_retries`: Step Functions' retry waits run faster (the clock moving on), so a test can exhaust a
  state's retries without waiting minutes;
- SNS, S3, SQS and Stripe helpers to deliver the same event again, late or out of order
  (:func:`publish_notification`, :func:`notifier_event`, :func:`captured_s3_events`, :func:`send_to_start_queue`,
  :func:`held_stripe_webhooks`).

All of them are off unless used, and each context manager restores what it changed on exit.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from local.sagemaker_async import notification, now
from local.stack import sns_event

if TYPE_CHECKING:
    from local.lambda_runtime import LocalLambda
    from local.sagemaker_async import LocalAsyncEndpoint
    from local.stack import LocalStack
    from local.stripe_emulator import StripeEmulator

APP_ROLE = "modamoda_app"


# ---- inference ----------------------------------------------------------------------------------------------


@contextmanager
def inference_errors(
    endpoint: LocalAsyncEndpoint,
    status: int,
    message: str,
    *,
    code: str = "injected",
    details: dict[str, Any] | None = None,
) -> Iterator[None]:
    """Every inference answers HTTP ``status`` with ``{"error": {"code", "message", "details"}}`` (500: a server
    error such as a CUDA fault; 4xx: the model refused the request) without reaching the container, so no metadata
    document is written. The endpoint publishes SageMaker's error notification for each."""
    endpoint.fail_with = (status, message)
    endpoint.fail_code, endpoint.fail_details = code, details
    try:
        yield
    finally:
        endpoint.fail_with = None
        endpoint.fail_code, endpoint.fail_details = "injected", None


@contextmanager
def engine_answers(
    stack: LocalStack,
    *,
    refuse: Exception | None = None,
    metadata: dict[str, Any] | None = None,
    when: Callable[[Any], bool] | None = None,
) -> Iterator[None]:
    """Every run of the container's engines whose request ``when`` accepts (default: all) raises ``refuse`` (an
    error of ``modamoda_inference.errors``, e.g. ``LowConfidence(message, details=...)``), or else returns the
    engine's real result with ``metadata`` merged into its metadata (e.g. ``{"quality": {...}}``). The container
    answers and writes its metadata document as it would for the engine's own. Blocks nest; each restores the
    engines' ``run`` it found."""
    engines = list(stack.container.service.engines.values())
    if stack.studio is not None:  # and the studio engine's Lambda function's own engine
        engines += list(stack.studio.service.engines.values())
    saved = [(engine, engine.__dict__.get("run")) for engine in engines]

    def hooked(engine: Any) -> Callable[..., Any]:
        original = engine.run

        def run(image: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if when is not None and not when(request):
                return original(image, request, *args, **kwargs)
            if refuse is not None:
                raise refuse.with_traceback(None)
            result = original(image, request, *args, **kwargs)
            result.metadata.update(copy.deepcopy(metadata or {}))
            return result

        return run

    for engine in engines:
        engine.run = hooked(engine)  # type: ignore[method-assign]  # an instance attribute, undone below
    try:
        yield
    finally:
        for engine, previous in saved:
            if previous is None:
                engine.__dict__.pop("run", None)
            else:
                engine.run = previous  # type: ignore[method-assign]


@contextmanager
def dropped_notifications(endpoint: LocalAsyncEndpoint) -> Iterator[None]:
    """No completion notification is published (lost on the way). The endpoint keeps each dropped one
    (``endpoint.dropped``; :func:`wait_dropped`), so that a test can deliver it late."""
    endpoint.drop_notifications = True
    try:
        yield
    finally:
        endpoint.drop_notifications = False


def wait_dropped(endpoint: LocalAsyncEndpoint, inference_id: str, timeout: float = 60.0) -> tuple[str, str]:
    """The dropped notification of ``inference_id`` once the endpoint has produced it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for topic, message in list(endpoint.dropped):
            if json.loads(message)["inferenceId"] == inference_id:
                return topic, message
        time.sleep(0.05)
    raise TimeoutError(f"no dropped notification for {inference_id}")


def success_notification(job_id: str, output_location: str, content_type: str = "image/png") -> str:
    """A SageMaker async success notification (the documented JSON) for ``job_id``."""
    return json.dumps(
        notification(job_id, _input_of(job_id), content_type=content_type, output_location=output_location)
    )


def error_notification(job_id: str, status: int = 500, detail: str = "model error") -> str:
    """A SageMaker async error notification for ``job_id`` (the failure reason SageMaker writes)."""
    return json.dumps(
        notification(job_id, _input_of(job_id), content_type="application/json", failure=(status, detail))
    )


def _input_of(job_id: str) -> str:
    return f"s3://unused/inference/input/{job_id}.json"


def publish_notification(stack: LocalStack, message: str, *, success: bool = True) -> None:
    """Publish ``message`` on the success (or error) topic: it reaches the notifier through the notify queue."""
    topic = stack.success_topic_arn if success else stack.error_topic_arn
    stack.client("sns").publish(TopicArn=topic, Message=message)


def notifier_event(topic_arn: str, message: str) -> dict[str, Any]:
    """The SNS event the notifier Lambda receives for ``message`` (for invoking it directly, concurrently)."""
    return sns_event(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": now(),
        }
    )


# ---- Stripe -------------------------------------------------------------------------------------------------


@contextmanager
def held_stripe_webhooks(emulator: StripeEmulator) -> Iterator[list[dict[str, Any]]]:
    """The local Stripe builds its webhook events (a paid Checkout's ``checkout.session.completed``) but does not
    send them: they are collected in the yielded list, so a test can deliver them later (``emulator.deliver``),
    several times at once, or after events that Stripe created later."""
    held: list[dict[str, Any]] = []
    lock = threading.Lock()

    def hold(event: dict[str, Any]) -> None:
        with lock:
            held.append(event)

    emulator.deliver = hold  # type: ignore[method-assign,assignment]
    try:
        yield held
    finally:
        del emulator.deliver


# ---- Lambda crashes -----------------------------------------------------------------------------------------


class LambdaCrashed(RuntimeError):
    """The function's process died here (out of memory, killed at its timeout): nothing after this line ran."""


class ResumeCrash:
    """The notifier dies after it settled the credits (committed) and before it resumed the execution: patches
    ``functions.common.pipeline._resume`` to raise :class:`LambdaCrashed` on its next ``times`` calls that resume
    with a success (``times=None``: every call). The notify queue then redelivers the SNS message."""

    def __init__(self, times: int | None = 1) -> None:
        self.times = times
        self.crashes = 0
        self._lock = threading.Lock()
        self._original: Callable[..., None] | None = None

    def __enter__(self) -> ResumeCrash:
        from functions.common import pipeline

        original = pipeline._resume
        self._original = original

        def crashing(sfn: Any, token: str, **kwargs: Any) -> None:
            if kwargs.get("success") is not None:
                with self._lock:
                    crash = self.times is None or self.crashes < self.times
                    if crash:
                        self.crashes += 1
                if crash:
                    raise LambdaCrashed("the notifier died after capturing, before resuming the execution")
            original(sfn, token, **kwargs)

        pipeline._resume = crashing
        return self

    def __exit__(self, *exc: object) -> None:
        from functions.common import pipeline

        if self._original is not None:
            pipeline._resume = self._original


# ---- database outage ----------------------------------------------------------------------------------------


class DatabaseOutage:
    """PostgreSQL unavailable to the application: as the owner, the application role loses ``LOGIN`` and its
    sessions are terminated (``pg_terminate_backend``), so cached connections break and new ones are refused,
    as in a failover or a restart. The owner (migrations, the tests' audits) still connects. ``end`` restores
    ``LOGIN``. Use as a context manager, or ``start``/``end`` (``end_after`` ends it from a timer)."""

    def __init__(self, admin_dsn: str | None = None) -> None:
        self._admin_dsn = admin_dsn
        self._lock = threading.Lock()
        self.active = False
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.sessions_terminated = 0
        self.ended = threading.Event()

    def _admin(self) -> psycopg.Connection[Any]:
        if self._admin_dsn is None:
            from functions.common import db

            self._admin_dsn = db.dsn(admin=True)
        return psycopg.connect(self._admin_dsn, autocommit=True)

    def start(self) -> None:
        with self._lock:
            if self.active:
                return
            with self._admin() as conn:
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(APP_ROLE)))
                for _ in range(50):  # until no session of the role is left (one may have been logging in)
                    rows = conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                        (APP_ROLE,),
                    ).fetchall()
                    if not rows:
                        break
                    self.sessions_terminated += len(rows)
                    time.sleep(0.02)
            self.active = True
            self.started_at = time.monotonic()
            self.ended.clear()

    def end(self) -> None:
        with self._lock:
            restore_database(self._admin_dsn)
            if self.active:
                self.ended_at = time.monotonic()
            self.active = False
            self.ended.set()

    def end_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.end)
        timer.daemon = True
        timer.start()
        return timer

    @property
    def seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    def __enter__(self) -> DatabaseOutage:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


def restore_database(admin_dsn: str | None = None) -> None:
    """Let the application role log in again (idempotent; a fixture's teardown calls it whatever happened)."""
    if admin_dsn is None:
        from functions.common import db

        admin_dsn = db.dsn(admin=True)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(APP_ROLE)))


@dataclass
class CallFault:
    """A hook on one local Lambda function (``LocalLambda.faults``): counts calls, acts on the chosen one."""

    function: str
    calls: int = 0
    fired: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def outage_on_call(
    lambdas: LocalLambda,
    function: str,
    outage: DatabaseOutage,
    seconds: float | None,
    *,
    on_call: int = 1,
    when: Callable[[Any], bool] | None = None,
) -> Iterator[CallFault]:
    """Start ``outage`` just before the ``on_call``-th invocation of ``function`` (whose event ``when`` accepts)
    runs, ending it ``seconds`` later (None: when the block exits). The outage ends on exit in any case."""
    hook = CallFault(function)

    def fault(event: Any) -> None:
        if when is not None and not when(event):
            return
        with hook.lock:
            hook.calls += 1
            fire = hook.calls == on_call
        if fire:
            outage.start()
            hook.fired.set()
            if seconds is not None:
                outage.end_after(seconds)

    previous = lambdas.faults.get(function)
    lambdas.faults[function] = fault
    try:
        yield hook
    finally:
        if previous is None:
            lambdas.faults.pop(function, None)
        else:
            lambdas.faults[function] = previous
        outage.end()


# ---- Step Functions retries -----------------------------------------------------------------------------------


@contextmanager
def fast_retries(scale: float) -> Iterator[None]:
    """Step Functions' retry waits (IntervalSeconds * BackoffRate^n, jittered) take ``scale`` of their time on
    moto's interpreter: the retry policy (which errors, how many attempts) is unchanged, the clock runs faster."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    original = retrier_decl.time
    fast = types.SimpleNamespace(sleep=lambda seconds: time.sleep(seconds * scale))
    retrier_decl.time = fast  # type: ignore[assignment]
    try:
        yield
    finally:
        retrier_decl.time = original


# ---- S3 events and queues -------------------------------------------------------------------------------------


UPLOAD_RULE = "modamoda-local-upload-created"


@dataclass
class S3EventCapture:
    """The S3 "Object Created" events of the upload bucket, held in a queue of their own instead of starting
    work, so a test can deliver them later: again, or in another order."""

    stack: LocalStack
    queue_url: str
    bodies: list[str] = field(default_factory=list)

    def take(self, count: int, timeout: float = 30.0) -> list[str]:
        """Wait until ``count`` events were captured (in arrival order) and return them."""
        sqs = self.stack.client("sqs")
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.bodies)} of {count} S3 events captured")
            for m in sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
                self.bodies.append(m["Body"])
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
            time.sleep(0.05)
        return list(self.bodies[:count])


@contextmanager
def captured_s3_events(stack: LocalStack) -> Iterator[S3EventCapture]:
    """Point the upload bucket's EventBridge rule at a holding queue for the block, then back at the start queue."""
    sqs, events = stack.client("sqs"), stack.client("events")
    url = sqs.create_queue(QueueName="modamoda-local-held-s3-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    targets = events.list_targets_by_rule(Rule=UPLOAD_RULE)["Targets"]
    events.remove_targets(Rule=UPLOAD_RULE, Ids=[t["Id"] for t in targets])
    events.put_targets(Rule=UPLOAD_RULE, Targets=[{"Id": "held", "Arn": arn}])
    try:
        yield S3EventCapture(stack, url)
    finally:
        events.remove_targets(Rule=UPLOAD_RULE, Ids=["held"])
        events.put_targets(Rule=UPLOAD_RULE, Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in targets])


def send_to_start_queue(stack: LocalStack, body: str) -> None:
    """Deliver an event (an EventBridge "Object Created" body) to the start-workflow queue."""
    stack.client("sqs").send_message(QueueUrl=stack.start_queue_url, MessageBody=body)


def queue_depth(stack: LocalStack, queue_name: str) -> int:
    """Messages in a queue of the stack, visible or in flight (e.g. ``modamoda-local-notify-dlq``)."""
    return stack.queue_depth(stack.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"])
