"""Fixtures for the CLI's tests: a fake service (tests/modamoda_cli/fake_api.py), a private settings file, a
folder of small photos, and ``cli`` to run a command in-process with its exit status and output."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from modamoda_cli import api
from modamoda_cli.cli import main
from tests.modamoda_cli.fake_api import PASSWORD, FakeModamoda


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def private_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own settings file; nothing from the environment leaks in; retries wait 10 ms."""
    path = tmp_path / "settings" / "modamoda" / "config.json"
    monkeypatch.setenv("MODAMODA_CONFIG", str(path))
    for name in ("MODAMODA_API_KEY", "MODAMODA_PASSWORD", "MODAMODA_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(api.RetryPolicy, "delay", lambda self, attempt, retry_after=None: 0.01)
    return path


@pytest.fixture
def fake() -> Iterator[FakeModamoda]:
    server = FakeModamoda().start()
    yield server
    server.stop()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    # Ctrl-C is Python's default KeyboardInterrupt, as in a terminal: ``_thread.interrupt_main`` (the Ctrl-C tests)
    # does nothing where an earlier test in the process left SIGINT ignored or on its default action.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield run
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def logged_in(fake: FakeModamoda, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> FakeModamoda:
    monkeypatch.setenv("MODAMODA_PASSWORD", PASSWORD)
    result = cli("login", "--web-url", fake.url, "--email", "shop@example.com")
    monkeypatch.delenv("MODAMODA_PASSWORD")
    assert result.code == 0, result.err
    return fake


def jpeg(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (16, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_photos(folder: Path, count: int = 5, prefix: str = "shirt") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{prefix}-{i}.jpg" for i in range(1, count + 1)]
    for i, name in enumerate(names):
        (folder / name).write_bytes(jpeg((20 * i, 100, 200)))
    return names


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    make_photos(folder)
    return folder
