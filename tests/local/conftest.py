"""A running local stack for the tests of its web server, S3 proxy, Cognito endpoint and Stripe emulator.

Module-scoped: each test module that asks for it gets its own stack (moto's mock and the process environment are
global, so two stacks must never overlap; ``make demo``'s test starts its own)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.client import ApiClient
from local.stack import LocalSettings, LocalStack

PASSWORD = "Local-Test-Passw0rd"
INDEX_HTML = "<!doctype html><html lang=en><title>Modamoda</title><main id=main>app shell</main></html>\n"


def write_app(root: Path) -> Path:
    """A stand-in PWA directory (the real one, web/app, is another part of the project)."""
    (root / "icons").mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(INDEX_HTML, encoding="utf-8")
    (root / "app.js").write_text("export const ok = true;\n", encoding="utf-8")
    (root / "sw.js").write_text("self.addEventListener('fetch', () => {});\n", encoding="utf-8")
    (root / "styles.css").write_text("body { color: #111; }\n", encoding="utf-8")
    (root / "manifest.webmanifest").write_text(json.dumps({"name": "Modamoda"}), encoding="utf-8")
    (root / "icons" / "icon-192.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    (root / ".hidden").write_text("not served", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    app = write_app(tmp_path_factory.mktemp("app"))
    with LocalStack(LocalSettings(web_app_dir=app)) as running:
        yield running


@dataclass
class User:
    email: str
    tokens: dict[str, str]
    api: ApiClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


def new_user(stack: LocalStack) -> User:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    tokens = stack.sign_up(email, PASSWORD)
    return User(email, tokens, ApiClient(stack.api_url, tokens["access_token"]))


def cognito(stack: LocalStack, operation: str, body: Any, **headers: str) -> requests.Response:
    """A call to the local Cognito endpoint exactly as a browser's SDK makes it."""
    return requests.post(
        f"{stack.web_url}/local/cognito",
        data=body if isinstance(body, bytes | str) else json.dumps(body),
        headers={
            "X-Amz-Target": f"AWSCognitoIdentityProviderService.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
            **headers,
        },
        timeout=30,
    )
