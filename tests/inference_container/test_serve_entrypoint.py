"""The ``serve`` script SageMaker runs: starts, answers /ping, and stops cleanly on SIGTERM."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "inference_container" / "serve"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAMODA_", "SAGEMAKER_"))}
    env |= {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MODAMODA_BIND_HOST": "127.0.0.1",
        "MODEL_DIR": str(tmp_path),
    }
    env |= {"MODAMODA_ENGINES": "studio", "AWS_DEFAULT_REGION": "us-east-1", **extra}
    return env


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200:
                assert json.loads(body) == {"status": "ok", "engines": ["studio"]}
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not answer /ping in time")


def test_serve_answers_ping_and_drains_on_sigterm(
    tmp_path: Path, make_garment: Callable[..., tuple[np.ndarray, np.ndarray]]
) -> None:
    assert os.access(SERVE, os.X_OK)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVE), "serve"],
        env=env_for(port, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, proc)
        rgb, _ = make_garment(900, 1100, seed=9)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG")
        body = json.dumps(
            {
                "job_id": "6c7f1f3e-0d2a-4c56-8f0e-2b9a7d1e4c3b",
                "mode": "ghost",
                "image": {"b64": base64.b64encode(buf.getvalue()).decode()},
                "options": {"preset": "shopify"},
            }
        ).encode()
        result: dict[str, object] = {}

        def invoke() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            result["status"], result["bytes"] = resp.status, len(resp.read())
            conn.close()

        worker = threading.Thread(target=invoke)
        worker.start()
        time.sleep(0.15)  # the request is in flight
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=30)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert result["status"] == 200  # the in-flight request finished before the exit
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    messages = [line["msg"] for line in lines]
    assert "listening" in messages
    assert "signal received" in messages
    assert messages[-1] == "stopped"
    listening = next(line for line in lines if line["msg"] == "listening")
    assert listening["port"] == port
    assert listening["engines"] == ["studio"]
    assert any(line["msg"] == "invocation ok" and line["status"] == 200 for line in lines)


def test_bad_engine_config_fails_fast(tmp_path: Path) -> None:
    env = env_for(free_port(), tmp_path, MODAMODA_ENGINES="stuido")
    env["PYTHONPATH"] = str(REPO / "inference_container")
    proc = subprocess.run(
        [sys.executable, "-m", "modamoda_inference"], env=env, capture_output=True, timeout=30, check=False
    )
    assert proc.returncode == 1
    line = json.loads(proc.stdout.decode().splitlines()[-1])
    assert line["msg"] == "cannot start"
    assert "unknown engine 'stuido'" in line["error"]
