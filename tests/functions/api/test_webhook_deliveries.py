"""GET /v1/account/webhook/deliveries (keyset pages, status filter, tenant isolation) and the manual retry."""

from __future__ import annotations

import json
import uuid

from functions.common import db
from tests.functions.api.test_handler import call

# ---- the delivery log API ---------------------------------------------------------------------------------------


def _api_tenant(sub: str) -> str:
    assert call("GET", "/v1/me", sub=sub)[0] == 200
    with db.transaction(None) as c:
        return str(c.execute("SELECT tenant_id FROM app_user_identity(%s)", (sub,)).fetchone()["tenant_id"])


def _insert(conn, tenant_id: str, status: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ident = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO notifications (id, tenant_id, channel, type, subject, payload, status, created_at)"
            " VALUES (%s, %s, 'webhook', 'job.succeeded', %s, %s, %s, now() - make_interval(secs => %s))",
            (ident, tenant_id, f"job:{ident}", json.dumps({"id": ident}), status, len(ids) + i * 10),
        )
        ids.append(ident)
    return ids


def test_deliveries_page_filter_and_isolation(api_env: None, conn) -> None:
    tenant = _api_tenant("hooks-a")
    other = _api_tenant("hooks-b")
    delivered = _insert(conn, tenant, "delivered", 3)
    dead = _insert(conn, tenant, "dead", 2)
    _insert(conn, other, "dead", 2)
    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = call("GET", "/v1/account/webhook/deliveries", sub="hooks-a", query=query)
        assert status == 200
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(delivered + dead)
    assert len(seen) == len(set(seen))
    status, page = call("GET", "/v1/account/webhook/deliveries", sub="hooks-a", query="status=dead")
    assert sorted(i["id"] for i in page["items"]) == sorted(dead)
    status, body = call("GET", "/v1/account/webhook/deliveries", sub="hooks-a", query="status=lost")
    assert (status, body["error"]["code"]) == (422, "validation_error")
    for cursor in (
        "bm9wZQ",
        "W10=",
        "WzEsMl0=",
        "WyIyMDI2LTAxLTAxIiwgNV0=",
        "e30=",
    ):  # nope, [], [1,2], [d, 5], {}
        status, body = call("GET", "/v1/account/webhook/deliveries", sub="hooks-a", query=f"cursor={cursor}")
        assert (status, body["error"]["code"]) == (422, "invalid_cursor"), cursor


def test_retry_errors(api_env: None, conn) -> None:
    tenant = _api_tenant("hooks-c")
    (dead,) = _insert(conn, tenant, "dead", 1)
    (delivered,) = _insert(conn, tenant, "delivered", 1)
    path = "/v1/account/webhook/deliveries/{}/retry"
    assert call("POST", path.format("not-a-uuid"), sub="hooks-c", body={})[1]["error"]["code"] == "not_found"
    assert call("POST", path.format(uuid.uuid4()), sub="hooks-c", body={})[0] == 404
    status, body = call("POST", path.format(dead), sub="hooks-c", body={})
    assert (status, body["error"]["code"]) == (409, "webhook_not_configured")
    call("PUT", "/v1/account/webhook", sub="hooks-c", body={"url": "https://shop.example.com/hooks"})
    status, body = call("POST", path.format(delivered), sub="hooks-c", body={})
    assert (status, body["error"]["code"]) == (409, "delivery_not_dead")
    status, body = call("POST", path.format(dead), sub="hooks-c", body={})
    assert (status, body["status"], body["attempts"]) == (200, "pending", 0)
