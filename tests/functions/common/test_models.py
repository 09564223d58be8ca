"""Boundary models: Checkout return URLs cannot be used as an open redirect."""

from __future__ import annotations

import pytest

from functions.common.models import return_url


@pytest.mark.parametrize("url", ["https://shop.example/credits?ok=1", "http://localhost:5173/credits"])
def test_return_urls_without_configured_origins(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_ORIGINS", raising=False)
    assert return_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["http://shop.example/x", "javascript:alert(1)", "https://user:pw@shop.example/", "https://a b.example/"],
)
def test_unsafe_return_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        return_url(url)


def test_return_urls_must_be_on_the_pwa_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_ORIGINS", "https://app.modamoda.example, http://localhost:5173")
    assert (
        return_url("https://app.modamoda.example/credits/done") == "https://app.modamoda.example/credits/done"
    )
    assert return_url("http://localhost:5173/credits") == "http://localhost:5173/credits"
    with pytest.raises(ValueError, match="application's origin"):
        return_url("https://evil.example/phish")
