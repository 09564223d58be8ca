"""No secret reaches a log line: a whole local stack at DEBUG log level is driven through everything that handles a
secret (password sign-up and sign-in, access/ID/refresh tokens on many API calls, an API key and its tokens, a
webhook signing secret and a signed delivery, a Stripe checkout with the ``sk_test_`` key, the ``whsec_`` secret
and its ``Stripe-Signature``, pre-signed POST/GET signatures, the database application password, a processed job),
while everything written to stdout/stderr (``capfd``, and a copy of the functions' own JSON log stream, as Lambda
would send it to CloudWatch) and every logging record (a handler on the root logger and on every logger that does
not propagate, all at DEBUG) is captured. Then the captured text is searched for every
one of those values and for their distinctive prefixes.

The root logger is put at DEBUG too, as Lambda's advanced logging controls (``ApplicationLogLevel=DEBUG``) would:
then the AWS SDK and HTTP client libraries would write their wire traces (request and response bodies: passwords,
tokens, secret values), unless ``functions.common.observability`` keeps them quiet, which this test proves.
"""

from __future__ import annotations

import io
import logging
import threading
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import stripe

from functions.common import db
from functions.common.observability import logger as powertools
from local.client import ApiClient
from local.stack import LocalSettings, LocalStack
from tests.reliability.books import assert_balanced
from tests.reliability.conftest import PASSWORD, garment_jpeg
from tests.reliability.tally import TALLY
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(LocalSettings(log_level="DEBUG", inference_timeout_seconds=60)) as running:
        yield running


class Capture(logging.Handler):
    """Every record, formatted with its arguments, exception and stack (what any log handler could write)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._seen: set[int] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            if id(record) in self._seen:
                return
            self._seen.add(id(record))
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not fit its message: keep both raw
            text = f"{record.msg!r} % {record.args!r}"
        parts = [record.name, text, repr(record.args)]
        parts += [f"{k}={v!r}" for k, v in vars(record).items() if k not in _STANDARD]  # `extra=` fields
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        if record.stack_info:
            parts.append(record.stack_info)
        with self._guard:
            self.lines.append(" | ".join(parts))


powertools_logger = logging.getLogger(powertools.name)
_STANDARD = set(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {"message", "asctime"}


class Tee(io.TextIOBase):
    """A stream that keeps a copy of what is written and passes it on."""

    def __init__(self, target: Any) -> None:
        self.target, self.copy = target, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return int(self.target.write(text))

    def flush(self) -> None:
        self.target.flush()


@pytest.fixture
def captured(stack: LocalStack) -> Iterator[tuple[Capture, list[Tee]]]:
    """Every record from now on (root and non-propagating loggers at DEBUG), and a copy of what the functions' own
    log handler (powertools: JSON lines on stdout, which is what Lambda sends to CloudWatch) writes: that handler
    holds the stdout of the moment it was created, so ``capfd`` alone would not see it."""
    handler = Capture()
    root = logging.getLogger()
    previous = root.level
    streams = [h for h in powertools_logger.handlers if isinstance(h, logging.StreamHandler)]
    assert streams, "the functions log through powertools' stream handler"
    tees = [Tee(h.stream) for h in streams]
    for stream_handler, tee in zip(streams, tees, strict=True):
        stream_handler.stream = tee
    hooked = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in hooked:
        logger.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler, tees
    finally:
        root.setLevel(previous)
        for logger in hooked:
            logger.removeHandler(handler)
        for stream_handler, tee in zip(streams, tees, strict=True):
            stream_handler.stream = tee.target


def token_parts(token: str) -> list[str]:
    """A JWT and its payload and signature segments (the header segment is the same for every token)."""
    parts = token.split(".")
    return [token, *parts[1:]] if len(parts) == 3 else [token]


def test_no_secret_is_ever_logged(
    stack: LocalStack,
    captured: tuple[Capture, list[Tee]],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records, tees = captured
    secrets: dict[str, str] = {}  # value → what it is

    def secret(value: str, what: str) -> str:
        assert len(value or "") >= 8, what
        secrets[value] = what
        return value

    stripe_signatures: list[str] = []
    real_sign = stripe.WebhookSignature.generate_signature_header

    def recording_sign(payload: str, secret_: str, timestamp: int | None = None) -> str:
        header: str = real_sign(payload, secret_, timestamp)
        stripe_signatures.append(header)
        return header

    monkeypatch.setattr(stripe.WebhookSignature, "generate_signature_header", staticmethod(recording_sign))

    # ---- people: sign-up and sign-in with a password (Cognito directly and through the PWA's endpoint) ----
    secret(PASSWORD, "the users' password")
    email = f"secrets-{uuid.uuid4().hex[:8]}@example.com"
    tokens = stack.sign_up(email, PASSWORD)
    web_sign_in = requests.post(
        f"{stack.web_url}/local/cognito",
        json={
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": stack.client_id,
            "AuthParameters": {"USERNAME": email, "PASSWORD": PASSWORD},
        },
        headers={
            "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
            "Content-Type": "application/x-amz-json-1.1",
        },
        timeout=30,
    )
    assert web_sign_in.status_code == 200, web_sign_in.text
    web_tokens = web_sign_in.json()["AuthenticationResult"]
    refreshed = requests.post(
        f"{stack.web_url}/local/cognito",
        json={
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "ClientId": stack.client_id,
            "AuthParameters": {"REFRESH_TOKEN": web_tokens["RefreshToken"]},
        },
        headers={
            "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
            "Content-Type": "application/x-amz-json-1.1",
        },
        timeout=30,
    )
    assert refreshed.status_code == 200, refreshed.text
    for name, token in (
        ("access", tokens["access_token"]),
        ("id", tokens["id_token"]),
        ("web access", web_tokens["AccessToken"]),
        ("web id", web_tokens["IdToken"]),
        ("refreshed access", refreshed.json()["AuthenticationResult"]["AccessToken"]),
    ):
        for part in token_parts(token):
            secret(part, f"{name} token")
    secret(tokens["refresh_token"], "refresh token")
    secret(web_tokens["RefreshToken"], "refresh token (web)")

    # ---- many API calls with the access token, and a few refused ones (the gateway logs why) ----
    api = ApiClient(stack.api_url, tokens["access_token"])
    me = api.me()
    calls = 0
    for path in (
        "/v1/me",
        "/v1/credits",
        "/v1/credits/ledger",
        "/v1/credits/packs",
        "/v1/jobs",
        "/v1/batches",
        "/v1/account",
        "/v1/account/api-keys",
        "/v1/catalog/poses",
        "/v1/catalog/backgrounds",
        "/v1/account/webhook/deliveries",
    ) * 3:
        api.request("GET", path)
        calls += 1
    for bad in (tokens["id_token"], tokens["refresh_token"], tokens["access_token"][:-4] + "AAAA"):
        refused = requests.get(
            f"{stack.api_url}/v1/me", headers={"Authorization": f"Bearer {bad}"}, timeout=30
        )
        assert refused.status_code == 401
        calls += 1
    missing = requests.get(f"{stack.api_url}/v1/jobs/{uuid.uuid4()}", headers=_bearer(tokens), timeout=30)
    assert missing.status_code == 404

    # ---- an API key: created (its secret), used (Cognito sign-in with it, API calls with its token), revoked ----
    key = api.request("POST", "/v1/account/api-keys", json={"name": "shop sync"})
    secret(key["api_key"], "API key")
    key_secret = key["api_key"].split("_", 2)[2]
    secret(key_secret, "API key secret")
    key_tokens = stack.client("cognito-idp").initiate_auth(
        ClientId=stack.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": f"apikey-{key['id']}@api-keys.modamoda.invalid", "PASSWORD": key_secret},
    )["AuthenticationResult"]
    for part in token_parts(key_tokens["AccessToken"]):
        secret(part, "API key's access token")
    key_api = ApiClient(stack.api_url, key_tokens["AccessToken"])
    assert key_api.me()["tenant_id"] == me["tenant_id"]
    api.request("DELETE", f"/v1/account/api-keys/{key['id']}")
    revoked = requests.get(
        f"{stack.api_url}/v1/me", headers={"Authorization": f"Bearer {key_tokens['AccessToken']}"}, timeout=30
    )
    assert revoked.status_code == 401

    # ---- a webhook: its signing secret, and a signed delivery of the job below ----
    receiver = Receiver().start()
    try:
        hook = api.request("PUT", "/v1/account/webhook", json={"url": receiver.url})
        secret(hook["secret"], "webhook signing secret")

        # ---- a processed job: pre-signed POST, the S3 event, the workflow, a result URL and a download URL ----
        created = api.request(
            "POST", "/v1/jobs", json={"filename": "shirt.jpg", "content_type": "image/jpeg", "mode": "ghost"}
        )
        fields = created["upload"]["fields"]
        secret(fields.get("x-amz-signature") or fields["signature"], "pre-signed POST signature")
        upload = requests.post(
            created["upload"]["url"],
            data=fields,
            files={"file": ("shirt.jpg", garment_jpeg(), "image/jpeg")},
            timeout=60,
        )
        assert upload.status_code == 204, upload.text
        job = api.wait(created["job_id"], timeout=120)
        assert job["status"] == "succeeded", job
        for url in (job["result_url"], api.request("GET", f"/v1/jobs/{job['id']}/download")["url"]):
            query = _query(url)
            secret(query.get("X-Amz-Signature") or query["Signature"], "pre-signed GET signature")
            assert requests.get(url, timeout=30).status_code == 200
        (delivery,) = receiver.wait_for(1)
        secret(delivery.headers["Modamoda-Signature"].split("v1=", 1)[1], "webhook delivery signature")
    finally:
        receiver.stop()

    # ---- Stripe: a checkout through the emulator (sk_test_ key) and its signed webhook (whsec_ secret) ----
    secret(stack.stripe.api_key, "Stripe API key")
    secret(stack.stripe.webhook_secret, "Stripe webhook secret")
    checkout = api.request(
        "POST",
        "/v1/credits/checkout",
        json={
            "pack_id": "starter",
            "success_url": f"{stack.web_url}/#/credits?checkout=done",
            "cancel_url": f"{stack.web_url}/#/credits?checkout=cancelled",
        },
    )
    paid = requests.post(f"{checkout['checkout_url']}/pay", allow_redirects=False, timeout=60)
    assert paid.status_code == 303
    assert api.request("GET", "/v1/credits")["balance"] == me["balance"] - 1 + 10
    assert stripe_signatures, "the emulator signed its webhook"
    for header in stripe_signatures:
        secret(header, "Stripe-Signature header")
        secret(header.split("v1=", 1)[1], "Stripe-Signature v1 value")
    tampered = requests.post(
        f"{stack.api_url}/v1/billing/stripe/webhook",
        data=b'{"id": "evt_forged"}',
        headers={"Stripe-Signature": stripe_signatures[0], "Content-Type": "application/json"},
        timeout=30,
    )
    assert tampered.status_code == 400

    # ---- the database application password (from its Secrets Manager secret), used by every handler ----
    password = db.app_password()
    assert password
    secret(password, "database app password")
    secret(db.dsn(), "database app DSN")

    stack.wait_idle()
    assert_balanced([me["tenant_id"]])

    # ---- the search (a canary logged through the functions' logger proves the capture sees what they log) ----
    canary = f"canary-{uuid.uuid4().hex}"
    powertools.debug("canary", extra={"value": canary})
    out, err = capfd.readouterr()
    functions_out = "".join(tee.copy.getvalue() for tee in tees)
    text = "\n".join([*records.lines, functions_out, out, err])
    lines = len(records.lines) + functions_out.count("\n") + out.count("\n") + err.count("\n")
    assert len(records.lines) > 100, "the capture saw the stack's DEBUG logs"
    assert "api key created" in text  # the handlers' own DEBUG/INFO lines were captured
    assert functions_out.count(canary) == 1
    assert any(canary in line for line in records.lines)
    assert functions_out.count('"service":"modamoda"') > 50, "the functions' JSON log lines were copied"
    found = {what for value, what in secrets.items() if value in text}
    prefixes = {prefix for prefix in ("mmk_", "whsec_", "sk_test_") if prefix in text}
    TALLY.add("security", "log lines scanned", lines)
    TALLY.add("security", "secret values searched", len(secrets) + 3)
    assert not found, f"secrets in the logs: {sorted(found)}\n" + _context(text, secrets)
    assert not prefixes, f"secret prefixes in the logs: {sorted(prefixes)}\n" + _context(
        text, dict.fromkeys(prefixes, "prefix")
    )
    TALLY.zero("security", "secrets found in logs")
    assert calls > 30


def _bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _query(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


def _context(text: str, values: dict[str, str], width: int = 160) -> str:
    """Where each value was found (a few characters around it), to fix the leak."""
    shown = []
    for value, what in values.items():
        at = text.find(value)
        if at >= 0:
            shown.append(f"{what}: …{text[max(0, at - width) : at + len(value) + 40]}…")
    return "\n".join(shown[:20])
