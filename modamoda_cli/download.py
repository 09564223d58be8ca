"""``modamoda download BATCH DEST``: the batch's results (named ``{SKU or file stem}-{mode}.{ext}`` as the service
stores them) and its report (``report.csv``, ``report.json``) into a folder; files already there are skipped, so it
can run again while the batch is still going."""

from __future__ import annotations

import concurrent.futures as futures
import posixpath
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from modamoda_cli.api import ApiError, Cancelled, Client, CliError
from modamoda_cli.ui import Ui
from modamoda_cli.watch import finished

_UNSAFE = re.compile(r"[^\w .@+=,()-]+")


@dataclass
class DownloadSummary:
    batch_id: str
    status: str = ""
    finished: bool = False
    downloaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "status": self.status,
            "finished": self.finished,
            "downloaded": self.downloaded,
            "already_there": self.existing,
            "failed": [{"file": f, "reason": r} for f, r in self.failed],
            "report": self.report,
            "bytes": self.bytes,
        }


def safe_name(name: str) -> str:
    """A plain file name (no folders, no leading dot) for any name the service gives."""
    base = posixpath.basename(name.replace("\\", "/"))
    cleaned = _UNSAFE.sub("_", base).strip().lstrip(".")
    return cleaned[:200] or "result"


def result_name(job: dict[str, Any]) -> str | None:
    """The name the service stored the result under: the last part of its key (``result_key`` or the pre-signed
    ``result_url``'s path), else None (then the download link's file name is used)."""
    key = job.get("result_key")
    if isinstance(key, str) and key:
        return safe_name(key)
    url = job.get("result_url")
    if isinstance(url, str) and url:
        path = unquote(urlparse(url).path)
        if path and not path.endswith("/"):
            return safe_name(path)
    return None


class Downloader:
    def __init__(self, client: Client, batch_id: str, dest: Path, ui: Ui, *, parallel: int = 4) -> None:
        self.client, self.batch_id, self.dest, self.ui, self.parallel = client, batch_id, dest, ui, parallel
        self.summary = DownloadSummary(batch_id)
        self._lock = threading.Lock()

    def run(self, *, report: bool = True) -> DownloadSummary:
        summary, client = self.summary, self.client
        if self.dest.exists() and not self.dest.is_dir():
            raise CliError(f"{self.dest} exists and is not a folder")
        batch = client.batch(self.batch_id)
        summary.status, summary.finished = str(batch.get("status") or ""), finished(batch)
        self.dest.mkdir(parents=True, exist_ok=True)

        jobs = [
            j for j in client.batch_jobs(self.batch_id, status="succeeded") if j.get("status") == "succeeded"
        ]
        todo: list[tuple[dict[str, Any], str | None]] = []
        taken: set[str] = set()
        for job in jobs:
            name = result_name(job)
            if name is not None:
                if name in taken:  # never two results into one file
                    stem, dot, ext = name.rpartition(".")
                    name = f"{stem or ext}-{str(job['id'])[:8]}{dot}{ext if stem else ''}"
                taken.add(name)
                if (self.dest / name).is_file():
                    summary.existing.append(name)
                    continue
            todo.append((job, name))
        self._fetch_all(todo, taken)

        if report:
            self._report(batch)
        if not summary.finished:
            self.ui.warn(
                f"batch {self.batch_id} is still {summary.status}: downloaded the results ready so far; run this again "
                "when it has finished (or add --wait) for the rest and the report"
            )
        summary.downloaded.sort()
        summary.existing.sort()
        summary.failed.sort()
        return summary

    def _fetch_all(self, todo: list[tuple[dict[str, Any], str | None]], taken: set[str]) -> None:
        if not todo:
            return
        progress = self.ui.progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        with progress:
            task = progress.add_task("downloading", total=len(todo))

            def one(job: dict[str, Any], name: str | None) -> None:
                self._fetch_result(job, name, taken)
                progress.advance(task)

            pool = futures.ThreadPoolExecutor(
                max_workers=max(1, self.parallel), thread_name_prefix="download"
            )
            running = {pool.submit(one, job, name): (job, name) for job, name in todo}
            try:
                pending = set(running)
                while pending:
                    done, pending = futures.wait(pending, timeout=0.2, return_when=futures.FIRST_COMPLETED)
                    for future in done:
                        error = future.exception()
                        if error is None or isinstance(error, Cancelled):
                            continue
                        job, name = running[future]
                        label = name or str(job.get("filename") or job.get("id"))
                        reason = error.short() if isinstance(error, ApiError) else str(error)
                        self.summary.failed.append((label, reason))
                        self.ui.warn(f"failed {label}: {reason}")
            except KeyboardInterrupt:
                self.client.cancel.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)

    def _fetch_result(self, job: dict[str, Any], name: str | None, taken: set[str]) -> None:
        url = job.get("result_url") if name is not None else None
        if name is None or not url:
            link = self.client.download_link(str(job["id"]))
            url = str(link["url"])
            if name is None:
                name = safe_name(str(link.get("filename") or f"{job['id']}"))
                with self._lock:
                    if name in taken:
                        stem, dot, ext = name.rpartition(".")
                        name = f"{stem or ext}-{str(job['id'])[:8]}{dot}{ext if stem else ''}"
                    taken.add(name)
                if (self.dest / name).is_file():
                    with self._lock:
                        self.summary.existing.append(name)
                    return
        what = f"downloading {name}"
        try:
            size = self.client.fetch(str(url), self.dest / name, what)
        except ApiError as exc:
            if exc.status not in (400, 403, 404):  # not an expired inline URL: give up
                raise
            link = self.client.download_link(str(job["id"]))
            size = self.client.fetch(str(link["url"]), self.dest / name, what)
        with self._lock:
            self.summary.downloaded.append(name)
            self.summary.bytes += size

    def _report(self, batch: dict[str, Any]) -> None:
        report = batch.get("report")
        if not isinstance(report, dict):
            return
        for key, name in (("csv_url", "report.csv"), ("json_url", "report.json")):
            url = report.get(key)
            if not url:
                continue
            target = self.dest / name
            if target.is_file():
                self.summary.existing.append(name)
                continue
            try:
                self.summary.bytes += self.client.fetch(str(url), target, f"downloading {name}")
                self.summary.report.append(name)
            except ApiError as exc:
                self.summary.failed.append((name, exc.short()))
                self.ui.warn(f"failed {name}: {exc.short()}")
