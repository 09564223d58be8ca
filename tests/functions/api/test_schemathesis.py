"""The committed OpenAPI document, fuzzed by schemathesis against the API behind the local gateway (real Cognito
JWT verification, real handlers, real PostgreSQL): no input it generates gets a 5xx, and no operation that
declares authentication answers without it (schemathesis' ``ignored_auth`` probes each one with no token and with
a bad one). Explicit probes follow: expired, ID, foreign-client and forged tokens are refused on every route."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth

from local.stack import LocalSettings, LocalStack

ROOT = Path(__file__).resolve().parents[3]
SPEC = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
# examples per operation: 6 in make test, 25 in make stress (MODAMODA_STRESS=1), or MODAMODA_FUZZ_EXAMPLES
EXAMPLES = int(os.environ.get("MODAMODA_FUZZ_EXAMPLES", "25" if os.environ.get("MODAMODA_STRESS") else "6"))
SCHEMA = schemathesis.openapi.from_dict(SPEC)
PASSWORD = "Fuzz-Passw0rd-2026"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(LocalSettings()) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(stack: LocalStack) -> dict[str, str]:
    return stack.sign_up("fuzz@modamoda.example", PASSWORD)


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_no_auth_bypass(case: Any, stack: LocalStack, tokens: dict[str, str]) -> None:
    case.call_and_validate(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        checks=[not_a_server_error, ignored_auth],
        timeout=30,
    )


def operations() -> list[tuple[str, str, bool]]:
    """(method, path with example ids, needs auth) for every operation in the document."""
    found = []
    global_security = SPEC.get("security")
    for path, item in SPEC["paths"].items():
        concrete = path
        for name in ("job_id", "key_id"):
            concrete = concrete.replace("{" + name + "}", "00000000-0000-4000-8000-000000000000")
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                secured = bool(operation.get("security", global_security))
                found.append((method.upper(), concrete, secured))
    return found


def forged(claims: dict[str, Any], key: str = "not-the-cognito-key-but-long-enough-for-hs256") -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": "forged"})


def signed_by_the_pool(claims: dict[str, Any]) -> str:
    """A token signed with the (emulated) user pool's real key: only its claims can make it wrong."""
    raw = resources.files("moto.cognitoidp").joinpath("resources/jwks-private.json.gz").read_bytes()
    key = jwt.PyJWK(json.loads(gzip.decompress(raw)))
    return jwt.encode(claims, key.key, algorithm="RS256", headers={"kid": "dummy"})


def test_every_secured_operation_refuses_bad_tokens(stack: LocalStack, tokens: dict[str, str]) -> None:
    access = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    now = int(time.time())
    bad = {
        "none": None,
        "not a bearer": f"Basic {tokens['access_token']}",
        "garbage": "Bearer not.a.jwt",
        "forged (HS256, unknown key)": "Bearer " + forged({**access, "exp": now + 600}),
        "alg none": "Bearer " + jwt.encode({**access, "exp": now + 600}, None, algorithm="none"),  # type: ignore[arg-type]
        "id token": f"Bearer {tokens['id_token']}",
        "expired": "Bearer " + signed_by_the_pool({**access, "iat": now - 7200, "exp": now - 3600}),
        "another app client": "Bearer " + signed_by_the_pool({**access, "client_id": "someone-elses-client"}),
        "another issuer": "Bearer "
        + signed_by_the_pool(
            {**access, "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"}
        ),
    }
    assert signed_by_the_pool(access)  # the key signs what the gateway accepts; only the claims differ above
    control = requests.get(
        f"{stack.api_url}/v1/me",
        headers={"Authorization": "Bearer " + signed_by_the_pool(access)},
        timeout=30,
    )
    assert control.status_code == 200, control.text
    secured = [(m, p) for m, p, s in operations() if s]
    assert len(secured) >= 15, "the document should declare authentication on the customer routes"
    tried = 0
    for method, path in secured:
        for label, header in bad.items():
            headers = {"Authorization": header} if header else {}
            response = requests.request(
                method, f"{stack.api_url}{path}", headers=headers, json={}, timeout=30
            )
            tried += 1
            assert response.status_code == 401, (label, method, path, response.status_code, response.text)
    assert tried == len(secured) * len(bad)


def test_public_operations_are_only_the_documented_ones() -> None:
    public = {(m, p) for m, p, s in operations() if not s}
    # liveness, and the landing page's prices
    assert public == {("GET", "/v1/health"), ("GET", "/v1/public/packs")}
