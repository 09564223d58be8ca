"""State machine task (RunInference, waitForTaskToken): the job joins the GPU queue with its task token (the
request document written to S3), then the dispatcher is started; the notifier resumes the execution."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, scheduler
from functions.common.models import EnqueueInput
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    queued = scheduler.enqueue(aws.client("s3"), EnqueueInput.model_validate(event))
    scheduler.kick(aws.client("lambda"), "enqueued")
    return queued
