"""Fixtures for the inference container's tests (all offline, no GPU).

The package lives in ``inference_container/`` (copied to /opt/program in the image); put it on sys.path so
the tests import it as ``modamoda_inference``, as the container and the local runner do.
"""

from __future__ import annotations

import importlib.util
import io
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.image_support import make_icc_profile

REPO = Path(__file__).resolve().parents[2]
CONTAINER_DIR = REPO / "inference_container"
if str(CONTAINER_DIR) not in sys.path:
    sys.path.insert(0, str(CONTAINER_DIR))

from modamoda_inference.engines.studio import StudioEngine  # noqa: E402
from modamoda_inference.server import ModamodaHTTPServer, create_server  # noqa: E402

BACKDROP_TOP = np.array([232.0, 231.0, 229.0])
BACKDROP_BOTTOM = np.array([214.0, 213.0, 211.0])


@pytest.fixture(scope="session")
def make_samples() -> ModuleType:
    """``scripts/make_samples.py`` imported as a module (the sample generator and its ground truth)."""
    path = REPO / "scripts" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module
    spec.loader.exec_module(module)
    return module


def synthetic_garment(
    width: int = 900,
    height: int = 1100,
    colour: tuple[int, int, int] = (40, 70, 130),
    seed: int = 0,
    offset: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """A simple shirt-like shape on a graded light-grey backdrop with noise: (rgb uint8, truth mask bool)."""
    rng = np.random.default_rng(seed)
    ox, oy = offset
    s = min(width, height) / 1000.0
    pts = np.array(
        [
            *[(-180, -300), (-60, -330), (0, -300), (60, -330), (180, -300), (330, -150), (260, -80)],
            *[(190, -140), (200, 330), (-200, 330), (-190, -140), (-260, -80), (-330, -150)],
        ],
        dtype=np.float64,
    )
    pts = pts * s + (width / 2 + ox, height / 2 + oy)
    layer = np.zeros((height, width), np.uint8)
    cv2.fillPoly(layer, [np.round(pts * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    alpha = layer.astype(np.float32) / 255.0
    mask = alpha >= 0.5
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    backdrop = BACKDROP_TOP * (1 - t) + BACKDROP_BOTTOM * t + np.zeros((1, width, 1))
    yy, xx = np.mgrid[0:height, 0:width]
    shade = 1.0 + 0.08 * np.sin(xx / (37.0 * s)) * np.cos(yy / (53.0 * s))
    garment = np.array(colour, np.float64) * shade[..., None]
    a = alpha[..., None]
    photo = garment * a + backdrop * (1 - a) + rng.normal(0.0, 2.0, (height, width, 3))
    return np.clip(photo + 0.5, 0, 255).astype(np.uint8), mask


def encode(rgb: np.ndarray | Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    image = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


@pytest.fixture(scope="session")
def studio() -> StudioEngine:
    engine = StudioEngine()
    engine.load(Path("/nonexistent-model-dir"))
    return engine


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region for moto; never talk to a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


class RunningServer:
    def __init__(self, server: ModamodaHTTPServer) -> None:
        self.server = server
        host, port = server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}"
        self.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> RunningServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.graceful_stop(timeout=10)
        self.thread.join(timeout=10)


@pytest.fixture
def running_server(studio: StudioEngine) -> Iterator[RunningServer]:
    """The real HTTP server with the studio engine on 127.0.0.1, an ephemeral port, in a thread."""
    with RunningServer(
        create_server("127.0.0.1", 0, {"studio": studio}, max_body_bytes=8 * 1024 * 1024)
    ) as srv:
        yield srv


@pytest.fixture(scope="session")
def make_garment() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Factory: ``make_garment(width, height, colour, seed, offset)`` → (rgb, truth mask)."""
    return synthetic_garment


@pytest.fixture(scope="session")
def make_icc() -> Callable[..., bytes]:
    """Factory: ``make_icc(gamma, description)`` → ICC profile bytes."""
    return make_icc_profile


@pytest.fixture(scope="session")
def encode_image_bytes() -> Callable[..., bytes]:
    """Factory: ``encode_image_bytes(rgb_or_image, fmt="PNG", **save_params)`` → file bytes."""
    return encode


@pytest.fixture(scope="session")
def serve_in_thread() -> type[RunningServer]:
    """``with serve_in_thread(create_server(...)) as srv:`` serves in a thread; ``srv.url``, graceful stop."""
    return RunningServer
