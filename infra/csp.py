"""The PWA's content security policy: one definition for CloudFront (``infra.web``) and the local web server
(``local.web``), so the app is tested locally under the policy it gets in the cloud. No CDK imports here."""

from __future__ import annotations

from collections.abc import Iterable


def content_security_policy(
    *,
    images: Iterable[str] = (),
    connect: Iterable[str] = (),
    forms: Iterable[str] = (),
    upgrade_insecure_requests: bool = True,
) -> str:
    """Same-origin scripts only (no inline script, no eval); ``images``, ``connect`` and ``forms`` are the origins
    allowed besides the app's own for images, fetch/XHR and form submissions."""

    def sources(*fixed: str, extra: Iterable[str] = ()) -> str:
        return " ".join([*fixed, *(s for s in extra if s)])

    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src " + sources("'self'", "data:", "blob:", extra=images),
        "connect-src " + sources("'self'", extra=connect),
        "font-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action " + sources("'self'", extra=forms),
    ]
    if upgrade_insecure_requests:
        directives.append("upgrade-insecure-requests")
    return "; ".join(directives)


def s3_bucket_origins(bucket: str, region: str, url_suffix: str) -> list[str]:
    """The origins a browser reaches one bucket at through pre-signed URLs: virtual-hosted style, at the global name
    (``bucket.s3.amazonaws.com``, what boto3 signs outside the China regions) and the regional one
    (``bucket.s3.region.amazonaws.com``, what it signs there and S3 redirects to)."""
    return [f"https://{bucket}.s3.{url_suffix}", f"https://{bucket}.s3.{region}.{url_suffix}"]


def origin(url: str) -> str:
    """``https://host/path/`` → ``https://host`` (a CSP source for the whole host); tokens pass through."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.split('/', 1)[0]}" if sep else url.rstrip("/")
