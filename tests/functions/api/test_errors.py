"""One error body everywhere: ``{"error": {"code", "message", "details"?}}`` for domain errors, validation, unknown
routes, wrong methods, unsupported bodies and unexpected failures."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from functions.api import handler
from functions.common import api_service
from tests.conftest import FakeLambdaContext, load_event
from tests.functions.api.test_handler import call


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert set(body["error"]) <= {"code", "message", "details"}


def test_unknown_route(api_env: None) -> None:
    status, body = call("GET", "/v1/nowhere")
    assert status == 404
    assert_error(body, "not_found")


def test_wrong_method_is_405_with_allow(api_env: None) -> None:
    event = copy.deepcopy(load_event("apigw_http_get_me.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/jobs"
    event["requestContext"]["http"]["method"] = "PUT"
    response = handler.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 405
    assert_error(json.loads(response["body"]), "method_not_allowed")
    allow = {k.lower(): v for k, v in response.get("headers", {}).items()}.get("allow") or ",".join(
        response.get("multiValueHeaders", {}).get("Allow", [])
    )
    assert {m.strip() for m in allow.split(",")} == {"GET", "POST"}


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[" * 100_000 + "]" * 100_000,  # deeper than the recursion limit: was a 500
        '{"filename": "a.jpg", "content_type": "image/jpeg", "options": {"seed": 1'
        + "0" * 5000
        + "}}",  # was a 500
    ],
    ids=["malformed", "nested", "5000-digit-int"],
)
def test_malformed_json_is_a_validation_error(api_env: None, raw: str) -> None:
    event = copy.deepcopy(load_event("apigw_http_get_me.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/jobs"
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"]["content-type"] = "application/json"
    event["body"] = raw
    response = handler.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 422
    body = json.loads(response["body"])
    assert_error(body, "validation_error")
    assert body["error"]["details"]


def test_validation_errors_list_details(api_env: None) -> None:
    status, body = call("POST", "/v1/jobs", body={"filename": "a.jpg"})
    assert status == 422
    assert_error(body, "validation_error")
    assert all({"loc", "message", "type"} <= set(d) for d in body["error"]["details"])


def test_domain_errors(api_env: None) -> None:
    status, body = call("GET", "/v1/jobs/00000000-0000-0000-0000-000000000000")
    assert status == 404
    assert_error(body, "not_found")
    status, body = call("GET", "/v1/jobs", query="cursor=garbage")
    assert status == 422
    assert_error(body, "invalid_cursor")


def test_unexpected_failures_are_500_with_the_same_body(
    api_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api_service, "me", boom)
    status, body = call("GET", "/v1/me")
    assert status == 500
    assert_error(body, "internal_error")
    assert "secret internals" not in json.dumps(body)


def test_missing_config_is_a_500_not_a_crash(api_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USER_POOL_ID", raising=False)
    status, body = call("POST", "/v1/account/api-keys", body={"name": "k"})
    assert status == 500
    assert_error(body, "config_missing")


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "text/plain",
    ],
)
def test_bodies_must_be_json(api_env: None, content_type: str) -> None:
    event = copy.deepcopy(load_event("apigw_http_get_me.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/account"
    event["requestContext"]["http"]["method"] = "PATCH"
    event["headers"]["content-type"] = content_type
    event["body"] = '{"name": "x"}'
    response = handler.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 415
    assert_error(json.loads(response["body"]), "unsupported_media_type")


@pytest.mark.parametrize("raw", [b"\xd7H", b'{"name": "\xff"}', b"not base64 at all!"])
def test_bodies_must_be_utf8(api_env: None, raw: bytes) -> None:
    event = copy.deepcopy(load_event("apigw_http_get_me.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/account"
    event["requestContext"]["http"]["method"] = "PATCH"
    event["headers"]["content-type"] = "application/json"
    event["body"] = raw.decode("latin-1") if raw.startswith(b"not") else base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    response = handler.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 422
    assert_error(json.loads(response["body"]), "validation_error")


def test_base64_json_bodies_work(api_env: None) -> None:
    event = copy.deepcopy(load_event("apigw_http_get_me.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/account"
    event["requestContext"]["http"]["method"] = "PATCH"
    event["headers"]["content-type"] = "application/json"
    event["body"] = base64.b64encode('{"name": "Café"}'.encode()).decode()
    event["isBase64Encoded"] = True
    response = handler.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["tenant_name"] == "Café"


def test_json_with_charset_is_fine(api_env: None) -> None:
    event = copy.deepcopy(load_event("apigw_http_get_me.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/account"
    event["requestContext"]["http"]["method"] = "PATCH"
    event["headers"]["Content-Type"] = "application/json; charset=utf-8"
    event["body"] = '{"name": "x"}'
    assert handler.lambda_handler(event, FakeLambdaContext())["statusCode"] == 200
