"""The local web server: what CloudFront, Cognito's public endpoint, S3's browser endpoints and Stripe's hosted
Checkout are in the cloud, on one port of this machine.

- ``/`` — the PWA's files from ``web/app`` (no build step): unknown extension-less paths answer ``index.html``
  (client-side routing), ``Cache-Control: no-cache`` everywhere, the cloud's security headers (a CSP that allows
  this origin and the local API), path traversal refused.
- ``GET /config.json`` — what CDK writes for the PWA in the cloud, with ``cognitoEndpoint`` pointing here.
- ``POST /local/cognito`` — Cognito's JSON protocol (``X-Amz-Target``) for the operations a browser uses,
  answered by moto's Cognito in this process; errors as Cognito sends them (``{"__type", "message"}``). No e-mail
  leaves this machine: the codes Cognito would mail (sign-up, resend, forgot password) go to a local mailbox
  (``LocalWebServer.mailbox``). By default a local sign-up is confirmed at once and any reset code is accepted;
  with ``confirm_sign_ups`` a sign-up waits for its code (``ConfirmSignUp``), and ``ConfirmSignUp`` and
  ``ConfirmForgotPassword`` accept only the newest code mailed for that user, as Cognito does. A confirmed sign-up
  has a verified e-mail address (what entering the mailed code does in the cloud).
- ``/local/s3/<bucket>/<key>`` — the pre-signed URLs the API hands out (``S3_PUBLIC_URL`` rewrites them here).
  moto accepts any POST upload without looking at its policy, so this proxy checks the POST policy itself, as S3
  does (signature, expiry, every condition, ``content-length-range``), before re-posting the form to the emulated
  S3; pre-signed GETs must be signed and unexpired, then are forwarded with their query string.
- ``/local/stripe/api/v1/...`` — the Stripe emulator's API (``STRIPE_API_BASE``), its test Checkout pages
  ``/local/stripe/checkout/<cs_id>`` and the receipts of its charges ``/local/stripe/receipts/<ch_id>``.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import email.message
import email.parser
import email.utils
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

import botocore
import requests
from botocore.exceptions import ClientError, ParamValidationError

from infra.csp import content_security_policy
from local.stripe_emulator import StripeEmulator

log = logging.getLogger("modamoda.local.web")

ROOT = Path(__file__).resolve().parent.parent
WEB_APP_DIR = ROOT / "web" / "app"
SMALL_BODY_BYTES = 1024 * 1024  # Cognito requests, checkout forms, Stripe API calls
UPLOAD_SLACK_BYTES = 1024 * 1024  # form fields and multipart framing around the largest allowed file
READ_CHUNK = 64 * 1024

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".wasm": "application/wasm",
}

# The Cognito operations a browser needs (the contract's list); anything else is refused.
COGNITO_OPERATIONS = frozenset(
    {
        "InitiateAuth",
        "SignUp",
        "ConfirmSignUp",
        "GetUser",
        "GlobalSignOut",
        "RevokeToken",
        "ForgotPassword",
        "ConfirmForgotPassword",
        "ResendConfirmationCode",
    }
)
COGNITO_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
COGNITO_CONTENT_TYPE = "application/x-amz-json-1.1"

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_FORWARDED_HEADERS = (
    "content-type",
    "etag",
    "last-modified",
    "content-disposition",
    "content-range",
    "accept-ranges",
    "cache-control",
    "expires",
    "location",
    "x-amz-version-id",
)
# POST form fields S3 does not require a policy condition for.
S3_POLICY_EXEMPT = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})

Reply = tuple[int, dict[str, str], bytes]


class HttpError(Exception):
    def __init__(self, reply: Reply, close: bool = False) -> None:
        super().__init__(reply[0])
        self.reply, self.close = reply, close


def text_reply(status: int, message: str) -> Reply:
    return (
        status,
        {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"},
        message.encode(),
    )


def json_reply(status: int, body: Any, content_type: str = "application/json") -> Reply:
    return status, {"content-type": content_type, "cache-control": "no-store"}, json.dumps(body).encode()


@dataclass
class Request:
    method: str
    path: str  # percent-encoded, without the query
    query: str
    headers: dict[str, str]  # lower-case names
    read_body: Callable[[int], bytes]  # reads the whole body, refusing more than the given number of bytes


# ---- static files ------------------------------------------------------------------------------------------


def resolve_static(app_dir: Path, raw_path: str) -> Path | None:
    """The file for a URL path: ``None`` when there is none; HttpError(403) for traversal attempts.

    Unknown paths without an extension are the PWA's routes: they get ``index.html``."""
    path = unquote(raw_path)
    if "\x00" in path or "\\" in path:
        raise HttpError(text_reply(403, "forbidden path"))
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise HttpError(text_reply(403, "forbidden path"))
    if any(p.startswith(".") for p in parts):  # dotfiles are not part of the app
        return None
    root = app_dir.resolve()
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root):  # a symlink pointing out of the app
        raise HttpError(text_reply(403, "forbidden path"))
    if candidate.is_dir():
        candidate = candidate / "index.html"
    if candidate.is_file():
        return candidate
    if not parts or "." not in parts[-1]:
        index = root / "index.html"
        return index if index.is_file() else None
    return None


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def static_reply(path: Path, headers: dict[str, str]) -> Reply:
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    out = {
        "content-type": content_type(path),
        "cache-control": "no-cache",
        "etag": etag,
        "last-modified": formatdate(stat.st_mtime, usegmt=True),
    }
    if path.name == "sw.js":
        out["service-worker-allowed"] = "/"
    if etag in {t.strip() for t in headers.get("if-none-match", "").split(",")}:
        return 304, out, b""
    return 200, out, path.read_bytes()


# ---- Cognito -----------------------------------------------------------------------------------------------


def _epoch(value: Any) -> Any:
    """Cognito's JSON protocol sends timestamps as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return calendar.timegm(value.timetuple())
    if isinstance(value, dict):
        return {k: _epoch(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epoch(v) for v in value]
    return value


def _user_key(username: Any) -> str:
    return str(username or "").strip().lower()


def masked_address(address: str) -> str:
    """How Cognito shows where a code went (``CodeDeliveryDetails.Destination``): ``a***@e***``."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain[:1]}***" if domain else f"{address[:1]}***"


class CognitoProxy:
    """Cognito's JSON protocol, answered by the in-process (moto) Cognito client.

    ``mailbox``: every code Cognito would have e-mailed, oldest first, as ``{"to", "username", "purpose", "code",
    "at"}`` (purpose ``sign_up``, ``resend`` or ``forgot_password``; ``at`` in epoch seconds). ``confirm_sign_ups``:
    sign-ups wait for their code, and codes are checked (moto itself accepts any)."""

    def __init__(
        self, client: Any, user_pool_id: str, client_id: str, *, confirm_sign_ups: bool = False
    ) -> None:
        self.client, self.user_pool_id, self.client_id = client, user_pool_id, client_id
        self.confirm_sign_ups = confirm_sign_ups
        self.mailbox: list[dict[str, Any]] = []
        self._codes: dict[tuple[str, str], str] = {}  # (user, "sign_up" | "forgot_password") → the valid code
        self._revoked: set[str] = set()  # moto has no RevokeToken: refresh tokens revoked here
        self._lock = threading.Lock()

    def last_code(self, address: str, purpose: str | None = None) -> str | None:
        """The newest code mailed to ``address`` (any purpose, or the one named), None if none was."""
        with self._lock:
            for mail in reversed(self.mailbox):
                if mail["to"].lower() == address.strip().lower() and purpose in (None, mail["purpose"]):
                    return str(mail["code"])
        return None

    def _mail(self, username: str, purpose: str) -> dict[str, str]:
        """A new code for the user, "sent" to its address: recorded in the mailbox, and the only valid one for its
        kind from now on. Returns Cognito's ``CodeDeliveryDetails``."""
        user = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)
        attributes = {a["Name"]: a.get("Value") for a in user.get("UserAttributes", [])}
        address = str(attributes.get("email") or username)
        code = f"{secrets.randbelow(1_000_000):06d}"
        kind = "forgot_password" if purpose == "forgot_password" else "sign_up"
        with self._lock:
            self._codes[(_user_key(username), kind)] = code
            self.mailbox.append(
                {"to": address, "username": username, "purpose": purpose, "code": code, "at": time.time()}
            )
        log.info("local Cognito: %s code for %s is %s (no e-mail is sent)", purpose, address, code)
        return {"Destination": masked_address(address), "DeliveryMedium": "EMAIL", "AttributeName": "email"}

    def _check_code(self, username: str, kind: str, code: Any) -> None:
        """Refuse a code other than the newest one mailed for this user and kind (``CodeMismatchException``)."""
        self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)  # UserNotFoundException
        with self._lock:
            expected = self._codes.get((_user_key(username), kind))
        if expected is None or not secrets.compare_digest(str(code or ""), expected):
            raise _client_error(
                "CodeMismatchException", "Invalid verification code provided, please try again."
            )

    def _resend(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("ClientId") != self.client_id:
            raise _client_error(
                "ResourceNotFoundException", f"User pool client {params.get('ClientId')} does not exist."
            )
        username = str(params.get("Username") or "")
        user = self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)
        if user.get("UserStatus") == "CONFIRMED":
            raise _client_error("InvalidParameterException", "User is already confirmed.")
        return {"CodeDeliveryDetails": self._mail(username, "resend")}

    @staticmethod
    def error(code: str, message: str, status: int = 400) -> Reply:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {
            "content-type": COGNITO_CONTENT_TYPE,
            "x-amzn-errortype": code,
            "x-amzn-requestid": str(uuid.uuid4()),
            "cache-control": "no-store",
        }
        return status, headers, body

    def handle(self, target: str, body: bytes) -> Reply:
        if not target.startswith(COGNITO_TARGET_PREFIX):
            return self.error("UnknownOperationException", "missing or unknown X-Amz-Target")
        operation = target[len(COGNITO_TARGET_PREFIX) :]
        if operation not in COGNITO_OPERATIONS:
            return self.error("UnknownOperationException", f"{operation} is not available in local mode")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return self.error("SerializationException", "the body is not JSON")
        if not isinstance(params, dict):
            return self.error("SerializationException", "the body must be a JSON object")
        try:
            result = self._call(operation, params)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
            return self.error(
                str(err.get("Code") or "InternalErrorException"), str(err.get("Message") or ""), status
            )
        except ParamValidationError as exc:
            return self.error("InvalidParameterException", str(exc))
        except Exception as exc:  # an operation moto does not implement, a bug: Cognito's 500 shape
            log.exception("local Cognito %s", operation)
            return self.error("InternalErrorException", f"{type(exc).__name__}: {exc}", 500)
        result.pop("ResponseMetadata", None)
        headers = {
            "content-type": COGNITO_CONTENT_TYPE,
            "x-amzn-requestid": str(uuid.uuid4()),
            "cache-control": "no-store",
        }
        return 200, headers, json.dumps(_epoch(result)).encode()

    def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "RevokeToken":
            if params.get("ClientId") != self.client_id:
                raise _client_error("UnauthorizedException", "Client is not authorized to revoke this token")
            with self._lock:
                self._revoked.add(str(params.get("Token", "")))
            return {}
        if operation == "InitiateAuth" and params.get("AuthFlow") in {"REFRESH_TOKEN_AUTH", "REFRESH_TOKEN"}:
            with self._lock:
                revoked = str((params.get("AuthParameters") or {}).get("REFRESH_TOKEN", "")) in self._revoked
            if revoked:
                raise _client_error("NotAuthorizedException", "Refresh Token has been revoked")
        if operation == "ResendConfirmationCode":  # moto has none
            return self._resend(params)
        username = str(params.get("Username", ""))
        if self.confirm_sign_ups and operation in {"ConfirmSignUp", "ConfirmForgotPassword"}:
            kind = "sign_up" if operation == "ConfirmSignUp" else "forgot_password"
            self._check_code(username, kind, params.get("ConfirmationCode"))
        result: dict[str, Any] = getattr(self.client, botocore.xform_name(operation))(**params)
        if operation == "SignUp" and not self.confirm_sign_ups:  # the account is usable at once
            self._verify(username)
            result["UserConfirmed"] = True
            result.pop("CodeDeliveryDetails", None)  # nothing was sent
        elif operation == "SignUp":
            result["UserConfirmed"] = False
            result["CodeDeliveryDetails"] = self._mail(username, "sign_up")
        elif operation == "ConfirmSignUp":  # entering the mailed code verifies the address
            self._verify(username, confirm=False)
            with self._lock:
                self._codes.pop((_user_key(username), "sign_up"), None)
        elif operation == "ForgotPassword":
            with contextlib.suppress(ClientError):  # no such user: Cognito answers alike, and nothing is sent
                result["CodeDeliveryDetails"] = self._mail(username, "forgot_password")
            if not self.confirm_sign_ups:
                log.warning(
                    "local Cognito: password reset for %s; any confirmation code is accepted", username
                )
        elif operation == "ConfirmForgotPassword":
            with self._lock:
                self._codes.pop((_user_key(username), "forgot_password"), None)
        return result

    def _verify(self, username: str, *, confirm: bool = True) -> None:
        if confirm:
            self.client.admin_confirm_sign_up(UserPoolId=self.user_pool_id, Username=username)
        self.client.admin_update_user_attributes(
            UserPoolId=self.user_pool_id,
            Username=username,
            UserAttributes=[{"Name": "email_verified", "Value": "true"}],
        )


def _client_error(code: str, message: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "local"
    )


# ---- S3 ----------------------------------------------------------------------------------------------------


def s3_error(status: int, code: str, message: str, **extra: str | int) -> Reply:
    fields = "".join(f"<{k}>{xml_escape(str(v))}</{k}>" for k, v in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{xml_escape(message)}</Message>{fields}"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId><HostId>local</HostId></Error>"
    )
    return status, {"content-type": "application/xml", "cache-control": "no-store"}, body.encode()


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def parse_multipart(body: bytes, content_type_header: str) -> list[FormPart]:
    """multipart/form-data → its parts, in order. ValueError when the body is not well-formed."""
    header = email.message.Message()
    header["content-type"] = content_type_header
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise ValueError("not multipart/form-data")
    sections = body.split(b"--" + boundary.encode("latin-1"))
    parts: list[FormPart] = []
    for section in sections[1:]:
        if section.startswith(b"--"):  # the closing delimiter
            return parts
        if not section.startswith(b"\r\n") or not section.endswith(b"\r\n"):
            raise ValueError("malformed part")
        head, sep, data = section[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without headers")
        headers = email.parser.HeaderParser().parsestr(head.decode("utf-8", "replace"))
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_param("filename", header="content-disposition")
        if name is None:
            raise ValueError("part without a name")
        parts.append(
            FormPart(
                name=email.utils.collapse_rfc2231_value(name),
                data=data,
                filename=email.utils.collapse_rfc2231_value(filename) if filename is not None else None,
                content_type=headers.get("content-type"),
            )
        )
    raise ValueError("no closing delimiter")


def _signing_check(values: dict[str, str], policy_b64: str, credentials: Any) -> Reply | None:
    """The POST policy's signature (SigV4 or SigV2), with the credentials the API signed it with."""
    if values.get("x-amz-algorithm"):
        if values["x-amz-algorithm"] != "AWS4-HMAC-SHA256":
            return s3_error(400, "InvalidArgument", "unsupported x-amz-algorithm")
        scope = values.get("x-amz-credential", "").split("/")
        if len(scope) != 5:
            return s3_error(400, "InvalidArgument", "malformed x-amz-credential")
        access_key, given = scope[0], values.get("x-amz-signature", "")
        key = ("AWS4" + credentials.secret_key).encode()
        for part in scope[1:]:
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()
    elif values.get("awsaccesskeyid"):
        access_key, given = values["awsaccesskeyid"], values.get("signature", "")
        digest = hmac.new(credentials.secret_key.encode(), policy_b64.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
    else:
        return s3_error(403, "AccessDenied", "Access Denied")
    if access_key != credentials.access_key:
        return s3_error(
            403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        )
    if not hmac.compare_digest(given, expected):
        return s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    return None


def _expiry(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_post_policy(
    bucket: str, fields: list[tuple[str, str]], file_size: int, credentials: Any, now: float
) -> Reply | None:
    """What S3 checks before it accepts a browser POST upload; ``None`` when the upload is allowed.

    moto stores whatever is posted without reading the policy (no signature, expiry, content type or
    ``content-length-range`` check), so the local proxy enforces the policy document itself, as S3 would."""
    values = {k.lower(): v for k, v in fields}
    policy_b64 = values.get("policy")
    if not policy_b64:
        return s3_error(403, "AccessDenied", "Bucket POST must contain a field named 'policy'.")
    denied = _signing_check(values, policy_b64, credentials)
    if denied is not None:
        return denied
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
        expires = _expiry(str(policy["expiration"]))
        conditions = list(policy.get("conditions") or [])
    except (ValueError, KeyError, TypeError):
        return s3_error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
    if now >= expires:
        return s3_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    subject = {**values, "bucket": bucket}
    covered: set[str] = set()
    size_range: tuple[int, int] | None = None
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            label, expected = next(iter(condition.items()))
            op = "eq"
        elif isinstance(condition, list) and len(condition) == 3:
            op = str(condition[0]).lower()
            if op == "content-length-range":
                try:
                    size_range = (int(condition[1]), int(condition[2]))
                except (TypeError, ValueError):
                    return s3_error(400, "InvalidPolicyDocument", "Invalid Policy: content-length-range")
                continue
            label, expected = condition[1], condition[2]
        else:
            return s3_error(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {condition}")
        label = str(label).lstrip("$")
        name = label.lower()
        covered.add(name)
        actual = subject.get(name)
        if op == "eq":
            ok = actual == str(expected)
        elif op == "starts-with":
            ok = actual is not None and actual.startswith(str(expected))
        else:
            return s3_error(400, "InvalidPolicyDocument", f"Invalid Policy: unknown operation {op}")
        if not ok:
            shown = json.dumps([op, f"${label}", expected])
            return s3_error(
                403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {shown}"
            )
    extra = [
        k
        for k, _ in fields
        if k.lower() not in covered | S3_POLICY_EXEMPT and not k.lower().startswith("x-ignore-")
    ]
    if extra:
        return s3_error(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {extra[0]}")
    if size_range is not None:
        low, high = size_range
        if file_size > high:
            return s3_error(
                400,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                ProposedSize=file_size,
                MaxSizeAllowed=high,
            )
        if file_size < low:
            return s3_error(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                ProposedSize=file_size,
                MinSizeAllowed=low,
            )
    return None


def check_presigned_get(query: str, now: float) -> Reply | None:
    """A pre-signed GET must carry a signature and be unexpired (SigV2 ``Expires`` or SigV4 ``X-Amz-Date`` +
    ``X-Amz-Expires``); the buckets are private. The signature itself is not recomputed here."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "Signature" in params and "Expires" in params:
        try:
            expires = float(params["Expires"])
        except ValueError:
            return s3_error(403, "AccessDenied", "Invalid date (should be seconds since epoch)")
    elif "X-Amz-Signature" in params:
        try:
            signed = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
            expires = calendar.timegm(signed.timetuple()) + int(params["X-Amz-Expires"])
        except (KeyError, ValueError):
            return s3_error(
                400, "AuthorizationQueryParametersError", "X-Amz-Date and X-Amz-Expires are required"
            )
    else:
        return s3_error(403, "AccessDenied", "Access Denied")
    if now > expires:
        return s3_error(403, "AccessDenied", "Request has expired")
    return None


# ---- the server --------------------------------------------------------------------------------------------


@dataclass
class WebConfig:
    """What the server needs from the stack; ``api_url`` is set once the local API runs."""

    user_pool_id: str
    client_id: str
    region: str
    session: Any  # the boto3 session moto serves (Cognito client, S3 credentials)
    app_dir: Path = WEB_APP_DIR
    api_url: str = ""
    stripe: StripeEmulator | None = None
    upload_max_bytes: Callable[[], int] = field(default=lambda: 25 * 1024 * 1024)
    extra_origins: tuple[str, ...] = ()
    confirm_sign_ups: bool = False  # sign-ups wait for the mailed code (see CognitoProxy)


class LocalWebServer:
    def __init__(self, config: WebConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True
        self.cognito = CognitoProxy(
            config.session.client("cognito-idp", region_name=config.region),
            config.user_pool_id,
            config.client_id,
            confirm_sign_ups=config.confirm_sign_ups,
        )
        self._thread = threading.Thread(target=self.server.serve_forever, name="local-web", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def mailbox(self) -> list[dict[str, Any]]:
        """The codes local Cognito would have e-mailed, oldest first (``CognitoProxy.mailbox``)."""
        return self.cognito.mailbox

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins the PWA may be opened on (Checkout return URLs, CORS)."""
        return (self.url, f"http://localhost:{self.port}", *self.config.extra_origins)

    def start(self) -> LocalWebServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- routing -----------------------------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if path.startswith("/local/"):
            cors = self._cors(request)
            try:
                status, headers, body = self._local(request)
            except HttpError as exc:
                exc.reply = (exc.reply[0], {**exc.reply[1], **cors}, exc.reply[2])
                raise
            return status, {**headers, **cors}, body
        if path == "/config.json":
            if method not in {"GET", "HEAD"}:
                return text_reply(405, "method not allowed")
            status, headers, body = json_reply(200, self.web_config())
            return status, {**headers, "cache-control": "no-cache"}, body
        if method not in {"GET", "HEAD"}:
            return text_reply(405, "method not allowed")
        found = resolve_static(self.config.app_dir, path)
        if found is None:
            if not (self.config.app_dir / "index.html").is_file():
                return text_reply(404, f"the PWA is not in {self.config.app_dir} (index.html is missing)")
            return text_reply(404, "not found")
        return static_reply(found, request.headers)

    def web_config(self) -> dict[str, str]:
        return {
            "apiUrl": self.config.api_url,
            "region": self.config.region,
            "userPoolId": self.config.user_pool_id,
            "clientId": self.config.client_id,
            "cognitoEndpoint": f"{self.url}/local/cognito",
            "stage": "local",
        }

    def _cors(self, request: Request) -> dict[str, str]:
        origin = request.headers.get("origin", "")
        if origin.rstrip("/").lower() not in {o.lower() for o in self.origins}:
            return {}
        headers = {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": "ETag,x-amzn-RequestId,x-amzn-ErrorType",
            "vary": "origin",
        }
        if request.method == "OPTIONS":
            headers.update(
                {
                    "access-control-allow-methods": "GET,HEAD,POST,OPTIONS",
                    "access-control-allow-headers": request.headers.get("access-control-request-headers", "")
                    or "content-type",
                    "access-control-max-age": "600",
                }
            )
        return headers

    def _local(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if method == "OPTIONS":
            return 204, {}, b""
        if path == "/local/cognito":
            if method != "POST":
                return self.cognito.error("UnknownOperationException", "POST only", 405)
            body = request.read_body(SMALL_BODY_BYTES)
            return self.cognito.handle(request.headers.get("x-amz-target", ""), body)
        if path.startswith("/local/s3/"):
            return self._s3(request)
        stripe = self.config.stripe
        if path.startswith("/local/stripe/api/") and stripe is not None:
            body = request.read_body(SMALL_BODY_BYTES)
            target = path[len("/local/stripe/api") :] + (f"?{request.query}" if request.query else "")
            return stripe.handle_api(method, target, request.headers, body)  # GET parameters: the query
        receipt = re.fullmatch(r"/local/stripe/receipts/(ch_[A-Za-z0-9_]+)", path)
        if receipt is not None and stripe is not None:
            if method not in {"GET", "HEAD"}:
                return text_reply(405, "method not allowed")
            return stripe.receipt_page(receipt.group(1))
        match = re.fullmatch(r"/local/stripe/checkout/(cs_[A-Za-z0-9_]+)(/pay)?", path)
        if match is not None and stripe is not None:
            if method in {"GET", "HEAD"} and not match.group(2):
                return stripe.checkout_page(match.group(1))
            if method == "POST" and match.group(2):
                request.read_body(SMALL_BODY_BYTES)
                return stripe.pay(match.group(1))
            return text_reply(405, "method not allowed")
        return json_reply(404, {"message": f"no local route {path}"})

    def _s3(self, request: Request) -> Reply:
        bucket, _, key = request.path[len("/local/s3/") :].partition("/")
        if not BUCKET_NAME.fullmatch(bucket):
            return s3_error(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=bucket)
        target = f"https://{bucket}.s3.amazonaws.com/{key}"
        now = time.time()
        if request.method == "POST":
            if key:
                return s3_error(405, "MethodNotAllowed", "POST uploads go to the bucket's URL")
            limit = self.config.upload_max_bytes() + UPLOAD_SLACK_BYTES
            body = request.read_body(limit)
            try:
                parts = parse_multipart(body, request.headers.get("content-type", ""))
            except ValueError as exc:
                return s3_error(
                    400,
                    "MalformedPOSTRequest",
                    f"The body of your POST request is not well-formed multipart/form-data ({exc}).",
                )
            files = [p for p in parts if p.name == "file"]
            if len(files) != 1:
                return s3_error(400, "InvalidArgument", "POST requires exactly one file upload per request.")
            upload = files[0]
            # S3 ignores the fields after the file.
            try:
                fields = [(p.name, p.data.decode("utf-8")) for p in parts[: parts.index(upload)]]
            except UnicodeDecodeError:
                return s3_error(400, "MalformedPOSTRequest", "A form field is not UTF-8 text.")
            credentials = self.config.session.get_credentials().get_frozen_credentials()
            refused = check_post_policy(bucket, fields, len(upload.data), credentials, now)
            if refused is not None:
                return refused
            response = requests.post(
                target,
                data=fields,
                files={
                    "file": (
                        upload.filename or "file",
                        upload.data,
                        upload.content_type or "application/octet-stream",
                    )
                },
                timeout=120,
            )
        elif request.method in {"GET", "HEAD"}:
            if not key:
                return s3_error(403, "AccessDenied", "Access Denied")
            refused = check_presigned_get(request.query, now)
            if refused is not None:
                return refused
            forwarded = {
                k: v
                for k, v in request.headers.items()
                if k in {"range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"}
            }
            url = f"{target}?{request.query}" if request.query else target
            # HEAD is answered from a GET (moto's HEAD replies announce a length they do not send); the
            # handler sends the headers only.
            # stream: a revalidation's 304 comes from moto with a stray body that urllib3 refuses to read; a 304
            # has no body, so none is read
            response = requests.get(url, headers=forwarded, timeout=120, stream=True)
            if response.status_code in {204, 304}:
                response.close()
                headers = {k: response.headers[k] for k in S3_FORWARDED_HEADERS if k in response.headers}
                return response.status_code, headers, b""
        else:
            return s3_error(
                405, "MethodNotAllowed", "The specified method is not allowed against this resource."
            )
        headers = {k: response.headers[k] for k in S3_FORWARDED_HEADERS if k in response.headers}
        return response.status_code, headers, response.content

    # ---- the HTTP handler --------------------------------------------------------------------------------------

    def security_headers(self) -> dict[str, str]:
        """The cloud's CloudFront headers (``infra.web``): the same content security policy, with this origin and
        the local API allowed and no HTTPS upgrade (plain HTTP on loopback)."""
        api = urlsplit(self.config.api_url)
        api_origin = f"{api.scheme}://{api.netloc}" if api.netloc else ""
        here = self.origins[:2]
        return {
            # Browser tests that poll with Playwright's wait_for_function bypass the CSP; one test runs under it.
            "content-security-policy": content_security_policy(
                images=here, connect=[*here, api_origin], upgrade_insecure_requests=False
            ),
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "strict-origin-when-cross-origin",
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60  # seconds a client may stall while sending

            def _read_body(self, limit: int) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    raise HttpError(text_reply(411, "Content-Length required"), close=True)
                raw = self.headers.get("Content-Length")
                if raw is None:
                    if self.command == "POST":
                        raise HttpError(text_reply(411, "Content-Length required"), close=True)
                    return b""
                try:
                    length = int(raw)
                except ValueError:
                    raise HttpError(text_reply(400, "bad Content-Length"), close=True) from None
                if length < 0:
                    raise HttpError(text_reply(400, "bad Content-Length"), close=True)
                if length > limit:
                    raise HttpError(
                        text_reply(413, f"the request body is {length} bytes; the limit is {limit}"),
                        close=True,
                    )
                chunks, remaining = [], length
                while remaining:
                    chunk = self.rfile.read(min(READ_CHUNK, remaining))
                    if not chunk:
                        raise HttpError(text_reply(400, "the request body ended early"), close=True)
                    chunks.append(chunk)
                    remaining -= len(chunk)
                self._body_read = True
                return b"".join(chunks)

            def _serve(self) -> None:
                self._body_read = False
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path or "/",
                    query=parts.query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    read_body=self._read_body,
                )
                try:
                    status, headers, body = web.dispatch(request)
                except HttpError as exc:
                    (status, headers, body), self.close_connection = exc.reply, exc.close
                except Exception:
                    log.exception("%s %s", self.command, self.path)
                    status, headers, body = text_reply(500, "internal error")
                if not self._body_read and self.headers.get("Content-Length", "0") not in {"", "0"}:
                    self.close_connection = True  # an unread body must not be taken for the next request
                self.send_response(status)
                for k, v in {**web.security_headers(), **headers}.items():
                    if k not in {"content-length", "connection", "transfer-encoding"}:
                        self.send_header(k, v)
                if status not in {204, 304}:
                    self.send_header("Content-Length", str(len(body)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD" and status not in {204, 304}:
                    self.wfile.write(body)

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):  # every method gets an answer (405 where it makes no sense)
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s - %s", self.address_string(), format % args)

        return Handler
