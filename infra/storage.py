"""S3: the uploads bucket (PWA uploads), the drop bucket (bulk drop folder), the results bucket (results and the
SageMaker async I/O) and the access-log bucket that records requests to all of them (and CloudFront's).

Key layout (tenant isolation by prefix; IAM grants are scoped to these prefixes, see ``grant_objects``):

* uploads: ``uploads/{tenant_id}/{job_id}/{filename}`` (pre-signed POST from the PWA)
* drop: ``drop/{tenant_id}/{batch}/{filename}`` (bulk; ``manifest.json`` / ``manifest.csv`` beside the photos).
  Its "Object Created" events go to the same start queue as uploads; each file becomes one job of its batch.
* results: ``results/{tenant_id}/{job_id}.{ext}``, a batch's ``results/{tenant_id}/{batch_id}/{sku or stem}-{mode}.{ext}``
  and its ``report.csv`` / ``report.json``, and the SageMaker async contract under ``inference/input/``,
  ``inference/output/``, ``inference/failure/``; each job's WebP previews ``previews/{tenant_id}/{job_id}/thumb.webp``
  and ``original.webp``; "download all" ZIPs ``archives/{tenant_id}/{uuid}.zip`` (expired after a day).

Every bucket: public access blocked, TLS 1.2+ only (bucket policy), SSE-S3 encryption, server access logs.
Versioning where S3 events start work (uploads, drop): the execution name includes the object version, so an
overwritten key is a new, distinct event. Lifecycle rules abort stale multipart uploads, expire old versions and
the transient inference I/O. CORS admits only the PWA's origins (``allow_browser_origins``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge, acknowledge_wildcard

UPLOADS_PREFIX = "uploads/"
DROP_PREFIX = "drop/"
RESULTS_PREFIX = "results/"
INFERENCE_PREFIX = "inference/"
INFERENCE_INPUT_PREFIX = "inference/input/"
INFERENCE_OUTPUT_PREFIX = "inference/output/"
INFERENCE_FAILURE_PREFIX = "inference/failure/"
# each job's metadata JSON, written by the container (functions/common/pipeline.py METADATA_PREFIX)
INFERENCE_METADATA_PREFIX = "inference/metadata/"
# each job's WebP previews (functions/common/previews.py PREFIX) and the "download all" ZIPs (archives.py PREFIX)
PREVIEWS_PREFIX = "previews/"
ARCHIVES_PREFIX = "archives/"

OBJECT_READ = ("s3:GetObject", "s3:GetObjectVersion")
OBJECT_WRITE = ("s3:PutObject",)
BATCH_REPORTS = ("report.csv", "report.json")  # results/{tenant}/{batch}/report.*


@dataclass(frozen=True)
class StorageProps:
    retain: bool
    """Keep buckets and objects when the stack is deleted (prod); otherwise destroy them with the stack."""
    inference_io_expiry_days: int = 7
    archive_expiry_days: int = 1
    """The ZIPs of "download all" (``archives/``) are made for one download: S3 deletes them after this many days."""
    noncurrent_version_expiry_days: int = 30
    access_log_expiry_days: int = 90


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: StorageProps) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # CloudFront standard logs are delivered with an ACL, so ACLs stay possible (owner preferred).
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery supports SSE-S3 only
            enforce_ssl=True,
            minimum_tls_version=1.2,
            removal_policy=RemovalPolicy.RETAIN if props.retain else RemovalPolicy.DESTROY,
            auto_delete_objects=not props.retain,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs", expiration=Duration.days(props.access_log_expiry_days)
                )
            ],
        )
        acknowledge(
            self.access_logs,
            "S1",
            "this is the access-log bucket; logging its own requests into itself would loop",
        )

        abort_multipart = s3.LifecycleRule(
            id="AbortIncompleteMultipartUploads", abort_incomplete_multipart_upload_after=Duration.days(1)
        )
        expire_noncurrent = s3.LifecycleRule(
            id="ExpireNoncurrentVersions",
            noncurrent_version_expiration=Duration.days(props.noncurrent_version_expiry_days),
            expired_object_delete_marker=True,
        )
        self.uploads = private_bucket(
            self,
            "UploadsBucket",
            access_logs=self.access_logs,
            retain=props.retain,
            log_prefix="s3/uploads/",
            versioned=True,
            # S3 "Object Created" events go to EventBridge, where a rule feeds the start queue (see Pipeline).
            event_bridge_enabled=True,
            lifecycle_rules=[abort_multipart, expire_noncurrent],
        )
        self.drop = private_bucket(
            self,
            "DropBucket",
            access_logs=self.access_logs,
            retain=props.retain,
            log_prefix="s3/drop/",
            versioned=True,
            event_bridge_enabled=True,
            lifecycle_rules=[abort_multipart, expire_noncurrent],
        )
        self.results = private_bucket(
            self,
            "ResultsBucket",
            access_logs=self.access_logs,
            retain=props.retain,
            log_prefix="s3/results/",
            lifecycle_rules=[
                abort_multipart,
                s3.LifecycleRule(
                    id="ExpireInferenceIO",
                    prefix=INFERENCE_PREFIX,
                    expiration=Duration.days(props.inference_io_expiry_days),
                ),
                s3.LifecycleRule(
                    id="ExpireArchives",
                    prefix=ARCHIVES_PREFIX,
                    expiration=Duration.days(props.archive_expiry_days),
                ),
            ],
        )

    def allow_browser_origins(self, origins: Sequence[str]) -> None:
        """CORS for the PWA: pre-signed POST uploads (uploads, drop) and pre-signed GET downloads (results)."""
        for bucket in (self.uploads, self.drop):
            bucket.add_cors_rule(
                allowed_methods=[s3.HttpMethods.POST, s3.HttpMethods.PUT],
                allowed_origins=list(origins),
                allowed_headers=["*"],
                exposed_headers=["ETag"],
                max_age=3000,
            )
        self.results.add_cors_rule(
            allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
            allowed_origins=list(origins),
            allowed_headers=["*"],
            max_age=3000,
        )


def private_bucket(
    scope: Construct,
    construct_id: str,
    *,
    retain: bool,
    access_logs: s3.IBucket,
    log_prefix: str,
    **props: Any,
) -> s3.Bucket:
    """A bucket that is never public, only reachable over TLS 1.2+, encrypted at rest, owner-enforced, with
    server access logs under ``log_prefix`` in ``access_logs``."""
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
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=log_prefix,
        **props,
    )


def grant_objects(
    grantee: iam.IGrantable,
    bucket: s3.IBucket,
    prefix: str,
    actions: Sequence[str],
    *,
    why: str,
    scope: Construct | None = None,
) -> None:
    """Allow exactly ``actions`` on the objects under ``prefix`` of ``bucket`` (no action wildcards).

    The key below the prefix (tenant, job, file) is only known per request, so the resource ends in ``*``: that
    one IAM5 finding is acknowledged on ``scope`` (default: the grantee's role) with ``why``.
    """
    objects = bucket.arn_for_objects(f"{prefix}*")
    iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=[objects])
    target = scope if scope is not None else grantee.grant_principal
    assert isinstance(target, Construct)
    acknowledge_wildcard(target, objects, f"objects under {prefix} only: {why}")


def grant_batch_reports(grantee: iam.IGrantable, results: s3.IBucket, *, why: str) -> None:
    """Allow writing batch reports only (``results/*/report.csv`` and ``.json``, created once with
    ``If-None-Match: *``): any function that can end a batch's last job writes its report after the commit."""
    resources = [results.arn_for_objects(f"{RESULTS_PREFIX}*/{name}") for name in BATCH_REPORTS]
    iam.Grant.add_to_principal(grantee=grantee, actions=list(OBJECT_WRITE), resource_arns=resources)
    target = grantee.grant_principal
    assert isinstance(target, Construct)
    for resource in resources:
        acknowledge_wildcard(
            target, resource, f"batch report objects only (results/{{tenant}}/{{batch}}/...): {why}"
        )
