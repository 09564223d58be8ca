"""What an image costs, in credits (integers: money is exact)."""

from __future__ import annotations

CREDITS_PER_IMAGE: dict[str, int] = {"ghost": 1, "on-model": 4}


def cost_of(mode: str) -> int:
    try:
        return CREDITS_PER_IMAGE[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}") from None
