"""Customer notifications: signed webhooks for finished jobs and batches, and an e-mail for a finished batch.

Recording is an outbox: ``job_finished`` / ``batch_finished`` insert rows into ``notifications`` inside the
transaction that makes the job or batch final, so each event is recorded exactly once (its id is derived from the
tenant, channel and subject, and a replay inserts nothing). Delivery happens after commit.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import math
import os
import random
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from functions.common import aws, config, db, refusals
from functions.common.errors import ConfigError, Conflict, NotFound, ValidationFailed
from functions.common.models import DELIVERY_STATUSES, WebhookDelivery, WebhookDeliveryPage
from functions.common.observability import logger
from functions.common.pagination import decode_cursor, page

# Event ids are uuid5 of (tenant, channel, subject) in this namespace: a replayed transition records nothing twice.
_NAMESPACE = uuid.UUID("6d6f6461-6d6f-6461-8e6f-746966790000")
API_KEY_EMAIL_DOMAIN = "@api-keys.modamoda.invalid"
JOB_EVENT_TYPES = {
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "rejected": "job.rejected",
    "cancelled": "job.cancelled",
}
BATCH_EVENT_TYPES = {
    "completed": "batch.completed",
    "stopped": "batch.stopped",
    "cancelled": "batch.cancelled",
}


def event_id(tenant_id: str, channel: str, subject: str) -> str:
    """The deterministic id of the event about ``subject`` (``job:<id>``, ``batch:<id>``) on ``channel``."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}:{channel}:{subject}"))


def _plain(value: Any) -> Any:
    """JSON-ready copy of a DB row value (UUIDs, datetimes, decimals)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _record(
    conn: db.Conn,
    tenant_id: str,
    channel: str,
    event_type: str,
    subject: str,
    data: dict[str, Any],
    recipient: str | None = None,
) -> str | None:
    """Insert one outbox row (nothing if it exists). Returns the event id when a row was inserted."""
    ident = event_id(tenant_id, channel, subject)
    created = conn.execute("SELECT now() AS now").fetchone()
    assert created is not None
    payload: dict[str, Any] = {
        "id": ident,
        "type": event_type,
        "created_at": _plain(created["now"]),
        "data": _plain(data),
    }
    row = conn.execute(
        "INSERT INTO notifications (id, tenant_id, channel, type, subject, payload, recipient, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id",
        (ident, tenant_id, channel, event_type, subject, json.dumps(payload), recipient, created["now"]),
    ).fetchone()
    return ident if row is not None else None


def _webhook_configured(conn: db.Conn, tenant_id: str) -> bool:
    row = conn.execute("SELECT webhook_url FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return bool(row and row["webhook_url"])


def job_data(job: dict[str, Any]) -> dict[str, Any]:
    """What a job event tells the customer (no URLs: fetch ``GET /v1/jobs/{id}`` for a fresh result link)."""
    error = None
    if job.get("error_code"):
        error = {
            "code": job["error_code"],
            "message": refusals.shown(job.get("error_message"), client_error=job.get("status") == "rejected"),
        }
    data: dict[str, Any] = {
        "id": job["id"],
        "status": job["status"],
        "mode": job.get("mode"),
        "filename": job.get("filename"),
        "priority": job.get("priority") or "normal",
        "cost": job.get("cost"),
        "error": error,
        "has_result": bool(job.get("result_key")) and job["status"] == "succeeded",
        "created_at": job.get("created_at"),
        "finished_at": job.get("updated_at"),
    }
    for optional in ("batch_id", "sku"):
        if optional in job:
            data[optional] = job[optional]
    return data


def job_finished(conn: db.Conn, job: dict[str, Any]) -> None:
    """Record ``job.<status>`` for the tenant's webhook in the transaction that made ``job`` final.

    Nothing is recorded when the tenant has no webhook URL, or for a status that is not final."""
    event_type = JOB_EVENT_TYPES.get(str(job.get("status")))
    if event_type is None:
        return
    tenant_id = str(job["tenant_id"])
    if not _webhook_configured(conn, tenant_id):
        return
    _record(conn, tenant_id, "webhook", event_type, f"job:{job['id']}", job_data(job))


COGNITO_RECIPIENT = "cognito-sub:"  # a recipient looked up in the user pool when the e-mail is sent


def _mailbox(value: Any) -> str | None:
    if isinstance(value, str) and "@" in value and not value.endswith(API_KEY_EMAIL_DOMAIN):
        return value
    return None


def owner_recipient(conn: db.Conn, tenant_id: str, batch: dict[str, Any] | None = None) -> str | None:
    """Where a batch's e-mail goes: the address the batch names, else its creator's (``created_by``, a Cognito
    subject) or the tenant's first person's (API keys have no mailbox). Access tokens carry no e-mail address, so
    when the database knows none the recipient is ``cognito-sub:<sub>``, looked up in the user pool at send time."""
    batch = batch or {}
    for key in ("owner_email", "email"):
        if _mailbox(batch.get(key)):
            return str(batch[key])
    person = (
        "SELECT u.sub, u.email FROM users u WHERE u.tenant_id = %s"
        " AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.sub = u.sub)"
    )
    row = None
    if batch.get("created_by"):
        row = conn.execute(person + " AND u.sub = %s", (tenant_id, str(batch["created_by"]))).fetchone()
    if row is None:
        row = conn.execute(person + " ORDER BY u.created_at, u.sub LIMIT 1", (tenant_id,)).fetchone()
    if row is None:
        return None
    return _mailbox(row["email"]) or f"{COGNITO_RECIPIENT}{row['sub']}"


def batch_data(batch: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """What a batch event tells the customer: the batch, its totals and where its report is."""
    keep = (
        "id",
        "name",
        "status",
        "sealed",
        "counts",
        "credits_spent",
        "drop_prefix",
        "created_at",
        "finished_at",
    )
    data = {k: batch[k] for k in keep if k in batch}
    data["report"] = {
        k: report[k] for k in ("csv_key", "json_key", "csv_url", "json_url", "totals") if k in report
    }
    check = report.get("consistency")
    if isinstance(check, dict):  # a summary: the per-image details are in the report itself
        flagged = list(check.get("flagged") or [])
        data["report"]["consistency"] = {
            "judged": check.get("judged"),
            "note": check.get("note"),
            "flagged_count": len(flagged),
            "flagged": flagged[:100],
        }
    return data


def batch_finished(conn: db.Conn, batch: dict[str, Any], report: dict[str, Any]) -> None:
    """Record ``batch.<status>`` for the tenant's webhook and an e-mail to the batch owner, in the transaction
    that finished the batch."""
    status = str(batch.get("status"))
    event_type = BATCH_EVENT_TYPES.get(status)
    if event_type is None:
        return
    tenant_id = str(batch["tenant_id"])
    subject = f"batch:{batch['id']}"
    data = batch_data(batch, report)
    if _webhook_configured(conn, tenant_id):
        _record(conn, tenant_id, "webhook", event_type, subject, data)
    recipient = owner_recipient(conn, tenant_id, batch)
    if recipient:
        _record(conn, tenant_id, "email", event_type, subject, data, recipient=recipient)


# ---- settings (environment set by CDK; the local stack and tests shorten the backoff) ---------------------------

MAX_SQS_DELAY_SECONDS = 900  # SQS DelaySeconds limit; longer waits are re-enqueued by the consumer
SWEEP_GRACE_SECONDS = 120  # a due row without an attempt for this long has lost its queue message
DUE_SLACK_SECONDS = 1.0  # a message may arrive a little early (clock skew)
USER_AGENT = "Modamoda-Webhooks/1.0 (+https://modamoda.example/docs/webhooks)"


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from exc
    if value < 0:
        raise ConfigError(f"environment variable {name} must not be negative, got {raw!r}")
    return value


def queue_url() -> str | None:
    """The webhooks queue (``WEBHOOK_QUEUE_URL``); unset: nothing is dispatched (the sweeper tries later)."""
    return os.environ.get("WEBHOOK_QUEUE_URL", "").strip() or None


def max_attempts() -> int:
    return max(1, config.integer("WEBHOOK_MAX_ATTEMPTS", 8))


def timeout_seconds() -> float:
    return _number("WEBHOOK_TIMEOUT_SECONDS", 5.0) or 5.0


def backoff_base_seconds() -> float:
    return _number("WEBHOOK_BACKOFF_BASE_SECONDS", 30.0)


def backoff_cap_seconds() -> float:
    return _number("WEBHOOK_BACKOFF_CAP_SECONDS", 3600.0)


def allow_loopback() -> bool:
    """Local stack only (``LOCAL_WEBHOOKS_ALLOW_LOOPBACK=1``): deliveries to 127.0.0.1/::1 are allowed."""
    return os.environ.get("LOCAL_WEBHOOKS_ALLOW_LOOPBACK", "").strip() == "1"


def email_from() -> str:
    return config.required("EMAIL_FROM")


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential, capped, full jitter."""
    ceiling = min(backoff_cap_seconds(), backoff_base_seconds() * 2 ** max(0, attempt - 1))
    return ceiling * rng()


# ---- signatures -------------------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Modamoda-Signature`` header value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes | str, tolerance: int = 300, now: float | None = None
) -> bool:
    """Whether ``header`` (``Modamoda-Signature``) signs ``body`` (the raw request body, unparsed) with
    ``secret`` within ``tolerance`` seconds of ``now``. Needs only the standard library: copy it."""
    import hashlib
    import hmac
    import time

    if isinstance(body, str):
        body = body.encode("utf-8")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if not value.isascii():
            continue
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False  # too old (a replay) or from the future
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


# ---- dispatch: outbox → queue, after commit ---------------------------------------------------------------------


def _claim_for_queue(
    conn: db.Conn, tenant_id: str, *, ids: list[str] | None = None, grace: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Mark pending rows as handed to the queue (row-locked, skipping rows another dispatcher holds): rows never
    enqueued, and with ``grace`` also rows due for that long whose message was lost."""
    stale = (
        " OR (next_attempt_at < now() - make_interval(secs => %(grace)s)"
        "     AND enqueued_at < now() - make_interval(secs => %(grace)s))"
        if grace is not None
        else ""
    )
    only = " AND id = ANY(%(ids)s::uuid[])" if ids is not None else ""
    rows = conn.execute(
        "UPDATE notifications n SET enqueued_at = now(), updated_at = now()"
        " FROM (SELECT id FROM notifications"
        "       WHERE tenant_id = %(t)s AND status = 'pending'"
        "         AND (locked_until IS NULL OR locked_until < now())"
        f"        AND (enqueued_at IS NULL{stale}){only}"
        "       ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due"
        " WHERE n.tenant_id = %(t)s AND n.id = due.id"
        " RETURNING n.id, n.next_attempt_at, GREATEST(0, EXTRACT(EPOCH FROM n.next_attempt_at - now()))"
        "           AS wait",
        {"t": tenant_id, "grace": grace, "ids": ids, "limit": limit},
    ).fetchall()
    return [dict(r) for r in rows]


def _message(tenant_id: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": str(row["id"]),
        "due": row["next_attempt_at"].isoformat(),
    }


def _enqueue(sqs: Any, entries: list[tuple[dict[str, Any], float]]) -> None:
    """Send queue messages (body, delay seconds) in batches of 10."""
    url = queue_url()
    if url is None:
        return
    for start in range(0, len(entries), 10):
        chunk = entries[start : start + 10]
        result = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": json.dumps(body),
                    # rounded down: a message up to DUE_SLACK_SECONDS early still starts its attempt
                    "DelaySeconds": min(MAX_SQS_DELAY_SECONDS, max(0, int(float(delay)))),
                }
                for i, (body, delay) in enumerate(chunk)
            ],
        )
        for failed in result.get("Failed", []):  # the sweeper re-sends these rows later
            logger.warning("could not enqueue a notification", extra={"error": failed.get("Message")})


def dispatch(tenant_id: str, sqs: Any = None, *, limit: int = 100) -> int:
    """Hand the tenant's newly recorded notifications to the webhooks queue. Call it after the commit that
    recorded them; never raises (a row left behind is found by ``sweep``). Returns how many were sent."""
    if queue_url() is None:
        return 0
    try:
        with db.transaction(tenant_id) as conn:
            rows = _claim_for_queue(conn, tenant_id, limit=limit)
        if rows:
            _enqueue(sqs or aws.client("sqs"), [(_message(tenant_id, r), float(r["wait"])) for r in rows])
        return len(rows)
    except Exception:
        logger.exception(
            "notification dispatch failed; the sweeper will retry", extra={"tenant_id": tenant_id}
        )
        return 0


def sweep(sqs: Any = None, *, grace: int = SWEEP_GRACE_SECONDS, limit: int = 500) -> int:
    """Scheduled: re-send pending notifications whose queue message never left or was lost. Returns the count."""
    if queue_url() is None:
        return 0
    found = db.system_rows("SELECT id, tenant_id FROM app_undispatched_notifications(%s, %s)", (grace, limit))
    by_tenant: dict[str, list[str]] = {}
    for row in found:
        by_tenant.setdefault(str(row["tenant_id"]), []).append(str(row["id"]))
    sent = 0
    client = sqs or aws.client("sqs")
    for tenant_id, ids in by_tenant.items():
        with db.transaction(tenant_id) as conn:
            rows = _claim_for_queue(conn, tenant_id, ids=ids, grace=grace, limit=len(ids))
        _enqueue(client, [(_message(tenant_id, r), float(r["wait"])) for r in rows])
        sent += len(rows)
    return sent


# ---- delivery: the webhooks queue's consumer ---------------------------------------------------------------------


class DeliveryRefused(Exception):
    """The webhook URL may not be called (it resolves to a private, loopback or link-local address)."""


def _allowed_address(address: str, loopback_ok: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_loopback:
        return loopback_ok
    return ip.is_global and not ip.is_multicast


def resolve_public(host: str, port: int, *, loopback_ok: bool | None = None) -> str:
    """The address to connect to for ``host``; every address it resolves to must be public (no private,
    loopback, link-local, metadata or reserved ones; loopback only in the local stack)."""
    loopback_ok = allow_loopback() if loopback_ok is None else loopback_ok
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryRefused(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DeliveryRefused(f"{host} has no address")
    for address in addresses:
        if not _allowed_address(address, loopback_ok):
            raise DeliveryRefused(f"{host} resolves to a non-public address ({address}); not called")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a checked address (no second DNS lookup that could be rebound to a private address)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate is still verified against the host name (SNI)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POST ``body`` to ``url`` once: (HTTP status or None, error or None). Redirects are not followed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in {"http", "https"} or not host:
        return None, "the webhook URL is not http(s)"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve_public(host, port)
    except DeliveryRefused as exc:
        return None, str(exc)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection = (
        _PinnedHTTPSConnection(host, port, address, timeout)
        if parts.scheme == "https"
        else _PinnedHTTPConnection(host, port, address, timeout)
    )
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65_536)
        status = response.status
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    finally:
        conn.close()
    if 200 <= status < 300:
        return status, None
    if 300 <= status < 400:
        return status, f"HTTP {status}: redirects are not followed"
    return status, f"HTTP {status}"


Poster = Callable[[str, bytes, dict[str, str], float], tuple[int | None, str | None]]


def _lease_seconds() -> int:
    return math.ceil(timeout_seconds()) + 60


def _claim(conn: db.Conn, tenant_id: str, ident: str) -> dict[str, Any] | None:
    """Start an attempt: a pending, due, unlocked row is leased and its attempt counted; else None."""
    row = conn.execute(
        "UPDATE notifications SET attempts = attempts + 1, last_attempt_at = now(), updated_at = now(),"
        "  locked_until = now() + make_interval(secs => %(lease)s)"
        " WHERE tenant_id = %(t)s AND id = %(id)s AND status = 'pending'"
        "   AND next_attempt_at <= now() + make_interval(secs => %(slack)s)"
        "   AND (locked_until IS NULL OR locked_until < now())"
        " RETURNING *",
        {"t": tenant_id, "id": ident, "lease": _lease_seconds(), "slack": DUE_SLACK_SECONDS},
    ).fetchone()
    return dict(row) if row is not None else None


def _not_claimed(tenant_id: str, ident: str, due: str | None, sqs: Any) -> str:
    """Why a message started no attempt; a message that arrived before its row is due is sent again later."""
    with db.transaction(tenant_id) as conn:
        row = conn.execute(
            "SELECT status, next_attempt_at, locked_until,"
            " EXTRACT(EPOCH FROM next_attempt_at - now()) AS wait, locked_until > now() AS locked"
            " FROM notifications WHERE tenant_id = %s AND id = %s",
            (tenant_id, ident),
        ).fetchone()
    if row is None:
        return "unknown"
    if row["status"] != "pending":
        return "duplicate"  # delivered or dead: a duplicate message sends nothing
    if row["locked"]:
        return "in_progress"
    try:
        current = due is None or datetime.fromisoformat(due) == row["next_attempt_at"]
    except ValueError:
        current = False
    if not current:
        return "stale"  # a message of an earlier schedule; the current one is on its way
    _enqueue(sqs, [(_message(tenant_id, {"id": ident, **row}), float(row["wait"]))])
    return "not_due"


def _finish(
    tenant_id: str,
    row: dict[str, Any],
    sqs: Any,
    *,
    ok: bool,
    status_code: int | None,
    error: str | None,
    permanent: bool = False,
) -> str:
    """Record an attempt's outcome: delivered, a retry after a backoff, or dead after the last attempt."""
    ident = str(row["id"])
    params: dict[str, Any] = {"t": tenant_id, "id": ident, "code": status_code, "error": (error or "")[:1000]}
    base = (
        "UPDATE notifications SET updated_at = now(), locked_until = NULL, last_status_code = %(code)s,"
        " last_error = NULLIF(%(error)s, ''), {sets}"
        " WHERE tenant_id = %(t)s AND id = %(id)s AND status = 'pending' RETURNING next_attempt_at"
    )
    if ok:
        outcome, sets = "delivered", "status = 'delivered', delivered_at = now()"
    elif permanent or row["attempts"] >= max_attempts():
        outcome, sets = "dead", "status = 'dead'"
    else:
        outcome = "retry"
        params["delay"] = backoff_delay(int(row["attempts"]))
        sets = "next_attempt_at = now() + make_interval(secs => %(delay)s), enqueued_at = now()"
    with db.transaction(tenant_id) as conn:
        updated = conn.execute(base.format(sets=sets), params).fetchone()
    if outcome == "retry" and updated is not None:
        _enqueue(sqs, [(_message(tenant_id, {"id": ident, **dict(updated)}), params["delay"])])
    log = logger.warning if outcome == "dead" else logger.info
    log(
        f"notification {outcome}",
        extra={"event_id": ident, "tenant_id": tenant_id, "attempt": row["attempts"], "status": status_code},
    )
    return outcome


def _send_webhook(
    tenant_id: str, row: dict[str, Any], tenant: dict[str, Any], sqs: Any, poster: Poster
) -> str:
    if not tenant.get("webhook_url") or not tenant.get("webhook_secret"):
        return _finish(
            tenant_id,
            row,
            sqs,
            ok=False,
            status_code=None,
            error="no webhook URL is configured",
            permanent=True,
        )
    payload = row["payload"]
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Modamoda-Event-Id": str(row["id"]),
        "Modamoda-Event-Type": str(row["type"]),
        "Modamoda-Delivery-Attempt": str(row["attempts"]),
        "Modamoda-Signature": sign(tenant["webhook_secret"], body, int(time.time())),
    }
    status, error = poster(tenant["webhook_url"], body, headers, timeout_seconds())
    ok = status is not None and 200 <= status < 300
    return _finish(tenant_id, row, sqs, ok=ok, status_code=status, error=error)


def render_email(payload: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of a finished batch's e-mail."""
    data = payload.get("data") or {}
    name = str(data.get("name") or data.get("id") or "your batch")
    status = str(payload.get("type", "batch.completed")).removeprefix("batch.")
    report = data.get("report") or {}
    counts = data.get("counts") or report.get("totals") or {}
    verb = {"completed": "is finished", "stopped": "was stopped", "cancelled": "was cancelled"}.get(
        status, f"is {status}"
    )
    subject = f"Modamoda: batch {name} {verb}"
    lines = [f"Your batch {name} {verb}.", ""]
    if status == "stopped":
        lines += ["It ran out of credits: the remaining images were not processed and cost nothing.", ""]
    for key in ("total", "succeeded", "failed", "rejected", "cancelled"):
        if counts.get(key) is not None:
            lines.append(f"{key.capitalize():<10} {counts[key]}")
    spent = data.get("credits_spent", (report.get("totals") or {}).get("credits_spent"))
    if spent is not None:
        lines.append(f"{'Credits':<10} {spent}")
    check = report.get("consistency") or {}
    if check.get("flagged_count"):
        lines += [
            "",
            f"Consistency check: {check['flagged_count']} image(s) stand out from the batch (see the report).",
        ]
    links = [
        (label, report[key]) for label, key in (("CSV", "csv_url"), ("JSON", "json_url")) if report.get(key)
    ]
    keys = [
        (label, report[key]) for label, key in (("CSV", "csv_key"), ("JSON", "json_key")) if report.get(key)
    ]
    lines.append("")
    if links:
        lines.append("Report (links expire; GET /v1/batches/{id} or `modamoda download` gives fresh ones):")
        lines += [f"  {label}: {url}" for label, url in links]
    elif keys:
        lines.append("Report: `modamoda download` fetches it, or GET /v1/batches/{id} for links:")
        lines += [f"  {label}: {key}" for label, key in keys]
    lines += ["", f"Batch id: {data.get('id', '')}"]
    text = "\n".join(lines).replace("{id}", str(data.get("id", "")))
    html = (
        '<!doctype html><html><body style="font-family:sans-serif">'
        + "".join(
            f'<p><a href="{escape(line.split(": ", 1)[1])}">{escape(line.split(": ", 1)[0].strip())} report</a></p>'
            if line.startswith("  ") and "://" in line
            else f"<p>{escape(line)}</p>"
            for line in text.splitlines()
            if line
        )
        + "</body></html>"
    )
    return subject, text, html


def _address(recipient: str, cognito: Any) -> str | None:
    """The e-mail address of a recipient (``cognito-sub:<sub>``: the user pool's ``email`` attribute)."""
    if not recipient.startswith(COGNITO_RECIPIENT):
        return recipient
    sub = recipient.removeprefix(COGNITO_RECIPIENT)
    if not sub or '"' in sub or "\\" in sub:
        return None
    users = (cognito or aws.client("cognito-idp")).list_users(
        UserPoolId=config.user_pool_id(), Filter=f'sub = "{sub}"', Limit=1
    )["Users"]
    attributes = {a["Name"]: a["Value"] for user in users for a in user.get("Attributes", [])}
    return _mailbox(attributes.get("email"))


def _send_email(tenant_id: str, row: dict[str, Any], sqs: Any, ses: Any, cognito: Any = None) -> str:
    subject, text, html = render_email(row["payload"])
    try:
        address = _address(str(row["recipient"]), cognito)
    except ClientError as exc:
        return _finish(tenant_id, row, sqs, ok=False, status_code=None, error=f"Cognito: {exc}")
    if address is None:
        error = "the account owner has no e-mail address"
        return _finish(tenant_id, row, sqs, ok=False, status_code=None, error=error, permanent=True)
    try:
        ses.send_email(
            Source=email_from(),
            Destination={"ToAddresses": [address]},
            Message={
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": text, "Charset": "UTF-8"},
                    "Html": {"Data": html, "Charset": "UTF-8"},
                },
            },
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return _finish(tenant_id, row, sqs, ok=False, status_code=None, error=f"SES {code}: {exc}")
    return _finish(tenant_id, row, sqs, ok=True, status_code=None, error=None)


def deliver(
    tenant_id: str,
    ident: str,
    *,
    sqs: Any,
    ses: Any,
    due: str | None = None,
    poster: Poster | None = None,
    cognito: Any = None,
) -> str:
    """One attempt at one notification, at most one at a time (leased). Safe to call for any duplicate message:
    a delivered or dead event, or one being attempted, sends nothing. Returns the outcome."""

    def claim(conn: db.Conn) -> tuple[dict[str, Any], dict[str, Any]] | None:
        row = _claim(conn, tenant_id, ident)
        if row is None:
            return None
        tenant = conn.execute(
            "SELECT webhook_url, webhook_secret FROM tenants WHERE id = %s", (tenant_id,)
        ).fetchone()
        return row, dict(tenant or {})

    claimed = db.atomic(tenant_id, claim)
    if claimed is None:
        return _not_claimed(tenant_id, ident, due, sqs)
    row, tenant = claimed
    if row["channel"] == "email":
        return _send_email(tenant_id, row, sqs, ses, cognito)
    return _send_webhook(tenant_id, row, tenant, sqs, poster or post)


def handle_message(body: str, *, sqs: Any, ses: Any, poster: Poster | None = None) -> str:
    """A webhooks-queue message ``{"tenant_id", "id", "due"}`` → one delivery attempt."""
    message = json.loads(body)
    try:
        tenant_id, ident = str(uuid.UUID(message["tenant_id"])), str(uuid.UUID(message["id"]))
    except (KeyError, TypeError, ValueError):
        logger.warning("ignoring a malformed notification message", extra={"body": body[:200]})
        return "malformed"
    return deliver(tenant_id, ident, sqs=sqs, ses=ses, due=message.get("due"), poster=poster)


# ---- the tenant's delivery log (GET /v1/account/webhook/deliveries) and manual retry ----------------------------


def _delivery_view(row: dict[str, Any]) -> WebhookDelivery:
    return WebhookDelivery(
        id=str(row["id"]),
        type=row["type"],
        status=row["status"],
        attempts=row["attempts"],
        max_attempts=max_attempts(),
        next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
        last_attempt_at=row["last_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        created_at=row["created_at"],
        event=dict(row["payload"]),
    )


def _cursor_key(values: list[Any]) -> tuple[datetime, str]:
    if len(values) != 2:
        raise ValueError("a delivery cursor holds two values")
    return datetime.fromisoformat(str(values[0])), str(uuid.UUID(str(values[1])))


def list_deliveries(
    tenant_id: str, limit: int, cursor: str | None, status: str | None = None
) -> WebhookDeliveryPage:
    """The tenant's webhook events, newest first (keyset pages), optionally only those of one status."""
    where = ["tenant_id = %s", "channel = 'webhook'"]
    params: list[Any] = [tenant_id]
    if status:
        if status not in DELIVERY_STATUSES:
            raise ValidationFailed(
                "the request is not valid",
                details=[
                    {
                        "loc": ["query", "status"],
                        "message": f"one of {', '.join(DELIVERY_STATUSES)}",
                        "type": "enum",
                    }
                ],
            )
        where.append("status = %s")
        params.append(status)
    if cursor:
        created, last_id = decode_cursor(cursor, _cursor_key)
        where.append("(created_at, id) < (%s, %s)")
        params += [created, last_id]
    with db.transaction(tenant_id) as conn:
        rows = conn.execute(
            f"SELECT * FROM notifications WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id DESC LIMIT %s",
            (*params, limit + 1),
        ).fetchall()
    items, next_cursor = page(rows, limit, lambda last: (last["created_at"].isoformat(), str(last["id"])))
    return WebhookDeliveryPage(items=[_delivery_view(r) for r in items], next_cursor=next_cursor)


def retry_delivery(tenant_id: str, delivery_id: str, sqs: Any = None) -> WebhookDelivery:
    """Give a dead webhook event a fresh set of attempts, starting now (sent to the current URL and secret)."""
    try:
        delivery_id = str(uuid.UUID(delivery_id))
    except ValueError:
        raise NotFound(f"delivery {delivery_id} not found") from None

    def reset(conn: db.Conn) -> dict[str, Any]:
        row = conn.execute(
            "SELECT * FROM notifications WHERE tenant_id = %s AND id = %s AND channel = 'webhook' FOR UPDATE",
            (tenant_id, delivery_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"delivery {delivery_id} not found")
        if row["status"] != "dead":
            raise Conflict(
                f"delivery {delivery_id} is {row['status']}; only dead deliveries can be retried",
                code="delivery_not_dead",
            )
        if not _webhook_configured(conn, tenant_id):
            raise Conflict("set a webhook URL first (PUT /v1/account/webhook)", code="webhook_not_configured")
        updated = conn.execute(
            "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = now(),"
            " enqueued_at = NULL, locked_until = NULL, updated_at = now()"
            " WHERE tenant_id = %s AND id = %s RETURNING *",
            (tenant_id, delivery_id),
        ).fetchone()
        assert updated is not None
        return dict(updated)

    row = db.atomic(tenant_id, reset)
    dispatch(tenant_id, sqs)
    return _delivery_view(row)
