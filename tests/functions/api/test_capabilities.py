"""GET /v1/capabilities (what can be made, what it costs, the balance) and the marketplace rule it publishes,
enforced by the API: an Amazon job on anything but white is refused before any upload, with its own code."""

from __future__ import annotations

import psycopg
import pytest

from functions.common import pricing
from tests.functions.api.test_handler import call


def test_capabilities_lists_modes_presets_priorities_and_the_balance(api_env: None) -> None:
    status, body = call("GET", "/v1/capabilities")
    assert status == 200, body
    assert set(body) == {"modes", "presets", "priorities", "balance"}
    assert body["balance"] == 10  # the welcome credits of a new account
    assert [(m["id"], m["cost"], m["available"], m["reason"]) for m in body["modes"]] == [
        ("ghost", pricing.cost_of("ghost"), True, None),
        ("on-model", pricing.cost_of("on-model"), True, None),
    ]
    presets = {p["id"]: p for p in body["presets"]}
    assert list(presets) == ["square", "amazon", "zalando", "shopify", "portrait_4_5"]
    amazon = presets["amazon"]
    assert (amazon["name"], amazon["width"], amazon["height"]) == ("Amazon", 2000, 2000)
    assert amazon["backgrounds"] == ["#ffffff"]
    assert amazon["rule"].startswith("Amazon asks for a pure white background")
    assert amazon["description"].endswith("2000 x 2000 pixels.")
    assert presets["zalando"]["backgrounds"] is None
    assert presets["zalando"]["rule"] is None
    assert presets["zalando"]["default_background"] == "#f1f1f1"
    assert [p["id"] for p in body["priorities"]] == ["normal", "low"]
    assert all(p["description"].endswith(".") for p in body["priorities"])


def test_capabilities_follow_the_deployment_and_the_balance(
    api_env: None, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ON_MODEL_AVAILABLE", "false")
    call("GET", "/v1/me")
    conn.execute("UPDATE tenants SET balance = 3")  # (the ledger does not matter to this read)
    status, body = call("GET", "/v1/capabilities")
    assert status == 200
    on_model = body["modes"][1]
    assert on_model["available"] is False
    assert (
        on_model["reason"]
        == "On-model images are not available on this service yet. Ghost mannequin images are available now."
    )
    assert body["balance"] == 3


def test_capabilities_needs_a_caller(api_env: None) -> None:
    status, body = call("GET", "/v1/capabilities", claims={"token_use": "id", "sub": "x"})
    assert (status, body["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("background", ["#F5F5DC", "transparent", "library:studio-grey"])
def test_an_amazon_job_on_another_background_is_refused_before_any_upload(
    api_env: None, conn: psycopg.Connection, background: str
) -> None:
    body = {
        "filename": "a.jpg",
        "content_type": "image/jpeg",
        "options": {"preset": "amazon", "background": background},
    }
    status, answer = call("POST", "/v1/jobs", body=body)
    assert status == 422, answer
    error = answer["error"]
    assert error["code"] == "preset_background"
    assert error["message"] == (
        "Amazon asks for a pure white background on the main image. Choose white for the Amazon preset, or "
        "choose another preset for a coloured or transparent background."
    )
    assert error["details"][0]["loc"] == ["body", "options"]
    assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0  # nothing created, no hold
    assert call("GET", "/v1/credits")[1] == {"balance": 10, "held": 0}


@pytest.mark.parametrize("background", [None, "#ffffff", "#FFFFFF"])
def test_an_amazon_job_on_white_is_accepted(api_env: None, background: str | None) -> None:
    options = {"preset": "amazon", **({"background": background} if background else {})}
    status, answer = call(
        "POST", "/v1/jobs", body={"filename": "a.jpg", "content_type": "image/jpeg", "options": options}
    )
    assert status == 201, answer


def test_the_rule_alongside_another_problem_is_a_validation_error(api_env: None) -> None:
    body = {
        "filename": "a.jpg",
        "content_type": "image/gif",
        "options": {"preset": "amazon", "background": "#000000"},
    }
    status, answer = call("POST", "/v1/jobs", body=body)
    assert status == 422
    assert answer["error"]["code"] == "validation_error"
    assert {d["type"] for d in answer["error"]["details"]} >= {"preset_background", "literal_error"}


def test_batch_defaults_follow_the_rule(api_env: None) -> None:
    status, answer = call(
        "POST", "/v1/batches", body={"defaults": {"options": {"preset": "amazon", "background": "#eeeeee"}}}
    )
    assert (status, answer["error"]["code"]) == (422, "preset_background")
    status, answer = call("POST", "/v1/batches", body={"defaults": {"options": {"preset": "amazon"}}})
    assert status == 201, answer
