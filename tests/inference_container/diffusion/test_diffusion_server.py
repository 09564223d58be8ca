"""The SageMaker contract with the diffusion engine: engines loaded by the registry from a model directory in
the documented layout, a real HTTP server, full pipeline calls through /invocations."""

from __future__ import annotations

import base64
import http.client
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modamoda_inference.engines import Engine, load_engines
from modamoda_inference.server import create_server
from PIL import Image

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def engines(tiny_model_dir: Path) -> dict[str, Engine]:
    loaded = load_engines(["studio", "diffusion"], tiny_model_dir)  # settings from the environment: CPU
    assert list(loaded) == ["studio", "diffusion"]
    return loaded


@pytest.fixture
def server(engines: dict[str, Engine], serve_in_thread: Any) -> Iterator[Any]:
    with serve_in_thread(create_server("127.0.0.1", 0, engines, max_body_bytes=8 * 1024 * 1024)) as srv:
        yield srv


def post(srv: Any, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=120)
    try:
        conn.request(
            "POST", "/invocations", body=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def job(rgb: np.ndarray, mode: str = "on-model", **options: Any) -> dict[str, Any]:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return {
        "job_id": JOB,
        "mode": mode,
        "image": {"b64": base64.b64encode(buf.getvalue()).decode()},
        "options": options,
    }


def test_ping_reports_both_engines(server: Any) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/ping")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read()) == {"status": "ok", "engines": ["diffusion", "studio"]}
    conn.close()


def test_on_model_through_invocations(server: Any, garment_rgb: np.ndarray) -> None:
    payload = job(
        garment_rgb, seed=21, pose_id="three-quarter-left", background="library:studio-white", size=64
    )
    status, headers, body = post(server, payload)
    assert status == 200, body[:300]
    assert headers["content-type"] == "image/png"
    assert int(headers["content-length"]) == len(body)
    image = Image.open(io.BytesIO(body))
    assert image.format == "PNG"
    assert image.size == (64, 64)
    meta = json.loads(headers["x-modamoda-meta"])
    assert meta["engine"] == "diffusion"
    assert meta["mode"] == "on-model"
    assert meta["output"]["width"] == 64
    engine_meta = meta["engine_meta"]
    assert engine_meta["pose"]["id"] == "three-quarter-left"
    assert engine_meta["runtime"]["ip_adapter"] is True
    assert engine_meta["seed"] == 21

    again = post(server, payload)
    assert again[0] == 200
    assert again[2] == body  # deterministic: the same bytes
    other = post(server, {**payload, "options": {**payload["options"], "seed": 22}})
    assert other[0] == 200
    assert other[2] != body


def test_generative_ghost_through_invocations(
    server: Any, mannequin_rgb: np.ndarray, mannequin_hex: str
) -> None:
    status, headers, body = post(
        server, job(mannequin_rgb, "ghost", engine="diffusion", mannequin=mannequin_hex)
    )
    assert status == 200, body[:300]
    meta = json.loads(headers["x-modamoda-meta"])
    assert meta["engine"] == "diffusion"
    assert meta["engine_meta"]["generated"] is True
    assert Image.open(io.BytesIO(body)).size == (64, 64)
    # without options.engine, ghost still goes to the studio engine
    status, headers, _ = post(server, job(mannequin_rgb, "ghost", mannequin=mannequin_hex))
    assert status == 200
    assert json.loads(headers["x-modamoda-meta"])["engine"] == "studio"


def test_request_errors_are_clear(server: Any, garment_rgb: np.ndarray) -> None:
    status, _, body = post(server, job(garment_rgb, pose_id="moonwalk"))
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_request"
    status, _, body = post(server, job(garment_rgb, size=100))
    assert status == 400
    assert "multiple of 64" in json.loads(body)["error"]["message"]


def test_on_model_without_weights_is_503(
    tmp_path: Path, serve_in_thread: Any, garment_rgb: np.ndarray
) -> None:
    engines = load_engines(["studio", "diffusion"], tmp_path)
    assert list(engines) == ["studio"]
    with serve_in_thread(create_server("127.0.0.1", 0, engines, model_dir=tmp_path)) as srv:
        status, _, body = post(srv, job(garment_rgb))
    assert status == 503
    error = json.loads(body)["error"]
    assert error["code"] == "engine_unavailable"
    assert error["message"].startswith(
        f"on-model needs the diffusion engine and its weights under {tmp_path}"
    )
