"""Engine registry: load the configured engines once, and pick the one a request needs.

``ghost`` runs on ``studio`` unless ``options.engine`` says otherwise; ``on-model`` needs ``diffusion``
(SDXL + ControlNet, weights under the model directory, see :mod:`modamoda_inference.diffusion.weights`). When
it is not configured or its weights are missing or damaged, such requests fail with a clear
:class:`EngineUnavailable`, never with a made-up picture.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from modamoda_inference.engines.base import Engine, EngineResult
from modamoda_inference.errors import EngineUnavailable, ModeNotSupported
from modamoda_inference.schemas import InferenceRequest

__all__ = [
    "DEFAULT_MODEL_DIR",
    "KNOWN_ENGINES",
    "MODE_DEFAULT_ENGINE",
    "Engine",
    "EngineResult",
    "engine_names_from_env",
    "load_engines",
    "model_dir_from_env",
    "select_engine",
]

logger = logging.getLogger("modamoda_inference.engines")

DEFAULT_MODEL_DIR = Path("/opt/ml/model")
KNOWN_ENGINES: tuple[str, ...] = ("studio", "diffusion")
MODE_DEFAULT_ENGINE: dict[str, str] = {"ghost": "studio", "on-model": "diffusion"}


def _factory(name: str) -> Callable[[], Engine] | None:
    """The class of a known engine, or None for one this build does not contain yet."""
    if name == "studio":
        from modamoda_inference.engines.studio import StudioEngine

        return StudioEngine
    if name == "diffusion":
        from modamoda_inference.diffusion.engine import DiffusionEngine

        return DiffusionEngine
    return None


def engine_names_from_env(value: str | None = None) -> list[str]:
    """``MODAMODA_ENGINES`` (comma separated, default ``studio``) → names, in order, without duplicates."""
    raw = os.environ.get("MODAMODA_ENGINES", "studio") if value is None else value
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip().lower()
        if name and name not in names:
            names.append(name)
    return names


def model_dir_from_env() -> Path:
    return Path(os.environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR)


def load_engines(names: Iterable[str], model_dir: Path) -> dict[str, Engine]:
    """Load each named engine once.

    An unknown name is a configuration error (ValueError). A known engine that cannot load here (not built
    in, no weights) is left out with a warning, so the endpoint still serves what it can; requests that need
    it then get :class:`EngineUnavailable`. An empty result means nothing can be served (``/ping`` says 503).
    """
    engines: dict[str, Engine] = {}
    for name in names:
        if name not in KNOWN_ENGINES:
            raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(KNOWN_ENGINES)}")
        factory = _factory(name)
        if factory is None:
            logger.warning(
                "engine not available in this build",
                extra={"fields": {"engine": name, "reason": "not implemented in this container yet"}},
            )
            continue
        engine = factory()
        try:
            engine.load(model_dir)
        except EngineUnavailable as exc:
            logger.warning("engine failed to load", extra={"fields": {"engine": name, "reason": exc.message}})
            continue
        engines[name] = engine
    return engines


def select_engine(
    request: InferenceRequest, engines: Mapping[str, Engine], model_dir: Path | None = None
) -> Engine:
    """The engine for this request, or EngineUnavailable / ModeNotSupported with a clear message."""
    mode = request.mode
    name = request.options.engine or MODE_DEFAULT_ENGINE[mode]
    available = ", ".join(sorted(engines)) or "none"
    engine = engines.get(name)
    if engine is None:
        if name == "diffusion":
            where = model_dir or model_dir_from_env()
            raise EngineUnavailable(
                f"{mode} needs the diffusion engine and its weights under {where}; "
                f"this endpoint runs only: {available}"
            )
        raise EngineUnavailable(f"{mode} needs the {name} engine; this endpoint runs only: {available}")
    if mode not in engine.modes:
        raise ModeNotSupported(
            f"engine {name} does not do mode {mode}; it does: {', '.join(sorted(engine.modes))}"
        )
    if not engine.ready:
        raise EngineUnavailable(f"engine {name} is loaded but not ready")
    return engine
