"""Stripe webhooks: ``POST /v1/billing/stripe/webhook`` (API Gateway HTTP API, payload 2.0, no JWT: Stripe signs
each delivery). 200 when the event was processed, was a duplicate or is ignored; 400 when the signature or the
body is bad (nothing changed); 500 on transient failures, so Stripe retries the delivery."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import billing
from functions.common.errors import ModamodaError
from functions.common.observability import logger, metrics, tracer


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def raw_body(event: dict[str, Any]) -> bytes:
    """The request body exactly as Stripe sent it (the signature covers these bytes)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ModamodaError("the body is not valid base64", code="invalid_payload") from exc
    return body.encode("utf-8")


@tracer.capture_method
def handle(event: dict[str, Any]) -> dict[str, Any]:
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        result = billing.handle_webhook(raw_body(event), headers.get("stripe-signature"))
    except ModamodaError as error:
        if error.http_status >= 500:
            logger.exception("webhook failed; Stripe will retry", extra={"code": error.code})
            return respond(500, error.to_body())
        logger.warning("webhook refused", extra={"code": error.code, "reason": error.message})
        metrics.add_metric(name="StripeWebhooksRefused", unit="Count", value=1)
        return respond(400, error.to_body())
    except Exception:
        logger.exception("webhook failed; Stripe will retry")
        return respond(500, {"error": {"code": "internal", "message": "the event could not be processed"}})
    logger.info(
        "stripe event",
        extra={
            "event_id": result.event_id,
            "type": result.type,
            "status": result.status,
            "detail": result.detail,
        },
    )
    metrics.add_metric(name=f"StripeEvents{result.status.capitalize()}", unit="Count", value=1)
    return respond(
        200, {"received": True, "id": result.event_id, "type": result.type, "status": result.status}
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event)
