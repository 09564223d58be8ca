"""Sign-up in AWS: Cognito mails codes and password resets through SES, a changed address stays unverified until
confirmed, and an AWS WAF rate-based rule on the user pool limits sign-ups per IP address.

Values from AWS's documentation: ``EmailConfiguration`` (AWS::Cognito::UserPool; ``DEVELOPER`` sends with the SES
identity named by ``SourceArn``, ``arn:<partition>:ses:<region>:<account>:identity/<address or domain>``, from
``From``; ``COGNITO_DEFAULT`` is Cognito's own sender with its daily quota); ``UserAttributeUpdateSettings``;
AWS WAF rate-based rules (``Limit`` at least 10, ``EvaluationWindowSec`` 60/120/300/600, ``AggregateKeyType: IP``),
a REGIONAL web ACL associated with the user pool's ARN (Cognito: "Associate an AWS WAF web ACL with a user pool"),
and Cognito's JSON protocol naming the operation in ``X-Amz-Target`` (``AWSCognitoIdentityProviderService.SignUp``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.config import StageConfig, validate_ses_identity
from tests.infra.conftest import PROD_ACCOUNT, PROD_REGION, RDS_CA_BUNDLE
from tests.infra.synthesis import Synth, render

pytestmark = pytest.mark.synth

SENDER = "Modamoda <no-reply@modamoda.example>"  # cdk.json's default email_from


def user_pool(synth: Synth) -> dict[str, Any]:
    (_, pool) = synth.one("AWS::Cognito::UserPool")
    return dict(pool["Properties"])


def test_cognito_mails_through_the_verified_ses_identity(synth: Synth, prod_synth: Synth) -> None:
    dev = user_pool(synth)["EmailConfiguration"]
    assert dev["EmailSendingAccount"] == "DEVELOPER"
    assert dev["From"] == SENDER
    # the dev fixture names the sender's own address as the identity (the stack's SenderIdentity, once verified)
    assert render(dev["SourceArn"]) == (
        "arn:<<Ref:AWS::Partition>>:ses:<<Ref:AWS::Region>>:<<Ref:AWS::AccountId>>:identity/no-reply@modamoda.example"
    )

    prod = user_pool(prod_synth)["EmailConfiguration"]
    assert prod["EmailSendingAccount"] == "DEVELOPER"
    assert prod["From"] == SENDER
    # prod names a verified domain: Cognito may then send from any address of it
    assert render(prod["SourceArn"]).endswith(f":ses:{PROD_REGION}:{PROD_ACCOUNT}:identity/modamoda.example")
    assert render(prod["SourceArn"]).startswith("arn:")


def test_a_changed_address_stays_unverified_beside_the_verified_one(synth: Synth, prod_synth: Synth) -> None:
    for pool in (user_pool(synth), user_pool(prod_synth)):
        assert pool["AutoVerifiedAttributes"] == ["email"]
        assert pool["UserAttributeUpdateSettings"] == {"AttributesRequireVerificationBeforeUpdate": ["email"]}


def _lower_targets(statements: list[dict[str, Any]]) -> set[str]:
    found = set()
    for statement in statements:
        match = statement.get("ByteMatchStatement")
        if match and match["FieldToMatch"] == {"SingleHeader": {"Name": "x-amz-target"}}:
            assert match["PositionalConstraint"] == "EXACTLY"
            assert match["TextTransformations"] == [{"Priority": 0, "Type": "LOWERCASE"}]
            found.add(match["SearchString"])
    return found


def _form_posts(statements: list[dict[str, Any]]) -> set[str]:
    found = set()
    for statement in statements:
        if "AndStatement" not in statement:
            continue
        parts = [s["ByteMatchStatement"] for s in statement["AndStatement"]["Statements"]]
        (path,) = [p for p in parts if p["FieldToMatch"] == {"UriPath": {}}]
        (method,) = [p for p in parts if p["FieldToMatch"] == {"Method": {}}]
        assert (method["PositionalConstraint"], method["SearchString"]) == ("EXACTLY", "POST")
        assert path["PositionalConstraint"] == "STARTS_WITH"
        assert path["TextTransformations"] == [{"Priority": 0, "Type": "LOWERCASE"}]
        found.add(path["SearchString"])
    return found


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_sign_ups_are_rate_limited_per_ip_by_a_web_acl_on_the_user_pool(
    stage: str, synth: Synth, prod_synth: Synth
) -> None:
    template = synth if stage == "dev" else prod_synth
    (acl_id, acl) = template.one("AWS::WAFv2::WebACL")
    props = acl["Properties"]
    assert props["Scope"] == "REGIONAL"  # a user pool takes a regional web ACL
    assert props["DefaultAction"] == {"Allow": {}}
    assert props["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    (rule,) = props["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP"
    assert rate["Limit"] == 20  # the default; AWS WAF's lowest is 10
    assert rate["EvaluationWindowSec"] == 300
    statements = rate["ScopeDownStatement"]["OrStatement"]["Statements"]
    assert _lower_targets(statements) == {
        "awscognitoidentityproviderservice.signup",
        "awscognitoidentityproviderservice.resendconfirmationcode",
        "awscognitoidentityproviderservice.forgotpassword",
    }
    assert _form_posts(statements) == {"/signup", "/resendcode", "/forgotpassword"}

    (_, association) = template.one("AWS::WAFv2::WebACLAssociation")
    (pool_id, _) = template.one("AWS::Cognito::UserPool")
    assert association["Properties"] == {
        "ResourceArn": {"Fn::GetAtt": [pool_id, "Arn"]},
        "WebACLArn": {"Fn::GetAtt": [acl_id, "Arn"]},
    }


def test_without_a_verified_identity_dev_uses_cognitos_sender_and_says_so(tmp_path: Path) -> None:
    """A clean clone's ``make synth``: Cognito's own sender, a synthesis warning; ``signup_rate_limit=0`` drops the
    web ACL (Regions where AWS WAF cannot protect a user pool). Prod refuses to synthesise without an identity."""
    import aws_cdk as cdk
    from aws_cdk.cx_api import SynthesisMessageLevel

    from infra.config import BUNDLING_STACKS_KEY, cdk_json_context
    from infra.stack import build

    app = cdk.App(
        outdir=str(tmp_path / "dev"),
        context={
            **cdk_json_context(),
            "rds_ca_bundle": RDS_CA_BUNDLE,
            "signup_rate_limit": "0",
            BUNDLING_STACKS_KEY: [],
        },
    )
    stack = build(app, env=cdk.Environment())
    artifact = app.synth().get_stack_by_name(stack.stack_name)
    warnings = [str(m.entry.data) for m in artifact.messages if m.level == SynthesisMessageLevel.WARNING]
    assert [w for w in warnings if "cognito_ses_identity" in w and "own sender" in w], warnings
    resources = artifact.template["Resources"]
    (pool,) = [r for r in resources.values() if r["Type"] == "AWS::Cognito::UserPool"]
    assert pool["Properties"]["EmailConfiguration"] == {"EmailSendingAccount": "COGNITO_DEFAULT"}
    assert not [r for r in resources.values() if r["Type"].startswith("AWS::WAFv2::")]

    prod = cdk.App(
        outdir=str(tmp_path / "prod"),
        context={
            **cdk_json_context(),
            "stage": "prod",
            "rds_ca_bundle": RDS_CA_BUNDLE,
            BUNDLING_STACKS_KEY: [],
        },
    )
    with pytest.raises(ValueError, match="cognito_ses_identity"):
        build(prod, env=cdk.Environment(account=PROD_ACCOUNT, region=PROD_REGION))


def test_ses_identity_and_rate_limit_settings_are_checked() -> None:
    import aws_cdk as cdk

    assert validate_ses_identity("Modamoda.Example", SENDER) == "modamoda.example"
    assert validate_ses_identity("no-reply@modamoda.example", SENDER) == "no-reply@modamoda.example"
    with pytest.raises(ValueError, match="cognito_ses_identity"):
        validate_ses_identity("other.example", SENDER)  # Cognito could not send email_from through it
    with pytest.raises(ValueError, match="cognito_ses_identity"):
        validate_ses_identity("sales@modamoda.example", SENDER)

    default = StageConfig.from_context(cdk.App().node)
    assert (default.cognito_ses_identity, default.signup_rate_limit) == (None, 20)
    custom = StageConfig.from_context(
        cdk.App(context={"cognito_ses_identity": "modamoda.example", "signup_rate_limit": "50"}).node
    )
    assert (custom.cognito_ses_identity, custom.signup_rate_limit) == ("modamoda.example", 50)
    assert StageConfig.from_context(cdk.App(context={"signup_rate_limit": 0}).node).signup_rate_limit == 0
    for bad in ("5", "many", "-1"):
        with pytest.raises(ValueError, match="signup_rate_limit"):
            StageConfig.from_context(cdk.App(context={"signup_rate_limit": bad}).node)
