"""State machine task: validate the uploaded image by content before any credit is reserved."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, pipeline
from functions.common.models import WorkflowInput
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.validate_input(aws.client("s3"), WorkflowInput.model_validate(event)).model_dump()
