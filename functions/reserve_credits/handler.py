"""State machine task: hold the job's credits (idempotent per job); InsufficientCredits ends the job cleanly."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import pipeline
from functions.common.models import ReserveInput
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.reserve_credits(ReserveInput.model_validate(event))
