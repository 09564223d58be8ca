"""Network and PostgreSQL: a VPC, an Aurora PostgreSQL Serverless v2 cluster, optionally an RDS Proxy.

Network choice: two AZs with public subnets (one NAT gateway), private subnets with egress (Lambda functions,
the proxy, the secret rotation functions), isolated subnets for Aurora (``Data``) and isolated subnets for the
SageMaker inference containers (``Inference``, see infra/inference.py). One NAT gateway costs less than the
interface endpoints the functions would otherwise need (Secrets Manager, Step Functions, SNS, SageMaker runtime:
~$7/month each per AZ), and the billing code must reach Stripe's API on the internet anyway. S3 goes through a
free gateway endpoint. Production may add a second NAT gateway for AZ independence. VPC flow logs (all traffic)
go to CloudWatch Logs.

The inference subnets have no route to the NAT gateway (nor to the internet): their route tables hold the VPC's
own range and the routes of their own S3 gateway endpoint (created by infra/inference.py with a policy that
names only the objects the endpoint reads and writes), so this VPC's general S3 endpoint (default policy, used
by the functions) is kept off their route tables (a route table takes one gateway endpoint per service).
Selections name subnet groups, not types: ``Data`` and ``Inference`` are both isolated.

Database access: RDS Proxy, not the Data API. The functions use psycopg (libpq, the PostgreSQL wire protocol):
row-level security binds each transaction to its tenant with ``set_config(..., true)``, credits rely on
``SELECT ... FOR UPDATE`` and serialization retries, migrations take an advisory lock. The Data API would mean
rewriting every query into ``ExecuteStatement`` calls with its own transaction handles and type mapping, and it
adds per-request latency and cost; the proxy keeps the code as it is and pools the connections that many
concurrent Lambda containers open (a burst of uploads or API calls cannot exhaust ``max_connections``).
The proxy requires TLS, authenticates clients with SCRAM against the application role's secret, and reconnects
to the new writer after a failover. It is on in prod (context ``rds_proxy``, default ``stage == prod``) and off
in dev: a proxy holds connections open, so the cluster could never pause at 0 ACU, and it costs at least 8 ACU
(~$88/month); in dev the functions connect to the cluster directly. Transaction-local settings keep sessions
unpinned behind the proxy. The migration function always connects to the cluster directly (DDL, advisory lock).

Credentials: the functions connect as ``modamoda_app`` (row-level security applies, it owns nothing) with the
generated ``AppSecret`` (``DB_SECRET_ARN``: username, password, host, port, dbname) and ``DB_HOST`` (the proxy's
or the cluster's endpoint); only the migration function reads the owner's secret (``DB_ADMIN_SECRET_ARN``) and
gives the app role its password. Both secrets rotate every 30 days (Secrets Manager's hosted single-user
PostgreSQL rotation, in the VPC), scheduled after the first migration has created the app role.
IAM database authentication is not used: it would need a token per connection and caps new connections per
second; the passwords live only in Secrets Manager, rotate, and travel over TLS.
Backups: automated, 14 days in prod (1 in dev), a final snapshot when a prod stack is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct, IConstruct

from infra.nag import acknowledge

DATABASE_NAME = "modamoda"
PUBLIC_SUBNETS = "Public"
CLIENT_SUBNETS = "Private"
DATA_SUBNETS = "Data"
INFERENCE_SUBNETS = "Inference"
POSTGRES_PORT = 5432
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
    rds_proxy: bool = False
    secret_rotation_days: int = 30
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH


class Database(Construct):
    """The VPC, the cluster, its secret, and the security group that clients join to reach it."""

    def __init__(self, scope: Construct, construct_id: str, props: DatabaseProps) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=props.nat_gateways,
            # Appended groups get the next free ranges: the existing subnets keep their CIDR blocks.
            subnet_configuration=[
                ec2.SubnetConfiguration(name=PUBLIC_SUBNETS, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name=CLIENT_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
                ec2.SubnetConfiguration(
                    name=DATA_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
                # SageMaker: "at least two subnets in different availability zones" and two private IP
                # addresses per instance (AWS: Give SageMaker AI Hosted Endpoints Access to Resources in Your
                # Amazon VPC)
                ec2.SubnetConfiguration(
                    name=INFERENCE_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.S3,
                    # every subnet but the inference ones, which have their own (infra/inference.py)
                    subnets=[
                        ec2.SubnetSelection(subnet_group_name=name)
                        for name in (CLIENT_SUBNETS, PUBLIC_SUBNETS, DATA_SUBNETS)
                    ],
                )
            },
        )
        self.client_subnets = ec2.SubnetSelection(subnet_group_name=CLIENT_SUBNETS)
        self.inference_subnets = ec2.SubnetSelection(subnet_group_name=INFERENCE_SUBNETS)
        """Isolated: no route out of the VPC but the S3 gateway endpoint that infra/inference.py adds to them."""
        removal = RemovalPolicy.RETAIN if props.is_prod else RemovalPolicy.DESTROY
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogs", retention=props.log_retention, removal_policy=removal)
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        self.client_security_group = ec2.SecurityGroup(
            self,
            "ClientSecurityGroup",
            vpc=self.vpc,
            description="Lambda functions that talk to PostgreSQL",
            allow_all_outbound=True,
        )
        # The secret carries dbname too: clients need nothing but the secret (DB_HOST may override the host).
        self.secret = rds.DatabaseSecret(self, "Secret", username=DATABASE_USER, dbname=DATABASE_NAME)
        self.secret.apply_removal_policy(removal)
        app_secret = rds.DatabaseSecret(self, "AppSecret", username=APP_USER, dbname=DATABASE_NAME)
        app_secret.apply_removal_policy(removal)
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.VER_16_13
            ),
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            serverless_v2_min_capacity=props.min_capacity,
            serverless_v2_max_capacity=props.max_capacity,
            # At 0 ACU: pause after 5 minutes without connections (resume ~15 s; the functions retry).
            serverless_v2_auto_pause_duration=Duration.minutes(5) if props.min_capacity == 0 else None,
            credentials=rds.Credentials.from_secret(self.secret),
            default_database_name=DATABASE_NAME,
            storage_encrypted=True,
            backup=rds.BackupProps(retention=Duration.days(14 if props.is_prod else 1)),
            deletion_protection=props.is_prod,
            removal_policy=RemovalPolicy.SNAPSHOT if props.is_prod else RemovalPolicy.DESTROY,
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_group_name=DATA_SUBNETS),
            cloudwatch_logs_exports=["postgresql"],
            cloudwatch_logs_retention=props.log_retention,
        )
        self.cluster.connections.allow_default_port_from(
            self.client_security_group, "Lambda functions reach PostgreSQL"
        )
        if not props.is_prod:
            acknowledge(
                self.cluster,
                "RDS10",
                "dev stages are disposable (deleted with the stack); prod enables deletion protection",
            )
        acknowledge(
            self.cluster,
            "RDS6",
            "password authentication over TLS with secrets that rotate every 30 days; IAM tokens would be "
            "generated per connection and cap new connections per second (see module docstring)",
        )
        acknowledge(
            self.cluster,
            "RDS11",
            "the default port is reachable only from the client security group inside isolated subnets; "
            "a different port number would not add protection",
        )
        self.cluster_host = self.cluster.cluster_endpoint.hostname
        self.app_secret: secretsmanager.ISecret = app_secret.attach(self.cluster)  # adds host, port, engine
        self._app_secret = app_secret
        self._props = props

        self.proxy: rds.DatabaseProxy | None = None
        self.host = self.cluster_host
        if props.rds_proxy:
            proxy_security_group = ec2.SecurityGroup(
                self,
                "ProxySecurityGroup",
                vpc=self.vpc,
                description="RDS Proxy in front of Aurora",
                allow_all_outbound=True,
            )
            self.proxy = rds.DatabaseProxy(
                self,
                "Proxy",
                proxy_target=rds.ProxyTarget.from_cluster(self.cluster),
                secrets=[self.app_secret],
                vpc=self.vpc,
                vpc_subnets=self.client_subnets,
                security_groups=[proxy_security_group],
                require_tls=True,
                iam_auth=False,
                client_password_auth_type=rds.ClientPasswordAuthType.POSTGRES_SCRAM_SHA_256,
                idle_client_timeout=Duration.minutes(15),
                max_connections_percent=90,
                debug_logging=False,
            )
            self.proxy.connections.allow_from(
                self.client_security_group, ec2.Port.tcp(POSTGRES_PORT), "Lambda functions reach the proxy"
            )
            self.cluster.connections.allow_default_port_from(
                proxy_security_group, "The proxy reaches PostgreSQL"
            )
            self.host = self.proxy.endpoint

    def add_secret_rotation(self, *, after: IConstruct) -> None:
        """Rotate both database secrets (hosted single-user rotation) once ``after`` (the migrations) exists:
        the app role only gets its login in the first migration."""
        # Schedules beside (not inside) the secrets: the migrations depend on the secrets, the schedules on them.
        for construct_id, secret in (
            ("AdminSecretRotation", self.secret),
            ("AppSecretRotation", self._app_secret),
        ):
            schedule = secretsmanager.RotationSchedule(
                self,
                construct_id,
                secret=secret,
                automatically_after=Duration.days(self._props.secret_rotation_days),
                hosted_rotation=secretsmanager.HostedRotation.postgre_sql_single_user(
                    vpc=self.vpc,
                    vpc_subnets=self.client_subnets,
                    security_groups=[self.client_security_group],
                ),
                rotate_immediately_on_update=False,
            )
            schedule.node.add_dependency(after)
