"""Storage in the synthesised template: private, encrypted, TLS-only, logged buckets; versioning and events where
jobs start; lifecycle rules; CORS for the PWA only; the drop folder feeding the same start queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.synthesis import Synth, render

pytestmark = pytest.mark.synth


def _bucket_policies(synth: Synth) -> dict[str, list[dict[str, Any]]]:
    return {
        res["Properties"]["Bucket"]["Ref"]: res["Properties"]["PolicyDocument"]["Statement"]
        for res in synth.of_type("AWS::S3::BucketPolicy").values()
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_bucket_is_private_encrypted_tls_only_and_logged(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    template = synth if stage == "dev" else prod_synth
    policies = _bucket_policies(template)
    buckets = template.bucket_ids()
    logs_bucket = buckets["access_logs"]
    for role, lid in buckets.items():
        props = template.resources[lid]["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, role
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", role
        denies = [s for s in policies[lid] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies), role
        assert any("s3:TlsVersion" in s["Condition"].get("NumericLessThan", {}) for s in denies), role
        allows = [s for s in policies[lid] if s["Effect"] == "Allow"]
        assert all(s.get("Principal") != "*" and s.get("Principal") != {"AWS": "*"} for s in allows), role
        if role == "access_logs":
            assert "LoggingConfiguration" not in props
            # CloudFront's standard logs arrive with an ACL; everything else is owner-enforced
            assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerPreferred"}]
        else:
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_bucket}, role
            assert props["LoggingConfiguration"]["LogFilePrefix"] == f"s3/{role}/", role
            assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}], role


def test_log_delivery_writes_each_buckets_logs_under_its_own_prefix(synth: Synth) -> None:
    buckets = synth.bucket_ids()
    logs_bucket = buckets.pop("access_logs")
    allows = [s for s in _bucket_policies(synth)[logs_bucket] if s["Effect"] == "Allow"]
    deliveries = {
        s["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::GetAtt"][0]: render(s["Resource"])
        for s in allows
        if s["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    }
    assert deliveries == {lid: f"<<GetAtt:{logs_bucket}.Arn>>/s3/{role}/*" for role, lid in buckets.items()}
    for statement in allows:
        if statement["Principal"] == {"Service": "logging.s3.amazonaws.com"}:
            assert statement["Action"] == "s3:PutObject"
            assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        else:  # dev only: CDK's auto-delete handler empties the bucket when the stack is deleted
            assert "AutoDeleteObjects" in json.dumps(statement["Principal"])
    rules = synth.resources[logs_bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules == [{"ExpirationInDays": 90, "Id": "ExpireAccessLogs", "Status": "Enabled"}]


@pytest.mark.parametrize("role", ["uploads", "drop"])
def test_event_buckets_are_versioned_and_send_events_to_eventbridge(synth: Synth, role: str) -> None:
    lid = synth.bucket_ids()[role]
    props = synth.resources[lid]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert rules["AbortIncompleteMultipartUploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    notifications = {
        n["Properties"]["BucketName"]["Ref"]: n["Properties"]["NotificationConfiguration"]
        for n in synth.of_type("Custom::S3BucketNotifications").values()
    }
    assert notifications[lid] == {"EventBridgeConfiguration": {}}


def test_only_event_buckets_are_versioned(synth: Synth) -> None:
    versioned = {
        role
        for role, lid in synth.bucket_ids().items()
        if "VersioningConfiguration" in synth.resources[lid]["Properties"]
    }
    assert versioned == {"uploads", "drop"}


def test_results_bucket_expires_inference_io(synth: Synth) -> None:
    props = synth.resources[synth.bucket_ids()["results"]]["Properties"]
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireInferenceIO"]["Prefix"] == "inference/"
    assert rules["ExpireInferenceIO"]["ExpirationInDays"] == 7
    assert "AbortIncompleteMultipartUploads" in rules


def test_results_bucket_expires_download_all_zips_after_a_day(synth: Synth) -> None:
    from functions.common import archives

    props = synth.resources[synth.bucket_ids()["results"]]["Properties"]
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireArchives"]["Prefix"] == archives.PREFIX == "archives/"
    assert rules["ExpireArchives"]["ExpirationInDays"] == 1
    assert rules["ExpireArchives"]["Status"] == "Enabled"


def _cors(synth: Synth, role: str) -> dict[str, Any]:
    (rule,) = synth.resources[synth.bucket_ids()[role]]["Properties"]["CorsConfiguration"]["CorsRules"]
    return dict(rule)


def test_cors_admits_the_cloudfront_origin_and_the_dev_server_in_dev(synth: Synth) -> None:
    (distribution_id, _) = synth.one("AWS::CloudFront::Distribution")
    expected = [f"https://<<GetAtt:{distribution_id}.DomainName>>", "http://localhost:8787"]
    for role in ("uploads", "drop"):
        rule = _cors(synth, role)
        assert sorted(rule["AllowedMethods"]) == ["POST", "PUT"]
        assert [render(o) for o in rule["AllowedOrigins"]] == expected
    rule = _cors(synth, "results")
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]
    assert [render(o) for o in rule["AllowedOrigins"]] == expected
    for role in ("access_logs", "web"):
        assert "CorsConfiguration" not in synth.resources[synth.bucket_ids()[role]]["Properties"]


def test_cors_admits_only_the_configured_origin_in_prod(prod_synth: Synth) -> None:
    for role in ("uploads", "drop", "results"):
        assert _cors(prod_synth, role)["AllowedOrigins"] == ["https://app.example"]


def test_dev_buckets_are_disposable_and_prod_buckets_are_kept(synth: Synth, prod_synth: Synth) -> None:
    for lid in synth.bucket_ids().values():
        assert synth.resources[lid]["DeletionPolicy"] == "Delete"
    auto_deleted = {
        r["Properties"]["BucketName"]["Ref"] for r in synth.of_type("Custom::S3AutoDeleteObjects").values()
    }
    assert auto_deleted == set(synth.bucket_ids().values())
    for lid in prod_synth.bucket_ids().values():
        assert prod_synth.resources[lid]["DeletionPolicy"] == "Retain"
    assert not prod_synth.of_type("Custom::S3AutoDeleteObjects")
