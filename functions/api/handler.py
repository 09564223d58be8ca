"""HTTP API (API Gateway HTTP API, Cognito JWT authorizer) for the PWA and machine clients."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import api_service, aws, billing, catalogs
from functions.common.errors import ModamodaError
from functions.common.models import (
    CheckoutRequest,
    CheckoutResponse,
    CreditBalance,
    CreditPackList,
    JobPage,
    JobView,
    LedgerPage,
    Me,
    UploadRequest,
    UploadResponse,
)
from functions.common.observability import logger, metrics, tracer
from functions.common.tenants import Identity

app = APIGatewayHttpResolver(enable_validation=True)


def caller() -> Identity:
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    return api_service.identity(claims)


@app.get("/v1/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/catalog/poses")
def pose_catalog() -> dict[str, Any]:
    """The pose library for on-model images (versioned; ``default`` is used when a job names none)."""
    return catalogs.load("poses")


@app.get("/v1/catalog/backgrounds")
def background_catalog() -> dict[str, Any]:
    """The background library (use ``"background": "library:<id>"`` in job options)."""
    return catalogs.load("backgrounds")


@app.get("/v1/me")
@tracer.capture_method
def get_me() -> Me:
    return api_service.me(caller())


@app.post("/v1/uploads")
@tracer.capture_method
def create_upload(request: Annotated[UploadRequest, Body()]) -> Response[UploadResponse]:
    created = api_service.create_upload(aws.client("s3"), caller(), request)
    metrics.add_metric(name="UploadsRequested", unit="Count", value=1)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


@app.get("/v1/jobs")
@tracer.capture_method
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobPage:
    return api_service.list_jobs(caller(), limit, cursor)


@app.get("/v1/jobs/<job_id>")
@tracer.capture_method
def get_job(job_id: str) -> JobView:
    return api_service.get_job(aws.client("s3"), caller(), job_id)


def stripe_client() -> Any:
    """The Stripe API client (module-level so tests can swap in one with a fake HTTP client)."""
    return billing.stripe_client()


@app.get("/v1/credits")
@tracer.capture_method
def get_credits() -> CreditBalance:
    return api_service.credit_balance(caller())


@app.get("/v1/credits/ledger")
@tracer.capture_method
def list_ledger(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> LedgerPage:
    return api_service.list_ledger(caller(), limit, cursor)


@app.get("/v1/credits/packs")
@tracer.capture_method
def list_packs() -> CreditPackList:
    return api_service.list_packs()


@app.post("/v1/credits/checkout")
@tracer.capture_method
def create_checkout(request: Annotated[CheckoutRequest, Body()]) -> Response[CheckoutResponse]:
    who = caller()
    key = app.current_event.headers.get("idempotency-key") or None
    created = api_service.checkout(stripe_client(), who, request, key[:255] if key else None)
    metrics.add_metric(name="CheckoutsCreated", unit="Count", value=1)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


@app.exception_handler(ModamodaError)
def domain_error(error: ModamodaError) -> Response[dict[str, Any]]:
    if error.http_status >= 500:
        logger.exception("request failed")
    return Response(
        status_code=error.http_status, content_type=content_types.APPLICATION_JSON, body=error.to_body()
    )


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
    details = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in error.errors()
    ]
    body = {"error": {"code": "validation_error", "message": "the request is not valid", "details": details}}
    return Response(status_code=422, content_type=content_types.APPLICATION_JSON, body=body)


@app.not_found
def not_found(error: NotFoundError) -> Response[dict[str, Any]]:
    body = {"error": {"code": "not_found", "message": f"no route {app.current_event.path}"}}
    return Response(status_code=404, content_type=content_types.APPLICATION_JSON, body=body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
