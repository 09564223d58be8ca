"""The settings file, signing in (password and API key), renewing and ending sessions, error messages and exit
status, against the fake service."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from modamoda_cli import config as settings
from modamoda_cli.api import RetryPolicy
from modamoda_cli.auth import AuthError, jwt_claims, parse_api_key
from tests.modamoda_cli.conftest import Cli
from tests.modamoda_cli.fake_api import PASSWORD, FakeModamoda

ROOT = Path(__file__).resolve().parents[2]
DELAY = RetryPolicy.delay  # the real one (the fixtures make retries quick)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- the settings file ---------------------------------------------------------------------------------------


def test_settings_path_honours_modamoda_config_then_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODAMODA_CONFIG", str(tmp_path / "explicit.json"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert settings.config_path() == tmp_path / "explicit.json"
    assert settings.config_path(tmp_path / "flag.json") == tmp_path / "flag.json"
    monkeypatch.delenv("MODAMODA_CONFIG")
    assert settings.config_path() == tmp_path / "xdg" / "modamoda" / "config.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the XDG spec: relative paths are invalid
    assert settings.config_path() == tmp_path / "home" / ".config" / "modamoda" / "config.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert settings.config_path() == tmp_path / "home" / ".config" / "modamoda" / "config.json"


def test_settings_file_is_private_and_keeps_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "config.json"
    config = settings.Config(api_url="https://api.example", extra={"future_key": [1, 2]})
    config.session = settings.Session("password", "acc", "ref", 123.0, email="a@b.c")
    settings.save(path, config)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    loaded = settings.load(path)
    assert loaded.api_url == "https://api.example"
    assert loaded.session is not None
    assert loaded.session.refresh_token == "ref"
    assert json.loads(path.read_text())["future_key"] == [1, 2]

    path.chmod(0o644)  # too open (copied by hand): the next save closes it again
    settings.save(path, loaded)
    assert mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary file left


def test_a_broken_settings_file_is_a_clear_error(cli: Cli, private_settings: Path) -> None:
    private_settings.parent.mkdir(parents=True)
    private_settings.write_text("{not json")
    result = cli("whoami")
    assert result.code == 1
    assert "is not valid JSON" in result.err
    assert str(private_settings) in result.err


# ---- signing in ------------------------------------------------------------------------------------------------


def test_login_with_password_from_web_url(
    fake: FakeModamoda, cli: Cli, private_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODAMODA_PASSWORD", PASSWORD)
    result = cli("login", "--web-url", fake.url + "/", "--email", "shop@example.com")
    assert result.code == 0, result.err
    assert "Logged in as shop@example.com" in result.out
    assert "50 credits" in result.out
    assert mode(private_settings) == 0o600
    saved = json.loads(private_settings.read_text())
    assert saved["api_url"] == fake.url
    assert saved["cognito_endpoint"] == f"{fake.url}/cognito"
    assert saved["client_id"] == "fake-client-id"
    assert saved["region"] == "eu-west-1"
    assert saved["session"]["kind"] == "password"
    assert saved["session"]["email"] == "shop@example.com"
    assert saved["session"]["refresh_token"]
    assert PASSWORD not in private_settings.read_text()
    assert fake.cognito_calls == [("InitiateAuth", "USER_PASSWORD_AUTH")]

    whoami = cli("--json", "whoami")
    assert whoami.code == 0
    assert json.loads(whoami.out)["email"] == "shop@example.com"
    credits = cli("credits")
    assert credits.code == 0
    assert "50 credits available" in credits.out


def test_login_reads_the_password_from_stdin(
    fake: FakeModamoda, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    result = cli("login", "--web-url", fake.url, "--email", "shop@example.com", "--password-stdin")
    assert result.code == 0, result.err


def test_login_with_an_api_key(fake: FakeModamoda, cli: Cli, private_settings: Path) -> None:
    key = fake.add_api_key()
    key_id = key.split("_")[1]
    result = cli("login", "--web-url", fake.url, "--api-key", key)
    assert result.code == 0, result.err
    assert f"Logged in as API key {key_id}" in result.out
    saved = json.loads(private_settings.read_text())
    assert saved["session"]["kind"] == "api_key"
    assert saved["session"]["api_key_id"] == key_id
    assert key.split("_", 2)[2] not in private_settings.read_text()  # the secret is never stored
    assert parse_api_key(key)[1] == f"apikey-{key_id}@api-keys.modamoda.invalid"
    assert cli("whoami").code == 0


def test_an_api_key_from_the_environment_signs_in_without_a_session(
    logged_in: FakeModamoda, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = logged_in.add_api_key()
    assert cli("logout").code == 0
    assert cli("whoami").code == 1
    monkeypatch.setenv("MODAMODA_API_KEY", key)
    result = cli("whoami")
    assert result.code == 0, result.err
    assert "API key" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "shop@example.com"], "Incorrect e-mail address or password."),
        (["--api-key", "mmk_not-a-key"], "That is not a Modamoda API key"),
        (
            ["--api-key", "mmk_0b0c5c1e-1f9f-4d52-9a62-2d2a3c9a4b11_Wrong-secret1"],
            "This API key is not valid",
        ),
    ],
)
def test_refused_sign_ins_say_why(
    fake: FakeModamoda, cli: Cli, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("MODAMODA_PASSWORD", "wrong-password")
    result = cli("login", "--web-url", fake.url, *args)
    assert result.code == 1
    assert message in result.err


def test_login_needs_to_know_where(cli: Cli) -> None:
    result = cli("login", "--email", "a@b.c")
    assert result.code == 2
    assert "--web-url" in result.err


def test_login_with_an_address_that_is_not_the_web_app(fake: FakeModamoda, cli: Cli) -> None:
    result = cli("login", "--web-url", fake.url + "/nothing-here", "--email", "a@b.c")
    assert result.code == 1
    assert "answered HTTP 404" in result.err


def test_not_logged_in(cli: Cli, fake: FakeModamoda, private_settings: Path) -> None:
    result = cli("credits")
    assert result.code == 1
    assert "run `modamoda login" in result.err
    settings.save(
        private_settings, settings.Config(api_url=fake.url, client_id="x", cognito_endpoint=fake.url)
    )
    result = cli("batches")
    assert result.code == 1
    assert "Not logged in: run `modamoda login` first." in result.err


# ---- renewing and ending the session --------------------------------------------------------------------------


def test_expired_access_token_is_renewed_with_the_refresh_token(
    logged_in: FakeModamoda, cli: Cli, private_settings: Path
) -> None:
    before = json.loads(private_settings.read_text())["session"]
    logged_in.access.clear()  # the service no longer accepts the access token (401)
    result = cli("credits")
    assert result.code == 0, result.err
    assert ("InitiateAuth", "REFRESH_TOKEN_AUTH") in logged_in.cognito_calls
    after = json.loads(private_settings.read_text())["session"]
    assert after["access_token"] != before["access_token"]
    assert (
        after["refresh_token"] == before["refresh_token"]
    )  # Cognito sends none on refresh: the old one stays
    assert mode(private_settings) == 0o600

    # close to its expiry, the token is renewed before it is used
    session = settings.load(private_settings)
    assert session.session is not None
    session.session.expires_at = 0
    settings.save(private_settings, session)
    calls = len(logged_in.cognito_calls)
    assert cli("credits").code == 0
    assert logged_in.cognito_calls[calls:] == [("InitiateAuth", "REFRESH_TOKEN_AUTH")]


def test_a_session_that_cannot_be_renewed_says_log_in_again(
    logged_in: FakeModamoda, cli: Cli, private_settings: Path
) -> None:
    logged_in.access.clear()
    logged_in.refresh_tokens.clear()  # revoked elsewhere, or past its lifetime
    result = cli("credits")
    assert result.code == 1
    assert "Your session has expired or was ended" in result.err
    assert "modamoda login" in result.err
    assert json.loads(private_settings.read_text())["session"] is None
    assert "Not logged in" in cli("credits").err


def test_logout_revokes_the_refresh_token_and_forgets_the_session(
    logged_in: FakeModamoda, cli: Cli, private_settings: Path
) -> None:
    refresh = json.loads(private_settings.read_text())["session"]["refresh_token"]
    result = cli("logout")
    assert result.code == 0
    assert "Logged out." in result.out
    assert logged_in.revoked == [refresh]
    saved = json.loads(private_settings.read_text())
    assert saved["session"] is None
    assert saved["api_url"] == logged_in.url
    assert cli("logout").out.strip() == "Not logged in."


# ---- errors, retries, exit status -----------------------------------------------------------------------------


def test_api_error_bodies_are_shown(logged_in: FakeModamoda, cli: Cli) -> None:
    result = cli("watch", "0b0c5c1e-0000-4000-8000-000000000000", "--once")
    assert result.code == 1
    assert "batch 0b0c5c1e-0000-4000-8000-000000000000 not found (not_found, HTTP 404)" in result.err


def test_503_and_429_are_retried(logged_in: FakeModamoda, cli: Cli) -> None:
    logged_in.fault("GET", "/v1/credits", 503, times=2)
    logged_in.fault("GET", "/v1/credits", 429, times=1, **{"Retry-After": "0"})
    result = cli("credits")
    assert result.code == 0, result.err
    assert logged_in.count("GET", "/v1/credits") == 4


def test_retries_stop(logged_in: FakeModamoda, cli: Cli) -> None:
    logged_in.fault("GET", "/v1/credits", 503, times=100)
    result = cli("credits")
    assert result.code == 1
    assert "try again later (unavailable, HTTP 503)" in result.err
    assert logged_in.count("GET", "/v1/credits") == RetryPolicy().attempts


def test_connection_errors_are_retried_then_reported(
    logged_in: FakeModamoda, cli: Cli, private_settings: Path
) -> None:
    config = settings.load(private_settings)
    config.api_url = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.save(private_settings, config)
    result = cli("credits")
    assert result.code == 1
    assert "cannot be reached" in result.err


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(base=0.5, cap=20.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 20.0)]:
        for _ in range(20):
            assert ceiling / 2 <= DELAY(policy, attempt) <= ceiling
    assert DELAY(policy, 0, "7") == 7.0
    assert DELAY(policy, 0, "999") == 60.0


def test_usage_errors_exit_2(cli: Cli, tmp_path: Path) -> None:
    assert cli("frobnicate").code == 2
    assert cli("upload").code == 2
    assert cli("upload", str(tmp_path / "missing")).code == 2
    assert cli("upload", str(tmp_path), "--parallel", "0").code == 2
    assert cli("--help").code == 0


def test_jwt_claims_are_read_for_display_only() -> None:
    assert jwt_claims("x.eyJlbWFpbCI6ICJhQGIuYyJ9.y") == {"email": "a@b.c"}
    assert jwt_claims("garbage") == {}
    assert jwt_claims(None) == {}
    with pytest.raises(AuthError):
        parse_api_key("mmk_123_secret")


def test_python_m_modamoda_cli_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "modamoda_cli", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0
    for command in ("login", "logout", "whoami", "credits", "batches", "upload", "watch", "download"):
        assert command in done.stdout
