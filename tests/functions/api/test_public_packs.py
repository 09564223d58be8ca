"""``GET /v1/public/packs``: the landing page's prices without signing in: the packs on sale (as
``GET /v1/credits/packs`` lists them) and the credits one image costs by mode, from the one table of costs."""

from __future__ import annotations

import psycopg

from functions.common import pricing
from tests.functions.api.test_handler import call


def test_packs_and_costs_need_no_token(api_env: None) -> None:
    status, body = call("GET", "/v1/public/packs", claims={})  # no authorizer: no claims
    assert status == 200
    assert set(body) == {"items", "costs"}
    assert body["costs"] == {"ghost": 1, "on-model": 4} == pricing.CREDITS_PER_IMAGE
    assert [(p["id"], p["name"], p["credits"], p["price_cents"], p["currency"]) for p in body["items"]] == [
        ("starter", "Starter", 10, 900, "usd"),
        ("studio", "Studio", 50, 3900, "usd"),
        ("pro", "Pro", 200, 12900, "usd"),
        ("agency", "Agency", 1000, 54900, "usd"),
    ]
    assert body["items"] == call("GET", "/v1/credits/packs")[1]["items"]  # the same packs as signed in


def test_public_packs_create_no_account(api_env: None, conn: psycopg.Connection) -> None:
    """Answering it reads no caller: nobody is provisioned by looking at the prices."""
    before = conn.execute("SELECT count(*) AS n FROM tenants").fetchone()
    assert call("GET", "/v1/public/packs", claims={})[0] == 200
    assert conn.execute("SELECT count(*) AS n FROM tenants").fetchone() == before
