"""The GPU queue's lanes and waits: which lane a job waits in, and how long its workflow waits for the GPU.

Lanes, served in this order (``functions/common/scheduler.py``; round-robin across tenants within each):

* ``interactive``: a single job, made with ``POST /v1/jobs`` (the PWA, the API) or by re-render or retry;
* ``normal``: a file of a batch made through the API (``POST /v1/batches``);
* ``bulk``: a file written straight into a drop folder (a batch the API did not make), and any job whose priority
  is ``low``.

The lane is fixed when the job is created (``jobs.lane``). A job waits in the queue at most its lane's queue-wait
bound (``QUEUE_WAIT_SECONDS`` for interactive jobs, ``BATCH_QUEUE_WAIT_SECONDS`` for the batch lanes) and then at
most the inference timeout (``INFERENCE_TIMEOUT_SECONDS``) from the moment it is handed to the endpoint. The
workflow's ``RunInference`` waits for both (:func:`workflow_waits`), and the credit hold covers both.
"""

from __future__ import annotations

from typing import Any, cast

from functions.common import config
from functions.common.models import LANES, MAX_WAIT_SECONDS, Lane

INTERACTIVE: Lane = "interactive"
NORMAL: Lane = "normal"
BULK: Lane = "bulk"


def lane_for(priority: str | None, batch: dict[str, Any] | None = None) -> Lane:
    """The lane of a job with ``priority``, of ``batch`` (its row: ``created_by`` is set for a batch made through
    the API, NULL for one a drop folder made) or of no batch (a single job)."""
    if priority == "low":
        return BULK
    if batch is None:
        return INTERACTIVE
    return NORMAL if batch.get("created_by") else BULK


def lane_of(job: dict[str, Any]) -> Lane:
    """A job row's lane; a job created before lanes existed is placed by its priority and whether it has a batch
    (a batch file as ``normal``)."""
    lane = job.get("lane")
    if lane in LANES:
        return cast(Lane, lane)
    if job.get("priority") == "low":
        return BULK
    return NORMAL if job.get("batch_id") else INTERACTIVE


def queue_wait_seconds(lane: str) -> int:
    """The longest a job of ``lane`` waits in the queue before it fails ``queue_timeout``."""
    return config.queue_wait_seconds() if lane == INTERACTIVE else config.batch_queue_wait_seconds()


def workflow_waits(lane: str) -> tuple[int, int]:
    """``(queue_wait_seconds, inference_timeout_seconds)`` of a new job's workflow input: the queue-wait bound and
    ``RunInference``'s whole wait (queue wait + inference timeout), both within ``MAX_WAIT_SECONDS``."""
    inference = max(1, min(config.inference_timeout_seconds(), MAX_WAIT_SECONDS - 1))
    queue = min(queue_wait_seconds(lane), MAX_WAIT_SECONDS - inference)
    return queue, queue + inference
