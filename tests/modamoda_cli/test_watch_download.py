"""``modamoda watch`` (until the batch has finished), ``download`` (results under their SKU names and the report;
files already there are skipped), ``batches`` and ``cancel`` against the fake service."""

from __future__ import annotations

import json
from pathlib import Path

from modamoda_cli.download import result_name, safe_name
from tests.modamoda_cli.conftest import Cli
from tests.modamoda_cli.fake_api import FakeModamoda


def upload_with_skus(fake: FakeModamoda, cli: Cli, photos: Path) -> str:
    manifest = {"files": [{"file": f"shirt-{i}.jpg", "sku": f"SKU-{i}"} for i in range(1, 6)]}
    (photos / "manifest.json").write_text(json.dumps(manifest))
    result = cli("--json", "upload", str(photos))
    assert result.code == 0, result.err
    return str(json.loads(result.out)["batch_id"])


def test_watch_polls_until_the_batch_has_finished(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    logged_in.finish_per_poll = 1  # one job finishes per poll
    batch_id = upload_with_skus(logged_in, cli, photos)
    polls = logged_in.count("GET", f"/v1/batches/{batch_id}")
    result = cli("watch", batch_id, "--interval", "0.01")
    assert result.code == 0, result.err
    assert logged_in.count("GET", f"/v1/batches/{batch_id}") - polls >= 5
    assert "completed: 5 succeeded" in result.out
    assert "5 of 5 done" in result.out
    assert "5 credits spent" in result.out
    # without a terminal, each change is a line on stderr
    assert "1/5 sealed: 1 succeeded, 4 queued" in result.err
    assert logged_in.batches[batch_id]["status"] == "completed"

    as_json = cli("--json", "watch", batch_id, "--once")
    assert json.loads(as_json.out)["status"] == "completed"


def test_watch_exits_1_when_images_failed(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    logged_in.fail_names = {"shirt-3.jpg"}
    batch_id = upload_with_skus(logged_in, cli, photos)
    result = cli("watch", batch_id, "--interval", "0.01")
    assert result.code == 1
    assert "4 succeeded, 1 failed" in result.out


def test_watch_gives_up_after_its_timeout(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    assert cli("upload", str(photos), "--no-seal").code == 0
    batch_id = json.loads((photos / ".modamoda-batch.json").read_text())["batch_id"]
    result = cli("watch", batch_id, "--interval", "0.01", "--timeout", "0.2")
    assert result.code == 1
    assert "has not finished after 0.2 s" in result.err
    assert "the batch is open" in result.err


def test_download_results_and_report_then_skip_what_is_there(
    logged_in: FakeModamoda, cli: Cli, photos: Path, tmp_path: Path
) -> None:
    batch_id = upload_with_skus(logged_in, cli, photos)
    assert cli("watch", batch_id, "--interval", "0.01").code == 0
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "SKU-2-ghost.png").write_bytes(b"mine, keep it")  # already there: not downloaded again
    result = cli("--json", "download", batch_id, str(dest))
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["downloaded"] == [f"SKU-{i}-ghost.png" for i in (1, 3, 4, 5)]
    assert summary["already_there"] == ["SKU-2-ghost.png"]
    assert summary["report"] == ["report.csv", "report.json"]
    assert (dest / "SKU-1-ghost.png").read_bytes() == b"result of shirt-1.jpg"
    assert (dest / "SKU-2-ghost.png").read_bytes() == b"mine, keep it"
    assert (dest / "report.csv").read_text().startswith("file,sku,status\n")
    assert len(json.loads((dest / "report.json").read_text())["files"]) == 5
    assert not list(dest.glob("*.part"))

    gets = len(logged_in.s3_gets)
    again = cli("--json", "download", batch_id, str(dest))
    assert again.code == 0
    assert json.loads(again.out)["downloaded"] == []
    assert len(logged_in.s3_gets) == gets  # nothing fetched the second time


def test_download_while_running_then_wait(
    logged_in: FakeModamoda, cli: Cli, photos: Path, tmp_path: Path
) -> None:
    logged_in.finish_per_poll = 2
    batch_id = upload_with_skus(logged_in, cli, photos)
    dest = tmp_path / "partial"
    first = cli("--json", "download", batch_id, str(dest))
    assert first.code == 0
    assert len(json.loads(first.out)["downloaded"]) == 2
    assert "is still sealed" in first.err
    assert not (dest / "report.csv").exists()
    rest = cli("--json", "download", batch_id, str(dest), "--wait", "--interval", "0.01")
    assert rest.code == 0, rest.err
    summary = json.loads(rest.out)
    assert len(summary["downloaded"]) == 3
    assert len(summary["already_there"]) == 2
    assert summary["finished"] is True
    assert (dest / "report.json").is_file()


def test_an_expired_result_url_is_replaced_by_a_download_link(
    logged_in: FakeModamoda, cli: Cli, photos: Path, tmp_path: Path
) -> None:
    batch_id = upload_with_skus(logged_in, cli, photos)
    assert cli("watch", batch_id, "--interval", "0.01").code == 0
    original = logged_in.presigned_get
    logged_in.presigned_get = lambda key: original(key).replace("sig=ok", "sig=old")  # type: ignore[method-assign]
    job_urls_expired = cli("--json", "download", batch_id, str(tmp_path / "d"), "--no-report")
    logged_in.presigned_get = original  # type: ignore[method-assign]
    # the inline URLs and the download links were both expired: every file failed, clearly
    assert job_urls_expired.code == 1
    assert "Request has expired (AccessDenied, HTTP 403)" in job_urls_expired.err

    fixed = cli("--json", "download", batch_id, str(tmp_path / "d"), "--no-report")
    assert fixed.code == 0
    assert len(json.loads(fixed.out)["downloaded"]) == 5


def test_batches_lists_and_cancel_stops(logged_in: FakeModamoda, cli: Cli, photos: Path) -> None:
    assert "No batches yet" in cli("batches").out
    assert cli("upload", str(photos), "--name", "Autumn", "--no-seal").code == 0
    listing = cli("batches")
    assert listing.code == 0
    assert "Autumn" in listing.out
    assert "open" in listing.out
    assert "0/5" in listing.out
    batch_id = json.loads(cli("--json", "batches").out)["items"][0]["id"]
    cancelled = cli("cancel", batch_id)
    assert cancelled.code == 0
    assert "cancelled: 0 succeeded, 5 cancelled" in cancelled.out
    assert cli("watch", batch_id).code == 1  # finished, but not every image was processed


def test_result_names() -> None:
    assert (
        result_name(
            {"result_url": "https://b.s3.amazonaws.com/results/t/b/SKU%201-ghost.png?X-Amz-Signature=1"}
        )
        == "SKU 1-ghost.png"
    )
    assert result_name({"result_key": "results/t/b/Ärmel-on-model.webp"}) == "Ärmel-on-model.webp"
    assert result_name({"result_url": None}) is None
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name(".hidden") == "hidden"
    assert safe_name("a\\b\\c.png") == "c.png"
