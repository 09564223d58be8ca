"""``modamoda upload``: a batch from a folder, the manifest first, parallel uploads, retries, files skipped with a
reason, and resuming after an interruption or a failure (only the missing files are sent)."""

from __future__ import annotations

import _thread
import json
import threading
import time
from pathlib import Path

import pytest

from modamoda_cli.upload import STATE_NAME, sniff
from tests.modamoda_cli.conftest import Cli, jpeg, make_photos
from tests.modamoda_cli.fake_api import FakeModamoda

UPLOADS = r"/v1/batches/[^/]+/uploads"


def state(folder: Path) -> dict:
    return json.loads((folder / STATE_NAME).read_text())


def test_upload_a_folder_creates_seals_and_records_the_batch(
    logged_in: FakeModamoda, cli: Cli, photos: Path
) -> None:
    (photos / "notes.txt").write_text("not a photo")
    (photos / "fake.jpg").write_text("a text file named like a photo")
    (photos / "empty.png").write_bytes(b"")
    (photos / ".DS_Store").write_bytes(b"\0\0")
    (photos / "sub").mkdir()
    result = cli(
        "--json",
        "upload",
        str(photos),
        "--name",
        "Spring",
        "--mode",
        "ghost",
        "--preset",
        "amazon",
        "--option",
        "quality=80",
        "--option",
        "background=#ffffff",
    )
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert sorted(summary["uploaded"]) == [f"shirt-{i}.jpg" for i in range(1, 6)]
    assert summary["sealed"] is True
    assert summary["failed"] == []
    skipped = {s["file"]: s["reason"] for s in summary["skipped"]}
    assert set(skipped) == {"notes.txt", "fake.jpg", "empty.png", "sub/"}
    assert "not an image (.txt" in skipped["notes.txt"]
    assert "its content is not JPEG" in skipped["fake.jpg"]
    assert skipped["empty.png"] == "empty file"
    assert "skipped fake.jpg: not an image" in result.err

    batch = logged_in.batches[summary["batch_id"]]
    assert batch["name"] == "Spring"
    assert batch["defaults"]["mode"] == "ghost"
    assert batch["defaults"]["options"] == {"preset": "amazon", "quality": 80, "background": "#ffffff"}
    assert batch["sealed"]
    assert batch["_expected"] == 5
    assert sorted(logged_in.s3_posts) == sorted(summary["uploaded"])
    assert logged_in.count("POST", r"/v1/batches/[^/]+/seal") == 1
    saved = state(photos)
    assert saved["batch_id"] == summary["batch_id"]
    assert saved["api_url"] == logged_in.url
    assert sorted(saved["files"]) == sorted(summary["uploaded"])
    assert saved["sealed"] is True
    assert saved["files"]["shirt-1.jpg"]["key"] == f"drop/tenant-1/{summary['batch_id']}/shirt-1.jpg"

    again = cli("--json", "upload", str(photos))  # all there already: nothing is sent, no new batch
    assert again.code == 0, again.err
    assert json.loads(again.out)["uploaded"] == []
    assert len(logged_in.batches) == 1
    assert len(logged_in.s3_posts) == 5


def test_the_manifest_goes_first_and_seals_the_batch(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    (photos / "extra.jpg").write_bytes(jpeg())
    manifest = {"files": [{"file": f"shirt-{i}.jpg", "sku": f"SKU-{i}"} for i in range(1, 6)]}
    (photos / "manifest.json").write_text(json.dumps(manifest))
    result = cli("--json", "upload", str(photos), "--parallel", "3")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["manifest"] == "manifest.json"
    assert summary["sealed"] is True
    assert [s["file"] for s in summary["skipped"]] == ["extra.jpg"]
    assert logged_in.s3_posts[0] == "manifest.json"
    assert sorted(logged_in.s3_posts[1:]) == [f"shirt-{i}.jpg" for i in range(1, 6)]
    assert logged_in.count("POST", r"/v1/batches/[^/]+/seal") == 0  # the manifest sealed it
    batch = logged_in.batches[summary["batch_id"]]
    assert batch["_expected"] == 5
    assert {j["sku"] for j in logged_in.jobs.values()} == {f"SKU-{i}" for i in range(1, 6)}


def test_a_csv_manifest_given_explicitly(
    logged_in: FakeModamoda, cli: Cli, photos: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "my-list.csv"
    manifest.write_text("file,sku,mode\n" + "".join(f"shirt-{i}.jpg,S{i},ghost\n" for i in range(1, 6)))
    result = cli("upload", str(photos), "--manifest", str(manifest))
    assert result.code == 0, result.err
    assert logged_in.s3_posts[0] == "manifest.csv"
    assert (
        logged_in.objects[next(k for k in logged_in.objects if k.endswith("/manifest.csv"))]
        == manifest.read_bytes()
    )


def test_a_manifest_naming_missing_files_is_refused_before_anything_is_sent(
    logged_in: FakeModamoda, cli: Cli, photos: Path
) -> None:
    (photos / "manifest.json").write_text(
        json.dumps({"files": [{"file": "shirt-1.jpg"}, {"file": "gone.jpg"}]})
    )
    result = cli("upload", str(photos))
    assert result.code == 2
    assert "the manifest names 1 file(s) that are not images" in result.err
    assert "gone.jpg" in result.err
    assert logged_in.batches == {}
    assert logged_in.s3_posts == []
    (photos / "manifest.json").write_text("{broken")
    assert "is not valid JSON" in cli("upload", str(photos)).err


def test_uploads_run_in_parallel(logged_in: FakeModamoda, cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    make_photos(folder, 12)
    active, peak = 0, 0
    lock = threading.Lock()

    def slow(name: str) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.15)
        with lock:
            active -= 1

    logged_in.on_s3_post = slow
    started = time.monotonic()
    result = cli("upload", str(folder), "--parallel", "4")
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    assert peak == 4
    assert len(logged_in.s3_posts) == 12
    assert elapsed < 12 * 0.15  # not one after the other


def test_503s_from_the_api_and_storage_are_retried(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    logged_in.fault("POST", "/v1/batches", 503, times=1)
    logged_in.fault("POST", UPLOADS, 503, times=3)
    logged_in.fault("POST", "/s3/upload", 503, times=3)
    logged_in.fault("POST", r"/v1/batches/[^/]+/seal", 502, times=1)
    result = cli("--json", "upload", str(photos), "--parallel", "2")
    assert result.code == 0, result.err
    assert sorted(json.loads(result.out)["uploaded"]) == [f"shirt-{i}.jpg" for i in range(1, 6)]
    assert len(logged_in.batches) == 1
    assert logged_in.count("POST", "/s3/upload") == 5 + 3
    assert sorted(logged_in.s3_posts) == [f"shirt-{i}.jpg" for i in range(1, 6)]


def test_an_expired_upload_form_is_asked_for_again(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    logged_in.expired_policies.add("shirt-2.jpg")
    result = cli("upload", str(photos))
    assert result.code == 0, result.err
    assert logged_in.count("POST", UPLOADS) == 6
    assert sorted(logged_in.s3_posts) == [f"shirt-{i}.jpg" for i in range(1, 6)]


def test_ctrl_c_leaves_a_state_that_resumes_with_only_the_missing_files(
    logged_in: FakeModamoda, cli: Cli, photos: Path
) -> None:
    def interrupt_at_the_third(name: str) -> None:
        if len(logged_in.s3_posts) == 2:  # this is the third upload: Ctrl-C while it is in flight
            _thread.interrupt_main()
            time.sleep(0.3)

    logged_in.on_s3_post = interrupt_at_the_third
    first = cli("upload", str(photos), "--parallel", "1")
    assert first.code == 130
    assert "interrupted: 3 file(s)" in first.err
    assert "run the same `modamoda upload` command again" in first.err
    assert logged_in.s3_posts == ["shirt-1.jpg", "shirt-2.jpg", "shirt-3.jpg"]  # the one in flight finished
    saved = state(photos)
    assert sorted(saved["files"]) == ["shirt-1.jpg", "shirt-2.jpg", "shirt-3.jpg"]
    assert not saved["sealed"]
    batch_id = saved["batch_id"]
    assert logged_in.count("POST", r"/v1/batches/[^/]+/seal") == 0

    logged_in.on_s3_post = None
    second = cli("--json", "upload", str(photos))
    assert second.code == 0, second.err
    summary = json.loads(second.out)
    assert summary["batch_id"] == batch_id
    assert sorted(summary["uploaded"]) == ["shirt-4.jpg", "shirt-5.jpg"]
    assert sorted(summary["already_uploaded"]) == ["shirt-1.jpg", "shirt-2.jpg", "shirt-3.jpg"]
    assert sorted(logged_in.s3_posts) == [f"shirt-{i}.jpg" for i in range(1, 6)]  # each exactly once
    assert len(logged_in.batches) == 1
    assert summary["sealed"]
    assert logged_in.batches[batch_id]["_expected"] == 5


def test_failed_files_leave_the_batch_open_and_a_rerun_sends_only_them(
    logged_in: FakeModamoda, cli: Cli, photos: Path
) -> None:
    broken = {"shirt-2.jpg", "shirt-4.jpg"}

    def storage_down_for_some(name: str) -> None:
        if name in broken:
            raise RuntimeError("simulated storage failure")  # the fake answers 500 (a bug reply)

    logged_in.on_s3_post = storage_down_for_some
    first = cli("--json", "upload", str(photos), "--parallel", "3")
    assert first.code == 1
    summary = json.loads(first.out)
    assert [f["file"] for f in summary["failed"]] == ["shirt-2.jpg", "shirt-4.jpg"]
    assert "simulated storage failure" in summary["failed"][0]["reason"]
    assert summary["sealed"] is False
    assert "the batch stays open" in first.err
    assert logged_in.count("POST", r"/v1/batches/[^/]+/seal") == 0

    logged_in.on_s3_post = None
    second = cli("--json", "upload", str(photos))
    assert second.code == 0, second.err
    assert sorted(json.loads(second.out)["uploaded"]) == ["shirt-2.jpg", "shirt-4.jpg"]
    assert sorted(logged_in.s3_posts) == [f"shirt-{i}.jpg" for i in range(1, 6)]
    assert logged_in.count("POST", r"/v1/batches/[^/]+/seal") == 1


def test_too_large_files_fail_without_being_sent(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    logged_in.max_bytes = 500
    (photos / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 1000)
    result = cli("upload", str(photos))
    assert result.code == 1
    assert "failed huge.png" in result.err
    assert "allowed (too_large" in result.err
    assert "huge.png" not in logged_in.s3_posts


def test_a_closed_batch_takes_no_more_files(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    batch = logged_in.new_batch("closed")
    batch["status"] = "cancelled"
    result = cli("upload", str(photos), "--batch", batch["id"])
    assert result.code == 1
    assert "is cancelled and takes no more files" in result.err
    other = cli("upload", str(photos), "--batch", "0b0c5c1e-0000-4000-8000-000000000000", "--new")
    assert other.code == 1
    assert "does not exist" in other.err


def test_the_state_file_names_its_batch(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    assert cli("upload", str(photos)).code == 0
    first = state(photos)["batch_id"]
    other = logged_in.new_batch("other")
    result = cli("upload", str(photos), "--batch", other["id"])
    assert result.code == 2
    assert "pass --new" in result.err
    fresh = cli("--json", "upload", str(photos), "--new")
    assert fresh.code == 0
    assert json.loads(fresh.out)["batch_id"] not in (first, other["id"])
    assert len(json.loads(fresh.out)["uploaded"]) == 5


def test_an_empty_folder(logged_in: FakeModamoda, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("hi")
    result = cli("upload", str(tmp_path / "empty"))
    assert result.code == 1
    assert "no images to upload" in result.err
    assert logged_in.batches == {}


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (b"II*\x00", "image/tiff"),
        (b"\0\0\0\x1cftypavif", "image/avif"),
        (b"\0\0\0\x18ftypheic", "image/heic"),
        (b"GIF89a", None),
        (b"%PDF-1.7", None),
    ],
)
def test_sniffing_image_types(head: bytes, expected: str | None) -> None:
    assert sniff(head + b"\0" * 16) == expected


def test_resuming_uses_the_manifest_the_batch_was_started_with(
    logged_in: FakeModamoda, cli: Cli, photos: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "list.json"
    manifest.write_text(json.dumps({"files": [{"file": f"shirt-{i}.jpg"} for i in range(1, 5)]}))

    def interrupt_at_the_second_photo(name: str) -> None:
        if name == "shirt-2.jpg":
            _thread.interrupt_main()
            time.sleep(0.3)

    logged_in.on_s3_post = interrupt_at_the_second_photo
    assert cli("upload", str(photos), "--manifest", str(manifest), "--parallel", "1").code == 130
    logged_in.on_s3_post = None
    result = cli("--json", "upload", str(photos))  # no --manifest this time
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert sorted(summary["uploaded"]) == ["shirt-3.jpg", "shirt-4.jpg"]
    assert summary["skipped"] == [{"file": "shirt-5.jpg", "reason": "not in the manifest"}]
    assert logged_in.s3_posts.count("manifest.json") == 1
    assert logged_in.count("POST", r"/v1/batches/[^/]+/seal") == 0
