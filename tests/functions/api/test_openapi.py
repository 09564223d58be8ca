"""The OpenAPI document is generated from the handler's routes and models; the committed openapi.json is exactly
what the code generates (``make openapi`` rewrites it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from functions.api import handler

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
import openapi as openapi_script  # noqa: E402

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return handler.openapi_document()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_committed_document_is_the_generated_one() -> None:
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_script.render(), "openapi.json is out of date: run `make openapi`"


def test_check_mode(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "openapi.py"
    run = [sys.executable, str(script)]
    out = tmp_path / "openapi.json"
    assert subprocess.run([*run, "--output", str(out)], check=False, timeout=120).returncode == 0
    assert out.read_text(encoding="utf-8").endswith("}\n")
    assert subprocess.run([*run, "--check", "--output", str(out)], check=False, timeout=120).returncode == 0
    out.write_text("{}\n", encoding="utf-8")
    result = subprocess.run(
        [*run, "--check", "--output", str(out)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 1
    assert "make openapi" in result.stderr


def test_info_servers_and_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["info"]["title"] == "Modamoda API"
    assert document["info"]["version"] == "1.0.0"
    assert document.get("servers", [{"url": "/"}]) == [{"url": "/"}]
    assert document["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
        }
    }
    # priority means lanes: the API says which, in what order, and how long a job may wait
    assert "three lanes served in order" in document["info"]["description"]
    assert "queue_timeout" in document["info"]["description"]
    priority = document["components"]["schemas"]["UploadRequest"]["properties"]["priority"]
    assert "interactive lane" in priority["description"]
    assert "bulk lane" in priority["description"]
    assert "round-robin" in priority["description"]
    job = document["components"]["schemas"]["JobView"]
    assert job["properties"]["lane"]["enum"] == ["interactive", "normal", "bulk"]


def test_every_route_is_documented(document: dict[str, Any]) -> None:
    routes = {(r.method, r.openapi_path) for r in (*handler.app._static_routes, *handler.app._dynamic_routes)}
    assert set(operations(document)) == routes


def test_every_route_but_health_needs_the_bearer_token(document: dict[str, Any]) -> None:
    """All but the liveness probe and the landing page's prices (``GET /v1/public/packs``)."""
    for (method, path), operation in operations(document).items():
        if (method, path) in {("GET", "/v1/health"), ("GET", "/v1/public/packs")}:
            assert "security" not in operation
            assert "security" not in document
        else:
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_every_route_documents_its_body_and_errors(document: dict[str, Any]) -> None:
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for (method, path), operation in operations(document).items():
        responses = operation["responses"]
        ok = [code for code in responses if code.startswith("2")]
        assert len(ok) == 1, (method, path, ok)
        if ok[0] == "204":
            assert "content" not in responses["204"]
        else:
            schema = responses[ok[0]]["content"]["application/json"]["schema"]
            assert (
                schema.get("$ref", "").startswith("#/components/schemas/") or schema.get("type") == "object"
            )
        for code, response in responses.items():
            if code.startswith("4") or code.startswith("5"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == error_ref or error_ref in schema.get("anyOf", []), (method, path, code)
        if "{" in path:
            assert "404" in responses, (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, (method, path)
    ops = operations(document)
    assert "409" in ops[("DELETE", "/v1/jobs/{job_id}")]["responses"]
    assert "409" in ops[("GET", "/v1/jobs/{job_id}/download")]["responses"]
    assert ops[("POST", "/v1/jobs")]["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UploadResponse"
    }
    assert json.dumps(document).count("HTTPValidationError") == 0
