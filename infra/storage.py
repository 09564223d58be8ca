"""S3: the uploads bucket (PWA uploads, bulk drop folder) and the results bucket (results, inference I/O).

Key layout (tenant isolation by prefix; IAM grants are scoped to these prefixes):

* uploads: ``uploads/{tenant_id}/{job_id}/{filename}`` (pre-signed POST from the PWA) and
  ``drop/{tenant_id}/...`` (bulk drop folder)
* results: ``results/{tenant_id}/...`` and the SageMaker async contract under ``inference/input/``,
  ``inference/output/``, ``inference/failure/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

UPLOADS_PREFIX = "uploads/"
DROP_PREFIX = "drop/"
RESULTS_PREFIX = "results/"
INFERENCE_PREFIX = "inference/"
INFERENCE_INPUT_PREFIX = "inference/input/"
INFERENCE_OUTPUT_PREFIX = "inference/output/"
INFERENCE_FAILURE_PREFIX = "inference/failure/"


@dataclass(frozen=True)
class StorageProps:
    web_origin: str
    retain: bool
    """Keep buckets and objects when the stack is deleted (prod); otherwise destroy them with the stack."""
    inference_io_expiry_days: int = 7
    noncurrent_version_expiry_days: int = 30


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: StorageProps) -> None:
        super().__init__(scope, construct_id)
        abort_multipart = s3.LifecycleRule(
            id="AbortIncompleteMultipartUploads", abort_incomplete_multipart_upload_after=Duration.days(1)
        )

        self.uploads = _private_bucket(
            self,
            "UploadsBucket",
            retain=props.retain,
            versioned=True,
            # S3 "Object Created" events go to EventBridge, where a rule feeds the start queue (see Pipeline).
            event_bridge_enabled=True,
            lifecycle_rules=[
                abort_multipart,
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(props.noncurrent_version_expiry_days),
                    expired_object_delete_marker=True,
                ),
            ],
            # Browser uploads use pre-signed POST (form upload) from the PWA origin.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.POST, s3.HttpMethods.PUT],
                    allowed_origins=[props.web_origin],
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=3000,
                )
            ],
        )

        self.results = _private_bucket(
            self,
            "ResultsBucket",
            retain=props.retain,
            lifecycle_rules=[
                abort_multipart,
                s3.LifecycleRule(
                    id="ExpireInferenceIO",
                    prefix=INFERENCE_PREFIX,
                    expiration=Duration.days(props.inference_io_expiry_days),
                ),
            ],
            # The PWA fetches results through pre-signed GET URLs.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=[props.web_origin],
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ],
        )


def _private_bucket(scope: Construct, construct_id: str, *, retain: bool, **props: Any) -> s3.Bucket:
    """A bucket that is never public, only reachable over TLS 1.2+, encrypted at rest, owner-enforced."""
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        auto_delete_objects=not retain,
        **props,
    )
