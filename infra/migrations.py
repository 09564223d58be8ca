"""Schema migrations on deploy: a custom resource runs ``functions.migrate`` whenever the SQL files change."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import MIGRATIONS_DIR
from infra.database import Database
from infra.lambdas import LambdaPackaging
from infra.nag import CDK_HANDLER_REASON, LAMBDA_BASIC_ROLE, acknowledge, acknowledge_wildcard


def migrations_hash(directory: Path = MIGRATIONS_DIR) -> str:
    """A digest of the SQL migrations: a change re-runs the migration custom resource on the next deploy."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.sql")):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class MigrationsProps:
    database: Database
    packaging: LambdaPackaging


class Migrations(Construct):
    """Applies ``functions/common/migrations/*.sql`` (idempotently, in the migrate handler) on deploy."""

    def __init__(self, scope: Construct, construct_id: str, props: MigrationsProps) -> None:
        super().__init__(scope, construct_id)
        self.function = props.packaging.function(
            self,
            "Migrate",
            handler="functions.migrate.handler.lambda_handler",
            database_admin=True,
            timeout=Duration.minutes(5),  # includes resuming a paused Aurora cluster
        )
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            log_group=logs.LogGroup(
                self,
                "ProviderLogs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=props.packaging.props.removal_policy,
            ),
        )
        framework = provider.node.find_child("framework-onEvent")
        acknowledge(framework, f"IAM4[{LAMBDA_BASIC_ROLE}]", CDK_HANDLER_REASON)
        acknowledge_wildcard(
            framework,
            f"{self.function.function_arn}:*",
            f"the provider framework invokes the migrate function (any version); {CDK_HANDLER_REASON}",
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::ModamodaMigrations",
            properties={"MigrationsHash": migrations_hash()},
        )
        # The writer instance and the secret (with its host attached) must exist before the migrator connects.
        self.resource.node.add_dependency(props.database.cluster)
        self.resource.node.add_dependency(props.database.secret)
        self.resource.node.add_dependency(props.database.app_secret)
