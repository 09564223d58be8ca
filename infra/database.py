"""Network and PostgreSQL: a VPC, an Aurora PostgreSQL Serverless v2 cluster, and the schema migrations.

Network choice: two AZs with public subnets (one NAT gateway), private subnets with egress (Lambda functions)
and isolated subnets (Aurora). One NAT gateway costs less than the interface endpoints the functions would
otherwise need (Secrets Manager, Step Functions, SNS, SageMaker runtime: ~$7/month each per AZ), and the
billing code must reach Stripe's API on the internet anyway. S3 goes through a free gateway endpoint.
Production may add a second NAT gateway for AZ independence.

Connections: functions connect as ``modamoda_app`` (row-level security applies, it owns nothing) with the
generated ``AppSecret`` (``DB_SECRET_ARN``: username, password, host, port, dbname) and ``DB_HOST``; only the
migration function reads the owner's secret (``DB_ADMIN_SECRET_ARN``) and gives the app role its password.
There is no RDS Proxy yet: a proxy keeps connections open, which would stop the cluster from auto-pausing at
0 ACU; add one (with IAM auth) when traffic makes connection storms likelier than idle hours.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

DATABASE_NAME = "modamoda"
DATABASE_USER = "modamoda_admin"
APP_USER = (
    "modamoda_app"  # created by migrations/0002 (NOLOGIN); the migrator sets its password from AppSecret
)


@dataclass(frozen=True)
class DatabaseProps:
    is_prod: bool
    min_capacity: float = 0
    """Aurora capacity units at rest; 0 lets the cluster pause when idle (resume takes ~15 s)."""
    max_capacity: float = 4
    nat_gateways: int = 1


class Database(Construct):
    """The VPC, the cluster, its secret, and the security group that clients join to reach it."""

    def __init__(self, scope: Construct, construct_id: str, props: DatabaseProps) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=props.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
                ec2.SubnetConfiguration(
                    name="Data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
            },
        )
        self.client_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        self.client_security_group = ec2.SecurityGroup(
            self,
            "ClientSecurityGroup",
            vpc=self.vpc,
            description="Lambda functions that talk to PostgreSQL",
            allow_all_outbound=True,
        )
        # The secret carries dbname too: clients need nothing but the secret (DB_HOST may override the host).
        self.secret = rds.DatabaseSecret(self, "Secret", username=DATABASE_USER, dbname=DATABASE_NAME)
        self.secret.apply_removal_policy(RemovalPolicy.RETAIN if props.is_prod else RemovalPolicy.DESTROY)
        app_secret = rds.DatabaseSecret(self, "AppSecret", username=APP_USER, dbname=DATABASE_NAME)
        app_secret.apply_removal_policy(RemovalPolicy.RETAIN if props.is_prod else RemovalPolicy.DESTROY)
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.VER_16_13
            ),
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            serverless_v2_min_capacity=props.min_capacity,
            serverless_v2_max_capacity=props.max_capacity,
            credentials=rds.Credentials.from_secret(self.secret),
            default_database_name=DATABASE_NAME,
            storage_encrypted=True,
            backup=rds.BackupProps(retention=Duration.days(14 if props.is_prod else 1)),
            deletion_protection=props.is_prod,
            removal_policy=RemovalPolicy.SNAPSHOT if props.is_prod else RemovalPolicy.DESTROY,
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            cloudwatch_logs_exports=["postgresql"],
            cloudwatch_logs_retention=logs.RetentionDays.ONE_MONTH,
        )
        self.cluster.connections.allow_default_port_from(
            self.client_security_group, "Lambda functions reach PostgreSQL"
        )
        self.host = self.cluster.cluster_endpoint.hostname
        self.app_secret: secretsmanager.ISecret = app_secret.attach(self.cluster)  # adds host, port, engine
