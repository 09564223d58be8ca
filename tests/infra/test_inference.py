"""The SageMaker endpoint as AWS documents it must be deployed:

* its model data (context ``model_data``): an S3 prefix deployed uncompressed (``ModelDataSource.S3DataSource``,
  ``S3Prefix`` / ``CompressionType: None``, AWS "Deploying uncompressed models"), or a ``.tar.gz``
  (``ModelDataUrl``); the role reads exactly that; without it the endpoint runs the studio engine only and the
  functions are told on-model is unavailable;
* a new instance type is a new endpoint (its name carries the type), because ``UpdateEndpoint`` fails on a
  variant registered with Application Auto Scaling whose instance type changes (AWS "Update endpoints that use
  auto scaling"), and CloudFormation deletes a replaced scalable target only after updating the endpoint;
* the scale-out-from-zero policy's cooldown outlasts an instance start ("the provisioning process takes several
  minutes", AWS "Scale an endpoint to zero instances");
* the container runs in isolated subnets of the VPC whose only way out is HTTPS to an S3 gateway endpoint with a
  policy that names our objects only (AWS "Give SageMaker AI Hosted Endpoints Access to Resources in Your Amazon
  VPC"), the functions keep the NAT gateway and their own S3 endpoint.
"""

from __future__ import annotations

import json
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
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk.assertions import Template

    from infra.inference import Inference, InferenceProps
    from infra.storage import Storage, StorageProps

    app = cdk.App(context={**cdk_json_context(), BUNDLING_STACKS_KEY: []})
    stack = cdk.Stack(app, "InferenceOnly")
    storage = Storage(stack, "Storage", StorageProps(retain=False))
    isolated = ec2.SubnetConfiguration(name="Inference", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[isolated])
    config = StageConfig(inference_instance_type=instance_type)
    Inference(
        stack,
        "Inference",
        InferenceProps(
            storage=storage,
            endpoint_name=endpoint_name or config.endpoint_name,
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_group_name="Inference"),
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
    dispatch = synth.functions()["functions.dispatch_inference.handler.lambda_handler"]
    assert dispatch["Environment"]["Variables"]["INFERENCE_ENDPOINT_NAME"] == name
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
    (alarm,) = [
        a["Properties"]
        for a in synth.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "HasBacklogWithoutCapacity"
    ]
    (action,) = alarm["AlarmActions"]
    step = synth.template["Resources"][action["Ref"]]
    configuration = step["Properties"]["StepScalingPolicyConfiguration"]
    # an instance takes several minutes to provision (~5-8 min with the weights); while it does,
    # HasBacklogWithoutCapacity stays 1 and a shorter cooldown would add a second instance for the same job
    assert configuration["Cooldown"] >= 600
    assert configuration["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]


# ---- 10. the container's network ------------------------------------------------------------------------------
# AWS, "Give SageMaker AI Hosted Endpoints Access to Resources in Your Amazon VPC": VpcConfig with subnets in at least
# two AZs and security groups; an S3 VPC endpoint (custom policy recommended) for containers without internet access;
# the execution role needs the network-interface actions below. "Training and Inference Containers Run in
# Internet-Free Mode": EnableNetworkIsolation blocks every outbound call "even to other AWS services such as Amazon
# S3", which the container makes itself (it reads the photo and writes the metadata), so the VPC is the isolation.

S3_SERVICE = {"com.amazonaws.<<Ref:AWS::Region>>.s3", "com.amazonaws.eu-west-1.s3"}  # dev, prod
VPC_ACCESS_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVpcs",
}


def _stage(stage: str, synth: Synth, prod_synth: Synth) -> Synth:
    return synth if stage == "dev" else prod_synth


def _model_network(template: Synth) -> tuple[list[str], str]:
    """(subnet logical ids, security group logical id) of the SageMaker model."""
    (_, model) = template.one("AWS::SageMaker::Model")
    config = model["Properties"]["VpcConfig"]
    (group,) = config["SecurityGroupIds"]
    return [subnet["Ref"] for subnet in config["Subnets"]], group["Fn::GetAtt"][0]


def _route_tables(template: Synth, subnets: list[str]) -> set[str]:
    return {
        res["Properties"]["RouteTableId"]["Ref"]
        for res in template.of_type("AWS::EC2::SubnetRouteTableAssociation").values()
        if res["Properties"]["SubnetId"]["Ref"] in subnets
    }


def _s3_endpoints(template: Synth) -> dict[str, dict[str, Any]]:
    return {
        lid: res["Properties"]
        for lid, res in template.of_type("AWS::EC2::VPCEndpoint").items()
        if render(res["Properties"]["ServiceName"]) in S3_SERVICE
    }


def _egress(template: Synth, group: str) -> list[dict[str, Any]]:
    """Every egress rule of the security group, inline or as its own resource."""
    rules = list(template.resources[group]["Properties"].get("SecurityGroupEgress", []))
    rules += [
        res["Properties"]
        for res in template.of_type("AWS::EC2::SecurityGroupEgress").values()
        if res["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]
    return rules


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_model_runs_in_isolated_subnets_in_two_azs_with_a_security_group_of_its_own(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    template = _stage(stage, synth, prod_synth)
    (_, model) = template.one("AWS::SageMaker::Model")
    assert model["Properties"].get("EnableNetworkIsolation") is not True  # the container reads S3 itself
    subnets, group = _model_network(template)
    assert len(subnets) >= 2
    assert all(lid.startswith("DatabaseVpcInferenceSubnet") for lid in subnets)
    zones = {json.dumps(template.resources[lid]["Properties"]["AvailabilityZone"]) for lid in subnets}
    assert len(zones) == len(subnets)  # one subnet per AZ, at least two AZs
    for lid in subnets:
        assert template.resources[lid]["Properties"]["MapPublicIpOnLaunch"] is False
    # isolated: no route at all in their route tables (no NAT gateway, no internet gateway), only the VPC's own
    # range and the S3 gateway endpoint's prefix-list routes (which are not AWS::EC2::Route resources)
    tables = _route_tables(template, subnets)
    assert len(tables) == len(subnets)
    assert not [
        res
        for res in template.of_type("AWS::EC2::Route").values()
        if res["Properties"]["RouteTableId"]["Ref"] in tables
    ]
    # the group is the model's alone: no function, proxy or cluster uses it, and nothing may come in
    assert template.resources[group]["Type"] == "AWS::EC2::SecurityGroup"
    assert "SecurityGroupIngress" not in template.resources[group]["Properties"]
    users = [
        lid
        for lid, res in template.resources.items()
        if res["Type"] != "AWS::SageMaker::Model" and f'"{group}"' in json.dumps(res["Properties"])
    ]
    assert all(template.resources[lid]["Type"] == "AWS::EC2::SecurityGroupEgress" for lid in users), users
    assert not [
        res
        for res in template.of_type("AWS::EC2::SecurityGroupIngress").values()
        if res["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_security_group_lets_only_https_to_the_s3_prefix_list_out(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    template = _stage(stage, synth, prod_synth)
    _, group = _model_network(template)
    # created with an inline rule that matches nothing, so EC2 never adds its default allow-all egress
    # (AWS::EC2::SecurityGroup: "if you do not add egress rules, we add egress rules that allow all outbound IPv4
    # and IPv6 traffic. Otherwise, we do not add them")
    assert template.resources[group]["Properties"]["SecurityGroupEgress"] == [
        {
            "CidrIp": "255.255.255.255/32",
            "Description": "Disallow all traffic",
            "IpProtocol": "icmp",
            "FromPort": 252,
            "ToPort": 86,
        }
    ]
    (rule,) = [rule for rule in _egress(template, group) if rule.get("CidrIp") != "255.255.255.255/32"]
    assert rule["IpProtocol"] == "tcp"
    assert rule["FromPort"] == rule["ToPort"] == 443
    assert not {"CidrIp", "CidrIpv6", "DestinationSecurityGroupId"} & rule.keys()
    # the id of the region's AWS-managed S3 prefix list (com.amazonaws.<region>.s3), looked up at deploy time
    lookup, path = rule["DestinationPrefixListId"]["Fn::GetAtt"]
    assert path == "PrefixLists.0.PrefixListId"
    call = json.loads(render(template.resources[lookup]["Properties"]["Create"]))
    assert (call["service"], call["action"]) == ("EC2", "describePrefixLists")
    (name_filter,) = call["parameters"]["Filters"]
    assert name_filter["Name"] == "prefix-list-name"
    (service,) = name_filter["Values"]
    assert service in S3_SERVICE
    # no 0.0.0.0/0 (nor ::/0) egress anywhere on it: allow_all_outbound is off
    group_json = json.dumps(template.resources[group])
    assert "0.0.0.0/0" not in group_json
    assert "::/0" not in group_json


def _expected_objects(template: Synth, stage: str) -> dict[str, set[str]]:
    """Every S3 resource the endpoint's role may touch (rendered) → its actions."""
    buckets = template.bucket_ids()
    read, put = {"s3:GetObject", "s3:GetObjectVersion"}, {"s3:PutObject", "s3:AbortMultipartUpload"}
    expected = {
        f"<<GetAtt:{buckets['uploads']}.Arn>>/uploads/*": read,
        f"<<GetAtt:{buckets['drop']}.Arn>>/drop/*": read,
        f"<<GetAtt:{buckets['results']}.Arn>>/inference/input/*": read,
        f"<<GetAtt:{buckets['results']}.Arn>>/inference/output/*": put,
        f"<<GetAtt:{buckets['results']}.Arn>>/inference/failure/*": put,
        f"<<GetAtt:{buckets['results']}.Arn>>/inference/metadata/*": {"s3:PutObject"},
    }
    if stage == "prod":  # the model data (context model_data), read by SageMaker at each instance start
        expected["arn:aws:s3:::modamoda-models-example/modamoda/2025.11.1/*"] = {"s3:GetObject"}
        expected["arn:aws:s3:::modamoda-models-example"] = {"s3:ListBucket"}
    return expected


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_inference_subnets_have_an_s3_gateway_endpoint_that_names_only_our_objects(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    """AWS: "We recommend that you also create a custom policy" on the S3 VPC endpoint; the default policy allows
    every bucket in the region (anyone's), which would let a compromised container copy photos out to its own."""
    template = _stage(stage, synth, prod_synth)
    subnets, _ = _model_network(template)
    inference_tables = _route_tables(template, subnets)
    endpoints = _s3_endpoints(template)
    (endpoint,) = [
        props
        for props in endpoints.values()
        if {table["Ref"] for table in props["RouteTableIds"]} & inference_tables
    ]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert {table["Ref"] for table in endpoint["RouteTableIds"]} == inference_tables
    statements = endpoint["PolicyDocument"]["Statement"]
    found: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"AWS": "*"}
        actions = set(as_list(statement["Action"]))
        assert not [action for action in actions if "*" in action]
        for resource in as_list(statement["Resource"]):
            found.setdefault(render(resource), set()).update(actions)
            if render(resource) == "arn:aws:s3:::modamoda-models-example":  # list the model prefix only
                assert statement["Condition"] == {"StringLike": {"s3:prefix": ["modamoda/2025.11.1/*"]}}
    assert found == _expected_objects(template, stage)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_functions_keep_their_own_s3_endpoint_and_the_nat_gateway(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    """The functions (Stripe's API is on the internet) keep the NAT gateway and the VPC's general S3 endpoint; a
    route table takes one gateway endpoint per service, so that one stays off the inference subnets."""
    template = _stage(stage, synth, prod_synth)
    subnets, _ = _model_network(template)
    inference_tables = _route_tables(template, subnets)
    (general,) = [props for lid, props in _s3_endpoints(template).items() if lid.startswith("DatabaseVpc")]
    general_tables = {table["Ref"] for table in general["RouteTableIds"]}
    assert not general_tables & inference_tables
    assert "PolicyDocument" not in general  # unchanged: the functions' access is their roles' business
    function_subnets = {
        subnet["Ref"]
        for function in template.functions().values()
        for subnet in function["VpcConfig"]["SubnetIds"]
    }
    assert function_subnets
    assert not function_subnets & set(subnets)
    assert _route_tables(template, sorted(function_subnets)) <= general_tables
    nat_routes = [
        res["Properties"]["RouteTableId"]["Ref"]
        for res in template.of_type("AWS::EC2::Route").values()
        if "NatGatewayId" in res["Properties"]
    ]
    assert set(nat_routes) == _route_tables(template, sorted(function_subnets))


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_role_can_attach_the_model_to_the_vpc_and_the_container_uses_the_regional_s3_endpoint(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    template = _stage(stage, synth, prod_synth)
    allowed = {
        action
        for statement in sagemaker_role_statements(template.template)
        if statement["Resource"] == "*"
        for action in as_list(statement["Action"])
    }
    assert allowed >= VPC_ACCESS_ACTIONS
    (model_id, model) = template.one("AWS::SageMaker::Model")
    role = model["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        lid
        for lid, res in template.of_type("AWS::IAM::Policy").items()
        if {"Ref": role} in res["Properties"]["Roles"]
        and "ec2:CreateNetworkInterface" in json.dumps(res["Properties"]["PolicyDocument"])
    ]
    # CreateModel checks that the role can use the subnets: its policy exists first
    assert {role, policy} <= set(as_list(template.resources[model_id].get("DependsOn", [])))
    environment = model["Properties"]["PrimaryContainer"]["Environment"]
    assert environment["AWS_DEFAULT_REGION"] == {"Ref": "AWS::Region"}
