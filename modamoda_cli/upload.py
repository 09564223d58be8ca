"""``modamoda upload FOLDER``: a folder of garment photos becomes one batch.

Order: create the batch (or reuse ``--batch``), upload the manifest first when there is one (it names the complete
set of files, so it seals the batch), then the photos in parallel (pre-signed POSTs into the batch's drop folder),
then seal the batch unless a manifest did. The folder's ``.modamoda-batch.json`` records the batch and every file
uploaded, after each file: running the same command again (after Ctrl-C, a network failure, a refused file)
resumes the same batch and uploads only what is missing. Files that are not images are skipped with a reason.
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import hashlib
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from modamoda_cli.api import ApiError, Cancelled, Client, CliError, NotLoggedIn, SessionExpired
from modamoda_cli.ui import Ui, human_bytes

STATE_NAME = ".modamoda-batch.json"
STATE_VERSION = 1
EXTENSIONS = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
MANIFESTS = {"manifest.json": "application/json", "manifest.csv": "text/csv"}
FINISHED = frozenset({"completed", "stopped", "cancelled"})
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


class UsageError(CliError):
    """Wrong arguments or input the user must fix (exit status 2)."""


class Interrupted(CliError):
    def __init__(self, summary: UploadSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary


def sniff(head: bytes, extension_type: str | None = None) -> str | None:
    """The image type that a file's first bytes show (None: not an image format the service accepts)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in _HEIF_BRANDS:
            if brand in (b"mif1", b"msf1") and extension_type in ("image/avif", "image/heif"):
                return extension_type
            return "image/heic" if brand.startswith(b"he") else "image/heif"
    return None


@dataclass
class Candidate:
    name: str
    path: Path
    size: int
    mtime_ns: int
    content_type: str


@dataclass
class Manifest:
    path: Path
    upload_name: str
    content_type: str
    files: list[str]
    sha256: str


@dataclass
class UploadOptions:
    batch_id: str | None = None
    name: str | None = None
    defaults: dict[str, Any] | None = None
    manifest: Path | None = None
    parallel: int = 8
    new: bool = False
    seal: bool = True


@dataclass
class UploadSummary:
    batch_id: str = ""
    batch_name: str = ""
    uploaded: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    manifest: str | None = None
    sealed: bool = False
    interrupted: bool = False
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "batch_name": self.batch_name,
            "uploaded": self.uploaded,
            "already_uploaded": self.already,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "failed": [{"file": f, "reason": r} for f, r in self.failed],
            "manifest": self.manifest,
            "sealed": self.sealed,
            "interrupted": self.interrupted,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


# ---- the folder ------------------------------------------------------------------------------------------------


def read_manifest(path: Path) -> Manifest:
    """A manifest file (``.json`` or ``.csv``): checked enough to name its files; the service validates its rows."""
    if not path.is_file():
        raise UsageError(f"the manifest {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise UsageError(f"the manifest {path} must be a .json or .csv file")
    data = path.read_bytes()
    names: list[str] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"the manifest {path} is not UTF-8 text") from None
    if suffix == ".json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"the manifest {path} is not valid JSON: {exc}") from None
        rows = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            raise UsageError(f'the manifest {path} must be an object with a "files" list')
        for i, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not isinstance(row.get("file"), str) or not row["file"].strip():
                raise UsageError(f'the manifest {path}: entry {i} has no "file" name')
            names.append(row["file"].strip())
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "file" not in [f.strip().lower() for f in reader.fieldnames]:
            raise UsageError(f'the manifest {path} needs a header row with a "file" column')
        column = next(f for f in reader.fieldnames if f.strip().lower() == "file")
        for i, row in enumerate(reader, 2):
            name = (row.get(column) or "").strip()
            if not name:
                if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    raise UsageError(f"the manifest {path}: line {i} has no file name")
                continue
            names.append(name)
    if not names:
        raise UsageError(f"the manifest {path} names no files")
    upload_name = "manifest.json" if suffix == ".json" else "manifest.csv"
    return Manifest(path, upload_name, MANIFESTS[upload_name], names, hashlib.sha256(data).hexdigest())


def scan(folder: Path, manifest: Manifest | None) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """The folder's own photos (not its sub-folders), sorted by name, and the files skipped with the reason."""
    candidates: list[Candidate] = []
    skipped: list[tuple[str, str]] = []
    manifest_path = manifest.path.resolve() if manifest else None
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name.startswith(".") or name.endswith(".part"):
            continue  # hidden files (the state file, .DS_Store, ...)
        if manifest_path is not None and entry.resolve() == manifest_path:
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            skipped.append(
                (name.encode("utf-8", "replace").decode(), "the file name is not valid UTF-8: rename it")
            )
            continue
        if entry.is_dir():
            skipped.append((name + "/", "a folder (only the folder's own files are uploaded)"))
            continue
        if not entry.is_file():
            skipped.append((name, "not a regular file"))
            continue
        extension_type = EXTENSIONS.get(entry.suffix.lower())
        if extension_type is None:
            if manifest is None and name.lower() in MANIFESTS:
                continue  # picked up as the manifest by the caller
            skipped.append(
                (
                    name,
                    f"not an image ({entry.suffix or 'no extension'}; accepted: JPEG, PNG, WebP, TIFF, AVIF, HEIC)",
                )
            )
            continue
        stat = entry.stat()
        if stat.st_size == 0:
            skipped.append((name, "empty file"))
            continue
        try:
            with entry.open("rb") as handle:
                head = handle.read(32)
        except OSError as exc:
            skipped.append((name, f"cannot be read: {exc.strerror or exc}"))
            continue
        content_type = sniff(head, extension_type)
        if content_type is None:
            skipped.append(
                (
                    name,
                    f"not an image: its content is not {extension_type.split('/')[1].upper()} (nor another accepted format)",
                )
            )
            continue
        candidates.append(Candidate(name, entry, stat.st_size, stat.st_mtime_ns, content_type))
    return candidates, skipped


# ---- the state file --------------------------------------------------------------------------------------------


class BatchState:
    """``.modamoda-batch.json``: the batch this folder goes to and the files already uploaded to it."""

    def __init__(self, folder: Path, data: dict[str, Any] | None = None) -> None:
        self.path = folder / STATE_NAME
        self.data: dict[str, Any] = data or {"version": STATE_VERSION, "files": {}}
        self.data.setdefault("files", {})
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: Path) -> BatchState:
        path = folder / STATE_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(folder)
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{path} cannot be read ({exc}); delete it or pass --new to start a new batch"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
            raise UsageError(f"{path} is not a batch state file; delete it or pass --new")
        return cls(folder, data)

    @property
    def batch_id(self) -> str | None:
        value = self.data.get("batch_id")
        return str(value) if value else None

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = self.data["files"]
        return files

    def save(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".modamoda-batch-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.data, handle, indent=1, sort_keys=True)
                handle.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def mark(self, candidate: Candidate, key: str | None) -> None:
        with self._lock:
            self.files[candidate.name] = {
                "size": candidate.size,
                "mtime_ns": candidate.mtime_ns,
                "key": key,
                "uploaded_at": _now(),
            }
            self._write()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---- the upload ------------------------------------------------------------------------------------------------


def find_manifest(folder: Path, explicit: Path | None) -> Manifest | None:
    if explicit is not None:
        return read_manifest(explicit)
    found = [folder / n for n in MANIFESTS if (folder / n).is_file()]
    if len(found) > 1:
        raise UsageError(f"{folder} has both manifest.json and manifest.csv: choose one with --manifest")
    return read_manifest(found[0]) if found else None


class Uploader:
    def __init__(self, client: Client, folder: Path, options: UploadOptions, ui: Ui) -> None:
        self.client, self.folder, self.options, self.ui = client, folder, options, ui
        self.summary = UploadSummary()
        self._fatal: BaseException | None = None
        self._lock = threading.Lock()
        self._seen: set[futures.Future[None]] = set()

    def run(self) -> UploadSummary:
        started = time.monotonic()
        try:
            return self._run()
        finally:
            self.summary.seconds = time.monotonic() - started

    def _run(self) -> UploadSummary:
        folder, options, summary = self.folder, self.options, self.summary
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
        state = self._state()
        manifest = find_manifest(folder, options.manifest)
        earlier = state.data.get("manifest") if state.batch_id else None
        if manifest is None and isinstance(earlier, dict) and earlier.get("path"):
            if not Path(earlier["path"]).is_file():
                raise UsageError(
                    f"this folder's batch was uploaded with the manifest {earlier['path']}, which is gone: "
                    "give it with --manifest again (or --new for a new batch)"
                )
            manifest = read_manifest(Path(earlier["path"]))  # resuming: the same manifest decides the files
        candidates, skipped = scan(folder, manifest)
        if manifest is not None:
            by_name = {c.name: c for c in candidates}
            missing = [n for n in manifest.files if n not in by_name]
            if missing:
                reasons = dict(skipped)
                shown = ", ".join(f"{n} ({reasons[n]})" if n in reasons else n for n in missing[:10])
                more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
                raise UsageError(
                    f"the manifest names {len(missing)} file(s) that are not images in {folder}: {shown}{more}"
                )
            listed = set(manifest.files)
            skipped += [(c.name, "not in the manifest") for c in candidates if c.name not in listed]
            candidates = [c for c in candidates if c.name in listed]
            summary.manifest = manifest.upload_name
        summary.skipped = skipped
        for name, reason in skipped:
            self.ui.warn(f"skipped {name}: {reason}")
        if not candidates:
            raise CliError(f"no images to upload in {folder}")

        batch = self._batch(state)
        summary.batch_id, summary.batch_name = str(batch["id"]), str(batch.get("name") or "")

        if manifest is not None:
            self._upload_manifest(state, manifest)
        pending: list[Candidate] = []
        for candidate in candidates:
            done = state.files.get(candidate.name)
            if done is None:
                pending.append(candidate)
                continue
            summary.already.append(candidate.name)
            if done.get("size") != candidate.size or done.get("mtime_ns") != candidate.mtime_ns:
                self.ui.warn(
                    f"{candidate.name} changed after it was uploaded to this batch; it is not sent again "
                    "(the batch has its job for this name already): use --new for a new batch"
                )
        if batch.get("status") in FINISHED:
            if pending:
                raise CliError(
                    f"batch {summary.batch_id} is {batch['status']} and takes no more files; "
                    f"{len(pending)} file(s) were not uploaded: `--new` starts a new batch"
                )
            summary.sealed = True
            return summary
        if summary.already:
            self.ui.info(f"resuming batch {summary.batch_id}: {len(summary.already)} file(s) uploaded before")

        self._upload_all(state, pending)
        if summary.interrupted:
            raise Interrupted(summary)
        if summary.failed:
            return summary
        if manifest is not None or batch.get("sealed") or state.data.get("sealed"):
            summary.sealed = True
        elif options.seal:
            self.client.seal(summary.batch_id)
            summary.sealed = True
        if summary.sealed and not state.data.get("sealed"):
            state.data["sealed"] = True
            state.save()
        return summary

    def _state(self) -> BatchState:
        options = self.options
        state = BatchState(self.folder) if options.new else BatchState.load(self.folder)
        if state.batch_id:
            if options.batch_id and options.batch_id != state.batch_id:
                raise UsageError(
                    f"{state.path} belongs to batch {state.batch_id}, not {options.batch_id}: "
                    "pass --new to upload this folder again to another batch"
                )
            if state.data.get("api_url") not in (None, self.client.api_url):
                raise UsageError(
                    f"{state.path} belongs to a batch of {state.data.get('api_url')}, not {self.client.api_url}: "
                    "pass --new to start a batch here"
                )
        return state

    def _batch(self, state: BatchState) -> dict[str, Any]:
        options = self.options
        batch_id = options.batch_id or state.batch_id
        if batch_id:
            try:
                batch = self.client.batch(batch_id)
            except ApiError as exc:
                if exc.status == 404:
                    raise CliError(
                        f"batch {batch_id} does not exist (or belongs to another account)"
                    ) from exc
                raise
            if state.batch_id and (options.defaults or options.name):
                self.ui.warn(
                    f"batch {batch_id} exists already: --name and the job options apply to new batches only"
                )
        else:
            batch = self.client.create_batch(options.name or self.folder.resolve().name, options.defaults)
            self.ui.info(f"created batch {batch['id']} ({batch.get('name') or ''})")
        if state.batch_id != str(batch["id"]):
            state.data.update(
                version=STATE_VERSION,
                batch_id=str(batch["id"]),
                batch_name=batch.get("name"),
                api_url=self.client.api_url,
                created_at=_now(),
                files={},
                manifest=None,
                sealed=False,
            )
        state.save()
        return batch

    def _upload_manifest(self, state: BatchState, manifest: Manifest) -> None:
        done = state.data.get("manifest")
        if isinstance(done, dict) and done.get("uploaded_at"):
            if done.get("sha256") != manifest.sha256:
                self.ui.warn(
                    "the manifest changed after it was uploaded to this batch; the batch keeps the first one "
                    "(use --new for a new batch)"
                )
            return
        candidate = Candidate(
            manifest.upload_name, manifest.path, manifest.path.stat().st_size, 0, manifest.content_type
        )
        self._send(candidate)
        state.data["manifest"] = {
            "name": manifest.upload_name,
            "path": str(manifest.path.resolve()),
            "sha256": manifest.sha256,
            "uploaded_at": _now(),
        }
        state.save()
        self.ui.info(f"uploaded the manifest ({len(manifest.files)} files)")

    def _send(self, candidate: Candidate) -> str | None:
        """One file: a pre-signed POST from the API, then the upload (a new POST once if the first expired)."""
        for attempt in (1, 2):
            slot = self.client.upload_slot(self.summary.batch_id, candidate.name, candidate.content_type)
            max_bytes = slot.get("max_bytes")
            if isinstance(max_bytes, int) and candidate.size > max_bytes:
                raise ApiError(
                    413,
                    "too_large",
                    f"{human_bytes(candidate.size)} is more than the {human_bytes(max_bytes)} allowed",
                    what=f"uploading {candidate.name}",
                )
            post = slot["upload"]
            try:
                self.client.post_form(
                    str(post["url"]),
                    dict(post.get("fields") or {}),
                    candidate.path,
                    candidate.name,
                    candidate.content_type,
                )
                return str(slot.get("key") or "") or None
            except ApiError as exc:
                if attempt == 1 and exc.status == 403 and "expire" in exc.message.lower():
                    continue  # the POST policy expired (slow start): ask for a new one
                raise
        return None

    def _upload_all(self, state: BatchState, pending: list[Candidate]) -> None:
        summary, client = self.summary, self.client
        if not pending:
            return
        total_bytes = sum(c.size for c in pending)
        progress = self.ui.progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[count]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        self.ui.info(
            f"uploading {len(pending)} file(s), {human_bytes(total_bytes)}, {self.options.parallel} at a time"
        )

        def one(candidate: Candidate, advance: Callable[[Candidate], None]) -> None:
            if client.cancel.is_set():
                raise Cancelled()
            key = self._send(candidate)
            state.mark(candidate, key)
            advance(candidate)

        with progress:
            task = progress.add_task("uploading", total=total_bytes or 1, files=0, count=len(pending))

            def advance(candidate: Candidate) -> None:
                with self._lock:
                    summary.uploaded.append(candidate.name)
                    summary.bytes += candidate.size
                    files = len(summary.uploaded)
                progress.update(task, advance=candidate.size, files=files)

            pool = futures.ThreadPoolExecutor(
                max_workers=max(1, self.options.parallel), thread_name_prefix="upload"
            )
            running = {pool.submit(one, c, advance): c for c in pending}
            try:
                self._collect(running)
            except KeyboardInterrupt:
                summary.interrupted = True
                client.cancel.set()
                for future in running:
                    future.cancel()
                self.ui.warn(
                    "stopping after the uploads in flight (Ctrl-C again to stop waiting: "
                    "those files are then sent again next time)"
                )
                try:
                    self._collect(running)
                except KeyboardInterrupt:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise Interrupted(summary) from None
            finally:
                pool.shutdown(wait=not summary.interrupted, cancel_futures=True)
        if self._fatal is not None:
            raise self._fatal

    def _collect(self, running: dict[futures.Future[None], Candidate]) -> None:
        pending = {f for f in running if not f.done() or f not in self._seen}
        while pending:
            done, pending = futures.wait(pending, timeout=0.2, return_when=futures.FIRST_COMPLETED)
            for future in done:
                self._seen.add(future)
                if future.cancelled():
                    continue
                error = future.exception()
                if error is None or isinstance(error, Cancelled):
                    continue
                name = running[future].name
                fatal = isinstance(error, NotLoggedIn | SessionExpired) or (
                    isinstance(error, ApiError)
                    and error.what.startswith("preparing")
                    and (error.status == 404 or error.code == "batch_closed")
                )
                if fatal:  # the session ended, the batch is gone or closed: stop everything
                    if self._fatal is None:
                        self._fatal = error
                    self.client.cancel.set()
                    continue
                if isinstance(error, ApiError):
                    reason = error.short()
                else:
                    reason = str(error) if isinstance(error, CliError) else f"{type(error).__name__}: {error}"
                self.summary.failed.append((name, reason))
                self.ui.warn(f"failed {name}: {reason}")
        self.summary.failed.sort()
