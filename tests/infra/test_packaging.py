"""Lambda packaging and stage settings: the layer's pip command, its Docker-free bundling, hashes, context."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra import lambdas
from infra.config import FUNCTIONS_DIR, StageConfig
from infra.migrations import migrations_hash

pytestmark = pytest.mark.synth


def test_pip_command_targets_lambda_python312_arm64_wheels_only(tmp_path: Path) -> None:
    command = lambdas.pip_install_command(FUNCTIONS_DIR / "requirements.txt", tmp_path / "python")
    joined = " ".join(command)
    assert command[1:4] == ["-m", "pip", "install"]
    assert "--only-binary=:all:" in command
    assert "--platform manylinux2014_aarch64" in joined
    assert "--platform manylinux_2_28_aarch64" in joined
    assert "x86_64" not in joined
    assert "--python-version 3.12" in joined
    assert "--implementation cp" in joined
    assert f"--target {tmp_path / 'python'}" in joined


def test_layer_is_bundled_locally_through_jsii_without_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real synth with bundling on: CDK calls the Python ILocalBundling; pip is faked (no network)."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        target = Path(command[command.index("--target") + 1])
        (target / "fake_dependency").mkdir(parents=True)
        (target / "fake_dependency" / "__init__.py").write_text("VERSION = 1\n")
        (target / "__pycache__").mkdir()
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(lambdas.subprocess, "run", fake_run)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fake-dependency==1\n")
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    stack = cdk.Stack(app, "LayerOnly")
    lambda_.LayerVersion(
        stack,
        "Layer",
        code=lambda_.Code.from_asset(
            str(tmp_path),
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=lambdas.requirements_hash(requirements),
            bundling=cdk.BundlingOptions(
                image=lambdas.RUNTIME.bundling_image, local=lambdas.PipLayerBundling(requirements)
            ),
        ),
    )
    app.synth()

    assert len(calls) == 1
    assert str(requirements) in calls[0]
    bundled = list((tmp_path / "cdk.out").glob("asset.*/python/fake_dependency/__init__.py"))
    assert len(bundled) == 1
    assert not list((tmp_path / "cdk.out").glob("asset.*/python/__pycache__"))


def test_layer_hash_follows_requirements_not_code(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("a==1\n")
    first = lambdas.requirements_hash(requirements)
    (tmp_path / "handler.py").write_text("print('changed code')\n")
    assert lambdas.requirements_hash(requirements) == first
    requirements.write_text("a==2\n")
    assert lambdas.requirements_hash(requirements) != first


def test_migrations_hash_changes_with_the_sql(tmp_path: Path) -> None:
    (tmp_path / "0001_init.sql").write_text("CREATE TABLE a (id int);\n")
    first = migrations_hash(tmp_path)
    (tmp_path / "notes.txt").write_text("ignored\n")
    assert migrations_hash(tmp_path) == first
    (tmp_path / "0002_more.sql").write_text("CREATE TABLE b (id int);\n")
    assert migrations_hash(tmp_path) != first


def test_stage_config_from_context() -> None:
    import aws_cdk as cdk

    default = StageConfig.from_context(cdk.App().node)
    assert default == StageConfig()
    assert default.stack_name == "Modamoda-dev"
    assert default.endpoint_name == "modamoda-dev-inference"
    assert not default.is_prod

    assert default.web_origin is None  # the stack's CloudFront URL
    assert default.rds_proxy is False
    assert default.accept_signin_scope is True
    assert default.alarm_email is None

    prod = StageConfig.from_context(
        cdk.App(
            context={"stage": "prod", "inference_max_instances": "4", "web_origin": "https://app.example/"}
        ).node
    )
    assert prod.is_prod
    assert prod.inference_max_instances == 4
    assert prod.web_origin == "https://app.example"
    assert prod.rds_proxy is True  # on by default in prod

    custom = StageConfig.from_context(
        cdk.App(
            context={
                "stage": "prod",
                "rds_proxy": "false",
                "accept_signin_scope": False,
                "alarm_email": "ops@example.com",
            }
        ).node
    )
    assert (custom.rds_proxy, custom.accept_signin_scope, custom.alarm_email) == (
        False,
        False,
        "ops@example.com",
    )
    assert StageConfig.from_context(cdk.App(context={"rds_proxy": "true"}).node).rds_proxy is True

    with pytest.raises(ValueError, match="true or false"):
        StageConfig.from_context(cdk.App(context={"rds_proxy": "maybe"}).node)
    with pytest.raises(ValueError, match="alarm_email"):
        StageConfig.from_context(cdk.App(context={"alarm_email": "not-an-address"}).node)

    with pytest.raises(ValueError, match="stage"):
        StageConfig.from_context(cdk.App(context={"stage": "Prod_1"}).node)
