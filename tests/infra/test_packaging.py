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
    assert default.endpoint_name == "modamoda-dev-g5-xlarge"  # the instance type: a new type, a new endpoint
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


def test_stage_names_are_checked_against_the_aws_name_limits() -> None:
    """The stage goes into the Cognito domain prefix modamoda-<stage>-<account id> (1-63 characters of
    ^[a-z0-9](?:[a-z0-9\\-]{0,61}[a-z0-9])?$, no reserved word aws/amazon/cognito) and the SageMaker endpoint name
    (at most 63 characters): synthesis refuses a stage that would break either, naming the limit."""
    import aws_cdk as cdk

    from infra.config import STAGE_MAX_LENGTH, validate_stage

    def config(stage: str) -> StageConfig:
        return StageConfig.from_context(cdk.App(context={"stage": stage}).node)

    assert STAGE_MAX_LENGTH == 41  # 63 - len("modamoda-") - len("-") - 12 digits
    longest = "s" * STAGE_MAX_LENGTH
    assert config(longest).stage == longest
    assert len(f"modamoda-{longest}-123456789012") == 63
    assert len(config(longest).endpoint_name) <= 63
    assert validate_stage("pr-1234") == "pr-1234"

    with pytest.raises(ValueError, match=r"at most 41 characters.*Cognito allows 63"):
        config("s" * (STAGE_MAX_LENGTH + 1))
    for bad in ("Prod", "dev_1", "-dev", "dev-", "dév", "dev.1", "dev 1"):
        with pytest.raises(ValueError, match="lower-case letters"):
            config(bad)
    for reserved in ("aws-test", "amazon", "my-cognito"):
        with pytest.raises(ValueError, match="reserved words"):
            config(reserved)


def test_sqs_maximum_concurrency_comes_from_context() -> None:
    import aws_cdk as cdk

    def config(**context: object) -> StageConfig:
        return StageConfig.from_context(cdk.App(context=context).node)

    assert (config().start_max_concurrency, config().webhooks_max_concurrency) == (2, 2)
    prod = config(stage="prod")
    assert (prod.start_max_concurrency, prod.webhooks_max_concurrency) == (10, 5)
    custom = config(start_max_concurrency="50", webhooks_max_concurrency=1000)
    assert (custom.start_max_concurrency, custom.webhooks_max_concurrency) == (50, 1000)
    for key, value in (
        ("start_max_concurrency", 1),
        ("webhooks_max_concurrency", 1001),
        ("start_max_concurrency", "x"),
    ):
        with pytest.raises(ValueError, match=key):
            config(**{key: value})


def _rds_like_bundle(path: Path, common_name: str = "Amazon RDS test-region-1 Root CA RSA2048 G1") -> Path:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Amazon RDS"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
        if common_name.startswith("Amazon RDS")
        else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_database_trust_store_is_the_rds_bundle_plus_amazon_trust_services_roots(tmp_path: Path) -> None:
    from cryptography import x509

    bundle = _rds_like_bundle(tmp_path / "global-bundle.pem")
    store = lambdas.database_trust_store(bundle)
    subjects = [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(store)]
    assert subjects[0] == "CN=Amazon RDS test-region-1 Root CA RSA2048 G1,OU=Amazon RDS"
    assert [s for s in subjects[1:] if "Amazon Root CA" in s] == [
        f"CN=Amazon Root CA {n},O=Amazon,C=US" for n in (1, 2, 3, 4)
    ]  # RDS Proxy's ACM certificates chain to these
    assert len(subjects) == 5

    with pytest.raises(ValueError, match="not the RDS CA bundle"):
        lambdas.database_trust_store(_rds_like_bundle(tmp_path / "other.pem", "Some Other Root CA"))
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    with pytest.raises(ValueError, match="not a PEM certificate bundle"):
        lambdas.database_trust_store(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match=r"truststore\.pki\.rds\.amazonaws\.com"):
        lambdas.database_trust_store(tmp_path / "missing.pem")


def test_database_ca_layer_is_bundled_from_the_configured_file(tmp_path: Path) -> None:
    """A real synth with bundling on: the layer holds rds-ca/bundle.pem; without RDS_CA_BUNDLE it says what to do."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    def layer(source: Path | None, outdir: Path) -> None:
        app = cdk.App(outdir=str(outdir))
        stack = cdk.Stack(app, "CaLayerOnly")
        lambda_.LayerVersion(
            stack,
            "Layer",
            code=lambda_.Code.from_asset(
                str(tmp_path / "empty"),
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                asset_hash=lambdas.database_ca_hash(source),
                bundling=cdk.BundlingOptions(
                    image=lambdas.RUNTIME.bundling_image, local=lambdas.DatabaseCaBundling(source)
                ),
            ),
        )
        app.synth()

    (tmp_path / "empty").mkdir()
    bundle = _rds_like_bundle(tmp_path / "global-bundle.pem")
    layer(bundle, tmp_path / "cdk.out")
    (staged,) = (tmp_path / "cdk.out").glob(f"asset.*/{lambdas.DATABASE_CA_LAYER_PATH}")
    assert staged.read_bytes() == lambdas.database_trust_store(bundle)
    assert lambdas.database_ca_hash(bundle) != lambdas.database_ca_hash(None)

    with pytest.raises(Exception, match="RDS_CA_BUNDLE"):
        layer(None, tmp_path / "cdk.out.unset")


def test_database_ca_source_reads_context_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RDS_CA_BUNDLE", raising=False)
    assert lambdas.database_ca_source(None) is None
    monkeypatch.setenv("RDS_CA_BUNDLE", "/certs/global-bundle.pem")
    assert lambdas.database_ca_source(None) == Path("/certs/global-bundle.pem")
    assert lambdas.database_ca_source("/other/bundle.pem") == Path("/other/bundle.pem")
