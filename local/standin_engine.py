"""A stand-in for the GPU engine in benchmarks of the local stack's queueing (``bench/fairness.py``): it answers
``ghost`` requests at once with the decoded photo itself, so the container does almost no work, and the local
async endpoint paces every invocation to a known duration (``LocalSettings.endpoint_invocation_seconds``, which
also installs this engine in place of ``studio``). Never installed by default: ``make demo`` and the tests run the
real engines. Its results are the customer's own photo, not a product image."""

from __future__ import annotations

from pathlib import Path

from modamoda_inference.engines.base import Engine, EngineResult
from modamoda_inference.schemas import InferenceRequest
from PIL import Image


class StandInEngine(Engine):
    name = "stand-in"
    modes = frozenset({"ghost"})

    def load(self, model_dir: Path) -> None:
        self._ready = True

    def run(
        self, image: Image.Image, request: InferenceRequest, inside: Image.Image | None = None
    ) -> EngineResult:
        return EngineResult(image=image, metadata={"stand_in": True})
