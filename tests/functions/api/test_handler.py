"""The HTTP API handler with API Gateway HTTP API events, moto S3 and a real PostgreSQL."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any
from urllib.parse import unquote

import pytest

from functions.api import handler
from tests.conftest import FakeLambdaContext, load_event

UPLOADS = "modamoda-test-uploads"
RESULTS = "modamoda-test-results"


def call(
    method: str,
    path: str,
    *,
    sub: str = "user-a",
    body: Any = None,
    query: str = "",
    claims: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    event = copy.deepcopy(load_event("apigw_http_get_me.json"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    if query:
        # API Gateway decodes the values (and joins repeated names with commas)
        params: dict[str, str] = {}
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            params[unquote(name)] = ",".join(filter(None, (params.get(unquote(name)), unquote(value))))
        event["queryStringParameters"] = params
    jwt_claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    jwt_claims.update(sub=sub, username=sub)
    if claims is not None:
        event["requestContext"]["authorizer"]["jwt"]["claims"] = claims
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-type"] = "application/json"
    response = handler.lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def test_health_needs_no_identity(api_env: None) -> None:
    assert call("GET", "/v1/health", claims={}) == (200, {"status": "ok"})


def test_first_call_provisions_tenant_with_welcome_credits_once(api_env: None) -> None:
    status, me = call("GET", "/v1/me")
    assert status == 200
    assert me["balance"] == 10
    status, again = call("GET", "/v1/me")
    assert again["tenant_id"] == me["tenant_id"]
    assert again["balance"] == 10


def test_missing_subject_is_unauthorized(api_env: None) -> None:
    status, body = call("GET", "/v1/me", claims={"token_use": "id", "sub": "x"})
    assert status == 401
    assert body["error"]["code"] == "unauthorized"


def test_upload_is_a_presigned_post_for_the_tenant_prefix(api_env: None) -> None:
    _, me = call("GET", "/v1/me")
    status, created = call(
        "POST", "/v1/uploads", body={"filename": "../../My Shirt.JPG", "content_type": "image/jpeg"}
    )
    assert status == 201
    fields = created["upload"]["fields"]
    assert fields["key"] == f"uploads/{me['tenant_id']}/{created['job_id']}/My_Shirt.JPG"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, created["max_bytes"]] in policy["conditions"]
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    status, job = call("GET", f"/v1/jobs/{created['job_id']}")
    assert status == 200
    assert job["status"] == "awaiting_upload"
    assert job["options"]["preset"] == "square"


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.gif", "content_type": "image/gif"},
        {"filename": "a.jpg", "content_type": "image/jpeg", "mode": "video"},
        {"filename": "a.jpg", "content_type": "image/jpeg", "options": {"background": "white"}},
        {"filename": "a.jpg", "content_type": "image/jpeg", "surprise": True},
        {"filename": "///", "content_type": "image/jpeg"},
    ],
)
def test_bad_upload_requests_get_a_clear_error_and_create_nothing(
    api_env: None, body: dict[str, Any]
) -> None:
    status, error = call("POST", "/v1/uploads", body=body)
    assert status == 422
    assert error["error"]["code"] == "validation_error"
    assert error["error"]["details"]
    _, page = call("GET", "/v1/jobs", query="status=awaiting_upload")
    assert page["items"] == []


def test_tenants_cannot_see_each_others_jobs(api_env: None) -> None:
    _, created = call(
        "POST", "/v1/uploads", sub="user-a", body={"filename": "a.jpg", "content_type": "image/jpeg"}
    )
    status, body = call("GET", f"/v1/jobs/{created['job_id']}", sub="user-b")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    _, page = call("GET", "/v1/jobs", sub="user-b", query="status=awaiting_upload")
    assert page["items"] == []
    assert call("GET", f"/v1/jobs/{uuid.uuid4()}")[0] == 404
    assert call("GET", "/v1/jobs/not-a-uuid")[0] == 404


def test_job_list_paginates_newest_first(api_env: None) -> None:
    ids = [
        call("POST", "/v1/uploads", body={"filename": f"{i}.jpg", "content_type": "image/jpeg"})[1]["job_id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=2&status=awaiting_upload" + (f"&cursor={cursor}" if cursor else "")
        status, page = call("GET", "/v1/jobs", query=query)
        assert status == 200
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert call("GET", "/v1/jobs", query="cursor=garbage")[0] == 422
    assert call("GET", "/v1/jobs", query="limit=1000")[0] == 422


def test_unknown_route_is_a_json_404(api_env: None) -> None:
    status, body = call("GET", "/v1/nope")
    assert status == 404
    assert body["error"]["code"] == "not_found"
