"""The local web server: the PWA's files, /config.json, the Cognito endpoint, the S3 proxy (with S3's POST policy
enforced) and its limits."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from PIL import Image

from local.stack import LocalStack
from local.web import (
    COGNITO_OPERATIONS,
    LocalWebServer,
    WebConfig,
    _epoch,
    check_post_policy,
    check_presigned_get,
    parse_multipart,
)
from tests.local.conftest import INDEX_HTML, PASSWORD, cognito, new_user, write_app

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "garments" / "tshirt_navy.jpg"


# ---- static files, without a stack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWebServer]:
    base = tmp_path_factory.mktemp("site")
    (base / "secret.txt").write_text("outside the app", encoding="utf-8")
    app = write_app(base / "app")
    (app / "escape").symlink_to(base)
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
    server = LocalWebServer(
        WebConfig(
            user_pool_id="us-east-1_pool",
            client_id="client123",
            region="us-east-1",
            session=session,
            app_dir=app,
            api_url="http://127.0.0.1:8788",
        )
    ).start()
    yield server
    server.stop()


def raw_get(server: LocalWebServer, path: str, method: str = "GET") -> http.client.HTTPResponse:
    """A request with exactly this path (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/styles.css", "text/css; charset=utf-8"),
        ("/manifest.webmanifest", "application/manifest+json"),
        ("/icons/icon-192.png", "image/png"),
    ],
)
def test_files_are_served_with_their_content_type(web: LocalWebServer, path: str, content_type: str) -> None:
    response = requests.get(f"{web.url}{path}", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self';" in response.headers["content-security-policy"]  # no inline scripts, no eval
    assert "http://127.0.0.1:8788" in response.headers["content-security-policy"]  # the API may be called
    assert "service-worker-allowed" not in response.headers


def test_the_service_worker_may_control_the_whole_origin(web: LocalWebServer) -> None:
    response = requests.get(f"{web.url}/sw.js", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["service-worker-allowed"] == "/"


@pytest.mark.parametrize("path", ["/history", "/credits/", "/account/settings", "/jobs/123?x=1"])
def test_app_routes_get_the_app_shell(web: LocalWebServer, path: str) -> None:
    response = requests.get(f"{web.url}{path}", timeout=10)
    assert response.status_code == 200
    assert response.text == INDEX_HTML
    assert response.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize("path", ["/missing.js", "/icons/missing.png", "/.hidden"])
def test_missing_files_are_404(web: LocalWebServer, path: str) -> None:
    assert requests.get(f"{web.url}{path}", timeout=10).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/icons/../../secret.txt",
        "/..%5csecret.txt",
        "/escape/secret.txt",  # a symlink out of the app directory
        "/app.js%00.png",
    ],
)
def test_path_traversal_is_refused(web: LocalWebServer, path: str) -> None:
    response = raw_get(web, path)
    assert response.status == 403


def test_head_conditional_get_and_methods(web: LocalWebServer) -> None:
    full = requests.get(f"{web.url}/app.js", timeout=10)
    head = requests.head(f"{web.url}/app.js", timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    again = requests.get(f"{web.url}/app.js", headers={"If-None-Match": full.headers["etag"]}, timeout=10)
    assert again.status_code == 304
    assert requests.post(f"{web.url}/index.html", data=b"x", timeout=10).status_code == 405


def test_config_json(web: LocalWebServer) -> None:
    response = requests.get(f"{web.url}/config.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.json() == {
        "apiUrl": "http://127.0.0.1:8788",
        "region": "us-east-1",
        "userPoolId": "us-east-1_pool",
        "clientId": "client123",
        "cognitoEndpoint": f"{web.url}/local/cognito",
        "stage": "local",
    }


def test_oversized_bodies_are_refused_before_they_are_read(web: LocalWebServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    conn.putrequest("POST", "/local/cognito")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))  # announced, never sent
    conn.putheader("X-Amz-Target", "AWSCognitoIdentityProviderService.InitiateAuth")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    assert response.getheader("connection") == "close"
    conn.close()

    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    conn.putrequest("POST", "/local/s3/modamoda-local-uploads/")
    conn.putheader("Content-Length", str(25 * 1024 * 1024 + 2 * 1024 * 1024))  # file limit + 1 MiB exceeded
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()

    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    conn.putrequest("POST", "/local/cognito")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()


def test_unknown_local_routes_are_404(web: LocalWebServer) -> None:
    assert requests.get(f"{web.url}/local/nothing", timeout=10).status_code == 404
    assert requests.get(f"{web.url}/local/s3/Not_A_Bucket/x", timeout=10).status_code == 400


# ---- S3 POST policy, unit ------------------------------------------------------------------------------------

CREDENTIALS = boto3.Session(
    aws_access_key_id="AKIDLOCAL", aws_secret_access_key="local-secret", region_name="us-east-1"
)


@pytest.fixture(params=["s3v4", "s3"])
def signed_post(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Any]:
    s3 = CREDENTIALS.client("s3", config=Config(signature_version=request.param))
    post = s3.generate_presigned_post(
        Bucket="bucket-one",
        Key="uploads/t/j/a.jpg",
        Fields={"Content-Type": "image/jpeg"},
        Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 100]],
        ExpiresIn=300,
    )
    return post, CREDENTIALS.get_credentials().get_frozen_credentials()


def code(reply: Any) -> str | None:
    if reply is None:
        return None
    status, _, body = reply
    return f"{status} {body.decode().split('<Code>')[1].split('</Code>')[0]}"


def test_a_post_within_its_policy_is_allowed(signed_post: tuple[dict[str, Any], Any]) -> None:
    post, creds = signed_post
    fields = list(post["fields"].items())
    assert check_post_policy("bucket-one", fields, 100, creds, time.time()) is None
    assert check_post_policy("bucket-one", [*fields, ("x-ignore-me", "1")], 1, creds, time.time()) is None


def test_s3_post_policy_violations(signed_post: tuple[dict[str, Any], Any]) -> None:
    post, creds = signed_post
    fields = dict(post["fields"])
    now = time.time()

    def check(
        size: int = 10, at: float = now, bucket: str = "bucket-one", **changes: str | None
    ) -> str | None:
        values = {**fields, **changes}
        items = [(k, v) for k, v in values.items() if v is not None]
        return code(check_post_policy(bucket, items, size, creds, at))

    assert check(size=101) == "400 EntityTooLarge"
    assert check(size=0) == "400 EntityTooSmall"
    assert (
        check(**{"Content-Type": "text/html"}) == "403 AccessDenied"
    )  # the content type is part of the policy
    assert check(key="uploads/other-tenant/x.jpg") == "403 AccessDenied"
    assert check(bucket="bucket-two") == "403 AccessDenied"
    assert check(acl="public-read") == "403 AccessDenied"  # an extra field no condition covers
    assert check(at=now + 301) == "403 AccessDenied"  # expired
    assert check(policy=None) == "403 AccessDenied"
    # A policy widened by the client no longer matches its signature.
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not isinstance(c, list)]
    assert check(policy=base64.b64encode(json.dumps(policy).encode()).decode()) == "403 SignatureDoesNotMatch"
    assert check(policy="not base64 json!") in {"403 SignatureDoesNotMatch", "400 InvalidPolicyDocument"}
    other = boto3.Session(aws_access_key_id="AKIDOTHER", aws_secret_access_key="local-secret")
    assert code(
        check_post_policy(
            "bucket-one",
            list(fields.items()),
            10,
            other.get_credentials().get_frozen_credentials(),
            now,
        )
    ) == ("403 InvalidAccessKeyId")


def test_presigned_get_must_be_signed_and_unexpired() -> None:
    s3 = CREDENTIALS.client("s3", config=Config(signature_version="s3v4"))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "bucket-one", "Key": "k"}, ExpiresIn=60)
    query = url.split("?", 1)[1]
    assert check_presigned_get(query, time.time()) is None
    assert code(check_presigned_get(query, time.time() + 61)) == "403 AccessDenied"
    v2 = CREDENTIALS.client("s3", config=Config(signature_version="s3")).generate_presigned_url(
        "get_object", Params={"Bucket": "bucket-one", "Key": "k"}, ExpiresIn=60
    )
    assert check_presigned_get(v2.split("?", 1)[1], time.time()) is None
    assert code(check_presigned_get(v2.split("?", 1)[1], time.time() + 61)) == "403 AccessDenied"
    assert code(check_presigned_get("", time.time())) == "403 AccessDenied"


def test_multipart_parsing_keeps_binary_data_and_order() -> None:
    data = b"\r\n--not-the-boundary\r\n\x00\xff" * 100
    prepared = requests.Request(
        "POST",
        "http://x/",
        data=[("key", "a b+c.jpg"), ("Content-Type", "image/jpeg")],
        files={"file": ("shirt ü.jpg", data, "image/jpeg")},
    ).prepare()
    assert isinstance(prepared.body, bytes)
    parts = parse_multipart(prepared.body, prepared.headers["Content-Type"])
    assert [(p.name, p.filename) for p in parts] == [
        ("key", None),
        ("Content-Type", None),
        ("file", "shirt ü.jpg"),
    ]
    assert parts[0].data == b"a b+c.jpg"
    assert parts[2].data == data
    assert parts[2].content_type == "image/jpeg"
    with pytest.raises(ValueError, match="multipart"):
        parse_multipart(prepared.body, "application/json")
    with pytest.raises(ValueError, match=r"malformed|delimiter"):
        parse_multipart(prepared.body[:-20], prepared.headers["Content-Type"])


def test_cognito_timestamps_become_epoch_seconds() -> None:
    when = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert _epoch({"a": [when], "b": "x"}) == {"a": [when.timestamp()], "b": "x"}


# ---- against a running stack ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_stack_serves_config_for_its_own_api_and_user_pool(stack: LocalStack) -> None:
    config = requests.get(f"{stack.web_url}/config.json", timeout=10).json()
    assert config == {
        "apiUrl": stack.api_url,
        "region": "us-east-1",
        "userPoolId": stack.user_pool_id,
        "clientId": stack.client_id,
        "cognitoEndpoint": f"{stack.web_url}/local/cognito",
        "stage": "local",
    }
    assert requests.get(stack.web_url, timeout=10).text == INDEX_HTML
    assert os.environ["USER_POOL_ID"] == stack.user_pool_id
    assert os.environ["S3_PUBLIC_URL"] == f"{stack.web_url}/local/s3"


@pytest.mark.e2e
def test_cognito_sign_up_sign_in_refresh_and_sign_out(stack: LocalStack) -> None:
    email = "browser-user@example.com"
    signed_up = cognito(
        stack,
        "SignUp",
        {
            "ClientId": stack.client_id,
            "Username": email,
            "Password": PASSWORD,
            "UserAttributes": [{"Name": "email", "Value": email}],
        },
    )
    assert signed_up.status_code == 200, signed_up.text
    assert signed_up.headers["content-type"] == "application/x-amz-json-1.1"
    assert signed_up.json()["UserConfirmed"] is True  # no e-mail code locally
    assert signed_up.json()["UserSub"]

    auth = cognito(
        stack,
        "InitiateAuth",
        {
            "ClientId": stack.client_id,
            "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {"USERNAME": email, "PASSWORD": PASSWORD},
        },
    )
    assert auth.status_code == 200, auth.text
    tokens = auth.json()["AuthenticationResult"]
    assert {"AccessToken", "IdToken", "RefreshToken", "ExpiresIn", "TokenType"} <= set(tokens)
    me = requests.get(
        f"{stack.api_url}/v1/me", headers={"Authorization": f"Bearer {tokens['AccessToken']}"}, timeout=30
    )
    assert me.status_code == 200, me.text  # the API accepts what the browser got

    user = cognito(stack, "GetUser", {"AccessToken": tokens["AccessToken"]})
    assert user.status_code == 200
    attributes = {a["Name"]: a["Value"] for a in user.json()["UserAttributes"]}
    assert attributes["email"] == email
    assert attributes["email_verified"] == "true"

    refreshed = cognito(
        stack,
        "InitiateAuth",
        {
            "ClientId": stack.client_id,
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "AuthParameters": {"REFRESH_TOKEN": tokens["RefreshToken"]},
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    new_access = refreshed.json()["AuthenticationResult"]["AccessToken"]
    assert requests.get(
        f"{stack.api_url}/v1/me", headers={"Authorization": f"Bearer {new_access}"}, timeout=30
    ).ok

    assert cognito(stack, "GlobalSignOut", {"AccessToken": new_access}).status_code == 200
    after = cognito(
        stack,
        "InitiateAuth",
        {
            "ClientId": stack.client_id,
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "AuthParameters": {"REFRESH_TOKEN": tokens["RefreshToken"]},
        },
    )
    assert after.status_code == 400
    assert after.json()["__type"] == "NotAuthorizedException"


@pytest.mark.e2e
def test_cognito_revoke_token_and_password_reset(stack: LocalStack) -> None:
    user = new_user(stack)
    auth = stack.sign_in(user.email, PASSWORD)
    revoked = cognito(stack, "RevokeToken", {"ClientId": stack.client_id, "Token": auth["refresh_token"]})
    assert revoked.status_code == 200
    refresh = cognito(
        stack,
        "InitiateAuth",
        {
            "ClientId": stack.client_id,
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "AuthParameters": {"REFRESH_TOKEN": auth["refresh_token"]},
        },
    )
    assert refresh.status_code == 400
    assert refresh.json()["__type"] == "NotAuthorizedException"

    assert cognito(stack, "ForgotPassword", {"ClientId": stack.client_id, "Username": user.email}).ok
    new_password = "Another-Passw0rd-99"
    confirmed = cognito(
        stack,
        "ConfirmForgotPassword",
        {
            "ClientId": stack.client_id,
            "Username": user.email,
            "ConfirmationCode": "123456",  # no e-mail locally: any code
            "Password": new_password,
        },
    )
    assert confirmed.status_code == 200, confirmed.text
    assert stack.sign_in(user.email, new_password)["access_token"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("operation", "body", "error"),
    [
        (
            "InitiateAuth",
            "WRONG_PASSWORD",
            "NotAuthorizedException",
        ),
        ("SignUp", "EXISTING", "UsernameExistsException"),
        ("AdminCreateUser", {"UserPoolId": "x", "Username": "y"}, "UnknownOperationException"),
        ("ListUsers", {"UserPoolId": "x"}, "UnknownOperationException"),
        ("InitiateAuth", b"{not json", "SerializationException"),
        (
            "InitiateAuth",
            {"ClientId": "c", "AuthFlow": "USER_PASSWORD_AUTH", "Bogus": 1},
            "InvalidParameterException",
        ),
    ],
)
def test_cognito_errors_have_cognitos_shape(stack: LocalStack, operation: str, body: Any, error: str) -> None:
    user = new_user(stack)
    if body == "WRONG_PASSWORD":
        body = {
            "ClientId": stack.client_id,
            "AuthFlow": "USER_PASSWORD_AUTH",
            "AuthParameters": {"USERNAME": user.email, "PASSWORD": "Wrong-Passw0rd-1"},
        }
    elif body == "EXISTING":
        body = {"ClientId": stack.client_id, "Username": user.email, "Password": PASSWORD}
    response = cognito(stack, operation, body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    payload = response.json()
    assert payload["__type"] == error
    assert isinstance(payload["message"], str)
    assert set(payload) == {"__type", "message"}
    assert "AdminCreateUser" not in COGNITO_OPERATIONS


@pytest.mark.e2e
def test_cognito_endpoint_allows_the_apps_other_origin(stack: LocalStack) -> None:
    origin = stack.web_url.replace("127.0.0.1", "localhost")
    preflight = requests.options(
        f"{stack.web_url}/local/cognito",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "x-amz-target" in preflight.headers["access-control-allow-headers"]
    foreign = requests.options(
        f"{stack.web_url}/local/cognito",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in foreign.headers


# ---- the S3 proxy --------------------------------------------------------------------------------------------


def create_upload(
    stack: LocalStack, headers: dict[str, str], content_type: str = "image/jpeg"
) -> dict[str, Any]:
    response = requests.post(
        f"{stack.api_url}/v1/uploads",
        headers=headers,
        json={"filename": "shirt.jpg", "content_type": content_type, "mode": "ghost", "options": {}},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def post_form(
    url: str, fields: dict[str, str], data: bytes, content_type: str = "image/jpeg"
) -> requests.Response:
    return requests.post(url, data=fields, files={"file": ("shirt.jpg", data, content_type)}, timeout=60)


def s3_code(response: requests.Response) -> str:
    return response.text.split("<Code>")[1].split("</Code>")[0]


@pytest.mark.e2e
def test_uploads_and_downloads_go_through_the_proxy(stack: LocalStack) -> None:
    user = new_user(stack)
    created = create_upload(stack, user.headers)
    upload = created["upload"]
    assert upload["url"] == f"{stack.web_url}/local/s3/modamoda-local-uploads/"
    data = SAMPLE.read_bytes()
    response = post_form(upload["url"], upload["fields"], data)
    assert response.status_code == 204, response.text
    stored = stack.client("s3").get_object(Bucket="modamoda-local-uploads", Key=upload["fields"]["key"])
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/jpeg"

    job = user.api.wait(created["job_id"], timeout=120)
    assert job["status"] == "succeeded", job
    assert job["result_url"].startswith(f"{stack.web_url}/local/s3/modamoda-local-results/")
    result = requests.get(job["result_url"], timeout=30)
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(result.content)) as image:
        assert image.format == "PNG"
    head = requests.head(job["result_url"], timeout=30)
    assert head.status_code == 200
    assert head.content == b""
    unsigned = requests.get(job["result_url"].split("?", 1)[0], timeout=30)
    assert unsigned.status_code == 403  # private bucket: only pre-signed URLs work
    stack.wait_idle()


@pytest.mark.e2e
def test_the_proxy_enforces_the_upload_policy(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    user = new_user(stack)
    monkeypatch.setenv("UPLOAD_MAX_BYTES", "1000")
    upload = create_upload(stack, user.headers)["upload"]
    key = upload["fields"]["key"]
    s3 = stack.client("s3")

    too_big = post_form(upload["url"], upload["fields"], b"\xff" * 1001)
    assert too_big.status_code == 400
    assert s3_code(too_big) == "EntityTooLarge"

    wrong_type = post_form(
        upload["url"], {**upload["fields"], "Content-Type": "text/html"}, b"<script>", "text/html"
    )
    assert wrong_type.status_code == 403
    assert s3_code(wrong_type) == "AccessDenied"
    assert "Content-Type" in wrong_type.text

    other_key = post_form(
        upload["url"], {**upload["fields"], "key": "uploads/someone-else/x.jpg"}, b"\xff" * 10
    )
    assert other_key.status_code == 403

    far_too_big = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("x.jpg", b"\0" * (1000 + 1024 * 1024 + 1))},
        timeout=60,
    )
    assert far_too_big.status_code == 413  # refused by the server before the body is read

    garbled = requests.post(
        upload["url"],
        data=b"--x\r\nnot a form",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        timeout=30,
    )
    assert (garbled.status_code, s3_code(garbled)) == (400, "MalformedPOSTRequest")
    not_text = requests.post(
        upload["url"], data=[("key", b"\xff\xfe")], files={"file": ("x.jpg", b"\xff")}, timeout=30
    )
    assert (not_text.status_code, s3_code(not_text)) == (400, "MalformedPOSTRequest")
    no_file = requests.post(upload["url"], files={"key": (None, key)}, timeout=30)
    assert (no_file.status_code, s3_code(no_file)) == (400, "InvalidArgument")

    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket="modamoda-local-uploads", Key=key)  # nothing was stored

    ok = post_form(upload["url"], upload["fields"], b"\xff" * 1000)
    assert ok.status_code == 204
    assert s3.head_object(Bucket="modamoda-local-uploads", Key=key)["ContentLength"] == 1000
    stack.wait_idle()  # that upload is not an image: the pipeline rejects it; let it finish


@pytest.mark.e2e
def test_the_api_allows_the_pwa_origin_and_its_headers(stack: LocalStack) -> None:
    preflight = requests.options(
        f"{stack.api_url}/v1/credits/checkout",
        headers={
            "Origin": stack.web_url,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == stack.web_url
    assert set(preflight.headers["access-control-allow-headers"].split(",")) == {
        "authorization",
        "content-type",
        "idempotency-key",
    }
    foreign = requests.options(
        f"{stack.api_url}/v1/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in foreign.headers
