"""The SageMaker asynchronous-inference contract for the inference container's own HTTP server on localhost.

``InvokeEndpointAsync`` is answered here (moto returns canned results and never notifies): the request is queued,
a worker reads the input object from S3, POSTs it to ``/invocations``, writes the response to the output
location (or the failure location) and publishes the documented notification JSON to the success or error SNS
topic — the same message the notifier Lambda receives in the cloud.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import requests
from botocore.awsrequest import AWSResponse

from functions.common.storage import split_s3_uri

log = logging.getLogger("modamoda.local.sagemaker")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(
    inference_id: str,
    input_location: str,
    *,
    content_type: str,
    output_location: str | None = None,
    failure: tuple[int, str] | None = None,
    failure_location: str | None = None,
    endpoint_name: str = "",
    region: str = "us-east-1",
    received: str | None = None,
    request_content_type: str = "application/json",
) -> dict[str, Any]:
    """SageMaker's async completion notification (the documented JSON): ``Completed`` with ``output_location``,
    or ``Failed`` with ``failure`` = (the model's HTTP status, the start of its answer)."""
    message: dict[str, Any] = {
        "awsRegion": region,
        "receivedTime": received or now(),
        "inferenceId": inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
        "requestParameters": {
            "contentType": request_content_type,
            "endpointName": endpoint_name,
            "inputLocation": input_location,
        },
        "eventTime": now(),
    }
    if failure is None:
        message["invocationStatus"] = "Completed"
        message["responseParameters"] = {"contentType": content_type, "outputLocation": output_location}
        return message
    status, detail = failure
    kind = "client" if 400 <= status < 500 else "server"
    message["invocationStatus"] = "Failed"
    message["failureReason"] = (
        f'ClientError: Received {kind} error ({status}) from model with message "{detail}". '
        "See the SageMaker Endpoint logs in your account for more information."
    )
    message["responseParameters"] = {
        "contentType": content_type,
        **({"failureLocation": failure_location} if failure_location else {}),
    }
    return message


@dataclass(frozen=True)
class AsyncEndpointConfig:
    endpoint_name: str
    container_url: str  # e.g. http://127.0.0.1:8080
    output_path: str  # s3://bucket/inference/output
    failure_path: str  # s3://bucket/inference/failure
    success_topic_arn: str
    error_topic_arn: str
    region: str = "us-east-1"
    invocation_timeout_seconds: float = 600.0
    # A slow engine of known duration (benchmarks): every invocation lasts at least this long; the worker waits
    # out whatever the container's answer left of it before writing the output and notifying. 0: no wait.
    min_invocation_seconds: float = 0.0


@dataclass(frozen=True)
class Invocation:
    """One invocation the worker ran: its inference id (the job id) and when it started and finished
    (``time.monotonic()``, finished = just before the notification is published)."""

    inference_id: str
    started: float
    finished: float


class LocalAsyncEndpoint:
    """One endpoint, one instance, one invocation at a time (MaxConcurrentInvocationsPerInstance = 1)."""

    def __init__(self, config: AsyncEndpointConfig) -> None:
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sagemaker-async")
        self.futures: list[Future[str]] = []
        self.drop_notifications = False  # fault injection: the notification never arrives
        self.dropped: list[tuple[str, str]] = []  # (topic, message) of each dropped notification (send late)
        self.fail_with: tuple[int, str] | None = None  # fault injection: the model answers with this error
        self.fail_code = "injected"  # ... with this code
        self.fail_details: dict[str, Any] | None = None  # ... and these details
        self.invocations: list[Invocation] = []  # every invocation run, in the order they finished
        self._lock = threading.Lock()

    # botocore hook for sagemaker-runtime InvokeEndpointAsync
    def _before_call(
        self, model: Any, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]]:
        headers = {k.lower(): v for k, v in params.get("headers", {}).items()}
        endpoint = params["url_path"].split("/")[2]
        if endpoint != self.config.endpoint_name:
            raise ValueError(f"no local async endpoint named {endpoint!r}")
        inference_id = headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
        input_location = headers["x-amzn-sagemaker-inputlocation"]
        content_type = headers.get("x-amzn-sagemaker-content-type", "application/json")
        output = f"{self.config.output_path.rstrip('/')}/{inference_id}.out"
        failure = f"{self.config.failure_path.rstrip('/')}/{inference_id}-error.out"
        received = now()
        with self._lock:
            self.futures.append(
                self._pool.submit(
                    self._run, inference_id, input_location, content_type, output, failure, received
                )
            )
        parsed = {
            "InferenceId": inference_id,
            "OutputLocation": output,
            "FailureLocation": failure,
            "ResponseMetadata": {"HTTPStatusCode": 202, "HTTPHeaders": {}, "RetryAttempts": 0},
        }
        return AWSResponse(self.config.container_url, 202, {}, None), parsed

    def _run(
        self,
        inference_id: str,
        input_location: str,
        content_type: str,
        output: str,
        failure: str,
        received: str,
    ) -> str:
        started = time.monotonic()
        s3 = boto3.client("s3", region_name=self.config.region)
        sns = boto3.client("sns", region_name=self.config.region)
        try:
            bucket, key = split_s3_uri(input_location)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if self.fail_with is not None:
                status, text = self.fail_with
                error: dict[str, Any] = {"code": self.fail_code, "message": text}
                if self.fail_details:
                    error["details"] = self.fail_details
                response_body, response_type = json.dumps({"error": error}).encode(), "application/json"
            else:
                response = requests.post(
                    f"{self.config.container_url}/invocations",
                    data=body,
                    headers={"Content-Type": content_type, "X-Amzn-SageMaker-Inference-Id": inference_id},
                    timeout=self.config.invocation_timeout_seconds,
                )
                status, response_body = response.status_code, response.content
                response_type = response.headers.get("Content-Type", "application/octet-stream")
        except Exception as exc:  # the container is unreachable or timed out: SageMaker reports a failure
            log.warning("inference %s could not run: %s", inference_id, exc)
            status, response_body, response_type = 500, str(exc).encode(), "text/plain"
        left = self.config.min_invocation_seconds - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)
        describe = functools.partial(
            notification,
            inference_id,
            input_location,
            endpoint_name=self.config.endpoint_name,
            region=self.config.region,
            received=received,
            request_content_type=content_type,
        )
        if 200 <= status < 300:
            out_bucket, out_key = split_s3_uri(output)
            s3.put_object(Bucket=out_bucket, Key=out_key, Body=response_body, ContentType=response_type)
            message = describe(content_type=response_type, output_location=output)
            topic = self.config.success_topic_arn
        else:
            fail_bucket, fail_key = split_s3_uri(failure)
            s3.put_object(Bucket=fail_bucket, Key=fail_key, Body=response_body, ContentType=response_type)
            message = describe(
                content_type=response_type,
                failure=(status, response_body[:512].decode("utf-8", "replace")),
                failure_location=failure,
            )
            topic = self.config.error_topic_arn
        with self._lock:
            self.invocations.append(Invocation(inference_id, started, time.monotonic()))
        if self.drop_notifications:
            with self._lock:
                self.dropped.append((topic, json.dumps(message)))
        else:
            sns.publish(TopicArn=topic, Message=json.dumps(message))
        return str(message["invocationStatus"])

    def install(self, session: boto3.Session) -> None:
        session.events.register(
            "before-call.sagemaker-runtime.InvokeEndpointAsync",
            self._before_call,
            unique_id="modamoda-local-sm",
        )

    def uninstall(self, session: boto3.Session) -> None:
        session.events.unregister(
            "before-call.sagemaker-runtime.InvokeEndpointAsync", unique_id="modamoda-local-sm"
        )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
