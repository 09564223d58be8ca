"""In-process Lambda: dispatches ``lambda:Invoke`` calls (from moto's Step Functions interpreter or anyone using
boto3's default session) to the project's real handlers, with the Lambda service's error contract
(``FunctionError: Unhandled`` and an ``errorType``/``errorMessage`` payload).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import logging
import threading
import time
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


# How many execution environments each function may have at once here (Lambda scales a function out to as many as
# its concurrent requests, up to the account's limit; a thread per environment on one machine needs a cap).
DEFAULT_ENVIRONMENTS = 4
# Functions kept to one environment: the studio engine's module holds the engine the stack loads into it
# (``modamoda_inference.lambda_handler.configure``); a second copy would have none.
SINGLE_ENVIRONMENT: frozenset[str] = frozenset({"modamoda-studio-engine"})


@dataclass
class _Environment:
    """One execution environment: its own copy of the handler's module (and so of its module globals)."""

    handler: Callable[[Any, Any], Any]
    index: int


class _Function:
    """A function's execution environments: an invocation takes a free one (the first, warmest, when it is free),
    starting a new one while fewer than ``limit`` exist, and waits for one otherwise."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free: list[_Environment] = []
        self.started = 0
        self.cond = threading.Condition()


class LocalLambda:
    """Calls handlers in-process; records every invocation (tests and the demo's per-stage timings read it).

    Like Lambda, each function runs concurrent requests in separate execution environments, one request at a time
    in each: handlers keep per-invocation state in module globals (powertools' resolver keeps the current event on
    the app object, the SQS batch processor its records), so each environment past the first loads the handler's
    module afresh (the first uses the imported module, which tests may patch). ``environments`` caps how many one
    function may have (``SINGLE_ENVIRONMENT``'s have one). Asynchronous invokes (``InvocationType=Event``) are
    accepted at once (202) and run on a thread of their own, as the Lambda service queues them.
    """

    def __init__(
        self, functions: dict[str, str] | None = None, environments: int = DEFAULT_ENVIRONMENTS
    ) -> None:
        if environments < 1:
            raise ValueError(f"environments must be 1 or more, got {environments}")
        self._paths = dict(functions or FUNCTIONS)
        self._environments = environments
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}
        self._async: set[threading.Thread] = set()
        self.invocations: list[Invocation] = []
        self.faults: dict[str, Callable[[Any], None]] = {}  # function → hook run before the handler (tests)
        self.throttles: dict[str, int] = {}  # function → how many next invokes Lambda refuses (429, tests)

    def handler(self, name: str) -> Callable[[Any, Any], Any]:
        """The handler as imported (the first execution environment's)."""
        with self._lock:
            if name not in self._handlers:
                module_name, attr = self._path(name)
                self._handlers[name] = getattr(importlib.import_module(module_name), attr)
            return self._handlers[name]

    def _path(self, name: str) -> tuple[str, str]:
        if name not in self._paths:
            raise KeyError(f"no local Lambda function named {name!r}")
        module_name, attr = self._paths[name].rsplit(".", 1)
        return module_name, attr

    def _fresh_handler(self, name: str) -> Callable[[Any, Any], Any]:
        """The handler from a new copy of its module (not registered in ``sys.modules``; the modules it imports
        are shared, as the project's code and libraries are in one image)."""
        module_name, attr = self._path(name)
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.loader is None:
            raise KeyError(f"no module {module_name!r} for local Lambda function {name!r}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        handler: Callable[[Any, Any], Any] = getattr(module, attr)
        return handler

    def _function(self, name: str) -> _Function:
        with self._lock:
            if name not in self._functions:
                limit = 1 if name in SINGLE_ENVIRONMENT else self._environments
                self._functions[name] = _Function(limit)
            return self._functions[name]

    def _acquire(self, name: str) -> _Environment:
        function = self._function(name)
        with function.cond:
            while not function.free and function.started >= function.limit:
                function.cond.wait()
            if function.free:
                function.free.sort(key=lambda env: env.index)
                return function.free.pop(0)
            index = function.started
            function.started += 1
        try:
            handler = self.handler(name) if index == 0 else self._fresh_handler(name)
        except BaseException:
            with function.cond:
                function.started -= 1
                function.cond.notify()
            raise
        return _Environment(handler, index)

    def _release(self, name: str, environment: _Environment) -> None:
        function = self._function(name)
        with function.cond:
            function.free.append(environment)
            function.cond.notify()

    def invoke(self, name: str, event: Any) -> tuple[Any, str | None]:
        """Run the handler; returns (payload, error_type) like the Lambda service's synchronous invoke."""
        error_type: str | None = None
        environment: _Environment | None = None
        started = time.perf_counter()
        try:
            environment = self._acquire(name)
            started = time.perf_counter()
            fault = self.faults.get(name)
            if fault is not None:
                fault(event)
            result = environment.handler(event, LambdaContext(function_name=name))
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
            if environment is not None:
                self._release(name, environment)
        with self._lock:
            self.invocations.append(Invocation(name, event, error_type, time.perf_counter() - started))
        return result, error_type

    def invoke_async(self, name: str, event: Any) -> threading.Thread:
        """An ``InvocationType=Event`` invoke: runs on its own thread; the caller does not wait for it."""

        def run() -> None:
            try:
                self.invoke(name, event)
            finally:
                with self._lock:
                    self._async.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"lambda-async-{name}", daemon=True)
        with self._lock:
            self._async.add(thread)
        thread.start()
        return thread

    def drain(self, timeout: float = 10.0) -> None:
        """Wait for the asynchronous invocations still running (a stack stops only after them)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._async)
            if not pending:
                return
            for thread in pending:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return

    # botocore hook: short-circuits lambda.Invoke before any HTTP request is made.
    def _before_call(
        self, model: Any, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]]:
        name = unquote(params["url_path"].split("/")[3])  # a name, or a URL-encoded ARN
        name = name.split(":")[6] if name.startswith("arn:") else name
        self._refuse_if_throttled(name)
        body = params.get("body") or b"{}"
        event = json.loads(body.decode() if isinstance(body, bytes) else body)
        if _header(params, "X-Amz-Invocation-Type") == "Event":
            self.invoke_async(name, event)
            return AWSResponse(function_arn(name), 202, {}, None), {
                "StatusCode": 202,
                "Payload": StreamingBody(io.BytesIO(b""), 0),
                "ResponseMetadata": {"HTTPStatusCode": 202, "HTTPHeaders": {}, "RetryAttempts": 0},
            }
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


def _header(params: dict[str, Any], name: str) -> str | None:
    headers = params.get("headers") or {}
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


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
