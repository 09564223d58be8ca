"""The GPU inference: the container image, a SageMaker asynchronous endpoint, its SNS topics and auto scaling.

The endpoint scales to zero when idle: target tracking on ``ApproximateBacklogSizePerInstance`` keeps the
backlog per instance near the target and may remove every instance; while there are zero instances that metric
has no data, so a step-scaling policy driven by ``HasBacklogWithoutCapacity`` brings the first instance back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import INFERENCE_CONTAINER_DIR
from infra.nag import acknowledge, acknowledge_wildcard
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
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class InferenceProps:
    storage: Storage
    endpoint_name: str
    instance_type: str = "ml.g5.xlarge"
    max_instances: int = 2
    backlog_per_instance_target: float = 2
    container_environment: dict[str, str] = field(default_factory=dict)


class Inference(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: InferenceProps) -> None:
        super().__init__(scope, construct_id)
        storage = props.storage
        self.endpoint_name = props.endpoint_name
        self.endpoint_arn = Stack.of(self).format_arn(
            service="sagemaker", resource="endpoint", resource_name=props.endpoint_name
        )

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
        self._grant_execution_role(props)

        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image.image_uri,
                environment=props.container_environment or None,
            ),
        )
        model.node.add_dependency(self.role)

        results_uri = f"s3://{storage.results.bucket_name}"
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=model.attr_model_name,
                    instance_type=props.instance_type,
                    initial_instance_count=1,
                    initial_variant_weight=1,
                )
            ],
            async_inference_config=sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty(
                client_config=sagemaker.CfnEndpointConfig.AsyncInferenceClientConfigProperty(
                    max_concurrent_invocations_per_instance=1
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

        self._add_auto_scaling(props)

    def _grant_execution_role(self, props: InferenceProps) -> None:
        """Least privilege for the endpoint: its image, the photos it reads, its I/O prefixes, its two topics,
        its own log group."""
        storage, role = props.storage, self.role
        self.image.repository.grant_pull(role)
        # The request document, and the photo it names (read by the container itself, by version).
        grant_objects(role, storage.results, INFERENCE_INPUT_PREFIX, OBJECT_READ, why="each job's request")
        grant_objects(role, storage.uploads, UPLOADS_PREFIX, OBJECT_READ, why="the photo each request names")
        grant_objects(role, storage.drop, DROP_PREFIX, OBJECT_READ, why="the photo each bulk request names")
        for prefix in (INFERENCE_OUTPUT_PREFIX, INFERENCE_FAILURE_PREFIX):
            grant_objects(
                role,
                storage.results,
                prefix,
                ("s3:PutObject", "s3:AbortMultipartUpload"),
                why="SageMaker writes each response (or failure) under its own key",
            )
        grant_objects(
            role,
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
            "latter is limited to the SageMaker and Modamoda namespaces by condition)",
        )

    def _add_auto_scaling(self, props: InferenceProps) -> None:
        target = appscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{props.endpoint_name}/variant/{VARIANT_NAME}",
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=0,
            max_capacity=props.max_instances,
        )
        target.node.add_dependency(self.endpoint)
        # SageMaker variants scale through Application Auto Scaling's service-linked role, which it creates on
        # first use; a role of our own would be ignored, so do not create one.
        cfn_target = target.node.default_child
        assert isinstance(cfn_target, appscaling.CfnScalableTarget)
        cfn_target.add_property_deletion_override("RoleARN")
        target.node.try_remove_child("Role")

        target.scale_to_track_metric(
            "BacklogPerInstance",
            target_value=props.backlog_per_instance_target,
            custom_metric=endpoint_metric("ApproximateBacklogSizePerInstance", props.endpoint_name),
            scale_in_cooldown=Duration.minutes(10),
            scale_out_cooldown=Duration.minutes(2),
        )

        scale_from_zero = appscaling.StepScalingAction(
            self,
            "ScaleOutFromZero",
            scaling_target=target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(2),
            metric_aggregation_type=appscaling.MetricAggregationType.AVERAGE,
        )
        scale_from_zero.add_adjustment(adjustment=1, lower_bound=0)
        self.backlog_without_capacity_alarm = cloudwatch.Alarm(
            self,
            "HasBacklogWithoutCapacityAlarm",
            alarm_description="Requests are queued while the endpoint has no instance: start one",
            metric=endpoint_metric("HasBacklogWithoutCapacity", props.endpoint_name),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.backlog_without_capacity_alarm.add_alarm_action(
            cw_actions.ApplicationScalingAction(scale_from_zero)
        )


def endpoint_metric(name: str, endpoint_name: str) -> cloudwatch.Metric:
    """A per-endpoint SageMaker metric (dimension EndpointName only, as async-inference metrics are published)."""
    return cloudwatch.Metric(
        namespace="AWS/SageMaker",
        metric_name=name,
        dimensions_map={"EndpointName": endpoint_name},
        statistic="Average",
        period=Duration.minutes(1),
    )
