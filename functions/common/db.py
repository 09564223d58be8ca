"""PostgreSQL access: one connection per Lambda container (or thread), one tenant per transaction.

The application connects as ``modamoda_app`` (row-level security applies; see migrations/0002). Its DSN comes from
``DATABASE_URL`` (local mode, tests) or from the Secrets Manager secret named by ``DB_SECRET_ARN`` (cloud: host,
port, username, password, dbname), with ``DB_HOST`` overriding the host. Migrations run with the owner's
credentials: ``DATABASE_ADMIN_URL`` or ``DB_ADMIN_SECRET_ARN``.

TLS (secret path): ``DB_SSLMODE``, by default ``verify-full``: the server's certificate must chain to a CA in
``DB_SSLROOTCERT`` and name the host connected to (the deployed functions get AWS's RDS CA bundle plus Amazon Trust
Services' roots for RDS Proxy in a layer, see infra/lambdas.py). A verifying mode without a readable
``DB_SSLROOTCERT`` is a configuration error, raised before connecting. The local stack sets ``DB_SSLMODE=disable``
(pgserver on a Unix socket); ``DATABASE_URL`` is used as given.

Every transaction names its tenant with ``set_config('app.tenant_id', ..., true)`` (transaction-local); a
transaction without a tenant sees no tenant rows at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row

from functions.common import aws
from functions.common.errors import ConfigError, TransientError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_ID = 0x4D6F_6461  # "Moda": serialises concurrent migrators

APP_ROLE = "modamoda_app"
Conn = psycopg.Connection[DictRow]
_local = threading.local()
T = TypeVar("T")


def _secret(arn: str) -> dict[str, Any]:
    return dict(json.loads(aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]))


def dsn(*, admin: bool = False) -> str:
    url_var, secret_var = (
        ("DATABASE_ADMIN_URL", "DB_ADMIN_SECRET_ARN") if admin else ("DATABASE_URL", "DB_SECRET_ARN")
    )
    url = os.environ.get(url_var, "").strip()
    if url:
        return url
    secret_arn = os.environ.get(secret_var, "").strip()
    if not secret_arn:
        raise ConfigError(f"set {url_var} or {secret_var} to reach PostgreSQL", code="config_missing")
    return secret_dsn(_secret(secret_arn))


def app_password() -> str | None:
    """The application role's password, from its secret (None when DATABASE_URL is used)."""
    arn = os.environ.get("DB_SECRET_ARN", "").strip()
    return str(_secret(arn)["password"]) if arn else None


VERIFYING_SSLMODES = ("verify-ca", "verify-full")


def tls_settings() -> dict[str, str]:
    """``sslmode`` (``DB_SSLMODE``, default ``verify-full``) and, when it verifies, ``sslrootcert``
    (``DB_SSLROOTCERT``, which must name a readable file: libpq would otherwise look in ~/.postgresql)."""
    mode = os.environ.get("DB_SSLMODE", "").strip() or "verify-full"
    if mode not in VERIFYING_SSLMODES:
        return {"sslmode": mode}
    root = os.environ.get("DB_SSLROOTCERT", "").strip()
    if not root or not os.path.isfile(root):
        raise ConfigError(
            f"DB_SSLMODE={mode} needs DB_SSLROOTCERT, the CA bundle that signs the database's certificate "
            f"(got {root!r})",
            code="config_missing",
        )
    return {"sslmode": mode, "sslrootcert": root}


def secret_dsn(secret: dict[str, Any]) -> str:
    return make_conninfo(
        host=os.environ.get("DB_HOST") or secret["host"],
        port=secret.get("port", 5432),
        user=secret["username"],
        password=secret["password"],
        dbname=secret.get("dbname", "postgres"),
        **tls_settings(),
        connect_timeout=5,
        application_name="modamoda",
    )


def connection() -> psycopg.Connection[DictRow]:
    """The cached connection of this thread, reconnecting when it was closed or broken."""
    return _connection()[0]


def _connection() -> tuple[psycopg.Connection[DictRow], bool]:
    """This thread's connection and whether it was opened just now (False: cached from an earlier call)."""
    conn: psycopg.Connection[DictRow] | None = getattr(_local, "conn", None)
    if conn is not None and not conn.closed and not conn.broken:
        return conn, False
    try:
        # No server-side prepared statements: behind RDS Proxy they would pin each session to one connection.
        conn = psycopg.connect(dsn(), autocommit=True, row_factory=dict_row, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        raise TransientError(f"database unavailable: {exc}".strip()) from exc
    _local.conn = conn
    return conn, True


def reset() -> None:
    """Close this thread's cached connection (tests, local runner shutdown)."""
    conn = getattr(_local, "conn", None)
    if conn is not None:
        conn.close()
    _local.conn = None


RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)


@contextmanager
def transaction(tenant_id: str | None) -> Iterator[psycopg.Connection[DictRow]]:
    """One transaction acting for ``tenant_id`` (None: system context, no tenant rows visible).

    Connection-level failures surface as ``TransientError`` (retryable by the caller or Step Functions).
    """
    scope = ExitStack()
    conn = _begin(scope, tenant_id)
    try:
        with scope:
            yield conn
    except RETRYABLE:  # OperationalError subclasses the caller retries (atomic); not an outage
        raise
    except psycopg.OperationalError as exc:
        if conn.broken or conn.closed:
            reset()
        raise TransientError(f"database unavailable: {exc}".strip()) from exc


def _begin(scope: ExitStack, tenant_id: str | None) -> psycopg.Connection[DictRow]:
    """Begin a transaction acting for ``tenant_id`` on this thread's connection (its end is pushed on ``scope``).

    A cached connection the server has closed since its last use (a restart, an Aurora failover, an idle
    timeout, ``pg_terminate_backend``) looks healthy until its first statement fails. Nothing has run in the
    transaction then, so such a connection is replaced once and the transaction begun again, instead of failing
    the first request of every warm container after a failover.
    """
    for attempt in range(2):
        conn, fresh = _connection()
        try:
            with ExitStack() as begun:
                begun.enter_context(conn.transaction())
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id or "",))
                scope.push(begun.pop_all())
                return conn
        except psycopg.OperationalError as exc:
            lost = conn.broken or conn.closed
            if lost:
                reset()
            if not lost or fresh or attempt:
                raise TransientError(f"database unavailable: {exc}".strip()) from exc
    raise AssertionError("unreachable")


def atomic(
    tenant_id: str | None,
    work: Callable[[psycopg.Connection[DictRow]], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.02,
    max_delay: float = 1.0,
) -> T:
    """Run ``work`` in one transaction, retrying serialization failures and deadlocks with capped, fully
    jittered exponential backoff; after ``attempts`` the failure surfaces as ``TransientError``."""
    for attempt in range(attempts):
        try:
            with transaction(tenant_id) as conn:
                return work(conn)
        except RETRYABLE as exc:
            if attempt == attempts - 1:
                raise TransientError(f"gave up after {attempts} attempts: {exc}".strip()) from exc
            time.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))  # noqa: S311 - jitter
    raise AssertionError("unreachable")


def system_rows(query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Rows from a SECURITY DEFINER lookup function (``app_job_tenant`` etc.), outside any tenant."""
    with transaction(None) as conn:
        return [dict(row) for row in conn.execute(query, params).fetchall()]


def system_lookup(query: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    """One row (or None) from a SECURITY DEFINER lookup function."""
    rows = system_rows(query, params)
    return rows[0] if rows else None


def set_app_role_password(conn: psycopg.Connection[Any], password: str) -> None:
    """Let the application role log in with the password of its secret (run by the migrator)."""
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(APP_ROLE), sql.Literal(password)
        )
    )


def _migration_files() -> list[tuple[str, str, str]]:
    files = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        sql = path.read_text(encoding="utf-8")
        files.append((path.stem, sql, hashlib.sha256(sql.encode()).hexdigest()))
    return files


def migrations_hash() -> str:
    return hashlib.sha256("".join(c for _, _, c in _migration_files()).encode()).hexdigest()


def apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending ``migrations/*.sql`` in order, once each, under an advisory lock. Returns applied versions.

    An applied migration whose file changed afterwards is an error: migrations are append-only.
    """
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row[0] if isinstance(row, tuple) else row["version"]: row[1]
            if isinstance(row, tuple)
            else row["checksum"]
            for row in conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        }
        for version, sql, checksum in _migration_files():
            if version in done:
                if done[version] != checksum:
                    raise ConfigError(
                        f"migration {version} was changed after it was applied", code="migration_drift"
                    )
                continue
            conn.execute(sql)  # a whole file: several statements, no parameters
            conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)", (version, checksum)
            )
            applied.append(version)
    return applied


def migrate() -> list[str]:
    """Apply migrations with the owner's credentials and enable the application role's login."""
    with psycopg.connect(dsn(admin=True), autocommit=True) as conn:
        applied = apply_migrations(conn)
        password = app_password()
        if password:
            set_app_role_password(conn, password)
    return applied
