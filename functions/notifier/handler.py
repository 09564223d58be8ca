"""SNS (SageMaker async success/error topics) → record result, settle credits, resume the waiting execution; then
start the GPU queue's dispatcher (a place at the endpoint is free)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, pipeline, scheduler
from functions.common.models import AsyncInferenceNotification
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=SNSEvent)
def lambda_handler(event: SNSEvent, context: LambdaContext) -> dict[str, Any]:
    outcomes = [notify(record.sns.message) for record in event.records]
    scheduler.kick(aws.client("lambda"), "settled")
    return {"outcomes": outcomes}


def notify(message: str) -> str:
    note = AsyncInferenceNotification.model_validate_json(message)
    outcome = pipeline.handle_inference_notification(aws.client("s3"), aws.client("stepfunctions"), note)
    metrics.add_metric(name=f"Inference_{outcome}", unit="Count", value=1)
    return outcome
