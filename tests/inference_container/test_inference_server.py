"""The SageMaker contract over HTTP: /ping and /invocations on a real socket."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import numpy as np
import pytest
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.s3io import S3ImageSource
from modamoda_inference.server import InferenceService, create_server
from moto import mock_aws
from PIL import Image

if TYPE_CHECKING:
    from conftest import RunningServer

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"
MakeGarment = Callable[..., tuple[np.ndarray, np.ndarray]]


@pytest.fixture(scope="module")
def photo_png(make_garment: MakeGarment) -> bytes:
    rgb, _ = make_garment(500, 600, seed=7)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def call(
    srv: RunningServer,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    try:
        headers = {"Content-Type": content_type} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def job(image: dict[str, Any], mode: str = "ghost", **options: Any) -> bytes:
    return json.dumps({"job_id": JOB, "mode": mode, "image": image, "options": options}).encode()


def error_of(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    payload = json.loads(body)
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message"}
    return payload["error"]


def test_ping(running_server: RunningServer) -> None:
    status, headers, body = call(running_server, "GET", "/ping")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "engines": ["studio"]}


def test_ping_without_engines_is_503(serve_in_thread: type[RunningServer]) -> None:
    with serve_in_thread(create_server("127.0.0.1", 0, {})) as srv:
        status, _, body = call(srv, "GET", "/ping")
    assert status == 503
    assert json.loads(body)["status"] == "unavailable"


def test_invocation_with_inline_image(running_server: RunningServer, photo_png: bytes) -> None:
    body = job({"b64": base64.b64encode(photo_png).decode()}, preset="portrait_4_5", background="#F5F5F5")
    status, headers, data = call(running_server, "POST", "/invocations", body)
    assert status == 200, data[:300]
    assert headers["content-type"] == "image/png"
    assert int(headers["content-length"]) == len(data)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    assert image.size == (1600, 2000)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (245, 245, 245)
    meta = json.loads(headers["x-modamoda-meta"])
    assert meta["job_id"] == JOB
    assert meta["engine"] == "studio"
    assert meta["mode"] == "ghost"
    assert meta["output"] == {
        "format": "png",
        "width": 1600,
        "height": 2000,
        "alpha": False,
        "bytes": len(data),
    }
    assert meta["input"]["format"] == "PNG"
    assert meta["input"]["width"] == 500
    assert set(meta["timings_ms"]) == {"parse", "fetch", "decode", "engine", "encode", "total"}


@pytest.mark.parametrize(
    ("fmt", "mime", "magic"), [("jpeg", "image/jpeg", b"\xff\xd8"), ("webp", "image/webp", b"RIFF")]
)
def test_output_formats(
    running_server: RunningServer, photo_png: bytes, fmt: str, mime: str, magic: bytes
) -> None:
    body = job({"b64": base64.b64encode(photo_png).decode()}, output_format=fmt, quality=80)
    status, headers, data = call(running_server, "POST", "/invocations", body)
    assert status == 200
    assert headers["content-type"] == mime
    assert data.startswith(magic)
    assert int(headers["content-length"]) == len(data)


def test_invocation_with_s3_input(
    studio: StudioEngine, photo_png: bytes, aws_env: None, serve_in_thread: type[RunningServer]
) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="tenant-uploads")
        s3.put_bucket_versioning(Bucket="tenant-uploads", VersioningConfiguration={"Status": "Enabled"})
        version = s3.put_object(Bucket="tenant-uploads", Key="t-1/in/shirt.png", Body=photo_png)["VersionId"]
        server = create_server("127.0.0.1", 0, {"studio": studio}, image_source=S3ImageSource())
        with serve_in_thread(server) as srv:
            image = {"s3_uri": "s3://tenant-uploads/t-1/in/shirt.png", "version_id": version}
            status, headers, data = call(srv, "POST", "/invocations", job(image, output_format="jpeg"))
            assert status == 200, data[:300]
            assert headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(data)).size == (2000, 2000)

            status, headers, data = call(
                srv, "POST", "/invocations", job({"s3_uri": "s3://tenant-uploads/nope.png"})
            )
            assert status == 400
            error = error_of(status, headers, data)
            assert error["code"] == "invalid_request"
            assert "does not exist" in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [
        (b"{not json", 400, "invalid_request", "not valid JSON"),
        (job({"b64": "aGk="}, preset="huge"), 400, "invalid_request", "options.preset"),
        (
            job({"b64": base64.b64encode(b"plain text, no image").decode()}),
            400,
            "invalid_image",
            "not an image",
        ),
        (
            job({"b64": "aGk="}, mode="on-model"),
            503,
            "engine_unavailable",
            "on-model needs the diffusion engine",
        ),
        (job({"b64": "aGk="}, mode="on-model", engine="studio"), 400, "mode_not_supported", "does not do"),
    ],
)
def test_errors_are_json(
    running_server: RunningServer, body: bytes, status: int, code: str, fragment: str
) -> None:
    got, headers, data = call(running_server, "POST", "/invocations", body)
    assert got == status
    error = error_of(got, headers, data)
    assert error["code"] == code
    assert fragment in error["message"]


def test_on_model_message_is_exact(running_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_DIR", raising=False)
    status, headers, data = call(
        running_server, "POST", "/invocations", job({"b64": "aGk="}, mode="on-model")
    )
    assert status == 503
    assert error_of(status, headers, data)["message"] == (
        "on-model needs the diffusion engine and its weights under /opt/ml/model; "
        "this endpoint runs only: studio"
    )


def test_not_json_content_type(running_server: RunningServer) -> None:
    status, headers, data = call(running_server, "POST", "/invocations", b"\xff\xd8\xff", "image/jpeg")
    assert status == 415
    assert error_of(status, headers, data)["code"] == "unsupported_media_type"


def test_unknown_route(running_server: RunningServer) -> None:
    for method, body in (("GET", None), ("POST", b"{}")):
        status, headers, data = call(running_server, method, "/predict", body)
        assert status == 404
        assert error_of(status, headers, data)["code"] == "not_found"


def test_oversize_body_is_413(running_server: RunningServer) -> None:
    body = b'{"pad": "' + b"x" * (9 * 1024 * 1024) + b'"}'  # the fixture's server allows 8 MiB
    status, headers, data = call(running_server, "POST", "/invocations", body)
    assert status == 413
    assert error_of(status, headers, data)["code"] == "payload_too_large"
    assert headers.get("connection") == "close"


@pytest.mark.parametrize("expect", ["", "Expect: 100-continue\r\n"])
def test_oversize_declared_length_is_refused_before_reading(
    running_server: RunningServer, expect: str
) -> None:
    with socket.create_connection((running_server.host, running_server.port), timeout=10) as sock:
        head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{expect}"
        sock.sendall((head + f"Content-Length: {10**10}\r\n\r\n").encode())
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413")
    assert b'"payload_too_large"' in reply


def test_keep_alive_and_chunked_body(running_server: RunningServer, photo_png: bytes) -> None:
    conn = http.client.HTTPConnection(running_server.host, running_server.port, timeout=30)
    try:
        for _ in range(2):  # two requests on one connection
            conn.request("GET", "/ping")
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
        body = job({"b64": base64.b64encode(photo_png).decode()}, preset="amazon")
        chunks = iter([body[:1000], body[1000:]])
        conn.request("POST", "/invocations", body=chunks, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data[:300]
        assert resp.getheader("Content-Type") == "image/png"
    finally:
        conn.close()


def test_concurrent_requests_and_ping_stays_fast(running_server: RunningServer, photo_png: bytes) -> None:
    body = job({"b64": base64.b64encode(photo_png).decode()})
    results: list[int] = []

    def work() -> None:
        results.append(call(running_server, "POST", "/invocations", body)[0])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    status, _, _ = call(running_server, "GET", "/ping")
    assert status == 200
    for t in threads:
        t.join(timeout=60)
    assert results == [200, 200, 200]


def test_service_never_raises(studio: StudioEngine) -> None:
    class Broken(StudioEngine):
        def run(self, image: Image.Image, request: Any) -> Any:
            raise RuntimeError("boom")

    broken = Broken()
    broken.load(Path("."))
    service = InferenceService({"studio": broken})
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 200, 200)).save(png, "PNG")
    resp = service.invoke(job({"b64": base64.b64encode(png.getvalue()).decode()}))
    assert resp.status == 500
    assert json.loads(resp.body)["error"]["code"] == "internal_error"
    assert b"boom" not in resp.body


def test_graceful_stop_lets_the_request_in_flight_finish(serve_in_thread: type[RunningServer]) -> None:
    started, release = threading.Event(), threading.Event()

    class Slow(StudioEngine):
        def run(self, image: Image.Image, request: Any) -> Any:
            started.set()
            assert release.wait(20)
            return super().run(image, request)

    slow = Slow()
    slow.load(Path("."))
    server = create_server("127.0.0.1", 0, {"studio": slow})
    srv = serve_in_thread(server)
    srv.thread.start()
    rgb = np.full((64, 64, 3), 220, np.uint8)
    rgb[16:48, 20:44] = (30, 40, 90)
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    body = job({"b64": base64.b64encode(png.getvalue()).decode()})
    got: dict[str, Any] = {}
    client = threading.Thread(target=lambda: got.update(reply=call(srv, "POST", "/invocations", body)))
    client.start()
    assert started.wait(20)
    assert server.active_requests == 1
    stopper = threading.Thread(target=lambda: got.update(drained=server.graceful_stop(timeout=20)))
    stopper.start()
    stopper.join(timeout=0.3)
    assert stopper.is_alive()  # waiting for the request
    release.set()
    client.join(timeout=20)
    stopper.join(timeout=20)
    status, headers, _ = got["reply"]
    assert status == 200
    assert headers["connection"] == "close"
    assert got["drained"] is True
    assert server.active_requests == 0


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def test_transparent_background_gives_an_rgba_png(running_server: RunningServer, photo_png: bytes) -> None:
    status, headers, data = call(
        running_server, "POST", "/invocations", job(_b64(photo_png), background="transparent", shadow="none")
    )
    assert status == 200, data[:300]
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert alpha[0, 0] == 0
    assert alpha[1000, 1000] == 255
    meta = json.loads(headers["x-modamoda-meta"])
    assert meta["output"]["alpha"] is True
    assert meta["engine_meta"]["background"] == "transparent"


def test_avif_output_and_library_background(running_server: RunningServer, photo_png: bytes) -> None:
    body = job(
        _b64(photo_png), output_format="avif", quality=60, background="library:studio-grey", preset="zalando"
    )
    status, headers, data = call(running_server, "POST", "/invocations", body)
    assert status == 200, data[:300]
    assert headers["content-type"] == "image/avif"
    image = Image.open(io.BytesIO(data))
    assert image.format == "AVIF"
    assert image.size == (1524, 2200)
    assert not image.getexif()
    corner = np.asarray(image.convert("RGB"))[5, 5].astype(int)
    assert 180 < corner.mean() < 250  # the studio-grey sweep, not the preset's white
    meta = json.loads(headers["x-modamoda-meta"])
    assert meta["engine_meta"]["background"] == "library:studio-grey"


def test_inside_image_inline(running_server: RunningServer) -> None:
    from bench.studio_data import inside_pair

    main, inside = inside_pair((360, 450))
    body = job(
        _b64(encode_png(main.rgb)),
        mannequin={"color": "#ECEAE5"},
        inside_image=_b64(encode_png(inside)),
        shadow="none",
    )
    status, headers, data = call(running_server, "POST", "/invocations", body)
    assert status == 200, data[:300]
    meta = json.loads(headers["x-modamoda-meta"])
    assert meta["engine_meta"]["hollow"]["source"] == "inside_photo"
    assert meta["inside_input"]["format"] == "PNG"
    out = np.asarray(Image.open(io.BytesIO(data))).astype(int)
    red = (out[..., 0] > 150) & (out[..., 1] < 90) & (out[..., 2] < 90)
    assert red.sum() > 500  # the care label of the inside photo shows in the hollow


@pytest.mark.parametrize(
    ("options", "code", "fragment"),
    [
        ({"background": "library:no-such-backdrop"}, "invalid_request", "unknown background library id"),
        ({"background": "transparent", "output_format": "jpeg"}, "invalid_request", "JPEG has no alpha"),
        (
            {"inside_image": {"b64": base64.b64encode(b"not an image").decode()}},
            "invalid_image",
            "options.inside_image",
        ),
    ],
)
def test_option_errors(
    running_server: RunningServer, photo_png: bytes, options: dict[str, Any], code: str, fragment: str
) -> None:
    status, headers, data = call(running_server, "POST", "/invocations", job(_b64(photo_png), **options))
    assert status == 400
    error = error_of(status, headers, data)
    assert error["code"] == code
    assert fragment in error["message"]


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()
