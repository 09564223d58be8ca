"""Shared fixtures: a real PostgreSQL (pgserver, or DATABASE_URL if set) with a fresh database per test, and
moto's in-process AWS with fake credentials."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

EVENTS = Path(__file__).parent / "events"
APP_PASSWORD = "app-test-password"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="mmpg-") as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def _database_url(server_url: str, name: str) -> str:
    params = conninfo_to_dict(server_url)
    params["dbname"] = name
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def migrated_template(pg_server_url: str) -> str:
    """One database migrated by its owner, copied for every test (CREATE DATABASE ... TEMPLATE: a file copy,
    a fraction of applying every migration again). Each test still applies migrations to its copy, which finds
    them all applied and checks their checksums."""
    from functions.common import db

    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(_database_url(pg_server_url, name), autocommit=True) as conn:
        db.apply_migrations(conn)
    return name


@pytest.fixture
def admin_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    """A new database migrated by its owner; dropped afterwards."""
    from functions.common import db

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    url = _database_url(pg_server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        db.apply_migrations(conn)
        db.set_app_role_password(conn, APP_PASSWORD)
    try:
        yield url
    finally:
        db.reset()
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(admin_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The application's view of that database: role modamoda_app (row-level security applies)."""
    from functions.common import db

    params = conninfo_to_dict(admin_url)
    params.update(user=db.APP_ROLE, password=APP_PASSWORD)
    url = make_conninfo(**params)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATABASE_ADMIN_URL", admin_url)
    db.reset()
    return url


@pytest.fixture
def conn(database_url: str, admin_url: str) -> Iterator[psycopg.Connection]:
    """An owner's (superuser) connection to the test database, for arranging and inspecting rows."""
    from psycopg.rows import dict_row

    with psycopg.connect(admin_url, autocommit=True, row_factory=dict_row) as connection:
        yield connection


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def mocked_aws(aws_env: None) -> Iterator[None]:
    import boto3
    from moto import mock_aws

    from functions.common import aws

    with mock_aws():
        boto3.setup_default_session(region_name="us-east-1")
        aws.reset()
        yield
        aws.reset()


def load_event(name: str, **replace: str) -> dict:
    """A sample event from tests/events, with UPPERCASE placeholders (TENANT, JOB, ...) replaced."""
    import json

    text = (EVENTS / name).read_text(encoding="utf-8")
    for key, value in replace.items():
        text = text.replace(key, value)
    return json.loads(text)


class FakeLambdaContext:
    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id = "11111111-2222-3333-4444-555555555555"
    function_version = "$LATEST"
    log_group_name = "/aws/lambda/test"
    log_stream_name = "test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def create_job(sub: str = "sub-1", welcome: int = 5, filename: str = "shirt.jpg") -> tuple[str, str]:
    """A provisioned user's tenant and a new job awaiting its upload: (tenant_id, job_id)."""
    from functions.common import db, jobs
    from functions.common.models import UploadRequest
    from functions.common.tenants import ensure_user

    who = ensure_user(sub, f"{sub}@example.com", welcome)
    with db.transaction(who.tenant_id) as conn:
        row = jobs.create(
            conn,
            who.tenant_id,
            UploadRequest(filename=filename, content_type="image/jpeg"),
            "modamoda-test-uploads",
        )
    return who.tenant_id, str(row["id"])
