"""The inference engine's refusals and its quality score through the whole local stack (API → S3 → state machine →
the real inference container behind the async adapter → SNS → notifier → API and batch report).

A photo the engine refuses (``no_garment_found``, ``low_confidence``, ``person_in_photo``) ends ``rejected`` with
that code and the engine's own sentence (never SageMaker's failure reason, JSON or an exception), its credits are
released, the execution ends ``JobRejected`` through the same states as a photo validation refuses, and replayed
notifications change nothing. A blank, evenly lit photo is refused by the real studio engine; the other refusals
and the quality reports come from ``faults.engine_answers`` inside the real container, so the container's answer
and its metadata document travel the whole way.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
from modamoda_inference.errors import LowConfidence, NoGarmentFound, PersonInPhoto
from PIL import Image

from functions.common import refusals
from functions.common.errors import INPUT_ERROR_CODES, REFUSAL_CODES
from local import faults
from local.stack import RESULTS_BUCKET, LocalStack
from tests.photo_scenes import tee_on_rug
from tests.reliability import books
from tests.reliability.conftest import Tenant, garment_jpeg, new_tenant
from tests.reliability.tally import TALLY
from tests.reliability.test_bad_input import FORMULA, clear_sentence, drop, poll, settle, wait_batch_jobs
from tests.reliability.test_faults import finished_execution, job_ledger, notifier_calls, wait_for

pytestmark = pytest.mark.e2e

SECTION = "bad input"  # an engine refusal is input the engine cannot use
PHOTO = garment_jpeg()
QUALITY = {"score": 0.93, "threshold": 0.6, "checks": {"edge_contrast": 0.97, "coverage": 0.9}}
REFUSALS = {
    "no_garment_found": NoGarmentFound(
        "No garment stands out from the backdrop in this photo. Reshoot it with the whole garment in the frame, "
        "on a plain backdrop that contrasts with it."
    ),
    "low_confidence": LowConfidence(
        'The garment could not be cut out cleanly: its edges blend into the "grey" backdrop. Reshoot it on a '
        "plain backdrop that contrasts with the garment, evenly lit, with nothing in front of it.",
        details={"score": 0.31, "threshold": 0.6, "checks": {"edge_contrast": 0.12, "coverage": 0.74}},
    ),
    "person_in_photo": PersonInPhoto(
        "Someone is wearing the garment. For a ghost packshot, photograph it on a mannequin, on a hanger or "
        "laid flat."
    ),
}


@pytest.fixture
def refusing(stack: LocalStack) -> Iterator[LocalStack]:
    yield stack
    stack.endpoint.fail_with = None
    stack.endpoint.drop_notifications = False
    stack.wait_idle(timeout=90)


def blank_jpeg(size: tuple[int, int] = (800, 1000), level: int = 205) -> bytes:
    """An evenly lit, empty backdrop (a little sensor noise): nothing to cut out."""
    rng = np.random.default_rng(7)
    pixels = np.clip(level + rng.normal(0, 1.5, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def balance(tenant: Tenant) -> int:
    return int(tenant.api.me()["balance"])


def metadata_document(stack: LocalStack, job_id: str) -> dict[str, Any]:
    body = stack.client("s3").get_object(Bucket=RESULTS_BUCKET, Key=f"inference/metadata/{job_id}.json")[
        "Body"
    ]
    return dict(json.loads(body.read()))


def reported(document: dict[str, Any]) -> dict[str, float] | None:
    """The ``{score, threshold}`` the job should show for the engine's metadata document (None: no report)."""
    quality = document.get("quality")
    return {k: round(float(quality[k]), 4) for k in ("score", "threshold")} if quality else None


def assert_refused(stack: LocalStack, job: dict[str, Any], code: str, message: str | None = None) -> None:
    """Rejected with ``code`` and a plain sentence (``message`` exactly, when given), nothing charged, the
    execution ended JobRejected through the release path."""
    assert (job["status"], job["error"]["code"]) == ("rejected", code), job
    shown = job["error"]["message"]
    if message is not None:
        assert shown == message
    assert clear_sentence(shown), shown
    for leak in (
        "SageMaker",
        "ClientError",
        "Received client error",
        "{",
        "422",
        "Traceback",
        "InputRejected",
    ):
        assert leak not in shown, (leak, shown)
    assert job["progress"]["label"] == "Rejected; no credits were charged"
    assert job_ledger(job["id"]) == ["reserve", "release"]
    described, entered = finished_execution(stack, job["id"])
    assert (described["status"], described["error"]) == ("FAILED", "JobRejected")
    assert "CaptureCredits" not in entered
    assert entered[-3:] == ["ReleaseCredits", "CheckRelease", "JobRejected"]


# ---- 1. the real studio engine --------------------------------------------------------------------------------


def test_a_blank_photo_is_refused_by_the_real_studio_engine(refusing: LocalStack) -> None:
    tenant = new_tenant(refusing, "blank")
    start = balance(tenant)
    job = tenant.api.wait(tenant.api.upload("wall.jpg", blank_jpeg(), "image/jpeg"), timeout=90)
    assert_refused(refusing, job, "no_garment_found")
    assert job["quality"] is None
    assert job["result_url"] is None
    document = metadata_document(refusing, job["id"])
    assert (document["outcome"], document["error"]["code"]) == ("refused", "no_garment_found")
    assert job["error"]["message"] == document["error"]["message"]  # the engine's own sentence
    assert balance(tenant) == start
    settle(refusing)
    audited = books.assert_balanced([tenant.tenant_id])
    assert audited.jobs == Counter({"rejected": 1})
    TALLY.add(SECTION, "blank photos refused by the studio engine", 1)


def test_a_garment_on_a_rug_is_cut_out_by_the_textured_path_and_charged_once(refusing: LocalStack) -> None:
    tenant = new_tenant(refusing, "rug")
    start = balance(tenant)
    pixels, _ = tee_on_rug(seed=2, h=600, w=520)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    job = tenant.api.wait(tenant.api.upload("tee-on-rug.jpg", buffer.getvalue(), "image/jpeg"), timeout=90)
    assert job["status"] == "succeeded", job
    assert job_ledger(job["id"]) == ["reserve", "capture"]
    assert balance(tenant) == start - int(job["cost"])
    document = metadata_document(refusing, job["id"])
    assert document["quality"]["path"] == "textured"
    assert "backdrop" not in document["quality"]["checks"]
    assert job["quality"] == reported(document)
    assert job["quality"]["score"] >= job["quality"]["threshold"]
    result = np.asarray(Image.open(io.BytesIO(tenant.api.download(job))).convert("RGB")).astype(int)
    # the packshot shows the off-white tee on the preset's white, none of the rug's brown
    assert float((np.abs(result - result.mean(axis=2, keepdims=True)).max(axis=2) > 40).mean()) < 0.005
    settle(refusing)
    books.assert_balanced([tenant.tenant_id])
    TALLY.add(SECTION, "photos on a rug cut out by the textured path", 1)


# ---- 2. each refusal code, replayed ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_each_refusal_ends_rejected_once_whatever_the_replays(refusing: LocalStack, code: str) -> None:
    error = REFUSALS[code]
    tenant = new_tenant(refusing, code.replace("_", "-"))
    start = balance(tenant)
    with faults.engine_answers(refusing, refuse=error), faults.dropped_notifications(refusing.endpoint):
        job_id = tenant.api.upload("shirt.jpg", PHOTO, "image/jpeg")
        topic, message = faults.wait_dropped(refusing.endpoint, job_id)
    assert topic == refusing.error_topic_arn
    reason = json.loads(message)["failureReason"]
    assert reason.startswith("ClientError: Received client error (422) from model with message")
    assert tenant.api.job(job_id)["status"] == "processing"  # waits for the notification, credits held

    for _ in range(3):  # SNS delivers at least once: the first settles, the others change nothing
        faults.publish_notification(refusing, message, success=False)
    wait_for(
        lambda: (
            len(notifier_calls(refusing, message)) >= 3
            and all(i.error_type is None for i in notifier_calls(refusing, message))
        ),
        "the notifications were not all handled",
    )
    job = tenant.api.wait(job_id, timeout=90)
    assert_refused(refusing, job, code, error.message)
    if code == "low_confidence":
        assert job["quality"] == {"score": 0.31, "threshold": 0.6}
    else:
        assert job["quality"] is None
    assert balance(tenant) == start

    # late again, after the execution ended: still nothing moves
    faults.publish_notification(refusing, message, success=False)
    wait_for(lambda: len(notifier_calls(refusing, message)) >= 4, "the late replay was not delivered")
    settle(refusing)
    signed = ("result_url", "thumbnail_url", "original_url")  # pre-signed links are made afresh on every read
    assert {k: v for k, v in tenant.api.job(job_id).items() if k not in signed} == {
        k: v for k, v in job.items() if k not in signed
    }
    assert job_ledger(job_id) == ["reserve", "release"]
    audited = books.assert_balanced([tenant.tenant_id])
    assert audited.jobs == Counter({"rejected": 1})
    assert (audited.captured, audited.released) == (0, 1)
    assert code in REFUSAL_CODES <= set(INPUT_ERROR_CODES)
    TALLY.add(SECTION, "engine refusals (each code)", 1)
    TALLY.add(SECTION, "replayed engine-refusal notifications", 3)
    TALLY.zero(SECTION, "charged for a rejected file")


# ---- 3. only SageMaker's failure reason (no metadata document) -------------------------------------------------


def test_a_refusal_read_from_the_failure_reason_alone(refusing: LocalStack) -> None:
    """The adapter answers for the model (the container never runs, so no metadata document): the code and the
    message come from SageMaker's failure reason; a message cut short by it gives the code's own sentence."""
    tenant = new_tenant(refusing, "reason")
    start = balance(tenant)
    short = REFUSALS["person_in_photo"].message
    with faults.inference_errors(refusing.endpoint, 422, short, code="person_in_photo"):
        job = tenant.api.wait(tenant.api.upload("a.jpg", PHOTO, "image/jpeg"), timeout=90)
    assert_refused(refusing, job, "person_in_photo", short)

    long = "The garment could not be cut out cleanly enough to sell with. " + "Reshoot it. " * 60
    with faults.inference_errors(refusing.endpoint, 422, long, code="low_confidence"):
        job = tenant.api.wait(tenant.api.upload("b.jpg", PHOTO, "image/jpeg"), timeout=90)
    assert_refused(refusing, job, "low_confidence", refusals.REFUSAL_MESSAGES["low_confidence"])

    with faults.inference_errors(refusing.endpoint, 400, "bad option", code="invalid_request"):
        job = tenant.api.wait(tenant.api.upload("c.jpg", PHOTO, "image/jpeg"), timeout=90)
    assert (job["status"], job["error"]["code"]) == ("failed", "inference_rejected")
    assert job["error"]["message"] == refusals.REJECTED_MESSAGE
    assert balance(tenant) == start
    settle(refusing)
    audited = books.assert_balanced([tenant.tenant_id])
    assert audited.jobs == Counter({"rejected": 2, "failed": 1})
    TALLY.add(SECTION, "engine refusals read from the failure reason", 2)


# ---- 4. the quality score: API and batch report ---------------------------------------------------------------


def test_the_quality_score_reaches_the_api_and_the_batch_report(refusing: LocalStack) -> None:
    tenant = new_tenant(refusing, "quality")
    start = balance(tenant)
    with faults.engine_answers(refusing, metadata={"quality": QUALITY}):
        job = tenant.api.wait(tenant.api.upload("shirt.jpg", PHOTO, "image/jpeg"), timeout=90)
    assert job["status"] == "succeeded", job
    assert job["quality"] == {"score": 0.93, "threshold": 0.6}
    assert metadata_document(refusing, job["id"])["quality"] == QUALITY
    assert tenant.api.download(job)[:4] == b"\x89PNG"

    # the real engine's own report, whatever it says, is the one the API shows
    plain = tenant.api.wait(tenant.api.upload("plain.jpg", PHOTO, "image/jpeg"), timeout=90)
    assert plain["status"] == "succeeded", plain
    assert plain["quality"] == reported(metadata_document(refusing, plain["id"]))

    # a batch: one result with a faked score, one refused as low confidence, one with the engine's own report
    batch = tenant.api.request("POST", "/v1/batches", json={"name": "quality"})
    names = ["good.jpg", "blurry.jpg", "=plain.jpg"]
    manifest = {"files": [{"file": n, "sku": f"SKU-{i}"} for i, n in enumerate(names)]}
    drop(refusing, batch["drop_prefix"], "manifest.json", json.dumps(manifest).encode())

    def named(fragment: str) -> Any:
        return lambda request: fragment in (request.image.s3_uri or "")

    with (
        faults.engine_answers(refusing, metadata={"quality": QUALITY}, when=named("good.jpg")),
        faults.engine_answers(refusing, refuse=REFUSALS["low_confidence"], when=named("blurry.jpg")),
    ):
        for name in names:
            drop(refusing, batch["drop_prefix"], name, PHOTO)
        jobs = wait_batch_jobs(tenant, batch["id"], set(names))
    assert {n: jobs[n]["status"] for n in names} == {
        "good.jpg": "succeeded",
        "blurry.jpg": "rejected",
        "=plain.jpg": "succeeded",
    }
    assert jobs["blurry.jpg"]["error"] == {
        "code": "low_confidence",
        "message": REFUSALS["low_confidence"].message,
    }
    finished = poll(
        lambda: (b := tenant.api.request("GET", f"/v1/batches/{batch['id']}"))["report"] and b,
        60,
        "the quality batch's report",
    )
    assert finished["credits_spent"] == 2
    report = requests.get(finished["report"]["json_url"], timeout=30).json()
    by_file = {f["file"]: f for f in report["files"]}
    assert (by_file["good.jpg"]["quality_score"], by_file["good.jpg"]["quality_threshold"]) == (0.93, 0.6)
    assert (by_file["blurry.jpg"]["quality_score"], by_file["blurry.jpg"]["quality_threshold"]) == (0.31, 0.6)
    assert by_file["blurry.jpg"]["error_code"] == "low_confidence"
    assert by_file["blurry.jpg"]["cost"] == 0
    plain_quality = reported(metadata_document(refusing, jobs["=plain.jpg"]["id"])) or {}
    assert jobs["=plain.jpg"]["quality"] == (plain_quality or None)
    assert by_file["=plain.jpg"]["quality_score"] == plain_quality.get("score")
    assert by_file["=plain.jpg"]["quality_threshold"] == plain_quality.get("threshold")
    text = requests.get(finished["report"]["csv_url"], timeout=30).content.decode("utf-8")
    table = list(csv.reader(io.StringIO(text, newline="")))
    header, rows = table[0], table[1:]
    assert {"quality_score", "quality_threshold"} <= set(header)
    csv_rows = {row[header.index("file")]: dict(zip(header, row, strict=True)) for row in rows}
    assert (csv_rows["good.jpg"]["quality_score"], csv_rows["good.jpg"]["quality_threshold"]) == (
        "0.93",
        "0.6",
    )
    assert csv_rows["blurry.jpg"]["quality_score"] == "0.31"
    assert csv_rows["'=plain.jpg"]["quality_score"] == str(plain_quality.get("score", ""))
    assert [cell for row in rows for cell in row if cell[:1] in FORMULA] == []

    settle(refusing)
    assert balance(tenant) == start - 4
    audited = books.assert_balanced([tenant.tenant_id])
    assert audited.jobs == Counter({"succeeded": 4, "rejected": 1})
    TALLY.add(SECTION, "engine quality scores reported", 3)
