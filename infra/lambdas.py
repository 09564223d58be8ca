"""Packaging of the Lambda functions: one code asset (the ``functions/`` package) and one dependency layer.

* Code: the project root filtered down to ``functions/**``, so handlers are ``functions.<name>.handler...``
  exactly as they are imported locally and in tests.
* Layer: ``functions/requirements.lock`` (the whole dependency tree of ``functions/requirements.txt`` pinned with
  every wheel's SHA-256, ``infra/layer_lock.py``) installed for Lambda's Python 3.12 on arm64 with pip's
  cross-platform wheel selection (``--platform ... --only-binary=:all:``), ``--require-hashes --no-deps``: nothing
  outside the lock is resolved, and a wheel whose bytes differ is refused. The layer's asset hash is the lock's bytes,
  so the same hash means the same wheels. Bundling is local (no Docker) and is skipped like any CDK bundling when
  the context ``aws:cdk:bundling-stacks`` is ``[]``.
* Role: one per function, with write access to its own log group only (not the managed basic-execution policy,
  which may write to any log group). Functions in the VPC get an inline policy with exactly the EC2 actions Lambda
  needs to manage their network interfaces (those of AWS's ``AWSLambdaVPCAccessExecutionRole``, whose
  ``logs:CreateLogGroup/CreateLogStream/PutLogEvents`` on ``*`` would undo the log-group scoping); CDK attaches that
  managed policy only to roles it creates itself, and every function here is given its own role. Every other
  permission is a grant in the construct that owns the function.
* Database TLS: functions verify the server's certificate (``sslmode=verify-full``) against a trust store in a
  second layer, ``/opt/rds-ca/bundle.pem``: the RDS certificate authorities (the cluster's certificate) and Amazon
  Trust Services' roots (RDS Proxy's ACM certificate). No PyPI package ships the RDS bundle, so it is read at deploy
  time from the file ``RDS_CA_BUNDLE`` (or context ``rds_ca_bundle``) names: AWS's global-bundle.pem
  (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem; the China regions have their own bundles).
  The layer is built like the dependency layer (locally, skipped with bundling); building it without the file fails
  with that instruction.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    Annotations,
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
from infra.layer_lock import LAMBDA_PLATFORMS, LAMBDA_PYTHON_VERSION, LOCK
from infra.nag import acknowledge

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64

CODE_EXCLUDES = (
    # Everything at the project root (including dot-directories such as .venv and .git) ...
    "*",
    ".*",
    # ... except the functions package ...
    "!functions",
    "!functions/**",
    # ... without caches, tests or the dependency list and lock (they go to the layer).
    "__pycache__",
    "*.pyc",
    "functions/**/tests",
    "functions/requirements.txt",
    "functions/requirements.lock",
)


def pip_install_command(lock: Path, target: Path) -> list[str]:
    """The pip invocation that fills a layer for Lambda python3.12/arm64 from any build machine: exactly the lock's
    packages (``--no-deps``: nothing is resolved), each wheel checked against the lock's hashes."""
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--require-hashes",
        "--no-deps",
        "--requirement",
        str(lock),
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
    """Local (Docker-free) bundling of a Python layer from a lock: ``<output>/python/<packages>``."""

    def __init__(self, lock: Path) -> None:
        self.lock = lock

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        target = Path(output_dir) / "python"
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(pip_install_command(self.lock, target), check=True)  # noqa: S603
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


# What Lambda needs on the execution role to create and remove a VPC function's network interfaces: the EC2 actions
# of AWS's managed AWSLambdaVPCAccessExecutionRole (v3), without its CloudWatch Logs actions on "*". The Describe
# actions only work on "*"; Lambda's guide asks for all resource ids for DeleteNetworkInterface.
VPC_NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)

# The database trust store: a layer whose content Lambda unpacks under /opt.
DATABASE_CA_ENV = "RDS_CA_BUNDLE"
DATABASE_CA_CONTEXT = "rds_ca_bundle"
DATABASE_CA_LAYER_PATH = "rds-ca/bundle.pem"
DATABASE_CA_RUNTIME_PATH = f"/opt/{DATABASE_CA_LAYER_PATH}"
DATABASE_SSLMODE = "verify-full"
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
# RDS Proxy presents an ACM certificate, which chains to Amazon Trust Services' roots (AWS's RDS Proxy guidance: trust
# Amazon Root CA 1); all four, from Mozilla's store through certifi.
AMAZON_TRUST_SERVICES_ROOTS = ("Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4")
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL)


def amazon_trust_services_roots(cacert: Path | None = None) -> bytes:
    """The Amazon Trust Services root certificates (PEM) from a Mozilla-derived bundle (certifi's by default)."""
    if cacert is None:
        import certifi

        cacert = Path(certifi.where())
    text = cacert.read_bytes()
    found: list[bytes] = []
    for label in AMAZON_TRUST_SERVICES_ROOTS:
        marker = f'# Label: "{label}"'.encode()
        start = text.find(marker)
        block = _PEM_BLOCK.search(text, start) if start >= 0 else None
        if block is None:
            raise ValueError(f"{cacert} has no {label!r} certificate")
        found.append(block.group(0))
    return b"\n".join(found) + b"\n"


def database_trust_store(rds_bundle: Path, cacert: Path | None = None) -> bytes:
    """The PEM file the functions verify PostgreSQL's certificate against: the RDS CA bundle ``rds_bundle`` (every
    certificate checked to be an Amazon RDS one) followed by the Amazon Trust Services roots (RDS Proxy)."""
    from cryptography import x509

    if not rds_bundle.is_file():
        raise FileNotFoundError(
            f"{DATABASE_CA_ENV}={rds_bundle}: no such file; download AWS's RDS CA bundle ({RDS_CA_BUNDLE_URL}) "
            f"and name it in {DATABASE_CA_ENV} (or -c {DATABASE_CA_CONTEXT}=...)"
        )
    data = rds_bundle.read_bytes()
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{DATABASE_CA_ENV}={rds_bundle} is not a PEM certificate bundle: {exc}") from exc
    foreign = [
        c.subject.rfc4514_string() for c in certificates if "Amazon RDS" not in c.subject.rfc4514_string()
    ]
    if foreign:
        raise ValueError(
            f"{DATABASE_CA_ENV}={rds_bundle} is not the RDS CA bundle ({RDS_CA_BUNDLE_URL}): it holds "
            f"{foreign[0]}"
        )
    return data.rstrip(b"\n") + b"\n" + amazon_trust_services_roots(cacert)


def database_ca_source(context_value: Any = None) -> Path | None:
    """The RDS CA bundle to deploy: context ``rds_ca_bundle``, else the environment variable ``RDS_CA_BUNDLE``."""
    value = context_value or os.environ.get(DATABASE_CA_ENV, "")
    return Path(str(value)).expanduser() if str(value).strip() else None


@jsii.implements(ILocalBundling)
class DatabaseCaBundling:
    """Local bundling of the trust-store layer: ``<output>/rds-ca/bundle.pem``; fails without the RDS bundle."""

    def __init__(self, source: Path | None) -> None:
        self.source = source

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        if self.source is None:
            raise ValueError(
                f"the functions verify the database's TLS certificate against AWS's RDS CA bundle, which is not "
                f"downloaded during the build: download {RDS_CA_BUNDLE_URL} and set {DATABASE_CA_ENV} to its path "
                f"(or pass -c {DATABASE_CA_CONTEXT}=PATH)"
            )
        target = Path(output_dir) / DATABASE_CA_LAYER_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(database_trust_store(self.source))
        return True


def database_ca_hash(source: Path | None) -> str:
    """The trust-store layer's asset hash: the bundle's bytes (a new bundle is a new layer version)."""
    digest = hashlib.sha256(b"modamoda-database-ca-v1")
    if source is not None and source.is_file():
        digest.update(source.read_bytes())
    return digest.hexdigest()


def requirements_hash(lock: Path) -> str:
    """Layer asset hash: the lock's bytes (every package's version and wheel hashes) plus the target platform, not
    the function code. A missing lock fails the synthesis with the way to make it."""
    if not lock.is_file():
        raise FileNotFoundError(
            f"{lock}: no such file; the dependency layer is built from it: run `make lock`"
        )
    digest = hashlib.sha256()
    digest.update(lock.read_bytes())
    digest.update(" ".join((LAMBDA_PYTHON_VERSION, *LAMBDA_PLATFORMS)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LambdaPackagingProps:
    database: Database
    log_level: str
    removal_policy: RemovalPolicy
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    extra_environment: dict[str, str] = field(default_factory=dict)
    database_ca_bundle: Path | None = None
    """AWS's RDS CA bundle on the deploying machine (``database_ca_source()``); needed when assets are built."""


class LambdaPackaging(Construct):
    """The shared code asset and layer; ``function()`` builds a Lambda of the project's standard shape."""

    def __init__(self, scope: Construct, construct_id: str, props: LambdaPackagingProps) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.code = lambda_.Code.from_asset(
            str(PROJECT_ROOT), exclude=list(CODE_EXCLUDES), ignore_mode=IgnoreMode.GLOB
        )
        self.layer = lambda_.LayerVersion(
            self,
            "DependenciesLayer",
            description="Runtime dependencies of the Modamoda functions (functions/requirements.lock)",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            removal_policy=RemovalPolicy.DESTROY,
            code=lambda_.Code.from_asset(
                str(FUNCTIONS_DIR),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=requirements_hash(LOCK),
                bundling=BundlingOptions(
                    # Only used if local bundling declined; the local pip bundling always builds or fails.
                    image=RUNTIME.bundling_image,
                    command=["false"],
                    local=PipLayerBundling(LOCK),
                ),
            ),
        )
        # Without the RDS CA bundle (a clean clone, a dev deploy) the functions still encrypt (sslmode=require) but
        # cannot verify who answers: synthesis says so; prod refuses to synthesise without it (infra/stack.py).
        self.verify_database_tls = props.database_ca_bundle is not None
        if not self.verify_database_tls:
            Annotations.of(self).add_warning_v2(
                "modamoda:database-tls-unverified",
                f"no RDS CA bundle ({DATABASE_CA_ENV} or -c {DATABASE_CA_CONTEXT}=PATH): the functions connect to "
                f"PostgreSQL with sslmode=require, encrypted but without verifying the server; download "
                f"{RDS_CA_BUNDLE_URL} and name it to verify (sslmode=verify-full)",
            )
            self.database_ca_layer: lambda_.LayerVersion | None = None
            return
        self.database_ca_layer = lambda_.LayerVersion(
            self,
            "DatabaseCaLayer",
            description=f"Trust store for PostgreSQL TLS ({DATABASE_CA_RUNTIME_PATH}): RDS and Amazon Trust Services CAs",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            removal_policy=RemovalPolicy.DESTROY,
            code=lambda_.Code.from_asset(
                str(Path(__file__).parent),  # staged only when bundling is skipped; the bundle is the content
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=database_ca_hash(props.database_ca_bundle),
                bundling=BundlingOptions(
                    image=RUNTIME.bundling_image,
                    command=["false"],
                    local=DatabaseCaBundling(props.database_ca_bundle),
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
        group, gets ``DB_SECRET_ARN`` (the application role's secret), ``DB_HOST`` (the RDS Proxy's endpoint
        when there is one), the trust-store layer with ``DB_SSLMODE=verify-full`` and ``DB_SSLROOTCERT``, and may
        read that secret. ``database_admin`` (the migrator only) also gets the owner's
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
                DB_SSLMODE=DATABASE_SSLMODE if self.verify_database_tls else "require",
            )
            if self.verify_database_tls:
                env["DB_SSLROOTCERT"] = DATABASE_CA_RUNTIME_PATH
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
        # An explicit role: CDK adds the managed basic-execution and VPC-access policies only to roles it makes.
        # The network-interface policy is inline on the role, so that it exists before the function is created
        # (Lambda checks it then) and is removed only with the role, after Lambda has removed the interfaces.
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Lambda {construct_id}: {handler}",
            inline_policies={"VpcNetworkInterfaces": vpc_network_interface_policy()}
            if database_access
            else None,
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            scope,
            construct_id,
            role=role,
            code=self.code,
            handler=handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            layers=(
                [self.layer, self.database_ca_layer]
                if database_access and self.database_ca_layer is not None
                else [self.layer]
            ),
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
            "permissions; in the VPC, Lambda's network-interface actions (ec2:CreateNetworkInterface, "
            "DescribeNetworkInterfaces, DescribeSubnets, DeleteNetworkInterface, Assign/UnassignPrivateIpAddresses) "
            "on the function's behalf, whose interfaces do not exist before (tests/infra assert that these are the "
            "only '*' on function roles)",
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


def vpc_network_interface_policy() -> iam.PolicyDocument:
    """The EC2 permissions a VPC function's execution role needs (Lambda manages its interfaces with them)."""
    return iam.PolicyDocument(
        statements=[iam.PolicyStatement(actions=list(VPC_NETWORK_INTERFACE_ACTIONS), resources=["*"])]
    )
