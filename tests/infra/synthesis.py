"""Synthesis of the app for the infrastructure tests, and a small view of the resulting template."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.config import BUNDLING_STACKS_KEY, cdk_json_context

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
# logical id prefix → the bucket's role
BUCKETS = {
    "StorageAccessLogsBucket": "access_logs",
    "StorageUploadsBucket": "uploads",
    "StorageDropBucket": "drop",
    "StorageResultsBucket": "results",
    "WebBucket": "web",
}


@dataclass
class Synth:
    template: dict[str, Any]
    outdir: Path
    nag_findings: list[str] = field(default_factory=list)
    """cdk-nag AwsSolutions findings (errors and warnings) that no acknowledgment covers."""

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == resource_type}

    def one(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    def functions(self) -> dict[str, dict[str, Any]]:
        """The project's Lambda functions (CDK's own custom-resource handlers excluded), by handler."""
        found: dict[str, dict[str, Any]] = {}
        for lid, res in self.of_type("AWS::Lambda::Function").items():
            handler = res["Properties"].get("Handler", "")
            if handler.startswith("functions."):
                found[handler] = {"LogicalId": lid, **res["Properties"]}
        return found

    def function_id(self, handler: str) -> str:
        return str(self.functions()[handler]["LogicalId"])

    def studio_function(self) -> tuple[str, dict[str, Any]]:
        """The studio engine's function (a container image, so not among :meth:`functions`): logical id, props."""
        (found,) = [
            (lid, res["Properties"])
            for lid, res in self.of_type("AWS::Lambda::Function").items()
            if res["Properties"].get("PackageType") == "Image"
        ]
        return found

    def function_role(self, function_handler: str) -> str:
        return str(self.functions()[function_handler]["Role"]["Fn::GetAtt"][0])

    def policy_statements(self, function_handler: str) -> list[dict[str, Any]]:
        return self.role_statements(self.function_role(function_handler))

    def bucket_ids(self) -> dict[str, str]:
        """The buckets by role (access_logs, uploads, drop, results, web) → logical id."""
        found: dict[str, str] = {}
        for lid in self.of_type("AWS::S3::Bucket"):
            (role,) = [role for prefix, role in BUCKETS.items() if lid.startswith(prefix)]
            found[role] = lid
        assert found.keys() == set(BUCKETS.values()), sorted(found)
        return found

    def role_statements(self, role_id: str) -> list[dict[str, Any]]:
        """Every statement of the policies attached to the role with logical id ``role_id``."""
        statements: list[dict[str, Any]] = []
        for res in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in res["Properties"]["Roles"]:
                statements += res["Properties"]["PolicyDocument"]["Statement"]
        return statements

    def role_inline_statements(self, role_id: str) -> list[dict[str, Any]]:
        """Every statement of the inline policies written on the role itself (``AWS::IAM::Role`` ``Policies``)."""
        policies = self.resources[role_id]["Properties"].get("Policies", [])
        return [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]

    def allowed_actions(self, function_handler: str) -> set[str]:
        actions: set[str] = set()
        for statement in self.policy_statements(function_handler):
            if statement["Effect"] == "Allow":
                action = statement["Action"]
                actions.update([action] if isinstance(action, str) else action)
        return actions


def synthesize(outdir: Path, context: dict[str, Any] | None = None, *, env: Any = None) -> Synth:
    """Synthesise the app as ``app.py`` does (cdk.json context, cdk-nag as a validation plugin), with all asset
    bundling skipped. ``env`` defaults to environment-agnostic (no lookups, no credentials needed).

    The AwsSolutions pack first runs directly on the construct tree, so that its findings can be listed by a
    test; only when there are none is it also registered as the plugin (which would fail the synthesis)."""
    import aws_cdk as cdk
    from aws_cdk.cx_api import SynthesisMessageLevel
    from cdk_nag import AwsSolutionsChecks

    from infra.nag import add_checks
    from infra.stack import build

    app = cdk.App(
        outdir=str(outdir), context={**cdk_json_context(), **(context or {}), BUNDLING_STACKS_KEY: []}
    )
    stack = build(app, env=env if env is not None else cdk.Environment())
    report = AwsSolutionsChecks().validate_scope(app)
    nag_findings = [
        f"{violation.severity} {violation.rule_name} at {resource.construct_path}: {violation.description}"
        for violation in report.violations
        for resource in violation.violating_resources
    ]
    if not nag_findings:
        add_checks(app)
    assembly = app.synth()
    artifact = assembly.get_stack_by_name(stack.stack_name)
    problems = [
        f"{message.id}: {message.entry.data}"
        for message in artifact.messages
        if message.level in {SynthesisMessageLevel.WARNING, SynthesisMessageLevel.ERROR}
    ]
    assert not problems, problems
    return Synth(template=artifact.template, outdir=outdir, nag_findings=nag_findings)


def render(value: Any) -> str:
    """A CloudFormation value as comparable text: literal strings stay, intrinsics become stable tokens."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref":
            return f"<<Ref:{arg}>>"
        if name == "Fn::GetAtt":
            return f"<<GetAtt:{'.'.join(arg) if isinstance(arg, list) else arg}>>"
        if name == "Fn::Join":
            separator, parts = arg
            return str(separator).join(render(part) for part in parts)
        if name == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            return PLACEHOLDER.sub(
                lambda m: (
                    render(variables[m.group(1)]) if m.group(1) in variables else f"<<Ref:{m.group(1)}>>"
                ),
                text,
            )
    raise AssertionError(f"unexpected CloudFormation value {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
