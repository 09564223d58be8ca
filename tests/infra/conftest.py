"""Synthesis fixtures for the infrastructure tests: each stage's app is synthesised once per session."""

from __future__ import annotations

import pytest

from tests.infra.synthesis import Synth, synthesize

PROD_ACCOUNT = "123456789012"
PROD_REGION = "eu-west-1"
PROD_MODEL_DATA = "s3://modamoda-models-example/modamoda/2025.11.1/"
# where a deploying machine keeps AWS's RDS CA bundle (only its path matters: assets are not bundled in the tests)
RDS_CA_BUNDLE = "/deploy/certs/global-bundle.pem"


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default (dev) stage, environment-agnostic, context from cdk.json, the RDS CA bundle's path and the SES
    identity Cognito mails through (the sender's own address: the stack's SenderIdentity, once verified)."""
    return synthesize(
        tmp_path_factory.mktemp("cdk.out.dev"),
        {"rds_ca_bundle": RDS_CA_BUNDLE, "cognito_ses_identity": "no-reply@modamoda.example"},
    )


@pytest.fixture(scope="session")
def prod_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The prod stage in a concrete account and region (as ``cdk deploy`` synthesises it), with the options an
    operator sets: the PWA's own domain, an alarm e-mail, only hosted-UI tokens (strings, as ``-c`` passes them),
    the model weights."""
    import aws_cdk as cdk

    return synthesize(
        tmp_path_factory.mktemp("cdk.out.prod"),
        {
            "stage": "prod",
            "web_origin": "https://app.example",
            "alarm_email": "ops@example.com",
            "accept_signin_scope": "false",
            # the weights scripts/pack_model.py --upload wrote (on-model available)
            "model_data": PROD_MODEL_DATA,
            "rds_ca_bundle": RDS_CA_BUNDLE,
            # Cognito mails sign-up codes through SES: email_from's domain, verified in SES
            "cognito_ses_identity": "modamoda.example",
            # what the CDK CLI's lookup would cache in cdk.context.json
            f"availability-zones:account={PROD_ACCOUNT}:region={PROD_REGION}": [
                f"{PROD_REGION}a",
                f"{PROD_REGION}b",
                f"{PROD_REGION}c",
            ],
        },
        env=cdk.Environment(account=PROD_ACCOUNT, region=PROD_REGION),
    )
