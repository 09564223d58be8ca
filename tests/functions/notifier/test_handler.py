"""SageMaker async notifications (SNS) settle credits exactly once, however often or late they arrive."""

from __future__ import annotations

import json

import boto3
import pytest

from functions.common import credits, db, jobs, refusals
from functions.notifier import handler
from tests.conftest import FakeLambdaContext, create_job, load_event

RESULTS = "modamoda-test-results"


@pytest.fixture
def job(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=RESULTS)
    tenant_id, job_id = create_job()
    with db.transaction(tenant_id) as conn:
        jobs.transition(conn, job_id, "validated", cost=1)
        credits.reserve(conn, tenant_id, job_id, 1, 600)
        jobs.transition(conn, job_id, "processing", task_token="token-that-no-execution-waits-for")
    s3.put_object(
        Bucket=RESULTS, Key=f"inference/output/{job_id}.out", Body=b"\x89PNG result", ContentType="image/png"
    )
    return {"job": job_id, "tenant": tenant_id}


def ledger_kinds(tenant: str) -> list[str]:
    with db.transaction(tenant) as conn:
        return [
            r["kind"]
            for r in conn.execute("SELECT kind FROM ledger WHERE tenant_id = %s ORDER BY id", (tenant,))
        ]


def state(job: dict[str, str]) -> tuple[str, int, int]:
    with db.transaction(job["tenant"]) as conn:
        row = jobs.load(conn, job["job"])
        return row["status"], credits.balance(conn, job["tenant"]), credits.ledger_sum(conn, job["tenant"])


def test_success_records_result_and_captures_once(job: dict[str, str]) -> None:
    event = load_event("sns_async_inference_success.json", JOB=job["job"])
    for _ in range(3):  # SNS delivers at least once
        assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["succeeded"]}
    assert state(job) == ("succeeded", 4, 4)
    assert ledger_kinds(job["tenant"]) == ["grant", "reserve", "capture"]
    body = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=RESULTS, Key=f"results/{job['tenant']}/{job['job']}.png"
    )
    assert body["Body"].read() == b"\x89PNG result"
    assert body["ContentType"] == "image/png"


def test_failure_releases_once(job: dict[str, str]) -> None:
    event = load_event("sns_async_inference_error.json", JOB=job["job"])
    for _ in range(2):
        assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["failed"]}
    assert state(job) == ("failed", 5, 5)
    assert ledger_kinds(job["tenant"]) == ["grant", "reserve", "release"]
    with db.transaction(job["tenant"]) as conn:
        row = jobs.load(conn, job["job"])
    assert row["error_code"] == "inference_failed"
    assert row["error_message"] == refusals.FAILED_MESSAGE  # plain words; the raw reason is only logged
    assert "SageMaker" not in row["error_message"]


def test_late_success_after_release_is_discarded(job: dict[str, str]) -> None:
    handler.lambda_handler(load_event("sns_async_inference_error.json", JOB=job["job"]), FakeLambdaContext())
    outcome = handler.lambda_handler(
        load_event("sns_async_inference_success.json", JOB=job["job"]), FakeLambdaContext()
    )
    assert outcome == {"outcomes": ["late"]}
    assert state(job) == ("failed", 5, 5)
    assert ledger_kinds(job["tenant"]) == ["grant", "reserve", "release"]


def test_failure_after_success_changes_nothing(job: dict[str, str]) -> None:
    handler.lambda_handler(
        load_event("sns_async_inference_success.json", JOB=job["job"]), FakeLambdaContext()
    )
    handler.lambda_handler(load_event("sns_async_inference_error.json", JOB=job["job"]), FakeLambdaContext())
    assert state(job) == ("succeeded", 4, 4)


def test_unknown_job_is_acknowledged(job: dict[str, str]) -> None:
    event = load_event("sns_async_inference_success.json", JOB="00000000-0000-4000-8000-000000000000")
    assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["unknown_job"]}


def test_malformed_notification_fails_loudly(job: dict[str, str]) -> None:
    event = load_event("sns_async_inference_success.json", JOB=job["job"])
    event["Records"][0]["Sns"]["Message"] = '{"hello": "world"}'
    with pytest.raises(ValueError, match="invocationStatus"):
        handler.lambda_handler(event, FakeLambdaContext())
    assert state(job)[0] == "processing"


# ---- engine refusals and the engine's quality report ---------------------------------------------------------

REFUSED_MESSAGE = (
    "The garment could not be cut out cleanly: its edges blend into the backdrop. Reshoot it on a plain backdrop "
    "that contrasts with the garment, evenly lit."
)


def put_metadata(job_id: str, document: dict) -> None:
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=RESULTS, Key=f"inference/metadata/{job_id}.json", Body=json.dumps(document).encode()
    )


def job_row(job: dict[str, str]) -> dict:
    with db.transaction(job["tenant"]) as conn:
        return jobs.load(conn, job["job"])


def test_a_refusal_ends_the_job_rejected_with_the_engines_message(job: dict[str, str]) -> None:
    event = load_event("sns_async_inference_refused.json", JOB=job["job"])
    for _ in range(3):  # replays change nothing
        assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["rejected"]}
    assert state(job) == ("rejected", 5, 5)
    assert ledger_kinds(job["tenant"]) == ["grant", "reserve", "release"]
    row = job_row(job)
    assert (row["error_code"], row["error_message"]) == ("low_confidence", REFUSED_MESSAGE)
    assert row["quality"] is None  # no metadata document: the reason alone carries no quality
    view = jobs.to_view(row)
    assert view.error is not None
    assert view.error.message == REFUSED_MESSAGE


def test_a_refusal_takes_the_metadata_documents_error_and_quality(job: dict[str, str]) -> None:
    put_metadata(
        job["job"],
        {
            "outcome": "refused",
            "error": {"code": "low_confidence", "message": REFUSED_MESSAGE, "details": {}},
            "quality": {"score": 0.42, "threshold": 0.6, "checks": {"edge": 0.2}},
        },
    )
    event = load_event("sns_async_inference_refused.json", JOB=job["job"])
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["failureReason"] = message["failureReason"][:120]  # cut before the message
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["rejected"]}
    row = job_row(job)
    assert (row["status"], row["error_code"], row["error_message"]) == (
        "rejected",
        "low_confidence",
        REFUSED_MESSAGE,
    )
    assert row["quality"] == {"score": 0.42, "threshold": 0.6}
    put_metadata(job["job"], {"outcome": "refused", "quality": {"score": 0.1, "threshold": 0.6}})
    handler.lambda_handler(event, FakeLambdaContext())  # a replay, with a changed document: nothing moves
    assert job_row(job)["quality"] == {"score": 0.42, "threshold": 0.6}
    assert ledger_kinds(job["tenant"]) == ["grant", "reserve", "release"]


def test_success_stores_the_engines_quality_once(job: dict[str, str]) -> None:
    put_metadata(job["job"], {"outcome": "succeeded", "quality": {"score": 0.9, "threshold": 0.6}})
    event = load_event("sns_async_inference_success.json", JOB=job["job"])
    assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["succeeded"]}
    put_metadata(job["job"], {"outcome": "succeeded", "quality": {"score": 0.2, "threshold": 0.6}})
    assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["succeeded"]}
    row = job_row(job)
    assert row["quality"] == {"score": 0.9, "threshold": 0.6}
    view = jobs.to_view(row)
    assert view.quality is not None
    assert (view.quality.score, view.quality.threshold) == (0.9, 0.6)
    assert ledger_kinds(job["tenant"]) == ["grant", "reserve", "capture"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"quality": {"score": 7, "threshold": 0.6}}).encode(),
        b"x" * 300_000,
    ],
)
def test_a_bad_or_missing_metadata_document_is_ignored(job: dict[str, str], body: bytes) -> None:
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=RESULTS, Key=f"inference/metadata/{job['job']}.json", Body=body
    )
    event = load_event("sns_async_inference_success.json", JOB=job["job"])
    assert handler.lambda_handler(event, FakeLambdaContext()) == {"outcomes": ["succeeded"]}
    row = job_row(job)
    assert (row["status"], row["quality"]) == ("succeeded", None)
    assert jobs.to_view(row).quality is None
