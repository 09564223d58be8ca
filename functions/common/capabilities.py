"""What this deployment offers a customer now (``GET /v1/capabilities``): the modes it can run and what each image
costs, the marketplace presets with their sizes and background rules, the priorities and what they really do, and
the caller's balance, so the PWA shows the cost before anything is processed and offers only what can run.

Every value comes from where the rest of the API takes it: costs from ``pricing`` (what the pipeline charges),
availability from ``config`` (what ``POST /v1/jobs`` refuses), presets from ``presets`` (what job options are
checked against), the low-priority wait from ``config`` (what the workflow waits).
"""

from __future__ import annotations

from typing import get_args

from functions.common import config, credits, db, presets, pricing, tenants
from functions.common.models import Capabilities, Mode, ModeInfo, PresetInfo, PriorityInfo

MODE_NAMES: dict[str, str] = {"ghost": "Ghost mannequin", "on-model": "On-model"}
ON_MODEL_UNAVAILABLE_REASON = (
    "On-model images are not available on this service yet. Ghost mannequin images are available now."
)


def modes() -> list[ModeInfo]:
    on_model = config.on_model_available()
    return [
        ModeInfo(
            id=mode,
            name=MODE_NAMES[mode],
            cost=pricing.cost_of(mode),
            available=mode != "on-model" or on_model,
            reason=None if mode != "on-model" or on_model else ON_MODEL_UNAVAILABLE_REASON,
        )
        for mode in get_args(Mode)
    ]


def preset_list() -> list[PresetInfo]:
    return [
        PresetInfo(
            id=spec.id,
            name=spec.name,
            width=spec.width,
            height=spec.height,
            description=spec.description,
            default_background=spec.default_background,
            backgrounds=list(spec.backgrounds) if spec.backgrounds is not None else None,
            rule=spec.rule,
        )
        for spec in presets.PRESETS.values()
    ]


def priorities() -> list[PriorityInfo]:
    """Honest about today's behaviour: the image engine serves jobs in the order they arrive, whatever their
    priority; ``low`` only lets a job wait longer for it before giving up (``pipeline.inference_timeout``)."""
    factor = config.low_priority_timeout_factor()
    return [
        PriorityInfo(id="normal", name="Normal", description="Processed in the order photos arrive."),
        PriorityInfo(
            id="low",
            name="Low",
            description="For large batches that are not urgent: each photo may wait up to "
            f"{factor} times longer for a free image engine before it gives up (and returns its credits). It is "
            "not processed later or more cheaply.",
        ),
    ]


def capabilities(who: tenants.Identity) -> Capabilities:
    with db.transaction(who.tenant_id) as conn:
        balance = credits.balance(conn, who.tenant_id)
    return Capabilities(modes=modes(), presets=preset_list(), priorities=priorities(), balance=balance)
