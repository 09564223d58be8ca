"""The SageMaker container contract over the standard library's HTTP server.

* ``GET /ping`` → 200 ``{"status": "ok", "engines": [...]}`` once the engines are loaded, else 503; no work.
* ``POST /invocations`` (``application/json``, see :mod:`modamoda_inference.schemas`) → 200 with the image
  bytes (``image/png`` | ``image/jpeg`` | ``image/webp`` | ``image/avif``; RGBA when the background is
  ``transparent``) and an ``X-Modamoda-Meta`` header of compact JSON
  metadata; errors → ``{"error": {"code": ..., "message": ..., "details": ...}}`` with 400 (bad request / image /
  mode), 422 (the engine refused the photo: ``no_garment_found``, ``low_confidence``, ``person_in_photo``), 413
  (body too large), 415 (not JSON), 503 (engine unavailable) or 500.
* When the request has ``metadata_s3_uri``, the job's metadata JSON is also written there (SageMaker's async
  endpoint keeps only the response body): on success ``{"outcome": "succeeded", "quality": {...} | null, ...the
  X-Modamoda-Meta fields}``, on an error after the request was read ``{"outcome": "refused" | "failed", "job_id",
  "mode", "engine", "version", "error": {...}, "quality": {...} | null, "timings_ms": {"total": ...}}``. Best
  effort: a write that fails is logged and the job's answer is unchanged.

Environment: ``SAGEMAKER_BIND_TO_PORT`` (8080), ``MODEL_DIR`` (/opt/ml/model), ``MODAMODA_ENGINES`` (studio),
``MODAMODA_BIND_HOST`` (0.0.0.0), ``MODAMODA_MAX_BODY_BYTES`` (100 MiB), ``MODAMODA_MAX_PIXELS`` (50 MP),
``MODAMODA_MAX_INPUT_BYTES`` (100 MiB), ``MODAMODA_SHUTDOWN_GRACE_S`` (60), ``MODAMODA_LOG_LEVEL`` (INFO).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, cast

from modamoda_inference import __version__
from modamoda_inference.engines import (
    Engine,
    engine_names_from_env,
    load_engines,
    model_dir_from_env,
    select_engine,
)
from modamoda_inference.errors import (
    InvalidImage,
    InvalidRequest,
    ModamodaError,
    PayloadTooLarge,
    PhotoRefused,
    UnsupportedMediaType,
)
from modamoda_inference.imageio import CONTENT_TYPES, decode_image, encode_image
from modamoda_inference.s3io import S3ImageSource, S3MetadataWriter
from modamoda_inference.schemas import ImageRef, InferenceRequest, parse_request

logger = logging.getLogger("modamoda_inference")

DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
META_HEADER = "X-Modamoda-Meta"
_JSON = "application/json"


# -- logging ---------------------------------------------------------------------------------------


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, plus the record's ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: str | None = None) -> None:
    """Structured JSON lines on stdout for the package's loggers (the container's CloudWatch stream)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger("modamoda_inference")
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("MODAMODA_LOG_LEVEL", "INFO")).upper())
    root.propagate = False


# -- the service (HTTP-free) -----------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Mapping[str, Any]) -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode())

    @classmethod
    def error(cls, exc: ModamodaError) -> Response:
        return cls.json(exc.http_status, exc.to_dict())


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1e3, 1)


def quality_of(value: Any) -> dict[str, Any] | None:
    """The ``{"score", "threshold", "checks", "path"}`` part of an engine's quality report (``metadata["quality"]``,
    or a ``low_confidence`` refusal's ``details``), or None when it has no numeric score and threshold."""
    if not isinstance(value, Mapping):
        return None
    score, threshold = value.get("score"), value.get("threshold")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (score, threshold))
    if not numbers:
        return None
    quality: dict[str, Any] = {"score": score, "threshold": threshold}
    if isinstance(value.get("checks"), Mapping):
        quality["checks"] = dict(value["checks"])
    if isinstance(value.get("path"), str):
        quality["path"] = value["path"]  # which segmentation path it is about (backdrop, textured, learned)
    return quality


@dataclass
class _Call:
    """What one invocation has learnt so far (for the metadata document written when it fails)."""

    request: InferenceRequest | None = None
    engine: str | None = None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == _JSON or media.endswith("+json") or media in ("text/json", "application/x-json")


class InferenceService:
    """Request in, image (or JSON error) out: what ``/ping`` and ``/invocations`` do, without the HTTP."""

    def __init__(
        self,
        engines: Mapping[str, Engine],
        *,
        image_source: S3ImageSource | None = None,
        model_dir: Path | None = None,
        max_pixels: int | None = None,
        metadata_writer: S3MetadataWriter | None = None,
    ) -> None:
        self.engines = dict(engines)
        self.image_source = image_source or S3ImageSource()
        self.metadata_writer = metadata_writer or S3MetadataWriter()
        self.model_dir = model_dir
        self.max_pixels = max_pixels

    def ready(self) -> bool:
        return bool(self.engines) and all(e.ready for e in self.engines.values())

    def ping(self) -> Response:
        if self.ready():
            return Response.json(200, {"status": "ok", "engines": sorted(self.engines)})
        return Response.json(503, {"status": "unavailable", "engines": sorted(self.engines)})

    def invoke(
        self, body: bytes, content_type: str | None = _JSON, inference_id: str | None = None
    ) -> Response:
        """Run one job. Never raises: every failure is a JSON error response with a stable code.

        ``inference_id`` (SageMaker's ``X-Amzn-SageMaker-Inference-Id`` header) is only logged.
        """
        start = time.perf_counter()
        job: dict[str, Any] = {"inference_id": inference_id} if inference_id else {}
        call = _Call()
        try:
            response = self._invoke(body, content_type, start, job, call)
        except ModamodaError as exc:
            self._write_failure(call, exc, start, job)
            logger.warning(
                "invocation failed",
                extra={
                    "fields": {
                        **job,
                        "status": exc.http_status,
                        "code": exc.code,
                        "error": exc.message,
                        "ms": _ms(start, time.perf_counter()),
                    }
                },
            )
            return Response.error(exc)
        except Exception:
            logger.exception(
                "invocation crashed", extra={"fields": {**job, "status": 500, "code": "internal_error"}}
            )
            return Response.json(
                500,
                {
                    "error": {
                        "code": "internal_error",
                        "message": "unexpected error in the inference container",
                    }
                },
            )
        logger.info(
            "invocation ok", extra={"fields": {**job, "status": 200, "ms": _ms(start, time.perf_counter())}}
        )
        return response

    def _invoke(
        self, body: bytes, content_type: str | None, start: float, job: dict[str, Any], call: _Call
    ) -> Response:
        if not _is_json(content_type):
            raise UnsupportedMediaType(f"Content-Type must be {_JSON}, got {content_type!r}")
        request = parse_request(body)
        call.request = request
        opts = request.options
        job.update(job_id=request.job_id, mode=request.mode)
        engine = select_engine(request, self.engines, self.model_dir)
        job["engine"] = call.engine = engine.name

        t_fetch = time.perf_counter()
        data = self._read(request.image)
        inside_data = self._read(opts.inside_image) if opts.inside_image is not None else None
        t_decode = time.perf_counter()
        decoded = decode_image(data, max_pixels=self.max_pixels)
        inside = None
        if inside_data is not None:
            try:
                inside = decode_image(inside_data, max_pixels=self.max_pixels)
            except InvalidImage as exc:
                raise InvalidImage(f"options.inside_image: {exc.message}") from exc
        t_engine = time.perf_counter()
        if inside is not None:
            result = engine.run(decoded.image, request, inside=inside.image)
        else:
            result = engine.run(decoded.image, request)
        t_encode = time.perf_counter()
        payload = encode_image(result.image, opts.output_format, opts.quality)
        done = time.perf_counter()

        meta = {
            "job_id": request.job_id,
            "mode": request.mode,
            "engine": engine.name,
            "version": __version__,
            "input": {**decoded.describe(), "bytes": len(data)},
            **({"inside_input": {**inside.describe(), "bytes": len(inside_data or b"")}} if inside else {}),
            "output": {
                "format": opts.output_format,
                "width": result.image.width,
                "height": result.image.height,
                "alpha": result.image.mode == "RGBA",
                "bytes": len(payload),
            },
            "timings_ms": {
                "parse": _ms(start, t_fetch),
                "fetch": _ms(t_fetch, t_decode),
                "decode": _ms(t_decode, t_engine),
                "engine": _ms(t_engine, t_encode),
                "encode": _ms(t_encode, done),
                "total": _ms(start, done),
            },
            "engine_meta": result.metadata,
        }
        job["timings_ms"] = meta["timings_ms"]
        header = json.dumps(meta, separators=(",", ":"), ensure_ascii=True, default=str)
        if request.metadata_s3_uri:
            quality = quality_of(result.metadata.get("quality"))
            self._write_metadata(
                request.metadata_s3_uri, {"outcome": "succeeded", **meta, "quality": quality}, job
            )
        return Response(200, payload, CONTENT_TYPES[opts.output_format], {META_HEADER: header})

    def _write_failure(self, call: _Call, exc: ModamodaError, start: float, job: dict[str, Any]) -> None:
        """The metadata document of a request that was read and then failed (a refusal above all)."""
        request = call.request
        if request is None or not request.metadata_s3_uri:
            return
        document = {
            "outcome": "refused" if isinstance(exc, PhotoRefused) else "failed",
            "job_id": request.job_id,
            "mode": request.mode,
            "engine": call.engine,
            "version": __version__,
            "error": exc.to_dict()["error"],
            "quality": quality_of(exc.details),
            "timings_ms": {"total": _ms(start, time.perf_counter())},
        }
        if isinstance(
            exc.details.get("segmenter"), str
        ):  # the learned stage refused it: say so, with its evidence
            document["segmenter"] = {
                k: v for k, v in exc.details.items() if k not in ("score", "threshold", "checks", "path")
            }
        self._write_metadata(request.metadata_s3_uri, document, job)

    def _write_metadata(self, uri: str, document: Mapping[str, Any], job: dict[str, Any]) -> None:
        if not self.metadata_writer.write(uri, document):
            logger.warning("metadata not written", extra={"fields": {**job, "metadata_s3_uri": uri}})

    def _read(self, ref: ImageRef) -> bytes:
        if ref.s3_uri is not None:
            return self.image_source.fetch(ref.s3_uri, ref.version_id)
        return ref.inline_bytes()


# -- HTTP ------------------------------------------------------------------------------------------


class ModamodaHTTPServer(ThreadingHTTPServer):
    """Threaded server that counts requests in flight, so shutdown can let them finish."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], service: InferenceService, max_body_bytes: int) -> None:
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.closing = False
        self._active = 0
        self._idle = threading.Condition()
        super().__init__(address, InferenceHandler)

    def begin_request(self) -> None:
        with self._idle:
            self._active += 1

    def end_request(self) -> None:
        with self._idle:
            self._active -= 1
            if self._active == 0:
                self._idle.notify_all()

    @property
    def active_requests(self) -> int:
        with self._idle:
            return self._active

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is in flight (True) or ``timeout`` seconds pass (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout=timeout)

    def graceful_stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, let in-flight requests finish (up to ``timeout``), close. Not from a handler."""
        self.closing = True
        self.shutdown()
        drained = self.wait_idle(timeout)
        self.server_close()
        return drained


class InferenceHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"modamoda-inference/{__version__}"
    sys_version = ""
    timeout = 120  # seconds a connection may stay silent (keep-alive idle, slow upload)

    @property
    def app(self) -> ModamodaHTTPServer:
        return cast(ModamodaHTTPServer, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http", extra={"fields": {"client": self.address_string(), "line": format % args}})

    def handle_expect_100(self) -> bool:
        """Refuse an announced oversize body before the client sends it (``Expect: 100-continue``)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > self.app.max_body_bytes:
            self.close_connection = True
            limit = self.app.max_body_bytes
            self._send(
                Response.error(PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} bytes"))
            )
            return False
        return super().handle_expect_100()

    # -- routes

    def do_GET(self) -> None:
        self.app.begin_request()
        try:
            path = self.path.split("?", 1)[0]
            if path == "/ping":
                self._send(self.app.service.ping())
            else:
                self._send(_not_found(path))
        finally:
            self.app.end_request()

    def do_POST(self) -> None:
        self.app.begin_request()
        try:
            path = self.path.split("?", 1)[0]
            if path != "/invocations":
                self._drain_or_close()
                self._send(_not_found(path))
                return
            try:
                body = self._read_body()
            except ModamodaError as exc:
                logger.warning(
                    "request rejected", extra={"fields": {"status": exc.http_status, "code": exc.code}}
                )
                self.close_connection = True
                self._send(Response.error(exc))
                self._linger()
                return
            inference_id = self.headers.get("X-Amzn-SageMaker-Inference-Id")
            self._send(self.app.service.invoke(body, self.headers.get("Content-Type"), inference_id))
        finally:
            self.app.end_request()

    # -- body and response

    def _read_body(self) -> bytes:
        limit = self.app.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise InvalidRequest(f"bad Content-Length header: {raw!r}") from None
        if length < 0:
            raise InvalidRequest(f"bad Content-Length header: {raw!r}")
        if length > limit:
            raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            raise InvalidRequest(f"request body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise InvalidRequest("malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise InvalidRequest("request body ended inside a chunk")
            parts.append(chunk)
            self.rfile.readline(1024)

    def _drain_or_close(self) -> None:
        """Discard a body we do not want, or close the connection after responding when it is large."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= 1024 * 1024 and "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _send(self, response: Response) -> None:
        if self.app.closing:
            self.close_connection = True
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()

    def _linger(self, seconds: float = 2.0, max_bytes: int = 64 * 1024 * 1024) -> None:
        """After an early error response: half-close and read what the client still sends, so the client
        reads our response instead of a connection reset."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.25)
            deadline = time.monotonic() + seconds
            drained = 0
            while time.monotonic() < deadline and drained < max_bytes:
                try:
                    chunk = self.connection.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass


def _not_found(path: str) -> Response:
    message = f"no route {path[:200]!r}; the container serves GET /ping and POST /invocations"
    return Response.json(404, {"error": {"code": "not_found", "message": message}})


def create_server(
    host: str,
    port: int,
    engines: Mapping[str, Engine],
    *,
    max_body_bytes: int | None = None,
    image_source: S3ImageSource | None = None,
    model_dir: Path | None = None,
    max_pixels: int | None = None,
) -> ModamodaHTTPServer:
    """A bound, not yet serving, server (port 0 → ephemeral; read ``server.server_address``).

    Run it with ``server.serve_forever()`` (e.g. in a thread) and stop it with ``server.graceful_stop()``.
    """
    if max_body_bytes is None:
        max_body_bytes = int(os.environ.get("MODAMODA_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
    service = InferenceService(engines, image_source=image_source, model_dir=model_dir, max_pixels=max_pixels)
    return ModamodaHTTPServer((host, port), service, max_body_bytes)


def main(argv: list[str] | None = None) -> int:
    """Load the engines once, serve until SIGTERM/SIGINT, let in-flight requests finish, exit 0."""
    del argv  # SageMaker passes "serve"; there are no options
    configure_logging()
    host = os.environ.get("MODAMODA_BIND_HOST", "0.0.0.0")  # noqa: S104 - the container's published port
    try:
        port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", str(DEFAULT_PORT)))
        grace = float(os.environ.get("MODAMODA_SHUTDOWN_GRACE_S", "60"))
        model_dir = model_dir_from_env()
        names = engine_names_from_env()
        engines = load_engines(names, model_dir)
        server = create_server(host, port, engines, model_dir=model_dir)
    except (ValueError, OSError) as exc:
        logger.error("cannot start", extra={"fields": {"error": str(exc)}})
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("signal received", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
    )
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    logger.info(
        "listening",
        extra={
            "fields": {
                "host": bound_host,
                "port": bound_port,
                "engines": sorted(engines),
                "requested_engines": names,
                "model_dir": str(model_dir),
                "version": __version__,
            }
        },
    )
    if not engines:
        logger.error("no engine loaded: /ping answers 503", extra={"fields": {"requested_engines": names}})
    while not stop.wait(1.0):
        pass
    logger.info("shutting down", extra={"fields": {"in_flight": server.active_requests}})
    drained = server.graceful_stop(timeout=grace)
    thread.join(timeout=5)
    logger.info("stopped", extra={"fields": {"drained": drained}})
    return 0
