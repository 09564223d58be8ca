"""cdk-nag (AwsSolutions) for the whole app, and the helpers that acknowledge a finding next to its resource.

``add_checks(app)`` registers the AwsSolutions pack as a CDK validation plugin: ``cdk synth``/``cdk deploy`` (and
``make synth``) fail on any finding, error or warning, that is not acknowledged. Every acknowledgment names one
exact finding (for IAM5: the one wildcard, e.g. ``Resource::<UploadsBucket.Arn>/uploads/*``) and says why it
stands; a rule is never switched off for the whole stack. Findings are acknowledged where the resource is made
(see ``infra/*.py``); ``acknowledge_cdk_internals`` covers the handlers that CDK itself adds to the stack.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, App, DefaultStackSynthesizer, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def add_checks(app: App) -> None:
    """Run the AwsSolutions pack on every synthesis; an unacknowledged finding fails it."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding (``IAM5[Resource::...]`` or a whole rule such as ``RDS6``) on ``scope`` and below."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}-{rule}", reason=reason))


def flatten(scope: IConstruct, value: Any) -> str:
    """A (token) value as cdk-nag writes it in a finding (its ``flattenCfnReference``): ``{"Fn::GetAtt": [X, "Arn"]}``
    is ``<X.Arn>``, ``{"Ref": "AWS::Region"}`` is ``<AWS::Region>``, joins are concatenated, ``${...}`` is ``<...>``.
    """

    def visit(node: Any) -> str:
        if node is None:
            return ""
        if isinstance(node, str):
            return node.replace("${", "<").replace("}", ">")
        if isinstance(node, dict):
            if "Fn::Join" in node:
                delimiter, items = node["Fn::Join"]
                return str(delimiter).join(visit(item) for item in items)
            if "Fn::Sub" in node:
                return visit(node["Fn::Sub"])
            if "Fn::GetAtt" in node:
                resource, attribute = node["Fn::GetAtt"]
                return f"<{visit(resource)}.{visit(attribute)}>"
            if "Fn::ImportValue" in node:
                return visit(node["Fn::ImportValue"])
            if "Ref" in node:
                return f"<{visit(node['Ref'])}>"
        return json.dumps(node, separators=(",", ":"))

    return visit(Stack.of(scope).resolve(value))


def acknowledge_wildcard(scope: IConstruct, resource: Any, reason: str) -> None:
    """Acknowledge the IAM5 finding for one wildcard resource ARN (a token is rendered the way cdk-nag does)."""
    acknowledge(scope, f"IAM5[Resource::{flatten(scope, resource)}]", reason)


LAMBDA_BASIC_ROLE = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
LAMBDA_VPC_ROLE = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"

CDK_HANDLER_REASON = (
    "a handler that aws-cdk-lib adds and maintains (its runtime, role and policy are not ours to set); it runs "
    "only during deployments"
)


def asset_bucket_name(stack: Stack) -> str:
    """The bootstrap bucket of file assets, as the default synthesizer names it for this stack's environment."""
    synthesizer = stack.synthesizer
    qualifier = (
        synthesizer.bootstrap_qualifier if isinstance(synthesizer, DefaultStackSynthesizer) else None
    ) or DefaultStackSynthesizer.DEFAULT_QUALIFIER
    account = "${AWS::AccountId}" if Token.is_unresolved(stack.account) else stack.account
    region = "${AWS::Region}" if Token.is_unresolved(stack.region) else stack.region
    return (
        DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME.replace("${Qualifier}", qualifier)
        .replace("${AWS::AccountId}", account)
        .replace("${AWS::Region}", region)
    )


def acknowledge_cdk_internals(stack: Stack) -> None:
    """The singleton handlers CDK adds at the stack root (S3 notifications, log retention, bucket deployment)."""
    for child in stack.node.children:
        cid = child.node.id
        if cid.startswith("BucketNotificationsHandler"):
            acknowledge(child, f"IAM4[{LAMBDA_BASIC_ROLE}]", CDK_HANDLER_REASON)
            acknowledge(
                child,
                "IAM5[Resource::*]",
                f"s3:PutBucketNotification has to name buckets created in the same deployment; {CDK_HANDLER_REASON}",
            )
        elif cid.startswith("LogRetention"):
            acknowledge(child, f"IAM4[{LAMBDA_BASIC_ROLE}]", CDK_HANDLER_REASON)
            acknowledge(
                child,
                "IAM5[Resource::*]",
                f"sets the retention of the Aurora log group that RDS creates; {CDK_HANDLER_REASON}",
            )
        elif cid.startswith("Custom::CDKBucketDeployment"):
            acknowledge(child, f"IAM4[{LAMBDA_BASIC_ROLE}]", CDK_HANDLER_REASON)
            acknowledge(child, "L1", CDK_HANDLER_REASON)
            # Its S3 grants (CDK's grant_read/grant_read_write: s3:GetObject*, s3:List*, ...) on the
            # bootstrap asset bucket and the web bucket: the deployment copies the PWA's files between them.
            for action in ("s3:GetBucket*", "s3:GetObject*", "s3:List*", "s3:Abort*", "s3:DeleteObject*"):
                acknowledge(
                    child,
                    f"IAM5[Action::{action}]",
                    f"copies the PWA build from the CDK asset bucket into the web bucket; {CDK_HANDLER_REASON}",
                )
            acknowledge_wildcard(
                child,
                f"arn:{stack.partition}:s3:::{asset_bucket_name(stack)}/*",
                f"reads the PWA build's asset from the CDK bootstrap bucket; {CDK_HANDLER_REASON}",
            )
            acknowledge(
                child,
                "IAM5[Resource::*]",
                f"cloudfront:CreateInvalidation/GetInvalidation after the upload; {CDK_HANDLER_REASON}",
            )
