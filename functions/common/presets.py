"""The marketplace presets as the API knows them: their size, what a job without a background gets, and the
backgrounds a marketplace allows. ``GET /v1/capabilities`` publishes this table and job options are checked
against it (``JobOptions``), so what the PWA offers and what the API accepts are one and the same.

The sizes and default backgrounds are a plain copy of the inference container's
``modamoda_inference.canvas._DEFAULT_PRESETS`` (the Lambda layer does not carry the container package);
``tests/functions/common/test_capabilities.py`` fails when the two drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.common.errors import ModamodaError

# The error type (pydantic) and code (API) of a background the chosen preset's marketplace does not allow.
PRESET_BACKGROUND = "preset_background"


@dataclass(frozen=True)
class PresetSpec:
    id: str
    name: str
    width: int
    height: int
    default_background: str  # what a job without a background gets (the canvas preset's "white value")
    purpose: str  # the first half of the customer's description; the size is added to it
    backgrounds: tuple[str, ...] | None = (
        None  # the only backgrounds allowed ("#rrggbb", lower case); None: any
    )
    rule: str | None = None  # why only those, in the customer's words
    refusal: str | None = None  # what a job that asks for another background is told

    @property
    def description(self) -> str:
        return f"{self.purpose}, {self.width} x {self.height} pixels."


PRESETS: dict[str, PresetSpec] = {
    spec.id: spec
    for spec in (
        PresetSpec(
            "square",
            "Square",
            2000,
            2000,
            "#ffffff",
            "A square image for most online shops",
        ),
        PresetSpec(
            "amazon",
            "Amazon",
            2000,
            2000,
            "#ffffff",
            "Amazon's main product image: the garment large on pure white, big enough for shoppers to zoom in",
            backgrounds=("#ffffff",),
            rule="Amazon asks for a pure white background on the main image, so this preset always uses white.",
            refusal="Amazon asks for a pure white background on the main image. Choose white for the Amazon "
            "preset, or choose another preset for a coloured or transparent background.",
        ),
        PresetSpec(
            "zalando",
            "Zalando",
            1524,
            2200,
            "#f1f1f1",
            "A portrait image in Zalando's catalogue proportions on light grey (check Zalando's current "
            "partner guidelines before you publish)",
        ),
        PresetSpec(
            "shopify",
            "Shopify",
            2048,
            2048,
            "#ffffff",
            "A square image at the size Shopify recommends",
        ),
        PresetSpec(
            "portrait_4_5",
            "Portrait 4:5",
            1600,
            2000,
            "#ffffff",
            "A 4:5 portrait image for social media and shops",
        ),
    )
}


def background_refusal(preset: str, background: str | None) -> str | None:
    """The customer's sentence when ``preset``'s marketplace does not allow ``background`` (None: the preset's
    default background, which every preset allows), else None."""
    spec = PRESETS.get(preset)
    if spec is None or spec.backgrounds is None:
        return None
    chosen = (background or spec.default_background).lower()
    if chosen in spec.backgrounds:
        return None
    return spec.refusal or f"The {spec.name} preset does not allow this background."


class PresetBackgroundRefused(ModamodaError):
    """Job options whose background the preset's marketplace does not allow: refused before anything is created
    (422, nothing charged)."""

    code = PRESET_BACKGROUND
    http_status = 422


def refusal_of(errors: list[dict[str, Any]]) -> PresetBackgroundRefused | None:
    """The request's one problem as its own error, when every problem pydantic found is a refused preset
    background (the customer gets that sentence and code instead of a generic ``validation_error``)."""
    if not errors or any(str(e.get("type", "")) != PRESET_BACKGROUND for e in errors):
        return None
    details = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "message": str(e.get("msg", "")),
            "type": PRESET_BACKGROUND,
        }
        for e in errors
    ]
    return PresetBackgroundRefused(str(errors[0].get("msg", "")), details=details)
