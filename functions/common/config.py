"""Configuration from the environment CDK sets. Missing required settings fail fast with a clear message."""

from __future__ import annotations

import os

from functions.common.errors import ConfigError


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required but not set", code="config_missing")
    return value


def integer(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def positive(name: str, default: int) -> int:
    value = integer(name, default)
    if value < 1:
        raise ConfigError(f"environment variable {name} must be a positive integer, got {value}")
    return value


def upload_bucket() -> str:
    return required("UPLOAD_BUCKET")


def results_bucket() -> str:
    return required("RESULTS_BUCKET")


def state_machine_arn() -> str:
    return required("STATE_MACHINE_ARN")


def inference_endpoint_name() -> str:
    return required("INFERENCE_ENDPOINT_NAME")


def on_model_available() -> bool:
    """Whether this deployment's endpoint has the diffusion weights (``ON_MODEL_AVAILABLE``: CDK sets ``true`` when
    deployed with context ``model_data``, else ``false``). Unset (the local stack, tests) means available: the
    engine itself then refuses on-model work it cannot do."""
    raw = os.environ.get("ON_MODEL_AVAILABLE", "").strip().lower()
    if raw in {"", "true", "1"}:
        return True
    if raw in {"false", "0"}:
        return False
    raise ConfigError(f"environment variable ON_MODEL_AVAILABLE must be true or false, got {raw!r}")


def ghost_on_lambda() -> bool:
    """Whether ghost jobs the studio engine can make run on its Lambda function (``GHOST_ON_LAMBDA``, default
    ``true``; CDK sets it from context ``ghost_on_lambda``); ``false`` sends them to the GPU endpoint as before (the
    fairness benchmark's slow-engine runs use it)."""
    raw = os.environ.get("GHOST_ON_LAMBDA", "").strip().lower()
    if raw in {"", "true", "1"}:
        return True
    if raw in {"false", "0"}:
        return False
    raise ConfigError(f"environment variable GHOST_ON_LAMBDA must be true or false, got {raw!r}")


def inference_invocation_timeout_seconds() -> int:
    """The most a GPU may work on one request (InvokeEndpointAsync ``InvocationTimeoutSeconds``, 1..3600; at most
    half of the job's wait, see ``pipeline.async_timeouts``)."""
    return integer("INFERENCE_INVOCATION_TIMEOUT_SECONDS", 900)


def upload_max_bytes() -> int:
    return integer("UPLOAD_MAX_BYTES", 25 * 1024 * 1024)


def upload_url_ttl_seconds() -> int:
    return integer("UPLOAD_URL_TTL_SECONDS", 300)


UPLOAD_WAIT_MARGIN_SECONDS = 900  # an upload landing as its URL expires still has its S3 event to deliver


def upload_wait_seconds() -> int:
    """How long a job waits for its photo after its newest upload URL was issued (``UPLOAD_WAIT_SECONDS``, default
    24 h) before the sweeper ends it (``upload_expired``). Never less than the URL's own lifetime plus a margin
    for the upload's S3 event, so an upload made with a valid URL is never refused by the expiry."""
    return max(integer("UPLOAD_WAIT_SECONDS", 86_400), upload_url_ttl_seconds() + UPLOAD_WAIT_MARGIN_SECONDS)


def result_url_ttl_seconds() -> int:
    return integer("RESULT_URL_TTL_SECONDS", 900)


def signup_grant_credits() -> int:
    return integer("SIGNUP_GRANT_CREDITS", 10)


def inference_timeout_seconds() -> int:
    return integer("INFERENCE_TIMEOUT_SECONDS", 3600)


def max_image_pixels() -> int:
    return integer("MAX_IMAGE_PIXELS", 50_000_000)


def web_origins() -> frozenset[str]:
    """Origins of the PWA (``WEB_ORIGINS``, comma-separated); Checkout return URLs must be on one of them."""
    raw = os.environ.get("WEB_ORIGINS", "")
    return frozenset(o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip())


def download_url_ttl_seconds() -> int:
    """Lifetime of ``GET /v1/jobs/{id}/download`` links (short: they are for an immediate download)."""
    return integer("DOWNLOAD_URL_TTL_SECONDS", 300)


SCHEDULER_MODES = ("fair", "fifo")


def scheduler_mode() -> str:
    """How the GPU queue hands jobs to the endpoint (``SCHEDULER_MODE``): ``fair`` (the default: lanes, then
    round-robin across tenants, at most ``inference_max_in_flight`` at the endpoint) or ``fifo`` (every job at once
    in arrival order, the endpoint's own queue decides: the behaviour before the scheduler, for comparison)."""
    raw = os.environ.get("SCHEDULER_MODE", "").strip().lower() or "fair"
    if raw not in SCHEDULER_MODES:
        raise ConfigError(f"environment variable SCHEDULER_MODE must be fair or fifo, got {raw!r}")
    return raw


def queue_wait_seconds() -> int:
    """The longest an interactive job (a single photo) waits in the GPU queue before it fails ``queue_timeout``
    (``QUEUE_WAIT_SECONDS``, default 1 hour); its credit hold covers this wait plus the inference timeout."""
    return positive("QUEUE_WAIT_SECONDS", 3600)


def batch_queue_wait_seconds() -> int:
    """The longest a batch job (lanes ``normal`` and ``bulk``) waits in the GPU queue before it fails
    ``queue_timeout`` (``BATCH_QUEUE_WAIT_SECONDS``, default 24 hours: a large drop is served over hours)."""
    return positive("BATCH_QUEUE_WAIT_SECONDS", 86_400)


def _non_negative(name: str, default: int) -> int:
    value = integer(name, default)
    if value < 0:
        raise ConfigError(f"environment variable {name} must be >= 0, got {value}")
    return value


def _endpoint_slots() -> int:
    return positive("INFERENCE_INSTANCES", 1) * positive("INFERENCE_CONCURRENCY_PER_INSTANCE", 1)


def inference_max_in_flight() -> int:
    """The most jobs at the endpoint at once (dispatched, no result yet). ``INFERENCE_MAX_IN_FLIGHT`` when set;
    else ``INFERENCE_INSTANCES`` (the endpoint's most instances) x ``INFERENCE_CONCURRENCY_PER_INSTANCE`` (its
    ``MaxConcurrentInvocationsPerInstance``) + ``INFERENCE_DISPATCH_BUFFER`` (default 1: the next job is already
    at the endpoint when one finishes). CDK sets the last three from the values infra/inference.py deploys."""
    if os.environ.get("INFERENCE_MAX_IN_FLIGHT", "").strip():
        return positive("INFERENCE_MAX_IN_FLIGHT", 1)
    return _endpoint_slots() + _non_negative("INFERENCE_DISPATCH_BUFFER", 1)


def inference_batch_max_in_flight() -> int:
    """The most jobs of the batch lanes (``normal``, ``bulk``) at the endpoint at once: its invocation slots
    (instances x concurrency per instance) + ``INFERENCE_BATCH_DISPATCH_BUFFER`` (default 0), never more than
    :func:`inference_max_in_flight`. The dispatch buffer is kept for interactive work, so a single photo finds at
    most the jobs running ahead of it, never a batch job waiting in the endpoint's own first-come queue; the price
    is the hand-over gap between batch jobs (a notification and a dispatch: about a second, against tens of
    seconds of diffusion). With ``INFERENCE_MAX_IN_FLIGHT`` set, that cap serves every lane."""
    if os.environ.get("INFERENCE_MAX_IN_FLIGHT", "").strip():
        return inference_max_in_flight()
    batch = _endpoint_slots() + _non_negative("INFERENCE_BATCH_DISPATCH_BUFFER", 0)
    return min(batch, inference_max_in_flight())


def inference_dispatch_attempts() -> int:
    """How many times a job is handed to the endpoint before a failing ``InvokeEndpointAsync`` fails the job
    (``INFERENCE_DISPATCH_ATTEMPTS``, default 5; between attempts the job waits in the queue with backoff)."""
    return positive("INFERENCE_DISPATCH_ATTEMPTS", 5)


def dispatch_function_name() -> str | None:
    """The dispatcher function (``DISPATCH_FUNCTION_NAME``) that the enqueue function and the notifier start
    asynchronously when a job is queued or a result is settled; unset: nobody is started (the schedule runs it)."""
    return os.environ.get("DISPATCH_FUNCTION_NAME", "").strip() or None


def user_pool_id() -> str:
    """The Cognito user pool of the API's users (API keys are created in it)."""
    return required("USER_POOL_ID")


def max_api_keys() -> int:
    """Active (unrevoked) API keys a tenant may hold at once."""
    return integer("MAX_API_KEYS", 20)


def s3_public_url() -> str | None:
    """Local mode only: the base URL (``S3_PUBLIC_URL``) through which browsers reach the emulated S3; pre-signed
    URLs are rewritten onto it. Unset in the cloud (the URLs stay S3's own)."""
    return os.environ.get("S3_PUBLIC_URL", "").strip().rstrip("/") or None


def stripe_api_base() -> str | None:
    """Another Stripe API endpoint (``STRIPE_API_BASE``: the local emulator or stripe-mock); unset → api.stripe.com."""
    return os.environ.get("STRIPE_API_BASE", "").strip().rstrip("/") or None


def drop_bucket() -> str:
    """The bulk drop-folder bucket (``drop/{tenant}/{batch}/{file}``)."""
    return required("DROP_BUCKET")


def manifest_max_bytes() -> int:
    """The largest batch manifest (JSON or CSV) that is read; a larger one is refused as a whole."""
    return integer("MANIFEST_MAX_BYTES", 5 * 1024 * 1024)


def manifest_max_files() -> int:
    """The most files one manifest may name."""
    return integer("MANIFEST_MAX_FILES", 10_000)


def deployment_id() -> str:
    """This deployment's identifier (``MODAMODA_DEPLOYMENT``, set by CDK: account, region and stack; ``local`` in
    the local stack). Every Stripe object the app creates carries it in its metadata (``modamoda_deployment``), so
    that of several deployments sharing one Stripe account only the one that created an object claims it."""
    return required("MODAMODA_DEPLOYMENT")
