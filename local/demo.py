"""``make demo``: the main job, locally, on embedded defaults — as a customer would use it.

Sign up (Cognito JWT) → welcome credits → for each sample garment photo: request a pre-signed POST, upload it →
the S3 event starts the state machine file on moto's interpreter → validate → reserve → the inference
container's studio engine (via the SageMaker async adapter) → notifier → capture → download the result to out/.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from local.stack import ROOT, LocalSettings, LocalStack

SAMPLES = ROOT / "samples" / "garments"
FINAL = {"succeeded", "failed", "rejected"}
STAGES = ("awaiting_upload", "queued", "validated", "processing", "succeeded")


def _api(stack: LocalStack, token: str, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(method, f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {token}"},
                                timeout=30, **kwargs)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path} → {response.status_code}: {response.text}")
    return response.json()


def _stage_seconds(stages: dict[str, str]) -> dict[str, float]:
    times = [(s, datetime.fromisoformat(stages[s].replace("Z", "+00:00"))) for s in STAGES if s in stages]
    return {f"{a}→{b}": (tb - ta).total_seconds() for (a, ta), (b, tb) in zip(times, times[1:], strict=False)}


def upload_and_process(stack: LocalStack, token: str, path: Path, mode: str, options: dict[str, Any]) -> dict[str, Any]:
    content_type = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}[
        path.suffix.lower()]
    created = _api(stack, token, "POST", "/v1/uploads",
                   json={"filename": path.name, "content_type": content_type, "mode": mode, "options": options})
    post = created["upload"]
    with path.open("rb") as fh:
        response = requests.post(post["url"], data=post["fields"], files={"file": (path.name, fh, content_type)},
                                 timeout=60)
    if response.status_code not in (200, 201, 204):
        raise RuntimeError(f"upload of {path.name} failed: {response.status_code} {response.text[:200]}")
    return {"job_id": created["job_id"], "file": path.name, "started": time.perf_counter()}


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    if not samples:
        print(f"no sample photos in {SAMPLES}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    print("Modamoda local demo — no AWS account, no GPU, no network")
    with LocalStack(LocalSettings(log_level="DEBUG" if args.verbose else "WARNING")) as stack:
        boot = ", ".join(f"{k} {v:.2f}s" for k, v in stack.timer.marks.items())
        print(f"  local stack up in {time.perf_counter() - started:.1f}s ({boot})")
        print(f"  HTTP API: {stack.api_url}   inference container: {stack.container_url}")
        tokens = stack.sign_up(args.email, args.password)
        me = _api(stack, tokens["access_token"], "GET", "/v1/me")
        before = me["balance"]
        print(f"  signed up {me['email']} → tenant {me['tenant_id']} with {before} credits")
        options = {"preset": args.preset, "background": args.background, "output_format": "png"}
        submitted = [upload_and_process(stack, tokens["access_token"], p, "ghost", options) for p in samples]
        print(f"  uploaded {len(submitted)} sample photo(s); S3 events start the state machine")
        deadline = time.monotonic() + args.timeout
        results: list[dict[str, Any]] = []
        pending = list(submitted)
        while pending and time.monotonic() < deadline:
            for item in list(pending):
                job = _api(stack, tokens["access_token"], "GET", f"/v1/jobs/{item['job_id']}")
                if job["status"] in FINAL:
                    item["job"], item["seconds"] = job, time.perf_counter() - item["started"]
                    pending.remove(item)
                    results.append(item)
            time.sleep(0.1)
        after = _api(stack, tokens["access_token"], "GET", "/v1/me")["balance"]
        print()
        print(f"  {'job id':36}  {'sample':22} {'status':9} {'secs':>5}  stages (s)                         output")
        failures = 0
        for item in sorted(results, key=lambda r: r["file"]):
            job = item["job"]
            target = "-"
            if job["status"] == "succeeded" and job["result_url"]:
                data = requests.get(job["result_url"], timeout=60)
                data.raise_for_status()
                target_path = out / f"{Path(item['file']).stem}-ghost.png"
                target_path.write_bytes(data.content)
                target = str(target_path)
            else:
                failures += 1
                target = f"{job['error']['code']}: {job['error']['message']}" if job.get("error") else "-"
            stages = " ".join(f"{k.split('→')[1][:5]}={v:.2f}" for k, v in _stage_seconds(job["stages"]).items())
            print(f"  {job['id']:36}  {item['file'][:22]:22} {job['status']:9} {item['seconds']:5.2f}  {stages:34} {target}")
        for item in pending:
            failures += 1
            print(f"  {item['job_id']:36}  {item['file'][:22]:22} TIMEOUT   (not finished in {args.timeout}s)")
        spent = before - after
        print()
        print(f"  credits: {before} before, {after} after ({spent} spent for {len(results) - failures} image(s))")
        print(f"  total {time.perf_counter() - started:.1f}s; results in {out.resolve()}")
        if stack.pump_errors:
            print(f"  event pump errors: {stack.pump_errors}", file=sys.stderr)
            failures += 1
    return 0 if failures == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "out"))
    parser.add_argument("--email", default="demo@modamoda.example")
    parser.add_argument("--password", default="Demo-Passw0rd-2026")
    parser.add_argument("--preset", default="square", choices=["square", "amazon", "shopify", "portrait_4_5"])
    parser.add_argument("--background", default="#FFFFFF")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
