"""A small client of the Modamoda HTTP API (what the PWA and shop tools do): upload through the pre-signed POST,
follow the job, download the result."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from functions.common.models import FINAL_STATUSES
from modamoda_cli.upload import EXTENSIONS

FINAL = FINAL_STATUSES
CONTENT_TYPES = EXTENSIONS  # photo file extensions → the content types the API accepts (the CLI's table)


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any, what: str) -> None:
        super().__init__(f"{what} → HTTP {status}: {body}")
        self.status, self.body = status, body


@dataclass
class ApiClient:
    base_url: str
    token: str
    timeout: float = 30.0

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.base_url}{path}",
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {self.token}"},
            **kwargs,
        )
        body = response.json() if response.content else None
        if response.status_code >= 400:
            raise ApiError(response.status_code, body, f"{method} {path}")
        return body

    def me(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/me"))

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/jobs/{job_id}"))

    def upload(
        self,
        filename: str,
        data: bytes,
        content_type: str,
        mode: str = "ghost",
        options: dict[str, Any] | None = None,
    ) -> str:
        """Create the job and upload its photo; returns the job id (processing starts on the S3 event)."""
        created = self.request(
            "POST",
            "/v1/uploads",
            json={"filename": filename, "content_type": content_type, "mode": mode, "options": options or {}},
        )
        post = created["upload"]
        response = requests.post(
            post["url"],
            data=post["fields"],
            files={"file": (filename, data, content_type)},
            timeout=max(self.timeout, 60),
        )
        if response.status_code not in (200, 201, 204):
            raise ApiError(response.status_code, response.text[:500], f"upload {filename}")
        return str(created["job_id"])

    def wait(self, job_id: str, timeout: float = 120.0, interval: float = 0.1) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in FINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(interval)

    def download(self, job: dict[str, Any]) -> bytes:
        if job["status"] != "succeeded" or not job.get("result_url"):
            raise ValueError(f"job {job['id']} has no result ({job['status']})")
        response = requests.get(job["result_url"], timeout=max(self.timeout, 60))
        response.raise_for_status()
        return response.content
