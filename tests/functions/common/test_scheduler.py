"""The GPU queue (functions/common/scheduler.py) on a real PostgreSQL: lanes before tenants before arrival, the cap
on jobs at the endpoint, round-robin across tenants (checked against a model of the policy with hypothesis), two
dispatchers at once, queue and inference timeouts from the hand-over, a job cancelled while it waits, the hold's
deadline at enqueue and at the hand-over, failed hand-overs with backoff, and fifo mode."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.common import batches, config, credits, db, jobs, lanes, pipeline, scheduler
from functions.common.errors import ConfigError
from functions.common.models import (
    BatchRequest,
    EnqueueInput,
    ImageRef,
    Priority,
    SettleInput,
    UploadRequest,
)
from functions.common.tenants import ensure_user

ENDPOINT = "modamoda-test-endpoint"
QUEUE_WAIT = 600
INFERENCE_WAIT = 300
LANE_RANK = {"interactive": 0, "normal": 1, "bulk": 2}


# ---- fakes ------------------------------------------------------------------------------------------------------


class FakeSageMaker:
    """``invoke_endpoint_async`` that records each hand-over (thread-safe); ``fail`` makes the next calls raise."""

    def __init__(self, delay: float = 0.0) -> None:
        self.invoked: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.fail = 0
        self.delay = delay
        self._lock = threading.Lock()

    def invoke_endpoint_async(self, **kwargs: Any) -> dict[str, Any]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            if self.fail:
                self.fail -= 1
                raise RuntimeError("ThrottlingException: Rate exceeded")
            self.invoked.append(kwargs["InferenceId"])
            self.calls.append(kwargs)
        return {"InferenceId": kwargs["InferenceId"], "OutputLocation": "s3://b/o"}


class FakeSfn:
    """Records the task tokens answered."""

    class exceptions:
        class TaskTimedOut(Exception):
            pass

        TaskDoesNotExist = TaskTimedOut
        InvalidToken = TaskTimedOut

    def __init__(self) -> None:
        self.failures: list[dict[str, Any]] = []

    def send_task_failure(self, **kwargs: Any) -> None:
        self.failures.append(kwargs)

    def send_task_success(self, **kwargs: Any) -> None:
        raise AssertionError("the scheduler never resumes an execution with a success")


class NoS3:
    def put_object(self, **_: Any) -> None:
        pass


# ---- a queue under test -------------------------------------------------------------------------------------------


@dataclass
class Queue:
    conn: psycopg.Connection
    sagemaker: FakeSageMaker = field(default_factory=FakeSageMaker)
    sfn: FakeSfn = field(default_factory=FakeSfn)
    credits_each: int = 100

    def tenant(self, name: str | None = None) -> str:
        sub = name or f"t-{uuid.uuid4().hex[:8]}"
        return ensure_user(sub, f"{sub}@example.com", self.credits_each).tenant_id

    def job(self, tenant_id: str, lane: str = "interactive", *, enqueue: bool = True) -> str:
        """A validated job of ``tenant_id`` in ``lane`` holding 1 credit, queued for the GPU."""
        priority: Priority = "low" if lane == "bulk" else "normal"
        with db.transaction(tenant_id) as conn:
            batch = None
            if lane == "normal":
                batch = batches.create(conn, tenant_id, "creator", BatchRequest())
            row = jobs.create(
                conn,
                tenant_id,
                UploadRequest(filename="shirt.jpg", content_type="image/jpeg", priority=priority),
                "modamoda-test-uploads",
            )
            job_id = str(row["id"])
            if batch is not None:  # a file of a batch the API made
                conn.execute(
                    "UPDATE jobs SET batch_id = %s, lane = %s WHERE id = %s",
                    (batch["id"], lanes.lane_for(priority, batch), job_id),
                )
            jobs.transition(conn, job_id, "validated", cost=1)
            credits.reserve(conn, tenant_id, job_id, 1, 60)
        assert lanes.lane_of(self.row(job_id)) == lane
        if enqueue:
            self.enqueue(tenant_id, job_id)
        return job_id

    def enqueue(self, tenant_id: str, job_id: str, token: str | None = None) -> dict[str, Any]:
        return scheduler.enqueue(
            NoS3(),
            EnqueueInput(
                job_id=job_id,
                tenant_id=tenant_id,
                task_token=token or f"token-{job_id}",
                mode="on-model",
                image=ImageRef(
                    bucket="modamoda-test-uploads", key="k", format="JPEG", width=10, height=10, bytes=1
                ),
                options={},
                timeout_seconds=QUEUE_WAIT + INFERENCE_WAIT,
                queue_wait_seconds=QUEUE_WAIT,
            ),
        )

    def dispatch(self) -> scheduler.Pass:
        return scheduler.dispatch(self.sagemaker, self.sfn)

    def row(self, job_id: str) -> dict[str, Any]:
        found = self.conn.execute(
            "SELECT j.*, h.status AS hold, h.expires_at AS hold_expires_at,"
            " ARRAY(SELECT kind FROM ledger l WHERE l.job_id = j.id ORDER BY l.id) AS kinds"
            " FROM jobs j LEFT JOIN holds h ON h.job_id = j.id WHERE j.id = %s",
            (job_id,),
        ).fetchone()
        assert found is not None
        return dict(found)

    def finish(self, job_id: str) -> None:
        """The endpoint's result came and was settled: the job leaves the endpoint (as the notifier does)."""
        tenant_id = str(self.row(job_id)["tenant_id"])

        def settle(conn: db.Conn) -> None:
            credits.capture(conn, job_id)
            jobs.transition(conn, job_id, "succeeded")
            jobs.queue_done(conn, job_id)

        db.atomic(tenant_id, settle)

    def in_flight(self) -> int:
        found = db.system_lookup("SELECT app_inference_in_flight() AS n", ())
        assert found is not None
        return int(found["n"])

    def overdue(self, job_id: str, column: str) -> None:
        self.conn.execute(f"UPDATE jobs SET {column} = now() - interval '1 second' WHERE id = %s", (job_id,))

    def clear(self) -> None:
        """End everything still queued or at the endpoint (hypothesis examples share one database)."""
        self.conn.execute(
            "UPDATE jobs SET status = 'failed', queue_state = 'done' WHERE queue_state IS NOT NULL"
            " AND queue_state <> 'done'"
        )


@pytest.fixture
def queue(
    mocked_aws: None, database_url: str, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> Queue:
    monkeypatch.setenv("RESULTS_BUCKET", "modamoda-test-results")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="modamoda-test-results")
    monkeypatch.setenv("INFERENCE_ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "2")
    for name in ("SCHEDULER_MODE", "DISPATCH_FUNCTION_NAME", "WEBHOOK_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    return Queue(conn)


# ---- lanes ---------------------------------------------------------------------------------------------------------


def test_priority_and_origin_make_the_lane() -> None:
    assert lanes.lane_for("normal") == "interactive"
    assert lanes.lane_for("low") == "bulk"
    assert lanes.lane_for("normal", {"created_by": "sub"}) == "normal"
    assert lanes.lane_for("low", {"created_by": "sub"}) == "bulk"
    assert lanes.lane_for("normal", {"created_by": None}) == "bulk"  # a drop folder's own batch
    # jobs from before lanes: by priority and batch
    assert lanes.lane_of({"priority": "normal", "batch_id": None}) == "interactive"
    assert lanes.lane_of({"priority": "normal", "batch_id": "b"}) == "normal"
    assert lanes.lane_of({"priority": "low", "batch_id": None, "lane": None}) == "bulk"


def test_the_workflow_waits_for_the_queue_and_the_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", "3600")
    monkeypatch.setenv("QUEUE_WAIT_SECONDS", "1800")
    monkeypatch.setenv("BATCH_QUEUE_WAIT_SECONDS", "86400")
    assert lanes.workflow_waits("interactive") == (1800, 1800 + 3600)
    assert lanes.workflow_waits("normal") == (86400, 86400 + 3600)
    assert lanes.workflow_waits("bulk") == (86400, 86400 + 3600)


def test_the_cap_comes_from_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERENCE_MAX_IN_FLIGHT", raising=False)
    for name in ("INFERENCE_INSTANCES", "INFERENCE_CONCURRENCY_PER_INSTANCE", "INFERENCE_DISPATCH_BUFFER"):
        monkeypatch.delenv(name, raising=False)
    assert config.inference_max_in_flight() == 2  # one instance, one at a time, one ahead
    monkeypatch.setenv("INFERENCE_INSTANCES", "4")
    monkeypatch.setenv("INFERENCE_CONCURRENCY_PER_INSTANCE", "2")
    monkeypatch.setenv("INFERENCE_DISPATCH_BUFFER", "0")
    assert config.inference_max_in_flight() == 8
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "3")
    assert config.inference_max_in_flight() == 3


def test_the_dispatch_buffer_is_kept_for_interactive_work(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "INFERENCE_MAX_IN_FLIGHT",
        "INFERENCE_INSTANCES",
        "INFERENCE_CONCURRENCY_PER_INSTANCE",
        "INFERENCE_DISPATCH_BUFFER",
        "INFERENCE_BATCH_DISPATCH_BUFFER",
    ):
        monkeypatch.delenv(name, raising=False)
    assert (config.inference_max_in_flight(), config.inference_batch_max_in_flight()) == (2, 1)
    monkeypatch.setenv("INFERENCE_INSTANCES", "3")
    assert (config.inference_max_in_flight(), config.inference_batch_max_in_flight()) == (4, 3)
    monkeypatch.setenv("INFERENCE_BATCH_DISPATCH_BUFFER", "5")  # never past the whole cap
    assert config.inference_batch_max_in_flight() == 4
    monkeypatch.setenv("INFERENCE_BATCH_DISPATCH_BUFFER", "-1")
    with pytest.raises(ConfigError):
        config.inference_batch_max_in_flight()
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "3")  # an explicit cap serves every lane
    assert config.inference_batch_max_in_flight() == 3


# ---- enqueue, dispatch, the cap ----------------------------------------------------------------------------------


def test_enqueue_stretches_the_hold_and_the_hand_over_resets_it(queue: Queue) -> None:
    tenant = queue.tenant()
    job = queue.job(tenant)
    queued = queue.row(job)
    assert (queued["status"], queued["queue_state"], queued["lane"]) == ("validated", "queued", "interactive")
    assert queued["task_token"] == f"token-{job}"
    wait = (queued["hold_expires_at"] - queued["enqueued_at"]).total_seconds()
    # the hold covers the queue-wait bound, then the inference, then the sweeper's grace
    assert wait == pytest.approx(QUEUE_WAIT + INFERENCE_WAIT + pipeline.HOLD_GRACE_SECONDS, abs=5)
    assert (queued["queue_deadline"] - queued["enqueued_at"]).total_seconds() == pytest.approx(
        QUEUE_WAIT, abs=1
    )

    assert queue.dispatch().dispatched == [job]
    handed = queue.row(job)
    assert (handed["status"], handed["queue_state"], handed["dispatch_attempts"]) == (
        "processing",
        "dispatched",
        1,
    )
    assert "processing" in handed["stages"]
    # from the hand-over: the inference timeout, then the grace
    left = (handed["hold_expires_at"] - handed["dispatched_at"]).total_seconds()
    assert left == pytest.approx(INFERENCE_WAIT + pipeline.HOLD_GRACE_SECONDS, abs=5)
    assert (handed["inference_deadline"] - handed["dispatched_at"]).total_seconds() == pytest.approx(
        INFERENCE_WAIT, abs=1
    )
    call = queue.sagemaker.calls[0]
    assert (call["InferenceId"], call["EndpointName"]) == (job, ENDPOINT)
    assert call["InvocationTimeoutSeconds"] + call["RequestTTLSeconds"] <= INFERENCE_WAIT


def test_never_more_at_the_endpoint_than_the_cap(queue: Queue) -> None:
    tenant = queue.tenant()
    made = [queue.job(tenant) for _ in range(5)]
    first = queue.dispatch()
    assert first.dispatched == made[:2]  # arrival order within a tenant
    assert (first.queued, first.in_flight) == (3, 2)
    assert queue.dispatch().dispatched == []  # full
    queue.finish(made[0])
    assert queue.dispatch().dispatched == [made[2]]
    assert queue.in_flight() == 2
    for job in made[1:3]:
        queue.finish(job)
    assert queue.dispatch().dispatched == made[3:]
    assert queue.sagemaker.invoked == made


def test_a_bulk_drop_never_takes_the_place_kept_for_a_single_photo(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One instance, one invocation at a time, buffer 1 (the derived cap of 2): a drop keeps one job at the
    endpoint, not two, so a single photo submitted during the drop waits only for the job running."""
    monkeypatch.delenv("INFERENCE_MAX_IN_FLIGHT")
    a, b = queue.tenant("a"), queue.tenant("b")
    drop = [queue.job(a, "bulk") for _ in range(4)]
    assert queue.dispatch().dispatched == drop[:1]
    assert queue.dispatch().dispatched == []  # the buffer is not for the drop
    single = queue.job(b, "interactive")
    assert queue.dispatch().dispatched == [single]  # the buffer's place
    assert queue.in_flight() == 2
    queue.finish(drop[0])
    assert queue.dispatch().dispatched == []  # the single photo still holds the invocation slot's turn
    queue.finish(single)
    assert queue.dispatch().dispatched == drop[1:2]
    assert queue.sagemaker.invoked == [drop[0], single, drop[1]]


def test_interactive_before_normal_before_bulk(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "1")
    a, b = queue.tenant(), queue.tenant()
    bulk = [queue.job(a, "bulk") for _ in range(3)]
    normal = queue.job(b, "normal")
    interactive = queue.job(b, "interactive")
    order = []
    for _ in range(5):
        (job,) = queue.dispatch().dispatched
        order.append(job)
        queue.finish(job)
    assert order == [interactive, normal, *bulk]


def test_tenants_take_turns_in_a_lane(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """A's drop of 6 arrives first; B's 2 and C's 1 come later: they are not served after all of A's."""
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "1")
    a, b, c = queue.tenant("a"), queue.tenant("b"), queue.tenant("c")
    a_jobs = [queue.job(a, "bulk") for _ in range(6)]
    (first,) = queue.dispatch().dispatched  # A alone so far
    assert first == a_jobs[0]
    b_jobs = [queue.job(b, "bulk") for _ in range(2)]
    c_job = queue.job(c, "bulk")
    order = [first]
    queue.finish(first)
    for _ in range(8):
        (job,) = queue.dispatch().dispatched
        order.append(job)
        queue.finish(job)
    # B and C have never been served in the lane: they go first (B arrived first), then turns by last dispatch
    assert order == [a_jobs[0], b_jobs[0], c_job, a_jobs[1], b_jobs[1], *a_jobs[2:]]


def test_one_pass_fills_every_place_with_turns(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "4")
    a, b = queue.tenant(), queue.tenant()
    a_jobs = [queue.job(a, "bulk") for _ in range(4)]
    b_jobs = [queue.job(b, "bulk") for _ in range(4)]
    assert queue.dispatch().dispatched == [a_jobs[0], b_jobs[0], a_jobs[1], b_jobs[1]]


# ---- the policy against a model (hypothesis) ------------------------------------------------------------------------


class Model:
    """The scheduling policy in plain Python: lane, then the tenant's last dispatch in the lane (never first),
    then arrival; a tenant's own jobs in arrival order; at most ``cap`` at the endpoint."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, str, str]] = []  # (job, tenant, lane) in arrival order
        self.last: dict[tuple[str, str], int] = {}
        self.in_flight: set[str] = set()
        self.clock = itertools.count()

    def next(self) -> tuple[str, str, str] | None:
        heads: dict[tuple[str, str], tuple[int, tuple[str, str, str]]] = {}
        for position, (job, tenant, lane) in enumerate(self.queued):
            heads.setdefault((tenant, lane), (position, (job, tenant, lane)))

        def key(item: tuple[tuple[str, str], tuple[int, tuple[str, str, str]]]) -> tuple[int, int, int]:
            (tenant, lane), (position, _) = item
            last = self.last.get((tenant, lane))
            return (LANE_RANK[lane], -1 if last is None else last, position)

        if not heads:
            return None
        return min(heads.items(), key=key)[1][1]

    def dispatch(self, cap: int) -> list[str]:
        out = []
        while len(self.in_flight) < cap:
            picked = self.next()
            if picked is None:
                break
            job, tenant, lane = picked
            self.queued.remove(picked)
            self.last[(tenant, lane)] = next(self.clock)
            self.in_flight.add(job)
            out.append(job)
        return out


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 2), st.sampled_from(["interactive", "normal", "bulk"])),
        st.tuples(st.just("dispatch"), st.integers(1, 3), st.just("")),
        st.tuples(st.just("finish"), st.integers(0, 5), st.just("")),
    ),
    min_size=1,
    max_size=18,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_the_dispatch_order_is_the_policy_and_nothing_runs_twice(
    queue: Queue, monkeypatch: pytest.MonkeyPatch, steps: list[tuple[str, int, str]]
) -> None:
    queue.clear()
    queue.sagemaker.invoked.clear()
    tenants = [queue.tenant() for _ in range(3)]
    model = Model()
    arrived: dict[tuple[str, str], list[str]] = {}
    for action, number, lane in [*steps, ("dispatch", 3, ""), *[("drain", 0, "")] * 20]:
        if action == "add":
            job = queue.job(tenants[number], lane)
            model.queued.append((job, tenants[number], lane))
            arrived.setdefault((tenants[number], lane), []).append(job)
        elif action == "finish" and model.in_flight:
            job = sorted(model.in_flight)[number % len(model.in_flight)]
            model.in_flight.discard(job)
            queue.finish(job)
        elif action in {"dispatch", "drain"}:
            cap = number if action == "dispatch" else 3
            if action == "drain":
                for job in sorted(model.in_flight):
                    queue.finish(job)
                model.in_flight.clear()
            monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", str(cap))
            before = queue.in_flight()
            assert queue.dispatch().dispatched == model.dispatch(cap)
            # a pass never goes past the cap (after the cap was lowered, it dispatches nothing)
            assert queue.in_flight() <= max(cap, before)
    invoked = queue.sagemaker.invoked
    assert len(invoked) == len(set(invoked))  # never handed over twice
    assert not model.queued  # no starvation: everything was served once the endpoint had room
    for (tenant, lane), jobs_in_order in arrived.items():  # FIFO within a tenant's lane
        assert [j for j in invoked if j in set(jobs_in_order)] == jobs_in_order, (tenant, lane)


# ---- concurrency ----------------------------------------------------------------------------------------------------


def test_two_dispatchers_at_once_hand_each_job_over_once_and_keep_the_cap(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCE_MAX_IN_FLIGHT", "3")
    queue.sagemaker.delay = 0.05  # the hand-overs overlap the other dispatcher's claim
    tenants = [queue.tenant() for _ in range(2)]
    made = [queue.job(tenants[i % 2], "bulk") for i in range(8)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                queue.dispatch()
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.reset()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(queue.sagemaker.invoked) == len(set(queue.sagemaker.invoked)) == 3
    assert queue.in_flight() == 3
    for job in list(queue.sagemaker.invoked):
        queue.finish(job)
    while handed := queue.dispatch().dispatched:
        for job in handed:
            queue.finish(job)
    assert sorted(queue.sagemaker.invoked) == sorted(made)
    assert len(queue.sagemaker.invoked) == len(set(queue.sagemaker.invoked))


# ---- timeouts, cancel, failed hand-overs ---------------------------------------------------------------------------


def test_a_job_that_waits_past_its_bound_fails_queue_timeout_and_costs_nothing(queue: Queue) -> None:
    tenant = queue.tenant()
    job = queue.job(tenant)
    queue.overdue(job, "queue_deadline")
    result = queue.dispatch()
    assert result.ended == {"queue_timeout": 1}
    assert result.dispatched == []
    row = queue.row(job)
    assert (row["status"], row["error_code"], row["queue_state"], row["hold"]) == (
        "failed",
        "queue_timeout",
        "done",
        "released",
    )
    assert row["kinds"] == ["reserve", "release"]
    (failure,) = queue.sfn.failures
    assert failure["taskToken"] == f"token-{job}"
    assert failure["error"] == "InferenceFailed"
    assert failure["cause"].startswith("queue_timeout: ")
    # the execution's ReleaseCredits then finds the hold released and the job ended: nothing changes
    settled = pipeline.release_credits(
        SettleInput(
            job_id=job, tenant_id=tenant, error={"Error": failure["error"], "Cause": failure["cause"]}
        )
    )
    assert (settled.status, settled.hold, settled.error_code) == ("failed", "released", "queue_timeout")
    assert queue.dispatch().ended == {}  # once
    assert queue.sagemaker.invoked == []


def test_the_inference_timeout_counts_from_the_hand_over(queue: Queue) -> None:
    tenant = queue.tenant()
    job = queue.job(tenant)
    queue.dispatch()
    queue.overdue(job, "inference_deadline")
    assert queue.dispatch().ended == {"inference_timeout": 1}
    row = queue.row(job)
    assert (row["status"], row["error_code"], row["hold"]) == ("failed", "inference_timeout", "released")
    assert queue.sfn.failures[0]["cause"].startswith("inference_timeout: ")
    assert queue.in_flight() == 0


def test_a_result_settled_without_resuming_the_execution_is_told_at_the_deadline(queue: Queue) -> None:
    """The notifier captured and died before resuming: the job stays succeeded and charged once; the waiting
    execution is failed at the inference deadline so that it ends (its ReleaseCredits finds the hold captured)."""
    tenant = queue.tenant()
    job = queue.job(tenant)
    queue.dispatch()
    with db.transaction(tenant) as conn:
        credits.capture(conn, job)
        jobs.transition(conn, job, "succeeded")
    queue.overdue(job, "inference_deadline")
    assert queue.dispatch().ended == {"inference_timeout": 1}
    row = queue.row(job)
    assert (row["status"], row["hold"], row["kinds"]) == ("succeeded", "captured", ["reserve", "capture"])
    assert len(queue.sfn.failures) == 1


def test_a_job_cancelled_with_its_batch_while_queued_leaves_the_queue(queue: Queue) -> None:
    tenant = queue.tenant()
    job = queue.job(tenant, "normal")
    other = queue.job(queue.tenant(), "normal")
    batch_id = str(queue.row(job)["batch_id"])

    def cancel(conn: db.Conn) -> list[str]:
        return batches.cancel(conn, batches.get(conn, tenant, batch_id, lock=True))

    db.atomic(tenant, cancel)
    row = queue.row(job)
    assert (row["status"], row["hold"], row["kinds"]) == ("cancelled", "released", ["reserve", "release"])
    result = queue.dispatch()
    assert result.dispatched == [other]  # the cancelled one is never handed over
    assert result.ended == {"ended": 1}
    (failure,) = queue.sfn.failures  # its execution, if still waiting, is told
    assert (failure["taskToken"], failure["error"]) == (f"token-{job}", "JobEnded")
    assert failure["cause"].startswith("batch_cancelled: ")
    assert queue.row(job)["queue_state"] == "done"
    assert queue.dispatch().ended == {}


def test_a_failed_hand_over_goes_back_to_the_queue_then_fails_the_job(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCE_DISPATCH_ATTEMPTS", "2")
    tenant = queue.tenant()
    job = queue.job(tenant)
    queue.sagemaker.fail = 5
    first = queue.dispatch()
    assert (first.dispatched, first.returned) == ([], [job])
    row = queue.row(job)
    assert (row["status"], row["queue_state"], row["dispatch_attempts"]) == ("validated", "queued", 1)
    assert row["dispatch_after"] > row["dispatched_at"]  # backoff
    assert "ThrottlingException" in row["dispatch_error"]
    # the hold covers the queue again
    assert row["hold_expires_at"] >= row["queue_deadline"]
    assert queue.dispatch().returned == []  # not before its backoff
    queue.overdue(job, "dispatch_after")
    last = queue.dispatch()
    assert last.ended == {"dispatch_failed": 1}
    row = queue.row(job)
    assert (row["status"], row["error_code"], row["hold"]) == ("failed", "inference_failed", "released")
    assert queue.sfn.failures[0]["cause"].startswith("inference_failed: ")
    assert queue.sagemaker.invoked == []


def test_a_replayed_enqueue_never_queues_a_job_twice(queue: Queue) -> None:
    tenant = queue.tenant()
    job = queue.job(tenant)
    queue.dispatch()
    assert queue.enqueue(tenant, job, token="newer")["queue_state"] == "dispatched"
    assert queue.dispatch().dispatched == []
    row = queue.row(job)
    assert (row["task_token"], row["dispatch_attempts"]) == ("newer", 1)


def test_fifo_hands_every_job_over_at_once_in_arrival_order(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULER_MODE", "fifo")
    a, b = queue.tenant(), queue.tenant()
    made = [queue.job(a, "bulk"), queue.job(a, "bulk"), queue.job(b, "interactive"), queue.job(b, "normal")]
    result = queue.dispatch()
    assert (result.mode, result.dispatched) == ("fifo", made)
    # the whole wait counts from the hand-over: the job waits in the endpoint's own queue
    row = queue.row(made[0])
    assert row["inference_wait_seconds"] == QUEUE_WAIT + INFERENCE_WAIT


def test_the_depth_is_published_for_autoscaling(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = queue.tenant()
    for _ in range(3):
        queue.job(tenant, "bulk")
    result = queue.dispatch()
    metrics: dict[str, float] = {}
    dimensions: dict[str, str] = {}
    scheduler.publish(
        lambda name, unit, value: metrics.__setitem__(name, value),
        lambda name, value: dimensions.__setitem__(name, value),
        result,
    )
    assert dimensions == {"EndpointName": ENDPOINT}
    assert metrics[scheduler.QUEUE_DEPTH_METRIC] == 3  # 1 queued + 2 at the endpoint
    assert (metrics["InferenceQueued"], metrics["InferenceInFlight"], metrics["InferenceDispatched"]) == (
        1,
        2,
        2,
    )
    assert result.as_dict()["lanes"]["bulk"]["queued"] == 1
