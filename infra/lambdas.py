"""Packaging of the Lambda functions: one code asset (the ``functions/`` package) and one dependency layer.

* Code: the project root filtered down to ``functions/**``, so handlers are ``functions.<name>.handler...``
  exactly as they are imported locally and in tests.
* Layer: ``functions/requirements.txt`` installed for Lambda's Python 3.12 on arm64 with pip's cross-platform
  wheel selection (``--platform ... --only-binary=:all:``). Bundling is local (no Docker) and is skipped like
  any CDK bundling when the context ``aws:cdk:bundling-stacks`` is ``[]``.
* Role: one per function, with write access to its own log group only (not the managed basic-execution policy,
  which may write to any log group); functions in the VPC add AWS's ENI policy; every other permission is a
  grant in the construct that owns the function.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    DockerImage,
    Duration,
    IgnoreMode,
    ILocalBundling,
    RemovalPolicy,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import FUNCTIONS_DIR, PROJECT_ROOT
from infra.database import Database
from infra.nag import LAMBDA_VPC_ROLE, acknowledge

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
LAMBDA_PYTHON_VERSION = "3.12"
# Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34): accept every manylinux wheel up to that.
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 35)))

CODE_EXCLUDES = (
    # Everything at the project root (including dot-directories such as .venv and .git) ...
    "*",
    ".*",
    # ... except the functions package ...
    "!functions",
    "!functions/**",
    # ... without caches, tests or the dependency list (that goes to the layer).
    "__pycache__",
    "*.pyc",
    "functions/**/tests",
    "functions/requirements.txt",
)


def pip_install_command(requirements: Path, target: Path) -> list[str]:
    """The pip invocation that fills a layer for Lambda python3.12/arm64 from any build machine."""
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--requirement",
        str(requirements),
        *platforms,
        "--only-binary=:all:",
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--implementation",
        "cp",
        "--target",
        str(target),
    ]


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Local (Docker-free) bundling of a Python layer: ``<output>/python/<packages>``."""

    def __init__(self, requirements: Path) -> None:
        self.requirements = requirements

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        target = Path(output_dir) / "python"
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(pip_install_command(self.requirements, target), check=True)  # noqa: S603
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


def requirements_hash(requirements: Path) -> str:
    """Layer asset hash: the pinned requirements plus the target platform, not the function code."""
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes() if requirements.exists() else b"")
    digest.update(" ".join((LAMBDA_PYTHON_VERSION, *LAMBDA_PLATFORMS)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LambdaPackagingProps:
    database: Database
    log_level: str
    removal_policy: RemovalPolicy
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    extra_environment: dict[str, str] = field(default_factory=dict)


class LambdaPackaging(Construct):
    """The shared code asset and layer; ``function()`` builds a Lambda of the project's standard shape."""

    def __init__(self, scope: Construct, construct_id: str, props: LambdaPackagingProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.code = lambda_.Code.from_asset(
            str(PROJECT_ROOT), exclude=list(CODE_EXCLUDES), ignore_mode=IgnoreMode.GLOB
        )
        requirements = FUNCTIONS_DIR / "requirements.txt"
        self.layer = lambda_.LayerVersion(
            self,
            "DependenciesLayer",
            description="Runtime dependencies of the Modamoda functions (functions/requirements.txt)",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            removal_policy=RemovalPolicy.DESTROY,
            code=lambda_.Code.from_asset(
                str(FUNCTIONS_DIR),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=requirements_hash(requirements),
                bundling=BundlingOptions(
                    # Only used if local bundling declined; the local pip bundling always builds or fails.
                    image=RUNTIME.bundling_image,
                    command=["false"],
                    local=PipLayerBundling(requirements),
                ),
            ),
        )

    def function(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        environment: dict[str, str] | None = None,
        timeout: Duration | None = None,
        memory_size: int = 512,
        database_access: bool = True,
        database_admin: bool = False,
        description: str | None = None,
    ) -> lambda_.Function:
        """A Python 3.12 arm64 function, traced, with powertools settings and its own log group.

        With ``database_access`` it runs in the VPC's private subnets, joins the database client security
        group, gets ``DB_SECRET_ARN`` (the application role's secret) and ``DB_HOST`` (the RDS Proxy's endpoint
        when there is one) and may read that secret. ``database_admin`` (the migrator only) also gets the owner's
        secret, ``DB_ADMIN_SECRET_ARN``, and connects to the cluster itself.
        """
        env = {
            "POWERTOOLS_SERVICE_NAME": "modamoda",
            "POWERTOOLS_METRICS_NAMESPACE": "Modamoda",
            "LOG_LEVEL": self.props.log_level,
            **self.props.extra_environment,
            **(environment or {}),
        }
        database = self.props.database
        vpc_options: dict[str, Any] = {}
        if database_access:
            env.update(
                DB_SECRET_ARN=database.app_secret.secret_arn,
                DB_HOST=database.cluster_host if database_admin else database.host,
            )
            if database_admin:
                env["DB_ADMIN_SECRET_ARN"] = database.secret.secret_arn
            vpc_options = {
                "vpc": database.vpc,
                "vpc_subnets": database.client_subnets,
                "security_groups": [database.client_security_group],
            }
        log_group = logs.LogGroup(
            scope,
            f"{construct_id}Logs",
            retention=self.props.log_retention,
            removal_policy=self.props.removal_policy,
        )
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Lambda {construct_id}: {handler}",
        )
        log_group.grant_write(role)
        if database_access:
            role.add_managed_policy(
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
            )
            acknowledge(
                role,
                f"IAM4[{LAMBDA_VPC_ROLE}]",
                "Lambda needs it to manage the function's network interfaces in the VPC; those EC2 actions "
                "cannot be scoped to resources, and AWS maintains this policy for exactly this purpose",
            )
        function = lambda_.Function(
            scope,
            construct_id,
            role=role,
            code=self.code,
            handler=handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            layers=[self.layer],
            tracing=lambda_.Tracing.ACTIVE,
            timeout=timeout or Duration.seconds(30),
            memory_size=memory_size,
            environment=env,
            log_group=log_group,
            description=description or handler,
            **vpc_options,
        )
        acknowledge(
            role,
            "IAM5[Resource::*]",
            "active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level "
            "permissions (tests/infra assert that X-Ray is the only '*' on function roles)",
        )
        acknowledge(
            function,
            "L1",
            f"pinned to {RUNTIME.name}: the dependency layer is built for cp{LAMBDA_PYTHON_VERSION.replace('.', '')} "
            "arm64 wheels and tested on it; supported by Lambda until 2028; moving on is a deliberate change "
            "of RUNTIME and LAMBDA_PYTHON_VERSION together",
        )
        if database_access:
            database.app_secret.grant_read(function)
        if database_access and database_admin:
            database.secret.grant_read(function)
        return function
