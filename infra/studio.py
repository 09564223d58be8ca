"""The studio engine's Lambda function: ghost packshots on the CPU, called synchronously by the state machine's
``RunStudio`` task (``statemachines/job.asl.json``), seconds from idle, scaling out with Lambda; the GPU endpoint
keeps the diffusion work.

* Code: a container image for arm64, built and pushed by the CDK CLI at deploy time from
  ``inference_container/Dockerfile.lambda``: the same ``modamoda_inference`` package and assets as the SageMaker
  image, with the studio engine's dependencies only (no torch, no weights). Synthesis only stages the directory
  (no Docker engine is needed to synthesise). Handler: ``modamoda_inference.lambda_handler.handler``, the
  request and answers of the container's ``/invocations`` with the output written where the async endpoint writes
  it.
* Size, from ``python -m bench.studio_lambda`` (README, "What it costs"; two runs on a shared 2-core machine): one
  photo takes 1.1-1.3 s on one core (a 12 MP photo 1.07-1.26 s, the samples 1.09-1.21 s, a 50 MP photo 1.5-1.8 s)
  and a second core buys almost nothing (1.02 s against 1.07 s), the engine being single-threaded; the peak memory
  is 450 MiB for 12 MP and 710 MiB for 50 MP (the pipeline's limit). So 1,769 MB, where Lambda gives a function
  one whole vCPU: less memory would slow each photo in proportion for the same GB-s, more would buy memory it
  does not use. Timeout 30 s: over ten times the slowest cold start and first invocation measured (2.1-2.4 s).
* Permissions: read the photos (by version) under ``uploads/`` and ``drop/``; write under ``inference/output/``,
  ``inference/failure/`` and ``inference/metadata/`` of the results bucket; write to its own log group; X-Ray.
  Nothing else: no database, so no VPC (it reaches S3 through Lambda's own network).
* Concurrency: ``reserved_concurrency`` (context ``studio_reserved_concurrency``: 50 in prod, none elsewhere)
  both guarantees the ghost path that many environments and caps it, so a bulk drop cannot take the account's
  whole concurrency from the API and the task functions; a throttled invocation is retried by the state machine
  with backoff and jitter (``Lambda.TooManyRequestsException``). Without it (dev, whose account may have a low
  limit) the function shares the unreserved pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import INFERENCE_CONTAINER_DIR
from infra.nag import acknowledge
from infra.storage import (
    DROP_PREFIX,
    INFERENCE_FAILURE_PREFIX,
    INFERENCE_METADATA_PREFIX,
    INFERENCE_OUTPUT_PREFIX,
    OBJECT_READ,
    OBJECT_WRITE,
    UPLOADS_PREFIX,
    Storage,
    grant_objects,
)

DOCKERFILE = "Dockerfile.lambda"
HANDLER = "modamoda_inference.lambda_handler.handler"
MEMORY_MB = 1769  # one vCPU (bench/studio_lambda.py; see the module doc)
TIMEOUT = Duration.seconds(30)


@dataclass(frozen=True)
class StudioEngineProps:
    storage: Storage
    removal_policy: RemovalPolicy
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    log_level: str = "INFO"
    reserved_concurrency: int | None = None
    """Concurrent executions reserved for (and the most allowed to) the function; None: the unreserved pool."""
    memory_mb: int = MEMORY_MB
    timeout: Duration = TIMEOUT


class StudioEngine(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: StudioEngineProps) -> None:
        super().__init__(scope, construct_id)
        storage = props.storage
        results_uri = f"s3://{storage.results.bucket_name}"
        log_group = logs.LogGroup(
            self, "Logs", retention=props.log_retention, removal_policy=props.removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Lambda StudioEngine: read the photos, write the engine's answers",
        )
        log_group.grant_write(self.role)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            description="Modamoda studio engine: ghost packshots on CPU (modamoda_inference.lambda_handler)",
            code=lambda_.DockerImageCode.from_image_asset(
                str(INFERENCE_CONTAINER_DIR),
                file=DOCKERFILE,
                platform=ecr_assets.Platform.LINUX_ARM64,
                exclude=["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache"],
            ),
            architecture=lambda_.Architecture.ARM_64,
            memory_size=props.memory_mb,
            timeout=props.timeout,
            role=self.role,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            reserved_concurrent_executions=props.reserved_concurrency,
            environment={
                "MODAMODA_OUTPUT_S3_PATH": f"{results_uri}/{INFERENCE_OUTPUT_PREFIX.rstrip('/')}",
                "MODAMODA_FAILURE_S3_PATH": f"{results_uri}/{INFERENCE_FAILURE_PREFIX.rstrip('/')}",
                "MODAMODA_LOG_LEVEL": props.log_level,
            },
        )
        for bucket, prefix in ((storage.uploads, UPLOADS_PREFIX), (storage.drop, DROP_PREFIX)):
            grant_objects(
                self.function,
                bucket,
                prefix,
                OBJECT_READ,
                why="reads the photo (by version) each request names, of any tenant: the state machine builds the "
                "request from the job's own row and key",
            )
        for prefix, why in (
            (INFERENCE_OUTPUT_PREFIX, "writes each job's image where the async endpoint would ({job}.out)"),
            (INFERENCE_FAILURE_PREFIX, "writes each refused or failed job's answer ({job}-error.out)"),
            (INFERENCE_METADATA_PREFIX, "writes each job's metadata JSON (quality, timings)"),
        ):
            grant_objects(self.function, storage.results, prefix, OBJECT_WRITE, why=why)
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level permissions",
        )
