"""S3 adapter: pre-signed uploads and downloads, reads, copies. Clients are passed in."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse, urlsplit

from functions.common import config
from functions.common.errors import InputRejected, NotFound

# S3's public endpoints: virtual-hosted (``bucket.s3.amazonaws.com``, ``bucket.s3.us-east-1.amazonaws.com``,
# ``bucket.s3-us-west-2.amazonaws.com``) and path-style (the same hosts without the bucket).
_S3_HOST = re.compile(r"(?:(?P<bucket>[a-z0-9][a-z0-9.-]*)\.)?s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com")


def public_url(url: str) -> str:
    """The URL a browser should use for a pre-signed S3 URL. In the cloud it is unchanged; in local mode
    (``S3_PUBLIC_URL``) ``https://<bucket>.s3.amazonaws.com/<key>?<query>`` (or a path-style form) becomes
    ``<S3_PUBLIC_URL>/<bucket>/<key>?<query>``, the local web server's proxy to the emulated S3."""
    base = config.s3_public_url()
    if not base:
        return url
    parts = urlsplit(url)
    match = _S3_HOST.fullmatch(parts.hostname or "")
    if parts.scheme not in {"http", "https"} or match is None:
        return url
    path = parts.path.lstrip("/")
    if match.group("bucket"):
        bucket, key = match.group("bucket"), path
    else:
        bucket, _, key = path.partition("/")
    if not bucket:
        return url
    return f"{base}/{bucket}/{key}" + (f"?{parts.query}" if parts.query else "")


def presigned_post(
    s3: Any, bucket: str, key: str, content_type: str, max_bytes: int, ttl_seconds: int
) -> dict[str, Any]:
    """A browser-usable POST policy for exactly this key, this content type and at most ``max_bytes``."""
    result: dict[str, Any] = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[
            {"Content-Type": content_type},
            ["content-length-range", 1, max_bytes],
        ],
        ExpiresIn=ttl_seconds,
    )
    result["url"] = public_url(result["url"])
    return result


def presigned_get(s3: Any, bucket: str, key: str, ttl_seconds: int, filename: str | None = None) -> str:
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    url: str = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)
    return public_url(url)


def read_object(s3: Any, bucket: str, key: str, version_id: str | None, max_bytes: int) -> tuple[bytes, int]:
    """The object's bytes, refusing (without downloading) anything larger than ``max_bytes``."""
    extra = {"VersionId": version_id} if version_id else {}
    try:
        head = s3.head_object(Bucket=bucket, Key=key, **extra)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NoSuchVersion"}:
            raise NotFound(f"s3://{bucket}/{key} does not exist") from exc
        raise
    size = int(head["ContentLength"])
    if size == 0:
        raise InputRejected("the uploaded file is empty", code="empty_file")
    if size > max_bytes:
        raise InputRejected(f"the file is {size} bytes; the limit is {max_bytes}", code="file_too_large")
    body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return body, size


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.lstrip("/"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def copy(s3: Any, source_uri: str, bucket: str, key: str, content_type: str | None) -> None:
    src_bucket, src_key = split_s3_uri(source_uri)
    extra: dict[str, Any] = {}
    if content_type:
        extra = {"ContentType": content_type, "MetadataDirective": "REPLACE"}
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": src_bucket, "Key": src_key}, **extra)


def delete_object_versions(s3: Any, bucket: str, key: str) -> int:
    """Delete ``key`` for good: every version and delete marker in a versioned bucket (the plain object in an
    unversioned one, whose only version is ``null``). Other keys that merely start with ``key`` are kept.
    Returns how many versions were deleted."""
    doomed: list[dict[str, str]] = []
    for listing in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for entry in (*listing.get("Versions", ()), *listing.get("DeleteMarkers", ())):
            if entry["Key"] == key:
                doomed.append({"Key": key, "VersionId": entry["VersionId"]})
    for start in range(0, len(doomed), 1000):  # DeleteObjects takes at most 1000 keys
        batch = doomed[start : start + 1000]
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        errors = result.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"could not delete s3://{bucket}/{key} version {first.get('VersionId')}: {first.get('Code')}"
            )
    return len(doomed)


def delete_object(s3: Any, bucket: str, key: str) -> None:
    """Delete ``key`` in an unversioned bucket (missing is fine)."""
    s3.delete_object(Bucket=bucket, Key=key)


def version_exists(s3: Any, bucket: str, key: str, version_id: str | None) -> bool:
    """Whether ``key`` can still be read at ``version_id`` (None: its current version, not a delete marker).
    Listed rather than fetched: a missing object is then an answer, not a 403 (the API may list, not probe)."""
    for listing in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for entry in listing.get("Versions", ()):
            if entry["Key"] != key:
                continue
            if version_id is None and entry.get("IsLatest"):
                return True
            if version_id is not None and entry["VersionId"] == version_id:
                return True
    return False


def copy_version(
    s3: Any, bucket: str, key: str, version_id: str | None, to_bucket: str, to_key: str
) -> str | None:
    """Copy one version of an object server-side (its content type and metadata with it); the new version id.
    NotFound when the source (version) is gone."""
    source: dict[str, str] = {"Bucket": bucket, "Key": key}
    if version_id:
        source["VersionId"] = version_id
    try:
        result = s3.copy_object(Bucket=to_bucket, Key=to_key, CopySource=source)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NoSuchVersion"}:
            raise NotFound(f"s3://{bucket}/{key} does not exist") from exc
        raise
    return result.get("VersionId")
