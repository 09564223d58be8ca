"""The state machine file, executed on moto's ASL interpreter with the real handlers as its Lambda tasks, through
success, inference failure, missing weights, rejected input, insufficient credits and timeout."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageDraw

from functions.common import credits, db
from local.client import ApiClient
from local.stack import ASL_FILE, LocalSettings, LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # on-model offered though the endpoint has no weights: the engine's own refusal is what these tests exercise
    with LocalStack(LocalSettings(inference_timeout_seconds=120, offer_on_model=True)) as local:
        yield local


@pytest.fixture
def fresh(stack: LocalStack) -> Iterator[LocalStack]:
    yield stack
    stack.endpoint.fail_with = None
    stack.endpoint.drop_notifications = False
    stack.wait_idle(timeout=30)


def garment_photo() -> bytes:
    image = Image.new("RGB", (480, 600), (214, 216, 219))
    ImageDraw.Draw(image).polygon(
        [(150, 120), (330, 120), (380, 200), (350, 520), (130, 520), (100, 200)], fill=(30, 60, 140)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def new_client(stack: LocalStack) -> ApiClient:
    tokens = stack.sign_up(f"{uuid.uuid4().hex[:10]}@example.com", "Test-Passw0rd-123")
    return ApiClient(stack.api_url, tokens["access_token"])


def execution_for(stack: LocalStack, job_id: str) -> tuple[dict[str, Any], list[str]]:
    sfn = stack.client("stepfunctions")
    found = [
        e
        for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
        if e["name"].startswith(f"job-{job_id}-")
    ]
    assert len(found) == 1, found
    arn = found[0]["executionArn"]
    for _ in range(100):
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            break
        stack.wait_idle(timeout=5)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    return described, entered


def ledger(tenant_id: str) -> tuple[list[str], int, int]:
    with db.transaction(tenant_id) as conn:
        kinds = [
            r["kind"]
            for r in conn.execute("SELECT kind FROM ledger WHERE tenant_id = %s ORDER BY id", (tenant_id,))
        ]
        return kinds, credits.balance(conn, tenant_id), credits.ledger_sum(conn, tenant_id)


def test_the_local_stack_runs_the_asl_file_itself(stack: LocalStack) -> None:
    deployed = stack.client("stepfunctions").describe_state_machine(stateMachineArn=stack.state_machine_arn)
    file_states = json.loads(ASL_FILE.read_text())["States"]
    assert json.loads(deployed["definition"])["States"].keys() == file_states.keys()
    assert "${" not in deployed["definition"]
    # The file names no partition (the stack's is substituted in AWS); locally it is the emulated account's.
    assert {s["Resource"] for s in file_states.values() if s["Type"] == "Task"} == {
        "arn:${Partition}:states:::lambda:invoke",
        "arn:${Partition}:states:::lambda:invoke.waitForTaskToken",
    }
    deployed_states = json.loads(deployed["definition"])["States"]
    assert {s["Resource"] for s in deployed_states.values() if s["Type"] == "Task"} == {
        "arn:aws:states:::lambda:invoke",
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
    }


def test_success_captures_credits(fresh: LocalStack) -> None:
    client = new_client(fresh)
    me = client.me()
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"))
    assert job["status"] == "succeeded", job
    described, entered = execution_for(fresh, job["id"])
    assert described["status"] == "SUCCEEDED"
    assert entered == [
        "ValidateInput",
        "ReserveCredits",
        "RunInference",
        "CaptureCredits",
        "CheckCapture",
        "JobSucceeded",
    ]
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "capture"], me["balance"] - 1, me["balance"] - 1)
    result = Image.open(io.BytesIO(client.download(job)))
    assert result.format == "PNG"
    assert result.size == (2000, 2000)


def test_inference_failure_releases_credits(fresh: LocalStack) -> None:
    fresh.endpoint.fail_with = (500, "CUDA error: an illegal memory access was encountered")
    client = new_client(fresh)
    me = client.me()
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"))
    assert job["status"] == "failed"
    assert job["error"]["code"] == "inference_failed"
    described, entered = execution_for(fresh, job["id"])
    assert described["status"] == "FAILED"
    assert described["error"] == "JobFailed"
    assert "ReleaseCredits" in entered
    assert "CaptureCredits" not in entered
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "release"], me["balance"], me["balance"])


def test_on_model_without_weights_fails_clearly_and_costs_nothing(fresh: LocalStack) -> None:
    client = new_client(fresh)
    me = client.me()
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg", mode="on-model"))
    assert job["status"] == "failed"
    assert job["error"]["code"] == "engine_unavailable"
    assert job["error"]["message"].startswith("On-model images are not available")
    assert "/opt/ml" not in job["error"]["message"]
    assert ledger(me["tenant_id"])[1:] == (me["balance"], me["balance"])


@pytest.mark.parametrize(
    ("data", "code"), [(b"this is not an image", "not_an_image"), (garment_photo()[:700], "truncated_image")]
)
def test_bad_input_is_rejected_before_any_charge(fresh: LocalStack, data: bytes, code: str) -> None:
    client = new_client(fresh)
    me = client.me()
    job = client.wait(client.upload("shirt.jpg", data, "image/jpeg"))
    assert job["status"] == "rejected"
    assert job["error"]["code"] == code
    described, entered = execution_for(fresh, job["id"])
    assert described["error"] == "JobRejected"
    assert "ReserveCredits" not in entered
    assert ledger(me["tenant_id"]) == (["grant"], me["balance"], me["balance"])


def test_insufficient_credits_rejects_without_charge(
    fresh: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNUP_GRANT_CREDITS", "2")
    client = new_client(fresh)
    me = client.me()
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg", mode="on-model"))  # costs 4
    assert job["status"] == "rejected"
    assert job["error"]["code"] == "insufficient_credits"
    _, entered = execution_for(fresh, job["id"])
    assert "RunInference" not in entered
    assert ledger(me["tenant_id"]) == (["grant"], 2, 2)


def test_lost_notification_times_out_and_releases(fresh: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_TIMEOUT_SECONDS", "2")
    fresh.endpoint.drop_notifications = True
    client = new_client(fresh)
    me = client.me()
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"), timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "inference_timeout"
    _, entered = execution_for(fresh, job["id"])
    assert entered[-2:] == ["CheckRelease", "JobFailed"]
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "release"], me["balance"], me["balance"])
