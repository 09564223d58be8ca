"""Download all: the results of several jobs as one ZIP, made without holding every image in memory.

Each result object is streamed from S3, a chunk at a time, into a ZIP (``ZIP_STORED``: the images are compressed
already; ZIP64 when it grows past 4 GiB) whose output is an S3 multipart upload (``MultipartWriter``): a part is
sent each time ``part_size`` bytes have been written. Memory stays bounded by one part plus one chunk, whatever
the number or size of the images. A failure aborts the multipart upload (no partial ZIP is ever visible; the
bucket's lifecycle rule aborts any upload left behind, and expires finished archives after a day).

The ZIP goes to ``archives/{tenant}/{uuid}.zip`` in the results bucket and is handed out as a short-lived
pre-signed GET that downloads it as an attachment.
"""

from __future__ import annotations

import logging
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.common import jobs, storage
from functions.common.errors import Conflict, NotFound, TransientError

PREFIX = "archives/"
PART_SIZE = 8 * 1024 * 1024  # S3 multipart parts: at least 5 MiB (but the last), at most 10,000 of them
CHUNK_SIZE = 1024 * 1024  # how much of a result is read from S3 at a time
CONTENT_TYPE = "application/zip"
# The API's own time limit is 29 s (API Gateway's integration timeout): a ZIP that is not finished by then is
# abandoned (its upload aborted) with a sentence asking for fewer images, rather than cut off by the gateway.
TIME_BUDGET_SECONDS = 24.0

_log = logging.getLogger(__name__)


def archive_key(tenant_id: str) -> str:
    return f"{PREFIX}{tenant_id}/{uuid.uuid4()}.zip"


def archive_filename(count: int, now: datetime) -> str:
    return f"modamoda-{now.astimezone(UTC).date().isoformat()}-{count}-images.zip"


# ---- the S3 multipart output -----------------------------------------------------------------------------------


class MultipartWriter:
    """A write-only, unseekable file whose bytes become one S3 object through a multipart upload.

    At most ``part_size`` bytes are held: each full part is uploaded as soon as it is complete, the rest on
    ``complete()``. ``abort()`` (or any failure in ``complete()``) aborts the upload: S3 keeps nothing."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = PART_SIZE,
        content_type: str = CONTENT_TYPE,
    ) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 parts (but the last) are at least 5 MiB")
        self._s3, self.bucket, self.key, self.part_size = s3, bucket, key, part_size
        self._upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type)[
            "UploadId"
        ]
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._position = 0
        self._open = True

    # the file interface zipfile uses (no seek: zipfile then writes data descriptors after each member)
    def write(self, data: bytes | bytearray | memoryview) -> int:
        if not self._open:
            raise ValueError("write to a finished multipart upload")
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            room = self.part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self.part_size:
                self._send()
        self._position += total
        return total

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing to do: a part is sent when it is full (S3 refuses parts under 5 MiB but the last)."""

    def close(self) -> None:
        """Nothing to do: the upload ends with ``complete()`` or ``abort()`` (zipfile never closes a file it was
        given)."""

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def size(self) -> int:
        return self._position

    @property
    def parts(self) -> int:
        return len(self._parts)

    def _send(self) -> None:
        number = len(self._parts) + 1
        response = self._s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=self._buffer
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer = bytearray()

    def complete(self) -> None:
        """Send the last part and make the object."""
        if not self._open:
            raise ValueError("the multipart upload is finished already")
        try:
            if self._buffer or not self._parts:
                self._send()
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except BaseException:
            self.abort()
            raise
        self._open = False

    def abort(self) -> None:
        """Give the upload up (idempotent): S3 deletes the parts sent so far."""
        if not self._open:
            return
        self._open = False
        self._buffer = bytearray()
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        except Exception as exc:  # the bucket's lifecycle rule aborts what is left behind
            _log.warning(
                "could not abort the multipart upload", extra={"key": self.key, "error": repr(exc)[:300]}
            )


# ---- the ZIP ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file of the ZIP: the object ``bucket``/``key`` stored under ``name``."""

    bucket: str
    key: str
    name: str
    modified: datetime | None = None


@dataclass(frozen=True)
class Built:
    count: int
    bytes: int
    parts: int


class TooSlow(TransientError):
    """The ZIP could not be finished within the API's time limit."""

    code = "archive_too_large"


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with repeats told apart as ``name (2).png``, ``name (3).png``... (compared without case: the
    files land on case-insensitive disks). No name has a path in it."""
    taken: set[str] = set()
    out: list[str] = []
    for raw in names:
        name = raw.replace("\\", "_").replace("/", "_").lstrip(".") or "image"
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        candidate, number = name, 1
        while candidate.lower() in taken:
            number += 1
            candidate = f"{stem} ({number}){dot}{extension}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def _zip_time(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    if moment.year < 1980:  # the ZIP format's epoch
        moment = datetime(1980, 1, 1, tzinfo=UTC)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def build(
    s3: Any,
    entries: Sequence[Entry],
    bucket: str,
    key: str,
    *,
    part_size: int = PART_SIZE,
    chunk_size: int = CHUNK_SIZE,
    deadline: float | None = None,
) -> Built:
    """Stream ``entries`` into a ZIP at ``bucket``/``key``. ``deadline`` (``time.monotonic()``): past it, the
    upload is aborted and ``TooSlow`` raised. Any failure aborts the upload."""
    writer = MultipartWriter(s3, bucket, key, part_size=part_size)
    try:
        with zipfile.ZipFile(writer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for entry in entries:
                if deadline is not None and time.monotonic() > deadline:
                    raise TooSlow(too_slow_message(len(entries)))
                response = s3.get_object(Bucket=entry.bucket, Key=entry.key)
                info = zipfile.ZipInfo(entry.name, date_time=_zip_time(entry.modified))
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                info.file_size = int(response["ContentLength"])  # decides ZIP64 for this member up front
                body = response["Body"]
                try:
                    with archive.open(info, "w") as member:
                        for chunk in body.iter_chunks(chunk_size):
                            member.write(chunk)
                finally:
                    body.close()
        writer.complete()
    except BaseException:
        writer.abort()
        raise
    return Built(count=len(entries), bytes=writer.size, parts=writer.parts)


def too_slow_message(count: int) -> str:
    return (
        f"The {count} images could not be packed into one download in time. Choose fewer images (about half) "
        "and try again, or download them in several parts."
    )


# ---- the API's side --------------------------------------------------------------------------------------------


def select(conn: Any, tenant_id: str, job_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The caller's jobs in the order asked for (each once). An id that is not a job of this tenant (unknown,
    another tenant's, deleted, not even an id) is ``NotFound``, never told apart; a job without a result is a
    ``Conflict`` (``no_result``) whose sentence says how many are not ready."""
    wanted: dict[str, str] = {}  # normalised id → the id as sent
    for raw in job_ids:
        wanted.setdefault(_normalised(raw), raw)
    rows = conn.execute(
        "SELECT * FROM jobs WHERE tenant_id = %s AND id = ANY(%s::uuid[]) AND deleted_at IS NULL",
        (tenant_id, [job_id for job_id in wanted if _is_uuid(job_id)]),
    ).fetchall()
    found = {str(row["id"]): dict(row) for row in rows}
    missing = [raw for job_id, raw in wanted.items() if job_id not in found]
    if missing:
        raise NotFound(
            (
                "1 of the chosen images was not found; it may have been deleted. Refresh the page, choose "
                "again and download."
                if len(missing) == 1
                else f"{len(missing)} of the chosen images were not found; they may have been deleted. Refresh "
                "the page, choose again and download."
            ),
            details={"job_ids": missing},
        )
    chosen = [found[job_id] for job_id in wanted]
    waiting = [str(job["id"]) for job in chosen if job["status"] != "succeeded" or not job["result_key"]]
    if waiting:
        raise Conflict(
            (
                "1 of the chosen photos has no finished image yet (it is still being made, or it failed), so it "
                "cannot go into the download. Choose only finished images and try again."
                if len(waiting) == 1
                else f"{len(waiting)} of the chosen photos have no finished image yet (they are still being made, "
                "or they failed), so they cannot go into the download. Choose only finished images and try again."
            ),
            code="no_result",
            details={"job_ids": waiting},
        )
    return chosen


def _normalised(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def entries_of(bucket: str, rows: Sequence[dict[str, Any]]) -> list[Entry]:
    """One entry per job: its result under its download name (``jobs.result_filename``), repeats numbered."""
    names = unique_names([jobs.result_filename(row) for row in rows])
    return [
        Entry(bucket=bucket, key=str(row["result_key"]), name=name, modified=row.get("updated_at"))
        for row, name in zip(rows, names, strict=True)
    ]


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    count: int
    bytes: int
    expires_at: datetime


def create(
    s3: Any,
    bucket: str,
    tenant_id: str,
    rows: Sequence[dict[str, Any]],
    ttl_seconds: int,
    *,
    budget_seconds: float = TIME_BUDGET_SECONDS,
    now: datetime | None = None,
) -> Archive:
    """Build the ZIP of ``rows`` (succeeded jobs of ``tenant_id``, from ``select``) and sign its download."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    key = archive_key(tenant_id)
    built = build(s3, entries_of(bucket, rows), bucket, key, deadline=started + budget_seconds)
    filename = archive_filename(built.count, now)
    url = storage.presigned_get(s3, bucket, key, ttl_seconds, filename)
    return Archive(
        url=url,
        filename=filename,
        count=built.count,
        bytes=built.bytes,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
