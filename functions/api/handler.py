"""HTTP API (API Gateway HTTP API, Cognito JWT authorizer) for the PWA and machine clients.

The OpenAPI document (``openapi.json``, ``scripts/openapi.py``) is generated from these routes and their models.
Every error has the body ``{"error": {"code", "message", "details"?}}``.
"""

import base64
import binascii
import json
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.common import (
    api_service,
    aws,
    billing,
    capabilities,
    catalogs,
    notifications,
    presets,
    rerender,
)
from functions.common.errors import ModamodaError
from functions.common.models import (
    Account,
    AccountUpdate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRequest,
    ArchiveLink,
    ArchiveRequest,
    BatchPage,
    BatchRequest,
    BatchUploadRequest,
    BatchUploadResponse,
    BatchView,
    Capabilities,
    CheckoutRequest,
    CheckoutResponse,
    CreditBalance,
    CreditPackList,
    DeliveryStatus,
    DownloadLink,
    ErrorBody,
    Health,
    JobCreated,
    JobPage,
    JobView,
    LedgerPage,
    Me,
    Mode,
    PublicPackList,
    RerenderRequest,
    UploadRequest,
    UploadResponse,
    WebhookCreated,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookRequest,
)
from functions.common.observability import logger, metrics, tracer
from functions.common.tenants import Identity


def json_body(text: str) -> Any:
    """The request body as JSON. What ``json.loads`` refuses other than by ``JSONDecodeError`` (nesting deeper
    than the interpreter's recursion limit, an integer of more than 4,300 digits) is a ``JSONDecodeError`` too, so
    powertools answers 422 ``validation_error`` instead of 500."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("the JSON is nested too deeply", text, 0) from None
    except ValueError as exc:
        raise json.JSONDecodeError(f"the JSON cannot be read: {str(exc)[:100]}", text, 0) from None


app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=json_body)

TITLE = "Modamoda API"
VERSION = "1.0.0"
DESCRIPTION = """Garment photos to e-commerce product images (ghost mannequin and on-model).

**Authentication**: every operation but `GET /v1/health` and `GET /v1/public/packs` needs a Cognito access
token of the web app client as `Authorization: Bearer <token>`. People sign in with their e-mail and password; machines use an API key
(`mmk_<id>_<secret>`, see `POST /v1/account/api-keys`) as the password of the Cognito user
`apikey-<id>@api-keys.modamoda.invalid` (InitiateAuth `USER_PASSWORD_AUTH`). API Gateway itself answers a missing
or expired token with 401 `{"message": "Unauthorized"}`. A new account (its tenant and welcome credits) starts on
the first call after the user's e-mail address is confirmed; before that every operation answers 403
`email_not_verified`.

**Jobs**: `POST /v1/jobs` creates a job and a pre-signed S3 upload; processing starts when the upload lands. Poll
`GET /v1/jobs/{job_id}` (or the list) for `status` and `progress`. An upload link expires after a few minutes:
`POST /v1/jobs/{job_id}/upload` gives a fresh one while the job still waits for its photo; a job whose photo has
not arrived 24 hours after its newest link ends `cancelled` with `upload_expired` (nothing is charged).

**Batches** (bulk): `POST /v1/batches` creates a batch whose drop folder is `drop/{tenant}/{batch}/` in the drop
bucket; upload files (and optionally a `manifest.json` or `manifest.csv` first, naming every file with its SKU,
mode and options) with `POST /v1/batches/{batch_id}/uploads`, then `POST .../seal` if there is no manifest. Each
file becomes one job; results are `results/{tenant}/{batch}/{sku or file stem}-{mode}.{ext}` with a report (CSV
and JSON) once the batch has finished.

**Priority and lanes**: work for the GPU (on-model images, and any other diffusion work) waits in our queue, in
three lanes served in order: `interactive` (single jobs: `POST /v1/jobs`, re-render, retry), then `normal` (files of
a batch made with `POST /v1/batches`), then `bulk` (files written straight into a drop folder, and every job with
`priority: "low"`). Within a lane customers take turns (round-robin), each customer's jobs in the order they
arrived, so one customer's large batch never holds up another's photo. `priority: "normal"` (the default) leaves a
job in the lane its kind gives it; `priority: "low"` puts it in the `bulk` lane. A job's `lane` is in its view. A
job that cannot start within its lane's bound (deployment settings `QUEUE_WAIT_SECONDS` for single jobs, default 1
hour; `BATCH_QUEUE_WAIT_SECONDS` for batch files, default 24 hours) ends `failed` with `queue_timeout`, its credits
returned; once started it has the inference timeout. Ghost packshots are made in seconds without this queue.
Priority never changes the price.

**Errors**: every error has the body `{"error": {"code": "<snake_case>", "message": "...", "details": [...]}}`;
`422 validation_error` lists each problem in `details`.
"""
BEARER = "bearerAuth"
AUTH: list[dict[str, list[str]]] = [{BEARER: []}]

_ERROR_DESCRIPTIONS = {
    401: "Not signed in: a missing, expired or revoked token. (API Gateway's own answer is "
    '`{"message": "Unauthorized"}`.)',
    402: "Not enough credits",
    403: "Not allowed for this caller: an account whose e-mail address is not confirmed yet (`email_not_verified`: "
    "no account and no welcome credits before it is), or an API key managing API keys (`forbidden`)",
    404: "Not found, or owned by another account (`not_found`)",
    409: "Conflict with the resource's state",
    415: "The body is not JSON (`unsupported_media_type`)",
    422: "The request is not valid (`validation_error`, with `details`)",
    502: "A payment provider refused the request",
    503: "A dependency is busy or unavailable; retry with backoff (`transient`)",
}


_GATEWAY_401 = {
    "type": "object",
    "properties": {"message": {"type": "string", "const": "Unauthorized"}},
    "required": ["message"],
}


def documented(
    status: int, description: str, *errors: int, public: bool = False, validates: bool = True
) -> dict[str, Any]:
    """Route options that document the success response (its body from the return type), the errors this route
    can answer with (all with the error body; 422 where it takes input), and the bearer token it needs."""
    responses: dict[int, OpenAPIResponse] = {status: {"description": description}}
    if status == HTTPStatus.NO_CONTENT:
        responses[status] = {
            "description": description,
            "content": {},
        }  # no body (emptied in openapi_document)
    codes = set(errors) | ({422} if validates else set()) | (set() if public else {403, 503})
    for code in sorted(codes):
        responses[code] = {
            "description": _ERROR_DESCRIPTIONS[code],
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
    if not public:
        responses[401] = {
            "description": _ERROR_DESCRIPTIONS[401],
            "content": {
                content_types.APPLICATION_JSON: {
                    "schema": {"anyOf": [{"$ref": "#/components/schemas/ErrorBody"}, _GATEWAY_401]}
                }
            },
        }
    options: dict[str, Any] = {"responses": responses}
    if not public:
        options["security"] = AUTH
    return options


def caller() -> Identity:
    """The caller, authenticated by ``authenticate`` before the route ran (or now, when called outside it)."""
    who = app.context.get("identity")
    if isinstance(who, Identity):
        return who
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    return api_service.identity(claims)


def authenticate(event: dict[str, Any]) -> dict[str, Any] | None:
    """Resolve the caller of a request with a token before anything else: a token the authorizer passed but the
    API refuses (not an access token, a revoked API key) is a 401 on every route, whatever the input, never a
    422 about the body nor an answer from a route that does not read the caller (catalogs). An error response,
    or None with the identity in the routing context."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims")
    app.clear_context()
    if not claims:  # public routes: no authorizer
        return None
    try:
        app.append_context(identity=api_service.identity(claims))
    except Exception as error:  # answered as the resolver's exception handlers answer
        return _raw_error(*failure(error))
    return None


def created(body: Any) -> Response[Any]:
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


def no_content() -> Response[None]:
    return Response(status_code=204, body=None)


JobId = Annotated[str, Path(description="the job's id (a UUID)", max_length=64)]

# ---- health and catalogs ----------------------------------------------------------------------------------------


@app.get(
    "/v1/health",
    operation_id="getHealth",
    tags=["system"],
    summary="Liveness (no token needed)",
    **documented(200, "The API answers", public=True, validates=False),
)
def health() -> Health:
    return Health()


@app.get(
    "/v1/public/packs",
    operation_id="listPublicPacks",
    tags=["credits"],
    summary="The credit packs on sale and what an image costs (no token needed)",
    description="The same packs as `GET /v1/credits/packs`, with `costs`: the credits one image costs, by mode. "
    "For the landing page, before sign-up.",
    **documented(200, "The packs and the cost of an image by mode", public=True, validates=False),
)
def public_packs() -> PublicPackList:
    return api_service.public_packs()


@app.get(
    "/v1/catalog/poses",
    operation_id="getPoseCatalog",
    tags=["catalog"],
    summary="The pose library for on-model images",
    **documented(200, "The versioned pose catalog", validates=False),
)
def pose_catalog() -> dict[str, Any]:
    """The pose library for on-model images (versioned; ``default`` is used when a job names none)."""
    return catalogs.load("poses")


@app.get(
    "/v1/catalog/backgrounds",
    operation_id="getBackgroundCatalog",
    tags=["catalog"],
    summary="The background library",
    **documented(200, "The versioned background catalog", validates=False),
)
def background_catalog() -> dict[str, Any]:
    """The background library (use ``"background": "library:<id>"`` in job options)."""
    return catalogs.load("backgrounds")


@app.get("/v1/me", operation_id="getMe", tags=["account"], **documented(200, "The caller", validates=False))
@tracer.capture_method
def get_me() -> Me:
    return api_service.me(caller())


@app.get(
    "/v1/capabilities",
    operation_id="getCapabilities",
    tags=["catalog"],
    summary="What this service can make now, what it costs, and the caller's balance",
    description="`modes`: each mode with its cost in credits per image and whether this deployment can run it "
    "(`reason` says why not, for the customer); `presets`: each marketplace preset with its size, the background "
    "a job without one gets, and the only backgrounds its marketplace allows (`backgrounds`, null: any; a job "
    "asking for another is refused with `422 preset_background`); `priorities`: what each priority does today; "
    "`balance`: the caller's spendable credits.",
    **documented(200, "The modes, presets and priorities on offer, and the balance", validates=False),
)
@tracer.capture_method
def get_capabilities() -> Capabilities:
    return capabilities.capabilities(caller())


# ---- jobs -------------------------------------------------------------------------------------------------------


def _create_job(request: UploadRequest) -> Response[UploadResponse]:
    result = api_service.create_upload(aws.client("s3"), caller(), request)
    metrics.add_metric(name="UploadsRequested", unit="Count", value=1)
    return created(result)


@app.post(
    "/v1/jobs",
    operation_id="createJob",
    tags=["jobs"],
    summary="Create a job and its upload",
    description="Then POST multipart/form-data to `upload.url`: every `upload.fields` entry first, the file "
    "last as field `file` (S3 answers 204). Processing starts when the upload lands. `422 on_model_unavailable` "
    "for `mode: on-model` where this deployment has no image model installed (nothing is created); "
    "`422 preset_background` for a background the preset's marketplace does not allow (Amazon: white only; see "
    "`GET /v1/capabilities`).",
    **documented(201, "The job (awaiting its upload) and a pre-signed POST upload", 415),
)
@tracer.capture_method
def create_job(request: Annotated[UploadRequest, Body()]) -> Response[UploadResponse]:
    return _create_job(request)


@app.post(
    "/v1/uploads",
    operation_id="createUpload",
    tags=["jobs"],
    summary="Create a job and its upload (older name of POST /v1/jobs)",
    deprecated=True,
    **documented(201, "The job (awaiting its upload) and a pre-signed POST upload", 415),
)
@tracer.capture_method
def create_upload(request: Annotated[UploadRequest, Body()]) -> Response[UploadResponse]:
    return _create_job(request)


@app.get(
    "/v1/jobs",
    operation_id="listJobs",
    tags=["jobs"],
    summary="The job history, newest first, with filters",
    description="Without `status`, jobs whose photo never arrived are left out: those still waiting for it "
    "(`awaiting_upload`) and those that ended waiting (`cancelled` with `upload_expired`). A `status` filter "
    "lists exactly the statuses it names, these included.",
    **documented(200, "A page of jobs; pass next_cursor back as cursor for the next one"),
)
@tracer.capture_method
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
    mode: Annotated[Mode | None, Query()] = None,
    status: Annotated[
        str | None,
        Query(
            max_length=200,
            description="comma list of statuses: awaiting_upload, queued, validated, processing, succeeded, "
            "failed, rejected, cancelled (without it: every status but the jobs whose photo never arrived)",
        ),
    ] = None,
    created_after: Annotated[
        str | None,
        Query(max_length=64, description="inclusive; YYYY-MM-DD or an ISO 8601 date-time (UTC if no offset)"),
    ] = None,
    created_before: Annotated[
        str | None,
        Query(
            max_length=64,
            description="exclusive; YYYY-MM-DD (then the whole day is included) or an ISO 8601 date-time",
        ),
    ] = None,
    q: Annotated[str | None, Query(max_length=100, description="part of the file name")] = None,
) -> JobPage:
    filters = api_service.job_filters(mode, status, created_after, created_before, q)
    return api_service.list_jobs(aws.client("s3"), caller(), limit, cursor, filters)


@app.get(
    "/v1/jobs/<job_id>",
    operation_id="getJob",
    tags=["jobs"],
    summary="One job",
    **documented(200, "The job", 404),
)
@tracer.capture_method
def get_job(job_id: JobId) -> JobView:
    return api_service.get_job(aws.client("s3"), caller(), job_id)


@app.delete(
    "/v1/jobs/<job_id>",
    operation_id="deleteJob",
    tags=["jobs"],
    summary="Delete a job with its photo and result",
    description="Deletes the uploaded photo (every version) and the result from storage; the job disappears "
    "from the history. `409 job_in_progress` while it is queued, validated or processing. A job still waiting "
    "for its upload can be deleted: an upload that arrives later is ignored.",
    **documented(204, "Deleted", 404, 409),
)
@tracer.capture_method
def delete_job(job_id: JobId) -> Response[None]:
    api_service.delete_job(aws.client("s3"), caller(), job_id)
    metrics.add_metric(name="JobsDeleted", unit="Count", value=1)
    return no_content()


@app.post(
    "/v1/jobs/<job_id>/upload",
    operation_id="renewJobUpload",
    tags=["jobs"],
    summary="A fresh upload for a job still waiting for its photo",
    description="The same key, content type and size range as the job's first upload, with a new expiry; the "
    "job's wait for its photo starts again. A job still waiting for its photo 24 hours after its newest upload "
    "link (`UPLOAD_WAIT_SECONDS`) ends `cancelled` with `upload_expired`, costs nothing and is left out of the "
    "history. `409 not_awaiting_upload` for a job in any other status (received, finished or expired).",
    **documented(200, "The job and a new pre-signed POST upload", 404, 409),
)
@tracer.capture_method
def renew_job_upload(job_id: JobId) -> UploadResponse:
    result = api_service.renew_upload(aws.client("s3"), caller(), job_id)
    metrics.add_metric(name="UploadsRenewed", unit="Count", value=1)
    return result


@app.get(
    "/v1/jobs/<job_id>/download",
    operation_id="downloadJobResult",
    tags=["jobs"],
    summary="A short-lived download link for the result",
    description="`409 no_result` unless the job succeeded.",
    **documented(200, "A pre-signed GET that downloads the result as an attachment", 404, 409),
)
@tracer.capture_method
def download_job(job_id: JobId) -> DownloadLink:
    return api_service.download(aws.client("s3"), caller(), job_id)


@app.post(
    "/v1/jobs/<job_id>/rerender",
    operation_id="rerenderJob",
    tags=["jobs"],
    summary="A new job on the same stored photo, with other options (no upload)",
    description="Fields left out (and options not named) keep the source job's values. The new job "
    "(`source_job_id` = this job) starts by itself on a server-side copy of the photo this job stored and is "
    "charged like any job: only if it succeeds. `409 original_unavailable` when the photo is no longer stored "
    "(a deleted job, or one whose photo never arrived): upload it again with `POST /v1/jobs`. "
    "`422 preset_background` for a background the preset's marketplace does not allow; `422 "
    "on_model_unavailable` as for `POST /v1/jobs`.",
    **documented(201, "The new job", 404, 409, 415),
)
@tracer.capture_method
def rerender_job(
    job_id: JobId, request: Annotated[RerenderRequest | None, Body()] = None
) -> Response[JobCreated]:
    result = rerender.rerender(aws.client("s3"), caller(), job_id, request or RerenderRequest())
    metrics.add_metric(name="JobsRerendered", unit="Count", value=1)
    return created(result)


@app.post(
    "/v1/jobs/<job_id>/retry",
    operation_id="retryJob",
    tags=["jobs"],
    summary="Run a failed, refused or cancelled job again on its stored photo (no upload)",
    description="A new job (`source_job_id` = this job) with the same mode, options and priority, charged "
    "only if it succeeds. `409 not_retryable` unless the job ended failed, rejected or cancelled; "
    "`409 original_unavailable` when its photo is no longer stored (upload it again with `POST /v1/jobs`).",
    **documented(201, "The new job", 404, 409),
)
@tracer.capture_method
def retry_job(job_id: JobId) -> Response[JobCreated]:
    result = rerender.retry(aws.client("s3"), caller(), job_id)
    metrics.add_metric(name="JobsRetried", unit="Count", value=1)
    return created(result)


@app.post(
    "/v1/jobs/archive",
    operation_id="createJobsArchive",
    tags=["jobs"],
    summary="Download all: the results of several jobs as one ZIP",
    description="`job_ids`: 1 to 200 ids of the caller's succeeded jobs (repeats count once). The ZIP holds each "
    "result under its download name (repeats numbered `name (2).png`), uncompressed (the images are compressed "
    "already), and is kept for a day; `url` is a short-lived link that downloads it. `404 not_found` when an id is "
    "not one of the caller's jobs, `409 no_result` (with `details.job_ids`) when a job has no result, `503 "
    "archive_too_large` when the ZIP could not be made in time (choose fewer).",
    **documented(201, "A pre-signed GET that downloads the ZIP as an attachment", 404, 409, 415),
)
@tracer.capture_method
def create_jobs_archive(request: Annotated[ArchiveRequest, Body()]) -> Response[ArchiveLink]:
    result = api_service.create_archive(aws.client("s3"), caller(), request)
    metrics.add_metric(name="ArchivesCreated", unit="Count", value=1)
    metrics.add_metric(name="ArchivedImages", unit="Count", value=result.count)
    return created(result)


# ---- batches (bulk) -------------------------------------------------------------------------------------------

BatchId = Annotated[str, Path(description="the batch's id (a UUID)", max_length=64)]


@app.post(
    "/v1/batches",
    operation_id="createBatch",
    tags=["batches"],
    summary="Create a batch (a drop folder) with defaults for its files",
    description="Its drop folder is `drop_prefix` in the drop bucket. Files written there (through "
    "`POST /v1/batches/{batch_id}/uploads`) become one job each. `422 on_model_unavailable` for on-model "
    "defaults where this deployment has no image model installed; a manifest row asking for on-model there "
    "rejects its file with that code.",
    **documented(201, "The batch", 415),
)
@tracer.capture_method
def create_batch(request: Annotated[BatchRequest, Body()]) -> Response[BatchView]:
    result = api_service.create_batch(caller(), request)
    metrics.add_metric(name="BatchesCreated", unit="Count", value=1)
    return created(result)


@app.get(
    "/v1/batches",
    operation_id="listBatches",
    tags=["batches"],
    summary="The batches, newest first",
    **documented(200, "A page of batches; pass next_cursor back as cursor for the next one"),
)
@tracer.capture_method
def list_batches(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
) -> BatchPage:
    return api_service.list_batches(aws.client("s3"), caller(), limit, cursor)


@app.get(
    "/v1/batches/<batch_id>",
    operation_id="getBatch",
    tags=["batches"],
    summary="One batch: progress counts, credits spent and, once finished, its report",
    **documented(200, "The batch", 404),
)
@tracer.capture_method
def get_batch(batch_id: BatchId) -> BatchView:
    return api_service.get_batch(aws.client("s3"), caller(), batch_id)


@app.post(
    "/v1/batches/<batch_id>/uploads",
    operation_id="createBatchUpload",
    tags=["batches"],
    summary="A pre-signed upload of one file (or the manifest) into the batch's drop folder",
    description="POST multipart/form-data to `upload.url`: every `upload.fields` entry first, the file last as "
    "field `file`. Upload the manifest (`manifest.json` as application/json or `manifest.csv` as text/csv) "
    "first. Asking again for the same file name is fine: each file name becomes one job. `409 batch_closed` "
    "once the batch is cancelled or finished; `409 batch_sealed` / `409 not_in_manifest` for a file the batch "
    "does not expect; `422 on_model_unavailable` for a file that would be an on-model job where this deployment "
    "has no image model installed.",
    **documented(201, "The object key and its pre-signed POST", 404, 409, 415),
)
@tracer.capture_method
def create_batch_upload(
    batch_id: BatchId, request: Annotated[BatchUploadRequest, Body()]
) -> Response[BatchUploadResponse]:
    result = api_service.batch_upload(aws.client("s3"), caller(), batch_id, request)
    return created(result)


@app.post(
    "/v1/batches/<batch_id>/seal",
    operation_id="sealBatch",
    tags=["batches"],
    summary="No more files: the files in the drop folder now are the whole batch",
    description="For batches without a manifest (a manifest seals its batch). Idempotent. The batch finishes "
    "once every file has a final job.",
    **documented(200, "The batch", 404),
)
@tracer.capture_method
def seal_batch(batch_id: BatchId) -> BatchView:
    return api_service.seal_batch(aws.client("s3"), caller(), batch_id)


@app.post(
    "/v1/batches/<batch_id>/cancel",
    operation_id="cancelBatch",
    tags=["batches"],
    summary="Cancel a batch",
    description="Files not yet processing are cancelled (their credit holds released, nothing charged); files "
    "being processed finish; files arriving later are ignored. Idempotent; `409 batch_finished` once the batch "
    "has finished.",
    **documented(200, "The batch", 404, 409),
)
@tracer.capture_method
def cancel_batch(batch_id: BatchId) -> BatchView:
    result = api_service.cancel_batch(aws.client("s3"), aws.client("stepfunctions"), caller(), batch_id)
    metrics.add_metric(name="BatchesCancelled", unit="Count", value=1)
    return result


@app.get(
    "/v1/batches/<batch_id>/jobs",
    operation_id="listBatchJobs",
    tags=["batches"],
    summary="The jobs of one batch, newest first",
    **documented(200, "A page of the batch's jobs", 404),
)
@tracer.capture_method
def list_batch_jobs(
    batch_id: BatchId,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
    status: Annotated[
        str | None,
        Query(
            max_length=200,
            description="comma list of statuses: awaiting_upload, queued, validated, processing, succeeded, "
            "failed, rejected, cancelled",
        ),
    ] = None,
) -> JobPage:
    return api_service.list_batch_jobs(aws.client("s3"), caller(), batch_id, limit, cursor, status)


# ---- credits ----------------------------------------------------------------------------------------------------


def stripe_client() -> Any:
    """The Stripe API client (module-level so tests can swap in one with a fake HTTP client)."""
    return billing.stripe_client()


@app.get(
    "/v1/credits",
    operation_id="getCredits",
    tags=["credits"],
    **documented(200, "Spendable and held credits", validates=False),
)
@tracer.capture_method
def get_credits() -> CreditBalance:
    return api_service.credit_balance(caller())


@app.get(
    "/v1/credits/ledger",
    operation_id="listLedger",
    tags=["credits"],
    **documented(200, "A page of ledger entries, newest first"),
)
@tracer.capture_method
def list_ledger(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> LedgerPage:
    return api_service.list_ledger(caller(), limit, cursor)


@app.get(
    "/v1/credits/packs",
    operation_id="listCreditPacks",
    tags=["credits"],
    **documented(200, "The credit packs on sale", validates=False),
)
@tracer.capture_method
def list_packs() -> CreditPackList:
    return api_service.list_packs()


@app.post(
    "/v1/credits/checkout",
    operation_id="createCheckout",
    tags=["credits"],
    summary="Start a Stripe Checkout for a credit pack",
    description="Navigate to `checkout_url`; credits arrive by webhook shortly after payment (poll "
    "`GET /v1/credits`). Send an `Idempotency-Key` header to make retries safe.",
    **documented(201, "The Checkout session", 404, 415, 502),
)
@tracer.capture_method
def create_checkout(request: Annotated[CheckoutRequest, Body()]) -> Response[CheckoutResponse]:
    who = caller()
    key = app.current_event.headers.get("idempotency-key") or None
    result = api_service.checkout(stripe_client(), who, request, key[:255] if key else None)
    metrics.add_metric(name="CheckoutsCreated", unit="Count", value=1)
    return created(result)


# ---- account ----------------------------------------------------------------------------------------------------


@app.get(
    "/v1/account",
    operation_id="getAccount",
    tags=["account"],
    **documented(200, "The account", validates=False),
)
@tracer.capture_method
def get_account() -> Account:
    return api_service.account(caller())


@app.patch(
    "/v1/account",
    operation_id="updateAccount",
    tags=["account"],
    summary="Rename the account",
    **documented(200, "The account", 415),
)
@tracer.capture_method
def update_account(request: Annotated[AccountUpdate, Body()]) -> Account:
    return api_service.rename_account(caller(), request.name)


@app.put(
    "/v1/account/webhook",
    operation_id="setWebhook",
    tags=["account"],
    summary="Set the webhook URL (rotates its signing secret)",
    description="https, or http on localhost; no credentials; public hosts only. The signing secret is in "
    "this response only.",
    **documented(200, "The webhook and its new signing secret", 415),
)
@tracer.capture_method
def set_webhook(request: Annotated[WebhookRequest, Body()]) -> WebhookCreated:
    return api_service.set_webhook(caller(), request.url)


@app.delete(
    "/v1/account/webhook",
    operation_id="deleteWebhook",
    tags=["account"],
    summary="Remove the webhook",
    **documented(204, "Removed", validates=False),
)
@tracer.capture_method
def delete_webhook() -> Response[None]:
    api_service.clear_webhook(caller())
    return no_content()


@app.get(
    "/v1/account/api-keys",
    operation_id="listApiKeys",
    tags=["account"],
    **documented(200, "The account's API keys, newest first (revoked ones too)", validates=False),
)
@tracer.capture_method
def list_api_keys() -> ApiKeyList:
    return api_service.list_api_keys(caller())


@app.post(
    "/v1/account/api-keys",
    operation_id="createApiKey",
    tags=["account"],
    summary="Create an API key",
    description="The key is in this response only. People only: API keys cannot manage API keys.",
    **documented(201, "The new key", 403, 409, 415),
)
@tracer.capture_method
def create_api_key(request: Annotated[ApiKeyRequest, Body()]) -> Response[ApiKeyCreated]:
    result = api_service.create_api_key(aws.client("cognito-idp"), caller(), request.name)
    metrics.add_metric(name="ApiKeysCreated", unit="Count", value=1)
    return created(result)


@app.delete(
    "/v1/account/api-keys/<key_id>",
    operation_id="revokeApiKey",
    tags=["account"],
    summary="Revoke an API key",
    description="Its tokens are refused at once, even unexpired ones.",
    **documented(204, "Revoked", 403, 404),
)
@tracer.capture_method
def revoke_api_key(key_id: Annotated[str, Path(description="the key's id", max_length=64)]) -> Response[None]:
    api_service.revoke_api_key(aws.client("cognito-idp"), caller(), key_id)
    return no_content()


@app.get(
    "/v1/account/webhook/deliveries",
    operation_id="listWebhookDeliveries",
    tags=["account"],
    summary="The webhook's events and how their delivery went, newest first",
    description="Each event is POSTed as JSON `{id, type, created_at, data}` with the headers "
    "`Modamoda-Event-Id`, `Modamoda-Event-Type` and `Modamoda-Signature: t=<unix>,v1=<hex>` (HMAC-SHA256 of "
    '`"<t>.<raw body>"` with the signing secret). Any 2xx answer delivers it; otherwise it is retried with '
    "exponential backoff and jitter, and after the last attempt it is `dead` (retry it with "
    "`POST /v1/account/webhook/deliveries/{delivery_id}/retry`).",
    **documented(200, "A page of deliveries; pass next_cursor back as cursor for the next one"),
)
@tracer.capture_method
def list_webhook_deliveries(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
    status: Annotated[DeliveryStatus | None, Query(description="only deliveries in this state")] = None,
) -> WebhookDeliveryPage:
    return notifications.list_deliveries(caller().tenant_id, limit, cursor, status)


@app.post(
    "/v1/account/webhook/deliveries/<delivery_id>/retry",
    operation_id="retryWebhookDelivery",
    tags=["account"],
    summary="Send a dead delivery again",
    description="A fresh set of attempts, starting now, to the current webhook URL, signed with the current "
    "secret. `409 delivery_not_dead` unless it is dead; `409 webhook_not_configured` without a webhook.",
    **documented(200, "The delivery, pending again", 404, 409),
)
@tracer.capture_method
def retry_webhook_delivery(
    delivery_id: Annotated[str, Path(description="the delivery's event id (a UUID)", max_length=64)],
) -> WebhookDelivery:
    result = notifications.retry_delivery(caller().tenant_id, delivery_id, aws.client("sqs"))
    metrics.add_metric(name="WebhookDeliveriesRetried", unit="Count", value=1)
    return result


# ---- errors: one body for all -----------------------------------------------------------------------------------


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(code, message, details),
        headers=headers,
    )


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", "details"?}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def failure(error: Exception) -> tuple[int, str, str, Any]:
    """(status, code, message, details) for an exception a request raised; server-side failures are logged."""
    if isinstance(error, ModamodaError):
        if error.http_status >= 500:
            logger.exception("request failed")
        return error.http_status, error.code, error.message, error.details
    logger.exception("unexpected error")
    return 500, "internal_error", "something went wrong on our side; please try again", None


@app.exception_handler(ModamodaError)
def domain_error(error: ModamodaError) -> Response[dict[str, Any]]:
    return error_response(*failure(error))


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
    refused = presets.refusal_of(list(error.errors()))  # a marketplace's background rule: its own code
    if refused is not None:
        return error_response(*failure(refused))
    details = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in error.errors()
    ]
    return error_response(422, "validation_error", "the request is not valid", details)


@app.exception_handler(RequestUnsupportedContentType)
def unsupported_content_type(error: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
    return error_response(415, "unsupported_media_type", "send the body as application/json")


@app.exception_handler(ServiceError)
def service_error(error: ServiceError) -> Response[dict[str, Any]]:
    status = HTTPStatus(int(error.status_code))
    message = error.msg if isinstance(error.msg, str) else json.dumps(error.msg)
    return error_response(status, status.phrase.lower().replace(" ", "_").replace("-", "_"), message)


@app.not_found
def not_found(error: NotFoundError) -> Response[dict[str, Any]]:
    event = app.current_event
    allowed = sorted(
        {
            route.method
            for route in (*app._static_routes, *app._dynamic_routes)
            if route.rule.match(event.path) and route.method != event.http_method
        }
    )
    if allowed:
        return error_response(
            405,
            "method_not_allowed",
            f"{event.http_method} is not allowed on {event.path}",
            headers={"Allow": ", ".join(allowed)},
        )
    return error_response(404, "not_found", f"no route {event.http_method} {event.path}")


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response[dict[str, Any]]:
    return error_response(*failure(error))


# ---- OpenAPI ------------------------------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API, generated from the routes and models above."""
    schema = app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        security_schemes={
            BEARER: HTTPBearer(
                bearerFormat="JWT",
                description="A Cognito access token of the web app client (a person's or an API key's)",
            )
        },
    )
    document: dict[str, Any] = json.loads(schema)
    for operation in (op for item in document["paths"].values() for op in item.values()):
        responses = operation["responses"]
        for code, response in list(responses.items()):
            if response.get("content") == {}:  # 204: no body
                del response["content"]
            if "#/components/schemas/HTTPValidationError" in json.dumps(response):
                del responses[code]  # powertools' default 422: this route takes no input
    # Powertools adds its own validation-error schemas; every error here has the ErrorBody shape instead.
    text = json.dumps(document["paths"])
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        if f"#/components/schemas/{unused}" not in text:
            schemas.pop(unused, None)
    return document


def refuse_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """An error response for a body powertools should not see: declared as anything but JSON (415; it would
    try to parse forms and multipart itself), or not UTF-8 (422)."""
    raw = event.get("body")
    if not raw:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        return _raw_error(415, "unsupported_media_type", "send the body as application/json")
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(str(raw), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            details = [{"loc": ["body"], "message": "the body is not UTF-8 JSON", "type": "json_invalid"}]
            return _raw_error(422, "validation_error", "the request is not valid", details)
    return None


def _raw_error(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """An error answered before the resolver runs, as the Lambda proxy response it would have built."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(error_body(code, message, details), separators=(",", ":")),
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return refuse_body(event) or authenticate(event) or app.resolve(event, context)
