"""Previews made once by the pipeline: the result's thumbnail (WebP, 320 px, alpha kept) when the result is recorded,
the photo's preview (WebP, 1024 px, upright, sRGB, no metadata) when it is validated. Both are best effort: a
preview that cannot be made never fails, delays or un-charges a job."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image, UnidentifiedImageError

from functions.common import credits, db, images, jobs, pipeline, previews
from functions.common.errors import InputRejected
from functions.common.models import WorkflowInput
from functions.notifier import handler as notifier
from tests.conftest import FakeLambdaContext, create_job, load_event
from tests.image_support import make_icc_profile

UPLOADS = "modamoda-test-uploads"
RESULTS = "modamoda-test-results"
SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "garments" / "hoodie_burgundy.jpg"


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def packshot(size: int = 2000, transparent: bool = False) -> Image.Image:
    """A result-like picture: the sample garment centred on white (or on nothing)."""
    with Image.open(SAMPLE) as photo:
        garment = photo.convert("RGB")
    garment.thumbnail((size * 3 // 4, size * 3 // 4))
    canvas = Image.new(
        "RGBA" if transparent else "RGB", (size, size), (0, 0, 0, 0) if transparent else "white"
    )
    canvas.paste(garment, ((size - garment.width) // 2, (size - garment.height) // 2))
    return canvas


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# ---- thumbnails ---------------------------------------------------------------------------------------------------


def test_thumbnail_is_a_small_webp_with_a_320_px_long_side() -> None:
    result = encode(packshot(), "PNG")
    thumb = previews.thumbnail_webp(result)
    image = opened(thumb)
    assert image.format == "WEBP"
    assert image.size == (320, 320)
    assert image.mode == "RGB"  # an opaque result needs no alpha
    assert 500 < len(thumb) < 40_000, len(thumb)
    assert len(thumb) < len(result) / 20


def test_thumbnail_keeps_alpha_of_a_transparent_result() -> None:
    image = opened(previews.thumbnail_webp(encode(packshot(1200, transparent=True), "PNG")))
    assert image.mode == "RGBA"
    assert image.getpixel((2, 2))[3] == 0  # the background stays see-through
    assert image.getpixel((160, 160))[3] == 255  # the garment stays solid


def test_thumbnail_of_a_wide_jpeg_result_keeps_its_shape() -> None:
    wide = packshot().resize((2000, 1000))
    image = opened(previews.thumbnail_webp(encode(wide, "JPEG", quality=90)))
    assert image.size == (320, 160)


def test_a_small_result_is_not_enlarged() -> None:
    assert opened(previews.thumbnail_webp(encode(Image.new("RGB", (200, 100), "red"), "PNG"))).size == (
        200,
        100,
    )


def test_thumbnail_of_something_that_is_not_an_image_raises() -> None:
    with pytest.raises(UnidentifiedImageError):  # store_thumbnail logs it
        previews.thumbnail_webp(b"\x89PNG not really")


# ---- the photo's preview --------------------------------------------------------------------------------------


def two_colour_photo(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), (220, 20, 20))
    image.paste((20, 20, 220), (width // 2, 0, width, height))
    return image


def preview_of(data: bytes, max_pixels: int = 50_000_000) -> Image.Image:
    """The preview made as the validator makes it: from the image ``images.inspect`` decoded."""
    capture = previews.OriginalCapture("job")
    images.inspect(data, max_pixels, on_decoded=capture, draft_side=previews.ORIGINAL_SIDE)
    assert capture.webp is not None
    return opened(capture.webp)


def test_preview_has_a_1024_px_long_side_even_from_a_draft_decoded_jpeg() -> None:
    image = preview_of(encode(two_colour_photo(4000, 3000), "JPEG", quality=90))
    assert image.format == "WEBP"
    assert image.size == (1024, 768)


def test_preview_applies_the_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned 90° clockwise
    image = preview_of(encode(two_colour_photo(1600, 800), "JPEG", quality=90, exif=exif.tobytes()))
    assert image.size == (512, 1024)
    top, bottom = image.getpixel((256, 40)), image.getpixel((256, 1000))
    assert top[0] > 150  # the red (left) half is now on top
    assert top[2] < 80
    assert bottom[2] > 150
    assert bottom[0] < 80


def test_preview_orientation_of_a_tiff() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    image = preview_of(encode(two_colour_photo(800, 400), "TIFF", exif=exif.tobytes()))
    assert image.size == (400, 800)
    assert image.getpixel((200, 780))[0] > 150  # orientation 8: the left (red) half ends at the bottom


def test_preview_is_srgb_without_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    linear = make_icc_profile(1.0, "Linear RGB (test)")
    data = encode(
        Image.new("RGB", (600, 400), (128, 128, 128)), "PNG", icc_profile=linear, exif=exif.tobytes()
    )
    image = preview_of(data)
    assert not {"icc_profile", "exif", "xmp"} & set(image.info)
    assert 175 <= image.getpixel((300, 200))[0] <= 200  # linear 0.5 is about 188 in sRGB


def test_preview_of_a_16_bit_greyscale_png() -> None:
    grey = Image.new("I;16", (300, 200), 32_896)  # half of 65535
    image = preview_of(encode(grey, "PNG"))
    assert image.mode == "RGB"
    assert 120 <= image.getpixel((10, 10))[0] <= 136


def test_preview_keeps_the_alpha_of_a_cut_out_photo() -> None:
    image = preview_of(encode(packshot(800, transparent=True), "PNG"))
    assert image.mode == "RGBA"
    assert image.getpixel((1, 1))[3] == 0


def test_preview_failure_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(image: Image.Image) -> bytes:
        raise OSError("encoder broke")

    monkeypatch.setattr(previews, "original_webp", broken)
    capture = previews.OriginalCapture("job")
    info = images.inspect(encode(two_colour_photo(300, 200), "PNG"), 50_000_000, on_decoded=capture)
    assert (info.width, capture.webp) == (300, None)


def test_a_refused_photo_gets_no_preview() -> None:
    capture = previews.OriginalCapture("job")
    with pytest.raises(InputRejected, match="at least 64x64"):
        images.inspect(encode(Image.new("RGB", (20, 20)), "PNG"), 50_000_000, on_decoded=capture)
    assert capture.webp is None


def test_keys_are_per_tenant_and_job() -> None:
    assert previews.thumb_key("t", "j") == "previews/t/j/thumb.webp"
    assert previews.original_key("t", "j") == "previews/t/j/original.webp"


# ---- in the pipeline ------------------------------------------------------------------------------------------


@pytest.fixture
def buckets(mocked_aws: None, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("UPLOAD_BUCKET", UPLOADS)
    monkeypatch.setenv("RESULTS_BUCKET", RESULTS)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=UPLOADS)
    s3.create_bucket(Bucket=RESULTS)
    return s3


def validate(s3: Any, data: bytes) -> tuple[str, str]:
    tenant_id, job_id = create_job()
    key = f"uploads/{tenant_id}/{job_id}/shirt.jpg"
    s3.put_object(Bucket=UPLOADS, Key=key, Body=data)
    event = WorkflowInput(
        job_id=job_id, tenant_id=tenant_id, bucket=UPLOADS, key=key, inference_timeout_seconds=600
    )
    for _ in range(2):  # a retried task writes the same preview to the same key
        pipeline.validate_input(s3, event)
    return tenant_id, job_id


def row(tenant_id: str, job_id: str) -> dict[str, Any]:
    with db.transaction(tenant_id) as conn:
        return jobs.load(conn, job_id)


def test_validation_stores_the_photo_preview_once(buckets: Any) -> None:
    tenant_id, job_id = validate(buckets, encode(two_colour_photo(2400, 1600), "JPEG", quality=90))
    key = f"previews/{tenant_id}/{job_id}/original.webp"
    assert row(tenant_id, job_id)["preview_key"] == key
    stored = buckets.get_object(Bucket=RESULTS, Key=key)
    assert stored["ContentType"] == "image/webp"
    assert opened(stored["Body"].read()).size == (1024, 683)
    listed = buckets.list_objects_v2(Bucket=RESULTS, Prefix="previews/")["Contents"]
    assert [o["Key"] for o in listed] == [key]


def test_validation_goes_on_when_the_preview_cannot_be_stored(
    buckets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESULTS_BUCKET", "no-such-bucket")
    tenant_id, job_id = validate(buckets, encode(two_colour_photo(300, 200), "PNG"))
    job = row(tenant_id, job_id)
    assert (job["status"], job["preview_key"]) == ("validated", None)


def processing_job(s3: Any, result: bytes) -> tuple[str, str]:
    tenant_id, job_id = create_job()
    with db.transaction(tenant_id) as conn:
        jobs.transition(conn, job_id, "validated", cost=1)
        credits.reserve(conn, tenant_id, job_id, 1, 600)
        jobs.transition(conn, job_id, "processing", task_token="token-that-no-execution-waits-for")
    s3.put_object(Bucket=RESULTS, Key=f"inference/output/{job_id}.out", Body=result, ContentType="image/png")
    return tenant_id, job_id


def test_the_notifier_makes_the_thumbnail_once(buckets: Any) -> None:
    tenant_id, job_id = processing_job(buckets, encode(packshot(), "PNG"))
    event = load_event("sns_async_inference_success.json", JOB=job_id)
    for _ in range(2):  # SNS delivers at least once
        notifier.lambda_handler(event, FakeLambdaContext())
    job = row(tenant_id, job_id)
    key = f"previews/{tenant_id}/{job_id}/thumb.webp"
    assert (job["status"], job["thumb_key"]) == ("succeeded", key)
    thumb = buckets.get_object(Bucket=RESULTS, Key=key)
    assert thumb["ContentType"] == "image/webp"
    assert opened(thumb["Body"].read()).size == (320, 320)


def test_a_thumbnail_failure_does_not_fail_or_uncharge_the_job(buckets: Any) -> None:
    tenant_id, job_id = processing_job(buckets, b"\x89PNG but not an image")
    outcome = notifier.lambda_handler(
        load_event("sns_async_inference_success.json", JOB=job_id), FakeLambdaContext()
    )
    assert outcome == {"outcomes": ["succeeded"]}
    job = row(tenant_id, job_id)
    assert (job["status"], job["thumb_key"], job["result_key"]) == (
        "succeeded",
        None,
        f"results/{tenant_id}/{job_id}.png",
    )
    with db.transaction(tenant_id) as conn:
        assert credits.balance(conn, tenant_id) == 4  # charged once, as any success
