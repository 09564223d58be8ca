"""PostgreSQL access: one connection per Lambda container (or per local process), explicit transactions.

The DSN comes from ``DATABASE_URL`` (local mode, tests) or from the RDS-generated Secrets Manager secret named by
``DB_SECRET_ARN`` (cloud), with ``DB_HOST`` overriding the host (RDS Proxy endpoint).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row

from functions.common import aws
from functions.common.errors import ConfigError, TransientError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_ID = 0x4D6F_6461  # "Moda": serialises concurrent migrators

_local = threading.local()


def dsn() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    secret_arn = os.environ.get("DB_SECRET_ARN", "").strip()
    if not secret_arn:
        raise ConfigError("set DATABASE_URL or DB_SECRET_ARN to reach PostgreSQL", code="config_missing")
    secret = json.loads(aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
    return make_conninfo(
        host=os.environ.get("DB_HOST") or secret["host"],
        port=secret.get("port", 5432),
        user=secret["username"],
        password=secret["password"],
        dbname=secret.get("dbname", "postgres"),
        sslmode=os.environ.get("DB_SSLMODE", "require"),
        connect_timeout=5,
        application_name="modamoda",
    )


def connection() -> psycopg.Connection[DictRow]:
    """The cached connection of this thread, reconnecting when it was closed or broken."""
    conn: psycopg.Connection[DictRow] | None = getattr(_local, "conn", None)
    if conn is not None and not conn.closed and not conn.broken:
        return conn
    try:
        conn = psycopg.connect(dsn(), autocommit=True, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise TransientError(f"database unavailable: {exc}".strip()) from exc
    _local.conn = conn
    return conn


def reset() -> None:
    """Close this thread's cached connection (tests, local runner shutdown)."""
    conn = getattr(_local, "conn", None)
    if conn is not None:
        conn.close()
    _local.conn = None


@contextmanager
def transaction() -> Iterator[psycopg.Connection[DictRow]]:
    """One database transaction; connection-level failures surface as ``TransientError`` (retryable)."""
    conn = connection()
    try:
        with conn.transaction():
            yield conn
    except psycopg.OperationalError as exc:
        reset()
        raise TransientError(f"database unavailable: {exc}".strip()) from exc


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
