"""``make demo``: the main job, locally, on embedded defaults — as a customer would use it.

Sign up (Cognito JWT) → welcome credits → for each sample garment photo: request a pre-signed POST, upload it →
the S3 event (EventBridge → SQS) starts the state machine file on moto's interpreter → validate → reserve credits →
the studio engine's Lambda function (ghost work on the CPU; on-model work would go to the inference container behind
the SageMaker async adapter → SNS → notifier) → record the result and capture → the result is downloaded to out/.
Each job's line says which path made it: "studio engine on CPU (Lambda)" or "GPU endpoint".

``--serve`` (``make serve``) then keeps the stack up for a browser: the PWA, signed in as the demo user, on fixed
ports (web 8787, API 8788 unless ``--web-port``/``--api-port`` say otherwise) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import signal
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from functions.common import presets
from local.client import CONTENT_TYPES, FINAL, ApiClient
from local.stack import ROOT, LocalSettings, LocalStack

SAMPLES = ROOT / "samples" / "garments"
STAGES = ("awaiting_upload", "queued", "validated", "processing", "succeeded")


def stage_seconds(stages: dict[str, str]) -> dict[str, float]:
    """Seconds from each stage to the next, from the job's first-reached timestamps."""
    times = [(s, datetime.fromisoformat(stages[s].replace("Z", "+00:00"))) for s in STAGES if s in stages]
    return {b: (tb - ta).total_seconds() for (_, ta), (b, tb) in itertools.pairwise(times)}


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = sorted(p for p in Path(args.samples).iterdir() if p.suffix.lower() in CONTENT_TYPES)
    if not samples:
        print(f"no sample photos in {args.samples}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    print("Modamoda local demo: no AWS account, no GPU, no network")
    settings = LocalSettings(
        log_level="DEBUG" if args.verbose else "WARNING",
        container_port=args.container_port,
        api_port=args.api_port if args.api_port is not None else (8788 if args.serve else 0),
        web_port=args.web_port if args.web_port is not None else (8787 if args.serve else 0),
    )
    with LocalStack(settings) as stack:
        boot = ", ".join(f"{k} {v:.2f}s" for k, v in stack.timer.marks.items())
        print(f"  local stack up in {time.perf_counter() - started:.1f}s ({boot})")
        print(f"  HTTP API {stack.api_url}  |  inference container {stack.container_url}")
        print(f"  PWA {stack.web_url}  |  demo user {args.email}  password {args.password}")
        tokens = stack.sign_up(args.email, args.password)
        client = ApiClient(stack.api_url, tokens["access_token"])
        me = client.me()
        before = me["balance"]
        print(f"  signed up {args.email} (Cognito JWT) -> tenant {me['tenant_id']}, {before} welcome credits")
        options = {"preset": args.preset, "background": args.background, "output_format": "png"}
        submitted: dict[str, tuple[Path, float]] = {}
        for path in samples:
            job_id = client.upload(
                path.name, path.read_bytes(), CONTENT_TYPES[path.suffix.lower()], "ghost", options
            )
            submitted[job_id] = (path, time.perf_counter())
        print(
            f"  uploaded {len(submitted)} sample photo(s) by pre-signed POST; S3 events start the state machine"
        )
        results: dict[str, tuple[dict[str, Any], float]] = {}
        deadline = time.monotonic() + args.timeout
        while len(results) < len(submitted) and time.monotonic() < deadline:
            for job_id, (_, t0) in submitted.items():
                if job_id not in results:
                    job = client.job(job_id)
                    if job["status"] in FINAL:
                        results[job_id] = (job, time.perf_counter() - t0)
            time.sleep(0.1)
        after = client.me()["balance"]
        print()
        print(
            f"  {'job id':36}  {'sample':22} {'status':9} {'secs':>5}  {'path':29}  {'stage seconds':44} output"
        )
        failures = 0
        for job_id, (path, _) in sorted(submitted.items(), key=lambda kv: kv[1][0].name):
            if job_id not in results:
                failures += 1
                print(
                    f"  {job_id:36}  {path.name[:22]:22} {'timeout':9} {'-':>5}  not final after {args.timeout:.0f}s"
                )
                continue
            job, seconds = results[job_id]
            if job["status"] == "succeeded":
                target = out / f"{path.stem}-ghost.png"
                target.write_bytes(client.download(job))
                shown = str(target.relative_to(ROOT)) if target.is_relative_to(ROOT) else str(target)
            else:
                failures += 1
                shown = f"{job['error']['code']}: {job['error']['message']}" if job.get("error") else "-"
            stages = " ".join(f"{k}={v:.2f}" for k, v in stage_seconds(job["stages"]).items())
            where = stack.engine_path_of(job_id) or "-"
            print(
                f"  {job_id:36}  {path.name[:22]:22} {job['status']:9} {seconds:5.2f}  {where:29}  {stages:44} {shown}"
            )
        done = len(results) - sum(1 for j, _ in results.values() if j["status"] != "succeeded")
        print()
        print(f"  credits: {before} before, {after} after ({before - after} spent on {done} image(s))")
        print(f"  {done}/{len(samples)} images in {out}  |  total {time.perf_counter() - started:.1f}s")
        if stack.pump_errors:
            print(f"  event pump errors: {stack.pump_errors}", file=sys.stderr)
            failures += 1
        if args.serve:
            serve(stack, args.email, args.password)
        else:
            print("  the PWA above stops with the demo: `make serve` runs the demo and keeps it up at")
            print("  http://127.0.0.1:8787/ until Ctrl-C")
    return 0 if failures == 0 else 1


def serve(stack: LocalStack, email: str, password: str) -> None:
    """Keep the stack up for a browser until Ctrl-C."""
    print()
    print(f"  Open {stack.web_url} and sign in as {email} / {password} (or sign up: no e-mail is sent).")
    print(f"  API {stack.api_url}; test checkout pays with a test card; Ctrl-C stops the stack.")
    if not (stack.web.config.app_dir / "index.html").is_file():
        print(f"  note: {stack.web.config.app_dir}/index.html is missing, so there is no PWA to serve yet")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping takes a few seconds; let it finish cleanly
        print("  stopping")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "out"))
    parser.add_argument("--samples", default=str(SAMPLES))
    parser.add_argument("--email", default="demo@modamoda.example")
    parser.add_argument("--password", default="Demo-Passw0rd-2026")
    parser.add_argument("--preset", default="square", choices=["square", "amazon", "shopify", "portrait_4_5"])
    parser.add_argument("--background", default="#FFFFFF")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--container-port", type=int, default=0, help="inference container port (0: any free)"
    )
    parser.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="local HTTP API port (0: any free; default 0, 8788 with --serve)",
    )
    parser.add_argument(
        "--web-port",
        type=int,
        default=None,
        help="PWA/local web server port (0: any free; default 0, 8787 with --serve)",
    )
    parser.add_argument(
        "--serve", action="store_true", help="after the demo, keep the stack up for a browser until Ctrl-C"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    refusal = presets.background_refusal(args.preset, args.background)  # the API would refuse every photo
    if refusal:
        parser.error(refusal)
    warnings.filterwarnings("ignore", message="No application metrics to publish")  # EMF off locally
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s %(message)s"
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
