"""The ``modamoda`` command against the real local stack: sign in through the web app's /config.json and its Cognito
endpoint, upload a folder of 5 photos with a manifest (SKUs) as a batch, watch it finish, download the results
(named by SKU) and the batch report."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from local.stack import LocalSettings, LocalStack
from tests.modamoda_cli.conftest import Cli

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "garments"
PASSWORD = "Cli-Test-Passw0rd"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(LocalSettings()) as running:
        yield running


def small_photos(folder: Path, count: int = 5) -> list[str]:
    """Small copies of the sample garment photos (the studio engine is quick on them)."""
    samples = sorted(SAMPLES.glob("*.jpg"))
    folder.mkdir(parents=True)
    names = []
    for i in range(count):
        with Image.open(samples[i % len(samples)]) as source:
            image = source.convert("RGB")
        image.thumbnail((320, 320))
        name = f"photo-{i + 1}.jpg"
        image.save(folder / name, format="JPEG", quality=90)
        names.append(name)
    return names


def test_login_upload_watch_download(
    stack: LocalStack, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_settings: Path
) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@example.com"
    stack.sign_up(email, PASSWORD)
    monkeypatch.setenv("MODAMODA_PASSWORD", PASSWORD)
    login = cli("login", "--web-url", stack.web_url, "--email", email)
    assert login.code == 0, login.err
    assert f"Logged in as {email}" in login.out
    balance = json.loads(cli("--json", "credits").out)["balance"]
    assert balance >= 5

    folder = tmp_path / "spring"
    names = small_photos(folder)
    (folder / "notes.txt").write_text("not a photo")
    manifest = {"files": [{"file": name, "sku": f"SKU-{i + 1:03d}"} for i, name in enumerate(names)]}
    (folder / "manifest.json").write_text(json.dumps(manifest))

    upload = cli("--json", "upload", str(folder), "--name", "Spring drop", "--parallel", "4")
    assert upload.code == 0, upload.err
    summary = json.loads(upload.out)
    batch_id = summary["batch_id"]
    assert sorted(summary["uploaded"]) == names
    assert summary["manifest"] == "manifest.json"
    assert summary["skipped"] == [{"file": "notes.txt", "reason": summary["skipped"][0]["reason"]}]
    assert summary["sealed"] is True

    again = cli("--json", "upload", str(folder))  # resumable: nothing left to send
    assert again.code == 0, again.err
    assert json.loads(again.out)["uploaded"] == []

    watch = cli("--json", "watch", batch_id, "--interval", "0.5", "--timeout", "300")
    assert watch.code == 0, watch.out + watch.err
    batch = json.loads(watch.out)
    assert batch["status"] == "completed"
    assert batch["counts"]["succeeded"] == 5
    assert balance - json.loads(cli("--json", "credits").out)["balance"] == batch["credits_spent"]

    dest = tmp_path / "results"
    download = cli("--json", "download", batch_id, str(dest))
    assert download.code == 0, download.err
    got = json.loads(download.out)
    assert got["report"] == ["report.csv", "report.json"]
    assert len(got["downloaded"]) == 5
    for i in range(1, 6):
        matches = list(dest.glob(f"SKU-{i:03d}-ghost.*"))
        assert len(matches) == 1, sorted(p.name for p in dest.iterdir())
        with Image.open(matches[0]) as result:
            result.load()
            assert result.width > 0
    report = json.loads((dest / "report.json").read_text())
    assert report["consistency"]["count"] == 5
    assert len(report["files"]) == 5
    rows = list(csv.DictReader(io.StringIO((dest / "report.csv").read_text())))
    assert sorted(r["sku"] for r in rows) == [f"SKU-{i:03d}" for i in range(1, 6)]
    for row in rows:  # each result is where the report says, under the name the service gave it
        assert row["status"] == "succeeded"
        assert (dest / row["result_key"].rsplit("/", 1)[-1]).is_file()

    rerun = cli("--json", "download", batch_id, str(dest))
    assert rerun.code == 0
    assert json.loads(rerun.out)["downloaded"] == []
    assert len(json.loads(rerun.out)["already_there"]) == 7

    listed = json.loads(cli("--json", "batches").out)["items"]
    assert [b["id"] for b in listed] == [batch_id]
    assert cli("logout").code == 0


def test_api_key_login_against_the_local_stack(stack: LocalStack, cli: Cli) -> None:
    tokens = stack.sign_up(f"cli-key-{uuid.uuid4().hex[:10]}@example.com", PASSWORD)
    created = requests.post(
        f"{stack.api_url}/v1/account/api-keys",
        json={"name": "shop sync"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    login = cli("login", "--web-url", stack.web_url, "--api-key", key)
    assert login.code == 0, login.err
    assert f"Logged in as API key {created.json()['id']}" in login.out
    assert cli("credits").code == 0
    refused = cli("login", "--web-url", stack.web_url, "--api-key", key[:-4] + "XXXX")
    assert refused.code == 1
    assert "This API key is not valid" in refused.err
