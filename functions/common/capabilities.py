"""What this deployment offers a customer now (``GET /v1/capabilities``): the modes it can run and what each image
costs, the marketplace presets with their sizes and background rules, the priorities and what they really do, and
the caller's balance, so the PWA shows the cost before anything is processed and offers only what can run.

Every value comes from where the rest of the API takes it: costs from ``pricing`` (what the pipeline charges),
availability from ``config`` (what ``POST /v1/jobs`` refuses), presets from ``presets`` (what job options are
checked against), the priorities' lanes and waits from ``config`` (what the GPU queue serves and waits).
"""

from __future__ import annotations

from typing import get_args

from functions.common import config, credits, db, durations, presets, pricing, tenants
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
    """What each priority does: the lane its job waits in for the image engine (``lanes.lane_for``). Single photos
    come before batches, batches before low-priority and drop-folder work, and customers take turns within each
    lane; ghost packshots, made in seconds without the queue, are not affected. The waits are this deployment's
    (``QUEUE_WAIT_SECONDS``, ``BATCH_QUEUE_WAIT_SECONDS``)."""
    single, batch = (
        durations.in_words(config.queue_wait_seconds()),
        durations.in_words(config.batch_queue_wait_seconds()),
    )
    return [
        PriorityInfo(
            id="normal",
            name="Normal",
            description="Single photos go ahead of every batch; batch photos go ahead of low-priority work. "
            "Customers take turns, so another customer's large batch never holds up your photo. If the image "
            f"engine cannot start a single photo within {single} (a batch photo: {batch}), the job stops and "
            "returns its credits.",
        ),
        PriorityInfo(
            id="low",
            name="Low",
            description="For large batches that are not urgent: these photos are made when no normal-priority "
            f"photo is waiting, and may wait up to {batch} before they stop and return their credits. They are "
            "not cheaper.",
        ),
    ]


def capabilities(who: tenants.Identity) -> Capabilities:
    with db.transaction(who.tenant_id) as conn:
        balance = credits.balance(conn, who.tenant_id)
    return Capabilities(modes=modes(), presets=preset_list(), priorities=priorities(), balance=balance)
