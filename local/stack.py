"""The whole Modamoda flow on one machine: PostgreSQL from pgserver, AWS emulated in-process by moto, the
project's handlers as in-process Lambdas (the studio engine's Lambda function among them, for ghost work), the state
machine file on moto's ASL interpreter, the inference container's HTTP server on localhost behind the SageMaker
async adapter, and an event pump standing in for the
Lambda event-source mappings (SQS → start-workflow, SNS → notifier, SQS → webhooks). A web server (local/web.py) serves the PWA,
Cognito's browser endpoint, the S3 proxy for pre-signed URLs and the Stripe emulator's test Checkout
(local/stripe_emulator.py); the billing code reaches that emulator over HTTP (``STRIPE_API_BASE``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe as secrets_token
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
ASL_FILE = ROOT / "statemachines" / "job.asl.json"
if str(ROOT / "inference_container") not in sys.path:  # the container's code, run natively
    sys.path.insert(0, str(ROOT / "inference_container"))

from local.lambda_runtime import ACCOUNT, REGION, LocalLambda, asl_values  # noqa: E402

log = logging.getLogger("modamoda.local")

UPLOAD_BUCKET = "modamoda-local-uploads"
RESULTS_BUCKET = "modamoda-local-results"
DROP_BUCKET = "modamoda-local-drop"  # bulk: drop/{tenant}/{batch}/{file}
ENDPOINT_NAME = "modamoda-local-inference"
STATE_MACHINE_NAME = "modamoda-local-job"
STUDIO_FUNCTION = "modamoda-studio-engine"  # the studio engine's Lambda function (local/lambda_runtime.py)
STRIPE_SECRET_NAME = "modamoda/local/stripe"  # noqa: S105 - a secret's name
EMAIL_FROM = "Modamoda <no-reply@modamoda.local>"  # a verified identity of the emulated SES
WEBHOOK_PATH = "/v1/billing/stripe/webhook"
# The scopes the cloud's JWT authorizer requires, any one (infra/api.py: API_SCOPE_FULL, SIGNIN_SCOPE with the
# default accept_signin_scope): access tokens pass, ID tokens (no scope) do not.
API_SCOPES = ("modamoda/api", "aws.cognito.signin.user.admin")


@dataclass
class LocalSettings:
    inference_timeout_seconds: int = 600
    container_port: int = 0
    api_port: int = 0
    web_port: int = 0  # the PWA, /config.json, /local/cognito, /local/s3, /local/stripe (0: any free port)
    web_app_dir: Path | None = None  # default web/app
    engines: tuple[str, ...] = ("studio",)
    log_level: str = "WARNING"
    database_url: str | None = field(default_factory=lambda: os.environ.get("DATABASE_URL") or None)
    database_admin_url: str | None = field(
        default_factory=lambda: os.environ.get("DATABASE_ADMIN_URL") or None
    )
    pump_interval_seconds: float = 0.05
    # Sign-ups through the local Cognito endpoint wait for the code Cognito would mail (read it from
    # ``stack.web.mailbox`` or ``stack.last_code(email)``), and confirmation and reset codes are checked. Off: a
    # sign-up is confirmed at once and any reset code is accepted (``make demo``, ``make serve``).
    confirm_sign_ups: bool = False
    # Whether the API offers on-model work (CDK's ON_MODEL_AVAILABLE). None: where the diffusion engine runs. True
    # without it: a deployment whose endpoint lacks the weights, so that the engine's own refusal is exercised.
    offer_on_model: bool | None = None
    # Ghost work the studio engine does runs on its Lambda function, in-process here (CDK's GHOST_ON_LAMBDA, on by
    # default); False sends it to the async endpoint like on-model work (the GPU path with a test engine).
    ghost_on_lambda: bool = True
    # A slow engine of known duration for benchmarks (bench/fairness.py): the container answers ghost requests
    # with a stand-in engine that does no work (local/standin_engine.py, in place of studio) and every invocation
    # of the local async endpoint lasts this many seconds (the worker waits out the rest), so that a measurement
    # sees queueing, not the engine's variable CPU time. 0 (default): the real engines, as fast as they answer.
    endpoint_invocation_seconds: float = 0.0
    # The GPU queue (functions/common/scheduler.py). The mode: None keeps the environment's SCHEDULER_MODE (default
    # fair), else "fair" or "fifo". The cap on jobs at the endpoint: None keeps INFERENCE_MAX_IN_FLIGHT if set, else
    # the local endpoint's one instance x one worker + INFERENCE_DISPATCH_BUFFER (default 1), as CDK derives it.
    scheduler_mode: str | None = None
    inference_max_in_flight: int | None = None
    queue_wait_seconds: int = 600  # QUEUE_WAIT_SECONDS: an interactive job's longest wait in the queue
    batch_queue_wait_seconds: int = 3600  # BATCH_QUEUE_WAIT_SECONDS: a batch job's
    # The dispatcher's schedule (EventBridge every minute in AWS): timeouts and retries after backoff are noticed
    # this often; a queued job and a settled result start it at once, as in AWS.
    dispatch_interval_seconds: float = 0.5


SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
DISPATCH_FUNCTION = "modamoda-dispatch-inference"


def substitute(definition: str, values: dict[str, str]) -> str:
    """What CDK's ``definition_substitutions`` does to the file: replace ``${Name}`` placeholders."""
    missing = set(re.findall(r"\$\{(\w+)\}", definition)) - set(values)
    if missing:
        raise ValueError(f"state machine placeholders without values: {sorted(missing)}")
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], definition)


def sns_event(envelope: dict[str, Any]) -> dict[str, Any]:
    """The Lambda event SNS delivers for one message, from the message's SNS envelope (as an SQS subscription
    receives it: ``Type``, ``MessageId``, ``TopicArn``, ``Message``, ``Timestamp``...)."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{envelope.get('TopicArn')}:local",
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId"),
                    "TopicArn": envelope.get("TopicArn"),
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope.get("Timestamp"),
                    "SignatureVersion": "1",
                    "Signature": "local",
                    "SigningCertUrl": "",
                    "UnsubscribeUrl": "",
                    "MessageAttributes": envelope.get("MessageAttributes", {}),
                },
            }
        ]
    }


class Timer:
    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.marks[name] = time.perf_counter() - started


class LocalStack:
    """Start with ``with LocalStack() as stack:``; everything stops and is cleaned up on exit."""

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self.timer = Timer()
        self.lambdas = LocalLambda()
        self._saved_env: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._next_dispatch = 0.0
        self._threads: list[threading.Thread] = []
        # pumps (event source mappings) switched off by tests (``paused``), by thread name: "pump-drop-start", ...
        self._paused_pumps: set[str] = set()
        self._pump_steps: dict[str, threading.Lock] = {}  # held while a pump runs a step
        self._tmp: Path | None = None
        self._pg: Any = None
        self._mock: Any = None
        self.pump_errors: list[str] = []
        self.studio: Any = None  # the studio function (modamoda_inference.lambda_handler.StudioFunction)
        self.web_url = ""
        self.api_url = ""

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _offers_on_model(self) -> bool:
        if self.settings.offer_on_model is not None:
            return self.settings.offer_on_model
        return "diffusion" in self.settings.engines

    def _setenv(self, **values: str) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def start(self) -> None:
        from moto import mock_aws

        from local import moto_s3_lock

        moto_s3_lock.install()  # concurrent Lambda environments may write one object at once

        logging.getLogger("moto").setLevel(
            logging.CRITICAL
        )  # the ASL interpreter logs every Fail state as ERROR

        self._tmp = Path(tempfile.mkdtemp(prefix="mm-"))
        self._setenv(
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fake credentials
            AWS_SESSION_TOKEN="testing",  # noqa: S106
            POWERTOOLS_SERVICE_NAME="modamoda",
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_METRICS_DISABLED="true",
            POWERTOOLS_LOG_LEVEL=self.settings.log_level,
            MOTO_ALLOW_NONEXISTENT_REGION="false",
        )
        with self.timer.stage("aws"):
            self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
            self._mock.start()
            boto3.setup_default_session(region_name=REGION)
            self.session = boto3.DEFAULT_SESSION
            assert self.session is not None
            self._make_aws_resources()
        with self.timer.stage("postgres"):
            self._start_database()
        from functions.common import aws, db
        from functions.common.observability import logger

        logger.setLevel(self.settings.log_level)
        aws.reset()
        db.reset()
        with self.timer.stage("migrations"):
            db.migrate()
        self._setenv(
            UPLOAD_BUCKET=UPLOAD_BUCKET,
            RESULTS_BUCKET=RESULTS_BUCKET,
            DROP_BUCKET=DROP_BUCKET,
            STATE_MACHINE_ARN=self.state_machine_arn,
            INFERENCE_ENDPOINT_NAME=ENDPOINT_NAME,
            INFERENCE_TIMEOUT_SECONDS=str(self.settings.inference_timeout_seconds),
            # as CDK does from its model_data: on-model is offered only where the diffusion engine runs
            ON_MODEL_AVAILABLE="true" if self._offers_on_model() else "false",
            GHOST_ON_LAMBDA="true" if self.settings.ghost_on_lambda else "false",
            WEBHOOK_QUEUE_URL=self.webhook_queue_url,
            EMAIL_FROM=EMAIL_FROM,
            LOCAL_WEBHOOKS_ALLOW_LOOPBACK="1",  # customers' test receivers run on this machine
            QUEUE_WAIT_SECONDS=str(self.settings.queue_wait_seconds),
            BATCH_QUEUE_WAIT_SECONDS=str(self.settings.batch_queue_wait_seconds),
            # the local async endpoint: one instance, one worker (MaxConcurrentInvocationsPerInstance = 1)
            INFERENCE_INSTANCES="1",
            INFERENCE_CONCURRENCY_PER_INSTANCE="1",
            DISPATCH_FUNCTION_NAME=DISPATCH_FUNCTION,
        )
        if self.settings.scheduler_mode is not None:
            self._setenv(SCHEDULER_MODE=self.settings.scheduler_mode)
        if self.settings.inference_max_in_flight is not None:
            self._setenv(INFERENCE_MAX_IN_FLIGHT=str(self.settings.inference_max_in_flight))
        with self.timer.stage("web"):
            self._make_web()
        self.lambdas.install(self.session)
        with self.timer.stage("inference_container"):
            self._start_container()
        with self.timer.stage("studio_function"):
            self._start_studio_function()
        with self.timer.stage("api"):
            self._start_api()
        self.web.config.api_url = self.api_url
        self.stripe.webhook_url = f"{self.api_url}{WEBHOOK_PATH}"
        self.web.start()
        self._start_pump()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.lambdas.drain()  # asynchronous invocations (the dispatcher's kicks) finish before anything stops
        for closer in ("web", "api", "endpoint", "container"):
            obj = getattr(self, closer, None)
            if obj is None:
                continue
            try:
                if closer in {"web", "api"}:
                    obj.stop()
                elif closer == "endpoint":
                    obj.uninstall(self.session)
                    obj.shutdown()
                else:
                    obj.shutdown()
                    obj.server_close()
            except Exception as exc:  # keep stopping the rest
                log.warning("stopping %s: %s", closer, exc)
        if getattr(self, "studio", None) is not None:
            import modamoda_inference.lambda_handler as lambda_handler

            lambda_handler.configure(None)
            self.studio = None
        if hasattr(self, "session") and self.session is not None:
            try:
                self.lambdas.uninstall(self.session)
            except Exception as exc:
                log.debug("uninstall: %s", exc)
        try:
            from functions.common import aws, billing, db

            db.reset()
            aws.reset()
            billing.reset()
        except Exception as exc:
            log.debug("reset: %s", exc)
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # ---- pieces ------------------------------------------------------------------------------------------------

    def _start_database(self) -> None:
        url = self.settings.database_url
        if (
            url
        ):  # an external PostgreSQL: DATABASE_ADMIN_URL (owner) migrates, DATABASE_URL (modamoda_app) serves
            self._setenv(DATABASE_URL=url, DATABASE_ADMIN_URL=self.settings.database_admin_url or url)
            return
        import pgserver

        assert self._tmp is not None
        self._pg = pgserver.get_server(self._tmp / "pg", cleanup_mode="delete")
        socket_dir = str(self._tmp / "pg")
        # The cloud path: the owner's and the application role's credentials come from Secrets Manager secrets.
        base = {"engine": "postgres", "host": socket_dir, "port": 5432, "dbname": "postgres"}
        secrets = self.client("secretsmanager")
        admin = secrets.create_secret(
            Name="modamoda/local/database-admin",
            SecretString=json.dumps({**base, "username": "postgres", "password": ""}),
        )
        app = secrets.create_secret(
            Name="modamoda/local/database-app",
            SecretString=json.dumps({**base, "username": "modamoda_app", "password": secrets_token()}),
        )
        for key in ("DATABASE_URL", "DATABASE_ADMIN_URL"):
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ.pop(key, None)
        self._setenv(DB_ADMIN_SECRET_ARN=admin["ARN"], DB_SECRET_ARN=app["ARN"], DB_SSLMODE="disable")

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    def _make_aws_resources(self) -> None:
        s3, sqs, events, sns = (
            self.client("s3"),
            self.client("sqs"),
            self.client("events"),
            self.client("sns"),
        )
        for bucket in (UPLOAD_BUCKET, RESULTS_BUCKET, DROP_BUCKET):
            s3.create_bucket(Bucket=bucket)
        for bucket in (UPLOAD_BUCKET, DROP_BUCKET):  # S3 events start work: versioned, to EventBridge
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

        def queue(name: str) -> tuple[str, str]:
            dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            url = sqs.create_queue(
                QueueName=name,
                Attributes={
                    "VisibilityTimeout": "2",
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
                },
            )["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            return url, arn

        # Uploads and the bulk drop folder each feed their own start queue (as infra/pipeline.py's two rules do),
        # both consumed by StartWorkflow: an upload never waits behind a drop's backlog.
        self.start_queue_url, start_queue_arn = queue("modamoda-local-start")
        self.drop_start_queue_url, drop_start_queue_arn = queue("modamoda-local-drop-start")
        for rule, bucket, prefix, target_arn in (
            ("modamoda-local-upload-created", UPLOAD_BUCKET, "uploads/", start_queue_arn),
            ("modamoda-local-drop-created", DROP_BUCKET, "drop/", drop_start_queue_arn),
        ):
            events.put_rule(
                Name=rule,
                EventPattern=json.dumps(
                    {
                        "source": ["aws.s3"],
                        "detail-type": ["Object Created"],
                        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": prefix}]}},
                    }
                ),
            )
            events.put_targets(Rule=rule, Targets=[{"Id": "start", "Arn": target_arn}])

        self.notify_queue_url, notify_queue_arn = queue("modamoda-local-notify")
        self.success_topic_arn = sns.create_topic(Name="modamoda-local-inference-success")["TopicArn"]
        self.error_topic_arn = sns.create_topic(Name="modamoda-local-inference-error")["TopicArn"]
        for topic in (self.success_topic_arn, self.error_topic_arn):
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=notify_queue_arn)

        # Customer notifications: the outbox dispatcher → this queue → the webhooks function (signed webhooks,
        # batch e-mails through SES, whose sender identity is verified here as CDK creates it in the cloud).
        self.webhook_queue_url, _ = queue("modamoda-local-webhooks")
        self.client("ses").verify_email_identity(EmailAddress=EMAIL_FROM.rsplit("<", 1)[-1].rstrip(">"))

        cognito = self.client("cognito-idp")
        self.user_pool_id = cognito.create_user_pool(
            PoolName="modamoda-local",
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email"],
            Policies={
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireUppercase": True,
                    "RequireLowercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": False,
                }
            },
        )["UserPool"]["Id"]
        self.client_id = cognito.create_user_pool_client(
            UserPoolId=self.user_pool_id,
            ClientName="modamoda-web",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]

        definition = substitute(ASL_FILE.read_text(encoding="utf-8"), asl_values(RESULTS_BUCKET))
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=STATE_MACHINE_NAME,
            definition=definition,
            type="STANDARD",
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/modamoda-local-states",
        )["stateMachineArn"]

    def _make_web(self) -> None:
        """Bind the web server (its URL goes into the handlers' environment), create the Stripe secret and
        emulator. The server starts answering once the API runs."""
        from functions.common import billing, config
        from local.stripe_emulator import StripeEmulator
        from local.web import WEB_APP_DIR, LocalWebServer, WebConfig

        self.web = LocalWebServer(
            WebConfig(
                user_pool_id=self.user_pool_id,
                client_id=self.client_id,
                region=REGION,
                session=self.session,
                app_dir=self.settings.web_app_dir or WEB_APP_DIR,
                upload_max_bytes=config.upload_max_bytes,
                confirm_sign_ups=self.settings.confirm_sign_ups,
            ),
            port=self.settings.web_port,
        )
        self.web_url = self.web.url
        keys = {
            "api_key": f"sk_test_local{secrets_token(24)}",
            "webhook_secret": f"whsec_local{secrets_token(24)}",
        }
        arn = self.client("secretsmanager").create_secret(
            Name=STRIPE_SECRET_NAME, SecretString=json.dumps(keys)
        )["ARN"]
        self.stripe = StripeEmulator(
            keys["api_key"], keys["webhook_secret"], f"{self.web_url}/local/stripe/checkout"
        )
        self.web.config.stripe = self.stripe
        billing.reset()
        self._setenv(
            USER_POOL_ID=self.user_pool_id,
            S3_PUBLIC_URL=f"{self.web_url}/local/s3",
            STRIPE_SECRET_ARN=arn,
            STRIPE_API_BASE=f"{self.web_url}/local/stripe/api",
            MODAMODA_DEPLOYMENT="local",  # the deployment id on the Stripe objects this stack creates
            WEB_ORIGINS=",".join(self.web.origins),
        )

    def _start_container(self) -> None:
        from modamoda_inference.engines import load_engines
        from modamoda_inference.server import create_server

        from local.sagemaker_async import AsyncEndpointConfig, LocalAsyncEndpoint

        engines = load_engines(
            list(self.settings.engines), Path(os.environ.get("MODEL_DIR", "/opt/ml/model"))
        )
        if self.settings.endpoint_invocation_seconds > 0:  # benchmarks: a slow engine of known duration
            from local.standin_engine import StandInEngine

            engines["studio"] = StandInEngine()
            engines["studio"].load(Path())
        self.container = create_server("127.0.0.1", self.settings.container_port, engines)
        thread = threading.Thread(
            target=self.container.serve_forever, name="inference-container", daemon=True
        )
        thread.start()
        host, port = self.container.server_address[:2]
        self.container_url = f"http://{host!s}:{port}"
        self.endpoint = LocalAsyncEndpoint(
            AsyncEndpointConfig(
                endpoint_name=ENDPOINT_NAME,
                container_url=self.container_url,
                output_path=f"s3://{RESULTS_BUCKET}/inference/output",
                failure_path=f"s3://{RESULTS_BUCKET}/inference/failure",
                success_topic_arn=self.success_topic_arn,
                error_topic_arn=self.error_topic_arn,
                region=REGION,
                min_invocation_seconds=self.settings.endpoint_invocation_seconds,
            )
        )
        self.endpoint.install(self.session)

    def _start_studio_function(self) -> None:
        """The studio engine's Lambda function (``modamoda_inference.lambda_handler``, run in-process by the local
        Lambda runtime like the others): its own studio engine, loaded as in its image, without weights, and the
        async endpoint's output and failure paths."""
        import modamoda_inference.lambda_handler as lambda_handler
        from modamoda_inference.engines import load_engines
        from modamoda_inference.s3io import S3ImageSource, S3MetadataWriter, S3ObjectWriter
        from modamoda_inference.server import InferenceService

        assert self._tmp is not None
        no_weights = self._tmp / "studio-function-model"  # the image has no /opt/ml/model
        engines = load_engines(list(lambda_handler.ENGINES), no_weights)
        s3 = self.client("s3")  # the stack's session: no new credential lookup per client
        self.studio = lambda_handler.StudioFunction(
            InferenceService(
                engines,
                image_source=S3ImageSource(s3),
                metadata_writer=S3MetadataWriter(s3),
                model_dir=no_weights,
            ),
            output_path=f"s3://{RESULTS_BUCKET}/inference/output",
            failure_path=f"s3://{RESULTS_BUCKET}/inference/failure",
            writer=S3ObjectWriter(s3),
        )
        lambda_handler.configure(self.studio)

    def engine_path_of(self, job_id: str) -> str | None:
        """Which path made (or refused) the job's image here: ``studio engine on CPU (Lambda)`` when the studio
        function was invoked for it, ``GPU endpoint`` when the async endpoint was; None when neither was."""
        if any(
            i.function == STUDIO_FUNCTION
            and isinstance(i.payload, dict)
            and i.payload.get("job_id") == job_id
            for i in list(self.lambdas.invocations)
        ):
            return "studio engine on CPU (Lambda)"
        if any(i.inference_id == job_id for i in list(self.endpoint.invocations)):
            return "GPU endpoint"
        return None

    def _start_api(self) -> None:
        from local.gateway import JwtAuthorizer, LocalHttpApi, moto_cognito_jwks

        authorizer = JwtAuthorizer(
            issuer=f"https://cognito-idp.{REGION}.amazonaws.com/{self.user_pool_id}",
            audiences=[self.client_id],
            jwks=moto_cognito_jwks(),
            required_scopes=list(API_SCOPES),
        )
        self.api = LocalHttpApi(
            self.lambdas, authorizer, port=self.settings.api_port, cors_origins=self.web.origins
        ).start()
        self.api_url = self.api.url

    # ---- event pump: the Lambda event-source mappings -----------------------------------------------------------

    def _start_pump(self) -> None:
        for name, target in (
            ("pump-start", self._pump_start_queue),
            ("pump-drop-start", self._pump_drop_start_queue),
            ("pump-notify", self._pump_notify_queue),
            ("pump-webhooks", self._pump_webhooks_queue),
            ("pump-dispatch", self._pump_dispatch),
        ):
            self._pump_steps[name] = threading.Lock()
            thread = threading.Thread(target=self._loop, args=(name, target), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self, name: str, step: Callable[[], int]) -> None:
        sqs = self.client("sqs")
        self._sqs = sqs
        while not self._stop.is_set():
            try:
                # a pump paused by a test is an event source mapping switched off
                with self._pump_steps[name]:
                    moved = 0 if name in self._paused_pumps else step()
                if moved == 0:
                    self._stop.wait(self.settings.pump_interval_seconds)
            except Exception as exc:  # keep pumping; surface the problem to tests and the demo
                log.exception("event pump")
                self.pump_errors.append(repr(exc))
                self._stop.wait(0.5)

    @contextmanager
    def paused(self, *pumps: str) -> Iterator[None]:
        """Switch event sources off (``pump-start``, ``pump-drop-start``, ...) for the block: a step a pump is
        running finishes first, so nothing is taken from their queues once this has entered."""
        unknown = set(pumps) - set(self._pump_steps)
        if unknown:
            raise KeyError(f"no pump named {sorted(unknown)}")
        self._paused_pumps.update(pumps)
        try:
            for name in pumps:
                with self._pump_steps[name]:
                    pass
            yield
        finally:
            self._paused_pumps.difference_update(pumps)

    def _receive(self, queue_url: str) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
        ).get("Messages", [])
        return messages

    def _pump_start_queue(self) -> int:
        return self._pump_sqs(self.start_queue_url, "modamoda-local-start", "modamoda-start-workflow")

    def _pump_drop_start_queue(self) -> int:
        return self._pump_sqs(
            self.drop_start_queue_url, "modamoda-local-drop-start", "modamoda-start-workflow"
        )

    def _pump_webhooks_queue(self) -> int:
        """Delayed retries (DelaySeconds) become visible when SQS says so."""
        return self._pump_sqs(self.webhook_queue_url, "modamoda-local-webhooks", "modamoda-webhooks")

    def _pump_sqs(self, queue_url: str, queue_name: str, function: str) -> int:
        """An SQS event-source mapping: up to 10 messages per invocation, partial batch failures (a failed
        invocation leaves every message to become visible again)."""
        sqs = self.client("sqs")
        messages = self._receive(queue_url)
        if not messages:
            return 0
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}"
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
        result, error = self.lambdas.invoke(function, {"Records": records})
        failed = {r["messageId"] for r in records} if error else set()
        if not error:
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    def _pump_dispatch(self) -> int:
        """The dispatcher's schedule: every ``dispatch_interval_seconds``, one run of the dispatch function (its
        failures, e.g. while a test has the database down, are the function's own: the next run tries again)."""
        now = time.monotonic()
        if now < self._next_dispatch:
            return 0
        self._next_dispatch = now + self.settings.dispatch_interval_seconds
        self.lambdas.invoke(DISPATCH_FUNCTION, dict(SCHEDULED_EVENT))
        return 0

    def _pump_notify_queue(self) -> int:
        sqs = self.client("sqs")
        messages = self._receive(self.notify_queue_url)
        for m in messages:
            event = sns_event(json.loads(m["Body"]))
            _, error = self.lambdas.invoke("modamoda-notifier", event)
            if not error:  # a failed delivery becomes visible again and is retried, then dead-lettered
                sqs.delete_message(QueueUrl=self.notify_queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    # ---- helpers for the demo and tests -------------------------------------------------------------------------

    def sign_up(self, email: str, password: str) -> dict[str, str]:
        """Register and confirm a user and sign in: Cognito tokens. The e-mail code step is skipped locally; what
        entering the code does in the cloud is done here: the user is confirmed and the address verified (the API
        provisions an account and its welcome credits only for a verified address, functions/common/signups.py),
        as the local web server's SignUp does (local/web.py)."""
        cognito = self.client("cognito-idp")
        cognito.sign_up(
            ClientId=self.client_id,
            Username=email,
            Password=password,
            UserAttributes=[{"Name": "email", "Value": email}],
        )
        cognito.admin_confirm_sign_up(UserPoolId=self.user_pool_id, Username=email)
        cognito.admin_update_user_attributes(
            UserPoolId=self.user_pool_id,
            Username=email,
            UserAttributes=[{"Name": "email_verified", "Value": "true"}],
        )
        return self.sign_in(email, password)

    def last_code(self, email: str, purpose: str | None = None) -> str | None:
        """The newest code local Cognito "mailed" to ``email`` (purpose ``sign_up``, ``resend`` or
        ``forgot_password``, or any), None if none was: what a person would read in their inbox."""
        return self.web.cognito.last_code(email, purpose)

    def sign_in(self, email: str, password: str) -> dict[str, str]:
        result = self.client("cognito-idp").initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )["AuthenticationResult"]
        return {
            "access_token": result["AccessToken"],
            "id_token": result["IdToken"],
            "refresh_token": result.get("RefreshToken", ""),
        }

    def queue_depth(self, queue_url: str) -> int:
        """Messages in the queue, visible or in flight."""
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until no execution runs, no inference is queued and the queues are drained."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")[
                "executions"
            ]
            busy = any(not f.done() for f in self.endpoint.futures)
            queued = sum(
                self.queue_depth(q)
                for q in (
                    self.start_queue_url,
                    self.drop_start_queue_url,
                    self.notify_queue_url,
                    self.webhook_queue_url,
                )
            )
            if not running and not busy and queued == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("the local stack did not become idle in time")
