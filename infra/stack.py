"""``ModamodaStack``: the whole product in one stack per stage, wired from one construct per concern."""

from __future__ import annotations

import os

from aws_cdk import App, CfnOutput, Environment, RemovalPolicy, Stack, Tags
from constructs import Construct

from infra.api import Api, ApiProps
from infra.billing import Billing, BillingProps
from infra.config import StageConfig
from infra.database import Database, DatabaseProps
from infra.inference import Inference, InferenceProps
from infra.lambdas import LambdaPackaging, LambdaPackagingProps
from infra.migrations import Migrations, MigrationsProps
from infra.pipeline import Pipeline, PipelineProps
from infra.storage import Storage, StorageProps


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

        self.storage = Storage(
            self, "Storage", StorageProps(web_origin=config.web_origin, retain=config.is_prod)
        )
        self.database = Database(
            self,
            "Database",
            DatabaseProps(is_prod=config.is_prod, min_capacity=0.5 if config.is_prod else 0),
        )
        self.packaging = LambdaPackaging(
            self,
            "Lambdas",
            LambdaPackagingProps(
                database=self.database,
                log_level=config.log_level,
                removal_policy=removal,
                extra_environment={"STAGE": config.stage},
            ),
        )
        self.migrations = Migrations(
            self,
            "Migrations",
            MigrationsProps(database=self.database, packaging=self.packaging),
        )
        self.inference = Inference(
            self,
            "Inference",
            InferenceProps(
                storage=self.storage,
                endpoint_name=config.endpoint_name,
                instance_type=config.inference_instance_type,
                max_instances=config.inference_max_instances,
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
            ),
        )
        self.api = Api(
            self,
            "Api",
            ApiProps(
                storage=self.storage,
                packaging=self.packaging,
                stage=config.stage,
                web_origin=config.web_origin,
                removal_policy=removal,
            ),
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
        # Nothing should serve traffic before the schema exists.
        for fn in (self.api.function, self.pipeline.start_workflow, self.billing.function):
            fn.node.add_dependency(self.migrations)

        Tags.of(self).add("project", "modamoda")
        Tags.of(self).add("stage", config.stage)
        self._outputs()

    def _outputs(self) -> None:
        outputs = {
            "ApiUrl": self.api.url,
            "UserPoolId": self.api.user_pool.user_pool_id,
            "UserPoolClientId": self.api.client.user_pool_client_id,
            "UserPoolDomain": self.api.domain.base_url(),
            "UploadsBucketName": self.storage.uploads.bucket_name,
            "ResultsBucketName": self.storage.results.bucket_name,
            "StateMachineArn": self.pipeline.state_machine.state_machine_arn,
            "InferenceEndpointName": self.inference.endpoint_name,
            "StripeSecretArn": self.billing.secret.secret_arn,
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
