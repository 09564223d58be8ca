"""Files in a batch's drop folder (``drop/{tenant}/{batch}/{file}``): one job per image whatever the number and
order of S3 events and object versions; the manifest decides each file's settings; refused files cost nothing and
start no workflow."""

from __future__ import annotations

import json
import uuid

import pytest

from functions.common import batches, db
from tests.functions.batch_support import DROP, UPLOADS, Bulk, bulk_fixture, garment_png  # noqa: F401

MANIFEST = {
    "defaults": {"preset": "amazon"},
    "files": [
        {"file": "a.jpg", "sku": "SKU-A"},
        {"file": "b.jpg", "sku": "SKU-B", "shadow": "none"},
        {"file": "c.jpg", "sku": "SKU-C", "preset": "ebay"},
    ],
}


def test_a_new_folder_creates_the_batch_and_each_file_one_job(bulk: Bulk) -> None:
    for name in ("shirt.jpg", "dress.png"):
        bulk.drop("spring-drop", name, garment_png())
    batch = bulk.batch("spring-drop")
    assert (batch["name"], batch["status"], batch["sealed_at"]) == ("spring-drop", "open", None)
    found = bulk.jobs("spring-drop")
    assert set(found) == {"shirt.jpg", "dress.png"}
    assert {j["status"] for j in found.values()} == {"queued"}
    assert {j["result_name"] for j in found.values()} == {"shirt-ghost", "dress-ghost"}
    assert sorted(e["name"] for e in bulk.executions()) == sorted(j["execution_name"] for j in found.values())
    for job in found.values():  # the uploads' naming: job id and a digest of bucket/key/version
        assert job["execution_name"].startswith(f"job-{job['id']}-")
        assert len(job["execution_name"]) <= 80


def test_the_same_event_again_and_again_makes_one_job_and_one_execution(bulk: Bulk) -> None:
    version = bulk.put("b1", "a.jpg", garment_png())
    key = bulk.key("b1", "a.jpg")
    for _ in range(4):  # at-least-once delivery, also concurrent replays after a crash
        assert bulk.deliver(key, version) == {"batchItemFailures": []}
    assert len(bulk.jobs("b1")) == 1
    assert len(bulk.executions()) == 1


def test_two_versions_of_one_file_make_one_job(bulk: Bulk) -> None:
    first = bulk.put("b1", "a.jpg", garment_png(1))
    second = bulk.put("b1", "a.jpg", garment_png(2))  # a resumable client uploaded the file again
    assert first != second
    bulk.deliver(bulk.key("b1", "a.jpg"), second)  # events may come in any order
    bulk.deliver(bulk.key("b1", "a.jpg"), first)
    jobs = bulk.jobs("b1")
    assert len(jobs) == 1
    assert jobs["a.jpg"]["source_version"] == second  # the first event to arrive claims the job
    assert len(bulk.executions()) == 1


def test_the_manifest_decides_even_when_its_event_comes_last(bulk: Bulk) -> None:
    manifest_version = bulk.put("b2", "manifest.json", json.dumps(MANIFEST).encode())
    versions = {name: bulk.put("b2", name, garment_png()) for name in ("a.jpg", "b.jpg", "c.jpg")}
    for name in ("c.jpg", "b.jpg", "a.jpg"):  # reordered: the images' events first
        bulk.deliver(bulk.key("b2", name), versions[name])
    bulk.deliver(bulk.key("b2", "manifest.json"), manifest_version)
    bulk.deliver(bulk.key("b2", "manifest.json"), manifest_version)  # and again
    jobs = bulk.jobs("b2")
    assert jobs["a.jpg"]["sku"] == "SKU-A"
    assert jobs["a.jpg"]["options"]["preset"] == "amazon"
    assert jobs["a.jpg"]["result_name"] == "SKU-A-ghost"
    assert jobs["b.jpg"]["options"]["shadow"] == "none"
    assert (jobs["c.jpg"]["status"], jobs["c.jpg"]["error_code"]) == ("rejected", "manifest_invalid")
    assert "manifest row 3" in jobs["c.jpg"]["error_message"]
    assert "preset" in jobs["c.jpg"]["error_message"]
    batch = bulk.batch("b2")
    assert batch["status"] == "sealed"
    assert batch["expected_files"] == ["a.jpg", "b.jpg", "c.jpg"]
    assert len(bulk.executions()) == 2  # none for the rejected file
    assert bulk.balance() == (10, 10, 0)  # nothing charged for the rejection


def test_a_manifest_that_truly_comes_after_some_images_names_them_too(bulk: Bulk) -> None:
    bulk.drop("b3", "a.jpg", garment_png())  # no manifest in the folder yet: batch defaults
    bulk.drop("b3", "manifest.csv", b"file,sku,preset\na.jpg,LATE-A,zalando\nb.jpg,LATE-B,zalando\n")
    bulk.drop("b3", "b.jpg", garment_png())
    jobs = bulk.jobs("b3")
    assert jobs["a.jpg"]["options"]["preset"] == "square"  # already running with the batch defaults
    assert (jobs["a.jpg"]["sku"], jobs["a.jpg"]["result_name"]) == ("LATE-A", "LATE-A-ghost")
    assert (jobs["b.jpg"]["sku"], jobs["b.jpg"]["options"]["preset"]) == ("LATE-B", "zalando")


def test_files_the_manifest_does_not_list_are_rejected(bulk: Bulk) -> None:
    bulk.drop("b4", "manifest.json", json.dumps(MANIFEST).encode())
    bulk.drop("b4", "stray.jpg", garment_png())
    stray = bulk.jobs("b4")["stray.jpg"]
    assert (stray["status"], stray["error_code"]) == ("rejected", "not_in_manifest")
    assert bulk.executions() == []


def test_a_bad_manifest_rejects_every_file_and_charges_nothing(bulk: Bulk) -> None:
    bulk.drop("b5", "manifest.json", b'{"files": "all of them"}')
    for name in ("a.jpg", "b.jpg"):
        bulk.drop("b5", name, garment_png())
    batch = bulk.batch("b5")
    assert '"files" must be a list' in batch["manifest_error"]
    assert batch["sealed_at"] is None  # a bad manifest names no file set: POST .../seal ends the batch
    for job in bulk.jobs("b5").values():
        assert (job["status"], job["error_code"]) == ("rejected", "manifest_invalid")
        assert '"files" must be a list' in job["error_message"]
    assert bulk.executions() == []
    assert bulk.balance() == (10, 10, 0)
    with db.transaction(bulk.tenant_id) as conn:
        sealed = batches.seal(conn, batches.lock(conn, str(batch["id"])), ["a.jpg", "b.jpg"])
    assert sealed
    assert bulk.batch("b5")["status"] == "completed"


def test_a_second_manifest_is_ignored(bulk: Bulk) -> None:
    bulk.drop("b6", "manifest.csv", b"file,sku\na.jpg,FIRST\n")
    bulk.drop("b6", "manifest.json", json.dumps({"files": [{"file": "a.jpg", "sku": "SECOND"}]}).encode())
    bulk.drop("b6", "manifest.csv", b"file,sku\na.jpg,THIRD\n")  # a new version of the first
    bulk.drop("b6", "a.jpg", garment_png())
    assert bulk.jobs("b6")["a.jpg"]["sku"] == "FIRST"


@pytest.mark.parametrize(
    "key",
    [
        "drop/{unknown}/b/a.jpg",  # a tenant that does not exist
        "drop/not-a-uuid/b/a.jpg",
        "drop/{tenant_upper}/b/a.jpg",  # not the canonical spelling of the tenant's prefix
        "drop/{tenant}/b/nested/a.jpg",  # sub-folders are not part of the layout
        "drop/{tenant}/b/.DS_Store",  # dot files are ignored
        "drop/{tenant}/b/",  # the folder itself
        "drop/{tenant}/a.jpg",
    ],
)
def test_objects_outside_the_drop_layout_or_of_unknown_tenants_are_ignored(bulk: Bulk, key: str) -> None:
    key = key.format(unknown=uuid.uuid4(), tenant=bulk.tenant_id, tenant_upper=bulk.tenant_id.upper())
    version = bulk.s3.put_object(Bucket=DROP, Key=key, Body=garment_png()).get("VersionId")
    assert bulk.deliver(key, version) == {"batchItemFailures": []}
    with db.transaction(bulk.tenant_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0
        assert conn.execute("SELECT count(*) AS n FROM batches").fetchone()["n"] == 0
    assert bulk.executions() == []


def test_drop_keys_in_another_bucket_are_ignored(bulk: Bulk) -> None:
    key = bulk.key("b7", "a.jpg")
    version = bulk.s3.put_object(Bucket=UPLOADS, Key=key, Body=garment_png()).get("VersionId")
    assert bulk.deliver(key, version, bucket=UPLOADS) == {"batchItemFailures": []}
    assert bulk.executions() == []


def test_url_encoded_keys_of_s3_events_are_decoded(bulk: Bulk) -> None:
    version = bulk.put("b8", "red flower (1).jpg", garment_png())
    assert bulk.deliver(bulk.key("b8", "red+flower+%281%29.jpg"), version) == {"batchItemFailures": []}
    job = bulk.jobs("b8")["red flower (1).jpg"]
    assert job["source_key"] == bulk.key("b8", "red flower (1).jpg")
    assert job["result_name"] == "red_flower_1-ghost"
    bulk.drop("b8", "c++.jpg", garment_png())  # a real '+' in the name stays
    assert "c++.jpg" in bulk.jobs("b8")


def test_result_names_stay_unique_within_a_batch(bulk: Bulk) -> None:
    manifest = {"files": [{"file": f"{n}.jpg", "sku": "SAME"} for n in ("x", "y", "z")] + [{"file": "w.jpg"}]}
    bulk.drop("b9", "manifest.json", json.dumps(manifest).encode())
    for name in ("x.jpg", "y.jpg", "z.jpg", "w.jpg"):
        bulk.drop("b9", name, garment_png())
    names = sorted(j["result_name"] for j in bulk.jobs("b9").values())
    assert names == ["SAME-ghost", "SAME_2-ghost", "SAME_3-ghost", "w-ghost"]


def test_an_api_batch_receives_the_files_of_its_folder(bulk: Bulk) -> None:
    from functions.common.models import BatchDefaults, BatchRequest, JobOptions

    request = BatchRequest(name="Autumn", defaults=BatchDefaults(options=JobOptions(preset="zalando")))
    with db.transaction(bulk.tenant_id) as conn:
        batch = batches.create(conn, bulk.tenant_id, bulk.user, request)
    bulk.drop(str(batch["id"]), "a.jpg", garment_png())
    job = bulk.jobs(str(batch["id"]))["a.jpg"]
    assert job["options"]["preset"] == "zalando"
    assert bulk.batch(str(batch["id"]))["name"] == "Autumn"
