"""cdk-nag: the AwsSolutions pack finds nothing unacknowledged (errors and warnings) in either stage, and every
acknowledgment is precise (one finding, not a whole rule, for IAM wildcards and managed policies) and explained."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.synthesis import Synth

pytestmark = pytest.mark.synth

ACKNOWLEDGED = "aws:cdk:acknowledged-rules"
# The rule families acknowledged somewhere, each for reasons given next to the resource (infra/*.py).
EXPECTED_RULES = {
    "APIG4",  # the health route and the Stripe webhook (signature-checked) have no JWT
    "CFR1",  # no geo restriction
    "CFR2",  # no WAF on the static PWA
    "CFR4",  # default CloudFront certificate
    "COG2",  # MFA optional
    "COG8",  # Essentials plan
    "IAM4",  # CDK's own handlers (the functions' roles carry no managed policy: tests/infra/test_iam.py)
    "IAM5",  # prefix- and log-stream-scoped wildcards; X-Ray and VPC network interfaces; CDK's own handlers
    "L1",  # python3.12 pinned with the layer; CDK's own handlers
    "RDS6",  # password auth with rotation instead of IAM tokens
    "RDS11",  # default port
    "S1",  # the access-log bucket itself
    "SMG4",  # Stripe keys are rotated at Stripe
    "SQS3",  # dead-letter queues have no dead-letter queue
}


def acknowledgments(synth: Synth) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) of every AwsSolutions acknowledgment in the cloud assembly."""
    (metadata_file,) = synth.outdir.glob("*.metadata.json")
    metadata: dict[str, list[dict[str, Any]]] = json.loads(metadata_file.read_text(encoding="utf-8"))
    found = []
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == ACKNOWLEDGED:
                for rule, reason in entry["data"].items():
                    rule = re.sub(r"^annotation::", "", rule, flags=re.IGNORECASE)
                    if rule.startswith("AwsSolutions-"):
                        found.append((path, rule.removeprefix("AwsSolutions-"), reason))
    return found


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_unacknowledged_aws_solutions_findings(stage: str, synth: Synth, prod_synth: Synth) -> None:
    template = synth if stage == "dev" else prod_synth
    assert template.nag_findings == [], "\n".join(template.nag_findings)
    # and the pack ran as a validation plugin during synthesis (as in app.py), which passed
    report = json.loads((template.outdir / "validation-report.json").read_text(encoding="utf-8"))
    assert all(plugin["conclusion"] == "success" for plugin in report["pluginReports"]), report


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_acknowledgments_are_precise_and_explained(stage: str, synth: Synth, prod_synth: Synth) -> None:
    found = acknowledgments(synth if stage == "dev" else prod_synth)
    families = {rule.split("[")[0] for _, rule, _ in found}
    expected = EXPECTED_RULES | ({"RDS10"} if stage == "dev" else set())  # prod has deletion protection
    assert families == expected
    for path, rule, reason in found:
        assert len(reason) >= 40, (path, rule)
        if rule.startswith(("IAM4", "IAM5")):
            assert re.fullmatch(r"IAM[45]\[(Resource|Action|Policy)::.+\]", rule), (path, rule)
    # stack-wide acknowledgments would hide future findings: every one sits on a construct below the stack
    assert all(path.count("/") >= 2 for path, _, _ in found), [p for p, _, _ in found if p.count("/") < 2]


def test_iam_wildcard_acknowledgments_name_prefixes_not_whole_buckets(synth: Synth) -> None:
    for path, rule, _ in acknowledgments(synth):
        if rule.startswith("IAM5[Resource::") and ".Arn>/" in rule and "CDKBucketDeployment" not in path:
            prefixes = (
                r"(uploads|drop|results|previews|archives|inference/(input|output|failure|metadata))/\*"
                r"|results/\*/report\.(csv|json)"
            )
            assert re.search(rf"\.Arn>/({prefixes})\]$", rule), (
                path,
                rule,
            )
