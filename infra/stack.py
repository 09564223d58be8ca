"""``ModamodaStack``: the whole product in one stack per stage, wired from one construct per concern."""

from __future__ import annotations

import os

from aws_cdk import App, CfnOutput, Environment, RemovalPolicy, Stack, Tags
from constructs import Construct

from infra.api import Api, ApiProps
from infra.billing import Billing, BillingProps
from infra.config import LOCAL_DEV_ORIGIN, StageConfig
from infra.database import Database, DatabaseProps
from infra.inference import Inference, InferenceProps
from infra.lambdas import (
    DATABASE_CA_CONTEXT,
    RDS_CA_BUNDLE_URL,
    LambdaPackaging,
    LambdaPackagingProps,
    database_ca_source,
)
from infra.migrations import Migrations, MigrationsProps
from infra.nag import acknowledge_cdk_internals
from infra.notifications import Notifications, NotificationsProps
from infra.observability import Observability, ObservabilityProps
from infra.pipeline import Pipeline, PipelineProps
from infra.storage import Storage, StorageProps
from infra.web import BrowserEndpoints, Web, WebConfig, WebProps


class ModamodaStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, env: Environment | None
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"Modamoda ({config.stage}): garment photos to e-commerce product images",
            termination_protection=config.is_prod,
        )
        self.config = config
        removal = RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY
        ca_bundle = database_ca_source(self.node.try_get_context(DATABASE_CA_CONTEXT))
        if ca_bundle is None and config.is_prod:
            raise ValueError(
                "prod verifies the database's TLS certificate: download AWS's RDS CA bundle "
                f"({RDS_CA_BUNDLE_URL}) and pass -c {DATABASE_CA_CONTEXT}=PATH (or set RDS_CA_BUNDLE)"
            )
        if config.cognito_ses_identity is None and config.is_prod:
            raise ValueError(
                "prod sends Cognito's sign-up codes and password resets through SES (Cognito's own sender allows 50 "
                "e-mails a day per account): verify the domain of email_from (or the address) as an SES "
                "identity in this account and Region and pass -c cognito_ses_identity=<domain or address>"
            )

        self.storage = Storage(self, "Storage", StorageProps(retain=config.is_prod))
        self.web = Web(self, "Web", WebProps(storage=self.storage, retain=config.is_prod))
        self.web_origins = self._web_origins(config)
        self.storage.allow_browser_origins(self.web_origins)
        self.database = Database(
            self,
            "Database",
            DatabaseProps(
                is_prod=config.is_prod,
                min_capacity=0.5 if config.is_prod else 0,
                rds_proxy=config.rds_proxy,
            ),
        )
        self.packaging = LambdaPackaging(
            self,
            "Lambdas",
            LambdaPackagingProps(
                database=self.database,
                log_level=config.log_level,
                removal_policy=removal,
                extra_environment={
                    "STAGE": config.stage,
                    # whether the endpoint has the diffusion weights (context model_data): without them the API
                    # refuses on-model jobs before any upload (functions/common/jobs.py)
                    "ON_MODEL_AVAILABLE": "true" if config.model_data else "false",
                },
                database_ca_bundle=ca_bundle,
            ),
        )
        self.migrations = Migrations(
            self,
            "Migrations",
            MigrationsProps(database=self.database, packaging=self.packaging),
        )
        self.database.add_secret_rotation(after=self.migrations.resource)
        self.inference = Inference(
            self,
            "Inference",
            InferenceProps(
                storage=self.storage,
                endpoint_name=config.endpoint_name,
                vpc=self.database.vpc,
                subnets=self.database.inference_subnets,
                instance_type=config.inference_instance_type,
                max_instances=config.inference_max_instances,
                model_data=config.model_data,
                removal_policy=removal,
            ),
        )
        self.pipeline = Pipeline(
            self,
            "Pipeline",
            PipelineProps(
                storage=self.storage,
                inference=self.inference,
                packaging=self.packaging,
                removal_policy=removal,
                sweep_interval_minutes=5 if config.is_prod else 60,
                start_max_concurrency=config.start_max_concurrency,
                ghost_on_lambda=config.ghost_on_lambda,
                studio_reserved_concurrency=config.studio_reserved_concurrency,
                inference_max_instances=config.inference_max_instances,
                # the GPU queue's own runs (it also runs at every enqueue and result): each opens a database
                # connection, so dev runs it hourly, like the sweep, and an idle cluster can pause
                dispatch_interval_minutes=1 if config.is_prod else 60,
            ),
        )
        self.api = Api(
            self,
            "Api",
            ApiProps(
                storage=self.storage,
                packaging=self.packaging,
                stage=config.stage,
                web_origins=self.web_origins,
                removal_policy=removal,
                accept_signin_scope=config.accept_signin_scope,
                state_machine=self.pipeline.state_machine,
                email_from=config.email_from,
                ses_identity=config.cognito_ses_identity,
                signup_rate_limit=config.signup_rate_limit,
            ),
        )
        self.web.publish(
            WebConfig(
                api_url=self.api.url,
                user_pool_id=self.api.user_pool.user_pool_id,
                client_id=self.api.client.user_pool_client_id,
                stage=config.stage,
            ),
            self._browser_endpoints(),
        )
        self.billing = Billing(
            self,
            "Billing",
            BillingProps(
                packaging=self.packaging,
                http_api=self.api.http_api,
                api_function=self.api.function,
                removal_policy=removal,
            ),
        )
        pipeline = self.pipeline
        self.notifications = Notifications(
            self,
            "Notifications",
            NotificationsProps(
                packaging=self.packaging,
                user_pool=self.api.user_pool,
                email_from=config.email_from,
                max_concurrency=config.webhooks_max_concurrency,
                producers=[  # the functions that end jobs (and batches) dispatch their outbox rows
                    self.api.function,
                    pipeline.start_workflow,
                    pipeline.reserve_credits,  # a failed reservation stops its batch (bulk)
                    pipeline.capture_credits,
                    pipeline.release_credits,
                    pipeline.notifier,
                    pipeline.sweeper,
                    pipeline.scheduler.dispatch,  # queue and inference timeouts end jobs
                ],
            ),
        )
        # Nothing should serve traffic before the schema exists.
        for fn in (
            self.api.function,
            self.pipeline.start_workflow,
            self.billing.function,
            self.notifications.function,
        ):
            fn.node.add_dependency(self.migrations)

        self.observability = Observability(
            self,
            "Observability",
            ObservabilityProps(
                stage=config.stage,
                functions={
                    "Api": self.api.function,
                    "StripeWebhook": self.billing.function,
                    "StartWorkflow": pipeline.start_workflow,
                    **pipeline.task_functions,
                    "Notifier": pipeline.notifier,
                    "Sweeper": pipeline.sweeper,
                    "DispatchInference": pipeline.scheduler.dispatch,
                    "Migrate": self.migrations.function,
                    "Webhooks": self.notifications.function,
                },
                dead_letter_queues={
                    "StartDeadLetterQueue": pipeline.start_dead_letter_queue,
                    "NotificationDeadLetterQueue": pipeline.notification_dead_letter_queue,
                    "EventsDeadLetterQueue": pipeline.events_dead_letter_queue,
                    "WebhooksDeadLetterQueue": self.notifications.dead_letter_queue,
                },
                state_machine=pipeline.state_machine,
                endpoint_name=self.inference.endpoint_name,
                variant_name=self.inference.variant_name,
                http_api=self.api.http_api,
                cluster=self.database.cluster,
                alarm_email=config.alarm_email,
            ),
        )
        acknowledge_cdk_internals(self)

        # The CloudFormation schema of proxy target groups has no Tags, although CDK's L1 offers them.
        untaggable = ["AWS::RDS::DBProxyTargetGroup"]
        Tags.of(self).add("project", "modamoda", exclude_resource_types=untaggable)
        Tags.of(self).add("stage", config.stage, exclude_resource_types=untaggable)
        self._outputs()

    def _web_origins(self, config: StageConfig) -> list[str]:
        """The PWA's origins: ``web_origin`` if given; else this stack's CloudFront URL (and the local dev server
        outside prod)."""
        if config.web_origin:
            return [config.web_origin]
        return [self.web.url] if config.is_prod else [self.web.url, LOCAL_DEV_ORIGIN]

    def _browser_endpoints(self) -> BrowserEndpoints:
        """What the PWA's content security policy names. The API and the buckets only when their CORS origins do
        not name this stack's distribution (a ``web_origin`` is set): otherwise the distribution's policy naming
        them would close a CloudFormation dependency cycle (infra/web.py)."""
        storage = self.storage
        nameable = self.web.url not in self.web_origins
        return BrowserEndpoints(
            sign_in_url=self.api.domain.base_url(),
            api_url=self.api.url if nameable else None,
            upload_buckets=[storage.uploads.bucket_name, storage.drop.bucket_name] if nameable else None,
            result_buckets=[storage.results.bucket_name] if nameable else None,
        )

    def _outputs(self) -> None:
        outputs = {
            "WebUrl": self.web.url,
            "ApiUrl": self.api.url,
            "UserPoolId": self.api.user_pool.user_pool_id,
            "UserPoolClientId": self.api.client.user_pool_client_id,
            "UserPoolDomain": self.api.domain.base_url(),
            "UploadsBucketName": self.storage.uploads.bucket_name,
            "DropBucketName": self.storage.drop.bucket_name,
            "ResultsBucketName": self.storage.results.bucket_name,
            "StateMachineArn": self.pipeline.state_machine.state_machine_arn,
            "InferenceEndpointName": self.inference.endpoint_name,
            "OnModelAvailable": "true" if self.inference.on_model_available else "false",
            "StripeSecretArn": self.billing.secret.secret_arn,
            "AlarmTopicArn": self.observability.topic.topic_arn,
            "WebhooksQueueUrl": self.notifications.queue.queue_url,
            "DashboardName": self.observability.dashboard.dashboard_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)


def environment_from_os() -> Environment:
    """The CDK CLI's account/region (``CDK_DEFAULT_*``); both unset gives an environment-agnostic stack."""
    return Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )


def build(app: App, *, env: Environment | None = None) -> ModamodaStack:
    """Add the stack for the context's stage to ``app``."""
    config = StageConfig.from_context(app.node)
    return ModamodaStack(
        app, config.stack_name, config=config, env=env if env is not None else environment_from_os()
    )
