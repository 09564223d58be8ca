"""PWA hosting: a private S3 bucket behind CloudFront (origin access control), security headers, SPA fallback.

The bucket is never public: only this distribution may read it (OAC, SigV4-signed origin requests). CloudFront
redirects HTTP to HTTPS, adds HSTS, a content security policy, ``nosniff``, ``DENY`` framing and a strict
referrer policy to every response, and answers unknown paths with ``/index.html`` (client-side routing).

The content security policy names what the PWA talks to (``BrowserEndpoints``): this stack's Cognito domain, and
its HTTP API and S3 buckets (uploads and drop for pre-signed POSTs, results for images and downloads) whenever
they can be named. They cannot when the PWA's origin is this distribution's own URL (no ``web_origin``): the API's
and the buckets' CORS rules then name the distribution, and a policy attached to the distribution naming them
back would be a CloudFormation dependency cycle. That stage keeps region-scoped patterns for those two
(``https://*.execute-api.<region>.<suffix>``, ``https://*.s3.<suffix>``); give the stage a ``web_origin`` (its
own domain in front of the distribution) to have them named.

Content: the PWA in ``web/app`` (plain files, no build step) and a ``config.json`` written at deploy time with the
API URL and the Cognito user pool and client the app signs in with; ``BucketDeployment`` uploads both on every
deploy and invalidates the distribution. ``publish`` is called once the API exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra import csp
from infra.config import WEB_DIR
from infra.nag import acknowledge, acknowledge_wildcard
from infra.storage import Storage, private_bucket


def web_source(web_dir: Path = WEB_DIR) -> Path:
    """The directory to publish: the PWA's files (``web/app``)."""
    app = web_dir / "app"
    if not (app / "index.html").is_file():
        raise FileNotFoundError(f"the PWA is missing: {app / 'index.html'}")
    return app


@dataclass(frozen=True)
class WebConfig:
    """What the PWA reads from ``/config.json`` (the local stack serves the same keys)."""

    api_url: str
    user_pool_id: str
    client_id: str
    stage: str

    def as_json(self) -> dict[str, str]:
        return {
            "apiUrl": self.api_url,
            "region": Aws.REGION,
            "userPoolId": self.user_pool_id,
            "clientId": self.client_id,
            "cognitoEndpoint": f"https://cognito-idp.{Aws.REGION}.{Aws.URL_SUFFIX}/",
            "stage": self.stage,
        }


@dataclass(frozen=True)
class BrowserEndpoints:
    """The AWS endpoints the PWA's pages reach, for its content security policy. ``None`` (API, buckets): not
    nameable here (see the module docstring); a region-scoped pattern stands in."""

    sign_in_url: str | None = None
    """The Cognito hosted sign-in domain (``https://<prefix>.auth.<region>.amazoncognito.com``)."""
    api_url: str | None = None
    upload_buckets: Sequence[str] | None = None
    """Buckets the PWA POSTs to with pre-signed forms (uploads, bulk drop)."""
    result_buckets: Sequence[str] | None = None
    """Buckets the PWA reads with pre-signed GETs (results: images, downloads, batch reports)."""


def content_security_policy(endpoints: BrowserEndpoints | None = None) -> str:
    """Same-origin code only; the PWA may call this stack's API, Cognito and S3 buckets (pre-signed URLs)."""
    endpoints = endpoints or BrowserEndpoints()
    region, suffix = Aws.REGION, Aws.URL_SUFFIX
    any_bucket = [f"https://*.s3.{suffix}", f"https://*.s3.{region}.{suffix}"]

    def buckets(names: Sequence[str] | None) -> list[str]:
        if names is None:
            return any_bucket
        return [o for name in names for o in csp.s3_bucket_origins(name, region, suffix)]

    sign_in = (
        csp.origin(endpoints.sign_in_url)
        if endpoints.sign_in_url
        else f"https://*.auth.{region}.amazoncognito.com"
    )
    api = csp.origin(endpoints.api_url) if endpoints.api_url else f"https://*.execute-api.{region}.{suffix}"
    results = buckets(endpoints.result_buckets)
    uploads = buckets(endpoints.upload_buckets)
    connect = [api, f"https://cognito-idp.{region}.{suffix}", sign_in]
    for source in (*uploads, *results):
        if source not in connect:
            connect.append(source)
    return csp.content_security_policy(
        images=results,
        connect=connect,
        forms=[sign_in, "https://checkout.stripe.com"],
    )


@dataclass(frozen=True)
class WebProps:
    storage: Storage
    retain: bool
    source: Path | None = None
    """Directory to publish; default ``web_source()``."""


class Web(Construct):
    def __init__(self, scope: Construct, construct_id: str, props: WebProps) -> None:
        super().__init__(scope, construct_id)
        self.bucket = private_bucket(
            self,
            "Bucket",
            retain=props.retain,
            access_logs=props.storage.access_logs,
            log_prefix="s3/web/",
        )

        self.security_headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Modamoda PWA: HSTS, CSP, nosniff, no framing, strict referrer",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(730), include_subdomains=True, override=True
                ),
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(), override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
                    override=True,
                ),
                xss_protection=cloudfront.ResponseHeadersXSSProtection(
                    protection=True, mode_block=True, override=True
                ),
            ),
        )
        # The SPA's routes are not objects: S3 answers 403 (OAC without list) or 404; serve the app shell.
        spa_fallback = [
            cloudfront.ErrorResponse(
                http_status=status,
                response_http_status=200,
                response_page_path="/index.html",
                ttl=Duration.seconds(0),
            )
            for status in (403, 404)
        ]
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Modamoda PWA",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self.security_headers,
                compress=True,
            ),
            default_root_object="index.html",
            error_responses=spa_fallback,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=props.storage.access_logs,
            log_file_prefix="cloudfront/",
        )
        acknowledge(
            self.distribution,
            "CFR1",
            "the PWA is sold worldwide; there is no country to block",
        )
        acknowledge(
            self.distribution,
            "CFR2",
            "static files only (no forms or server code behind CloudFront); the API has its own throttling; "
            "a WAF web ACL (~$5/month + rules) can be attached when traffic warrants it",
        )
        acknowledge(
            self.distribution,
            "CFR4",
            "the default *.cloudfront.net certificate cannot pin a minimum TLS version; viewers get TLS 1.2+ with "
            "a custom domain and ACM certificate, which the operator adds (no domain is assumed here)",
        )
        self.url = f"https://{self.distribution.distribution_domain_name}"
        self._source = props.source or web_source()
        self._retain = props.retain

    def publish(self, config: WebConfig, endpoints: BrowserEndpoints | None = None) -> None:
        """Upload the app and its ``config.json`` (deploy-time values), invalidate the cache, and name
        ``endpoints`` in the content security policy (known only once the API exists)."""
        if endpoints is not None:
            policy = self.security_headers.node.default_child
            assert isinstance(policy, cloudfront.CfnResponseHeadersPolicy)
            policy.add_property_override(
                "ResponseHeadersPolicyConfig.SecurityHeadersConfig.ContentSecurityPolicy.ContentSecurityPolicy",
                content_security_policy(endpoints),
            )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Content",
            sources=[
                s3deploy.Source.asset(str(self._source)),
                s3deploy.Source.json_data("config.json", config.as_json()),
            ],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],
            prune=True,
            memory_limit=256,
            log_group=logs.LogGroup(
                self,
                "ContentLogs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=RemovalPolicy.RETAIN if self._retain else RemovalPolicy.DESTROY,
            ),
        )
        acknowledge_wildcard(
            self.deployment.handler_role,
            self.bucket.arn_for_objects("*"),
            "the deployment replaces the PWA's files (any key) in the web bucket; a handler aws-cdk-lib maintains",
        )
