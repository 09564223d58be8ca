"""pydantic models at every boundary: API bodies, workflow payloads, SageMaker async notifications."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from functions.common import catalogs, config, presets

Mode = Literal["ghost", "on-model"]
JobStatus = Literal[
    "awaiting_upload", "queued", "validated", "processing", "succeeded", "failed", "rejected", "cancelled"
]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "rejected", "cancelled"})
IN_PROGRESS_STATUSES: frozenset[str] = frozenset({"queued", "validated", "processing"})
Priority = Literal["normal", "low"]
# The GPU queue's lanes (functions/common/scheduler.py), served in this order; round-robin across tenants in each.
Lane = Literal["interactive", "normal", "bulk"]
LANES: tuple[str, ...] = get_args(Lane)
PRIORITY_DESCRIPTION = (
    "Which lane the job waits in for the GPU (on-model and other diffusion work; ghost packshots do not queue for "
    'it). "normal" (the default): a single job (POST /v1/jobs, re-render, retry) waits in the interactive lane, '
    "served before every batch; a file of a batch made with POST /v1/batches waits in the normal lane, after single "
    'jobs and before bulk work. "low": the bulk lane, served when neither of the others has a job waiting, as are '
    "files written straight into a drop folder whatever their priority. Within a lane, customers take turns "
    "(round-robin), each customer's own jobs in the order they arrived, so a large batch never holds up another "
    "customer's photo. A single job may wait up to QUEUE_WAIT_SECONDS (default 1 hour) and a batch job up to "
    "BATCH_QUEUE_WAIT_SECONDS (default 24 hours) before it fails with queue_timeout, credits returned. Priority "
    "never changes the price."
)
ImageContentType = Literal[
    "image/jpeg", "image/png", "image/webp", "image/tiff", "image/avif", "image/heic", "image/heif"
]
ALLOWED_CONTENT_TYPES: tuple[str, ...] = get_args(ImageContentType)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
ARCHIVE_MAX_JOBS = 200  # the most jobs one ZIP (POST /v1/jobs/archive) may hold


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_HEX = r"^#[0-9A-Fa-f]{6}$"


class JobOptions(Strict):
    """What the customer chooses for a job; passed to the inference container as its ``options``."""

    preset: Literal["square", "amazon", "zalando", "shopify", "portrait_4_5"] = "square"
    background: str | None = Field(default=None, description='"#RRGGBB", "transparent" or "library:<id>"')
    output_format: Literal["png", "jpeg", "webp", "avif"] = "png"
    quality: int = Field(default=92, ge=1, le=100)
    shadow: Literal["none", "contact", "drop"] = "contact"
    mannequin: str = Field(
        default="none", description='"none", "auto" (sampled) or the mannequin\'s "#RRGGBB"'
    )
    hollow: bool = True
    pose_id: str | None = Field(default=None, max_length=64)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    size: int | None = Field(default=None, ge=512, le=2048, multiple_of=64)
    steps: int | None = Field(default=None, ge=1, le=80)
    upscale: bool = False
    segmenter: Literal["auto", "learned", "studio"] = Field(
        default="auto",
        description='How the garment is cut out of the photo. "auto": the studio engine\'s own cut-out, made in '
        "seconds (where a deployment makes ghost images on its GPU servers instead, the learned segmenter, SAM + "
        'CLIP, when they have its weights). "learned": require the learned segmenter, made on the GPU servers; '
        "where it is not available the job fails with a clear message and nothing is charged. "
        '"studio": the studio engine\'s colour model (backdrop and mannequin colours).',
    )

    @field_validator("background")
    @classmethod
    def _background(cls, value: str | None) -> str | None:
        if value is None or value == "transparent" or re.fullmatch(_HEX, value):
            return value
        if value.startswith("library:"):
            if value.removeprefix("library:") not in catalogs.ids("backgrounds"):
                raise ValueError(f"unknown background; choose one of GET /v1/catalog/backgrounds ({value})")
            return value
        raise ValueError('must be "#RRGGBB", "transparent" or "library:<id>"')

    @model_validator(mode="after")
    def _transparency_needs_alpha(self) -> JobOptions:
        if self.background == "transparent" and self.output_format == "jpeg":
            raise ValueError("a transparent background needs png, webp or avif output")
        return self

    @model_validator(mode="after")
    def _marketplace_allows_the_background(self) -> JobOptions:
        """A preset's marketplace rule (``presets.PRESETS``, published by ``GET /v1/capabilities``): Amazon's main
        image is pure white. Its own error type, so the API answers ``422 preset_background`` with the sentence."""
        refusal = presets.background_refusal(self.preset, self.background)
        if refusal:
            raise PydanticCustomError(presets.PRESET_BACKGROUND, refusal)
        return self

    @field_validator("mannequin")
    @classmethod
    def _mannequin(cls, value: str) -> str:
        if value in {"none", "auto"} or re.fullmatch(_HEX, value):
            return value
        raise ValueError('must be "none", "auto" or "#RRGGBB"')

    @field_validator("pose_id")
    @classmethod
    def _pose(cls, value: str | None) -> str | None:
        if value is not None and value not in catalogs.ids("poses"):
            raise ValueError(f"unknown pose; choose one of GET /v1/catalog/poses ({value})")
        return value


class UploadRequest(Strict):
    filename: str = Field(min_length=1, max_length=255)
    content_type: ImageContentType
    mode: Mode = "ghost"
    options: JobOptions = JobOptions()
    priority: Priority = Field(default="normal", description=PRIORITY_DESCRIPTION)

    @model_validator(mode="after")
    def _on_model_has_a_pose(self) -> UploadRequest:
        if self.mode == "on-model" and self.options.pose_id is None:
            return self.model_copy(
                update={"options": self.options.model_copy(update={"pose_id": catalogs.default_pose()})}
            )
        return self

    @field_validator("filename")
    @classmethod
    def _safe_filename(cls, value: str) -> str:
        name = _SAFE_NAME.sub("_", value.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")[:100]
        if not name:
            raise ValueError("filename has no usable characters")
        return name


class PresignedPost(Strict):
    url: str
    fields: dict[str, str]


class JobError(Strict):
    code: str
    message: str


class JobQuality(Strict):
    """The inference engine's own confidence in the result (present when the engine reports one)."""

    score: float = Field(ge=0, le=1, description="the engine's confidence in the result, 0..1")
    threshold: float = Field(
        ge=0, le=1, description="the score below which the engine refuses the photo (low_confidence)"
    )


class JobProgress(Strict):
    """Where the job is, for a progress bar: ``step`` of ``steps``; ``percent`` is 100 once it has ended."""

    stage: Literal["upload", "validation", "queue", "inference", "done"]
    label: str
    percent: int = Field(ge=0, le=100)
    step: int = Field(ge=1)
    steps: int = Field(ge=1)


class JobView(Strict):
    id: str
    mode: Mode
    status: JobStatus
    priority: Priority
    lane: Lane = Field(
        description="the GPU queue lane the job waits in (interactive, then normal, then bulk); see priority"
    )
    filename: str
    options: dict[str, Any]
    cost: int | None
    error: JobError | None
    result_url: str | None = Field(
        default=None, description="pre-signed inline GET of the result (succeeded jobs only); short-lived"
    )
    thumbnail_url: str | None = Field(
        default=None,
        description="pre-signed inline GET of a small WebP of the result (long side 320 px, typically 10-30 KB) "
        "for lists; succeeded jobs with a thumbnail only (none for jobs from before thumbnails); short-lived",
    )
    original_url: str | None = Field(
        default=None,
        description="pre-signed inline GET of a WebP of the uploaded photo (long side 1024 px, upright, sRGB) "
        "that every browser can show, for the before/after view; when the job has one; short-lived",
    )
    progress: JobProgress
    stages: dict[str, str] = Field(description="status → the time it was first reached (ISO 8601, UTC)")
    created_at: datetime
    updated_at: datetime
    batch_id: str | None = Field(default=None, description="the batch this job belongs to (bulk), if any")
    sku: str | None = Field(default=None, description="the SKU the batch manifest gave this file, if any")
    quality: JobQuality | None = Field(
        default=None,
        description="the engine's quality score and threshold for this job (a result, or a low_confidence "
        "refusal), when the engine reports them",
    )
    source_job_id: str | None = Field(
        default=None,
        description="the job whose stored photo this job re-renders or retries (POST /v1/jobs/{job_id}/rerender "
        "or /retry), if any",
    )


class JobPage(Strict):
    items: list[JobView]
    next_cursor: str | None


class UploadResponse(Strict):
    job_id: str
    job: JobView
    upload: PresignedPost = Field(
        description="POST multipart/form-data to ``url`` with every entry of ``fields`` first and the file "
        "last as field ``file``; S3 answers 204 and processing starts"
    )
    expires_in: int
    max_bytes: int


class RerenderRequest(Strict):
    """``POST /v1/jobs/{job_id}/rerender``: what changes; everything left out stays as the source job had it."""

    mode: Mode | None = Field(default=None, description="default: the source job's mode")
    options: JobOptions | None = Field(
        default=None,
        description="only the options named here change; the others keep the source job's values (the result is "
        "checked as a whole, e.g. against the preset's marketplace rule)",
    )
    priority: Priority | None = Field(default=None, description="default: the source job's priority")


class JobCreated(Strict):
    """A job created on the stored photo of an earlier one (re-render, retry): no upload; it starts by itself."""

    job_id: str
    job: JobView


# ---- what this deployment offers (GET /v1/capabilities) ---------------------------------------------------------


class ModeInfo(Strict):
    id: Mode
    name: str
    cost: int = Field(description="credits one image costs")
    available: bool = Field(description="whether this deployment can make it now")
    reason: str | None = Field(
        description="why it is not available, in a sentence for the customer; else null"
    )


class PresetInfo(Strict):
    id: str
    name: str
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    description: str = Field(description="what it is for and its size, in a sentence for the customer")
    default_background: str = Field(description='what a job without a background gets ("#rrggbb")')
    backgrounds: list[str] | None = Field(
        description='the only backgrounds its marketplace allows ("#rrggbb"); null: any background'
    )
    rule: str | None = Field(
        description="why only those backgrounds, for the customer; null when any is fine"
    )


class PriorityInfo(Strict):
    id: Priority
    name: str
    description: str = Field(description="what it does today, in a sentence for the customer")


class Capabilities(Strict):
    modes: list[ModeInfo]
    presets: list[PresetInfo]
    priorities: list[PriorityInfo]
    balance: int = Field(description="the caller's spendable credits now")


class JobFilters(Strict):
    """History filters of ``GET /v1/jobs`` (parsed by ``job_filters``)."""

    mode: Mode | None = None
    statuses: tuple[JobStatus, ...] = ()
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    q: str | None = None
    batch_id: str | None = None  # the jobs of one batch (GET /v1/batches/{id}/jobs)


class DownloadLink(Strict):
    url: str = Field(description="pre-signed GET that downloads the result as an attachment")
    filename: str
    expires_in: int


class ArchiveRequest(Strict):
    """``POST /v1/jobs/archive``: the jobs whose results go into one ZIP (repeated ids count once)."""

    job_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=ARCHIVE_MAX_JOBS, description="ids of succeeded jobs of the caller"
    )

    @field_validator("job_ids")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ArchiveLink(Strict):
    url: str = Field(description="pre-signed GET that downloads the ZIP as an attachment; short-lived")
    filename: str = Field(description="modamoda-{YYYY-MM-DD}-{count}-images.zip")
    count: int = Field(description="how many images the ZIP holds")
    bytes: int = Field(description="the ZIP's size in bytes")
    expires_at: datetime = Field(description="when the link stops working (the ZIP itself is kept for a day)")


class Me(Strict):
    user_id: str
    email: str | None
    tenant_id: str
    tenant_kind: str
    balance: int


# ---- batches (bulk: the drop folder drop/{tenant}/{batch}/) -----------------------------------------------------

BatchStatus = Literal["open", "sealed", "completed", "stopped", "cancelled"]
MANIFEST_FILES: dict[str, str] = {"manifest.json": "application/json", "manifest.csv": "text/csv"}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def drop_filename(value: str) -> str:
    """A file name in a batch's drop folder, kept exactly as given (a manifest names files by it): a plain name
    (no folders), no control characters, not hidden (dot files are ignored), at most 255 UTF-8 bytes."""
    if value in {"", ".", ".."}:
        raise ValueError("must be a file name")
    if "/" in value or "\\" in value:
        raise ValueError("must be a plain file name, without folders")
    if _CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters")
    if value.startswith("."):
        raise ValueError("must not start with a dot (hidden files are ignored)")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    if len(value.encode("utf-8")) > 255:
        raise ValueError("must be at most 255 bytes (UTF-8)")
    return value


class BatchDefaults(Strict):
    """What every file of a batch gets unless its manifest row says otherwise."""

    mode: Mode = "ghost"
    options: JobOptions = JobOptions()
    priority: Priority = Field(
        default="normal",
        description='The GPU lane of the batch\'s files: "normal" (the default) the normal lane, after single jobs '
        'and before bulk work; "low" the bulk lane. Files written straight into a drop folder (a batch the API did '
        "not make) wait in the bulk lane whatever their priority.",
    )

    @model_validator(mode="before")
    @classmethod
    def _on_model_has_a_pose(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "on-model":
            options = data.get("options", {})
            if isinstance(options, JobOptions):
                options = options.model_dump()
            if isinstance(options, dict) and options.get("pose_id") is None:
                data = {**data, "options": {**options, "pose_id": catalogs.default_pose()}}
        return data


class BatchRequest(Strict):
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="shown in lists (default: the batch id)"
    )
    defaults: BatchDefaults = BatchDefaults()

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        return None if value is None else display_name(value)


class BatchCounts(Strict):
    expected: int | None = Field(
        description="the files the batch is complete with (from the manifest or the seal); null until sealed"
    )
    total: int = Field(description="files received (one job each)")
    awaiting: int = Field(description="expected files not received yet")
    queued: int = Field(description="received, waiting to be checked or for a GPU")
    processing: int
    succeeded: int
    failed: int
    rejected: int
    cancelled: int


class BatchReportLinks(Strict):
    csv_url: str = Field(description="pre-signed GET of report.csv (short-lived)")
    json_url: str = Field(description="pre-signed GET of report.json (short-lived)")


class BatchView(Strict):
    id: str
    name: str
    status: BatchStatus
    defaults: BatchDefaults
    sealed: bool = Field(description="no more files are expected (a manifest names them, or it was sealed)")
    counts: BatchCounts
    credits_spent: int
    drop_prefix: str = Field(description="the S3 key prefix of the batch's drop folder (drop bucket)")
    report: BatchReportLinks | None = Field(description="once finished: the report (CSV and JSON)")
    manifest_error: str | None = Field(
        default=None, description="why the manifest as a whole was refused (every file is then rejected)"
    )
    stop_reason: str | None = Field(default=None, description="why the batch was stopped")
    created_at: datetime
    finished_at: datetime | None


class BatchPage(Strict):
    items: list[BatchView]
    next_cursor: str | None


class BatchUploadRequest(Strict):
    filename: str = Field(
        min_length=1,
        max_length=255,
        description="the file's name in the drop folder, exactly as the manifest names it; manifest.json or "
        "manifest.csv for the manifest",
    )
    content_type: Literal[ImageContentType, "application/json", "text/csv"]

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return drop_filename(value)

    @model_validator(mode="after")
    def _manifest_types(self) -> BatchUploadRequest:
        expected = MANIFEST_FILES.get(self.filename)
        if expected is not None and self.content_type != expected:
            raise ValueError(f"{self.filename} must be uploaded as {expected}")
        if expected is None and self.content_type not in ALLOWED_CONTENT_TYPES:
            raise ValueError(
                "a manifest must be named manifest.json (application/json) or manifest.csv (text/csv)"
            )
        return self


class BatchUploadResponse(Strict):
    key: str = Field(description="the object key in the drop bucket")
    upload: PresignedPost = Field(
        description="POST multipart/form-data to ``url`` with every entry of ``fields`` first and the file "
        "last as field ``file``; S3 answers 204"
    )
    expires_in: int
    max_bytes: int


# ---- workflow payloads (state machine task inputs/outputs) -------------------------------------------------

MAX_WAIT_SECONDS = 7 * 86_400  # the longest RunInference may wait (queue and inference) for any lane


class WorkflowInput(BaseModel):
    """Execution input written by start-workflow; later states add their results beside it."""

    model_config = ConfigDict(extra="ignore")
    job_id: str
    tenant_id: str
    bucket: str
    key: str
    version_id: str | None = None
    inference_timeout_seconds: int = Field(
        ge=1,
        le=MAX_WAIT_SECONDS,
        description="how long RunInference waits for the GPU (its TimeoutSecondsPath, and the credit hold's TTL "
        "at reservation): the job's queue-wait bound plus its inference timeout",
    )
    queue_wait_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="of that wait, the most it may spend in the GPU queue",
    )


class ImageRef(Strict):
    bucket: str
    key: str
    version_id: str | None = None
    format: str
    width: int
    height: int
    bytes: int


EnginePath = Literal["cpu", "gpu"]
"""Where a job's image is made (``pipeline.engine_path``): ``cpu`` the studio engine's Lambda function, ``gpu`` the
asynchronous GPU endpoint."""


class Validated(Strict):
    job_id: str
    tenant_id: str
    mode: Mode
    cost: int
    image: ImageRef
    options: dict[str, Any]
    engine_path: EnginePath = "gpu"


class ReserveInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    job_id: str
    tenant_id: str
    cost: int = Field(gt=0)
    hold_ttl_seconds: int = Field(ge=1)
    engine_path: EnginePath = "gpu"  # cpu: the job is marked processing with its hold (the studio runs next)


class EnqueueInput(BaseModel):
    """RunInference's payload: the job joins the GPU queue, its task token waits in the database."""

    model_config = ConfigDict(extra="ignore")
    job_id: str
    tenant_id: str
    task_token: str = Field(min_length=1, max_length=2048)
    mode: Mode
    image: ImageRef
    options: dict[str, Any]
    timeout_seconds: int = Field(ge=1, le=MAX_WAIT_SECONDS, description="the state's whole wait")
    queue_wait_seconds: int = Field(
        default=0, ge=0, le=MAX_WAIT_SECONDS, description="of it, the queue's part"
    )

    @model_validator(mode="after")
    def _inference_has_time(self) -> EnqueueInput:
        if self.queue_wait_seconds >= self.timeout_seconds:
            raise ValueError("queue_wait_seconds must leave part of timeout_seconds for the inference")
        return self


class InferenceOutput(BaseModel):
    """Where an engine wrote a job's image (the studio function's answer: the async endpoint's output location)."""

    model_config = ConfigDict(extra="ignore")
    output_location: str = Field(min_length=1, max_length=1100)
    content_type: str = Field(default="image/png", max_length=100)


class SettleInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    job_id: str
    tenant_id: str
    error: dict[str, Any] | None = None  # Catch ResultPath: {"Error": ..., "Cause": ...}
    result: InferenceOutput | None = None  # RecordStudioResult: the image to store before capturing


class SettleResult(Strict):
    job_id: str
    status: JobStatus
    hold: str  # held | captured | released | none
    error_code: str | None = None


# ---- SageMaker asynchronous inference notification (SNS message body) ----------------------------------------


class AsyncRequestParameters(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    content_type: str | None = Field(default=None, alias="contentType")
    endpoint_name: str | None = Field(default=None, alias="endpointName")
    input_location: str | None = Field(default=None, alias="inputLocation")


class AsyncResponseParameters(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    content_type: str | None = Field(default=None, alias="contentType")
    output_location: str | None = Field(default=None, alias="outputLocation")
    failure_location: str | None = Field(default=None, alias="failureLocation")


class AsyncInferenceNotification(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    invocation_status: str = Field(alias="invocationStatus")
    inference_id: str = Field(alias="inferenceId")
    failure_reason: str | None = Field(default=None, alias="failureReason")
    request_parameters: AsyncRequestParameters = Field(
        default_factory=AsyncRequestParameters, alias="requestParameters"
    )
    response_parameters: AsyncResponseParameters = Field(
        default_factory=AsyncResponseParameters, alias="responseParameters"
    )

    @property
    def succeeded(self) -> bool:
        return self.invocation_status.lower() == "completed"


class Health(Strict):
    status: Literal["ok"] = "ok"


# ---- errors (every error response has this body) ----------------------------------------------------------


class ErrorInfo(Strict):
    code: str = Field(description="stable snake_case code, e.g. validation_error, not_found, job_in_progress")
    message: str
    details: list[dict[str, Any]] | dict[str, Any] | None = Field(
        default=None, description="validation_error: one entry per problem, with loc, message and type"
    )


class ErrorBody(Strict):
    error: ErrorInfo


# ---- account: profile, webhook, API keys ---------------------------------------------------------------------


class WebhookInfo(Strict):
    url: str
    secret_hint: str = Field(description="the last characters of the signing secret (shown in full once)")
    updated_at: datetime


class Account(Strict):
    user_id: str
    email: str | None
    tenant_id: str
    tenant_kind: str
    tenant_name: str
    balance: int
    created_at: datetime
    webhook: WebhookInfo | None


class AccountUpdate(Strict):
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        return display_name(value)


def display_name(value: str) -> str:
    """A name shown to people: trimmed, not blank, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


_HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?"
)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def webhook_url(value: str) -> str:
    """Where job notifications will be sent: https to a public host, or http on localhost (development).

    No credentials, spaces or fragments; IP literals must be public (no private, loopback, link-local,
    metadata or reserved addresses), and numeric host spellings that resolvers read as IPs are refused.
    """
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must be a plain URL without spaces")
    parts = urlsplit(value)
    try:
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError("has an invalid host or port") from exc
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not contain credentials")
    if parts.fragment:
        raise ValueError("must not contain a fragment")
    if not host:
        raise ValueError("must have a host")
    if parts.scheme == "http":
        if host not in _LOCAL_HOSTS:
            raise ValueError("must be an https:// URL (http:// only for localhost)")
        return value
    if parts.scheme != "https":
        raise ValueError("must be an https:// URL (http:// only for localhost)")
    if host in _LOCAL_HOSTS or host.endswith(".localhost"):
        raise ValueError("https:// webhooks must be on a public host")
    address = _ip_literal(host)
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None)
        if not address.is_global or (mapped is not None and not mapped.is_global):
            raise ValueError("must not point to a private, loopback, link-local or reserved address")
        return value
    if not _HOST_NAME.fullmatch(host):
        raise ValueError("must have a fully qualified host name (ASCII; xn-- form for international names)")
    if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", host.rstrip(".").rsplit(".", 1)[-1]):
        # WHATWG URL parsers read a host whose last label is a number as IPv4 (2130706433, 0x7f.1 ...)
        raise ValueError("must use a host name or a standard IP address")
    return value


class WebhookRequest(Strict):
    url: str = Field(min_length=1, max_length=2000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return webhook_url(value)


class WebhookCreated(Strict):
    url: str
    secret: str = Field(description="signs webhook deliveries; shown only in this response")
    updated_at: datetime


class ApiKeyRequest(Strict):
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        return display_name(value)


class ApiKeyView(Strict):
    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyList(Strict):
    items: list[ApiKeyView]


class ApiKeyCreated(Strict):
    id: str
    name: str
    prefix: str
    api_key: str = Field(
        description="mmk_<id>_<secret>, shown only in this response. Sign in with Cognito InitiateAuth "
        "USER_PASSWORD_AUTH (USERNAME apikey-<id>@api-keys.modamoda.invalid, PASSWORD <secret>) on the web "
        "app client and send the access token as a bearer token"
    )
    created_at: datetime


# ---- webhook deliveries (the notifications outbox, channel webhook) --------------------------------------------

DeliveryStatus = Literal["pending", "delivered", "dead"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)


class WebhookDelivery(Strict):
    """One event for the account's webhook and how its delivery went."""

    id: str = Field(description="the event id, sent as Modamoda-Event-Id (the same on every attempt)")
    type: str = Field(
        description="job.succeeded, job.failed, job.rejected, job.cancelled, batch.completed, ..."
    )
    status: DeliveryStatus = Field(
        description="pending: not yet delivered (being retried with backoff); delivered: a 2xx answer; dead: "
        "every attempt failed (retry it with POST .../retry)"
    )
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None = Field(description="when the next attempt is due (pending only)")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="the HTTP status of the last attempt, if one came")
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    event: dict[str, Any] = Field(description="the JSON body that is POSTed: {id, type, created_at, data}")


class WebhookDeliveryPage(Strict):
    items: list[WebhookDelivery]
    next_cursor: str | None


# ---- credits and billing (API bodies) ------------------------------------------------------------------------

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def return_url(value: str) -> str:
    """A Checkout return URL: https, or http on localhost (local development); no credentials, no spaces."""
    parts = urlsplit(value)
    if any(ch.isspace() or ord(ch) < 32 for ch in value) or parts.username or parts.password:
        raise ValueError("must be a plain URL without spaces or credentials")
    secure = parts.scheme == "https" and bool(parts.hostname)
    local = parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
    if not (secure or local):
        raise ValueError("must be an https:// URL (http:// only for localhost)")
    allowed = config.web_origins()
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if allowed and origin not in allowed:  # no open redirect through Checkout
        raise ValueError(f"must be on the application's origin ({', '.join(sorted(allowed))})")
    return value


class CreditBalance(Strict):
    balance: int  # spendable now
    held: int  # reserved by jobs in progress (captured on success, released on failure)


class LedgerEntry(Strict):
    id: int
    kind: str
    amount: int
    job_id: str | None
    meta: dict[str, Any]
    created_at: datetime
    description: str = Field(
        description="What the entry was, in a sentence for the customer, naming the photo or batch "
        "(e.g. “Charged 1 credit for dress.jpg”)"
    )
    job_filename: str | None = Field(description="the file name of the entry's photo, if it is a job's")
    batch_id: str | None = Field(description="the batch of the entry's photo, if any")
    receipt_url: str | None = Field(
        description="Stripe's receipt of the purchase the entry belongs to, once Stripe has one"
    )


class LedgerPage(Strict):
    items: list[LedgerEntry]
    next_cursor: str | None


class CreditPack(Strict):
    id: str
    name: str
    credits: int
    price_cents: int
    currency: str


class CreditPackList(Strict):
    items: list[CreditPack]


class PublicPackList(Strict):
    """The packs on sale and what one image costs, for the landing page (no sign-in)."""

    items: list[CreditPack]
    costs: dict[str, int] = Field(
        description="credits per image, by mode (`ghost`, and `on-model` where this deployment can run it)"
    )


class CheckoutRequest(Strict):
    pack_id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    success_url: str = Field(min_length=1, max_length=2000)
    cancel_url: str = Field(min_length=1, max_length=2000)

    @field_validator("success_url", "cancel_url")
    @classmethod
    def _return_url(cls, value: str) -> str:
        return return_url(value)


class CheckoutResponse(Strict):
    checkout_url: str
    session_id: str


# ---- Stripe webhook events (the fields the billing code reads; everything else is allowed and ignored) ---------


class _StripeObject(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StripeEventData(_StripeObject):
    object: dict[str, Any]


class StripeEvent(_StripeObject):
    id: str = Field(pattern=r"^evt_")
    object: Literal["event"]
    type: str
    created: int
    livemode: bool = False
    api_version: str | None = None
    data: StripeEventData


class StripeCheckoutSession(_StripeObject):
    id: str = Field(pattern=r"^cs_")
    object: Literal["checkout.session"]
    mode: str | None = None
    payment_status: str
    payment_intent: str | None = None
    client_reference_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    amount_total: int | None = None
    currency: str | None = None


class StripeCharge(_StripeObject):
    id: str
    object: Literal["charge"]
    amount: int
    amount_refunded: int = 0
    refunded: bool = False
    currency: str | None = None
    payment_intent: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeDispute(_StripeObject):
    id: str
    object: Literal["dispute"]
    amount: int
    charge: str
    currency: str | None = None
    status: str
    payment_intent: str | None = None
