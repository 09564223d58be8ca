"""CloudFormation custom resource: apply the SQL migrations on every deploy (idempotent, advisory-locked)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import db
from functions.common.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("RequestType") == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", "modamoda-schema")}
    applied = db.migrate()
    logger.info("migrations applied", extra={"applied": applied})
    return {"PhysicalResourceId": "modamoda-schema", "Data": {"Applied": ",".join(applied) or "none"}}
