"""The GPU queue's dispatcher: started when a job is queued, when a result was settled (asynchronously, by the
enqueue function and the notifier) and every minute (EventBridge). Ends overdue queue entries, hands the next jobs
to the endpoint (lanes, round-robin across tenants, a capped number at the endpoint) and publishes the queue's
depth, which the endpoint's autoscaling follows."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, scheduler
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = scheduler.dispatch(aws.client("sagemaker-runtime"), aws.client("stepfunctions"))
    scheduler.publish(metrics.add_metric, metrics.add_dimension, result)
    return result.as_dict()
