"""Settings of one deployment, read from CDK context (``cdk.json`` or ``-c key=value``)."""

from __future__ import annotations

import json
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
    """

    stage: str = "dev"
    web_origin: str | None = None
    inference_instance_type: str = "ml.g5.xlarge"
    inference_max_instances: int = 2
    log_level: str = "INFO"
    rds_proxy: bool = False
    alarm_email: str | None = None
    accept_signin_scope: bool = True
    email_from: str = "Modamoda <no-reply@modamoda.example>"

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"

    @property
    def stack_name(self) -> str:
        return f"Modamoda-{self.stage}"

    @property
    def endpoint_name(self) -> str:
        return f"modamoda-{self.stage}-inference"

    @classmethod
    def from_context(cls, node: Node) -> StageConfig:
        def get(key: str, default: Any) -> Any:
            value = node.try_get_context(key)
            return default if value is None or value == "" else value

        stage = str(get("stage", cls.stage))
        if not stage.replace("-", "").isalnum() or not stage.islower():
            raise ValueError(f"context 'stage' must be lower-case letters, digits and '-', got {stage!r}")
        web_origin = get("web_origin", None)
        alarm_email = get("alarm_email", None)
        if alarm_email is not None and "@" not in str(alarm_email):
            raise ValueError(f"context 'alarm_email' must be an e-mail address, got {alarm_email!r}")
        email_from = str(get("email_from", cls.email_from))
        if "@" not in email_from:
            raise ValueError(f"context 'email_from' must be an e-mail address, got {email_from!r}")
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
        )
