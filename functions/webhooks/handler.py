"""SQS (the webhooks queue) → one delivery attempt per message: a signed customer webhook or a batch e-mail (SES).

Retries are scheduled by re-enqueueing with a delay (``functions/common/notifications.py``); a record fails here
only when a dependency (the database) is unavailable, and SQS then redelivers it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, notifications
from functions.common.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    outcome = notifications.handle_message(record.body, sqs=aws.client("sqs"), ses=aws.client("ses"))
    metrics.add_metric(name=f"Notification_{outcome}", unit="Count", value=1)
    return outcome


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
