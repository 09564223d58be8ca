"""Settings of one deployment, read from CDK context (``cdk.json`` or ``-c key=value``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from constructs import Node

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = PROJECT_ROOT / "cdk.json"
FUNCTIONS_DIR = PROJECT_ROOT / "functions"
MIGRATIONS_DIR = FUNCTIONS_DIR / "common" / "migrations"
STATE_MACHINE_FILE = PROJECT_ROOT / "statemachines" / "job.asl.json"
INFERENCE_CONTAINER_DIR = PROJECT_ROOT / "inference_container"

# Standard CDK context key: the stacks whose assets are bundled; ``[]`` skips all bundling (tests, fast synth)
BUNDLING_STACKS_KEY = "aws:cdk:bundling-stacks"


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` of ``cdk.json``, for in-process synthesis that the CDK CLI does not drive."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


@dataclass(frozen=True)
class StageConfig:
    """Everything that differs between deployments of the one stack."""

    stage: str = "dev"
    web_origin: str = "http://localhost:5173"
    inference_instance_type: str = "ml.g5.xlarge"
    inference_max_instances: int = 2
    log_level: str = "INFO"

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"

    @property
    def stack_name(self) -> str:
        return f"Modamoda-{self.stage}"

    @property
    def endpoint_name(self) -> str:
        return f"modamoda-{self.stage}-inference"

    @classmethod
    def from_context(cls, node: Node) -> StageConfig:
        def get(key: str, default: Any) -> Any:
            value = node.try_get_context(key)
            return default if value is None or value == "" else value

        stage = str(get("stage", cls.stage))
        if not stage.replace("-", "").isalnum() or not stage.islower():
            raise ValueError(f"context 'stage' must be lower-case letters, digits and '-', got {stage!r}")
        return cls(
            stage=stage,
            web_origin=str(get("web_origin", cls.web_origin)).rstrip("/"),
            inference_instance_type=str(get("inference_instance_type", cls.inference_instance_type)),
            inference_max_instances=int(get("inference_max_instances", cls.inference_max_instances)),
            log_level=str(get("log_level", cls.log_level)).upper(),
        )
