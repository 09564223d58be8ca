"""The pose and background libraries are served to the API and validate job options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.functions.api.test_handler import call

ROOT = Path(__file__).resolve().parents[3]


def test_catalog_copies_match_the_container_manifests() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_catalog.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_pose_and_background_catalogs(api_env: None) -> None:
    status, poses = call("GET", "/v1/catalog/poses")
    assert status == 200
    assert len(poses["poses"]) >= 12
    assert poses["default"] in {p["id"] for p in poses["poses"]}
    assert all({"id", "version", "name", "view", "sha256"} <= p.keys() for p in poses["poses"])
    status, backgrounds = call("GET", "/v1/catalog/backgrounds")
    assert status == 200
    assert len(backgrounds["backgrounds"]) >= 8


def test_on_model_jobs_get_the_default_pose(api_env: None) -> None:
    _, poses = call("GET", "/v1/catalog/poses")
    status, created = call(
        "POST", "/v1/uploads", body={"filename": "a.jpg", "content_type": "image/jpeg", "mode": "on-model"}
    )
    assert status == 201
    assert call("GET", f"/v1/jobs/{created['job_id']}")[1]["options"]["pose_id"] == poses["default"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"pose_id": "moonwalk"}, "pose_id"),
        ({"background": "library:nope"}, "background"),
        ({"background": "red"}, "background"),
        ({"mannequin": "green"}, "mannequin"),
        ({"size": 1000}, "size"),
        ({"background": "transparent", "output_format": "jpeg"}, "transparent"),
    ],
)
def test_unknown_catalog_entries_are_refused(api_env: None, options: dict, field: str) -> None:
    status, body = call(
        "POST",
        "/v1/uploads",
        body={"filename": "a.jpg", "content_type": "image/jpeg", "mode": "on-model", "options": options},
    )
    assert status == 422
    assert field in str(body["error"]["details"])


def test_library_background_and_studio_options_are_kept(api_env: None) -> None:
    _, backgrounds = call("GET", "/v1/catalog/backgrounds")
    chosen = backgrounds["backgrounds"][0]["id"]
    options = {
        "background": f"library:{chosen}",
        "preset": "zalando",
        "shadow": "drop",
        "mannequin": "#20C040",
        "output_format": "avif",
    }
    status, created = call(
        "POST", "/v1/uploads", body={"filename": "a.heic", "content_type": "image/heic", "options": options}
    )
    assert status == 201
    kept = call("GET", f"/v1/jobs/{created['job_id']}")[1]["options"]
    assert {k: kept[k] for k in options} == options
