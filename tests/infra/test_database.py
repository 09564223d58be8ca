"""Database and network: flow logs, rotated secrets, Aurora in isolated subnets, and the RDS Proxy (prod only) with
TLS required, in front of which the functions connect while the migrator connects to the cluster itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.synthesis import Synth

pytestmark = pytest.mark.synth

MIGRATE = "functions.migrate.handler.lambda_handler"


def _client_security_group(synth: Synth) -> str:
    (client_sg,) = [
        lid for lid in synth.of_type("AWS::EC2::SecurityGroup") if lid.startswith("DatabaseClient")
    ]
    return client_sg


def _database_secrets(synth: Synth) -> dict[str, str]:
    """username → logical id of the generated database secrets."""
    return {
        json.loads(res["Properties"]["GenerateSecretString"]["SecretStringTemplate"])["username"]: lid
        for lid, res in synth.of_type("AWS::SecretsManager::Secret").items()
        if "GenerateSecretString" in res["Properties"]
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_vpc_flow_logs_record_all_traffic(stage: str, synth: Synth, prod_synth: Synth) -> None:
    template = synth if stage == "dev" else prod_synth
    (_, flow_log) = template.one("AWS::EC2::FlowLog")
    props = flow_log["Properties"]
    (vpc_id, _) = template.one("AWS::EC2::VPC")
    assert props["ResourceId"] == {"Ref": vpc_id}
    assert props["TrafficType"] == "ALL"
    assert props["LogDestinationType"] == "cloud-watch-logs"
    log_group = template.resources[props["LogGroupName"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] == 30


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_database_secrets_rotate_every_30_days_after_the_first_migration(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    template = synth if stage == "dev" else prod_synth
    secrets = _database_secrets(template)
    assert set(secrets) == {"modamoda_admin", "modamoda_app"}
    schedules = {
        res["Properties"]["SecretId"]["Ref"]: res
        for res in template.of_type("AWS::SecretsManager::RotationSchedule").values()
    }
    assert set(schedules) == set(secrets.values())  # the Stripe keys rotate at Stripe (see test_nag)
    (migrations_id, _) = template.one("Custom::ModamodaMigrations")
    client_sg = _client_security_group(template)
    for schedule in schedules.values():
        props = schedule["Properties"]
        assert props["RotationRules"] == {"ScheduleExpression": "rate(30 days)"}
        assert props["HostedRotationLambda"]["RotationType"] == "PostgreSQLSingleUser"
        assert props["HostedRotationLambda"]["VpcSecurityGroupIds"] == {"Fn::GetAtt": [client_sg, "GroupId"]}
        assert "Private" in str(props["HostedRotationLambda"]["VpcSubnetIds"])
        assert props["RotateImmediatelyOnUpdate"] is False
        assert migrations_id in schedule["DependsOn"]  # the app role gets its login in the first migration


def _cluster_subnets(synth: Synth) -> Any:
    (_, group) = synth.one("AWS::RDS::DBSubnetGroup")
    return group["Properties"]["SubnetIds"]


def test_aurora_lives_in_isolated_subnets_and_only_clients_reach_it(synth: Synth) -> None:
    assert all("DataSubnet" in subnet["Ref"] for subnet in _cluster_subnets(synth))
    (_, cluster) = synth.one("AWS::RDS::DBCluster")
    assert cluster["Properties"]["EnableCloudwatchLogsExports"] == ["postgresql"]
    ingress = [
        res["Properties"]
        for res in synth.of_type("AWS::EC2::SecurityGroupIngress").values()
        if res["Properties"]["GroupId"]["Fn::GetAtt"][0].startswith("DatabaseClusterSecurityGroup")
    ]
    assert [rule["SourceSecurityGroupId"]["Fn::GetAtt"][0] for rule in ingress] == [
        _client_security_group(synth)
    ]
    for group in synth.of_type("AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in group["Properties"]  # no CIDR ingress anywhere


def test_dev_has_no_proxy_and_functions_reach_the_cluster(synth: Synth) -> None:
    assert not synth.of_type("AWS::RDS::DBProxy")
    (cluster_id, cluster) = synth.one("AWS::RDS::DBCluster")
    scaling = cluster["Properties"]["ServerlessV2ScalingConfiguration"]
    assert scaling["MinCapacity"] == 0  # pauses after 5 minutes without connections
    assert scaling["SecondsUntilAutoPause"] == 300
    for handler, function in synth.functions().items():
        assert function["Environment"]["Variables"]["DB_HOST"] == {
            "Fn::GetAtt": [cluster_id, "Endpoint.Address"]
        }, handler


def test_prod_functions_connect_through_a_tls_only_proxy(prod_synth: Synth) -> None:
    (proxy_id, proxy) = prod_synth.one("AWS::RDS::DBProxy")
    props = proxy["Properties"]
    assert props["RequireTLS"] is True
    assert props["EngineFamily"] == "POSTGRESQL"
    app_secret = _database_secrets(prod_synth)["modamoda_app"]
    (auth,) = props["Auth"]
    assert auth["AuthScheme"] == "SECRETS"
    assert auth["ClientPasswordAuthType"] == "POSTGRES_SCRAM_SHA_256"
    assert prod_synth.resources[auth["SecretArn"]["Ref"]]["Properties"]["SecretId"] == {"Ref": app_secret}
    assert all("PrivateSubnet" in subnet["Ref"] for subnet in props["VpcSubnetIds"])
    (_, target_group) = prod_synth.one("AWS::RDS::DBProxyTargetGroup")
    (cluster_id, _) = prod_synth.one("AWS::RDS::DBCluster")
    assert target_group["Properties"]["DBClusterIdentifiers"] == [{"Ref": cluster_id}]

    for handler, function in prod_synth.functions().items():
        host = function["Environment"]["Variables"]["DB_HOST"]
        if handler == MIGRATE:  # DDL and a session advisory lock: straight to the writer
            assert host == {"Fn::GetAtt": [cluster_id, "Endpoint.Address"]}
        else:
            assert host == {"Fn::GetAtt": [proxy_id, "Endpoint"]}, handler

    proxy_sg = props["VpcSecurityGroupIds"][0]["Fn::GetAtt"][0]
    ingress = [
        res["Properties"]
        for res in prod_synth.of_type("AWS::EC2::SecurityGroupIngress").values()
        if res["Properties"]["GroupId"]["Fn::GetAtt"][0] == proxy_sg
    ]
    assert len(ingress) == 1
    assert ingress[0]["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("DatabaseClientSecurityGroup")
    assert ingress[0]["FromPort"] == ingress[0]["ToPort"] == 5432


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_functions_verify_the_database_certificate_against_the_bundled_cas(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    """sslmode=verify-full with the trust-store layer (RDS CAs for the cluster, Amazon Trust Services roots for the
    proxy's ACM certificate), instead of sslmode=require, which encrypts without checking who answers."""
    from infra.lambdas import DATABASE_CA_RUNTIME_PATH

    template = synth if stage == "dev" else prod_synth
    (ca_layer,) = [lid for lid in template.of_type("AWS::Lambda::LayerVersion") if "DatabaseCaLayer" in lid]
    assert DATABASE_CA_RUNTIME_PATH == "/opt/rds-ca/bundle.pem"  # layers are unpacked under /opt
    for handler, function in template.functions().items():
        env = function["Environment"]["Variables"]
        assert env["DB_SSLMODE"] == "verify-full", handler
        assert env["DB_SSLROOTCERT"] == DATABASE_CA_RUNTIME_PATH, handler
        assert {"Ref": ca_layer} in function["Layers"], handler


def test_without_the_rds_bundle_dev_encrypts_and_says_it_cannot_verify_and_prod_refuses(
    tmp_path: Path,
) -> None:
    """A clean clone has no RDS CA bundle (it is not downloaded during a build): dev still synthesises — its functions
    encrypt (sslmode=require) without the trust-store layer, and synthesis warns — while prod refuses to
    synthesise without it."""
    import aws_cdk as cdk
    from aws_cdk.cx_api import SynthesisMessageLevel

    from infra.config import BUNDLING_STACKS_KEY, cdk_json_context
    from infra.stack import build

    app = cdk.App(outdir=str(tmp_path / "dev"), context={**cdk_json_context(), BUNDLING_STACKS_KEY: []})
    stack = build(app, env=cdk.Environment())
    artifact = app.synth().get_stack_by_name(stack.stack_name)
    warnings = [str(m.entry.data) for m in artifact.messages if m.level == SynthesisMessageLevel.WARNING]
    assert any("without verifying the server" in w for w in warnings), warnings
    template = artifact.template
    assert not [lid for lid in template["Resources"] if "DatabaseCaLayer" in lid]
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        env = resource["Properties"].get("Environment", {}).get("Variables", {})
        if "DB_SECRET_ARN" in env:
            assert env["DB_SSLMODE"] == "require"
            assert "DB_SSLROOTCERT" not in env
    prod = cdk.App(
        outdir=str(tmp_path / "prod"),
        context={**cdk_json_context(), "stage": "prod", BUNDLING_STACKS_KEY: []},
    )
    with pytest.raises(ValueError, match="RDS CA bundle"):
        build(prod, env=cdk.Environment(account="123456789012", region="eu-west-1"))
