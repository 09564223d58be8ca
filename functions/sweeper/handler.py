"""Scheduled (EventBridge, every few minutes): release credit holds whose deadline has passed, end the GPU queue's
overdue entries (``queue_timeout``, ``inference_timeout``; the dispatcher does too), end jobs whose photo
never arrived (``upload_expired``), re-send notifications whose queue message never left or was lost, and forget
processed Stripe events older than 30 days (Stripe retries a delivery for up to 3 days)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, billing, db, notifications, pipeline, scheduler
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sfn = aws.client("stepfunctions")
    queue_expired = scheduler.expire_overdue(sfn)  # first: a queue timeout ends before its hold's deadline
    swept = pipeline.sweep_expired_holds(sfn)
    try:
        uploads_expired = pipeline.sweep_expired_uploads()
        dispatched = notifications.sweep(aws.client("sqs"))
    finally:
        db.reset()  # no idle connection between runs (an idle Aurora Serverless v2 cluster can pause)
    return {
        **swept,
        "queue_expired": queue_expired,
        "uploads_expired": uploads_expired,
        "notifications_dispatched": dispatched,
        "stripe_events_pruned": billing.prune_events(),
    }
