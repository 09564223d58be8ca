"""The background library: manifest, integrity, rendering to a canvas, and its generator."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from modamoda_inference import backgrounds
from modamoda_inference.errors import EngineUnavailable, InvalidRequest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "inference_container" / "assets" / "backgrounds"


def test_manifest_lists_versioned_files_with_hashes() -> None:
    manifest = backgrounds.manifest()
    assert manifest["version"] >= 1
    ids = backgrounds.library_ids()
    assert {"studio-white", "studio-grey", "paper", "vignette-soft"} <= set(ids)
    assert len(ids) == len(set(ids))
    for entry in manifest["backgrounds"]:
        assert set(entry) >= {"id", "version", "name", "file", "width", "height", "sha256", "bytes"}
        data = (LIBRARY / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"] < 400 * 1024  # small assets
    json.dumps(manifest)  # servable as is


def test_verify_reads_every_asset() -> None:
    assert backgrounds.verify() == backgrounds.library_ids()
    image = backgrounds.load("paper")
    assert image.shape == (1600, 1600, 3)
    assert image.dtype == np.uint8
    assert not image.flags.writeable


@pytest.mark.parametrize(("width", "height"), [(2000, 2000), (1524, 2200), (1600, 2000)])
def test_render_covers_the_canvas(width: int, height: int) -> None:
    out = backgrounds.render("studio-grey", width, height)
    assert out.shape == (height, width, 3)
    assert backgrounds.render("studio-grey", width, height) is out  # cached
    centre, corner = out[height // 2, width // 2].astype(int), out[5, 5].astype(int)
    assert centre.mean() > corner.mean()  # lighter behind the subject


def test_unknown_id_is_a_bad_request() -> None:
    with pytest.raises(InvalidRequest, match="unknown background library id 'nope'; known: studio-white"):
        backgrounds.load("nope")


def test_tampered_asset_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "backgrounds"
    shutil.copytree(LIBRARY, copy)
    (copy / "linen.jpg").write_bytes((copy / "paper.jpg").read_bytes())
    monkeypatch.setenv("MODAMODA_ASSETS_DIR", str(tmp_path))
    backgrounds._source.cache_clear()
    try:
        with pytest.raises(EngineUnavailable, match="does not match the manifest"):
            backgrounds.load("linen")
        backgrounds.load("paper")
    finally:
        backgrounds._source.cache_clear()


def test_missing_library_is_engine_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAMODA_ASSETS_DIR", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="not installed"):
        backgrounds.manifest()


def test_generator_matches_the_shipped_files() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_backgrounds", REPO / "scripts" / "make_backgrounds.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_backgrounds"] = module
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
