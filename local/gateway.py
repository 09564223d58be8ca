"""A local stand-in for API Gateway's HTTP API: verifies Cognito JWTs like the JWT authorizer does, builds the
payload-format-2.0 event, and invokes the API Lambda handler in-process. Like the cloud API, the Stripe webhook
route has no authorizer and goes to the billing function; CORS admits the PWA's origins.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt

from local.lambda_runtime import LocalLambda

log = logging.getLogger("modamoda.local.gateway")
PUBLIC_ROUTES = {("GET", "/v1/health"), ("GET", "/v1/public/packs")}  # no authorizer (infra/api.py)
# Routes with their own integration (and no JWT authorizer), as infra/billing.py wires them in the cloud.
FUNCTION_ROUTES = {("POST", "/v1/billing/stripe/webhook"): "modamoda-billing"}
CORS_HEADERS = "authorization,content-type,idempotency-key"
# The cloud's routes: ``/v1/{proxy+}`` for these methods (infra/api.py API_METHODS); anything else has no route.
ROUTED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


def moto_cognito_jwks() -> dict[str, Any]:
    """The public keys moto's Cognito signs tokens with (what ``/.well-known/jwks.json`` serves)."""
    raw = resources.files("moto.cognitoidp").joinpath("resources/jwks-public.json.gz").read_bytes()
    return dict(json.loads(gzip.decompress(raw)))


class JwtAuthorizer:
    """API Gateway JWT authorizer rules: RS256 signature by a JWKS key, issuer, audience/client_id, expiry."""

    def __init__(
        self,
        issuer: str,
        audiences: list[str],
        jwks: dict[str, Any],
        required_scopes: list[str] | None = None,
    ):
        self.issuer = issuer
        self.audiences = set(audiences)
        self.required_scopes = required_scopes or []
        self._keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}

    def verify(self, authorization: str | None) -> dict[str, Any]:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise PermissionError("missing bearer token")
        token = authorization.split(" ", 1)[1].strip()
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys[header.get("kid", "")]
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
            )
        except (jwt.PyJWTError, KeyError) as exc:
            raise PermissionError(f"invalid token: {exc}") from exc
        audience = claims.get("aud") or claims.get("client_id")
        if audience not in self.audiences:
            raise PermissionError("token audience is not allowed")
        scopes = str(claims.get("scope", "")).split()
        if self.required_scopes and not set(scopes) & set(
            self.required_scopes
        ):  # API Gateway: any one suffices
            raise PermissionError("token lacks the required scope")
        return claims


def build_event(
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    claims: dict[str, Any] | None,
    source_ip: str,
    route_key: str = "$default",
) -> dict[str, Any]:
    parts = urlsplit(raw_path)
    query: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    now = time.time()
    is_text = (
        body == b""
        or "json" in headers.get("content-type", "")
        or headers.get("content-type", "").startswith("text/")
    )
    try:
        text = body.decode("utf-8") if is_text else ""
    except UnicodeDecodeError:  # not text whatever its content type says: passed on base64-encoded
        is_text = False
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text if is_text else base64.b64encode(body).decode(),
        "isBase64Encoded": not is_text,
    }
    if query:
        event["queryStringParameters"] = query
    if claims is not None:
        # API Gateway hands claims to the integration as strings.
        event["requestContext"]["authorizer"] = {
            "jwt": {
                "claims": {
                    k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, list | dict) else str(v)
                    for k, v in claims.items()
                },
                "scopes": str(claims.get("scope", "")).split() or None,
            }
        }
    return event


class LocalHttpApi:
    def __init__(
        self,
        lambdas: LocalLambda,
        authorizer: JwtAuthorizer,
        function: str = "modamoda-api",
        host: str = "127.0.0.1",
        port: int = 0,
        cors_origins: Sequence[str] = ("*",),
    ) -> None:
        self.lambdas, self.authorizer, self.function = lambdas, authorizer, function
        self.cors_origins = {o.rstrip("/").lower() for o in cors_origins}
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="local-http-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalHttpApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def cors(self, origin: str | None) -> dict[str, str]:
        """API Gateway's CORS: the request's origin is echoed when it is allowed; nothing otherwise."""
        if "*" in self.cors_origins:
            allowed = "*"
        elif origin and origin.rstrip("/").lower() in self.cors_origins:
            allowed = origin
        else:
            return {"vary": "origin"}
        return {
            "access-control-allow-origin": allowed,
            "access-control-allow-headers": CORS_HEADERS,
            "access-control-allow-methods": "GET,POST,PUT,PATCH,DELETE,OPTIONS",
            "access-control-max-age": "600",
            "vary": "origin",
        }

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        cors = self.cors(headers.get("origin"))
        if method == "OPTIONS":
            return 204, cors, b""
        route = (method, urlsplit(path).path)
        if method not in ROUTED_METHODS or not route[1].startswith("/v1/"):  # API Gateway: no route matches
            return 404, {**cors, "content-type": "application/json"}, b'{"message":"Not Found"}'
        function, route_key = self.function, "$default"
        if route in FUNCTION_ROUTES:
            function, route_key = FUNCTION_ROUTES[route], f"{method} {route[1]}"
        claims = None
        if route not in PUBLIC_ROUTES and route not in FUNCTION_ROUTES:
            try:
                claims = self.authorizer.verify(headers.get("authorization"))
            except PermissionError as exc:
                log.info("401 %s %s: %s", method, path, exc)
                return (
                    401,
                    {**cors, "content-type": "application/json", "www-authenticate": "Bearer"},
                    b'{"message":"Unauthorized"}',
                )
        event = build_event(method, path, headers, body, claims, source_ip, route_key)
        result, error = self.lambdas.invoke(function, event)
        if error:
            return 500, {**cors, "content-type": "application/json"}, b'{"message":"Internal Server Error"}'
        out_headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        for k, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[k.lower()] = ",".join(map(str, values))
        raw = result.get("body") or ""
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return int(result.get("statusCode", 200)), {**cors, **out_headers}, data

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY_BYTES:
                    self.close_connection = True
                    status, out_headers, data = (
                        413,
                        {**api.cors(headers.get("origin")), "content-type": "application/json"},
                        b'{"message":"Request Entity Too Large"}',
                    )
                else:
                    body = self.rfile.read(length) if length else b""
                    try:
                        status, out_headers, data = api.handle(
                            self.command, self.path, headers, body, self.client_address[0]
                        )
                    except (
                        Exception
                    ):  # the gateway itself failed: API Gateway's 500, not a dropped connection
                        log.exception("%s %s", self.command, self.path)
                        status, out_headers, data = (
                            500,
                            {"content-type": "application/json"},
                            b'{"message":"Internal Server Error"}',
                        )
                self.send_response(status)
                for k, v in out_headers.items():
                    if k != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):  # every method reaches the gateway (TRACE, PROPFIND, ...)
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s - %s", self.address_string(), format % args)

        return Handler
