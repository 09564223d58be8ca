"""A small stand-in for the Modamoda service, for the CLI's unit tests: the web app's ``/config.json``, Cognito's
JSON protocol (``InitiateAuth`` with passwords and refresh tokens, ``RevokeToken``), the batch routes of the bulk
contract, a pre-signed POST target and pre-signed GETs. One threaded HTTP server on 127.0.0.1.

Tests arrange it (users, faults, how fast jobs finish) and inspect what it received."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

from local.web import parse_multipart

CLIENT_ID = "fake-client-id"
TENANT = "tenant-1"
PASSWORD = "Fake-Passw0rd!"
FINAL = ("succeeded", "failed", "rejected", "cancelled")


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.{secrets.token_urlsafe(8)}"


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Fault:
    method: str
    pattern: str  # regex on the path
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, data: Any) -> Reply:
    return Reply(status, json.dumps(data).encode())


def api_error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message}})


def s3_error(status: int, code: str, message: str) -> Reply:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Reply(status, body.encode(), "application/xml")


class FakeModamoda:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, str] = {"shop@example.com": PASSWORD}
        self.access: dict[str, tuple[str, float]] = {}  # access token → (username, expires at)
        self.refresh_tokens: dict[str, str] = {}  # refresh token → username
        self.revoked: list[str] = []
        self.token_ttl = 3600
        self.batches: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}  # job id → job (with "_batch", "_result_key")
        self.objects: dict[str, bytes] = {}
        self.log: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.s3_posts: list[str] = []  # the file name of every accepted pre-signed POST
        self.s3_gets: list[str] = []
        self.cognito_calls: list[tuple[str, str]] = []  # (operation, AuthFlow)
        self.faults: list[Fault] = []
        self.max_bytes = 10_000_000
        self.finish_per_poll = 1000  # jobs finished on each GET of a batch
        self.fail_names: set[str] = set()  # files whose job fails
        self.on_s3_post: Callable[[str], None] | None = None
        self.expired_policies: set[str] = set()  # file names whose first POST is refused as expired
        self.balance = 50
        self._policies: dict[str, str] = {}  # policy → key
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ---- lifecycle and arrangement ------------------------------------------------------------------------------

    def start(self) -> FakeModamoda:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_api_key(self) -> str:
        key_id = str(uuid.uuid4())
        secret = "Sec-" + secrets.token_urlsafe(20)
        self.users[f"apikey-{key_id}@api-keys.modamoda.invalid"] = secret
        return f"mmk_{key_id}_{secret}"

    def fault(self, method: str, pattern: str, status: int, times: int = 1, **headers: str) -> None:
        self.faults.append(Fault(method, pattern, status, times, headers))

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, p in self.log if m == method and re.fullmatch(pattern, p))

    # ---- HTTP -------------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parsed = urlparse(self.path)
                try:
                    reply = fake.dispatch(
                        self.command, parsed.path, parse_qs(parsed.query), dict(self.headers), body
                    )
                except Exception as exc:  # a bug in the fake: visible in the test
                    reply = api_error(500, "fake_bug", f"{type(exc).__name__}: {exc}")
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def dispatch(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Reply:
        with self.lock:
            self.log.append((method, path))
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.fullmatch(fault.pattern, path):
                    fault.times -= 1
                    if path.startswith("/s3/"):
                        reply = s3_error(fault.status, "SlowDown", "Please reduce your request rate.")
                    else:
                        reply = api_error(fault.status, "unavailable", "try again later")
                    reply.headers.update(fault.headers)
                    return reply
        if path == "/config.json":
            return json_reply(
                200,
                {
                    "apiUrl": self.url,
                    "region": "eu-west-1",
                    "userPoolId": "eu-west-1_fake",
                    "clientId": CLIENT_ID,
                    "cognitoEndpoint": f"{self.url}/cognito",
                    "stage": "test",
                },
            )
        if path == "/cognito" and method == "POST":
            return self.cognito(headers, body)
        if path == "/s3/upload" and method == "POST":
            return self.s3_post(headers, body)
        if path.startswith("/s3/obj/") and method == "GET":
            return self.s3_get(unquote(path[len("/s3/obj/") :]), query)
        if path.startswith("/v1/"):
            auth = headers.get("Authorization") or headers.get("authorization") or ""
            token = auth.removeprefix("Bearer ")
            with self.lock:
                found = self.access.get(token)
            if found is None or found[1] < time.time():
                return json_reply(401, {"message": "Unauthorized"})
            try:
                data = json.loads(body) if body else None
            except ValueError:
                return api_error(415, "unsupported_media_type", "JSON only")
            return self.api(method, path, query, data, found[0])
        return json_reply(404, {"message": "not found"})

    # ---- Cognito ----------------------------------------------------------------------------------------------

    def _tokens(self, username: str, refresh: bool) -> dict[str, Any]:
        access = jwt(
            {"sub": username, "exp": time.time() + self.token_ttl, "scope": "aws.cognito.signin.user.admin"}
        )
        with self.lock:
            self.access[access] = (username, time.time() + self.token_ttl)
        result: dict[str, Any] = {
            "AccessToken": access,
            "IdToken": jwt({"email": username, "sub": username}),
            "ExpiresIn": self.token_ttl,
            "TokenType": "Bearer",
        }
        if refresh:
            token = secrets.token_urlsafe(24)
            with self.lock:
                self.refresh_tokens[token] = username
            result["RefreshToken"] = token
        return result

    def cognito(self, headers: dict[str, str], body: bytes) -> Reply:
        target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        operation = target.removeprefix("AWSCognitoIdentityProviderService.")
        params = json.loads(body or b"{}")

        def error(code: str, message: str) -> Reply:
            return Reply(
                400, json.dumps({"__type": code, "message": message}).encode(), "application/x-amz-json-1.1"
            )

        if params.get("ClientId") != CLIENT_ID:
            return error("ResourceNotFoundException", "User pool client does not exist.")
        self.cognito_calls.append((operation, str(params.get("AuthFlow") or "")))
        if operation == "InitiateAuth":
            flow, auth = params.get("AuthFlow"), params.get("AuthParameters") or {}
            if flow == "USER_PASSWORD_AUTH":
                if self.users.get(str(auth.get("USERNAME"))) != auth.get("PASSWORD"):
                    return error("NotAuthorizedException", "Incorrect username or password.")
                result = self._tokens(auth["USERNAME"], refresh=True)
            elif flow == "REFRESH_TOKEN_AUTH":
                username = self.refresh_tokens.get(auth.get("REFRESH_TOKEN", ""))
                if username is None:
                    return error("NotAuthorizedException", "Refresh Token has been revoked")
                result = self._tokens(username, refresh=False)
            else:
                return error("InvalidParameterException", f"flow {flow}")
            return Reply(
                200, json.dumps({"AuthenticationResult": result}).encode(), "application/x-amz-json-1.1"
            )
        if operation == "RevokeToken":
            self.revoked.append(params.get("Token", ""))
            self.refresh_tokens.pop(params.get("Token", ""), None)
            return Reply(200, b"{}", "application/x-amz-json-1.1")
        return error("UnknownOperationException", operation)

    # ---- S3 ---------------------------------------------------------------------------------------------------

    def s3_post(self, headers: dict[str, str], body: bytes) -> Reply:
        parts = parse_multipart(body, headers.get("Content-Type") or headers.get("content-type") or "")
        fields = {p.name: p.data.decode() for p in parts if p.name != "file"}
        files = [p for p in parts if p.name == "file"]
        if not files or parts[-1].name != "file":
            return s3_error(400, "InvalidArgument", "the file must be the last field")
        key = fields.get("key", "")
        with self.lock:
            if self._policies.get(fields.get("policy", "")) != key:
                return s3_error(403, "AccessDenied", "Invalid according to Policy")
        name = key.rsplit("/", 1)[-1]
        if name in self.expired_policies:
            self.expired_policies.discard(name)
            return s3_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        if fields.get("Content-Type") != files[0].content_type:
            return s3_error(
                403, "AccessDenied", "Invalid according to Policy: Policy Condition failed: Content-Type"
            )
        if self.on_s3_post is not None:
            self.on_s3_post(name)
        with self.lock:
            self.objects[key] = files[0].data
            self.s3_posts.append(name)
            self._received(key, files[0].data)
        return Reply(204)

    def s3_get(self, key: str, query: dict[str, list[str]]) -> Reply:
        if query.get("sig") != ["ok"]:
            return s3_error(403, "AccessDenied", "Request has expired")
        with self.lock:
            self.s3_gets.append(key)
            data = self.objects.get(key)
        if data is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return Reply(200, data, "application/octet-stream")

    def presigned_get(self, key: str) -> str:
        return f"{self.url}/s3/obj/{quote(key)}?sig=ok"

    # ---- the batch service --------------------------------------------------------------------------------------

    def new_batch(self, name: str | None = None, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        batch_id = str(uuid.uuid4())
        batch = {
            "id": batch_id,
            "name": name or batch_id,
            "status": "open",
            "defaults": {"mode": "ghost", "options": {}, "priority": "normal", **(defaults or {})},
            "sealed": False,
            "credits_spent": 0,
            "drop_prefix": f"drop/{TENANT}/{batch_id}/",
            "report": None,
            "created_at": now(),
            "finished_at": None,
            "_expected": None,
            "_manifest": {},
            "_files": [],
        }
        with self.lock:
            self.batches[batch_id] = batch
        return batch

    def _received(self, key: str, data: bytes) -> None:
        _, _, batch_id, name = key.split("/", 3)
        batch = self.batches[batch_id]
        if batch["status"] in ("cancelled", "completed", "stopped"):
            return
        if name in ("manifest.json", "manifest.csv"):
            if name == "manifest.json":
                rows = json.loads(data)["files"]
            else:
                rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
            batch["_manifest"] = {r["file"]: r for r in rows}
            batch["_expected"] = len(rows)
            batch["sealed"], batch["status"] = True, "sealed"
            return
        if name in batch["_files"]:
            return  # one job per (batch, file name)
        batch["_files"].append(name)
        row = batch["_manifest"].get(name, {})
        job_id = str(uuid.uuid4())
        mode = row.get("mode") or batch["defaults"]["mode"]
        self.jobs[job_id] = {
            "id": job_id,
            "mode": mode,
            "status": "queued",
            "priority": "normal",
            "filename": name,
            "options": {},
            "cost": None,
            "error": None,
            "progress": {},
            "stages": {},
            "created_at": now(),
            "updated_at": now(),
            "result_url": None,
            "batch_id": batch_id,
            "sku": row.get("sku") or None,
            "_result_key": None,
        }

    def _jobs_of(self, batch_id: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs.values() if j["batch_id"] == batch_id]

    def advance(self, batch_id: str) -> None:
        with self.lock:
            batch = self.batches[batch_id]
            for job in [j for j in self._jobs_of(batch_id) if j["status"] == "queued"][
                : self.finish_per_poll
            ]:
                if job["filename"] in self.fail_names:
                    job["status"] = "failed"
                    job["error"] = {"code": "inference_failed", "message": "the engine failed"}
                    continue
                stem = job["sku"] or job["filename"].rsplit(".", 1)[0]
                key = f"results/{TENANT}/{batch_id}/{stem}-{job['mode']}.png"
                self.objects[key] = b"result of " + job["filename"].encode()
                job.update(status="succeeded", cost=1, _result_key=key)
                batch["credits_spent"] += 1
            jobs = self._jobs_of(batch_id)
            if (
                batch["sealed"]
                and batch["status"] == "sealed"
                and len(jobs) >= (batch["_expected"] or 0)
                and all(j["status"] in FINAL for j in jobs)
            ):
                rows = [{"file": j["filename"], "sku": j["sku"], "status": j["status"]} for j in jobs]
                self.objects[f"results/{TENANT}/{batch_id}/report.json"] = json.dumps(
                    {"files": rows}
                ).encode()
                self.objects[f"results/{TENANT}/{batch_id}/report.csv"] = (
                    "file,sku,status\n"
                    + "".join(f"{r['file']},{r['sku'] or ''},{r['status']}\n" for r in rows)
                ).encode()
                batch.update(status="completed", finished_at=now())

    def view(self, batch: dict[str, Any]) -> dict[str, Any]:
        jobs = self._jobs_of(batch["id"])
        counts = {s: sum(1 for j in jobs if j["status"] == s) for s in ("queued", "processing", *FINAL)}
        expected = batch["_expected"]
        view = {k: v for k, v in batch.items() if not k.startswith("_")}
        view["counts"] = {
            "expected": expected,
            "total": len(jobs),
            "awaiting": max((expected or 0) - len(jobs), 0),
            **counts,
        }
        if batch["status"] == "completed":
            prefix = f"results/{TENANT}/{batch['id']}/"
            view["report"] = {
                "csv_url": self.presigned_get(prefix + "report.csv"),
                "json_url": self.presigned_get(prefix + "report.json"),
            }
        return view

    def job_view(self, job: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in job.items() if not k.startswith("_")}
        if job["_result_key"]:
            view["result_url"] = self.presigned_get(job["_result_key"])
        return view

    def api(self, method: str, path: str, query: dict[str, list[str]], data: Any, user: str) -> Reply:
        parts = path.strip("/").split("/")[1:]
        if parts == ["me"] and method == "GET":
            return json_reply(
                200,
                {
                    "user_id": user,
                    "email": user,
                    "tenant_id": TENANT,
                    "tenant_kind": "personal",
                    "balance": self.balance,
                },
            )
        if parts == ["credits"] and method == "GET":
            return json_reply(200, {"balance": self.balance, "held": 0})
        if parts == ["batches"] and method == "POST":
            data = data or {}
            return json_reply(201, self.view(self.new_batch(data.get("name"), data.get("defaults"))))
        if parts == ["batches"] and method == "GET":
            limit = int(query.get("limit", ["20"])[0])
            start = int(query.get("cursor", ["0"])[0])
            items = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
            page = [self.view(b) for b in items[start : start + limit]]
            more = start + limit < len(items)
            return json_reply(200, {"items": page, "next_cursor": str(start + limit) if more else None})
        if parts[:1] == ["jobs"] and len(parts) == 3 and parts[2] == "download" and method == "GET":
            job = self.jobs.get(parts[1])
            if job is None:
                return api_error(404, "not_found", f"job {parts[1]} not found")
            if job["status"] != "succeeded":
                return api_error(409, "no_result", f"job {parts[1]} has no result")
            name = f"{job['filename'].rsplit('.', 1)[0]}-{job['mode']}.png"
            return json_reply(
                200, {"url": self.presigned_get(job["_result_key"]), "filename": name, "expires_in": 300}
            )
        if parts[:1] != ["batches"] or len(parts) < 2:
            return api_error(404, "not_found", f"no route {method} {path}")
        batch = self.batches.get(parts[1])
        if batch is None:
            return api_error(404, "not_found", f"batch {parts[1]} not found")
        rest = parts[2:]
        if rest == [] and method == "GET":
            self.advance(batch["id"])
            return json_reply(200, self.view(batch))
        if rest == ["uploads"] and method == "POST":
            filename, content_type = data["filename"], data["content_type"]
            if batch["status"] in ("cancelled", "completed", "stopped"):
                return api_error(409, "batch_closed", f"batch {batch['id']} is {batch['status']}")
            key = f"drop/{TENANT}/{batch['id']}/{filename}"
            policy = secrets.token_urlsafe(12)
            with self.lock:
                self._policies[policy] = key
            return json_reply(
                201,
                {
                    "key": key,
                    "upload": {
                        "url": f"{self.url}/s3/upload",
                        "fields": {"key": key, "Content-Type": content_type, "policy": policy},
                    },
                    "expires_in": 300,
                    "max_bytes": self.max_bytes,
                },
            )
        if rest == ["seal"] and method == "POST":
            with self.lock:
                if not batch["sealed"]:
                    batch["sealed"], batch["status"] = True, "sealed"
                    batch["_expected"] = len(self._jobs_of(batch["id"]))
            return json_reply(200, self.view(batch))
        if rest == ["cancel"] and method == "POST":
            with self.lock:
                for job in self._jobs_of(batch["id"]):
                    if job["status"] == "queued":
                        job["status"] = "cancelled"
                batch.update(status="cancelled", finished_at=now())
            return json_reply(200, self.view(batch))
        if rest == ["jobs"] and method == "GET":
            status = query.get("status", [None])[0]
            limit = int(query.get("limit", ["50"])[0])
            start = int(query.get("cursor", ["0"])[0])
            jobs = [
                j for j in self._jobs_of(batch["id"]) if status is None or j["status"] in status.split(",")
            ]
            page = [self.job_view(j) for j in jobs[start : start + limit]]
            more = start + limit < len(jobs)
            return json_reply(200, {"items": page, "next_cursor": str(start + limit) if more else None})
        return api_error(405, "method_not_allowed", f"{method} {path}")
