"""Two tenants against the whole local stack, through the local gateway with real Cognito tokens: neither reaches
anything of the other's, by any route, token, upload policy, planted S3 object or SQL row.

1. Every operation of ``openapi.json`` with a path parameter, called by one tenant with the other's ids, answers
   the same 404 as a random id and changes nothing; every read without one (lists included) shows nothing of the
   other tenant; every pre-signed URL either tenant is handed is for its own keys.
2. Tokens that must not pass (another app client's, the ID token, the refresh token, another user pool's, a wrong
   scope, a wrong ``token_use``, a revoked API key's; expired on a sample) get 401 on every secured operation.
3. Pre-signed POSTs cannot be bent: another tenant's real prefix, a key outside ``uploads/``, another bucket, an
   expired policy, a tampered policy or signature, an extra field are refused by the S3 proxy with S3's error
   codes, and nothing is stored.
4. Objects planted straight into the buckets under one tenant's prefix with the other's job or batch id start or
   change nothing of the other's and charge the other nothing.
5. Row-level security on every table with tenant rows (found in the catalog, so a new table is covered), as the
   application role with a forged ``app.tenant_id``.

Not tested, by design: an access token of a deleted Cognito user stays valid until it expires (API Gateway's JWT
authorizer checks signature, issuer, audience, expiry and scope, not the user's existence; Cognito access tokens
last one hour). A person's access is withdrawn by disabling the user and waiting out the token, or at once for API
keys, whose revocation the API checks on every request (tested below).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
import requests
from psycopg import sql
from psycopg.rows import dict_row

from functions.common import db
from local.stack import DROP_BUCKET, RESULTS_BUCKET, UPLOAD_BUCKET, LocalStack
from tests.functions.api.test_schemathesis import signed_by_the_pool
from tests.reliability.books import admin, assert_balanced
from tests.reliability.conftest import PASSWORD, Tenant, garment_jpeg, new_tenant
from tests.reliability.tally import TALLY
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SPEC = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
PARAM = re.compile(r"\{(\w+)\}")
METHODS = ("get", "post", "put", "patch", "delete")
S3_URL = re.compile(r"/local/s3/([a-z0-9.-]+)/([^?\"'\s]+)")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the OpenAPI path, with {placeholders}
    operation_id: str
    secured: bool
    has_body: bool

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)


def operations() -> list[Operation]:
    found = []
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                found.append(
                    Operation(
                        method.upper(),
                        path,
                        op["operationId"],
                        bool(op.get("security", SPEC.get("security"))),
                        "requestBody" in op,
                    )
                )
    return found


def bodies(hook_url: str, web_url: str) -> dict[str, Any]:
    """A valid body for each operation that takes one (so a refusal is about the caller, not the input)."""
    return {
        "createJob": {"filename": "a.jpg", "content_type": "image/jpeg"},
        "createUpload": {"filename": "a.jpg", "content_type": "image/jpeg"},
        "createBatch": {"name": "intruder"},
        "createBatchUpload": {"filename": "b.jpg", "content_type": "image/jpeg"},
        "createCheckout": {
            "pack_id": "starter",
            "success_url": f"{web_url}/#/credits?checkout=done",
            "cancel_url": f"{web_url}/#/credits?checkout=cancelled",
        },
        "updateAccount": {"name": "renamed by an intruder"},
        "setWebhook": {"url": hook_url},
        "createApiKey": {"name": "intruder's key"},
        "rerenderJob": {"options": {"background": "#eeeeee"}},
        "createJobsArchive": {"job_ids": [str(uuid.uuid4())]},
    }


def body_for(op: Operation, known: dict[str, Any]) -> Any:
    if not op.has_body:
        return None
    assert op.operation_id in known, f"{op.operation_id} takes a body: add a valid one to bodies()"
    return known[op.operation_id]


# ---- the two tenants and one of everything ------------------------------------------------------------------


@dataclass
class Owned:
    tenant: Tenant
    job_id: str = ""  # succeeded, with its result
    batch_id: str = ""  # sealed and finished, one job
    batch_job_id: str = ""
    key_id: str = ""  # an active API key
    delivery_id: str = ""  # a webhook delivery of the job's event
    waiting_job_id: str = ""  # awaiting its upload: the target of planted objects
    control_job_id: str = ""  # awaiting its upload: written to by the owner's own prefix (the control)
    open_batch_id: str = ""  # open, no files: the target of planted drop files
    session_id: str = ""  # a paid Stripe checkout (a purchases row)
    responses: list[str] = field(default_factory=list)  # every API answer this tenant got

    @property
    def ids(self) -> dict[str, str]:
        """The path parameters of the operations, with this tenant's values."""
        return {
            "job_id": self.job_id,
            "batch_id": self.batch_id,
            "key_id": self.key_id,
            "delivery_id": self.delivery_id,
        }

    @property
    def secrets(self) -> set[str]:
        """What must never appear in the other tenant's answers."""
        return {
            self.tenant.tenant_id,
            self.tenant.email,
            self.job_id,
            self.batch_id,
            self.batch_job_id,
            self.key_id,
            self.delivery_id,
            self.waiting_job_id,
            self.control_job_id,
            self.open_batch_id,
            self.session_id,
        }

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> requests.Response:
        response = requests.request(
            method,
            f"{self.tenant.api.base_url}{path}",
            headers={"Authorization": f"Bearer {token or self.tenant.tokens['access_token']}"},
            json=body,
            timeout=60,
        )
        self.responses.append(response.text)
        return response

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = self.call(method, path, body)
        assert response.status_code in {200, 201, 204}, (method, path, response.status_code, response.text)
        return response.json() if response.content else None


def post_form(
    url: str, fields: dict[str, str], data: bytes, content_type: str = "image/jpeg"
) -> requests.Response:
    return requests.post(url, data=fields, files={"file": ("x.jpg", data, content_type)}, timeout=60)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


def make_everything(stack: LocalStack, owner: Owned, hook_url: str) -> None:
    """One of everything, each in the state where its owner could use it."""
    owner.ok("PUT", "/v1/account/webhook", {"url": hook_url})
    owner.job_id = owner.tenant.api.upload("shirt.jpg", garment_jpeg(), "image/jpeg")
    batch = owner.ok("POST", "/v1/batches", {"name": "spring"})
    owner.batch_id = batch["id"]
    upload = owner.ok(
        "POST",
        f"/v1/batches/{owner.batch_id}/uploads",
        {"filename": "dress.jpg", "content_type": "image/jpeg"},
    )
    assert upload["key"].startswith(f"drop/{owner.tenant.tenant_id}/{owner.batch_id}/")
    sent = post_form(upload["upload"]["url"], upload["upload"]["fields"], garment_jpeg(colour=(140, 30, 60)))
    assert sent.status_code == 204, sent.text
    owner.ok("POST", f"/v1/batches/{owner.batch_id}/seal")
    owner.key_id = owner.ok("POST", "/v1/account/api-keys", {"name": "shop sync"})["id"]
    owner.waiting_job_id = owner.ok(
        "POST", "/v1/jobs", {"filename": "later.jpg", "content_type": "image/jpeg"}
    )["job_id"]
    owner.control_job_id = owner.ok(
        "POST", "/v1/jobs", {"filename": "control.jpg", "content_type": "image/jpeg"}
    )["job_id"]
    owner.open_batch_id = owner.ok("POST", "/v1/batches", {"name": "open"})["id"]
    checkout = owner.ok("POST", "/v1/credits/checkout", bodies(hook_url, stack.web_url)["createCheckout"])
    owner.session_id = checkout["session_id"]
    paid = requests.post(f"{checkout['checkout_url']}/pay", allow_redirects=False, timeout=60)
    assert paid.status_code == 303
    job = owner.tenant.api.wait(owner.job_id, timeout=120)
    assert job["status"] == "succeeded", job
    finished = wait_until(
        lambda: (b := owner.ok("GET", f"/v1/batches/{owner.batch_id}"))["report"] is not None and b,
        "the batch finished with its report",
    )
    assert finished["status"] == "completed"
    (batch_job,) = owner.ok("GET", f"/v1/batches/{owner.batch_id}/jobs")["items"]
    assert batch_job["status"] == "succeeded"
    owner.batch_job_id = batch_job["id"]
    deliveries = wait_until(
        lambda: owner.ok("GET", "/v1/account/webhook/deliveries")["items"], "a webhook delivery"
    )
    owner.delivery_id = deliveries[-1]["id"]


@dataclass
class World:
    a: Owned
    b: Owned
    receiver: Receiver

    def pairs(self) -> list[tuple[Owned, Owned]]:
        """(owner, intruder), both ways."""
        return [(self.a, self.b), (self.b, self.a)]


@pytest.fixture(scope="module")
def world(stack: LocalStack) -> Iterator[World]:
    receiver = Receiver().start()
    a = Owned(new_tenant(stack, "sec-a"))
    b = Owned(new_tenant(stack, "sec-b"))
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(make_everything, stack, owner, receiver.url) for owner in (a, b)]:
            done.result()
    # A dispute row for each (disputes come only from Stripe webhooks about a paid charge; the owner writes one
    # per purchase here so that every tenant table has rows of both tenants for the row-level security checks).
    with admin() as conn:
        for owner in (a, b):
            conn.execute(
                "INSERT INTO disputes (id, tenant_id, purchase_id, amount, status)"
                " SELECT %s, tenant_id, id, 100, 'needs_response' FROM purchases WHERE checkout_session = %s",
                (f"dp_{uuid.uuid4().hex[:24]}", owner.session_id),
            )
    stack.wait_idle()
    yield World(a, b, receiver)
    receiver.stop()


def audited(stack: LocalStack, world: World) -> None:
    """The end of every test: the stack idle, no pump error, the books of both tenants balanced (the jobs kept
    waiting for an upload on purpose are the only unfinished ones)."""
    stack.wait_idle()
    assert stack.pump_errors == []
    assert_balanced([world.a.tenant.tenant_id, world.b.tenant.tenant_id], allow_awaiting_upload=True)


# ---- 1. routes x tenants ------------------------------------------------------------------------------------------


def concrete(path: str, ids: dict[str, str]) -> str:
    """The OpenAPI path with its placeholders filled in."""
    return PARAM.sub(lambda match: ids[match.group(1)], path)


def normalised(text: str, value: str) -> str:
    return text.replace(value, "<id>")


def test_every_id_route_answers_the_other_tenants_ids_like_missing_ones(
    stack: LocalStack, world: World
) -> None:
    known = bodies(world.receiver.url, stack.web_url)
    id_ops = [op for op in operations() if op.params]
    assert {"getJob", "deleteJob", "revokeApiKey", "cancelBatch", "retryWebhookDelivery"} <= {
        op.operation_id for op in id_ops
    }
    checked = 0
    for owner, intruder in world.pairs():
        before = state(owner)
        for op in id_ops:
            missing = [p for p in op.params if p not in owner.ids]
            assert not missing, f"{op.operation_id}: give the tenants an owned {missing} in make_everything"
            body = body_for(op, known)
            foreign = concrete(op.path, owner.ids)
            random_id = str(uuid.uuid4())
            invented = concrete(op.path, dict.fromkeys(op.params, random_id))
            theirs = intruder.call(op.method, foreign, body)
            nobodys = intruder.call(op.method, invented, body)
            assert theirs.status_code == 404, (op.operation_id, foreign, theirs.text)
            assert nobodys.status_code == 404, (op.operation_id, invented, nobodys.text)
            assert theirs.json()["error"]["code"] == "not_found"
            id_in_path = owner.ids[op.params[0]]
            assert normalised(theirs.text, id_in_path) == normalised(nobodys.text, random_id), op.operation_id
            checked += 1
        # a ZIP of the owner's results names its jobs in the body: answered like jobs that do not exist
        random_id = str(uuid.uuid4())
        theirs = intruder.call("POST", "/v1/jobs/archive", {"job_ids": [owner.job_id]})
        nobodys = intruder.call("POST", "/v1/jobs/archive", {"job_ids": [random_id]})
        assert (theirs.status_code, nobodys.status_code) == (404, 404), (theirs.text, nobodys.text)
        assert normalised(theirs.text, owner.job_id) == normalised(nobodys.text, random_id)
        assert state(owner) == before, "an intruder's call changed the owner's things"
        # the control: the owner's own ids work on every read with a path parameter
        for op in id_ops:
            if op.method == "GET":
                assert owner.call("GET", concrete(op.path, owner.ids)).status_code == 200, op.operation_id
    TALLY.add("security", "routes × tenants checked", checked)  # noqa: RUF001
    assert checked == 2 * len(id_ops)
    audited(stack, world)


def state(owner: Owned) -> dict[str, Any]:
    """What an intruder's calls must not change, read as the owner."""
    job = owner.ok("GET", f"/v1/jobs/{owner.job_id}")
    batch = owner.ok("GET", f"/v1/batches/{owner.batch_id}")
    keys = {k["id"]: k["revoked_at"] for k in owner.ok("GET", "/v1/account/api-keys")["items"]}
    deliveries = {d["id"]: d["status"] for d in owner.ok("GET", "/v1/account/webhook/deliveries")["items"]}
    account = owner.ok("GET", "/v1/account")
    return {
        "job": (job["status"], job["result_url"] is not None),
        "batch": (batch["status"], batch["counts"]),
        "keys": keys,
        "deliveries": deliveries,
        "account": (account["tenant_name"], account["webhook"]),
        "balance": owner.ok("GET", "/v1/credits"),
        "jobs": sorted(j["id"] for j in owner.ok("GET", "/v1/jobs", None)["items"]),
    }


def test_reads_and_lists_show_nothing_of_the_other_tenant(stack: LocalStack, world: World) -> None:
    reads = [op for op in operations() if op.method == "GET" and op.secured and not op.params]
    assert {"listJobs", "listLedger", "listBatches", "listApiKeys", "listWebhookDeliveries"} <= {
        op.operation_id for op in reads
    }
    checked = 0
    for owner, intruder in world.pairs():
        answers = []
        for op in reads:
            answers.append(intruder.call("GET", op.path))
            checked += 1
        for query in ("?status=succeeded,awaiting_upload", "?q=shirt", "?mode=ghost&limit=100"):
            answers.append(intruder.call("GET", f"/v1/jobs{query}"))
        answers.append(intruder.call("GET", f"/v1/batches/{intruder.batch_id}/jobs"))
        answers.append(intruder.call("GET", "/v1/credits/ledger?limit=100"))
        checked += 1
        for answer in answers:
            assert answer.status_code == 200, answer.text
            leaked = {value for value in owner.secrets if value and value in answer.text}
            assert not leaked, (answer.url, leaked)
        # the lists are not empty: the intruder sees its own things there
        own = intruder.ok("GET", "/v1/jobs")["items"]
        assert intruder.job_id in {j["id"] for j in own}
    TALLY.add("security", "routes × tenants checked", checked)  # noqa: RUF001

    # Every pre-signed URL or upload key either tenant was ever handed is under its own prefix.
    urls = 0
    for owner in (world.a, world.b):
        owner.ok("GET", f"/v1/jobs/{owner.job_id}/download")
        owner.ok("GET", f"/v1/batches/{owner.batch_id}")
        for text in owner.responses:
            for bucket, key in S3_URL.findall(text):
                key = unquote(key)
                if not key:  # a POST upload's bucket URL; its key is a field, checked below
                    continue
                assert key.split("/")[1] == owner.tenant.tenant_id, (bucket, key)
                assert bucket in {RESULTS_BUCKET, UPLOAD_BUCKET, DROP_BUCKET}
                urls += 1
            for key in re.findall(r'"key"\s*:\s*"((?:uploads|drop|results)/[^"]+)"', text):
                assert key.split("/")[1] == owner.tenant.tenant_id, key
    assert urls >= 6  # result, download, thumbnails in lists, batch report links, for both
    TALLY.zero("security", "cross-tenant reads")
    audited(stack, world)


# ---- 2. tokens ------------------------------------------------------------------------------------------------


def test_tokens_that_must_not_pass_are_refused(stack: LocalStack, world: World) -> None:
    owner = world.a
    cognito = stack.client("cognito-idp")
    access = _claims(owner.tenant.tokens["access_token"])
    now = int(time.time())

    # real tokens, through real flows
    other_client = cognito.create_user_pool_client(
        UserPoolId=stack.user_pool_id,
        ClientName="someone-elses-app",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    second_client = cognito.initiate_auth(
        ClientId=other_client,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": owner.tenant.email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]["AccessToken"]
    assert (
        _claims(second_client)["client_id"] == other_client
    )  # a real, valid token of the same pool and user
    other_pool = cognito.create_user_pool(PoolName="another-product")["UserPool"]["Id"]
    other_pool_client = cognito.create_user_pool_client(
        UserPoolId=other_pool, ClientName="web", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    cognito.sign_up(ClientId=other_pool_client, Username=owner.tenant.email, Password=PASSWORD)
    cognito.admin_confirm_sign_up(UserPoolId=other_pool, Username=owner.tenant.email)
    foreign_pool = cognito.initiate_auth(
        ClientId=other_pool_client,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": owner.tenant.email, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]["AccessToken"]
    assert other_pool in _claims(foreign_pool)["iss"]
    revoked = revoked_key_token(stack, owner)

    # signed with the pool's own key: only the claims are wrong
    wrong_scope = signed_by_the_pool({**access, "scope": "openid email"})
    id_use = signed_by_the_pool({**access, "token_use": "id"})
    refresh_use = signed_by_the_pool({**access, "token_use": "refresh"})
    expired = signed_by_the_pool({**access, "iat": now - 7200, "exp": now - 1})
    control = signed_by_the_pool(access)
    assert owner.call("GET", "/v1/me", token=control).status_code == 200  # the key signs what passes

    everywhere = {
        "access token of another app client (real)": second_client,
        "access token of another user pool (real)": foreign_pool,
        "refresh token (real)": owner.tenant.tokens["refresh_token"],
        "revoked API key's access token (real)": revoked,
        "scope 'openid email' only": wrong_scope,
        "token_use id": id_use,
        "token_use refresh": refresh_use,
    }
    sample_only = {  # every route is already probed with these by tests/functions/api/test_schemathesis.py
        "ID token (real)": owner.tenant.tokens["id_token"],
        "expired a second ago": expired,
    }
    known = bodies(world.receiver.url, stack.web_url)
    secured = [op for op in operations() if op.secured]
    sample = {"getMe", "listJobs", "getJob", "createJob", "revokeApiKey"}
    before = state(owner)
    refused = 0
    for op in secured:
        path = concrete(op.path, owner.ids)
        tokens = everywhere | (sample_only if op.operation_id in sample else {})
        for label, token in tokens.items():
            for body in {json.dumps(body_for(op, known)), json.dumps({} if op.has_body else None)}:
                response = owner.call(op.method, path, json.loads(body), token=token)
                assert response.status_code == 401, (
                    label,
                    op.operation_id,
                    response.status_code,
                    response.text,
                )
                assert response.json() == {"message": "Unauthorized"} or response.json()["error"]["code"] in {
                    "unauthorized",
                    "api_key_revoked",
                }, (label, op.operation_id, response.text)
                refused += 1
    assert state(owner) == before
    TALLY.add("security", "bad tokens refused", refused)
    assert refused >= len(secured) * len(everywhere)
    audited(stack, world)


def revoked_key_token(stack: LocalStack, owner: Owned) -> str:
    """An API key's access token, signed in with the key (README: API keys), then the key revoked."""
    key = owner.ok("POST", "/v1/account/api-keys", {"name": "to be revoked"})
    _, key_id, secret = key["api_key"].split("_", 2)
    token = stack.client("cognito-idp").initiate_auth(
        ClientId=stack.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": f"apikey-{key_id}@api-keys.modamoda.invalid", "PASSWORD": secret},
    )["AuthenticationResult"]["AccessToken"]
    assert owner.call("GET", "/v1/me", token=token).status_code == 200
    owner.ok("DELETE", f"/v1/account/api-keys/{key_id}")
    return str(token)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# ---- 3. pre-signed POSTs --------------------------------------------------------------------------------------


def s3_code(response: requests.Response) -> str:
    match = re.search(r"<Code>([^<]+)</Code>", response.text)
    return match.group(1) if match else response.text[:200]


def stored(stack: LocalStack, bucket: str, key: str) -> int:
    """How many versions of ``key`` the bucket holds."""
    listing = stack.client("s3").list_object_versions(Bucket=bucket, Prefix=key)
    return sum(1 for v in listing.get("Versions", []) if v["Key"] == key)


def test_presigned_posts_cannot_be_bent(
    stack: LocalStack, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = world.a, world.b
    created = b.ok("POST", "/v1/jobs", {"filename": "bent.jpg", "content_type": "image/jpeg"})
    url, fields = created["upload"]["url"], dict(created["upload"]["fields"])
    own_key = fields["key"]
    assert own_key.startswith(f"uploads/{b.tenant.tenant_id}/{created['job_id']}/")
    photo = garment_jpeg()
    policy = json.loads(base64.b64decode(fields["policy"]))
    widened = {
        **policy,
        "conditions": [
            ["content-length-range", 1, 10**10]
            if isinstance(c, list) and c[0] == "content-length-range"
            else c
            for c in policy["conditions"]
        ],
    }
    signature_field = "x-amz-signature" if "x-amz-signature" in fields else "signature"
    flipped = fields[signature_field][:-4] + ("AAAA" if fields[signature_field][-4:] != "AAAA" else "BBBB")
    a_key = f"uploads/{a.tenant.tenant_id}/{a.waiting_job_id}/later.jpg"
    attempts: list[tuple[str, str, dict[str, str], str, int, str]] = [
        # (what, bucket, fields, key checked afterwards, status, S3 error code)
        (
            "the other tenant's real prefix",
            UPLOAD_BUCKET,
            {**fields, "key": a_key},
            a_key,
            403,
            "AccessDenied",
        ),
        (
            "outside uploads/",
            UPLOAD_BUCKET,
            {**fields, "key": f"results/{b.tenant.tenant_id}/x.png"},
            f"results/{b.tenant.tenant_id}/x.png",
            403,
            "AccessDenied",
        ),
        (
            "the bucket root",
            UPLOAD_BUCKET,
            {**fields, "key": "x.jpg"},
            "x.jpg",
            403,
            "AccessDenied",
        ),
        ("another bucket", DROP_BUCKET, fields, own_key, 403, "AccessDenied"),
        (
            "a widened policy",
            UPLOAD_BUCKET,
            {**fields, "policy": base64.b64encode(json.dumps(widened).encode()).decode()},
            own_key,
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "a tampered signature",
            UPLOAD_BUCKET,
            {**fields, signature_field: flipped},
            own_key,
            403,
            "SignatureDoesNotMatch",
        ),
        ("an extra field", UPLOAD_BUCKET, {**fields, "acl": "public-read"}, own_key, 403, "AccessDenied"),
        (
            "an extra redirect",
            UPLOAD_BUCKET,
            {**fields, "success_action_redirect": "https://evil.example/"},
            own_key,
            403,
            "AccessDenied",
        ),
    ]
    # a batch upload's POST (drop bucket) bent to the other tenant's drop folder
    batch_post = b.ok(
        "POST", f"/v1/batches/{b.open_batch_id}/uploads", {"filename": "y.jpg", "content_type": "image/jpeg"}
    )
    a_drop = f"drop/{a.tenant.tenant_id}/{a.open_batch_id}/y.jpg"
    attempts.append(
        (
            "the other tenant's drop folder",
            DROP_BUCKET,
            {**batch_post["upload"]["fields"], "key": a_drop},
            a_drop,
            403,
            "AccessDenied",
        )
    )
    # an expired policy: a real one, issued with a one-second lifetime
    monkeypatch.setenv("UPLOAD_URL_TTL_SECONDS", "1")
    short = b.ok("POST", "/v1/jobs", {"filename": "late.jpg", "content_type": "image/jpeg"})
    short_fields = dict(short["upload"]["fields"])
    expiration = json.loads(base64.b64decode(short_fields["policy"]))["expiration"]
    wait_until(lambda: time.time() > _epoch(expiration), "the policy expired", timeout=5)
    attempts.append(
        ("an expired policy", UPLOAD_BUCKET, short_fields, short_fields["key"], 403, "AccessDenied")
    )

    for what, bucket, sent_fields, key, status, code in attempts:
        before = stored(stack, bucket, key)
        response = post_form(f"{stack.web_url}/local/s3/{bucket}/", sent_fields, photo)
        assert (response.status_code, s3_code(response)) == (status, code), (what, response.text)
        assert stored(stack, bucket, key) == before == 0, f"{what}: something was stored at {key}"
    TALLY.add("security", "forged uploads refused", len(attempts))

    # the control: the same POST, unbent, is accepted (and that job runs and is charged like any other)
    accepted = post_form(url, fields, photo)
    assert accepted.status_code == 204, accepted.text
    assert stored(stack, UPLOAD_BUCKET, own_key) == 1
    assert b.tenant.api.wait(created["job_id"], timeout=120)["status"] == "succeeded"
    monkeypatch.undo()
    assert b.ok("DELETE", f"/v1/jobs/{short['job_id']}") is None  # never uploaded: it leaves no trace
    audited(stack, world)


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---- 4. planted objects -------------------------------------------------------------------------------------


def ledger(tenant_id: str) -> list[tuple[str, str | None, int]]:
    with admin() as conn:
        rows = conn.execute(
            "SELECT kind, job_id::text AS job, amount FROM ledger WHERE tenant_id = %s ORDER BY id",
            (tenant_id,),
        ).fetchall()
    return [(r["kind"], r["job"], r["amount"]) for r in rows]


def test_planted_objects_do_not_reach_the_other_tenant(stack: LocalStack, world: World) -> None:
    """As if by a compromised writer with access to the buckets: an object under one tenant's prefix naming the
    other tenant's job or batch starts, changes and charges nothing of the other's. (A drop folder's name is the
    prefix owner's to choose: an unknown name is a new batch of that owner's, by design — so a file under A's
    prefix in a folder named like B's batch id is A's own work in a new batch of A's, never B's.)"""
    s3 = stack.client("s3")
    a, b = world.a, world.b
    stack.wait_idle()
    books_before = {t.tenant.tenant_id: ledger(t.tenant.tenant_id) for t in (a, b)}
    nobody = str(uuid.uuid4())
    planted: list[tuple[str, str]] = []
    for owner, victim in world.pairs():
        owner_t, victim_t = owner.tenant.tenant_id, victim.tenant.tenant_id
        planted += [
            (UPLOAD_BUCKET, f"uploads/{owner_t}/{victim.waiting_job_id}/x.jpg"),
            (UPLOAD_BUCKET, f"uploads/{nobody}/{victim.waiting_job_id}/x.jpg"),
            (UPLOAD_BUCKET, f"uploads/{victim_t.upper()}/{owner.waiting_job_id}/x.jpg"),
            # the right tenant and job but not the file the job's pre-signed POST allowed
            (UPLOAD_BUCKET, f"uploads/{victim_t}/{victim.waiting_job_id}/not-the-upload.jpg"),
            (DROP_BUCKET, f"drop/{owner_t}/{victim.open_batch_id}/x.jpg"),
            (DROP_BUCKET, f"drop/{nobody}/{victim.open_batch_id}/x.jpg"),
        ]
    for bucket, key in planted:
        s3.put_object(Bucket=bucket, Key=key, Body=garment_jpeg(), ContentType="image/jpeg")
    # the control: the same write under the owner's own prefix and job starts that job
    for owner in (a, b):
        s3.put_object(
            Bucket=UPLOAD_BUCKET,
            Key=f"uploads/{owner.tenant.tenant_id}/{owner.control_job_id}/control.jpg",
            Body=garment_jpeg(),
            ContentType="image/jpeg",
        )
    for owner in (a, b):
        assert owner.tenant.api.wait(owner.control_job_id, timeout=120)["status"] == "succeeded"
    stack.wait_idle()

    for owner, victim in world.pairs():
        job = victim.ok("GET", f"/v1/jobs/{victim.waiting_job_id}")
        assert job["status"] == "awaiting_upload", job
        batch = victim.ok("GET", f"/v1/batches/{victim.open_batch_id}")
        assert batch["status"] == "open", batch
        assert victim.ok("GET", f"/v1/batches/{victim.open_batch_id}/jobs")["items"] == []
        # the victim's books moved only by its own control job
        after = ledger(victim.tenant.tenant_id)
        new = after[len(books_before[victim.tenant.tenant_id]) :]
        assert after[: len(books_before[victim.tenant.tenant_id])] == books_before[victim.tenant.tenant_id]
        assert {job_id for _, job_id, _ in new} <= {victim.control_job_id, *drop_jobs(owner=victim, of=owner)}
        # the folder named like the other's batch is the prefix owner's own new batch, never the other's
        assert (
            len(drop_jobs(owner=owner, of=victim)) == 1
        )  # the prefix owner's own file, in its own new batch
        own_batches = {x["id"]: x for x in owner.ok("GET", "/v1/batches?limit=100")["items"]}
        assert victim.open_batch_id not in own_batches
        assert all(
            x["drop_prefix"].startswith(f"drop/{owner.tenant.tenant_id}/") for x in own_batches.values()
        )
    TALLY.add("security", "forged uploads refused", len(planted))
    audited(stack, world)


def drop_jobs(owner: Owned, of: Owned) -> set[str]:
    """Jobs of ``owner``'s batch whose folder is named like ``of``'s open batch id (its own drop, by design)."""
    with admin() as conn:
        rows = conn.execute(
            "SELECT j.id::text AS id FROM jobs j JOIN batches b ON b.id = j.batch_id"
            " WHERE b.tenant_id = %s AND b.folder = %s",
            (owner.tenant.tenant_id, of.open_batch_id),
        ).fetchall()
    return {r["id"] for r in rows}


# ---- 5. row-level security ------------------------------------------------------------------------------------

# Tables without tenant rows, by design (they have no tenant_id column either; listed so a change is noticed).
NOT_TENANT_DATA = {
    "credit_packs": "the packs on sale: the same for everyone",
    "stripe_events": "Stripe's event ids and outcomes, claimed before the tenant is known",
    "schema_migrations": "the migrator's bookkeeping",
}


def test_row_level_security_on_every_tenant_table(stack: LocalStack, world: World) -> None:
    a_id, b_id = world.a.tenant.tenant_id, world.b.tenant.tenant_id
    with admin() as owner:
        columns = owner.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
            "   AND (c.column_name = 'tenant_id' OR (c.table_name = 'tenants' AND c.column_name = 'id'))"
        ).fetchall()
        tables = {r["table_name"]: r["column_name"] for r in columns}
        every = {
            r["table_name"]
            for r in owner.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            ).fetchall()
        }
        assert every - set(tables) == set(NOT_TENANT_DATA), "a new table: tenant rows (tenant_id) or a reason"
        flags = {
            r["relname"]: (r["relrowsecurity"], r["relforcerowsecurity"])
            for r in owner.execute(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
                " WHERE relnamespace = 'public'::regnamespace AND relname = ANY(%s)",
                (list(tables),),
            ).fetchall()
        }
        assert flags == dict.fromkeys(tables, (True, True)), flags
        b_rows = rows_of(owner, tables, b_id)
        assert all(b_rows.values()), f"B needs rows in every tenant table for this test: {b_rows}"

    assert {"tenants", "users", "jobs", "holds", "ledger", "api_keys", "batches", "notifications"} <= set(
        tables
    )
    refusals = 0
    with psycopg.connect(db.dsn(), autocommit=True, row_factory=dict_row) as app:
        role = app.execute("SELECT current_user AS u").fetchone()
        assert role is not None
        assert role["u"] == db.APP_ROLE
        for table, column in sorted(tables.items()):
            t, c = sql.Identifier(table), sql.Identifier(column)
            # no tenant named (never set, or set empty as db.transaction(None) does): nothing at all
            count = sql.SQL("SELECT count(*) AS n FROM {}").format(t)
            with app.transaction():
                assert one(app, count)["n"] == 0, table
            with app.transaction():
                app.execute("SELECT set_config('app.tenant_id', '', true)")
                assert one(app, count)["n"] == 0, table
            with app.transaction():
                app.execute("SELECT set_config('app.tenant_id', %s, true)", (a_id,))
                seen = app.execute(sql.SQL("SELECT {} AS tenant FROM {}").format(c, t)).fetchall()
                assert seen, f"{table}: A sees its own rows"
                assert {str(r["tenant"]) for r in seen} == {a_id}, table
                assert (
                    one(app, sql.SQL("SELECT count(*) AS n FROM {} WHERE {} = %s").format(t, c), (b_id,))["n"]
                    == 0
                )
                own_row = app.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(t)).fetchone()
            for statement in (
                sql.SQL("UPDATE {} SET {} = {} WHERE {} = %s").format(t, c, c, c),
                sql.SQL("DELETE FROM {} WHERE {} = %s").format(t, c),
            ):
                refusals += 1
                try:
                    with app.transaction():
                        app.execute("SELECT set_config('app.tenant_id', %s, true)", (a_id,))
                        assert app.execute(statement, (b_id,)).rowcount == 0, (
                            table,
                            statement.as_string(app),
                        )
                except psycopg.errors.InsufficientPrivilege:
                    pass  # not even allowed on A's own rows: refused all the more
            # a forged row: A's own row, with B's tenant id
            assert own_row is not None
            forged = {**own_row, column: uuid.UUID(b_id)}
            names = list(forged)
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                t,
                sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join(sql.Placeholder() * len(names)),
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                as_tenant(app, a_id, insert, [_adapt(v) for v in forged.values()])
            assert "row-level security" in str(refused.value) or "permission denied" in str(refused.value), (
                table
            )
            refusals += 1
    with admin() as owner:
        after = rows_of(owner, tables, b_id)
    assert after == b_rows, "B's rows changed"
    TALLY.add("security", "tables under RLS checked", len(tables))
    TALLY.add("security", "forged row writes refused", refusals)
    audited(stack, world)


def rows_of(conn: psycopg.Connection[Any], tables: dict[str, str], tenant_id: str) -> dict[str, int]:
    """How many rows of ``tenant_id`` each table holds (read as the owner)."""
    counts = {}
    for table, column in tables.items():
        statement = sql.SQL("SELECT count(*) AS n FROM {} WHERE {} = %s").format(
            sql.Identifier(table), sql.Identifier(column)
        )
        counts[table] = int(one(conn, statement, (tenant_id,))["n"])
    return counts


def one(conn: psycopg.Connection[Any], statement: sql.Composed, params: Any = None) -> dict[str, Any]:
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return dict(row)


def as_tenant(app: psycopg.Connection[Any], tenant_id: str, statement: sql.Composed, params: Any) -> int:
    """Run one statement in a transaction acting for ``tenant_id``; the rows it affected."""
    with app.transaction():
        app.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant_id,))
        return app.execute(statement, params).rowcount


def _adapt(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value) if isinstance(value, dict | list) else value
