"""Boundary models: Checkout return URLs cannot be used as an open redirect; job options reach the inference
container as it reads them."""

from __future__ import annotations

import pytest
from modamoda_inference.schemas import parse_request  # inference_container/ is on the test path
from pydantic import ValidationError

from functions.common.models import JobOptions, return_url


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


def test_segmenter_option() -> None:
    assert JobOptions().segmenter == "auto"
    assert JobOptions.model_validate({"segmenter": "learned"}).segmenter == "learned"
    assert JobOptions.model_validate({"segmenter": "studio"}).model_dump()["segmenter"] == "studio"
    with pytest.raises(ValidationError, match="segmenter"):
        JobOptions.model_validate({"segmenter": "sam"})
    description = JobOptions.model_fields["segmenter"].description or ""
    assert all(f'"{choice}"' in description for choice in ("auto", "learned", "studio"))


@pytest.mark.parametrize("segmenter", ["auto", "learned", "studio"])
def test_job_options_are_what_the_container_reads(segmenter: str) -> None:
    """The Lambdas send the stored ``JobOptions`` dump as the request's ``options``; the container's ``Options``
    forbids unknown fields, so every field must be one it knows."""
    options = JobOptions(segmenter=segmenter, mannequin="auto", background="#F5F5F5").model_dump()
    body = {
        "job_id": "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60",
        "mode": "ghost",
        "image": {"s3_uri": "s3://b-1/k"},
    }
    parsed = parse_request({**body, "options": options}).options
    assert parsed.segmenter == segmenter
    assert (parsed.mannequin, parsed.background) == ("auto", "#F5F5F5")
