"""A length of time as a customer reads it in a sentence ("24 hours", "90 minutes")."""

from __future__ import annotations


def in_words(seconds: int) -> str:
    """Whole hours as hours, anything else in minutes (at least one)."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
