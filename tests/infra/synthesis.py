"""Synthesis of the app for the infrastructure tests, and a small view of the resulting template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.config import BUNDLING_STACKS_KEY, cdk_json_context


@dataclass
class Synth:
    template: dict[str, Any]
    outdir: Path

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

    def policy_statements(self, function_handler: str) -> list[dict[str, Any]]:
        role = self.functions()[function_handler]["Role"]["Fn::GetAtt"][0]
        statements: list[dict[str, Any]] = []
        for res in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role} in res["Properties"]["Roles"]:
                statements += res["Properties"]["PolicyDocument"]["Statement"]
        return statements

    def allowed_actions(self, function_handler: str) -> set[str]:
        actions: set[str] = set()
        for statement in self.policy_statements(function_handler):
            if statement["Effect"] == "Allow":
                action = statement["Action"]
                actions.update([action] if isinstance(action, str) else action)
        return actions


def synthesize(outdir: Path, context: dict[str, Any] | None = None) -> Synth:
    """Synthesise the app as the CDK CLI would (cdk.json context), with all asset bundling skipped."""
    import aws_cdk as cdk
    from aws_cdk.cx_api import SynthesisMessageLevel

    from infra.stack import build

    app = cdk.App(
        outdir=str(outdir), context={**cdk_json_context(), **(context or {}), BUNDLING_STACKS_KEY: []}
    )
    stack = build(app, env=cdk.Environment())  # environment-agnostic: no lookups, no credentials
    assembly = app.synth()
    artifact = assembly.get_stack_by_name(stack.stack_name)
    problems = [
        f"{message.id}: {message.entry.data}"
        for message in artifact.messages
        if message.level in {SynthesisMessageLevel.WARNING, SynthesisMessageLevel.ERROR}
    ]
    assert not problems, problems
    return Synth(template=artifact.template, outdir=outdir)
