"""The state machine file, executed on moto's ASL interpreter with the real handlers as its Lambda tasks, through
success on both paths (the studio engine's Lambda function for ghost work, the GPU endpoint for the rest or when
``GHOST_ON_LAMBDA=false``), engine refusals and failures on the studio path, a throttled studio function, inference
failure, missing weights, rejected input, insufficient credits and timeout."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from modamoda_inference.errors import LowConfidence
from modamoda_inference.schemas import parse_request
from PIL import Image, ImageDraw

from functions.common import credits, db
from local import faults
from local.client import ApiClient
from local.stack import ASL_FILE, RESULTS_BUCKET, STUDIO_FUNCTION, LocalSettings, LocalStack

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
    stack.lambdas.throttles.clear()
    stack.wait_idle(timeout=30)


@pytest.fixture
def on_gpu(fresh: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """Ghost work routed to the GPU endpoint (``GHOST_ON_LAMBDA=false``), as before the studio function."""
    monkeypatch.setenv("GHOST_ON_LAMBDA", "false")
    return fresh


def endpoint_calls(stack: LocalStack) -> int:
    """Requests the local async endpoint has received (finished or not)."""
    return len(stack.endpoint.futures)


def studio_calls(stack: LocalStack, job_id: str) -> list[Any]:
    return [
        i
        for i in stack.lambdas.invocations
        if i.function == STUDIO_FUNCTION and isinstance(i.payload, dict) and i.payload.get("job_id") == job_id
    ]


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


def test_a_ghost_job_runs_on_the_studio_function_and_never_touches_the_endpoint(fresh: LocalStack) -> None:
    client = new_client(fresh)
    me = client.me()
    before = endpoint_calls(fresh)
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"))
    assert job["status"] == "succeeded", job
    described, entered = execution_for(fresh, job["id"])
    assert described["status"] == "SUCCEEDED"
    assert entered == [
        "ValidateInput",
        "ReserveCredits",
        "ChooseEngine",
        "RunStudio",
        "RecordStudioResult",
        "CheckCapture",
        "JobSucceeded",
    ]
    assert endpoint_calls(fresh) == before
    assert fresh.engine_path_of(job["id"]) == "studio engine on CPU (Lambda)"
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "capture"], me["balance"] - 1, me["balance"] - 1)
    # the same request the GPU path writes for the endpoint, and the same places for its answer
    (call,) = studio_calls(fresh, job["id"])
    request = parse_request(call.payload)
    assert request.mode == "ghost"
    assert request.image.s3_uri is not None
    assert request.image.s3_uri.startswith(
        f"s3://modamoda-local-uploads/uploads/{me['tenant_id']}/{job['id']}/"
    )
    assert request.image.version_id  # the version the upload event named
    assert request.metadata_s3_uri == f"s3://{RESULTS_BUCKET}/inference/metadata/{job['id']}.json"
    s3 = fresh.client("s3")
    output = s3.get_object(Bucket=RESULTS_BUCKET, Key=f"inference/output/{job['id']}.out")
    assert output["ContentType"] == "image/png"
    metadata = json.loads(
        s3.get_object(Bucket=RESULTS_BUCKET, Key=f"inference/metadata/{job['id']}.json")["Body"].read()
    )
    assert metadata["outcome"] == "succeeded"
    assert metadata["engine"] == "studio"
    # the job ends as an async success does: result stored, quality recorded, WebP thumbnail made
    assert job["quality"] is not None
    assert job["thumbnail_url"]
    assert "processing" in job["stages"]
    result = Image.open(io.BytesIO(client.download(job)))
    assert result.format == "PNG"
    assert result.size == (2000, 2000)


def test_the_switch_sends_ghost_work_to_the_gpu_endpoint(on_gpu: LocalStack) -> None:
    client = new_client(on_gpu)
    me = client.me()
    before = endpoint_calls(on_gpu)
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"))
    assert job["status"] == "succeeded", job
    described, entered = execution_for(on_gpu, job["id"])
    assert described["status"] == "SUCCEEDED"
    assert entered == [
        "ValidateInput",
        "ReserveCredits",
        "ChooseEngine",
        "RunInference",
        "CaptureCredits",
        "CheckCapture",
        "JobSucceeded",
    ]
    assert endpoint_calls(on_gpu) == before + 1
    assert not studio_calls(on_gpu, job["id"])
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "capture"], me["balance"] - 1, me["balance"] - 1)
    result = Image.open(io.BytesIO(client.download(job)))
    assert result.size == (2000, 2000)


def test_a_learned_segmenter_job_goes_to_the_gpu_endpoint(fresh: LocalStack) -> None:
    """Only the endpoint can have the learned segmenter's weights; this one has none, and says so."""
    client = new_client(fresh)
    me = client.me()
    before = endpoint_calls(fresh)
    job_id = client.upload("shirt.jpg", garment_photo(), "image/jpeg", options={"segmenter": "learned"})
    job = client.wait(job_id)
    _, entered = execution_for(fresh, job["id"])
    assert "RunInference" in entered
    assert "RunStudio" not in entered
    assert endpoint_calls(fresh) == before + 1
    assert job["status"] == "failed"
    assert job["error"]["code"] == "engine_unavailable"
    assert ledger(me["tenant_id"])[1:] == (me["balance"], me["balance"])


def test_an_engine_refusal_on_the_studio_path_is_rejected_and_costs_nothing(fresh: LocalStack) -> None:
    details = {"score": 0.31, "threshold": 0.6, "checks": {"edge": 0.2}}
    refusal = LowConfidence("The garment could not be cut out cleanly; reshoot it.", details=details)
    client = new_client(fresh)
    me = client.me()
    with faults.engine_answers(fresh, refuse=refusal):
        job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"))
    assert job["status"] == "rejected", job
    assert job["error"]["code"] == "low_confidence"
    assert job["error"]["message"] == "The garment could not be cut out cleanly; reshoot it."
    assert job["quality"]["score"] == pytest.approx(0.31)
    described, entered = execution_for(fresh, job["id"])
    assert described["error"] == "JobRejected"
    assert entered[-5:] == ["ChooseEngine", "RunStudio", "ReleaseCredits", "CheckRelease", "JobRejected"]
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "release"], me["balance"], me["balance"])
    # the metadata document and the failure body are where the async endpoint would leave them
    s3 = fresh.client("s3")
    document = json.loads(
        s3.get_object(Bucket=RESULTS_BUCKET, Key=f"inference/metadata/{job['id']}.json")["Body"].read()
    )
    assert document["outcome"] == "refused"
    body = json.loads(
        s3.get_object(Bucket=RESULTS_BUCKET, Key=f"inference/failure/{job['id']}-error.out")["Body"].read()
    )
    assert body["error"]["code"] == "low_confidence"


def test_an_engine_failure_on_the_studio_path_fails_and_releases(fresh: LocalStack) -> None:
    client = new_client(fresh)
    me = client.me()
    with faults.engine_answers(fresh, refuse=RuntimeError("numpy exploded at /var/task/x.py")):
        job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"))
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "inference_failed"
    assert "/var/task" not in job["error"]["message"]
    assert "RuntimeError" not in job["error"]["message"]
    described, entered = execution_for(fresh, job["id"])
    assert described["error"] == "JobFailed"
    assert entered[-4:] == ["RunStudio", "ReleaseCredits", "CheckRelease", "JobFailed"]
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "release"], me["balance"], me["balance"])


def test_a_throttled_studio_function_is_retried(fresh: LocalStack) -> None:
    fresh.lambdas.throttles[STUDIO_FUNCTION] = 2
    client = new_client(fresh)
    me = client.me()
    with faults.fast_retries(0.05):
        job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg"))
    assert job["status"] == "succeeded", job
    assert fresh.lambdas.throttles[STUDIO_FUNCTION] == 0
    _, entered = execution_for(fresh, job["id"])
    assert entered[-4:] == ["RunStudio", "RecordStudioResult", "CheckCapture", "JobSucceeded"]
    assert len(studio_calls(fresh, job["id"])) == 1  # the throttled attempts never reached the handler
    assert ledger(me["tenant_id"]) == (["grant", "reserve", "capture"], me["balance"] - 1, me["balance"] - 1)


def test_inference_failure_releases_credits(on_gpu: LocalStack) -> None:
    fresh = on_gpu
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
    before = endpoint_calls(fresh)
    job = client.wait(client.upload("shirt.jpg", garment_photo(), "image/jpeg", mode="on-model"))
    _, entered = execution_for(fresh, job["id"])
    assert entered[:4] == ["ValidateInput", "ReserveCredits", "ChooseEngine", "RunInference"]
    assert endpoint_calls(fresh) == before + 1  # on-model work goes to the GPU endpoint
    assert fresh.engine_path_of(job["id"]) == "GPU endpoint"
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


def test_lost_notification_times_out_and_releases(
    on_gpu: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = on_gpu
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
