"""The presets the API publishes and checks mirror the inference container's canvas presets; the Amazon rule
(pure white main image) holds wherever job options are read; costs, availability and priority wording come from
the one place the rest of the system takes them from."""

from __future__ import annotations

from typing import get_args

import pytest
from modamoda_inference import canvas  # inference_container/ is on the test path
from pydantic import ValidationError

from functions.common import capabilities, presets, pricing
from functions.common.models import BatchDefaults, JobOptions, Mode, UploadRequest


def test_the_preset_table_mirrors_the_containers_canvas_presets() -> None:
    assert set(presets.PRESETS) == set(canvas._DEFAULT_PRESETS) == set(canvas.PRESETS)
    assert set(presets.PRESETS) == set(get_args(JobOptions.model_fields["preset"].annotation))
    for name, preset in canvas._DEFAULT_PRESETS.items():
        mirror = presets.PRESETS[name]
        assert (mirror.width, mirror.height) == (preset.width, preset.height), name
        assert mirror.default_background == preset.background.lower(), name


def test_each_preset_says_what_it_is_for_and_its_size() -> None:
    for spec in capabilities.preset_list():
        assert spec.description.endswith(f"{spec.width} x {spec.height} pixels."), spec.id
        assert spec.description[0].isupper()
        if spec.backgrounds is not None:
            assert spec.default_background in spec.backgrounds  # a job without a background is allowed
            assert spec.rule
            assert spec.rule.endswith(".")


@pytest.mark.parametrize("background", [None, "#ffffff", "#FFFFFF", "#FfFfFf"])
def test_amazon_takes_white_or_its_default(background: str | None) -> None:
    assert JobOptions(preset="amazon", background=background).background == background


@pytest.mark.parametrize("background", ["#f5f5dc", "#FEFEFE", "transparent", "library:studio-grey"])
def test_amazon_refuses_any_other_background(background: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobOptions(preset="amazon", background=background)
    (error,) = caught.value.errors()
    assert error["type"] == presets.PRESET_BACKGROUND
    assert error["msg"].startswith("Amazon asks for a pure white background on the main image.")
    for other in ("square", "zalando", "shopify", "portrait_4_5"):
        assert JobOptions(preset=other, background=background).preset == other


def test_the_rule_holds_for_every_request_that_carries_options() -> None:
    bad = {"preset": "amazon", "background": "#eeeeee"}
    with pytest.raises(ValidationError):
        UploadRequest(filename="a.jpg", content_type="image/jpeg", options=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        BatchDefaults.model_validate({"mode": "on-model", "options": bad})


def test_refusal_of_names_only_a_request_whose_every_problem_is_the_rule() -> None:
    rule = {"type": presets.PRESET_BACKGROUND, "loc": ("body", "options"), "msg": "Amazon asks..."}
    other = {"type": "enum", "loc": ("body", "mode"), "msg": "Input should be 'ghost' or 'on-model'"}
    refused = presets.refusal_of([rule])
    assert refused is not None
    assert (refused.code, refused.http_status, refused.message) == (
        "preset_background",
        422,
        "Amazon asks...",
    )
    assert presets.refusal_of([rule, other]) is None
    assert presets.refusal_of([]) is None


def test_mode_costs_are_what_the_pipeline_charges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ON_MODEL_AVAILABLE", raising=False)
    modes = {m.id: m for m in capabilities.modes()}
    assert list(modes) == list(get_args(Mode))
    for mode, info in modes.items():
        assert info.cost == pricing.cost_of(mode)
        assert info.available
        assert info.reason is None
    assert modes["ghost"].name == "Ghost mannequin"


def test_on_model_is_not_offered_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ON_MODEL_AVAILABLE", "false")
    ghost, on_model = capabilities.modes()
    assert ghost.available
    assert not on_model.available
    assert on_model.reason == capabilities.ON_MODEL_UNAVAILABLE_REASON
    assert on_model.cost == pricing.cost_of("on-model")


def test_priorities_promise_only_what_the_workflow_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each priority says which lane its job waits in (lanes.lane_for) and this deployment's waits."""
    monkeypatch.setenv("QUEUE_WAIT_SECONDS", "1800")
    monkeypatch.setenv("BATCH_QUEUE_WAIT_SECONDS", "86400")
    normal, low = capabilities.priorities()
    assert (normal.id, low.id) == ("normal", "low")
    assert "Single photos go ahead of every batch" in normal.description
    assert "Customers take turns" in normal.description
    assert "within 30 minutes (a batch photo: 24 hours)" in normal.description
    assert "when no normal-priority photo is waiting" in low.description
    assert "up to 24 hours" in low.description
    assert "not cheaper" in low.description
    for text in (normal.description, low.description):
        assert "FIFO" not in text
        assert "SageMaker" not in text
