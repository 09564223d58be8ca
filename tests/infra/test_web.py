"""PWA hosting: a private bucket read only by its CloudFront distribution (OAC), HTTPS only, security headers,
SPA fallback, access logs, and the published content (the build, or the placeholder page)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.web import web_source
from tests.infra.synthesis import Synth, render

pytestmark = pytest.mark.synth


@pytest.fixture(scope="module")
def template(synth: Synth) -> Template:
    return Template.from_json(synth.template)


def test_distribution_serves_https_only_from_the_private_bucket_with_oac(
    template: Template, synth: Synth
) -> None:
    web_bucket = synth.bucket_ids()["web"]
    template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "DefaultRootObject": "index.html",
                    "DefaultCacheBehavior": Match.object_like(
                        {
                            "ViewerProtocolPolicy": "redirect-to-https",
                            "AllowedMethods": ["GET", "HEAD", "OPTIONS"],
                            "ResponseHeadersPolicyId": Match.any_value(),
                        }
                    ),
                    "Origins": [
                        Match.object_like(
                            {
                                "DomainName": {"Fn::GetAtt": [web_bucket, "RegionalDomainName"]},
                                "OriginAccessControlId": Match.any_value(),
                                "S3OriginConfig": {"OriginAccessIdentity": ""},
                            }
                        )
                    ],
                    "Logging": {
                        "Bucket": {"Fn::GetAtt": [synth.bucket_ids()["access_logs"], "RegionalDomainName"]},
                        "Prefix": "cloudfront/",
                    },
                }
            )
        },
    )
    template.has_resource_properties(
        "AWS::CloudFront::OriginAccessControl",
        {
            "OriginAccessControlConfig": Match.object_like(
                {"SigningBehavior": "always", "SigningProtocol": "sigv4"}
            )
        },
    )


def test_only_this_distribution_may_read_the_web_bucket(synth: Synth) -> None:
    web_bucket = synth.bucket_ids()["web"]
    (distribution_id, _) = synth.one("AWS::CloudFront::Distribution")
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": web_bucket}
    ]
    reads = [s for s in policy if s["Effect"] == "Allow" and "s3:GetObject" in s["Action"]]
    (read,) = [s for s in reads if s["Principal"] == {"Service": "cloudfront.amazonaws.com"}]
    assert read["Action"] == "s3:GetObject"
    assert render(read["Condition"]["StringEquals"]["AWS:SourceArn"]).endswith(
        f":distribution/<<Ref:{distribution_id}>>"
    )
    public = [s for s in policy if s["Effect"] == "Allow" and s["Principal"] in ("*", {"AWS": "*"})]
    assert public == []


def test_security_headers_on_every_response(synth: Synth) -> None:
    (_, policy) = synth.one("AWS::CloudFront::ResponseHeadersPolicy")
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["StrictTransportSecurity"]["IncludeSubdomains"] is True
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"] == {"FrameOption": "DENY", "Override": True}
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"
    csp = render(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline or remote code
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "execute-api" in directives["connect-src"]
    assert "unsafe-eval" not in csp


def test_unknown_paths_get_the_app_shell(synth: Synth) -> None:
    (_, distribution) = synth.one("AWS::CloudFront::Distribution")
    responses = distribution["Properties"]["DistributionConfig"]["CustomErrorResponses"]
    assert {(r["ErrorCode"], r["ResponseCode"], r["ResponsePagePath"]) for r in responses} == {
        (403, 200, "/index.html"),
        (404, 200, "/index.html"),
    }


def test_the_placeholder_page_is_published_and_the_cache_invalidated(synth: Synth) -> None:
    (_, deployment) = synth.one("Custom::CDKBucketDeployment")
    props = deployment["Properties"]
    assert props["DestinationBucketName"] == {"Ref": synth.bucket_ids()["web"]}
    assert props["Prune"] is True
    assert props["DistributionPaths"] == ["/*"]
    (key,) = props["SourceObjectKeys"]
    staged = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    assert (staged / "index.html").read_text(encoding="utf-8") == (web_source() / "index.html").read_text(
        encoding="utf-8"
    )
    assert synth.template["Outputs"]["WebUrl"]["Value"] == {
        "Fn::Join": [
            "",
            ["https://", {"Fn::GetAtt": [synth.one("AWS::CloudFront::Distribution")[0], "DomainName"]}],
        ]
    }


def test_web_source_prefers_the_pwa_build(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "index.html").write_text("placeholder")
    assert web_source(tmp_path) == tmp_path / "public"
    (tmp_path / "dist").mkdir()
    assert web_source(tmp_path) == tmp_path / "public"  # an empty dist is no build
    (tmp_path / "dist" / "index.html").write_text("app")
    assert web_source(tmp_path) == tmp_path / "dist"


def test_placeholder_page_needs_no_inline_script() -> None:
    html = (web_source() / "index.html").read_text(encoding="utf-8")
    assert "<script" not in html  # the CSP allows only same-origin script files
