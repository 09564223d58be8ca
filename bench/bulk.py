"""Bulk throughput through the local stack with the studio engine, and what the orchestration costs per image.

    python -m bench.bulk                 # 40 photos of 1200x1600, about two minutes on 2 cores
    python -m bench.bulk --images 200 --size 800

Two measurements in the same run, on the same photos:

* **engine (baseline)**: each photo POSTed straight to the inference container's ``/invocations`` (decode, studio
  engine, encode), one at a time, as the SageMaker async endpoint feeds it (one invocation per instance at a time).
* **bulk**: the customer's path — a batch created through the HTTP API, the photos uploaded by pre-signed POST into
  the drop folder with a manifest, S3 events → start queue → state machine (validate, reserve, invoke) → the async
  adapter → the same container → SNS → notifier (result copy, capture, webhooks outbox) → batch report — timed from
  the first upload to the batch's completion.

Printed: images per minute for both, and the orchestration overhead per image (bulk seconds per image minus engine
seconds per image) as a ratio to the engine time. The stack pipelines: while the container works on one photo, the
next ones are validated and reserved, so this is the wall time orchestration adds per image, not its CPU time. The local stack emulates AWS in-process (moto, one Python
process sharing the machine's cores with the engine), so the overhead here is an upper bound of the framework's own
work, not a measurement of AWS latencies.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import time
import uuid
import warnings
from typing import Any

import requests
from PIL import Image

from local.client import ApiClient
from local.stack import LocalSettings, LocalStack

PASSWORD = "Bench-Passw0rd-2026"  # noqa: S105 - a throwaway user of the in-process Cognito


def photos(count: int, size: int) -> list[tuple[str, bytes]]:
    """Garment photos from the labelled scene generator the studio benchmarks use (deterministic). Scenes with a
    mannequin are skipped: the bulk drop sends no mannequin option, and the engine rightly refuses a photo whose
    form it was not told to remove (this bench measures throughput, not refusals)."""
    from bench.studio_data import build_image

    out: list[tuple[str, bytes]] = []
    i = -1
    while len(out) < count:
        i += 1
        scene = build_image(i, size=(size * 3 // 4, size))
        if scene.options.get("mannequin"):
            continue
        buffer = io.BytesIO()
        Image.fromarray(scene.rgb).save(buffer, format="JPEG", quality=90)
        out.append((f"garment-{len(out):04d}.jpg", buffer.getvalue()))
    return out


def engine_baseline(container_url: str, files: list[tuple[str, bytes]]) -> list[float]:
    seconds = []
    for _, data in files:
        body = json.dumps(
            {
                "job_id": str(uuid.uuid4()),
                "mode": "ghost",
                "image": {"b64": base64.b64encode(data).decode()},
                "options": {"preset": "square", "output_format": "png"},
            }
        )
        started = time.perf_counter()
        response = requests.post(
            f"{container_url}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=300,
        )
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
    return seconds


def run_batch(
    stack: LocalStack, client: ApiClient, files: list[tuple[str, bytes]]
) -> tuple[float, dict[str, Any]]:
    batch = client.request("POST", "/v1/batches", json={"name": "bench", "defaults": {"mode": "ghost"}})
    manifest = {"files": [{"file": name, "sku": f"SKU-{i:04d}"} for i, (name, _) in enumerate(files)]}
    started = time.perf_counter()
    for name, data in [("manifest.json", json.dumps(manifest).encode()), *files]:
        content_type = "application/json" if name.endswith(".json") else "image/jpeg"
        slot = client.request(
            "POST",
            f"/v1/batches/{batch['id']}/uploads",
            json={"filename": name, "content_type": content_type},
        )
        response = requests.post(
            slot["upload"]["url"],
            data=slot["upload"]["fields"],
            files={"file": (name, data, content_type)},
            timeout=120,
        )
        response.raise_for_status()
    while True:
        view = client.request("GET", f"/v1/batches/{batch['id']}")
        if view["status"] in {"completed", "stopped", "cancelled"}:
            return time.perf_counter() - started, view
        time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--size", type=int, default=1600, help="photo height in pixels (width is 3/4 of it)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="No application metrics to publish")  # EMF off locally
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    files = photos(args.images, args.size)
    print(
        f"bulk benchmark: {len(files)} photos of {args.size * 3 // 4}x{args.size}, studio engine, local stack"
    )
    with LocalStack(LocalSettings(log_level="ERROR")) as stack:
        engine = engine_baseline(stack.container_url, files)
        tokens = stack.sign_up("bench@modamoda.example", PASSWORD)
        client = ApiClient(stack.api_url, tokens["access_token"], timeout=60)
        tenant = client.me()["tenant_id"]
        from functions.common import credits, db

        with db.transaction(tenant) as conn:  # enough credits for the whole batch (an operator's grant)
            credits.grant(conn, tenant, len(files), f"bench-grant-{tenant}", "benchmark")
        seconds, view = run_batch(stack, client, files)
    counts = view["counts"]
    if counts["succeeded"] != len(files):
        print(f"  the batch did not complete every photo: {counts}", file=sys.stderr)
        return 1
    engine_each = statistics.fmean(engine)
    bulk_each = seconds / len(files)
    overhead = bulk_each - engine_each
    print(f"  engine (baseline): {60 / engine_each:7.1f} images/min  ({engine_each:.3f} s per image, serial)")
    print(
        f"  bulk (local stack): {60 / bulk_each:6.1f} images/min  ({bulk_each:.3f} s per image, {seconds:.1f} s)"
    )
    print(
        f"  orchestration overhead: {overhead:.3f} s per image = {overhead / engine_each:.2f} x engine time"
    )
    print(f"  credits spent: {view['credits_spent']} for {counts['succeeded']} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
