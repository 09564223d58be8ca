"""A batch from its files to its report: results named by SKU, the report (CSV + JSON, with the consistency
check) fixed and written exactly once, a cancel that charges nothing for what had not started, and a batch stopped
by insufficient credits that charges only the images it completed."""

from __future__ import annotations

import csv
import io
import json
import threading
from typing import Any

import boto3
import pytest

from functions.common import api_service, batches, db, jobs
from functions.common.errors import Conflict
from functions.common.models import BatchRequest
from functions.common.tenants import Identity
from functions.sweeper import handler as sweeper
from tests.conftest import FakeLambdaContext
from tests.functions.batch_support import RESULTS, Bulk, bulk_fixture, garment_png  # noqa: F401
from tests.functions.common.test_consistency import packshot


def owner(bulk: Bulk) -> Identity:
    return Identity(
        user_id=bulk.user,
        email=f"{bulk.user}@example.com",
        tenant_id=bulk.tenant_id,
        tenant_kind="individual",
    )


def report_objects(bulk: Bulk, batch_id: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    prefix = f"results/{bulk.tenant_id}/{batch_id}/"
    report = json.loads(bulk.s3.get_object(Bucket=RESULTS, Key=prefix + "report.json")["Body"].read())
    text = bulk.s3.get_object(Bucket=RESULTS, Key=prefix + "report.csv")["Body"].read().decode()
    return report, list(csv.DictReader(io.StringIO(text)))


def batch_events(bulk: Bulk, batch_id: str) -> list[dict[str, Any]]:
    with db.transaction(bulk.tenant_id) as conn:
        return [
            dict(r)
            for r in conn.execute(
                "SELECT channel, type FROM notifications WHERE subject = %s ORDER BY channel",
                (f"batch:{batch_id}",),
            ).fetchall()
        ]


def test_a_batch_runs_to_its_report_once(bulk: Bulk) -> None:
    manifest = {
        "files": [
            {"file": "a.jpg", "sku": "SKU-A"},
            {"file": "b.jpg", "sku": '=HYPERLINK("http://evil")'},
            {"file": "c.jpg", "sku": "SKU-C"},
            {"file": "d.jpg", "sku": "SKU-D"},
            {"file": "e.jpg", "sku": "SKU-E"},
            {"file": "bad.jpg", "sku": "SKU-X", "preset": "ebay"},
            {"file": "broken.jpg", "sku": "SKU-Y"},
        ]
    }
    bulk.drop("run", "manifest.json", json.dumps(manifest).encode())
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "bad.jpg"):
        bulk.drop("run", name, garment_png())
    bulk.drop("run", "broken.jpg", b"this is not an image")
    found = bulk.jobs("run")
    batch_id = str(bulk.batch("run")["id"])
    results = {"a.jpg": packshot(), "b.jpg": packshot(), "c.jpg": packshot(), "d.jpg": packshot()}
    results["e.jpg"] = packshot(box=(0.02, 0.02, 0.3, 0.35))  # the odd one out
    # the engine's quality report for a.jpg, as the container writes it beside the result
    bulk.s3.put_object(
        Bucket=RESULTS,
        Key=f"inference/metadata/{found['a.jpg']['id']}.json",
        Body=json.dumps({"outcome": "succeeded", "quality": {"score": 0.87, "threshold": 0.6}}).encode(),
    )
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "broken.jpg"):
        assert bulk.batch("run")["finished_at"] is None
        bulk.run(str(found[name]["id"]), results.get(name))
    batch = bulk.batch("run")
    assert batch["status"] == "completed"
    assert batch["finished_at"] is not None
    assert batch["report_written_at"] is not None

    keys = sorted(
        o["Key"]
        for o in bulk.s3.list_objects_v2(Bucket=RESULTS, Prefix=f"results/{bulk.tenant_id}/")["Contents"]
    )
    prefix = f"results/{bulk.tenant_id}/{batch_id}/"
    assert keys == [
        prefix + name
        for name in (
            "HYPERLINK_http_evil-ghost.png",
            "SKU-A-ghost.png",
            "SKU-C-ghost.png",
            "SKU-D-ghost.png",
            "SKU-E-ghost.png",
            "report.csv",
            "report.json",
        )
    ]
    report, rows = report_objects(bulk, batch_id)
    assert report["totals"] == {
        "expected": 7,
        "total": 7,
        "awaiting": 0,
        "queued": 0,
        "processing": 0,
        "succeeded": 5,
        "failed": 0,
        "rejected": 2,
        "cancelled": 0,
        "credits_spent": 5,
        "files": 7,
    }
    by_file = {f["file"]: f for f in report["files"]}
    assert by_file["a.jpg"] == {
        "file": "a.jpg",
        "sku": "SKU-A",
        "job_id": str(found["a.jpg"]["id"]),
        "status": "succeeded",
        "mode": "ghost",
        "error_code": None,
        "error_message": None,
        "cost": 1,
        "result_key": prefix + "SKU-A-ghost.png",
        "quality_score": 0.87,
        "quality_threshold": 0.6,
        "consistency_flagged": False,
        "consistency_reasons": [],
    }
    assert (by_file["bad.jpg"]["status"], by_file["bad.jpg"]["error_code"], by_file["bad.jpg"]["cost"]) == (
        "rejected",
        "manifest_invalid",
        0,
    )
    assert (by_file["broken.jpg"]["status"], by_file["broken.jpg"]["error_code"]) == (
        "rejected",
        "not_an_image",
    )
    assert report["consistency"]["flagged"] == ["e.jpg"]
    assert by_file["e.jpg"]["consistency_flagged"]
    assert report["consistency"]["judged"]
    assert report["consistency"]["count"] == 5
    assert [r["file"] for r in rows] == sorted(by_file)
    csv_b = next(r for r in rows if r["file"] == "b.jpg")
    assert csv_b["sku"].startswith("'=")  # a spreadsheet shows the SKU; it does not run it
    assert next(r for r in rows if r["file"] == "e.jpg")["consistency_flagged"] == "yes"
    csv_a = next(r for r in rows if r["file"] == "a.jpg")
    assert (csv_a["quality_score"], csv_a["quality_threshold"]) == ("0.87", "0.6")
    assert (csv_b["quality_score"], csv_b["quality_threshold"]) == ("", "")  # the engine gave none
    assert by_file["c.jpg"]["quality_score"] is None

    # exactly once: replays of every step change nothing and record nothing twice
    events = batch_events(bulk, batch_id)
    assert events == [{"channel": "email", "type": "batch.completed"}]
    for name in ("a.jpg", "e.jpg"):
        bulk.complete(str(found[name]["id"]), results[name])
    bulk.drop("run", "manifest.json", json.dumps(manifest).encode())
    assert batch_events(bulk, batch_id) == events
    assert bulk.batch("run")["finished_at"] == batch["finished_at"]
    assert bulk.balance() == (5, 5, 0)
    with pytest.raises(Conflict, match="has finished"):  # a completed batch cannot be cancelled
        api_service.cancel_batch(bulk.s3, bulk.sfn, owner(bulk), batch_id)


def test_concurrent_last_jobs_finish_the_batch_exactly_once(bulk: Bulk) -> None:
    names = [f"f{i}.jpg" for i in range(8)]
    bulk.drop("race", "manifest.csv", ("file\n" + "\n".join(names) + "\n").encode())
    for name in names:
        bulk.drop("race", name, garment_png())
    from functions.common import credits

    with db.transaction(bulk.tenant_id) as conn:
        credits.grant(conn, bulk.tenant_id, 10, "test:race", "test")
    ids = [str(j["id"]) for j in bulk.jobs("race").values()]
    for job_id in ids:
        assert bulk.validate_and_reserve(job_id) == "reserved"
        assert bulk.invoke(job_id) == "processing"
    errors: list[BaseException] = []
    start = threading.Barrier(len(ids))

    def complete(job_id: str) -> None:
        try:
            start.wait()
            bulk.complete(job_id, packshot())
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            db.reset()

    threads = [threading.Thread(target=complete, args=(job_id,)) for job_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    batch = bulk.batch("race")
    assert batch["status"] == "completed"
    assert batch["report_written_at"] is not None
    assert batch_events(bulk, str(batch["id"])) == [{"channel": "email", "type": "batch.completed"}]
    assert batch["report"]["totals"]["succeeded"] == 8
    balance, ledger, held = bulk.balance()
    assert (balance, ledger, held) == (12, 12, 0)


def test_cancel_mid_batch_charges_nothing_for_what_had_not_started(bulk: Bulk) -> None:
    names = ["done.jpg", "processing.jpg", "reserved.jpg", "queued.jpg"]
    bulk.drop(
        "cancel",
        "manifest.csv",
        ("file,sku\n" + "".join(f"{n},S-{n[:2]}\n" for n in names) + "late.jpg,L\n").encode(),
    )
    for name in names:
        bulk.drop("cancel", name, garment_png())
    found = {n: str(j["id"]) for n, j in bulk.jobs("cancel").items()}
    assert bulk.run(found["done.jpg"]) == "succeeded"
    assert bulk.validate_and_reserve(found["processing.jpg"]) == "reserved"
    assert bulk.invoke(found["processing.jpg"]) == "processing"
    assert bulk.validate_and_reserve(found["reserved.jpg"]) == "reserved"  # holds a credit, not yet running
    assert bulk.balance() == (7, 7, 2)
    batch_id = str(bulk.batch("cancel")["id"])

    view = api_service.cancel_batch(bulk.s3, bulk.sfn, owner(bulk), batch_id)
    assert view.status == "cancelled"
    assert view.finished_at is None
    assert (view.counts.cancelled, view.counts.processing, view.counts.succeeded) == (2, 1, 1)
    assert bulk.balance() == (8, 8, 1)  # the reserved job's hold came back
    for name in ("reserved.jpg", "queued.jpg"):
        job = bulk.jobs("cancel")[name]
        assert (job["status"], job["error_code"]) == ("cancelled", "batch_cancelled")
        execution = bulk.sfn.describe_execution(
            executionArn=bulk.state_machine_arn.replace(":stateMachine:", ":execution:")
            + ":"
            + job["execution_name"]
        )
        assert execution["status"] == "ABORTED"
    # the executions, had they not been stopped, could not run or reserve anything
    assert bulk.invoke(found["reserved.jpg"]) == "cancelled"
    assert bulk.validate_and_reserve(found["queued.jpg"]) == "cancelled"
    assert bulk.sagemaker.invoked == [found["done.jpg"], found["processing.jpg"]]
    # a file arriving after the cancel is ignored
    bulk.drop("cancel", "late.jpg", garment_png())
    assert "late.jpg" not in bulk.jobs("cancel")
    assert (
        api_service.cancel_batch(bulk.s3, bulk.sfn, owner(bulk), batch_id).status == "cancelled"
    )  # idempotent

    bulk.complete(found["processing.jpg"], packshot())  # what was processing finishes and is charged
    batch = bulk.batch("cancel")
    assert (batch["status"], batch["report_written_at"] is not None) == ("cancelled", True)
    assert bulk.balance() == (8, 8, 0)  # 2 images charged, nothing for the cancelled ones
    report, _ = report_objects(bulk, batch_id)
    statuses = {f["file"]: (f["status"], f["cost"]) for f in report["files"]}
    assert statuses == {
        "done.jpg": ("succeeded", 1),
        "processing.jpg": ("succeeded", 1),
        "reserved.jpg": ("cancelled", 0),
        "queued.jpg": ("cancelled", 0),
        "late.jpg": ("not_received", 0),
    }
    assert batch_events(bulk, batch_id) == [{"channel": "email", "type": "batch.cancelled"}]
    assert api_service.cancel_batch(bulk.s3, bulk.sfn, owner(bulk), batch_id).status == "cancelled"


def test_insufficient_credits_stop_the_batch_and_charge_only_completed_images(bulk: Bulk) -> None:
    from functions.common import credits

    with db.transaction(bulk.tenant_id) as conn:  # 10 welcome credits - 7 = 3 left
        credits.adjust(conn, bulk.tenant_id, -7, "adjustment", "test:spend", {"reason": "test"})
    names = [f"{c}.jpg" for c in "abcdef"]
    for name in names:
        bulk.drop("short", name, garment_png())
    found = {n: str(j["id"]) for n, j in bulk.jobs("short").items()}
    assert bulk.run(found["a.jpg"]) == "succeeded"
    assert bulk.run(found["b.jpg"]) == "succeeded"
    assert bulk.validate_and_reserve(found["c.jpg"]) == "reserved"  # the last credit, held
    assert bulk.balance() == (0, 0, 1)
    assert bulk.validate_and_reserve(found["d.jpg"]) == "rejected"  # cannot reserve: the batch stops
    batch = bulk.batch("short")
    assert batch["status"] == "stopped"
    assert "'d.jpg' could not reserve" in batch["stop_reason"]
    after = bulk.jobs("short")
    assert (after["d.jpg"]["status"], after["d.jpg"]["error_code"]) == ("rejected", "insufficient_credits")
    assert "this image costs 1 credit(s); the account has 0" in after["d.jpg"]["error_message"]
    for name in ("e.jpg", "f.jpg"):  # queued, no hold: rejected at once, with the batch stop as the reason
        assert (after[name]["status"], after[name]["error_code"]) == ("rejected", "insufficient_credits")
        assert "the batch was stopped" in after[name]["error_message"]
    # their executions go on to find the job ended: nothing is reserved
    assert bulk.validate_and_reserve(found["e.jpg"]) == "rejected"
    with db.transaction(bulk.tenant_id) as conn:
        assert (
            conn.execute("SELECT count(*) AS n FROM holds WHERE job_id = %s", (found["e.jpg"],)).fetchone()[
                "n"
            ]
            == 0
        )
    # a file arriving later is rejected without a workflow
    runs = len(bulk.executions())
    bulk.drop("short", "g.jpg", garment_png())
    late = bulk.jobs("short")["g.jpg"]
    assert (late["status"], late["error_code"]) == ("rejected", "insufficient_credits")
    assert len(bulk.executions()) == runs
    # the job that held its credit completes and is charged; the batch ends once sealed
    assert bulk.invoke(found["c.jpg"]) == "processing"
    bulk.complete(found["c.jpg"], packshot())
    view = api_service.seal_batch(bulk.s3, owner(bulk), str(batch["id"]))
    assert view.status == "stopped"
    assert view.finished_at is not None
    assert view.report is not None
    assert view.counts.model_dump() == {
        "expected": 7,
        "total": 7,
        "awaiting": 0,
        "queued": 0,
        "processing": 0,
        "succeeded": 3,
        "failed": 0,
        "rejected": 4,
        "cancelled": 0,
    }
    assert view.credits_spent == 3
    assert bulk.balance() == (0, 0, 0)
    report, rows = report_objects(bulk, str(batch["id"]))
    assert {r["file"]: r["error_code"] for r in rows if r["status"] == "rejected"} == dict.fromkeys(
        ("d.jpg", "e.jpg", "f.jpg", "g.jpg"), "insufficient_credits"
    )
    assert sum(f["cost"] for f in report["files"]) == 3
    assert batch_events(bulk, str(batch["id"])) == [{"channel": "email", "type": "batch.stopped"}]


def test_seal_waits_for_the_files_already_in_the_folder(bulk: Bulk) -> None:
    with db.transaction(bulk.tenant_id) as conn:
        batch = batches.create(conn, bulk.tenant_id, bulk.user, BatchRequest(name="sealed"))
    folder = str(batch["id"])
    bulk.drop(folder, "a.jpg", garment_png())
    version = bulk.put(folder, "b.jpg", garment_png())  # uploaded, its event still on the way
    view = api_service.seal_batch(bulk.s3, owner(bulk), folder)
    assert view.sealed
    assert view.counts.expected == 2
    assert view.counts.awaiting == 1
    assert bulk.run(str(bulk.jobs(folder)["a.jpg"]["id"])) == "succeeded"
    assert bulk.batch(folder)["finished_at"] is None  # b.jpg is expected
    bulk.deliver(bulk.key(folder, "b.jpg"), version)
    bulk.drop(folder, "c.jpg", garment_png())  # not there when sealed
    c = bulk.jobs(folder)["c.jpg"]
    assert (c["status"], c["error_code"]) == ("rejected", "batch_sealed")
    assert bulk.run(str(bulk.jobs(folder)["b.jpg"]["id"])) == "succeeded"
    assert bulk.batch(folder)["status"] == "completed"
    assert api_service.seal_batch(bulk.s3, owner(bulk), folder).status == "completed"  # idempotent


def test_a_report_lost_after_the_commit_is_written_by_the_sweeper(
    bulk: Bulk, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk.drop("lost", "manifest.csv", b"file\na.jpg\n")
    bulk.drop("lost", "a.jpg", garment_png())
    job_id = str(bulk.jobs("lost")["a.jpg"]["id"])
    calls: list[str] = []

    def crash(s3: Any, tenant_id: str, batch_id: str) -> bool:
        calls.append(batch_id)
        raise RuntimeError("the function died after the commit")

    original = batches.flush_report
    monkeypatch.setattr(batches, "flush_report", crash)
    with pytest.raises(RuntimeError):
        bulk.run(job_id, packshot())
    monkeypatch.setattr(batches, "flush_report", original)
    batch = bulk.batch("lost")
    assert calls
    assert batch["finished_at"] is not None
    assert batch["report_written_at"] is None
    assert sweeper.lambda_handler({}, FakeLambdaContext())["batch_reports_written"] == 1
    assert sweeper.lambda_handler({}, FakeLambdaContext())["batch_reports_written"] == 0
    report, _ = report_objects(bulk, str(batch["id"]))
    assert report == bulk.batch("lost")["report"]


def test_report_objects_are_created_once(bulk: Bulk) -> None:
    bulk.drop("once", "manifest.csv", b"file\na.jpg\n")
    bulk.drop("once", "a.jpg", garment_png())
    bulk.run(str(bulk.jobs("once")["a.jpg"]["id"]), packshot())
    batch = bulk.batch("once")
    key = f"results/{bulk.tenant_id}/{batch['id']}/report.json"
    etag = bulk.s3.head_object(Bucket=RESULTS, Key=key)["ETag"]
    with db.transaction(bulk.tenant_id) as conn:  # as if a second writer raced the first
        conn.execute("UPDATE batches SET report_written_at = NULL WHERE id = %s", (batch["id"],))
    assert batches.flush_report(boto3.client("s3", region_name="us-east-1"), bulk.tenant_id, str(batch["id"]))
    assert bulk.s3.head_object(Bucket=RESULTS, Key=key)["ETag"] == etag  # If-None-Match: * kept the first


def test_batch_jobs_are_listed_and_viewed_with_batch_and_sku(bulk: Bulk) -> None:
    bulk.drop("view", "manifest.csv", b"file,sku\na.jpg,SKU-A\nb.jpg,SKU-B\n")
    bulk.drop("view", "a.jpg", garment_png())
    bulk.drop("view", "b.jpg", b"not an image")
    found = bulk.jobs("view")
    bulk.run(str(found["b.jpg"]["id"]))
    batch_id = str(bulk.batch("view")["id"])
    page = api_service.list_batch_jobs(bulk.s3, owner(bulk), batch_id, 10, None, "rejected")
    assert [(j.filename, j.sku, j.batch_id) for j in page.items] == [("b.jpg", "SKU-B", batch_id)]
    assert len(api_service.list_batch_jobs(bulk.s3, owner(bulk), batch_id, 10, None, None).items) == 2
    with db.transaction(bulk.tenant_id) as conn:
        assert jobs.to_view(jobs.load(conn, str(found["a.jpg"]["id"]))).sku == "SKU-A"
