"""Batches (bulk): a tenant's drop folder ``drop/{tenant}/{folder}/`` in the drop bucket, one job per file.

* A batch is created by ``POST /v1/batches`` (folder = its id) or implicitly by the first file written into an
  unknown folder of an existing tenant (folder = name = the folder's name).
* Files: every object ``drop/{tenant}/{folder}/{file}`` (no sub-folders; dot files are ignored) becomes exactly one
  job, keyed by (batch, file name), whatever the number of S3 events or object versions: the first version claims
  the job (``jobs.claim_upload``) and names its execution as uploads do; later versions are ignored.
* Manifest: ``manifest.json`` or ``manifest.csv`` names the complete set of files with per-file mode, options,
  priority and SKU; it seals the batch. Each row is validated through ``JobOptions``; a bad row rejects its file
  (``manifest_invalid``, with the row's reason); a bad manifest as a whole rejects every file. An image whose
  event arrives before the manifest's looks for the manifest object first, so event order does not matter.
* Seal (no manifest): the files in the folder at that moment are the complete set.
* Finish: when sealed (or cancelled) and every expected file has a final job, in the transaction that makes the
  last job final: the batch gets ``finished_at``, its report is fixed (``batches.report``) and
  ``notifications.batch_finished`` is recorded, exactly once (the batch row is locked first by every transaction
  that ends one of its jobs, so the last one sees all the others). The report objects
  (``results/{tenant}/{batch}/report.json|csv``) are written after the commit with S3's ``If-None-Match: *``;
  a writer that crashed is replaced by the next event of the batch or the sweeper.
* Stop: a reservation that fails for lack of credits stops the batch in the same transaction: every job that has
  not reserved is rejected (``insufficient_credits``), files arriving later are rejected without a workflow;
  jobs already holding credits finish and are charged.
* Cancel: jobs not yet processing are cancelled (hold released, execution stopped, nothing charged); jobs
  processing finish; later files are ignored.

Lock order, everywhere: batch row → hold → tenant row → job row (deadlocks are still retried by ``db.atomic``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from functions.common import config, consistency, credits, db, jobs, lanes, storage
from functions.common.errors import (
    Conflict,
    InsufficientCredits,
    ModamodaError,
    NotFound,
    OnModelUnavailable,
)
from functions.common.models import (
    FINAL_STATUSES,
    MANIFEST_FILES,
    BatchCounts,
    BatchDefaults,
    BatchReportLinks,
    BatchRequest,
    BatchView,
    JobOptions,
    drop_filename,
)
from functions.common.observability import logger
from functions.common.pagination import decode_cursor, page

Conn = db.Conn
_FINAL = sorted(FINAL_STATUSES)
NOT_STARTED = ("awaiting_upload", "queued", "validated")  # not processing yet: cancellable, stoppable
REPORT_JSON = "report.json"
REPORT_CSV = "report.csv"
REPORT_COLUMNS = (
    "file",
    "sku",
    "job_id",
    "status",
    "mode",
    "error_code",
    "error_message",
    "cost",
    "result_key",
    "quality_score",
    "quality_threshold",
    "consistency_flagged",
    "consistency_reasons",
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class BatchCancelled(ModamodaError):
    """The job's batch was cancelled: it must not reserve credits or run."""

    code = "batch_cancelled"
    http_status = 409


# ---- keys ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DropKey:
    tenant_id: str
    folder: str
    filename: str


def parse_drop_key(key: str) -> DropKey | None:
    """``drop/{tenant}/{folder}/{file}`` → its parts; None for any other layout (sub-folders, dot files, names
    that are not plain file names)."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "drop":
        return None
    try:
        tenant_id = str(uuid.UUID(parts[1]))
    except ValueError:
        return None
    if parts[1] != tenant_id:  # the canonical spelling only: the prefix is the tenant's
        return None
    try:
        folder = drop_filename(parts[2])
        filename = drop_filename(parts[3])
    except ValueError:
        return None
    if len(folder) > 200:
        return None
    return DropKey(tenant_id, folder, filename)


def drop_prefix(tenant_id: str, folder: str) -> str:
    return f"drop/{tenant_id}/{folder}/"


def results_prefix(tenant_id: str, batch_id: str) -> str:
    return f"results/{tenant_id}/{batch_id}/"


def report_keys(tenant_id: str, batch_id: str) -> tuple[str, str]:
    """(csv key, json key) in the results bucket."""
    prefix = results_prefix(tenant_id, batch_id)
    return prefix + REPORT_CSV, prefix + REPORT_JSON


def result_key(job: dict[str, Any], extension: str) -> str:
    """Where a batch job's result goes: ``results/{tenant}/{batch}/{sku or file stem}-{mode}.{ext}``."""
    return f"{results_prefix(str(job['tenant_id']), str(job['batch_id']))}{job['result_name']}.{extension}"


def safe_name(value: str, limit: int = 80) -> str:
    """A file-name-safe version of a SKU or a file stem (letters, digits, ``._-``; may be empty)."""
    return _UNSAFE.sub("_", value).strip("_.-")[:limit].strip("_.-")


def _stem(filename: str) -> str:
    return filename.rsplit(".", 1)[0] if "." in filename.strip(".") else filename


# ---- batches: create, read, list, view --------------------------------------------------------------------------


def create(conn: Conn, tenant_id: str, created_by: str | None, request: BatchRequest) -> dict[str, Any]:
    batch_id = str(uuid.uuid4())
    row = conn.execute(
        "INSERT INTO batches (id, tenant_id, folder, name, defaults, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
        (
            batch_id,
            tenant_id,
            batch_id,
            request.name or batch_id,
            request.defaults.model_dump_json(),
            created_by,
        ),
    ).fetchone()
    assert row is not None
    return dict(row)


def get(conn: Conn, tenant_id: str, batch_id: str, *, lock: bool = False) -> dict[str, Any]:
    """A batch of this tenant; another tenant's batch is indistinguishable from a missing one."""
    try:
        uuid.UUID(batch_id)
    except ValueError:
        raise NotFound(f"batch {batch_id} not found") from None
    row = conn.execute(
        "SELECT * FROM batches WHERE id = %s AND tenant_id = %s" + (" FOR UPDATE" if lock else ""),
        (batch_id, tenant_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"batch {batch_id} not found")
    return dict(row)


def lock(conn: Conn, batch_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM batches WHERE id = %s FOR UPDATE", (batch_id,)).fetchone()
    if row is None:
        raise NotFound(f"batch {batch_id} not found")
    return dict(row)


def get_or_create_for_drop(conn: Conn, tenant_id: str, folder: str) -> dict[str, Any]:
    """The batch of a drop folder, locked; created implicitly (default defaults) for an unknown folder."""
    conn.execute(
        "INSERT INTO batches (id, tenant_id, folder, name, defaults) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, folder) DO NOTHING",
        (str(uuid.uuid4()), tenant_id, folder, folder, BatchDefaults().model_dump_json()),
    )
    row = conn.execute(
        "SELECT * FROM batches WHERE tenant_id = %s AND folder = %s FOR UPDATE", (tenant_id, folder)
    ).fetchone()
    assert row is not None
    return dict(row)


def find_for_drop(conn: Conn, tenant_id: str, folder: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM batches WHERE tenant_id = %s AND folder = %s", (tenant_id, folder)
    ).fetchone()
    return dict(row) if row else None


def lock_job_batch(conn: Conn, job_id: str) -> dict[str, Any] | None:
    """Lock the batch of a job (first, before its hold and row: the lock order) and return it; None if the job
    is not part of a batch."""
    row = conn.execute(
        "SELECT b.* FROM batches b WHERE b.id = (SELECT batch_id FROM jobs WHERE id = %s) FOR UPDATE OF b",
        (job_id,),
    ).fetchone()
    return dict(row) if row else None


def list_page(
    conn: Conn, tenant_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    params: list[Any] = [tenant_id]
    where = "tenant_id = %s"
    if cursor:
        created, last_id = decode_cursor(
            cursor, lambda v: (datetime.fromisoformat(v[0]), str(uuid.UUID(v[1])))
        )
        params += [created, last_id]
        where += " AND (created_at, id) < (%s, %s)"
    rows = conn.execute(
        f"SELECT * FROM batches WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    return page(rows, limit, lambda last: (last["created_at"].isoformat(), str(last["id"])))


@dataclass(frozen=True)
class Stats:
    counts: BatchCounts
    credits_spent: int


def stats(conn: Conn, batches: list[dict[str, Any]]) -> dict[str, Stats]:
    """Progress counts and credits spent of each batch (three queries, whatever the number of batches)."""
    ids = [str(b["id"]) for b in batches]
    if not ids:
        return {}
    by_status: dict[str, dict[str, int]] = {i: {} for i in ids}
    for row in conn.execute(
        "SELECT batch_id, status, count(*) AS n FROM jobs WHERE batch_id = ANY(%s::uuid[]) GROUP BY 1, 2",
        (ids,),
    ).fetchall():
        by_status[str(row["batch_id"])][row["status"]] = int(row["n"])
    spent = {
        str(row["batch_id"]): int(row["s"])
        for row in conn.execute(
            "SELECT j.batch_id, sum(h.amount) AS s FROM holds h JOIN jobs j ON j.id = h.job_id"
            " WHERE j.batch_id = ANY(%s::uuid[]) AND h.status = 'captured' GROUP BY 1",
            (ids,),
        ).fetchall()
    }
    missing = {
        str(row["id"]): int(row["n"])
        for row in conn.execute(
            "SELECT b.id, (SELECT count(*) FROM unnest(b.expected_files) AS f(name) WHERE NOT EXISTS"
            "   (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.filename = f.name)) AS n"
            " FROM batches b WHERE b.id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    }
    out: dict[str, Stats] = {}
    for batch in batches:
        key = str(batch["id"])
        n = by_status[key]
        expected = batch["expected_files"]
        counts = BatchCounts(
            expected=len(expected) if expected is not None else None,
            total=sum(n.values()),
            awaiting=missing.get(key, 0) + n.get("awaiting_upload", 0),
            queued=n.get("queued", 0) + n.get("validated", 0),
            processing=n.get("processing", 0),
            succeeded=n.get("succeeded", 0),
            failed=n.get("failed", 0),
            rejected=n.get("rejected", 0),
            cancelled=n.get("cancelled", 0),
        )
        out[key] = Stats(counts, spent.get(key, 0))
    return out


def to_view(batch: dict[str, Any], stat: Stats, report: BatchReportLinks | None = None) -> BatchView:
    return BatchView(
        id=str(batch["id"]),
        name=batch["name"],
        status=batch["status"],
        defaults=BatchDefaults.model_validate(batch["defaults"] or {}),
        sealed=batch["sealed_at"] is not None,
        counts=stat.counts,
        credits_spent=stat.credits_spent,
        drop_prefix=drop_prefix(str(batch["tenant_id"]), batch["folder"]),
        report=report,
        manifest_error=batch["manifest_error"],
        stop_reason=batch["stop_reason"],
        created_at=batch["created_at"],
        finished_at=batch["finished_at"],
    )


# ---- manifest ---------------------------------------------------------------------------------------------------

_OPTION_FIELDS = frozenset(JobOptions.model_fields)
_ROW_FIELDS = frozenset({"file", "sku", "mode", "priority", "options"}) | _OPTION_FIELDS
_DEFAULT_FIELDS = frozenset({"mode", "priority", "options"}) | _OPTION_FIELDS


class ManifestInvalid(Exception):
    """The manifest as a whole cannot be used (every file of the batch is then rejected)."""


@dataclass
class RawManifest:
    """A parsed manifest before it is resolved against the batch's defaults."""

    defaults: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (row number, fields)


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error.get("loc", ()) if p not in {"options"})
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)[:500]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_manifest(filename: str, data: bytes, max_files: int | None = None) -> RawManifest:
    """Parse ``manifest.json`` or ``manifest.csv``; raises ManifestInvalid when the file as a whole is unusable."""
    max_files = max_files or config.manifest_max_files()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestInvalid("the manifest is not UTF-8 text") from exc
    if "\x00" in text:
        raise ManifestInvalid("the manifest contains NUL characters")
    raw = _parse_json(text) if filename == "manifest.json" else _parse_csv(text)
    if not raw.rows:
        raise ManifestInvalid("the manifest names no files")
    if len(raw.rows) > max_files:
        raise ManifestInvalid(f"the manifest names {len(raw.rows)} files; at most {max_files} are allowed")
    return raw


def _parse_json(text: str) -> RawManifest:
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ManifestInvalid(f"the manifest is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(document, dict):
        raise ManifestInvalid('the manifest must be a JSON object {"defaults": {...}, "files": [...]}')
    unknown = sorted(set(document) - {"defaults", "files"})
    if unknown:
        raise ManifestInvalid(f"unknown top-level key(s): {', '.join(map(repr, unknown))[:200]}")
    defaults = document.get("defaults", {})
    files = document.get("files")
    if not isinstance(defaults, dict):
        raise ManifestInvalid('"defaults" must be an object')
    if not isinstance(files, list):
        raise ManifestInvalid('"files" must be a list of objects')
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, entry in enumerate(files, start=1):
        rows.append((number, entry if isinstance(entry, dict) else {"__not_an_object__": entry}))
    return RawManifest(defaults=defaults, rows=rows)


def _parse_csv(text: str) -> RawManifest:
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            raise ManifestInvalid("the manifest is empty")
        columns = [h.strip() for h in header]
        if "file" not in columns:
            raise ManifestInvalid('the CSV header must have a "file" column')
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise ManifestInvalid(f"duplicate column(s): {', '.join(duplicates)[:200]}")
        unknown = sorted(set(columns) - (_ROW_FIELDS - {"options"}))
        if unknown:
            raise ManifestInvalid(f"unknown column(s): {', '.join(map(repr, unknown))[:200]}")
        rows: list[tuple[int, dict[str, Any]]] = []
        for cells in reader:
            number = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            row: dict[str, Any] = {
                name: cell.strip() for name, cell in zip(columns, cells, strict=False) if cell.strip()
            }
            if len(cells) > len(columns):
                row["__extra_cells__"] = len(cells) - len(columns)
            rows.append((number, row))
    except csv.Error as exc:
        raise ManifestInvalid(f"the manifest is not valid CSV: {str(exc)[:200]}") from exc
    return RawManifest(rows=rows)


def _merge(base: BatchDefaults, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (mode, priority, options, or option fields at the top) over ``base``, as BatchDefaults input."""
    nested = values.get("options", {})
    if not isinstance(nested, dict):
        raise ValueError("options must be an object")
    options = {
        **base.options.model_dump(),
        **nested,
        **{k: v for k, v in values.items() if k in _OPTION_FIELDS},
    }
    return {
        "mode": values.get("mode", base.mode),
        "priority": values.get("priority", base.priority),
        "options": options,
    }


def _sku(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("sku must be a string")
    value = value.strip()
    if not value:
        return None
    if len(value) > 100:
        raise ValueError("sku must be at most 100 characters")
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value):
        raise ValueError("sku must not contain control characters")
    return value


def resolve_manifest(raw: RawManifest, batch_defaults: BatchDefaults) -> dict[str, Any]:
    """Resolve every row against the batch's and the manifest's defaults: ``{"files": {name: spec | error},
    "problems": [rows that name no usable file]}``. Raises ManifestInvalid when the manifest's defaults are
    invalid."""
    unknown = sorted(set(raw.defaults) - _DEFAULT_FIELDS)
    if unknown:
        raise ManifestInvalid(f"unknown default(s): {', '.join(map(repr, unknown))[:200]}")
    try:
        base = BatchDefaults.model_validate(_merge(batch_defaults, raw.defaults))
    except (ValidationError, ValueError) as exc:
        reason = _reason(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ManifestInvalid(f"the manifest's defaults are invalid: {reason}") from exc
    files: dict[str, dict[str, Any]] = {}
    rows_of: dict[str, list[int]] = {}
    problems: list[dict[str, Any]] = []
    for number, row in raw.rows:
        name = row.get("file")
        if "__not_an_object__" in row:
            problems.append({"row": number, "error": "the row is not an object"})
            continue
        if not isinstance(name, str):
            problems.append({"row": number, "error": 'the row names no file (a string "file" is required)'})
            continue
        try:
            name = drop_filename(name)
        except ValueError as exc:
            problems.append({"row": number, "file": name[:300], "error": f"file: {exc}"})
            continue
        if name in MANIFEST_FILES:
            problems.append({"row": number, "file": name, "error": "a manifest cannot name itself"})
            continue
        rows_of.setdefault(name, []).append(number)
        files[name] = _resolve_row(number, row, base)
    for name, numbers in rows_of.items():
        if len(numbers) > 1:
            files[name] = {
                "row": numbers[0],
                "error": f"listed more than once (rows {', '.join(map(str, numbers))})",
            }
    return {"files": files, "problems": problems}


def _resolve_row(number: int, row: dict[str, Any], base: BatchDefaults) -> dict[str, Any]:
    if "__extra_cells__" in row:
        return {"row": number, "error": "the row has more cells than the header has columns"}
    unknown = sorted(set(row) - _ROW_FIELDS)
    if unknown:
        return {"row": number, "error": f"unknown field(s): {', '.join(map(repr, unknown))}"[:500]}
    try:
        sku = _sku(row.get("sku"))
        spec = BatchDefaults.model_validate(
            _merge(base, {k: v for k, v in row.items() if k not in {"file", "sku"}})
        )
    except ValidationError as exc:
        return {"row": number, "error": _reason(exc)}
    except ValueError as exc:
        return {"row": number, "error": str(exc)[:500]}
    return {
        "row": number,
        "sku": sku,
        "mode": spec.mode,
        "priority": spec.priority,
        "options": spec.options.model_dump(),
    }


# ---- drop events --------------------------------------------------------------------------------------------------


def tenant_exists(tenant_id: str) -> bool:
    with db.transaction(tenant_id) as conn:
        return conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is not None


def wants_manifest(drop: DropKey) -> bool:
    """Whether an image's event should look for a manifest object first: the batch is new, or open with none."""
    with db.transaction(drop.tenant_id) as conn:
        batch = find_for_drop(conn, drop.tenant_id, drop.folder)
    return batch is None or (
        batch["manifest"] is None and batch["sealed_at"] is None and batch["status"] == "open"
    )


def read_manifest(
    s3: Any, bucket: str, key: str, version_id: str | None
) -> tuple[bytes | None, str | None, str]:
    """(bytes, version id, error) of a manifest object; bytes None with a reason when it cannot be used."""
    extra = {"VersionId": version_id} if version_id else {}
    try:
        head = s3.head_object(Bucket=bucket, Key=key, **extra)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NoSuchVersion"}:
            return None, version_id, "missing"
        raise
    version = head.get("VersionId") or version_id
    limit = config.manifest_max_bytes()
    if int(head["ContentLength"]) > limit:
        return None, version, f"the manifest is larger than {limit} bytes"
    body = s3.get_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))["Body"].read()
    return body, version, ""


def receive_manifest(
    conn: Conn, drop: DropKey, key: str, version_id: str | None, data: bytes | None, error: str
) -> str:
    """Record a batch's manifest (the first one wins; replays and later versions change nothing). Returns what
    happened: recorded, invalid, ignored."""
    batch = get_or_create_for_drop(conn, drop.tenant_id, drop.folder)
    if batch["manifest"] is not None or batch["manifest_error"] is not None:
        recorded = batch["manifest"] or {}
        if recorded.get("key") != key or recorded.get("version") != version_id:
            logger.warning("a manifest was already recorded; this one is ignored", extra={"key": key})
        return "ignored"
    if batch["finished_at"] is not None or batch["status"] == "cancelled" or batch["sealed_at"] is not None:
        logger.warning("manifest for a sealed, cancelled or finished batch ignored", extra={"key": key})
        return "ignored"
    try:
        if data is None:
            raise ManifestInvalid(error or "the manifest could not be read")
        raw = parse_manifest(drop.filename, data)
        resolved = resolve_manifest(raw, BatchDefaults.model_validate(batch["defaults"] or {}))
    except ManifestInvalid as exc:
        conn.execute(
            "UPDATE batches SET manifest_error = %s, updated_at = now() WHERE id = %s",
            (str(exc)[:1000], batch["id"]),
        )
        logger.info("invalid manifest", extra={"key": key, "reason": str(exc)[:200]})
        return "invalid"
    manifest = {"key": key, "version": version_id, **resolved}
    names = sorted(resolved["files"])
    conn.execute(
        "UPDATE batches SET manifest = %s, expected_files = %s, sealed_at = now(), updated_at = now(),"
        " status = CASE WHEN status = 'open' THEN 'sealed' ELSE status END WHERE id = %s",
        (json.dumps(manifest), names, batch["id"]),
    )
    # Files whose events came before the manifest's (it was not in S3 yet) keep their settings; they get their
    # SKU (and so their result name) unless they have already finished.
    for job in conn.execute(
        "SELECT id, filename, mode FROM jobs WHERE batch_id = %s AND sku IS NULL AND NOT (status = ANY(%s))",
        (batch["id"], _FINAL),
    ).fetchall():
        sku = resolved["files"].get(job["filename"], {}).get("sku")
        if sku:
            name = _unique_result_name(conn, str(batch["id"]), sku, job["filename"], job["mode"])
            conn.execute("UPDATE jobs SET sku = %s, result_name = %s WHERE id = %s", (sku, name, job["id"]))
    maybe_finish(conn, lock(conn, str(batch["id"])))
    return "recorded"


@dataclass(frozen=True)
class FileOutcome:
    action: Literal["start", "rejected", "ignored"]
    job: dict[str, Any] | None = None
    batch_id: str | None = None


@dataclass(frozen=True)
class _Spec:
    mode: str
    options: dict[str, Any]
    priority: str
    sku: str | None


def _spec_for(batch: dict[str, Any], filename: str) -> _Spec | tuple[str, str]:
    """The settings of a new file, or (error code, message) when the batch refuses it."""
    if batch["status"] == "stopped":
        return "insufficient_credits", (
            f"the batch was stopped because the account ran out of credits ({batch['stop_reason'] or ''}); "
            "nothing was charged for this file"
        )
    if batch["manifest_error"]:
        return "manifest_invalid", f"the batch's manifest is invalid: {batch['manifest_error']}"
    manifest = batch["manifest"]
    if manifest is not None:
        entry = manifest["files"].get(filename)
        if entry is None:
            return "not_in_manifest", "the batch's manifest does not list this file"
        if "error" in entry:
            return "manifest_invalid", f"manifest row {entry.get('row')}: {entry['error']}"
        return _Spec(entry["mode"], entry["options"], entry["priority"], entry.get("sku"))
    if batch["sealed_at"] is not None and filename not in (batch["expected_files"] or []):
        return "batch_sealed", "the batch was sealed before this file arrived"
    defaults = BatchDefaults.model_validate(batch["defaults"] or {})
    return _Spec(defaults.mode, defaults.options.model_dump(), defaults.priority, None)


def _unique_result_name(conn: Conn, batch_id: str, sku: str | None, filename: str, mode: str) -> str:
    """``{sku or file stem}-{mode}``, made unique within the batch (``{base}_2-{mode}``, ...). The caller holds
    the batch lock, so no other transaction picks a name meanwhile."""
    base = safe_name(sku or "") or safe_name(_stem(filename)) or "file"
    taken = {
        row["result_name"]
        for row in conn.execute(
            "SELECT result_name FROM jobs WHERE batch_id = %s AND result_name LIKE %s",
            (batch_id, base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
        ).fetchall()
    }
    name, n = f"{base}-{mode}", 1
    while name in taken:
        n += 1
        name = f"{base}_{n}-{mode}"
    return name


def _insert_job(
    conn: Conn, batch: dict[str, Any], drop: DropKey, bucket: str, key: str, spec: _Spec
) -> dict[str, Any] | None:
    name = _unique_result_name(conn, str(batch["id"]), spec.sku, drop.filename, spec.mode)
    row = conn.execute(
        "INSERT INTO jobs (id, tenant_id, batch_id, mode, options, priority, lane, status, filename,"
        "                  source_bucket, source_key, sku, result_name, stages)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 'awaiting_upload', %s, %s, %s, %s, %s,"
        "         jsonb_build_object('awaiting_upload', to_char(now() AT TIME ZONE 'UTC',"
        '                            \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')))'
        " ON CONFLICT (batch_id, filename) DO NOTHING RETURNING *",
        (
            str(uuid.uuid4()),
            drop.tenant_id,
            batch["id"],
            spec.mode,
            json.dumps(spec.options),
            spec.priority,
            lanes.lane_for(spec.priority, batch),  # normal for a batch the API made, bulk for a drop folder's
            drop.filename,
            bucket,
            key,
            spec.sku,
            name,
        ),
    ).fetchone()
    return dict(row) if row else None


def receive_file(
    conn: Conn,
    drop: DropKey,
    bucket: str,
    key: str,
    version_id: str | None,
    execution_name: Any,
) -> FileOutcome:
    """Create-or-get the file's job and claim it for this object version, or reject it (no workflow).

    ``execution_name(job_id)`` names the workflow; the claimed job is returned for the caller to start it after
    the commit (``FileOutcome.action == "start"``). Replays of the same version claim again; other versions and
    files of cancelled or finished batches are ignored.
    """
    batch = get_or_create_for_drop(conn, drop.tenant_id, drop.folder)
    batch_id = str(batch["id"])
    existing = conn.execute(
        "SELECT * FROM jobs WHERE batch_id = %s AND filename = %s", (batch_id, drop.filename)
    ).fetchone()
    if existing is None:
        if batch["status"] == "cancelled" or batch["finished_at"] is not None:
            logger.info("file for a cancelled or finished batch ignored", extra={"key": key})
            return FileOutcome("ignored", batch_id=batch_id)
        spec = _spec_for(batch, drop.filename)
        if isinstance(spec, tuple):  # refused: the job records why, nothing runs, nothing is charged
            defaults = BatchDefaults.model_validate(batch["defaults"] or {})
            settings = _Spec(defaults.mode, defaults.options.model_dump(), defaults.priority, None)
            job = _insert_job(conn, batch, drop, bucket, key, settings)
            assert job is not None  # the batch lock serialises the files of a batch
            code, message = spec
            finish_job(conn, str(job["id"]), "rejected", batch=batch, error_code=code, error_message=message)
            return FileOutcome("rejected", job=job, batch_id=batch_id)
        job = _insert_job(conn, batch, drop, bucket, key, spec)
        assert job is not None
        if spec.mode == "on-model" and not config.on_model_available():  # no weights on this deployment
            unavailable = OnModelUnavailable()
            finish_job(
                conn,
                str(job["id"]),
                "rejected",
                batch=batch,
                error_code=unavailable.code,
                error_message=unavailable.message,
            )
            return FileOutcome("rejected", job=job, batch_id=batch_id)
    else:
        job = dict(existing)
    claimed = jobs.claim_upload(
        conn, str(job["id"]), drop.tenant_id, job["source_key"], version_id, execution_name(str(job["id"]))
    )
    if claimed is None:
        logger.info("file already handled (another version or a final job)", extra={"key": key})
        return FileOutcome("ignored", job=job, batch_id=batch_id)
    return FileOutcome("start", job=jobs.load(conn, str(job["id"])), batch_id=batch_id)


# ---- seal, cancel, stop, finish ----------------------------------------------------------------------------------


def list_drop_files(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The file names directly under ``prefix`` that would become jobs (no manifest, dot files, sub-folders)."""
    names: list[str] = []
    for listing in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in listing.get("Contents", ()):
            rest = entry["Key"][len(prefix) :]
            try:
                name = drop_filename(rest)
            except ValueError:
                continue
            if name not in MANIFEST_FILES:
                names.append(name)
    return names


def seal(conn: Conn, batch: dict[str, Any], listed: list[str]) -> bool:
    """No more files: the ones in the folder now (and any already received) are the complete set. A batch with
    a manifest is sealed already; a sealed, cancelled or finished one is left alone (idempotent)."""
    if batch["sealed_at"] is not None or batch["finished_at"] is not None or batch["status"] == "cancelled":
        return False
    received = [
        r["filename"]
        for r in conn.execute("SELECT filename FROM jobs WHERE batch_id = %s", (batch["id"],)).fetchall()
    ]
    conn.execute(
        "UPDATE batches SET sealed_at = now(), expected_files = %s, updated_at = now(),"
        " status = CASE WHEN status = 'open' THEN 'sealed' ELSE status END WHERE id = %s",
        (sorted(set(listed) | set(received)), batch["id"]),
    )
    maybe_finish(conn, lock(conn, str(batch["id"])))
    return True


def cancel(conn: Conn, batch: dict[str, Any]) -> list[str]:
    """Cancel the (locked) batch: jobs not yet processing end ``cancelled`` (hold released, nothing charged).
    Returns the execution names to stop after the commit. Idempotent; a finished batch is a Conflict."""
    if batch["status"] == "cancelled":
        return []
    if batch["finished_at"] is not None:
        raise Conflict(f"batch {batch['id']} has finished ({batch['status']})", code="batch_finished")
    conn.execute(
        "UPDATE batches SET status = 'cancelled', sealed_at = COALESCE(sealed_at, now()), updated_at = now()"
        " WHERE id = %s",
        (batch["id"],),
    )
    batch = lock(conn, str(batch["id"]))
    executions: list[str] = []
    for job in conn.execute(
        "SELECT id, execution_name FROM jobs WHERE batch_id = %s AND status = ANY(%s) ORDER BY id",
        (batch["id"], list(NOT_STARTED)),
    ).fetchall():
        job_id = str(job["id"])
        credits.release(conn, job_id, reason="batch_cancelled")
        if (
            finish_job(
                conn,
                job_id,
                "cancelled",
                batch=batch,
                check_batch=False,
                error_code="batch_cancelled",
                error_message="the batch was cancelled before this file was processed; nothing was charged",
            )
            and job["execution_name"]
        ):
            executions.append(str(job["execution_name"]))
    maybe_finish(conn, batch)
    return executions


def ensure_may_reserve(conn: Conn, batch: dict[str, Any], job_id: str) -> None:
    """Refuse (before anything is held) a reservation for a job of a stopped or cancelled batch, or a job that
    has already ended (rejected by a stop meanwhile)."""
    if credits.get_hold(conn, job_id) is not None:
        return  # a replay after the reservation succeeded: the job holds its credits and goes on
    job = jobs.load(conn, job_id)
    if job["status"] in FINAL_STATUSES:
        if job["status"] == "cancelled":
            raise BatchCancelled(job["error_message"] or "the batch was cancelled")
        raise InsufficientCredits(job["error_message"] or "the batch was stopped")
    if batch["status"] == "cancelled":
        raise BatchCancelled("the batch was cancelled")
    if batch["status"] == "stopped":
        raise InsufficientCredits(f"the batch was stopped: {batch['stop_reason'] or 'insufficient credits'}")


def stop(conn: Conn, batch: dict[str, Any], job_id: str, reason: str) -> None:
    """The job could not reserve its credits: stop the (locked) batch in the same transaction. That job and
    every job of the batch that holds no credits are rejected ``insufficient_credits``; jobs holding credits go
    on and are charged when they succeed."""
    stop_reason = f"file {jobs.load(conn, job_id)['filename']!r} could not reserve its credits: {reason}"[
        :1000
    ]
    conn.execute(
        "UPDATE batches SET status = 'stopped', stop_reason = %s, updated_at = now()"
        " WHERE id = %s AND status IN ('open', 'sealed')",
        (stop_reason, batch["id"]),
    )
    batch = lock(conn, str(batch["id"]))
    finish_job(
        conn,
        job_id,
        "rejected",
        batch=batch,
        check_batch=False,
        error_code="insufficient_credits",
        error_message=f"{reason}; the batch was stopped and nothing was charged for this file",
    )
    for job in conn.execute(
        "SELECT j.id FROM jobs j WHERE j.batch_id = %s AND j.status = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.job_id = j.id) ORDER BY j.id",
        (batch["id"], list(NOT_STARTED)),
    ).fetchall():
        finish_job(
            conn,
            str(job["id"]),
            "rejected",
            batch=batch,
            check_batch=False,
            error_code="insufficient_credits",
            error_message="the batch was stopped because the account ran out of credits "
            f"({stop_reason}); nothing was charged for this file",
        )
    maybe_finish(conn, batch)


def finish_job(
    conn: Conn,
    job_id: str,
    status: str,
    *,
    batch: dict[str, Any] | None = None,
    check_batch: bool = True,
    **fields: Any,
) -> dict[str, Any] | None:
    """Make a job final (``jobs.transition``) and, if it moved: record ``notifications.job_finished`` in this
    transaction and, for a batch job, finish the batch if it was the last one (the caller holds the batch lock,
    taken before the job's hold and row). Returns the final job, or None if it was final already."""
    from functions.common import notifications

    if not jobs.transition(conn, job_id, status, **fields):
        return None
    job = jobs.load(conn, job_id)
    notifications.job_finished(conn, job)
    if job.get("batch_id") and check_batch:
        maybe_finish(conn, batch if batch is not None else lock(conn, str(job["batch_id"])))
    return job


def record_metrics(conn: Conn, job_id: str, metrics: dict[str, float] | None) -> None:
    if metrics:
        conn.execute("UPDATE jobs SET metrics = %s WHERE id = %s", (json.dumps(metrics), job_id))


def maybe_finish(conn: Conn, batch: dict[str, Any]) -> dict[str, Any] | None:
    """Finish the (locked) batch if it is complete: sealed or cancelled, every job final and, unless cancelled,
    every expected file received. Fixes the report and records ``notifications.batch_finished``; returns the
    report, or None when the batch is not (or was already) finished."""
    from functions.common import notifications

    if batch["finished_at"] is not None:
        return None
    cancelled = batch["status"] == "cancelled"
    if batch["sealed_at"] is None and not cancelled:
        return None
    pending = conn.execute(
        "SELECT count(*) FILTER (WHERE NOT (status = ANY(%s))) AS open,"
        " (SELECT count(*) FROM unnest(%s::text[]) AS f(name) WHERE NOT EXISTS"
        "   (SELECT 1 FROM jobs j WHERE j.batch_id = %s AND j.filename = f.name)) AS missing"
        " FROM jobs WHERE batch_id = %s",
        (_FINAL, batch["expected_files"] or [], batch["id"], batch["id"]),
    ).fetchone()
    assert pending is not None
    if pending["open"] or (pending["missing"] and not cancelled):
        return None
    status = "completed" if batch["status"] in {"open", "sealed"} else batch["status"]
    finished = conn.execute(
        "UPDATE batches SET status = %s, finished_at = now(), updated_at = now(), report = '{}'"
        " WHERE id = %s AND finished_at IS NULL RETURNING *",
        (status, batch["id"]),
    ).fetchone()
    if finished is None:
        return None
    finished = dict(finished)
    report = build_report(conn, finished)
    conn.execute("UPDATE batches SET report = %s WHERE id = %s", (json.dumps(report), finished["id"]))
    view = to_view(finished, stats(conn, [finished])[str(finished["id"])])
    notifications.batch_finished(
        conn,
        {
            **view.model_dump(mode="json", exclude={"report", "defaults"}),
            "tenant_id": str(finished["tenant_id"]),
            "created_by": finished["created_by"],
        },
        report,
    )
    logger.info("batch finished", extra={"batch_id": str(finished["id"]), "status": status})
    return report


def build_report(conn: Conn, batch: dict[str, Any]) -> dict[str, Any]:
    """The batch report (JSON-ready): per file its SKU, job, status, error, cost and result; totals; and the
    consistency check over the succeeded results."""
    tenant_id, batch_id = str(batch["tenant_id"]), str(batch["id"])
    rows = conn.execute(
        "SELECT j.id, j.filename, j.sku, j.status, j.mode, j.error_code, j.error_message, j.result_key,"
        " j.metrics, j.quality, CASE WHEN h.status = 'captured' THEN h.amount ELSE 0 END AS charged"
        " FROM jobs j LEFT JOIN holds h ON h.job_id = j.id WHERE j.batch_id = %s ORDER BY j.filename",
        (batch_id,),
    ).fetchall()
    files: list[dict[str, Any]] = [
        {
            "file": r["filename"],
            "sku": r["sku"],
            "job_id": str(r["id"]),
            "status": r["status"],
            "mode": r["mode"],
            "error_code": r["error_code"],
            "error_message": r["error_message"],
            "cost": int(r["charged"]),
            "result_key": r["result_key"] if r["status"] == "succeeded" else None,
            "quality_score": (r["quality"] or {}).get("score"),
            "quality_threshold": (r["quality"] or {}).get("threshold"),
        }
        for r in rows
    ]
    received = {r["filename"] for r in rows}
    manifest_files = (batch["manifest"] or {}).get("files", {})
    for name in sorted(set(batch["expected_files"] or []) - received):
        files.append(
            {
                "file": name,
                "sku": manifest_files.get(name, {}).get("sku"),
                "job_id": None,
                "status": "not_received",
                "mode": manifest_files.get(name, {}).get("mode"),
                "error_code": None,
                "error_message": "the file never arrived in the drop folder",
                "cost": 0,
                "result_key": None,
                "quality_score": None,
                "quality_threshold": None,
            }
        )
    files.sort(key=lambda f: f["file"])
    measured = [
        {"id": r["filename"], **(r["metrics"] or {})}
        for r in rows
        if r["status"] == "succeeded" and r["metrics"]
    ]
    check = consistency.consistency_report(measured)
    check["measured_on"] = "result images (see functions/common/consistency.py)"
    flags = {image["id"]: image for image in check["images"]}
    for entry in files:
        image = flags.get(entry["file"])
        entry["consistency_flagged"] = bool(image and image["flagged"])
        entry["consistency_reasons"] = list(image["reasons"]) if image else []
    counts = stats(conn, [batch])[batch_id]
    csv_key, json_key = report_keys(tenant_id, batch_id)
    return {
        "batch": {
            "id": batch_id,
            "name": batch["name"],
            "status": batch["status"],
            "drop_prefix": drop_prefix(tenant_id, batch["folder"]),
            "results_prefix": results_prefix(tenant_id, batch_id),
            "created_at": batch["created_at"].isoformat(),
            "finished_at": batch["finished_at"].isoformat() if batch["finished_at"] else None,
            "manifest_error": batch["manifest_error"],
            "manifest_problems": (batch["manifest"] or {}).get("problems", []),
            "stop_reason": batch["stop_reason"],
        },
        "totals": {**counts.counts.model_dump(), "credits_spent": counts.credits_spent, "files": len(files)},
        "files": files,
        "consistency": check,
        "csv_key": csv_key,
        "json_key": json_key,
    }


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + text
    return text


def report_csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for entry in report["files"]:
        row = dict(entry)
        row["consistency_reasons"] = "; ".join(entry.get("consistency_reasons") or [])
        row["consistency_flagged"] = "yes" if entry.get("consistency_flagged") else "no"
        writer.writerow([_cell(row.get(column)) for column in REPORT_COLUMNS])
    return out.getvalue().encode("utf-8")


def _put_once(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> bool:
    """Create the object unless it exists (``If-None-Match: *``); False when it was there already."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"PreconditionFailed", "412"}:
            return False
        raise
    return True


def flush_report(s3: Any, tenant_id: str, batch_id: str) -> bool:
    """Write the report objects of a finished batch once, from the report fixed when it finished. Returns
    whether this call completed the write (False: not finished, or written already)."""
    with db.transaction(tenant_id) as conn:
        row = conn.execute(
            "SELECT report FROM batches WHERE id = %s AND finished_at IS NOT NULL AND report_written_at IS NULL",
            (batch_id,),
        ).fetchone()
    if row is None:
        return False
    report = row["report"]
    bucket = config.results_bucket()
    _put_once(s3, bucket, report["json_key"], json.dumps(report, indent=2).encode(), "application/json")
    _put_once(s3, bucket, report["csv_key"], report_csv(report), "text/csv; charset=utf-8")
    with db.transaction(tenant_id) as conn:
        done = conn.execute(
            "UPDATE batches SET report_written_at = now() WHERE id = %s AND report_written_at IS NULL RETURNING id",
            (batch_id,),
        ).fetchone()
    return done is not None


def after_commit(tenant_id: str, batch_id: str | None, s3: Any = None) -> None:
    """What follows a transaction that may have finished a batch: write its report, send the notifications."""
    from functions.common import aws, notifications

    if batch_id:
        flush_report(s3 if s3 is not None else aws.client("s3"), tenant_id, batch_id)
    notifications.dispatch(tenant_id)


def flush_unwritten(s3: Any = None, limit: int = 50) -> int:
    """The sweeper's share: write the reports a crashed writer left unwritten."""
    from functions.common import aws

    written = 0
    for row in db.system_rows("SELECT batch_id, tenant_id FROM app_unwritten_batch_reports(%s)", (limit,)):
        s3 = s3 if s3 is not None else aws.client("s3")
        if flush_report(s3, str(row["tenant_id"]), str(row["batch_id"])):
            written += 1
    return written


def report_links(s3: Any, batch: dict[str, Any]) -> BatchReportLinks | None:
    if batch["report_written_at"] is None:
        return None
    csv_key, json_key = report_keys(str(batch["tenant_id"]), str(batch["id"]))
    bucket, ttl = config.results_bucket(), config.result_url_ttl_seconds()
    return BatchReportLinks(
        csv_url=storage.presigned_get(s3, bucket, csv_key, ttl, REPORT_CSV),
        json_url=storage.presigned_get(s3, bucket, json_key, ttl, REPORT_JSON),
    )
