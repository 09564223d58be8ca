"""The studio engine's Lambda function in the whole local stack (``GHOST_ON_LAMBDA`` on, as deployed): ghost jobs
never reach the async endpoint; the real engine's refusal and every injected one end the job rejected once with
the engine's sentence and no charge; an engine crash fails it and releases; a throttled function and a database
outage while the result is recorded are retried and charge once; a burst of jobs from two customers settles with
the books balanced."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from modamoda_inference.errors import LowConfidence, NoGarmentFound, PersonInPhoto
from PIL import Image

from local import faults
from local.stack import STUDIO_FUNCTION, LocalStack
from tests.reliability.conftest import garment_jpeg, new_tenant
from tests.reliability.tally import TALLY
from tests.reliability.test_faults import (
    calls,
    concurrently,
    create_upload,
    finished_execution,
    job_ledger,
    post_photo,
    settled,
    wait_final,
)
from tests.reliability.test_refusals import blank_jpeg

pytestmark = pytest.mark.e2e

PHOTO = garment_jpeg()
REFUSALS = [
    NoGarmentFound("No garment stands out from the backdrop in this photo. Reshoot it on a plain backdrop."),
    LowConfidence(
        "The garment could not be cut out cleanly. Reshoot it on a plain, evenly lit backdrop.",
        details={"score": 0.31, "threshold": 0.6, "checks": {"edge_contrast": 0.12}},
    ),
    PersonInPhoto("Someone is wearing the garment. For a ghost packshot, photograph it on a mannequin."),
]


@pytest.fixture
def studio_path(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    monkeypatch.setenv("GHOST_ON_LAMBDA", "true")  # this module's stack starts with it off (conftest)
    before = len(stack.endpoint.futures)
    yield stack
    stack.lambdas.throttles.clear()
    stack.wait_idle(timeout=90)
    assert len(stack.endpoint.futures) == before, "a ghost job reached the async endpoint"


def test_ghost_jobs_from_two_customers_run_on_the_studio_function_and_settle(studio_path: LocalStack) -> None:
    tenants = [new_tenant(studio_path, "studio") for _ in range(2)]
    ids = concurrently(lambda t: t.api.upload("shirt.jpg", PHOTO, "image/jpeg"), tenants * 3)
    jobs = [wait_final(tenant, job_id) for tenant, job_id in zip(tenants * 3, ids, strict=True)]
    assert [j["status"] for j in jobs] == ["succeeded"] * 6, [j.get("error") for j in jobs]
    for job in jobs:
        assert job_ledger(job["id"]) == ["reserve", "capture"]
        assert len(calls(studio_path, STUDIO_FUNCTION, job["id"])) == 1
        assert studio_path.engine_path_of(job["id"]) == "studio engine on CPU (Lambda)"
        _, entered = finished_execution(studio_path, job["id"])
        assert entered[-4:] == ["RunStudio", "RecordStudioResult", "CheckCapture", "JobSucceeded"]
    tenant = tenants[0]
    image = Image.open(io.BytesIO(tenant.api.download(jobs[0])))
    assert image.size == (2000, 2000)
    TALLY.add("faults", "ghost jobs through the studio function", len(jobs))
    settled(studio_path, tenants)


def test_the_real_engines_refusal_is_rejected_without_charge(studio_path: LocalStack) -> None:
    tenant = new_tenant(studio_path, "blank")
    job = tenant.api.wait(tenant.api.upload("wall.jpg", blank_jpeg(), "image/jpeg"), timeout=90)
    assert job["status"] == "rejected", job
    assert job["error"]["code"] == "no_garment_found"
    assert job["progress"]["label"] == "Rejected; no credits were charged"
    assert job_ledger(job["id"]) == ["reserve", "release"]
    described, entered = finished_execution(studio_path, job["id"])
    assert (described["status"], described["error"]) == ("FAILED", "JobRejected")
    assert entered[-4:] == ["RunStudio", "ReleaseCredits", "CheckRelease", "JobRejected"]
    settled(studio_path, [tenant])


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda e: e.code)
def test_each_refusal_ends_rejected_once_with_the_engines_sentence(
    studio_path: LocalStack, refusal: Exception
) -> None:
    tenant = new_tenant(studio_path, "refused")
    with faults.engine_answers(studio_path, refuse=refusal):
        job = tenant.api.wait(tenant.api.upload("shirt.jpg", PHOTO, "image/jpeg"), timeout=90)
    assert job["status"] == "rejected", job
    assert job["error"]["code"] == refusal.code  # type: ignore[attr-defined]
    assert job["error"]["message"] == refusal.message  # type: ignore[attr-defined]
    for leak in ("Lambda", "InputRejected", "{", "422", "Traceback"):
        assert leak not in job["error"]["message"]
    if isinstance(refusal, LowConfidence):
        assert job["quality"] == {"score": 0.31, "threshold": 0.6}
    assert job_ledger(job["id"]) == ["reserve", "release"]
    TALLY.add("bad input", "engine refusals on the studio function")
    settled(studio_path, [tenant])


def test_an_engine_crash_fails_the_job_and_releases(studio_path: LocalStack) -> None:
    tenant = new_tenant(studio_path, "crash")
    with faults.engine_answers(studio_path, refuse=MemoryError("out of memory at /var/task/numpy")):
        job = tenant.api.wait(tenant.api.upload("shirt.jpg", PHOTO, "image/jpeg"), timeout=90)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "inference_failed"
    assert "/var/task" not in job["error"]["message"]
    assert job_ledger(job["id"]) == ["reserve", "release"]
    settled(studio_path, [tenant])


def test_a_throttled_function_and_a_database_outage_while_recording_are_retried(
    studio_path: LocalStack,
) -> None:
    tenant = new_tenant(studio_path, "retry")
    job_id, post = create_upload(tenant)
    studio_path.lambdas.throttles[STUDIO_FUNCTION] = 3
    outage = faults.DatabaseOutage()
    with (
        faults.fast_retries(0.1),
        faults.outage_on_call(
            studio_path.lambdas,
            "modamoda-capture-credits",
            outage,
            1.5,
            when=lambda e: e.get("job_id") == job_id and "result" in e,
        ),
    ):
        post_photo(post)
        job = wait_final(tenant, job_id)
    TALLY.add("faults", "studio function throttles injected", 3)
    TALLY.add("faults", "database outages injected")
    assert job["status"] == "succeeded", job
    assert studio_path.lambdas.throttles[STUDIO_FUNCTION] == 0
    assert len(calls(studio_path, STUDIO_FUNCTION, job_id)) == 1  # throttled attempts never ran the engine
    recorded = [i for i in calls(studio_path, "modamoda-capture-credits", job_id) if "result" in i.payload]
    assert len(recorded) >= 2
    assert recorded[0].error_type == "TransientError"
    assert recorded[-1].error_type is None
    assert job_ledger(job_id) == ["reserve", "capture"]
    _, entered = finished_execution(studio_path, job_id)
    assert "ReleaseCredits" not in entered
    settled(studio_path, [tenant])
