"""The studio engine's Lambda function measured in-process: seconds and peak memory per invocation, and the memory
size, timeout and GB-seconds per image they give.

    python -m bench.studio_lambda               # the sample photos, a 12 MP and a 50 MP photo, one core
    python -m bench.studio_lambda --cores 2     # as a function with two vCPUs (3,538 MB) would run it

What runs is the function itself (``modamoda_inference.lambda_handler.StudioFunction``, built as its handler builds
it: the studio engine loaded without weights, the request document as the state machine sends it), in a child
process pinned to ``--cores`` CPUs (Lambda gives a function one vCPU at 1,769 MB and CPU in proportion to memory),
with the thread pools of OpenCV and the BLAS limited to the same number. S3 is an in-memory stand-in, so the
numbers are the function's own work: reading the photo, decoding it, the engine, encoding the 2000 px packshot,
writing it and the metadata document. Each photo set runs in a child of its own, so its peak resident memory
(VmHWM: Python, the libraries, the engine and one photo) is its own:

* ``samples``: the photos of ``samples/garments/`` (what ``make demo`` sends);
* ``12 MP``: a labelled studio scene of :mod:`bench.studio_data` drawn at 1500x2000 and resampled to 3000x4000,
  saved as a JPEG (as ``bench/studio_speed.py`` makes its photos);
* ``50 MP``: the same at 6123x8164, the most pixels the pipeline accepts (``MAX_IMAGE_PIXELS``): the memory size
  must hold it.

Reported per set: the cold start (loading the engine, as a new execution environment does before its first
request: imports excluded, they are the same for every environment) and the first invocation, the warm
invocations (median, and the handler's own split: fetch, decode, engine, encode), and the peak memory. Then the
sizing: memory = the larger of one vCPU (1,769 MB: the engine runs on one core; less memory slows it in
proportion and saves no GB-s) and 1.5x the 50 MP set's peak; timeout = 10x the slowest cold invocation, at least
30 s; GB-s per image = memory x the warm seconds, priced at Lambda's arm64 rate (an estimate: measured on this
machine's cores, not on Graviton; S3 round trips in AWS add about 0.1-0.3 s that are not in these numbers).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.studio_speed import _median, _rss_mib

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples" / "garments"
ONE_VCPU_MB = 1769  # Lambda: "at 1,769 MB, a function has the equivalent of one vCPU"
MEMORY_HEADROOM = 1.5
TIMEOUT_FACTOR = 10
MIN_TIMEOUT_S = 30
# us-east-1 list prices for arm64 functions (first 7.5 billion GB-s a month), and per request; estimates
ARM64_USD_PER_GB_S = 0.0000133334
USD_PER_REQUEST = 0.0000002
BUCKET = "bench-studio"
JOB_ID = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f61"


def _pin(cores: int) -> list[int]:
    """Pin this process to ``cores`` CPUs (the first it may use); returns them ([] where unsupported)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))[: max(1, cores)]
        os.sched_setaffinity(0, set(cpus))
        return cpus
    except (AttributeError, OSError):
        return []


class MemoryS3:
    """The two S3 calls the function makes, on a dict: what it reads and writes, without the network."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        data = self.objects[(Bucket, Key)]
        return {"Body": io.BytesIO(data), "ContentLength": len(data)}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str = "") -> dict[str, Any]:
        self.objects[(Bucket, Key)] = bytes(Body)
        return {}


def _worker(files: list[str], repeat: int, cores: int) -> dict[str, Any]:
    """Runs in the child: the function on each photo file; returns the numbers."""
    cpus = _pin(cores)
    import cv2

    cv2.setNumThreads(cores)
    sys.path.insert(0, str(REPO / "inference_container"))
    from modamoda_inference import lambda_handler
    from modamoda_inference.engines import load_engines
    from modamoda_inference.s3io import S3ImageSource, S3MetadataWriter, S3ObjectWriter
    from modamoda_inference.server import InferenceService
    from PIL import Image

    s3 = MemoryS3()
    no_weights = Path(tempfile.gettempdir()) / "bench-studio-lambda-no-model"
    rss_imported = _rss_mib()
    t0 = time.perf_counter()
    engines = load_engines(list(lambda_handler.ENGINES), no_weights)
    service = InferenceService(
        engines,
        image_source=S3ImageSource(s3),
        metadata_writer=S3MetadataWriter(s3),
        model_dir=no_weights,
    )
    function = lambda_handler.StudioFunction(
        service, f"s3://{BUCKET}/inference/output", f"s3://{BUCKET}/inference/failure", S3ObjectWriter(s3)
    )
    init_s = time.perf_counter() - t0

    # a scene's options (the mannequin a shop would name) are in a JSON file beside its photo
    scene_options = [
        json.loads(Path(name).with_suffix(".json").read_text())
        if Path(name).with_suffix(".json").is_file()
        else {}
        for name in files
    ]

    def event(index: int) -> dict[str, Any]:
        key = f"uploads/bench/{index}.jpg"
        options = {
            "preset": "square",
            "background": "#FFFFFF",
            "output_format": "png",
            **scene_options[index],
        }
        return {
            "job_id": JOB_ID,
            "mode": "ghost",
            "image": {"s3_uri": f"s3://{BUCKET}/{key}", "version_id": None},
            "options": options,
            "metadata_s3_uri": f"s3://{BUCKET}/inference/metadata/{JOB_ID}.json",
        }

    for index, name in enumerate(files):
        s3.objects[(BUCKET, f"uploads/bench/{index}.jpg")] = Path(name).read_bytes()
    pixels = []
    for name in files:
        with Image.open(name) as image:
            pixels.append(image.width * image.height)

    t0 = time.perf_counter()
    first = function(event(0))
    cold_s = time.perf_counter() - t0
    runs: list[dict[str, Any]] = []
    for _ in range(repeat):
        for index in range(len(files)):
            t0 = time.perf_counter()
            answer = function(event(index))
            seconds = time.perf_counter() - t0
            runs.append({"photo": index, "seconds": seconds, "timings_ms": answer["timings_ms"]})
    return {
        "cpus": cpus,
        "photos": len(files),
        "megapixels": [round(p / 1e6, 2) for p in pixels],
        "init_s": init_s,
        "cold_s": cold_s,
        "cold_timings_ms": first["timings_ms"],
        "runs": runs,
        "rss_imported_mib": rss_imported,
        "peak_rss_mib": _rss_mib(),
    }


def _spawn(files: list[str], repeat: int, cores: int) -> dict[str, Any]:
    threads = str(cores)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads,
        "PYTHONPATH": str(REPO),
    }
    cmd = [
        sys.executable,
        "-m",
        "bench.studio_lambda",
        "--worker",
        "--repeat",
        str(repeat),
        "--cores",
        str(cores),
        *files,
    ]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def scene_jpeg(path: Path, megapixels: float, index: int = 4) -> Path:
    """A labelled studio scene at ``megapixels`` (3:4), drawn at half size and resampled, saved as a JPEG (and
    its request options, e.g. the mannequin's colour, as JSON beside it)."""
    from PIL import Image

    from bench.studio_data import build_image, scaled

    width = math.floor((megapixels * 1e6 * 3 / 4) ** 0.5)
    height = math.floor(width * 4 / 3)  # floor: 50 MP stays within the pipeline's limit
    item = scaled(build_image(index, (max(16, width // 2), max(16, height // 2)), 7), (width, height))
    Image.fromarray(item.rgb).save(path, format="JPEG", quality=92)
    path.with_suffix(".json").write_text(json.dumps(item.options))
    return path


def summarise(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    runs = raw["runs"]
    split = {
        part: _median([r["timings_ms"][part] for r in runs]) / 1000
        for part in ("fetch", "decode", "engine", "encode", "total")
    }
    return {
        "set": name,
        "photos": raw["photos"],
        "megapixels": raw["megapixels"],
        "init_s": raw["init_s"],
        "cold_s": raw["cold_s"],
        "warm_s": _median([r["seconds"] for r in runs]),
        "warm_max_s": max(r["seconds"] for r in runs),
        "split_s": split,
        "peak_rss_mib": raw["peak_rss_mib"],
        "rss_imported_mib": raw["rss_imported_mib"],
        "cpus": raw["cpus"],
    }


def sizing(sets: list[dict[str, Any]], cores: int = 1) -> dict[str, Any]:
    """Memory, timeout and cost per image from the measured sets (the rules in the module doc)."""
    largest = max(sets, key=lambda s: max(s["megapixels"]))
    memory = max(ONE_VCPU_MB * cores, math.ceil(largest["peak_rss_mib"] * MEMORY_HEADROOM))
    slowest = max(s["init_s"] + s["cold_s"] for s in sets)
    timeout = max(MIN_TIMEOUT_S, math.ceil(slowest * TIMEOUT_FACTOR))
    per_set = {}
    for s in sets:
        gb_s = memory / 1024 * s["warm_s"]
        per_set[s["set"]] = {
            "gb_s": gb_s,
            "usd_per_1000": 1000 * (gb_s * ARM64_USD_PER_GB_S + USD_PER_REQUEST),
        }
    return {
        "memory_mb": memory,
        "timeout_s": timeout,
        "largest_set": largest["set"],
        "slowest_cold_s": slowest,
        "per_set": per_set,
    }


def run(
    repeat: int = 2, cores: int = 1, megapixels: tuple[float, ...] = (12.0, 50.0), samples: bool = True
) -> dict[str, Any]:
    """Make the photos, measure each set in its own pinned child; returns the sets and the sizing."""
    sets: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="studio-lambda-") as tmp:
        if samples:
            files = sorted(str(p) for p in SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
            sets.append(summarise("samples", _spawn(files, repeat, cores)))
        for mp in megapixels:
            photo = scene_jpeg(Path(tmp) / f"scene-{mp:g}mp.jpg", mp)
            sets.append(summarise(f"{mp:g} MP", _spawn([str(photo)], repeat, cores)))
    return {"cores": cores, "repeat": repeat, "sets": sets, "sizing": sizing(sets, cores)}


def print_report(r: dict[str, Any]) -> None:
    print(
        f"studio Lambda function in-process, {r['cores']} core(s), S3 in memory, {r['repeat']} warm passes\n"
    )
    print(
        f"{'set':9} {'MP':>11} {'init s':>7} {'cold s':>7} {'warm s':>7} {'max s':>6}  "
        f"{'fetch':>6} {'decode':>6} {'engine':>6} {'encode':>6}  {'peak RSS':>9}"
    )
    for s in r["sets"]:
        mp = s["megapixels"]
        mps = f"{min(mp):g}-{max(mp):g}" if len(mp) > 1 else f"{mp[0]:g}"
        sp = s["split_s"]
        print(
            f"{s['set']:9} {mps:>11} {s['init_s']:7.2f} {s['cold_s']:7.2f} {s['warm_s']:7.2f} "
            f"{s['warm_max_s']:6.2f}  {sp['fetch']:6.2f} {sp['decode']:6.2f} {sp['engine']:6.2f} "
            f"{sp['encode']:6.2f}  {s['peak_rss_mib']:6.0f} MiB"
        )
    z = r["sizing"]
    print(
        f"\nmemory {z['memory_mb']} MB (max of one vCPU per core, {ONE_VCPU_MB} MB x {r['cores']}, and "
        f"{MEMORY_HEADROOM}x the {z['largest_set']} peak); timeout {z['timeout_s']} s "
        f"({TIMEOUT_FACTOR}x the slowest cold start + first invocation, {z['slowest_cold_s']:.2f} s)"
    )
    for name, c in z["per_set"].items():
        print(
            f"  {name:9} {c['gb_s']:6.2f} GB-s per image  ~${c['usd_per_1000']:.3f} per 1,000 images "
            f"(arm64 ${ARM64_USD_PER_GB_S}/GB-s + requests; estimate)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="warm passes over each set")
    parser.add_argument("--cores", type=int, default=1, help="CPUs (vCPUs of the function) to run on")
    parser.add_argument("--megapixels", type=float, nargs="*", default=[12.0, 50.0])
    parser.add_argument("--no-samples", action="store_true", help="skip samples/garments")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.files, args.repeat, args.cores)))
        return 0
    results = run(args.repeat, args.cores, tuple(args.megapixels), not args.no_samples)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
