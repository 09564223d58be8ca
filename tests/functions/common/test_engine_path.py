"""Where a job's image is made (``pipeline.engine_path``): ghost work the studio engine does on its Lambda function,
everything else on the GPU endpoint, and all of it on the GPU endpoint when ``GHOST_ON_LAMBDA=false``."""

from __future__ import annotations

from typing import Any

import pytest

from functions.common import pipeline
from functions.common.errors import ConfigError


@pytest.mark.parametrize(
    ("mode", "options", "path"),
    [
        ("ghost", {}, "cpu"),
        (
            "ghost",
            {"segmenter": "auto"},
            "cpu",
        ),  # the function has no weights: auto is the colour model there
        ("ghost", {"segmenter": "studio", "mannequin": "auto"}, "cpu"),
        ("ghost", {"engine": "studio"}, "cpu"),
        (
            "ghost",
            {"segmenter": "learned"},
            "gpu",
        ),  # only the endpoint can have the learned segmenter's weights
        ("ghost", {"engine": "diffusion"}, "gpu"),  # generative ghost
        ("on-model", {}, "gpu"),
        ("on-model", {"segmenter": "studio"}, "gpu"),
    ],
)
def test_the_path_follows_the_work(
    monkeypatch: pytest.MonkeyPatch, mode: str, options: dict[str, Any], path: str
) -> None:
    monkeypatch.delenv("GHOST_ON_LAMBDA", raising=False)
    assert pipeline.engine_path(mode, options) == path


@pytest.mark.parametrize("value", ["false", "0", " FALSE "])
def test_the_switch_sends_everything_to_the_gpu(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GHOST_ON_LAMBDA", value)
    assert pipeline.engine_path("ghost", {}) == "gpu"


def test_a_garbled_switch_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHOST_ON_LAMBDA", "maybe")
    with pytest.raises(ConfigError, match="GHOST_ON_LAMBDA"):
        pipeline.engine_path("ghost", {})
