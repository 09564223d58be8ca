"""State machine task: return the job's hold on rejection, failure or timeout, and record why (idempotent)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import pipeline
from functions.common.models import SettleInput
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.release_credits(SettleInput.model_validate(event)).model_dump()
