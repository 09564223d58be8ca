"""Read the input photo from S3 and write the job's metadata JSON there (the only place boto3 is used in the
container).

The client is created lazily with boto3's default configuration, so ``AWS_ENDPOINT_URL``, ``AWS_REGION`` and
the usual credential chain apply; tests and the local runner may pass their own client.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from modamoda_inference.errors import InvalidImage, InvalidRequest, StorageError
from modamoda_inference.schemas import parse_s3_uri

DEFAULT_MAX_INPUT_BYTES = 100 * 1024 * 1024
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "404", "NotFound"})
_BAD_ARGUMENT_CODES = frozenset({"InvalidArgument", "InvalidVersionId", "InvalidBucketName", "400"})


def max_input_bytes_from_env() -> int:
    return int(os.environ.get("MODAMODA_MAX_INPUT_BYTES", DEFAULT_MAX_INPUT_BYTES))


class _LazyS3:
    """An S3 client made on first use (thread-safe), with the retry and timeout settings of its subclass."""

    _attempts, _connect_timeout, _read_timeout = 5, 10, 60

    def __init__(self, client: Any | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        retries={"mode": "standard", "max_attempts": self._attempts},
                        connect_timeout=self._connect_timeout,
                        read_timeout=self._read_timeout,
                    )
                    self._client = boto3.session.Session().client("s3", config=config)
        return self._client


class S3ImageSource(_LazyS3):
    """Fetches ``s3://bucket/key`` (optionally a given version) as bytes, with a size limit."""

    def __init__(self, client: Any | None = None, *, max_bytes: int | None = None) -> None:
        super().__init__(client)
        self.max_bytes = max_input_bytes_from_env() if max_bytes is None else max_bytes

    def fetch(self, uri: str, version_id: str | None = None) -> bytes:
        """The object's bytes. Missing object → InvalidRequest; too big → InvalidImage; else StorageError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            bucket, key = parse_s3_uri(uri)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        where = f"{uri} (version {version_id})" if version_id else uri
        kwargs: dict[str, str] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
            length = int(response.get("ContentLength") or 0)
            body = response["Body"]
            try:
                if length > self.max_bytes:
                    raise InvalidImage(
                        f"the input file is too large: {length / 1e6:.1f} MB, "
                        f"the limit is {self.max_bytes / 1e6:.1f} MB"
                    )
                data = body.read(self.max_bytes + 1)
            finally:
                body.close()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING_CODES:
                raise InvalidRequest(f"the input object {where} does not exist") from exc
            if code in _BAD_ARGUMENT_CODES:
                raise InvalidRequest(
                    f"the input object {where} cannot be read: {error.get('Message', code)}"
                ) from exc
            raise StorageError(f"cannot read {where} from S3: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {where} from S3: {exc}") from exc
        if len(data) > self.max_bytes:
            raise InvalidImage(f"the input file is too large: over {self.max_bytes / 1e6:.1f} MB")
        return data


class S3MetadataWriter(_LazyS3):
    """Writes a job's metadata document (small JSON) to ``s3://bucket/key``. Best effort by design: a write
    that fails is reported as False, never raised, so it can never fail the job."""

    _attempts, _connect_timeout, _read_timeout = 2, 5, 10

    def write(self, uri: str, document: Mapping[str, Any]) -> bool:
        try:
            bucket, key = parse_s3_uri(uri)
            body = json.dumps(document, separators=(",", ":"), ensure_ascii=True, default=str).encode()
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        except Exception:  # best effort: the caller logs it; the job goes on
            return False
        return True


class S3ObjectWriter(_LazyS3):
    """Writes an object (the engine's answer: an image, or a failure body) to ``s3://bucket/key``, as SageMaker's
    asynchronous endpoint writes each response to its output (or failure) path. A write that fails after the
    client's retries is :class:`StorageError`."""

    def put(self, uri: str, body: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            bucket, key = parse_s3_uri(uri)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot write {uri} to S3: {exc}") from exc
