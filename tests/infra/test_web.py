"""PWA hosting: a private bucket read only by its CloudFront distribution (OAC), HTTPS only, security headers,
SPA fallback, access logs, and the published content (the PWA and its deploy-time config.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra.web import WebConfig, web_source
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


def test_the_pwa_and_its_config_are_published_and_the_cache_invalidated(synth: Synth) -> None:
    (_, deployment) = synth.one("Custom::CDKBucketDeployment")
    props = deployment["Properties"]
    assert props["DestinationBucketName"] == {"Ref": synth.bucket_ids()["web"]}
    assert props["Prune"] is True
    assert props["DistributionPaths"] == ["/*"]
    app_key, config_key = props["SourceObjectKeys"]
    staged = synth.outdir / f"asset.{app_key.removesuffix('.zip')}"
    assert (staged / "index.html").read_text(encoding="utf-8") == (web_source() / "index.html").read_text(
        encoding="utf-8"
    )
    assert (staged / "sw.js").is_file()
    assert (staged / "manifest.webmanifest").is_file()
    # config.json is written at deploy time: the API URL, user pool and client are tokens of this stack.
    markers = props["SourceMarkers"][1]
    rendered = json.dumps(markers)
    assert synth.one("AWS::Cognito::UserPoolClient")[0] in rendered
    assert synth.one("AWS::Cognito::UserPool")[0] in rendered
    assert synth.one("AWS::ApiGatewayV2::Api")[0] in rendered
    assert config_key.endswith(".zip")
    assert synth.template["Outputs"]["WebUrl"]["Value"] == {
        "Fn::Join": [
            "",
            ["https://", {"Fn::GetAtt": [synth.one("AWS::CloudFront::Distribution")[0], "DomainName"]}],
        ]
    }


def test_web_config_has_the_keys_the_app_reads() -> None:
    keys = set(WebConfig(api_url="a", user_pool_id="p", client_id="c", stage="dev").as_json())
    app_js = "\n".join(p.read_text(encoding="utf-8") for p in web_source().rglob("*.js"))
    assert keys == {"apiUrl", "region", "userPoolId", "clientId", "cognitoEndpoint", "stage"}
    for key in keys - {"stage", "region", "userPoolId"}:
        assert key in app_js, f"the PWA never reads config.{key}"


def test_web_source_is_the_app(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        web_source(tmp_path)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_text("app")
    assert web_source(tmp_path) == tmp_path / "app"


def test_pages_need_no_inline_script() -> None:
    for page in web_source().rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, page  # the CSP allows only files


def _csp(template: Synth) -> dict[str, list[str]]:
    (_, policy) = template.one("AWS::CloudFront::ResponseHeadersPolicy")
    config = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    text = render(config["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in text.split(";")) if d}


def _bucket_origins(template: Synth, *roles: str) -> list[str]:
    ids = template.bucket_ids()
    return [
        origin
        for role in roles
        for origin in (
            f"https://<<Ref:{ids[role]}>>.s3.<<Ref:AWS::URLSuffix>>",
            f"https://<<Ref:{ids[role]}>>.s3.<<Ref:AWS::Region>>.<<Ref:AWS::URLSuffix>>",
        )
    ]


def test_csp_names_this_stacks_api_buckets_and_sign_in_domain(prod_synth: Synth) -> None:
    """With its own web_origin (prod), the PWA may reach this stack's API, its three buckets and its Cognito
    domain, and no other API Gateway API, S3 bucket or hosted UI (no wildcard host anywhere)."""
    csp = _csp(prod_synth)
    (api_id, _) = prod_synth.one("AWS::ApiGatewayV2::Api")
    (domain_id, _) = prod_synth.one("AWS::Cognito::UserPoolDomain")
    api = f"https://<<Ref:{api_id}>>.execute-api.eu-west-1.<<Ref:AWS::URLSuffix>>"
    sign_in = f"https://<<Ref:{domain_id}>>.auth.eu-west-1.amazoncognito.com"
    assert csp["connect-src"] == [
        "'self'",
        api,
        "https://cognito-idp.<<Ref:AWS::Region>>.<<Ref:AWS::URLSuffix>>",
        sign_in,
        *_bucket_origins(prod_synth, "uploads", "drop", "results"),
    ]
    assert csp["img-src"] == ["'self'", "data:", "blob:", *_bucket_origins(prod_synth, "results")]
    assert csp["form-action"] == ["'self'", sign_in, "https://checkout.stripe.com"]
    assert not [s for sources in csp.values() for s in sources if "*" in s]


def test_csp_of_a_stage_served_from_its_cloudfront_url(synth: Synth) -> None:
    """Without web_origin the API's and the buckets' CORS name the distribution, so its policy cannot name them
    back (a dependency cycle): they stay region-scoped patterns; the sign-in domain is named."""
    csp = _csp(synth)
    (domain_id, _) = synth.one("AWS::Cognito::UserPoolDomain")
    sign_in = f"https://<<Ref:{domain_id}>>.auth.<<Ref:AWS::Region>>.amazoncognito.com"
    assert sign_in in csp["connect-src"]
    assert csp["form-action"] == ["'self'", sign_in, "https://checkout.stripe.com"]
    assert not [s for s in csp["connect-src"] + csp["form-action"] if ".auth." in s and "*" in s]
    assert "https://*.execute-api.<<Ref:AWS::Region>>.<<Ref:AWS::URLSuffix>>" in csp["connect-src"]


def test_bucket_origins_are_the_virtual_hosted_names_boto3_signs() -> None:
    """Pre-signed URLs from the functions' S3 client: the global name outside China, the regional one in it."""
    import boto3
    from botocore.config import Config

    from infra.csp import origin, s3_bucket_origins

    for region, suffix in (("eu-west-1", "amazonaws.com"), ("cn-north-1", "amazonaws.com.cn")):
        s3 = boto3.client(
            "s3",
            region_name=region,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
            config=Config(retries={"mode": "standard"}),
        )
        post = s3.generate_presigned_post("modamoda-uploads-1", "uploads/t/j/a.jpg")["url"]
        get = s3.generate_presigned_url("get_object", Params={"Bucket": "modamoda-results-1", "Key": "r.png"})
        allowed = s3_bucket_origins("modamoda-uploads-1", region, suffix) + s3_bucket_origins(
            "modamoda-results-1", region, suffix
        )
        assert origin(post) in allowed, post
        assert origin(get) in allowed, get
    assert (
        origin("https://abc.execute-api.eu-west-1.amazonaws.com/")
        == "https://abc.execute-api.eu-west-1.amazonaws.com"
    )
