"""State machine task (waitForTaskToken): submit the job to the SageMaker async endpoint, InferenceId = job id."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import aws, pipeline
from functions.common.models import InvokeInput
from functions.common.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.invoke_inference(
        aws.client("s3"), aws.client("sagemaker-runtime"), InvokeInput.model_validate(event)
    )
