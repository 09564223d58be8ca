"""The studio engine's Lambda function (infra/studio.py): an arm64 container image built from the inference
container's package, sized by ``bench/studio_lambda.py``, traced and logged like the others, allowed to read the
photos and write the engine's answers and nothing else, invoked by the state machine."""

from __future__ import annotations

import json
from typing import Any

import pytest

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.config import STATE_MACHINE_FILE, StageConfig
from infra.studio import DOCKERFILE, MEMORY_MB, TIMEOUT
from tests.infra.synthesis import Synth

pytestmark = pytest.mark.synth


def _studio_statements(synth: Synth) -> list[dict[str, Any]]:
    _, props = synth.studio_function()
    return synth.role_statements(props["Role"]["Fn::GetAtt"][0])


def test_the_function_is_an_arm64_image_sized_by_the_benchmark(synth: Synth) -> None:
    _, props = synth.studio_function()
    assert props["PackageType"] == "Image"
    assert props["Architectures"] == ["arm64"]
    assert props["MemorySize"] == MEMORY_MB == 1769  # one vCPU: the engine is single-threaded
    assert props["Timeout"] == TIMEOUT.to_seconds() == 30
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert "VpcConfig" not in props  # no database: S3 through Lambda's own network
    assert "ReservedConcurrentExecutions" not in props  # dev: the unreserved pool
    env = props["Environment"]["Variables"]
    results = synth.bucket_ids()["results"]
    assert env["MODAMODA_OUTPUT_S3_PATH"] == {
        "Fn::Join": ["", ["s3://", {"Ref": results}, "/inference/output"]]
    }
    assert env["MODAMODA_FAILURE_S3_PATH"] == {
        "Fn::Join": ["", ["s3://", {"Ref": results}, "/inference/failure"]]
    }
    assert not {k for k in env if k.startswith("DB_")}
    log_group = synth.resources[props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] == 30


def test_the_image_is_the_inference_package_on_the_lambda_dockerfile(synth: Synth) -> None:
    (manifest,) = synth.outdir.glob("*.assets.json")
    images = json.loads(manifest.read_text())["dockerImages"]
    (studio,) = [i for i in images.values() if i["source"].get("dockerFile") == DOCKERFILE]
    assert studio["source"]["platform"] == "linux/arm64"
    assert (synth.outdir / studio["source"]["directory"] / DOCKERFILE).is_file()
    assert (
        synth.outdir / studio["source"]["directory"] / "modamoda_inference" / "lambda_handler.py"
    ).is_file()
    _, props = synth.studio_function()
    tag = props["Code"]["ImageUri"]["Fn::Sub"].rsplit(":", 1)[1]
    assert tag in {d["imageTag"] for d in studio["destinations"].values()}


def test_the_function_may_read_photos_and_write_answers_only(synth: Synth) -> None:
    buckets = {lid: role for role, lid in synth.bucket_ids().items()}
    grants: set[tuple[str, str, str]] = set()
    other: list[str] = []
    for statement in _studio_statements(synth):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            if not action.startswith("s3:"):
                other.append(action)
                continue
            for resource in resources:
                (_, parts) = resource["Fn::Join"]
                bucket = buckets[parts[0]["Fn::GetAtt"][0]]
                grants.add((action, bucket, parts[1].lstrip("/")))
    assert grants == {
        ("s3:GetObject", "uploads", "uploads/*"),
        ("s3:GetObjectVersion", "uploads", "uploads/*"),
        ("s3:GetObject", "drop", "drop/*"),
        ("s3:GetObjectVersion", "drop", "drop/*"),
        ("s3:PutObject", "results", "inference/output/*"),
        ("s3:PutObject", "results", "inference/failure/*"),
        ("s3:PutObject", "results", "inference/metadata/*"),
    }
    assert sorted(other) == sorted(
        ["logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    )
    _, props = synth.studio_function()
    role = synth.resources[props["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role


def test_prod_reserves_concurrency_for_the_studio_function(prod_synth: Synth) -> None:
    _, props = prod_synth.studio_function()
    assert props["ReservedConcurrentExecutions"] == 50


def test_validate_input_decides_the_path_with_the_switch(synth: Synth) -> None:
    env = synth.functions()["functions.validate_input.handler.lambda_handler"]["Environment"]["Variables"]
    assert env["GHOST_ON_LAMBDA"] == "true"


def test_the_studio_task_outlasts_the_function_timeout() -> None:
    definition = json.loads(STATE_MACHINE_FILE.read_text(encoding="utf-8"))
    run_studio = definition["States"]["RunStudio"]
    assert (
        run_studio["TimeoutSeconds"] > TIMEOUT.to_seconds()
    )  # the function's own timeout is what fails first


@pytest.mark.parametrize(
    ("context", "ghost_on_lambda", "reserved"),
    [
        ({}, True, None),
        ({"stage": "prod"}, True, 50),
        ({"ghost_on_lambda": "false", "studio_reserved_concurrency": "20"}, False, 20),
        ({"stage": "prod", "studio_reserved_concurrency": 0}, True, None),
    ],
)
def test_stage_config_reads_the_switch_and_the_reservation(
    context: dict[str, Any], ghost_on_lambda: bool, reserved: int | None
) -> None:
    import aws_cdk as cdk

    config = StageConfig.from_context(cdk.App(context=context).node)
    assert config.ghost_on_lambda is ghost_on_lambda
    assert config.studio_reserved_concurrency == reserved


def test_stage_config_refuses_a_negative_reservation() -> None:
    import aws_cdk as cdk

    with pytest.raises(ValueError, match="studio_reserved_concurrency"):
        StageConfig.from_context(cdk.App(context={"studio_reserved_concurrency": "-1"}).node)
