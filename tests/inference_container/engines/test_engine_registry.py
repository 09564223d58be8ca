"""Engine registry and selection."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from modamoda_inference.engines import engine_names_from_env, load_engines, select_engine
from modamoda_inference.engines.base import Engine, EngineResult, EngineUnavailable, ModeNotSupported
from modamoda_inference.engines.studio import StudioEngine
from modamoda_inference.schemas import InferenceRequest, parse_request
from PIL import Image

JOB = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"


def request(mode: str = "ghost", **options: Any) -> InferenceRequest:
    return parse_request({"job_id": JOB, "mode": mode, "image": {"b64": "eA=="}, "options": options})


def test_load_studio(tmp_path: Path) -> None:
    engines = load_engines(["studio"], tmp_path)
    assert list(engines) == ["studio"]
    assert isinstance(engines["studio"], StudioEngine)
    assert engines["studio"].ready
    assert engines["studio"].modes == frozenset({"ghost"})


def test_diffusion_without_weights_is_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="modamoda_inference"):
        engines = load_engines(["studio", "diffusion"], tmp_path)
    assert list(engines) == ["studio"]
    failures = [r for r in caplog.records if r.getMessage() == "engine failed to load"]
    assert len(failures) == 1
    fields = failures[0].__dict__["fields"]
    assert fields["engine"] == "diffusion"
    assert "modamoda-model.json is missing" in fields["reason"]
    assert fields["reason"].endswith("[manifest_missing]")


def test_unknown_engine_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown engine 'stuido'"):
        load_engines(["stuido"], tmp_path)


def test_engine_names_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_names_from_env(" Studio, diffusion ,studio,, ") == ["studio", "diffusion"]
    monkeypatch.delenv("MODAMODA_ENGINES", raising=False)
    assert engine_names_from_env() == ["studio"]
    monkeypatch.setenv("MODAMODA_ENGINES", "diffusion")
    assert engine_names_from_env() == ["diffusion"]


def test_ghost_uses_studio(studio: StudioEngine) -> None:
    assert select_engine(request("ghost"), {"studio": studio}) is studio
    assert select_engine(request("ghost", engine="studio"), {"studio": studio}) is studio


def test_on_model_without_diffusion_is_a_clear_error(
    studio: StudioEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL_DIR", raising=False)
    with pytest.raises(EngineUnavailable) as info:
        select_engine(request("on-model"), {"studio": studio})
    assert info.value.code == "engine_unavailable"
    assert info.value.http_status == 503
    assert info.value.message == (
        "on-model needs the diffusion engine and its weights under /opt/ml/model; "
        "this endpoint runs only: studio"
    )


def test_ghost_on_diffusion_and_no_engines(studio: StudioEngine) -> None:
    with pytest.raises(EngineUnavailable, match="ghost needs the diffusion engine"):
        select_engine(request("ghost", engine="diffusion"), {"studio": studio}, Path("/models"))
    with pytest.raises(EngineUnavailable, match="runs only: none"):
        select_engine(request("ghost"), {})


def test_on_model_on_studio_is_mode_not_supported(studio: StudioEngine) -> None:
    with pytest.raises(ModeNotSupported, match="engine studio does not do mode on-model") as info:
        select_engine(request("on-model", engine="studio"), {"studio": studio})
    assert info.value.http_status == 400


class FakeDiffusion(Engine):
    name = "diffusion"
    modes = frozenset({"ghost", "on-model"})

    def load(self, model_dir: Path) -> None:
        if not (model_dir / "weights").exists():
            raise EngineUnavailable(f"no weights under {model_dir}")
        self._ready = True

    def run(self, image: Image.Image, request: InferenceRequest) -> EngineResult:
        return EngineResult(image, {"engine": self.name})


def test_engine_interface(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        Engine()
    fake = FakeDiffusion()
    assert not fake.ready
    with pytest.raises(EngineUnavailable, match="no weights"):
        fake.load(tmp_path)
    with pytest.raises(EngineUnavailable, match="not ready"):
        select_engine(request("on-model"), {"diffusion": fake})
    (tmp_path / "weights").mkdir()
    fake.load(tmp_path)
    assert select_engine(request("on-model"), {"diffusion": fake}) is fake
