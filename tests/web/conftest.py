"""Browser tests: the PWA in real headless Chromium (Debian's package, driven by Playwright) against the local
stack. Screenshots land in ``out/screenshots/`` (``SCREENSHOT_DIR`` overrides)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack import ROOT, LocalSettings, LocalStack
from tests.web.support import PASSWORD, Session

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SAMPLES = ROOT / "samples" / "garments"


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM")
    for candidate in (configured, "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "out" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(LocalSettings()) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get when it can)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def session(browser: Any, stack: LocalStack, screenshot_dir: Path) -> Iterator[Session]:
    # Playwright's wait_for_function evaluates strings in the page, which the app's CSP (no eval) forbids; the
    # phone test below runs under the CSP and fails on any violation.
    opened = Session(browser, stack, screenshot_dir, viewport={"width": 1280, "height": 900}, bypass_csp=True)
    yield opened
    errors = opened.unexpected_errors()
    opened.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def customer(stack: LocalStack) -> str:
    email = "browser-customer@modamoda.example"
    stack.sign_up(email, PASSWORD)
    return email
