"""The engine interface every image engine implements, and the errors engines raise.

An engine is loaded once at container start (``load``), says whether it is ``ready`` and which ``modes`` it
does, and turns one decoded RGB photo plus the validated request into one finished image (``run``).
Engines never encode; the server encodes the result in the requested format.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from modamoda_inference.errors import (
    EngineUnavailable,
    InvalidImage,
    InvalidRequest,
    ModamodaError,
    ModeNotSupported,
    NoGarmentFound,
)
from modamoda_inference.schemas import InferenceRequest

__all__ = [
    "Engine",
    "EngineResult",
    "EngineUnavailable",
    "InvalidImage",
    "InvalidRequest",
    "ModamodaError",
    "ModeNotSupported",
    "NoGarmentFound",
]


@dataclass
class EngineResult:
    """The finished picture (RGB or RGBA, final canvas size) and JSON-serialisable metadata (bbox, timings ...)."""

    image: Image.Image
    metadata: dict[str, Any] = field(default_factory=dict)


class Engine(abc.ABC):
    """Base class of the engines (``studio``, later ``diffusion``)."""

    name: str = ""
    modes: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    @abc.abstractmethod
    def load(self, model_dir: Path) -> None:
        """Load weights / warm up. Raise :class:`EngineUnavailable` with a clear message when it cannot."""

    @abc.abstractmethod
    def run(
        self, image: Image.Image, request: InferenceRequest, inside: Image.Image | None = None
    ) -> EngineResult:
        """Turn one upright RGB sRGB photo into the finished image (RGB, or RGBA for a transparent background)
        for ``request``. ``inside`` is the decoded ``options.inside_image`` (the server passes it only when the
        request has one)."""
