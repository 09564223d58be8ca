"""SQS (EventBridge "Object Created" events from the uploads and drop buckets) → one workflow execution per
upload or dropped file (a drop folder's manifest updates its batch)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, pipeline
from functions.common.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> str | None:
    event = json.loads(record.body)
    name = pipeline.start_workflow(aws.client("stepfunctions"), event["detail"], aws.client("s3"))
    if name:
        metrics.add_metric(name="WorkflowsStarted", unit="Count", value=1)
    return name


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
