"""The GPU inference: the container image, its model data, a SageMaker asynchronous endpoint, its SNS topics and
auto scaling.

Model data (context ``model_data``, see :class:`ModelData`): the weights ``scripts/pack_model.py --upload`` put in
S3, mounted by SageMaker at ``/opt/ml/model``. An S3 prefix (``s3://bucket/path/``) is deployed uncompressed
(``ModelDataSource.S3DataSource``: ``S3DataType: S3Prefix``, ``CompressionType: None``), which AWS recommends for
large models because nothing is decompressed when an instance starts; a ``.tar.gz`` object is accepted too
(``ModelDataUrl``). The execution role reads exactly that prefix (or object). Without model data the endpoint runs
the studio engine only (``MODAMODA_ENGINES=studio``): ghost packshots work, and the API refuses on-model jobs up
front (``ON_MODEL_AVAILABLE=false``, set on the functions by infra/stack.py).

The endpoint is fed by our own scheduler (``functions/common/scheduler.py``, ``infra/scheduler.py``), which keeps
its queue short, so its own backlog metrics see only the few jobs handed over. Autoscaling follows the whole
backlog instead: the dispatcher publishes ``InferenceQueueDepth`` (namespace ``Modamoda``, dimensions
``EndpointName`` and ``service``: jobs queued with us plus jobs at the endpoint), and

* while it is 1 or more, a step policy sets the instance count to ``ceil(depth / backlog_per_instance_target)``
  (at least 1, at most ``max_instances``): a queued job wakes a zero-instance endpoint, a large drop scales it out,
  a shrinking queue scales it back in;
* once it and SageMaker's own ``ApproximateBacklogSize`` have been 0 for ``scale_in_to_zero_after`` (15 minutes),
  a second step policy sets the count to 0 (no data from either counts as idle: a dispatcher that published
  nothing has queued nothing);
* a step policy driven by ``HasBacklogWithoutCapacity`` still brings the first instance back for requests that
  reach the endpoint without the metric (a dispatcher that could not publish). Its cooldown is longer than an
  instance start ("the provisioning process takes several minutes", AWS: *Scale an endpoint to zero
  instances*), so one waiting job does not start a second instance while the first boots.

Network: the model runs in the VPC's isolated ``Inference`` subnets (``VpcConfig``; infra/database.py) with a
security group of its own whose only rule lets HTTPS out to Amazon S3's prefix list, i.e. through the S3 gateway
endpoint on those subnets' route tables; nothing comes in. Those subnets have no route to the NAT gateway or the
internet. The endpoint's policy names exactly the objects the endpoint reads and writes (the ones the execution
role is granted), so even the credentials of another account cannot move data out through it. That is all the
container needs: it reads the photo and writes the job's metadata itself with boto3
(``modamoda_inference/s3io.py``), and loads nothing from the network (``HF_HUB_OFFLINE``). SageMaker itself pulls
the image from ECR (``RepositoryAccessMode`` ``Platform``, "the model image is hosted in Amazon ECR", not a
registry in the VPC). With a VPC, "download and upload of customer data and model artifacts are routed via your
VPC subnet" (AWS: *Training and Inference Containers Run in Internet-Free Mode*): the endpoint policy therefore
also names the model data and the async request/response/failure prefixes SageMaker reads and writes with the
execution role. AWS's list for hosted models in a VPC (*Give SageMaker AI Hosted Endpoints Access to Resources in
Your Amazon VPC*): two subnets in different AZs, an S3 VPC endpoint (with a custom policy), the ENI permissions on
the execution role, default DNS; interface endpoints only for other AWS services the model calls, of which it
calls none. The SNS notifications and the CloudWatch logs and metrics are SageMaker's own (its agent, with the
execution role), not the container's: should a deployment ever show ``NotificationFailures`` (alarmed), an SNS
interface endpoint (~$7.30/month per AZ) that this security group may reach is the fix.
``EnableNetworkIsolation`` is not set: it would give the container no network and no AWS credentials at all
("not able to make any outbound network calls, even to other AWS services such as Amazon S3"), and the container
fetches the photo each request names.

Changing the instance type: SageMaker's ``UpdateEndpoint`` fails while the variant is registered with Application
Auto Scaling and the update changes its instance type (AWS: *Update endpoints that use auto scaling*: deregister
the scalable target first). CloudFormation creates and updates resources before it deletes replaced ones (the
old scalable target would be deregistered only after the failed update), so the endpoint's name carries the
instance type (``modamoda-{stage}-g5-xlarge``, see ``infra/config.py``): a new instance type is a new endpoint
(``EndpointName`` is create-only), created beside the old one with its own scalable target and policies; the
functions, alarms and outputs follow it through ``Fn::GetAtt``, and CloudFormation deletes the old policies, target
and endpoint at the end of the update. ``UpdateEndpoint`` then only ever changes the model (new model data), which
AWS allows on a registered variant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aws_cdk import Annotations, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import INFERENCE_CONTAINER_DIR
from infra.nag import CDK_HANDLER_REASON, LAMBDA_BASIC_ROLE, acknowledge, acknowledge_wildcard
from infra.storage import (
    DROP_PREFIX,
    INFERENCE_FAILURE_PREFIX,
    INFERENCE_INPUT_PREFIX,
    INFERENCE_METADATA_PREFIX,
    INFERENCE_OUTPUT_PREFIX,
    OBJECT_READ,
    UPLOADS_PREFIX,
    Storage,
    grant_objects,
)

VARIANT_NAME = "AllTraffic"
# AsyncInferenceConfig ``MaxConcurrentInvocationsPerInstance``: one image at a time per GPU. The dispatcher's cap on
# jobs at the endpoint is this x the most instances + a buffer (infra/scheduler.py).
MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE = 1
# The dispatcher's metric of the whole backlog (functions/common/scheduler.py ``QUEUE_DEPTH_METRIC``, published with
# powertools: namespace and service as infra/lambdas.py sets them, and the endpoint's name).
QUEUE_DEPTH_METRIC = "InferenceQueueDepth"
METRICS_NAMESPACE = "Modamoda"
METRICS_SERVICE = "modamoda"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# CreateEndpoint ``EndpointName``: at most 63 characters of this pattern.
ENDPOINT_NAME_MAX = 63
ENDPOINT_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# Async-inference metrics that SageMaker publishes with the ``EndpointName`` dimension only (AWS: *Alarms and logs
# for tracking metrics from asynchronous endpoints*, and the scale-from-zero alarm of *Autoscale an asynchronous
# endpoint*). Every other per-endpoint metric (InvocationFailures, NotificationFailures, InvocationsProcesssed,
# ExpiredRequests, TimeInBacklog, ...) is published per ``EndpointName`` and ``VariantName``: a metric without the
# variant dimension is a different metric that never receives data.
ENDPOINT_ONLY_METRICS = frozenset(
    {
        "ApproximateBacklogSize",
        "ApproximateBacklogSizePerInstance",
        "ApproximateAgeOfOldestRequest",
        "HasBacklogWithoutCapacity",
    }
)
HTTPS = 443
# CDK's egress rule that matches no traffic (ec2.SecurityGroup with allow_all_outbound=False): no host has the
# broadcast address, and ICMP type 252 code 86 does not exist.
NO_TRAFFIC_RULE = {
    "CidrIp": "255.255.255.255/32",
    "Description": "Disallow all traffic",
    "IpProtocol": "icmp",
    "FromPort": 252,
    "ToPort": 86,
}
# What SageMaker's execution role needs to attach the model's network interfaces in the VPC (AWS: "Add Permissions
# for Endpoint Access for Containers Running in a VPC to Custom IAM Policies"); EC2 scopes none of them usefully.
VPC_ACCESS_ACTIONS = (
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
)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ARCHIVE_SUFFIXES = (".tar", ".tgz", ".gz", ".zip")


@dataclass(frozen=True)
class ModelData:
    """Where the endpoint's model artefact is: ``s3://bucket/prefix/`` (uncompressed, preferred) or
    ``s3://bucket/key.tar.gz`` (SageMaker unpacks it into ``/opt/ml/model``)."""

    bucket: str
    key: str
    """The key prefix (ends with ``/``) or the archive's key."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def is_archive(self) -> bool:
        return self.key.endswith(".tar.gz")

    @classmethod
    def parse(cls, value: str) -> ModelData:
        """``value`` as given to ``-c model_data=...``; a prefix gets its trailing ``/`` (SageMaker: "a valid key
        name prefix identified by S3Uri always ends with a forward slash")."""
        text = value.strip()
        usage = (
            "context 'model_data' must be the S3 prefix scripts/pack_model.py --upload wrote "
            "(s3://bucket/models/modamoda/<version>/) or a .tar.gz object (s3://bucket/path/model.tar.gz)"
        )
        bucket, sep, key = text.removeprefix("s3://").partition("/")
        if not text.startswith("s3://") or not sep or not _BUCKET.fullmatch(bucket):
            raise ValueError(f"{usage}, got {value!r}")
        if not key.strip("/"):
            raise ValueError(f"{usage}: a prefix inside the bucket, not the whole bucket, got {value!r}")
        if any(ch in key for ch in "*?") or "//" in key or any(ord(ch) < 32 for ch in key):
            raise ValueError(
                f"{usage}: no wildcards, empty path segments or control characters, got {value!r}"
            )
        if key.endswith(".tar.gz"):
            return cls(bucket=bucket, key=key)
        if key.endswith(_ARCHIVE_SUFFIXES):
            raise ValueError(
                f"{usage}: an archive must be a gzip-compressed tar named .tar.gz, got {value!r}"
            )
        return cls(bucket=bucket, key=key.rstrip("/") + "/")


@dataclass(frozen=True)
class InferenceProps:
    storage: Storage
    endpoint_name: str
    """Carries the instance type (``StageConfig.endpoint_name``), so that a new instance type is a new endpoint."""
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    """Isolated subnets in at least two AZs, with no other S3 gateway endpoint on their route tables
    (``Database.inference_subnets``): the construct adds its own, with a policy naming only its objects."""
    instance_type: str = "ml.g5.xlarge"
    max_instances: int = 2
    backlog_per_instance_target: float = 2
    """Jobs (queued with us or at the endpoint) per instance: the queue's depth divided by this, rounded up, is the
    instance count autoscaling sets."""
    scale_in_to_zero_after: Duration = field(default_factory=lambda: Duration.minutes(15))
    """How long the whole backlog must have been empty before the last instance goes."""
    container_environment: dict[str, str] = field(default_factory=dict)
    model_data: str | None = None
    """Context ``model_data``: the model artefact in S3 (:class:`ModelData`); None runs ghost (studio) only."""
    removal_policy: RemovalPolicy = RemovalPolicy.DESTROY
    """Of the construct's own logs (the S3 prefix-list lookup's): the stage's data policy (prod retains)."""
    scale_out_from_zero_cooldown: Duration = field(default_factory=lambda: Duration.minutes(10))
    """Longer than an instance start (AWS: "the provisioning process takes several minutes"; the README estimates
    5-8 minutes for a GPU instance with multi-GB weights): while the first instance boots,
    ``HasBacklogWithoutCapacity`` stays 1 and its alarm keeps invoking the step policy, which must not add a
    second instance for the same job."""


class Inference(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: InferenceProps) -> None:
        super().__init__(scope, construct_id)
        storage = props.storage
        if len(props.endpoint_name) > ENDPOINT_NAME_MAX or not ENDPOINT_NAME_PATTERN.fullmatch(
            props.endpoint_name
        ):
            raise ValueError(
                f"the SageMaker endpoint name {props.endpoint_name!r} ({len(props.endpoint_name)} characters) is "
                "not valid: at most 63 letters, digits and '-' (it is modamoda-<stage>-<instance type>); use a "
                "shorter 'stage' or check 'inference_instance_type'"
            )
        self.model_data = None if props.model_data is None else ModelData.parse(props.model_data)
        self.on_model_available = self.model_data is not None
        self.variant_name = VARIANT_NAME

        # Declared at synth, built and pushed by the CDK CLI at deploy time (SageMaker hosts run x86_64 GPUs).
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(INFERENCE_CONTAINER_DIR),
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache"],
        )

        self.success_topic = sns.Topic(self, "SuccessTopic", enforce_ssl=True)
        self.error_topic = sns.Topic(self, "ErrorTopic", enforce_ssl=True)

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker async endpoint: pull the image, read inputs, write outputs, notify",
        )
        self._add_network(props)
        self._grant_execution_role(props)

        environment = dict(props.container_environment)
        if self.model_data is None:
            # Nothing under /opt/ml/model: load only the engine that needs no weights, and say so.
            environment["MODAMODA_ENGINES"] = "studio"
            Annotations.of(self).add_info(
                "no context 'model_data': the endpoint runs ghost packshots (studio engine) only and the API "
                "refuses on-model jobs; build and upload the weights with scripts/pack_model.py --upload and "
                "deploy with -c model_data=s3://bucket/prefix/ (README, Deploying to AWS)"
            )
        else:
            self._grant_model_data(self.model_data)
        # boto3 in the container must use this region's S3 endpoint, whose addresses are in the prefix list the
        # security group allows (a client without a region would start at the global S3 endpoint, unreachable).
        environment.setdefault("AWS_DEFAULT_REGION", Aws.REGION)
        model_data_url, model_data_source = self._model_data_properties()
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image.image_uri,
                environment=environment,
                model_data_url=model_data_url,
                model_data_source=model_data_source,
            ),
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                security_group_ids=[self.security_group.security_group_id],
                subnets=self.subnet_ids,
            ),
        )
        # CreateModel checks that the role can use the subnets: the role's policies (ENI actions) come first.
        self.model.node.add_dependency(self.role)

        results_uri = f"s3://{storage.results.bucket_name}"
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=self.variant_name,
                    model_name=self.model.attr_model_name,
                    instance_type=props.instance_type,
                    initial_instance_count=1,
                    initial_variant_weight=1,
                )
            ],
            async_inference_config=sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty(
                client_config=sagemaker.CfnEndpointConfig.AsyncInferenceClientConfigProperty(
                    max_concurrent_invocations_per_instance=MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE
                ),
                output_config=sagemaker.CfnEndpointConfig.AsyncInferenceOutputConfigProperty(
                    s3_output_path=f"{results_uri}/{INFERENCE_OUTPUT_PREFIX}",
                    s3_failure_path=f"{results_uri}/{INFERENCE_FAILURE_PREFIX}",
                    notification_config=sagemaker.CfnEndpointConfig.AsyncInferenceNotificationConfigProperty(
                        success_topic=self.success_topic.topic_arn,
                        error_topic=self.error_topic.topic_arn,
                    ),
                ),
            ),
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=props.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        # Instances copy the model data through the S3 endpoint and need the security group's rule to reach it.
        self.endpoint.node.add_dependency(self.s3_endpoint, self.security_group)
        # Consumers (the invoke function's environment and policy, the scalable target, alarms, outputs) take the
        # name from the endpoint itself: each then depends on it, so when a new instance type makes a new endpoint
        # they switch only once it is in service.
        self.endpoint_name: str = self.endpoint.attr_endpoint_name
        self.endpoint_arn: str = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN

        self._add_auto_scaling(props)

    def _follow_queue_depth(self, props: InferenceProps, target: appscaling.ScalableTarget) -> None:
        """The instance count follows the GPU queue's whole backlog (``InferenceQueueDepth``): set to
        ``ceil(depth / backlog_per_instance_target)`` within 1..``max_instances`` while there is any work, and to 0
        once neither the queue nor the endpoint has had any for ``scale_in_to_zero_after``."""
        per_instance = props.backlog_per_instance_target
        follow = appscaling.StepScalingAction(
            self,
            "FollowQueueDepth",
            scaling_target=target,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            cooldown=Duration.minutes(2),
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
        )
        # the alarm's threshold is 1 job: depth - 1 in [(n-1)·T, n·T) → n instances, the last step open-ended
        for count in range(1, props.max_instances + 1):
            follow.add_adjustment(
                adjustment=count,
                lower_bound=(count - 1) * per_instance,
                upper_bound=count * per_instance if count < props.max_instances else None,
            )
        self.queue_depth_alarm = cloudwatch.Alarm(
            self,
            "QueueDepthAlarm",
            alarm_description="Jobs wait for the GPU (queued or at the endpoint): set the instance count to match",
            metric=queue_depth_metric(self.endpoint_name),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.queue_depth_alarm.add_alarm_action(cw_actions.ApplicationScalingAction(follow))

        to_zero = appscaling.StepScalingAction(
            self,
            "ScaleInToZero",
            scaling_target=target,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            cooldown=Duration.minutes(5),
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
        )
        to_zero.add_adjustment(adjustment=0, upper_bound=0)
        periods = max(1, int(props.scale_in_to_zero_after.to_minutes()))
        self.idle_alarm = cloudwatch.Alarm(
            self,
            "IdleAlarm",
            alarm_description="No job queued or at the endpoint for a while: remove every instance",
            metric=cloudwatch.MathExpression(
                expression="FILL(depth, 0) + FILL(backlog, 0)",
                using_metrics={
                    "depth": queue_depth_metric(self.endpoint_name),
                    "backlog": endpoint_metric("ApproximateBacklogSize", self.endpoint_name),
                },
                period=Duration.minutes(1),
                label="jobs queued or at the endpoint",
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.idle_alarm.add_alarm_action(cw_actions.ApplicationScalingAction(to_zero))

    def _model_data_properties(
        self,
    ) -> tuple[str | None, sagemaker.CfnModel.ModelDataSourceProperty | None]:
        """The container's ``ModelDataUrl`` or ``ModelDataSource``: an uncompressed prefix (preferred for
        multi-GB weights, AWS: *Deploying uncompressed models*) or a .tar.gz archive."""
        data = self.model_data
        if data is None:
            return None, None
        if data.is_archive:
            return data.uri, None
        source = sagemaker.CfnModel.ModelDataSourceProperty(
            s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                s3_uri=data.uri, s3_data_type="S3Prefix", compression_type="None"
            )
        )
        return None, source

    def _grant_model_data(self, data: ModelData) -> None:
        """Read exactly the model data: the archive object, or the objects under the prefix (and list that prefix,
        which SageMaker does to find them)."""
        partition = Stack.of(self).partition
        bucket_arn = f"arn:{partition}:s3:::{data.bucket}"
        if data.is_archive:
            self._allow_s3(["s3:GetObject"], [f"{bucket_arn}/{data.key}"])
            return
        objects = f"{bucket_arn}/{data.key}*"
        self._allow_s3(["s3:GetObject"], [objects])
        self._allow_s3(["s3:ListBucket"], [bucket_arn], {"StringLike": {"s3:prefix": [f"{data.key}*"]}})
        acknowledge_wildcard(
            self.role,
            objects,
            f"the model's files under {data.key} only (context model_data): SageMaker copies every object under "
            "the prefix into /opt/ml/model",
        )

    def _add_network(self, props: InferenceProps) -> None:
        """The security group (HTTPS to S3's prefix list, nothing else) and the S3 gateway endpoint of the
        inference subnets, whose policy :meth:`_allow_s3` fills with the same objects as the role's."""
        selection = props.subnets
        self.subnet_ids = props.vpc.select_subnets(
            subnet_group_name=selection.subnet_group_name,
            subnet_type=selection.subnet_type,
            subnets=selection.subnets,
            availability_zones=selection.availability_zones,
        ).subnet_ids
        self.s3_endpoint = ec2.GatewayVpcEndpoint(
            self,
            "S3Endpoint",
            vpc=props.vpc,
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[props.subnets],
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="SageMaker inference containers: HTTPS to Amazon S3 (gateway endpoint) only",
            allow_all_outbound=False,
        )
        # The S3 endpoint's routes use the region's AWS-managed prefix list (com.amazonaws.<region>.s3); CloudFormation
        # does not return its id, so one read-only call looks it up at deploy time.
        lookup = cr.AwsCustomResource(
            self,
            "S3PrefixList",
            on_create=self._describe_s3_prefix_list(),
            on_update=self._describe_s3_prefix_list(),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["ec2:DescribePrefixLists"], resources=["*"])]
            ),
            install_latest_aws_sdk=False,
            log_group=logs.LogGroup(
                self,
                "S3PrefixListLogs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=props.removal_policy,
            ),
        )
        acknowledge(
            lookup,
            "IAM5[Resource::*]",
            "ec2:DescribePrefixLists (read-only) has no resource-level permissions; it looks up the id of the "
            "region's S3 prefix list for the inference security group",
        )
        self._acknowledge_lookup_handler()
        self.s3_prefix_list_id = lookup.get_response_field("PrefixLists.0.PrefixListId")
        self.security_group.add_egress_rule(
            ec2.Peer.prefix_list(self.s3_prefix_list_id),
            ec2.Port.tcp(HTTPS),
            "HTTPS to Amazon S3 through the gateway endpoint (inputs, outputs, metadata, model data)",
        )
        # A rule to a token prefix list is its own AWS::EC2::SecurityGroupEgress, so CDK drops its inline
        # "no traffic" rule; a group created without inline egress rules gets EC2's allow-all egress (CloudFormation:
        # "if you do not add egress rules, we add egress rules that allow all outbound IPv4 and IPv6 traffic.
        # Otherwise, we do not add them"). Keep the rule that matches nothing inline, so that never exists.
        group = self.security_group.node.default_child
        assert isinstance(group, ec2.CfnSecurityGroup)
        group.add_property_override("SecurityGroupEgress", [NO_TRAFFIC_RULE])
        self.role.add_to_policy(iam.PolicyStatement(actions=list(VPC_ACCESS_ACTIONS), resources=["*"]))

    @staticmethod
    def _describe_s3_prefix_list() -> cr.AwsSdkCall:
        return cr.AwsSdkCall(
            service="EC2",
            action="describePrefixLists",
            parameters={
                "Filters": [
                    {"Name": "prefix-list-name", "Values": [ec2.GatewayVpcEndpointAwsService.S3.name]}
                ]
            },
            output_paths=["PrefixLists.0.PrefixListId"],
            physical_resource_id=cr.PhysicalResourceId.from_response("PrefixLists.0.PrefixListId"),
        )

    def _acknowledge_lookup_handler(self) -> None:
        """The singleton function that aws-cdk-lib adds at the stack's root for every ``AwsCustomResource``."""
        handler_id = "AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")
        handler = Stack.of(self).node.try_find_child(handler_id)
        if handler is not None:
            acknowledge(handler, f"IAM4[{LAMBDA_BASIC_ROLE}]", CDK_HANDLER_REASON)
            acknowledge(handler, "L1", CDK_HANDLER_REASON)

    def _allow_s3(
        self, actions: list[str], resources: list[str], conditions: dict[str, object] | None = None
    ) -> None:
        """Allow ``actions`` on ``resources`` to the execution role and through the inference subnets' S3 endpoint
        (which nothing else uses: the endpoint policy names the same objects as the role, for any principal)."""
        self.role.add_to_policy(
            iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions)
        )
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()], actions=actions, resources=resources, conditions=conditions
            )
        )

    def _grant_objects(self, bucket: s3.IBucket, prefix: str, actions: tuple[str, ...], *, why: str) -> None:
        """:func:`grant_objects` to the execution role, and the same objects through the S3 endpoint."""
        grant_objects(self.role, bucket, prefix, actions, why=why)
        self.s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()],
                actions=list(actions),
                resources=[bucket.arn_for_objects(f"{prefix}*")],
            )
        )

    def _grant_execution_role(self, props: InferenceProps) -> None:
        """Least privilege for the endpoint: its image, the photos it reads, its I/O prefixes, its two topics,
        its own log group, and its network interfaces."""
        storage, role = props.storage, self.role
        self.image.repository.grant_pull(role)
        # The request document, and the photo it names (read by the container itself, by version).
        self._grant_objects(storage.results, INFERENCE_INPUT_PREFIX, OBJECT_READ, why="each job's request")
        # Every tenant's uploads (and drop folders): one endpoint, with one role, serves every tenant, and which
        # photo it reads is only known per request, which IAM cannot see. Tenants are kept apart before the
        # request is made (the functions build it from the job's own row and key, under the tenant's prefix);
        # here the role can only read photos (never list, write or delete them), and the container's only way
        # out of the VPC is this S3 endpoint, whose policy names our prefixes only, so what it reads cannot
        # leave. Dropping this read would take a pre-signed GET per request from the invoke function instead.
        self._grant_objects(storage.uploads, UPLOADS_PREFIX, OBJECT_READ, why="the photo each request names")
        self._grant_objects(storage.drop, DROP_PREFIX, OBJECT_READ, why="the photo each bulk request names")
        for prefix in (INFERENCE_OUTPUT_PREFIX, INFERENCE_FAILURE_PREFIX):
            self._grant_objects(
                storage.results,
                prefix,
                ("s3:PutObject", "s3:AbortMultipartUpload"),
                why="SageMaker writes each response (or failure) under its own key",
            )
        self._grant_objects(
            storage.results,
            INFERENCE_METADATA_PREFIX,
            ("s3:PutObject",),
            why="the container writes each job's metadata JSON (quality, timings) under the job's key",
        )
        self.success_topic.grant_publish(role)
        self.error_topic.grant_publish(role)
        log_group = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/"
            f"{props.endpoint_name}"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"], resources=[log_group]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group}:log-stream:*"]
            )
        )
        acknowledge_wildcard(
            role,
            f"{log_group}:log-stream:*",
            "the streams of the endpoint's own log group (one per instance)",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "Modamoda*"]}},
            )
        )
        acknowledge(
            role,
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions (the "
            "latter is limited to the SageMaker and Modamoda namespaces by condition); the network-interface "
            "actions SageMaker needs to attach the model to the VPC are granted on * as AWS documents them",
        )

    def _add_auto_scaling(self, props: InferenceProps) -> None:
        target = appscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            # the endpoint's own name (Fn::GetAtt): registered once the endpoint exists, and a new scalable
            # target for a new endpoint (ResourceId is create-only)
            resource_id=f"endpoint/{self.endpoint_name}/variant/{self.variant_name}",
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=0,
            max_capacity=props.max_instances,
        )
        # SageMaker variants scale through Application Auto Scaling's service-linked role, which it creates on
        # first use; a role of our own would be ignored, so do not create one.
        cfn_target = target.node.default_child
        assert isinstance(cfn_target, appscaling.CfnScalableTarget)
        cfn_target.add_property_deletion_override("RoleARN")
        target.node.try_remove_child("Role")

        self._follow_queue_depth(props, target)

        scale_from_zero = appscaling.StepScalingAction(
            self,
            "ScaleOutFromZero",
            scaling_target=target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=props.scale_out_from_zero_cooldown,
            metric_aggregation_type=appscaling.MetricAggregationType.AVERAGE,
        )
        scale_from_zero.add_adjustment(adjustment=1, lower_bound=0)
        self.backlog_without_capacity_alarm = cloudwatch.Alarm(
            self,
            "HasBacklogWithoutCapacityAlarm",
            alarm_description="Requests are queued while the endpoint has no instance: start one",
            metric=endpoint_metric("HasBacklogWithoutCapacity", self.endpoint_name),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.backlog_without_capacity_alarm.add_alarm_action(
            cw_actions.ApplicationScalingAction(scale_from_zero)
        )


def queue_depth_metric(endpoint_name: str) -> cloudwatch.Metric:
    """The GPU queue's depth (queued + at the endpoint) as the dispatcher publishes it, per minute (its maximum)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=QUEUE_DEPTH_METRIC,
        dimensions_map={"EndpointName": endpoint_name, "service": METRICS_SERVICE},
        statistic="Maximum",
        period=Duration.minutes(1),
    )


def endpoint_metric(name: str, endpoint_name: str, variant_name: str | None = None) -> cloudwatch.Metric:
    """A SageMaker async-endpoint metric with the dimensions SageMaker publishes it with: ``EndpointName`` for the
    queue metrics (:data:`ENDPOINT_ONLY_METRICS`), ``EndpointName`` and ``VariantName`` for every other one."""
    dimensions = {"EndpointName": endpoint_name}
    if name not in ENDPOINT_ONLY_METRICS:
        if variant_name is None:
            raise ValueError(f"SageMaker publishes {name} per EndpointName and VariantName: name the variant")
        dimensions["VariantName"] = variant_name
    return cloudwatch.Metric(
        namespace="AWS/SageMaker",
        metric_name=name,
        dimensions_map=dimensions,
        statistic="Average",
        period=Duration.minutes(1),
    )
