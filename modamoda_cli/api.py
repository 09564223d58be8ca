"""The Modamoda HTTP API, as a shop's tool uses it: Cognito access tokens renewed before they expire (and once more
on a 401) with ``REFRESH_TOKEN_AUTH``, retries with exponential backoff and jitter on 429, 5xx and connection
errors (``Retry-After`` honoured), error bodies ``{"error": {"code", "message"}}`` turned into ``ApiError``.

One ``Client`` is shared by the upload threads: token renewal is serialised, the connection pool is sized for them.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from modamoda_cli import __version__
from modamoda_cli.auth import AuthError, Cognito, cognito_endpoint
from modamoda_cli.config import Config, Session

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
EARLY_REFRESH_SECONDS = 60.0
USER_AGENT = f"modamoda-cli/{__version__}"


class CliError(Exception):
    """An error the user can act on; ``str()`` is the message shown."""


class NotLoggedIn(CliError):
    def __init__(self, message: str = "Not logged in: run `modamoda login` first.") -> None:
        super().__init__(message)


class SessionExpired(CliError):
    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "Your session has expired or was ended"
            + (f" ({detail})" if detail else "")
            + ": run `modamoda login` again."
        )


class Cancelled(CliError):
    def __init__(self) -> None:
        super().__init__("cancelled")


class ApiError(CliError):
    def __init__(self, status: int, code: str, message: str, details: Any = None, what: str = "") -> None:
        self.status, self.code, self.message, self.details, self.what = status, code, message, details, what
        where = f"{what}: " if what else ""
        super().__init__(f"{where}{self.short()}")

    def short(self) -> str:
        """The message without what was being done."""
        return f"{self.message} ({self.code}, {f'HTTP {self.status}' if self.status else 'no answer'})"

    @classmethod
    def from_response(cls, response: requests.Response, what: str) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            return cls(
                response.status_code,
                str(err.get("code") or "error"),
                str(err.get("message") or response.reason or "error"),
                err.get("details"),
                what,
            )
        if isinstance(body, dict) and body.get(
            "message"
        ):  # API Gateway's own errors: {"message": "Unauthorized"}
            return cls(response.status_code, "http_error", str(body["message"]), None, what)
        text = " ".join(response.text.split())[:200] if response.text else ""
        return cls(response.status_code, "http_error", text or response.reason or "error", None, what)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), 60.0)
            except ValueError:
                pass
        ceiling = min(self.cap, self.base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


def new_http(pool: int = 16) -> requests.Session:
    http = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 4))
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    http.headers["User-Agent"] = USER_AGENT
    return http


class Client:
    def __init__(
        self,
        config: Config,
        *,
        save: Callable[[Config], None] | None = None,
        api_key: str | None = None,
        http: requests.Session | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        if not config.api_url:
            raise NotLoggedIn(
                "No API address configured: run `modamoda login --web-url <the web app's URL>` first."
            )
        self.config = config
        self.api_url = config.api_url.rstrip("/")
        self._save = save
        self.api_key = api_key  # MODAMODA_API_KEY: sign in (again) without a prompt when there is no session
        self.http = http or new_http()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.cancel = cancel or threading.Event()
        self._lock = threading.RLock()

    # ---- session ------------------------------------------------------------------------------------------------

    def cognito(self) -> Cognito:
        endpoint = self.config.cognito_endpoint or (
            cognito_endpoint(self.config.region) if self.config.region else None
        )
        if not endpoint or not self.config.client_id:
            raise NotLoggedIn(
                "No sign-in service configured: run `modamoda login --web-url <the web app's URL>`."
            )
        return Cognito(endpoint, self.config.client_id, http=self.http, timeout=self.timeout)

    def _store(self, session: Session | None) -> None:
        self.config.session = session
        if self._save is not None:
            self._save(self.config)

    def access_token(self) -> str:
        with self._lock:
            session = self.config.session
            if session is None:
                if not self.api_key:
                    raise NotLoggedIn()
                self._store(self.cognito().sign_in_api_key(self.api_key))
            elif session.expires_at - EARLY_REFRESH_SECONDS < time.time():
                self._renew(session.access_token)
            assert self.config.session is not None
            return self.config.session.access_token

    def _renew(self, stale_token: str) -> None:
        """A new access token (unless another thread renewed it already); an ended session is forgotten."""
        with self._lock:
            session = self.config.session
            if session is None:
                raise NotLoggedIn()
            if (
                session.access_token != stale_token
                and session.expires_at - EARLY_REFRESH_SECONDS > time.time()
            ):
                return
            try:
                self._store(self.cognito().refresh(session))
                return
            except AuthError as exc:
                if exc.code == "network":
                    raise requests.ConnectionError(exc.message) from exc
                if exc.code in {"TooManyRequestsException", "LimitExceededException"}:
                    raise ApiError(429, "throttled", exc.message, what="renewing the session") from exc
                reason = exc.message
            if self.api_key:  # an API key in the environment signs in again
                self._store(self.cognito().sign_in_api_key(self.api_key))
                return
            self._store(None)
            raise SessionExpired(reason)

    # ---- HTTP ---------------------------------------------------------------------------------------------------

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        what: str = "",
    ) -> Any:
        what = what or f"{method} {path}"
        url = self.api_url + path
        renewed = False
        attempt = 0
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            try:
                token = self.access_token()
                response = self.http.request(
                    method,
                    url,
                    json=json,
                    params={k: v for k, v in (params or {}).items() if v is not None},
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise ApiError(
                        0, "network", f"{self.api_url} cannot be reached ({type(exc).__name__})", what=what
                    ) from exc
                self.sleep(self.retry.delay(attempt - 1))
                continue
            if response.status_code == 401 and not renewed:
                renewed = True
                self._renew(token)
                continue
            if response.status_code in RETRY_STATUS:
                attempt += 1
                if attempt < self.retry.attempts:
                    self.sleep(self.retry.delay(attempt - 1, response.headers.get("Retry-After")))
                    continue
            if response.status_code == 401:
                error = ApiError.from_response(response, what)
                raise SessionExpired(f"the API answered: {error.message}")
            if response.status_code >= 400:
                raise ApiError.from_response(response, what)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise ApiError(
                    response.status_code, "bad_response", "the answer is not JSON", what=what
                ) from exc

    def post_form(
        self, url: str, fields: dict[str, str], path: Path, filename: str, content_type: str
    ) -> None:
        """A pre-signed POST upload (S3's form upload), retried on 429/5xx/connection errors; other refusals raise
        ``ApiError`` with S3's error code (``AccessDenied`` for an expired policy, ``EntityTooLarge``, ...)."""
        attempt = 0
        what = f"uploading {filename}"
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            try:
                with path.open("rb") as handle:
                    response = self.http.post(
                        url,
                        data=fields,
                        files={"file": (filename, handle, content_type)},
                        timeout=max(self.timeout, 120.0),
                    )
            except (requests.ConnectionError, requests.Timeout) as exc:
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise ApiError(
                        0,
                        "network",
                        f"the storage service cannot be reached ({type(exc).__name__})",
                        what=what,
                    ) from exc
                self.sleep(self.retry.delay(attempt - 1))
                continue
            if response.status_code < 300:
                return
            attempt += 1
            if response.status_code in RETRY_STATUS and attempt < self.retry.attempts:
                self.sleep(self.retry.delay(attempt - 1, response.headers.get("Retry-After")))
                continue
            raise s3_error(response, what)

    def fetch(self, url: str, dest: Path, what: str) -> int:
        """GET a pre-signed URL into ``dest`` (through ``dest.part``, renamed when complete); returns the bytes."""
        attempt = 0
        part = dest.with_name(dest.name + ".part")
        while True:
            if self.cancel.is_set():
                raise Cancelled()
            try:
                with self.http.get(url, stream=True, timeout=max(self.timeout, 120.0)) as response:
                    if response.status_code < 300:
                        size = 0
                        with part.open("wb") as handle:
                            for chunk in response.iter_content(chunk_size=1 << 16):
                                if self.cancel.is_set():
                                    raise Cancelled()
                                handle.write(chunk)
                                size += len(chunk)
                        part.replace(dest)
                        return size
                    attempt += 1
                    if response.status_code in RETRY_STATUS and attempt < self.retry.attempts:
                        self.sleep(self.retry.delay(attempt - 1, response.headers.get("Retry-After")))
                        continue
                    raise s3_error(response, what)
            except (requests.ConnectionError, requests.Timeout) as exc:
                part.unlink(missing_ok=True)
                attempt += 1
                if attempt >= self.retry.attempts:
                    raise ApiError(
                        0, "network", f"the download cannot be reached ({type(exc).__name__})", what=what
                    ) from exc
                self.sleep(self.retry.delay(attempt - 1))
            except BaseException:
                part.unlink(missing_ok=True)
                raise

    # ---- routes -------------------------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/me"))

    def credits(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/credits"))

    def create_batch(self, name: str | None, defaults: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if name:
            body["name"] = name
        if defaults:
            body["defaults"] = defaults
        return dict(self.request("POST", "/v1/batches", json=body, what="creating the batch"))

    def batches(self, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/batches", params={"limit": limit, "cursor": cursor}))

    def batch(self, batch_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/batches/{_seg(batch_id)}", what=f"batch {batch_id}"))

    def upload_slot(self, batch_id: str, filename: str, content_type: str) -> dict[str, Any]:
        return dict(
            self.request(
                "POST",
                f"/v1/batches/{_seg(batch_id)}/uploads",
                json={"filename": filename, "content_type": content_type},
                what=f"preparing the upload of {filename}",
            )
        )

    def seal(self, batch_id: str) -> dict[str, Any]:
        return dict(
            self.request("POST", f"/v1/batches/{_seg(batch_id)}/seal", what=f"sealing batch {batch_id}")
        )

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return dict(
            self.request("POST", f"/v1/batches/{_seg(batch_id)}/cancel", what=f"cancelling batch {batch_id}")
        )

    def batch_jobs(
        self, batch_id: str, status: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            page = self.request(
                "GET",
                f"/v1/batches/{_seg(batch_id)}/jobs",
                params={"limit": page_size, "cursor": cursor, "status": status},
                what=f"the jobs of batch {batch_id}",
            )
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def download_link(self, job_id: str) -> dict[str, Any]:
        return dict(
            self.request("GET", f"/v1/jobs/{_seg(job_id)}/download", what=f"the result of job {job_id}")
        )


def _seg(value: str) -> str:
    return quote(value, safe="")


def s3_error(response: requests.Response, what: str) -> ApiError:
    """S3 answers errors in XML: ``<Error><Code>…</Code><Message>…</Message></Error>``."""
    text = response.text or ""
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    return ApiError(
        response.status_code,
        code.group(1) if code else "http_error",
        message.group(1) if message else (" ".join(text.split())[:200] or response.reason or "refused"),
        what=what,
    )
