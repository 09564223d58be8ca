"""Settings of one deployment, read from CDK context (``cdk.json`` or ``-c key=value``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from constructs import Node

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = PROJECT_ROOT / "cdk.json"
FUNCTIONS_DIR = PROJECT_ROOT / "functions"
MIGRATIONS_DIR = FUNCTIONS_DIR / "common" / "migrations"
STATE_MACHINE_FILE = PROJECT_ROOT / "statemachines" / "job.asl.json"
INFERENCE_CONTAINER_DIR = PROJECT_ROOT / "inference_container"
WEB_DIR = PROJECT_ROOT / "web"
# The PWA served locally (`make serve`); a non-prod stage accepts it as a browser origin besides CloudFront.
LOCAL_DEV_ORIGIN = "http://localhost:8787"  # `make serve`

# Names built from the stage, and the limits AWS sets on them (checked by ``validate_stage``):
# * the Cognito hosted-UI domain prefix ``modamoda-{stage}-{account id}`` (infra/api.py): 1 to 63 characters of
#   ``^[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$`` (CreateUserPoolDomain / AWS::Cognito::UserPoolDomain ``Domain``),
#   and Cognito refuses a prefix that contains ``aws``, ``amazon`` or ``cognito`` ("Domain cannot contain reserved
#   word");
# * the SageMaker endpoint name ``modamoda-{stage}-{instance}`` (the instance type, ``ml.g5.xlarge`` →
#   ``g5-xlarge``: a new instance type is a new endpoint, see infra/inference.py): at most 63 characters of
#   ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`` (CreateEndpoint ``EndpointName``; infra/inference.py checks the name).
COGNITO_DOMAIN_PREFIX = "modamoda-{stage}-{account}"
COGNITO_DOMAIN_MAX = 63
COGNITO_RESERVED_WORDS = ("aws", "amazon", "cognito")
ACCOUNT_ID_LENGTH = 12
ENDPOINT_NAME = "modamoda-{stage}-{instance}"
ENDPOINT_NAME_MAX = 63
DEFAULT_INFERENCE_INSTANCE_TYPE = "ml.g5.xlarge"


def instance_slug(instance_type: str) -> str:
    """``ml.g5.xlarge`` → ``g5-xlarge``: the instance type as it appears in the endpoint's name."""
    return instance_type.removeprefix("ml.").replace(".", "-").lower()


STAGE_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
STAGE_MAX_LENGTH = min(
    COGNITO_DOMAIN_MAX - len(COGNITO_DOMAIN_PREFIX.format(stage="", account="0" * ACCOUNT_ID_LENGTH)),
    ENDPOINT_NAME_MAX
    - len(ENDPOINT_NAME.format(stage="", instance=instance_slug(DEFAULT_INFERENCE_INSTANCE_TYPE))),
)  # 41: the Cognito domain prefix is the tighter limit

# The AWS WAF rate-based rule on the user pool's sign-up (infra/api.py): requests per IP address in a five-minute
# window; AWS WAF's lowest rate limit is 10; 0 leaves the pool without a web ACL (for Regions where AWS WAF cannot
# protect a user pool).
SIGNUP_RATE_LIMIT_MIN = 10
SIGNUP_RATE_LIMIT_MAX = 2_000_000_000
DEFAULT_SIGNUP_RATE_LIMIT = 20

# Lambda's SQS event sources: the most concurrent invocations each may run (``ScalingConfig.MaximumConcurrency``,
# 2 to 1000 per AWS). Every invocation holds a database connection, and dev connects to Aurora without RDS Proxy.
SQS_MAX_CONCURRENCY_RANGE = (2, 1000)
# The studio engine's function in prod: 50 executions reserved (about 45 photos a second at ~1.1 s each).
STUDIO_PROD_RESERVED_CONCURRENCY = 50

# Standard CDK context key: the stacks whose assets are bundled; ``[]`` skips all bundling (tests, fast synth)
BUNDLING_STACKS_KEY = "aws:cdk:bundling-stacks"


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` of ``cdk.json``, for in-process synthesis that the CDK CLI does not drive."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


def _flag(value: Any) -> bool:
    """A boolean from context: JSON ``true``/``false`` (cdk.json) or the strings ``-c key=true`` passes."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


@dataclass(frozen=True)
class StageConfig:
    """Everything that differs between deployments of the one stack (CDK context keys of the same names).

    * ``web_origin``: the PWA's origin for CORS, Cognito callbacks and Checkout return URLs. Unset (the default),
      it is the stack's own CloudFront URL (plus ``LOCAL_DEV_ORIGIN`` outside prod).
    * ``rds_proxy``: put an RDS Proxy between the functions and Aurora; defaults to on in prod only.
    * ``alarm_email``: subscribe this address to the alarm topic (a confirmation mail is sent).
    * ``accept_signin_scope``: the API also accepts access tokens of direct (SRP) sign-in, whose only scope is
      ``aws.cognito.signin.user.admin``; ``false`` requires the ``modamoda/api`` scope (hosted UI, code + PKCE).
    * ``email_from``: the sender of the batch e-mails (``Name <address>`` or an address); the stack creates its SES
      identity, and SES sends once the address is verified (and the account is out of the SES sandbox).
    * ``start_max_concurrency`` / ``webhooks_max_concurrency``: the maximum concurrency of the SQS event sources
      of StartWorkflow and Webhooks (2 to 1000); defaults 2 and 2, in prod 10 and 5. A bulk drop then waits in the
      queue instead of fanning out into as many functions (and database connections) as the account allows.
    * ``stage``: lower-case letters, digits and '-', at most ``STAGE_MAX_LENGTH`` (41) characters (see above).
    * ``model_data``: the diffusion (and segmentation) weights in S3, as ``scripts/pack_model.py --upload`` wrote
      them: a prefix ``s3://bucket/path/`` (deployed uncompressed) or a ``.tar.gz`` object. Unset, the endpoint
      runs ghost packshots only and the API refuses on-model jobs (infra/inference.py).
    * ``cognito_ses_identity``: the SES identity (a domain, or the ``email_from`` address itself) verified in the
      deployment's account and Region through which Cognito sends sign-up codes and password resets, from
      ``email_from`` (``EmailSendingAccount: DEVELOPER``). Cognito checks at deploy time that it is verified. Unset,
      Cognito's own sender is used (50 e-mails a day per account), which only non-prod stages accept: the
      synthesis warns, and prod refuses to synthesise (infra/stack.py).
    * ``signup_rate_limit``: AWS WAF blocks an IP address that makes more than this many sign-up, resend-code and
      forgot-password requests to the user pool in five minutes (10 at least; default 20); 0: no web ACL.
    * ``ghost_on_lambda``: ghost work the studio engine does runs on its Lambda function (default ``true``);
      ``false`` sends it to the GPU endpoint like on-model work (``GHOST_ON_LAMBDA``, infra/studio.py).
    * ``studio_reserved_concurrency``: concurrency reserved for (and capping) the studio engine's function; default
      50 in prod, none elsewhere (a new account's low concurrency limit leaves nothing to reserve); 0: none.
    """

    stage: str = "dev"
    web_origin: str | None = None
    inference_instance_type: str = DEFAULT_INFERENCE_INSTANCE_TYPE
    inference_max_instances: int = 2
    log_level: str = "INFO"
    rds_proxy: bool = False
    alarm_email: str | None = None
    accept_signin_scope: bool = True
    email_from: str = "Modamoda <no-reply@modamoda.example>"
    start_max_concurrency: int = 2
    """StartWorkflow instances the start queue may run at once (batches of 10 uploads); prod: 10."""
    webhooks_max_concurrency: int = 2
    """Webhooks instances the webhooks queue may run at once (batches of 5 deliveries); prod: 5."""
    model_data: str | None = None
    cognito_ses_identity: str | None = None
    signup_rate_limit: int = DEFAULT_SIGNUP_RATE_LIMIT
    ghost_on_lambda: bool = True
    studio_reserved_concurrency: int | None = None

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"

    @property
    def stack_name(self) -> str:
        return f"Modamoda-{self.stage}"

    @property
    def endpoint_name(self) -> str:
        return ENDPOINT_NAME.format(stage=self.stage, instance=instance_slug(self.inference_instance_type))

    @classmethod
    def from_context(cls, node: Node) -> StageConfig:
        def get(key: str, default: Any) -> Any:
            value = node.try_get_context(key)
            return default if value is None or value == "" else value

        stage = validate_stage(str(get("stage", cls.stage)))
        is_prod = stage == "prod"
        web_origin = get("web_origin", None)
        alarm_email = get("alarm_email", None)
        if alarm_email is not None and "@" not in str(alarm_email):
            raise ValueError(f"context 'alarm_email' must be an e-mail address, got {alarm_email!r}")
        email_from = str(get("email_from", cls.email_from))
        if "@" not in email_from:
            raise ValueError(f"context 'email_from' must be an e-mail address, got {email_from!r}")
        ses_identity = get("cognito_ses_identity", None)
        return cls(
            stage=stage,
            web_origin=None if web_origin is None else str(web_origin).rstrip("/"),
            inference_instance_type=str(get("inference_instance_type", cls.inference_instance_type)),
            inference_max_instances=int(get("inference_max_instances", cls.inference_max_instances)),
            log_level=str(get("log_level", cls.log_level)).upper(),
            rds_proxy=_flag(get("rds_proxy", stage == "prod")),
            alarm_email=None if alarm_email is None else str(alarm_email),
            accept_signin_scope=_flag(get("accept_signin_scope", cls.accept_signin_scope)),
            email_from=email_from,
            start_max_concurrency=_max_concurrency(get, "start_max_concurrency", 10 if is_prod else 2),
            webhooks_max_concurrency=_max_concurrency(get, "webhooks_max_concurrency", 5 if is_prod else 2),
            model_data=None if get("model_data", None) is None else str(get("model_data", None)).strip(),
            cognito_ses_identity=None
            if ses_identity is None
            else validate_ses_identity(str(ses_identity), email_from),
            signup_rate_limit=_signup_rate_limit(get("signup_rate_limit", cls.signup_rate_limit)),
            ghost_on_lambda=_flag(get("ghost_on_lambda", cls.ghost_on_lambda)),
            studio_reserved_concurrency=_reserved_concurrency(
                get("studio_reserved_concurrency", STUDIO_PROD_RESERVED_CONCURRENCY if is_prod else 0)
            ),
        )


def _reserved_concurrency(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"context 'studio_reserved_concurrency' must be a whole number, got {value!r}"
        ) from None
    if number < 0:
        raise ValueError(f"context 'studio_reserved_concurrency' must be 0 (none) or more, got {number}")
    return number or None


def validate_stage(stage: str) -> str:
    """``stage`` if every name built from it is valid in AWS; otherwise a ``ValueError`` naming the limit.

    Checked before any construct exists, so that a long or odd stage fails the synthesis with a clear message
    rather than the deployment half-way (Cognito or SageMaker refusing the name)."""
    if not STAGE_PATTERN.fullmatch(stage):
        raise ValueError(
            f"context 'stage' must be lower-case letters (a-z), digits and '-', neither first nor last, got "
            f"{stage!r}: it is part of the Cognito domain prefix (^[a-z0-9](?:[a-z0-9\\-]{{0,61}}[a-z0-9])?$)"
        )
    if len(stage) > STAGE_MAX_LENGTH:
        domain = COGNITO_DOMAIN_PREFIX.format(stage=stage, account="1" * ACCOUNT_ID_LENGTH)
        raise ValueError(
            f"context 'stage' may have at most {STAGE_MAX_LENGTH} characters, {stage!r} has {len(stage)}: the "
            f"Cognito domain prefix modamoda-<stage>-<12-digit account id> would be {len(domain)} characters, and "
            f"Cognito allows {COGNITO_DOMAIN_MAX} (the SageMaker endpoint name "
            f"{ENDPOINT_NAME.format(stage='<stage>', instance='<instance type>')} allows {ENDPOINT_NAME_MAX})"
        )
    reserved = [word for word in COGNITO_RESERVED_WORDS if word in stage]
    if reserved:
        raise ValueError(
            f"context 'stage' must not contain {reserved[0]!r} ({stage!r}): Cognito refuses a domain prefix with "
            f"any of the reserved words {', '.join(COGNITO_RESERVED_WORDS)}"
        )
    return stage


def _max_concurrency(get: Any, key: str, default: int) -> int:
    low, high = SQS_MAX_CONCURRENCY_RANGE
    value = get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"context {key!r} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(
            f"context {key!r} must be between {low} and {high} (Lambda's SQS maximum concurrency), got {number}"
        )
    return number


def validate_ses_identity(identity: str, email_from: str) -> str:
    """``identity`` (lower-cased) if Cognito can send from ``email_from`` through it: the sender's own address, or
    the domain of that address (Cognito's ``SourceArn`` names the identity, its ``From`` the sender)."""
    from email.utils import parseaddr

    identity = identity.strip().lower()
    address = parseaddr(email_from)[1].lower()
    domain = address.rpartition("@")[2]
    if identity not in {address, domain}:
        raise ValueError(
            f"context 'cognito_ses_identity' must be the SES identity Cognito sends email_from ({address}) through: "
            f"that address or its domain {domain!r}, got {identity!r}"
        )
    return identity


def _signup_rate_limit(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"context 'signup_rate_limit' must be a whole number, got {value!r}") from None
    if number != 0 and not SIGNUP_RATE_LIMIT_MIN <= number <= SIGNUP_RATE_LIMIT_MAX:
        raise ValueError(
            f"context 'signup_rate_limit' must be 0 (no web ACL) or between {SIGNUP_RATE_LIMIT_MIN} and "
            f"{SIGNUP_RATE_LIMIT_MAX} (AWS WAF's rate-based rule limits), got {number}"
        )
    return number
