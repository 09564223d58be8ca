"""Scheduled (EventBridge, every few minutes): release credit holds whose deadline has passed, and forget
processed Stripe events older than 30 days (Stripe retries a delivery for up to 3 days)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, billing, pipeline
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {
        **pipeline.sweep_expired_holds(aws.client("stepfunctions")),
        "stripe_events_pruned": billing.prune_events(),
    }
