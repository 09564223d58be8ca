"""Re-render and retry end to end on the local stack: the customer uploads one photo, then gets another version
of it (another background) and retries a refused job, with no upload; the server-side copy's S3 event starts each
new job through the same flow as an upload (start-workflow → validate → reserve → inference → capture). Each
succeeded job is charged once, the refused ones nothing, and a deleted job's photo is gone for good."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from functions.common import credits, db, pricing
from local.client import ApiError
from local.stack import UPLOAD_BUCKET, LocalStack
from tests.local.conftest import User, new_user
from tests.reliability import books

pytestmark = pytest.mark.e2e
SAMPLE = sorted((Path(__file__).resolve().parents[2] / "samples" / "garments").glob("*.jpg"))[0]
GHOST = pricing.cost_of("ghost")


def photo(size: int = 384) -> bytes:
    """A sample garment at ``size`` px (the studio engine is quick at this size)."""
    with Image.open(SAMPLE) as image:
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        return buffer.getvalue()


def corner(image: bytes) -> Any:
    with Image.open(io.BytesIO(image)) as opened:
        return opened.convert("RGB").getpixel((2, 2))


def balance(user: User) -> int:
    return int(user.api.request("GET", "/v1/credits")["balance"])


def captures(tenant_id: str) -> dict[str, int]:
    """job id → how many capture entries the ledger has for it."""
    with db.transaction(tenant_id) as conn:
        rows = conn.execute(
            "SELECT job_id, count(*) AS n FROM ledger WHERE tenant_id = %s AND kind = 'capture' GROUP BY job_id",
            (tenant_id,),
        ).fetchall()
    return {str(r["job_id"]): int(r["n"]) for r in rows}


def source_objects(stack: LocalStack, tenant_id: str) -> list[str]:
    listing = stack.client("s3").list_objects_v2(Bucket=UPLOAD_BUCKET, Prefix=f"uploads/{tenant_id}/")
    return sorted(entry["Key"] for entry in listing.get("Contents", ()))


def expect_error(user: User, status: int, code: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApiError) as caught:
        user.api.request(method, path, **kwargs)
    assert caught.value.status == status, caught.value.body
    error = dict(caught.value.body["error"])
    assert error["code"] == code, error
    return error


def test_rerender_and_retry_on_the_stored_photo(stack: LocalStack) -> None:
    user = new_user(stack)
    tenant_id = str(user.api.me()["tenant_id"])
    start = balance(user)

    # 1. an ordinary job: the one upload of this test
    first_id = user.api.upload("shirt.jpg", photo(), "image/jpeg", options={"preset": "square"})
    first = user.api.wait(first_id)
    assert first["status"] == "succeeded", first["error"]
    assert len(source_objects(stack, tenant_id)) == 1

    # 2. another background on the same stored photo: a second succeeded job, charged once more
    created = user.api.request(
        "POST", f"/v1/jobs/{first_id}/rerender", json={"options": {"background": "#e8d9c0"}}
    )
    second = user.api.wait(created["job_id"])
    assert second["status"] == "succeeded", second["error"]
    assert second["source_job_id"] == first_id
    assert second["options"] == {**first["options"], "background": "#e8d9c0"}
    corner_a, corner_b = (corner(user.api.download(job)) for job in (first, second))
    assert corner_a == (255, 255, 255)
    assert corner_b != corner_a  # the new background
    assert balance(user) == start - 2 * GHOST
    assert captures(tenant_id) == {first_id: 1, second["id"]: 1}
    # the photo was copied in storage, not uploaded: its copy sits under the new job's own key
    keys = source_objects(stack, tenant_id)
    assert len(keys) == 2
    assert any(f"/{second['id']}/" in key for key in keys)

    # 3. Amazon's main image stays white, here too: refused before anything is created
    expect_error(
        user,
        422,
        "preset_background",
        "POST",
        f"/v1/jobs/{second['id']}/rerender",  # its beige background with Amazon's preset
        json={"options": {"preset": "amazon"}},
    )
    # ... and a finished job is re-rendered, not retried
    expect_error(user, 409, "not_retryable", "POST", f"/v1/jobs/{first_id}/retry")

    # 4. a job refused for lack of credits, retried once the customer has credits again
    with db.transaction(tenant_id) as conn:
        credits.adjust(conn, tenant_id, -balance(user), "adjustment", f"test-drain-{uuid.uuid4()}")
    third_id = user.api.upload("dress.jpg", photo(320), "image/jpeg")
    third = user.api.wait(third_id)
    assert (third["status"], third["error"]["code"]) == ("rejected", "insufficient_credits")
    again = user.api.wait(user.api.request("POST", f"/v1/jobs/{third_id}/retry")["job_id"])
    assert (again["status"], again["error"]["code"]) == ("rejected", "insufficient_credits")  # as any new job
    with db.transaction(tenant_id) as conn:
        credits.grant(conn, tenant_id, 3, f"test-top-up-{uuid.uuid4()}", "test")
    retried = user.api.wait(user.api.request("POST", f"/v1/jobs/{third_id}/retry")["job_id"])
    assert retried["status"] == "succeeded", retried["error"]
    assert retried["source_job_id"] == third_id
    assert retried["filename"] == "dress.jpg"
    assert balance(user) == 3 - GHOST
    assert captures(tenant_id) == {first_id: 1, second["id"]: 1, retried["id"]: 1}

    # 5. a deleted job's photo is gone: the customer is asked to upload it again
    user.api.request("DELETE", f"/v1/jobs/{first_id}")
    error = expect_error(user, 409, "original_unavailable", "POST", f"/v1/jobs/{first_id}/rerender", json={})
    assert "Upload the photo again" in error["message"]
    expect_error(user, 404, "not_found", "POST", f"/v1/jobs/{uuid.uuid4()}/rerender", json={})

    assert not stack.pump_errors
    audit = books.assert_balanced([tenant_id])
    assert audit.jobs["succeeded"] == 3
