"""``modamoda watch BATCH``: the batch's counts as a progress bar, polled until the batch has finished."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from modamoda_cli.api import Client, CliError
from modamoda_cli.ui import Ui

FINAL_STATUSES = frozenset({"completed", "stopped", "cancelled"})
DONE_COUNTS = ("succeeded", "failed", "rejected", "cancelled")
SHOWN_COUNTS = ("succeeded", "failed", "rejected", "cancelled", "processing", "queued", "awaiting")


def counts(batch: dict[str, Any]) -> dict[str, int | None]:
    raw = batch.get("counts") or {}
    return {k: raw.get(k) for k in ("expected", "total", *SHOWN_COUNTS)}


def _n(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def finished(batch: dict[str, Any]) -> bool:
    """Finished: the service says so (``finished_at``), or a final status with nothing left in progress."""
    if batch.get("finished_at"):
        return True
    c = counts(batch)
    return batch.get("status") in FINAL_STATUSES and not _n(c["processing"]) and not _n(c["queued"])


def done_and_total(batch: dict[str, Any]) -> tuple[int, int]:
    c = counts(batch)
    done = sum(_n(c[k]) for k in DONE_COUNTS)
    expected = c["expected"]
    total = _n(expected) if expected is not None else _n(c["total"])
    return done, max(total, done)


def ok(batch: dict[str, Any]) -> bool:
    """Completed with every image processed: exit status 0."""
    c = counts(batch)
    return batch.get("status") == "completed" and not any(
        _n(c[k]) for k in ("failed", "rejected", "cancelled")
    )


def describe(batch: dict[str, Any]) -> str:
    c = counts(batch)
    parts = [f"{_n(c[k])} {k}" for k in SHOWN_COUNTS if _n(c[k]) or k == "succeeded"]
    return f"{batch.get('status', '?')}: " + ", ".join(parts)


def summary_line(batch: dict[str, Any]) -> str:
    done, total = done_and_total(batch)
    spent = batch.get("credits_spent")
    credits = f"; {spent} credits spent" if spent is not None else ""
    line = f"batch {batch.get('id')} ({batch.get('name') or ''}) {describe(batch)} — {done} of {total} done{credits}"
    for key, label in (("stop_reason", "stopped"), ("manifest_error", "manifest refused")):
        if batch.get(key):
            line += f"\n{label}: {batch[key]}"
    return line


def watch(
    client: Client, batch_id: str, ui: Ui, *, interval: float = 2.0, timeout: float | None = None
) -> dict[str, Any]:
    """Poll the batch until it has finished; returns its last view."""
    deadline = time.monotonic() + timeout if timeout else None
    batch = client.batch(batch_id)
    if finished(batch):
        return batch
    progress = ui.progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    last_line = ""
    warned_open = False
    with progress:
        done, total = done_and_total(batch)
        task = progress.add_task(
            str(batch.get("name") or batch_id)[:40], total=total or None, completed=done, counts=""
        )
        while True:
            done, total = done_and_total(batch)
            line = describe(batch)
            progress.update(task, total=total or None, completed=done, counts=line)
            if not ui.live and line != last_line:
                ui.info(f"{done}/{total} {line}")
            last_line = line
            if batch.get("status") == "open" and not batch.get("sealed") and not warned_open:
                warned_open = True
                ui.warn(
                    "the batch is open: it finishes once it is sealed (`modamoda upload` seals it after the last "
                    "file, a manifest seals it at once)"
                )
            if finished(batch):
                return batch
            if deadline is not None and time.monotonic() >= deadline:
                raise CliError(f"batch {batch_id} has not finished after {timeout:g} s ({line})")
            client.sleep(interval)
            batch = client.batch(batch_id)
