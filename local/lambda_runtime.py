"""In-process Lambda: dispatches ``lambda:Invoke`` calls (from moto's Step Functions interpreter or anyone using
boto3's default session) to the project's real handlers, with the Lambda service's error contract
(``FunctionError: Unhandled`` and an ``errorType``/``errorMessage`` payload).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

ACCOUNT = "123456789012"
REGION = "us-east-1"

# Lambda function name (as deployed locally) → handler path, exactly the handler strings CDK configures.
FUNCTIONS: dict[str, str] = {
    "modamoda-api": "functions.api.handler.lambda_handler",
    "modamoda-start-workflow": "functions.start_workflow.handler.lambda_handler",
    "modamoda-validate-input": "functions.validate_input.handler.lambda_handler",
    "modamoda-reserve-credits": "functions.reserve_credits.handler.lambda_handler",
    "modamoda-enqueue-inference": "functions.enqueue_inference.handler.lambda_handler",
    "modamoda-dispatch-inference": "functions.dispatch_inference.handler.lambda_handler",
    "modamoda-capture-credits": "functions.capture_credits.handler.lambda_handler",
    "modamoda-release-credits": "functions.release_credits.handler.lambda_handler",
    "modamoda-notifier": "functions.notifier.handler.lambda_handler",
    "modamoda-billing": "functions.billing.handler.lambda_handler",
    "modamoda-webhooks": "functions.webhooks.handler.lambda_handler",
    # the studio engine's function (a container image in AWS: inference_container/Dockerfile.lambda's CMD)
    "modamoda-studio-engine": "modamoda_inference.lambda_handler.handler",
}

# ASL placeholders → local function names (CDK substitutes the deployed ARNs for the same placeholders).
ASL_SUBSTITUTIONS: dict[str, str] = {
    "ValidateInputFunctionArn": "modamoda-validate-input",
    "ReserveCreditsFunctionArn": "modamoda-reserve-credits",
    "EnqueueInferenceFunctionArn": "modamoda-enqueue-inference",
    "CaptureCreditsFunctionArn": "modamoda-capture-credits",
    "ReleaseCreditsFunctionArn": "modamoda-release-credits",
    "StudioEngineFunctionArn": "modamoda-studio-engine",
}
# The ASL placeholder of where the engines write each job's metadata document (infra/pipeline.py gives the results
# bucket's in AWS): s3://{results bucket}/inference/metadata/ (functions/common/pipeline.py METADATA_PREFIX).
METADATA_PREFIX_KEY = "InferenceMetadataS3Prefix"

# The AWS partition the emulated account lives in (CDK substitutes the stack's partition for ${Partition}).
PARTITION = "aws"

log = logging.getLogger("modamoda.local.lambda")


def function_arn(name: str) -> str:
    return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}"


def asl_values(results_bucket: str) -> dict[str, str]:
    """Every ``${...}`` placeholder of the state machine file → its local value (infra/pipeline.py gives the
    deployed ones): the task functions' ARNs, the partition and the results bucket's metadata prefix."""
    from functions.common.pipeline import METADATA_PREFIX

    return {
        "Partition": PARTITION,
        **{key: function_arn(name) for key, name in ASL_SUBSTITUTIONS.items()},
        METADATA_PREFIX_KEY: f"s3://{results_bucket}/{METADATA_PREFIX}",
    }


@dataclass
class LambdaContext:
    """The attributes powertools reads from the real Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    timeout_ms: int = 900_000

    @property
    def invoked_function_arn(self) -> str:
        return function_arn(self.function_name)

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


@dataclass(frozen=True)
class Invocation:
    function: str
    payload: Any
    error_type: str | None
    seconds: float


class LocalLambda:
    """Calls handlers in-process; records every invocation (tests and the demo's per-stage timings read it).

    Each function is one warm container: its invocations run one at a time, as Lambda never runs two requests in
    one execution environment. Handlers may keep per-invocation state in module globals (powertools' resolver
    keeps the current event on the app object); two concurrent API requests in one process would otherwise read
    each other's caller. Different functions run concurrently.
    """

    def __init__(self, functions: dict[str, str] | None = None) -> None:
        self._paths = dict(functions or FUNCTIONS)
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._lock = threading.Lock()
        self._containers: dict[str, threading.Lock] = {}  # function → its one execution environment
        self.invocations: list[Invocation] = []
        self.faults: dict[str, Callable[[Any], None]] = {}  # function → hook run before the handler (tests)
        self.throttles: dict[str, int] = {}  # function → how many next invokes Lambda refuses (429, tests)

    def handler(self, name: str) -> Callable[[Any, Any], Any]:
        with self._lock:
            if name not in self._handlers:
                if name not in self._paths:
                    raise KeyError(f"no local Lambda function named {name!r}")
                module_name, attr = self._paths[name].rsplit(".", 1)
                self._handlers[name] = getattr(importlib.import_module(module_name), attr)
            return self._handlers[name]

    def _container(self, name: str) -> threading.Lock:
        with self._lock:
            return self._containers.setdefault(name, threading.Lock())

    def invoke(self, name: str, event: Any) -> tuple[Any, str | None]:
        """Run the handler; returns (payload, error_type) like the Lambda service's synchronous invoke."""
        import time

        error_type: str | None = None
        with self._container(name):
            started = time.perf_counter()
            try:
                fault = self.faults.get(name)
                if fault is not None:
                    fault(event)
                result = self.handler(name)(event, LambdaContext(function_name=name))
            except Exception as exc:  # the Lambda runtime turns any exception into a function error
                error_type = type(exc).__name__
                result = {
                    "errorType": error_type,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-5:],
                }
                log.info("function %s failed: %s: %s", name, error_type, exc)
            finally:
                _release_database_connection()
                _discard_unpublished_metrics()
        with self._lock:
            self.invocations.append(Invocation(name, event, error_type, time.perf_counter() - started))
        return result, error_type

    # botocore hook: short-circuits lambda.Invoke before any HTTP request is made.
    def _before_call(
        self, model: Any, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]]:
        name = unquote(params["url_path"].split("/")[3])  # a name, or a URL-encoded ARN
        name = name.split(":")[6] if name.startswith("arn:") else name
        self._refuse_if_throttled(name)
        body = params.get("body") or b"{}"
        event = json.loads(body.decode() if isinstance(body, bytes) else body)
        result, error_type = self.invoke(name, event)
        raw = json.dumps(result, default=str).encode()
        parsed: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": StreamingBody(io.BytesIO(raw), len(raw)),
            "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0},
        }
        if error_type:
            parsed["FunctionError"] = "Unhandled"
        return AWSResponse(function_arn(name), 200, {}, None), parsed

    def _refuse_if_throttled(self, name: str) -> None:
        """Lambda's answer when a function is at its concurrency limit: 429 ``TooManyRequestsException`` (Step
        Functions names it ``Lambda.TooManyRequestsException``); the handler is not run."""
        with self._lock:
            left = self.throttles.get(name, 0)
            if left <= 0:
                return
            self.throttles[name] = left - 1
        raise ClientError(
            {
                "Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."},
                "ResponseMetadata": {"HTTPStatusCode": 429, "RequestId": str(uuid.uuid4())},
            },
            "Invoke",
        )

    def install(self, session: boto3.Session | None = None) -> None:
        session = session or _default_session()
        session.events.register(
            "before-call.lambda.Invoke", self._before_call, unique_id="modamoda-local-lambda"
        )

    def uninstall(self, session: boto3.Session | None = None) -> None:
        session = session or _default_session()
        session.events.unregister("before-call.lambda.Invoke", unique_id="modamoda-local-lambda")


def _release_database_connection() -> None:
    """Close the calling thread's database connection after each invocation. moto runs every execution on a
    thread of its own, and a thread that waits for a task token would otherwise keep its connection open: a bulk
    drop of hundreds of photos exhausted PostgreSQL's connection slots. (A Lambda container keeps its connection;
    here a reconnect over the local socket costs a few milliseconds.)"""
    from functions.common import db

    db.reset()


def _discard_unpublished_metrics() -> None:
    """With metrics disabled (the local stack sets ``POWERTOOLS_METRICS_DISABLED``), powertools never clears the
    values the handlers add, and prints them all as EMF once 100 have piled up; in AWS each invocation flushes its
    own. Drop them after each invocation (the dispatcher, run every half second here, adds five a run)."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    from functions.common.observability import metrics

    if is_metrics_disabled():
        metrics.clear_metrics()


def _default_session() -> boto3.Session:
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    return boto3.DEFAULT_SESSION
