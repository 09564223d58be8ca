"""The SageMaker endpoint as AWS documents it must be deployed:

* its model data (context ``model_data``): an S3 prefix deployed uncompressed (``ModelDataSource.S3DataSource``,
  ``S3Prefix`` / ``CompressionType: None``, AWS "Deploying uncompressed models"), or a ``.tar.gz``
  (``ModelDataUrl``); the role reads exactly that; without it the endpoint runs the studio engine only and the
  functions are told on-model is unavailable;
* a new instance type is a new endpoint (its name carries the type), because ``UpdateEndpoint`` fails on a
  variant registered with Application Auto Scaling whose instance type changes (AWS "Update endpoints that use
  auto scaling"), and CloudFormation deletes a replaced scalable target only after updating the endpoint;
* the scale-out-from-zero policy's cooldown outlasts an instance start ("the provisioning process takes several
  minutes", AWS "Scale an endpoint to zero instances").
"""

from __future__ import annotations

from typing import Any

import pytest

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.config import BUNDLING_STACKS_KEY, StageConfig, cdk_json_context
from infra.inference import ENDPOINT_ONLY_METRICS, ModelData, endpoint_metric
from tests.infra.conftest import PROD_MODEL_DATA
from tests.infra.synthesis import Synth, as_list, render

pytestmark = pytest.mark.synth

API = "functions.api.handler.lambda_handler"
START = "functions.start_workflow.handler.lambda_handler"


def inference_template(
    instance_type: str = "ml.g5.xlarge", endpoint_name: str | None = None, **props: Any
) -> dict[str, Any]:
    """The Inference construct alone (with the storage it needs) in a stack of its own: quicker than the app."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.inference import Inference, InferenceProps
    from infra.storage import Storage, StorageProps

    app = cdk.App(context={**cdk_json_context(), BUNDLING_STACKS_KEY: []})
    stack = cdk.Stack(app, "InferenceOnly")
    storage = Storage(stack, "Storage", StorageProps(retain=False))
    config = StageConfig(inference_instance_type=instance_type)
    Inference(
        stack,
        "Inference",
        InferenceProps(
            storage=storage,
            endpoint_name=endpoint_name or config.endpoint_name,
            instance_type=instance_type,
            **props,
        ),
    )
    template: dict[str, Any] = dict(Template.from_stack(stack).to_json())
    return template


def one(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(lid, r) for lid, r in template["Resources"].items() if r["Type"] == resource_type]
    return found


def sagemaker_role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    (_, model) = one(template, "AWS::SageMaker::Model")
    role = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    return [
        statement
        for res in template["Resources"].values()
        if res["Type"] == "AWS::IAM::Policy" and {"Ref": role} in res["Properties"]["Roles"]
        for statement in res["Properties"]["PolicyDocument"]["Statement"]
    ]


def model_bucket_statements(template: dict[str, Any], bucket: str) -> list[tuple[list[str], str, Any]]:
    """(actions, rendered resource, condition) of the SageMaker role's statements on the models bucket."""
    found = []
    for statement in sagemaker_role_statements(template):
        for resource in as_list(statement["Resource"]):
            text = render(resource)
            if f":s3:::{bucket}" in text:
                found.append((as_list(statement["Action"]), text, statement.get("Condition")))
    return found


# ---- 1. model data ---------------------------------------------------------------------------------------------


def test_without_model_data_the_endpoint_runs_ghost_only_and_says_so(synth: Synth) -> None:
    (_, model) = synth.one("AWS::SageMaker::Model")
    container = model["Properties"]["PrimaryContainer"]
    assert "ModelDataUrl" not in container
    assert "ModelDataSource" not in container
    assert container["Environment"]["MODAMODA_ENGINES"] == "studio"  # only the engine that needs no weights
    functions = synth.functions()
    for handler in (API, START):  # the API refuses on-model jobs, the drop folder refuses on-model files
        assert functions[handler]["Environment"]["Variables"]["ON_MODEL_AVAILABLE"] == "false", handler
    assert synth.template["Outputs"]["OnModelAvailable"]["Value"] == "false"


def test_a_model_data_prefix_is_deployed_uncompressed(prod_synth: Synth) -> None:
    (_, model) = prod_synth.one("AWS::SageMaker::Model")
    container = model["Properties"]["PrimaryContainer"]
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": PROD_MODEL_DATA, "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    assert "ModelDataUrl" not in container
    assert "MODAMODA_ENGINES" not in container.get("Environment", {})  # the image's studio,diffusion
    functions = prod_synth.functions()
    for handler in (API, START):
        assert functions[handler]["Environment"]["Variables"]["ON_MODEL_AVAILABLE"] == "true", handler
    assert prod_synth.template["Outputs"]["OnModelAvailable"]["Value"] == "true"


def test_the_role_reads_exactly_the_model_prefix(prod_synth: Synth) -> None:
    template = prod_synth.template
    statements = model_bucket_statements(template, "modamoda-models-example")
    assert sorted(statements, key=lambda s: s[0]) == [
        (["s3:GetObject"], "arn:aws:s3:::modamoda-models-example/modamoda/2025.11.1/*", None),
        (
            ["s3:ListBucket"],
            "arn:aws:s3:::modamoda-models-example",
            {"StringLike": {"s3:prefix": ["modamoda/2025.11.1/*"]}},
        ),
    ]


def test_a_model_archive_is_deployed_as_model_data_url() -> None:
    uri = "s3://modamoda-models-example/archives/modamoda-2025.11.1.tar.gz"
    template = inference_template(model_data=uri)
    (_, model) = one(template, "AWS::SageMaker::Model")
    container = model["Properties"]["PrimaryContainer"]
    assert container["ModelDataUrl"] == uri
    assert "ModelDataSource" not in container
    assert model_bucket_statements(template, "modamoda-models-example") == [
        (
            ["s3:GetObject"],
            "arn:<<Ref:AWS::Partition>>:s3:::modamoda-models-example/archives/modamoda-2025.11.1.tar.gz",
            None,
        )
    ]


def test_model_data_values() -> None:
    prefix = ModelData.parse("s3://my-models/modamoda/2025.11.1")
    assert (prefix.bucket, prefix.key, prefix.is_archive) == ("my-models", "modamoda/2025.11.1/", False)
    assert prefix.uri == "s3://my-models/modamoda/2025.11.1/"  # S3Prefix URIs end with a slash
    archive = ModelData.parse(" s3://my-models/m/model.tar.gz ")
    assert (archive.key, archive.is_archive) == ("m/model.tar.gz", True)
    for bad in (
        "my-models/m/",
        "s3://my-models",
        "s3://my-models/",
        "s3://My_Models/m/",
        "s3://my-models/m/*",
        "s3://my-models/m//x/",
        "s3://my-models/m/model.tgz",
        "s3://my-models/m/model.zip",
    ):
        with pytest.raises(ValueError, match="model_data"):
            ModelData.parse(bad)


# ---- 2. metric dimensions -------------------------------------------------------------------------------------


def test_metrics_carry_the_dimensions_sagemaker_publishes() -> None:
    for name in ENDPOINT_ONLY_METRICS:
        assert endpoint_metric(name, "e").dimensions == {"EndpointName": "e"}
    for name in ("InvocationFailures", "NotificationFailures", "InvocationsProcesssed", "ExpiredRequests"):
        assert endpoint_metric(name, "e", "v").dimensions == {"EndpointName": "e", "VariantName": "v"}
        with pytest.raises(ValueError, match="per EndpointName and VariantName"):
            endpoint_metric(name, "e")


# ---- 3. changing the instance type --------------------------------------------------------------------------------


def test_the_endpoint_and_everything_on_it_follow_its_name(synth: Synth) -> None:
    (endpoint_id, endpoint) = synth.one("AWS::SageMaker::Endpoint")
    assert endpoint["Properties"]["EndpointName"] == "modamoda-dev-g5-xlarge"
    name = {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    (_, target) = synth.one("AWS::ApplicationAutoScaling::ScalableTarget")
    assert render(target["Properties"]["ResourceId"]) == f"endpoint/{render(name)}/variant/AllTraffic"
    invoke = synth.functions()["functions.invoke_inference.handler.lambda_handler"]
    assert invoke["Environment"]["Variables"]["INFERENCE_ENDPOINT_NAME"] == name
    assert synth.template["Outputs"]["InferenceEndpointName"]["Value"] == name


def test_a_new_instance_type_is_a_new_endpoint() -> None:
    """EndpointName is create-only: CloudFormation creates the new endpoint, a new scalable target (its
    ResourceId, also create-only, is built from the endpoint's name) and policies, then deletes the old ones;
    UpdateEndpoint never changes the instance type of a registered variant."""
    names = {}
    for instance_type in ("ml.g5.xlarge", "ml.g6.2xlarge"):
        template = inference_template(instance_type)
        (endpoint_id, endpoint) = one(template, "AWS::SageMaker::Endpoint")
        (_, config) = one(template, "AWS::SageMaker::EndpointConfig")
        assert config["Properties"]["ProductionVariants"][0]["InstanceType"] == instance_type
        (_, target) = one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
        assert render(target["Properties"]["ResourceId"]).startswith(
            f"endpoint/<<GetAtt:{endpoint_id}.EndpointName>>"
        )
        names[instance_type] = endpoint["Properties"]["EndpointName"]
    assert names == {"ml.g5.xlarge": "modamoda-dev-g5-xlarge", "ml.g6.2xlarge": "modamoda-dev-g6-2xlarge"}


def test_an_endpoint_name_sagemaker_would_refuse_stops_the_synthesis() -> None:
    config = StageConfig(stage="s" * 41, inference_instance_type="ml.p5en.48xlarge")
    assert len(config.endpoint_name) == 64
    with pytest.raises(ValueError, match=r"not valid: at most 63 .* use a shorter 'stage'"):
        inference_template(endpoint_name=config.endpoint_name)


# ---- 9. scaling out from zero ---------------------------------------------------------------------------------


def test_scale_out_from_zero_waits_longer_than_an_instance_start(synth: Synth) -> None:
    (step,) = [
        res
        for res in synth.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if res["Properties"]["PolicyType"] == "StepScaling"
    ]
    configuration = step["Properties"]["StepScalingPolicyConfiguration"]
    # an instance takes several minutes to provision (~5-8 min with the weights); while it does,
    # HasBacklogWithoutCapacity stays 1 and a shorter cooldown would add a second instance for the same job
    assert configuration["Cooldown"] >= 600
    assert configuration["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
