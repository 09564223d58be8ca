"""S3 adapter: pre-signed uploads and downloads, reads, copies. Clients are passed in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from functions.common.errors import InputRejected, NotFound


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
    return result


def presigned_get(s3: Any, bucket: str, key: str, ttl_seconds: int, filename: str | None = None) -> str:
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    url: str = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)
    return url


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
