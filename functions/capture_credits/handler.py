"""State machine task: spend the job's hold after a successful inference (idempotent); for ``RecordStudioResult``,
store the studio function's image first, as the notifier stores an async result."""

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
    return pipeline.capture_credits(SettleInput.model_validate(event)).model_dump()
