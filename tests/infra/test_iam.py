"""Least privilege: exact actions (no wildcards) on the project's roles, S3 access by key prefix, each function
writing only its own log group, and a SageMaker role that reaches only its image, I/O prefixes and topics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.synthesis import Synth, as_list, render
from tests.infra.test_inference import VPC_ACCESS_ACTIONS as SAGEMAKER_VPC_ACCESS_ACTIONS

pytestmark = pytest.mark.synth

XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _s3_grants(synth: Synth, statements: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(action, bucket role, key pattern) of the S3 object statements, e.g. ("s3:GetObject", "results", "results/*")."""
    roles = {lid: role for role, lid in synth.bucket_ids().items()}
    grants = set()
    for statement in statements:
        for action in as_list(statement["Action"]):
            if not action.startswith("s3:"):
                continue
            for resource in as_list(statement["Resource"]):
                text = render(resource)
                bucket_id = text.removeprefix("<<GetAtt:").split(".Arn>>")[0]
                key = text.split(".Arn>>", 1)[1].lstrip("/")
                grants.add((action, roles[bucket_id], key))
    return grants


def _project_roles(synth: Synth) -> dict[str, str]:
    """Logical ids of the roles this project writes policies for: the functions', SageMaker's, the state machine's."""
    roles = {handler: synth.function_role(handler) for handler in synth.functions()}
    (_, machine) = synth.one("AWS::StepFunctions::StateMachine")
    roles["state machine"] = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    (_, model) = synth.one("AWS::SageMaker::Model")
    roles["sagemaker"] = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    return roles


def test_project_roles_name_exact_actions(synth: Synth) -> None:
    for name, role in _project_roles(synth).items():
        for statement in synth.role_statements(role):
            if statement["Effect"] == "Allow":
                wildcards = [a for a in as_list(statement["Action"]) if "*" in a]
                assert not wildcards, (name, wildcards)


# What Lambda needs to manage a VPC function's network interfaces: the EC2 actions of AWS's managed
# AWSLambdaVPCAccessExecutionRole (policy version v3), without its logs:CreateLogGroup/CreateLogStream/PutLogEvents
# on "*" (AWS Managed Policy reference; Lambda developer guide, "Giving Lambda functions access to a VPC").
VPC_NETWORK_INTERFACE_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}


def test_function_roles_use_star_only_for_xray_and_write_only_their_own_logs(synth: Synth) -> None:
    for handler, function in synth.functions().items():
        role_id = synth.function_role(handler)
        statements = synth.role_statements(role_id) + synth.role_inline_statements(role_id)
        stars = [s for s in statements if "*" in as_list(s["Resource"])]
        assert all(set(as_list(s["Action"])) <= XRAY | VPC_NETWORK_INTERFACE_ACTIONS for s in stars), (
            handler,
            stars,
        )
        logs = [s for s in statements if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        log_group = function["LoggingConfig"]["LogGroup"]["Ref"]
        assert [s["Resource"] for s in logs] == [{"Fn::GetAtt": [log_group, "Arn"]}], handler


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_vpc_functions_get_only_the_network_interface_actions_not_a_managed_policy(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    """No AWS managed policy on any function role (AWSLambdaVPCAccessExecutionRole grants logs:* actions on "*");
    each VPC function's role carries the network-interface actions inline, on the role itself, so that they exist
    before Lambda creates the function and go only with the role."""
    template = synth if stage == "dev" else prod_synth
    for handler, function in template.functions().items():
        assert function["VpcConfig"]["SubnetIds"], handler  # every function reaches PostgreSQL
        role_id = template.function_role(handler)
        role = template.resources[role_id]["Properties"]
        assert role.get("ManagedPolicyArns", []) == [], handler
        (statement,) = template.role_inline_statements(role_id)
        assert statement["Effect"] == "Allow"
        assert set(as_list(statement["Action"])) == VPC_NETWORK_INTERFACE_ACTIONS, handler
        assert statement["Resource"] == "*"  # Describe* work only on "*"; the interfaces do not exist yet
        assert "Condition" not in statement
        ec2 = [
            s
            for s in template.role_statements(role_id)
            if any(a.startswith("ec2:") for a in as_list(s["Action"]))
        ]
        assert ec2 == [], handler


# A batch's report: results/{tenant}/{batch}/report.csv|json, written by whichever function ends its last job.
REPORTS = {
    ("s3:PutObject", "results", "results/*/report.csv"),
    ("s3:PutObject", "results", "results/*/report.json"),
}
EXPECTED_S3 = {
    "functions.api.handler.lambda_handler": {
        ("s3:PutObject", "uploads", "uploads/*"),  # signs pre-signed POSTs
        ("s3:GetObject", "uploads", "uploads/*"),  # re-render and retry copy a job's stored photo
        ("s3:GetObjectVersion", "uploads", "uploads/*"),
        ("s3:GetObject", "results", "results/*"),  # signs pre-signed GETs
        ("s3:DeleteObject", "uploads", "uploads/*"),  # DELETE /v1/jobs/{id}: the photo, every version
        ("s3:DeleteObjectVersion", "uploads", "uploads/*"),
        ("s3:ListBucketVersions", "uploads", ""),  # (only under uploads/, see test_api)
        ("s3:DeleteObject", "results", "results/*"),  # ... and its result
        ("s3:GetObject", "results", "previews/*"),  # signs the job's preview links
        ("s3:DeleteObject", "results", "previews/*"),  # DELETE /v1/jobs/{id}: ... and its previews
        ("s3:PutObject", "results", "archives/*"),  # POST /v1/jobs/archive: the ZIP's multipart upload
        ("s3:AbortMultipartUpload", "results", "archives/*"),  # ... given up on a failure
        ("s3:GetObject", "results", "archives/*"),  # ... and its download link
        ("s3:PutObject", "drop", "drop/*"),  # batch uploads (pre-signed POSTs into the drop folder)
        ("s3:GetObject", "drop", "drop/*"),  # re-render and retry of a batch job copy its photo to uploads/
        ("s3:GetObjectVersion", "drop", "drop/*"),
        ("s3:DeleteObject", "drop", "drop/*"),  # DELETE /v1/jobs/{id} of a batch job
        ("s3:DeleteObjectVersion", "drop", "drop/*"),
        ("s3:ListBucket", "drop", ""),  # seal lists the folder (only under drop/, see test_api)
        ("s3:ListBucketVersions", "drop", ""),
        *REPORTS,  # a cancel or a seal can finish a batch
    },
    "functions.start_workflow.handler.lambda_handler": {
        ("s3:GetObject", "drop", "drop/*"),  # a batch's manifest
        ("s3:GetObjectVersion", "drop", "drop/*"),
        ("s3:ListBucket", "drop", ""),  # a missing key is a 404; the manifest lookup
        *REPORTS,  # a file refused on arrival can be a batch's last
    },
    "functions.reserve_credits.handler.lambda_handler": REPORTS,  # a failed reservation stops its batch
    # RecordStudioResult: the studio function's image stored as the notifier stores an async one
    "functions.capture_credits.handler.lambda_handler": REPORTS
    | {
        ("s3:GetObject", "results", "inference/output/*"),
        ("s3:GetObject", "results", "inference/metadata/*"),
        ("s3:PutObject", "results", "results/*"),
        ("s3:PutObject", "results", "previews/*"),
    },
    "functions.release_credits.handler.lambda_handler": REPORTS,
    "functions.sweeper.handler.lambda_handler": REPORTS,  # reports whose writer died after the commit
    "functions.validate_input.handler.lambda_handler": {
        ("s3:GetObject", "uploads", "uploads/*"),
        ("s3:GetObjectVersion", "uploads", "uploads/*"),
        ("s3:GetObject", "drop", "drop/*"),
        ("s3:GetObjectVersion", "drop", "drop/*"),
        ("s3:ListBucket", "uploads", ""),  # a missing key is a 404, not a 403
        ("s3:ListBucket", "drop", ""),
        ("s3:PutObject", "results", "previews/*"),  # the photo's WebP preview
    },
    "functions.enqueue_inference.handler.lambda_handler": {("s3:PutObject", "results", "inference/input/*")},
    "functions.dispatch_inference.handler.lambda_handler": REPORTS,  # a timeout can end a batch's last job
    "functions.notifier.handler.lambda_handler": {
        ("s3:GetObject", "results", "inference/output/*"),
        ("s3:GetObject", "results", "inference/metadata/*"),  # the engine's refusal and quality per job
        ("s3:PutObject", "results", "results/*"),
        ("s3:PutObject", "results", "previews/*"),  # the result's WebP thumbnail
    },
}


def test_s3_access_is_scoped_to_key_prefixes(synth: Synth) -> None:
    for handler in synth.functions():
        grants = _s3_grants(synth, synth.policy_statements(handler))
        assert grants == EXPECTED_S3.get(handler, set()), handler


def test_sagemaker_role_reaches_only_its_image_io_and_topics(synth: Synth) -> None:
    role = _project_roles(synth)["sagemaker"]
    statements = synth.role_statements(role)
    assert _s3_grants(synth, statements) == {
        ("s3:GetObject", "results", "inference/input/*"),
        ("s3:GetObjectVersion", "results", "inference/input/*"),
        ("s3:GetObject", "uploads", "uploads/*"),
        ("s3:GetObjectVersion", "uploads", "uploads/*"),
        ("s3:GetObject", "drop", "drop/*"),
        ("s3:GetObjectVersion", "drop", "drop/*"),
        ("s3:PutObject", "results", "inference/output/*"),
        ("s3:AbortMultipartUpload", "results", "inference/output/*"),
        ("s3:PutObject", "results", "inference/failure/*"),
        ("s3:AbortMultipartUpload", "results", "inference/failure/*"),
        ("s3:PutObject", "results", "inference/metadata/*"),  # each job's metadata JSON (metadata_s3_uri)
    }
    (publish,) = [s for s in statements if s["Action"] == "sns:Publish"]
    topics = {r["Ref"] for r in publish["Resource"]}
    assert {t.split("Topic")[0] for t in topics} == {"InferenceSuccess", "InferenceError"}
    stars = [s for s in statements if s["Resource"] == "*"]
    assert {a for s in stars for a in as_list(s["Action"])} == {
        "ecr:GetAuthorizationToken",
        "cloudwatch:PutMetricData",
        # attaching the model to the VPC, exactly AWS's list ("Add Permissions for Endpoint Access for Containers
        # Running in a VPC to Custom IAM Policies")
        *SAGEMAKER_VPC_ACCESS_ACTIONS,
    }
    (metrics,) = [s for s in stars if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "Modamoda*"]}}
    logs = [render(s["Resource"]) for s in statements if as_list(s["Action"])[0].startswith("logs:")]
    assert all("log-group:/aws/sagemaker/Endpoints/modamoda-dev-g5-xlarge" in r for r in logs), logs
    (pull,) = [s for s in statements if "ecr:BatchGetImage" in as_list(s["Action"])]
    assert ":repository/" in render(pull["Resource"])


def test_the_metadata_prefix_is_the_one_the_pipeline_uses() -> None:
    from functions.common import pipeline
    from infra.storage import INFERENCE_METADATA_PREFIX, INFERENCE_PREFIX

    assert pipeline.METADATA_PREFIX == INFERENCE_METADATA_PREFIX
    assert INFERENCE_METADATA_PREFIX.startswith(INFERENCE_PREFIX)  # expired with the other inference objects


def test_the_preview_and_archive_prefixes_are_the_ones_the_functions_use() -> None:
    from functions.common import archives, previews
    from infra.storage import ARCHIVES_PREFIX, PREVIEWS_PREFIX

    assert previews.PREFIX == PREVIEWS_PREFIX
    assert archives.PREFIX == ARCHIVES_PREFIX
