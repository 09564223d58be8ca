"""The credits history in the customer's words: one sentence for each ledger entry, naming its photo or batch.

Every ``kind`` the code writes has its sentence (``credits``: grant, reserve, capture, release; ``billing``: refund,
dispute; expiry and adjustment where an operator writes them), and every reason a hold is released for
(``pipeline``: the job's error code; ``batches``: ``batch_cancelled``) says what happened to the photo, never the raw
code. The entry's photo, batch and purchase are joined in by ``credits.ledger_page`` (the tenant's rows only).
"""

from __future__ import annotations

from typing import Any

from functions.common.models import LedgerEntry

DEFAULT_RELEASE = "could not be processed"  # any code without its own words
# What happened to a photo whose credits were returned, by the code the job ended with.
RELEASE_REASONS: dict[str, str] = {
    # the engine's refusals
    "no_garment_found": "was refused (no garment found)",
    "low_confidence": "was refused (the cut-out was not good enough to sell)",
    "person_in_photo": "was refused (someone is wearing the garment)",
    # the photo itself
    "not_an_image": "was refused (the file is not an image)",
    "unsupported_format": "was refused (an image format we cannot read)",
    "truncated_image": "was refused (the image is damaged or cut short)",
    "too_many_pixels": "was refused (the image has too many pixels)",
    "too_complex": "was refused (the file is too complex to read)",
    "too_small": "was refused (the image is too small)",
    "extreme_aspect_ratio": "was refused (the image is too long and narrow)",
    "empty_file": "was refused (the file is empty)",
    "file_too_large": "was refused (the file is too large)",
    "input_rejected": "was refused",
    "invalid_image": "was refused (the image could not be read)",
    "upload_missing": "could not be processed: the photo was no longer there",
    "upload_expired": "never arrived",
    # batches
    "manifest_invalid": "was refused (its line in the batch's list is not valid)",
    "not_in_manifest": "was refused (the batch's list does not name it)",
    "batch_sealed": "arrived after its batch was closed",
    "batch_cancelled": "was cancelled with its batch",
    # the service
    "on_model_unavailable": "could not be processed: on-model images are not available",
    "engine_unavailable": "could not be processed: on-model images are not available",
    "mode_not_supported": "could not be processed: this kind of image is not available",
    "inference_failed": DEFAULT_RELEASE,
    "inference_rejected": DEFAULT_RELEASE,
    "internal_error": DEFAULT_RELEASE,
    "inference_timeout": "took too long and was stopped",
    "queue_timeout": "could not be started in time and was stopped",
    "hold_expired": "took too long and was stopped",
    "cancelled": "was cancelled",
}


def credits_text(count: int) -> str:
    count = abs(count)
    return f"{count} credit" if count == 1 else f"{count} credits"


def _photo(row: dict[str, Any]) -> str:
    return str(row.get("job_filename") or "a photo")


def _batch(row: dict[str, Any]) -> str:
    name, batch_id = row.get("batch_name"), row.get("batch_id")
    if not batch_id:
        return ""
    if not name or str(name) == str(batch_id):  # a batch created without a name is named by its id
        return " (in a batch)"
    return f" (batch “{name}”)"


def _pack(row: dict[str, Any]) -> str | None:
    name = row.get("pack_name")
    return f"the {name} pack" if name else None


def _purchase(row: dict[str, Any]) -> str:
    pack = _pack(row)
    return f"{pack} purchase" if pack else "a credit purchase"


def describe(row: dict[str, Any]) -> str:
    """The sentence for one ledger row (with the joined ``job_filename``, ``batch_name``, ``pack_name``,
    ``pack_credits``)."""
    kind, amount = str(row["kind"]), int(row["amount"])
    meta: dict[str, Any] = dict(row.get("meta") or {})
    reason = str(meta.get("reason") or "")
    if kind == "reserve":
        # the customer reads the reservation by what became of it: used for the image, or set aside (and returned
        # in its own entry), or set aside while the image is being made
        status = row.get("job_status")
        if status == "succeeded":
            return f"{credits_text(amount)} used for {_photo(row)}{_batch(row)}"
        if status in {"failed", "rejected", "cancelled"} or status is None:
            return f"{credits_text(amount)} set aside for {_photo(row)}{_batch(row)}"
        return f"{credits_text(amount)} set aside for {_photo(row)} while its image is made{_batch(row)}"
    if kind == "capture":
        spent = meta.get("spent")
        count = int(spent) if isinstance(spent, int) and not isinstance(spent, bool) else 0
        charged = credits_text(count) if count else "the credits set aside"
        return f"Charged {charged} for {_photo(row)}{_batch(row)}"
    if kind == "release":
        what = RELEASE_REASONS.get(reason, DEFAULT_RELEASE)
        return f"{credits_text(amount)} returned: {_photo(row)} {what}{_batch(row)}"
    if kind == "grant":
        if reason == "welcome":
            return "Welcome credits"
        if reason == "purchase":
            pack = _pack(row)
            bought = f"Bought {pack}" if pack else "Bought credits"
            return f"{bought} ({credits_text(amount)})"
        return f"{credits_text(amount)} added"
    if kind == "refund":
        if amount == 0:
            return f"Refund of {_purchase(row)}: its credits had already been used"
        return f"{credits_text(amount)} removed: {_purchase(row)} was refunded"
    if kind == "dispute":
        if amount > 0:
            return f"{credits_text(amount)} given back: the payment dispute about {_purchase(row)} has ended"
        if amount == 0:
            return f"The payment for {_purchase(row)} is disputed: its credits had already been used"
        return f"{credits_text(amount)} held back: the payment for {_purchase(row)} is disputed"
    if kind == "expiry":
        return f"{credits_text(amount)} expired"
    if kind == "adjustment":
        if amount >= 0:
            return f"{credits_text(amount)} added by Modamoda support"
        return f"{credits_text(amount)} removed by Modamoda support"
    return f"{credits_text(amount)} {'added' if amount >= 0 else 'removed'}"


def entry(row: dict[str, Any]) -> LedgerEntry:
    """The API's view of a ledger row from ``credits.ledger_page``."""
    return LedgerEntry(
        id=int(row["id"]),
        kind=str(row["kind"]),
        amount=int(row["amount"]),
        job_id=str(row["job_id"]) if row.get("job_id") else None,
        meta=dict(row.get("meta") or {}),
        created_at=row["created_at"],
        description=describe(row),
        job_filename=row.get("job_filename"),
        batch_id=str(row["batch_id"]) if row.get("batch_id") else None,
        receipt_url=row.get("receipt_url"),
    )
