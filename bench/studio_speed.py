"""Speed of the studio engine on 12-megapixel photos on one CPU core, beside OpenCV GrabCut, with peak memory.

    python -m bench.studio_speed                  # 3 photos of 12 MP, engine and GrabCut, about a minute
    python -m bench.studio_speed --grabcut-full   # also GrabCut at the full 12 MP (minutes per photo)

The photos are labelled scenes of :mod:`bench.studio_data` (drawn at 1500x2000 and resampled to 3000x4000,
12 MP). Each method runs in its own child process pinned to one core (``sched_setaffinity``), with
``OMP_NUM_THREADS=1`` / ``OPENBLAS_NUM_THREADS=1`` and ``cv2.setNumThreads(1)``, so its peak resident memory
(``ru_maxrss``) is its own. Reported per method:

* **engine**: ``StudioEngine.run`` on the decoded photo — the whole ghost packshot (matte, mannequin, matting,
  hollow, 2000x2000 composite with contact shadow), not counting decoding or encoding, which are reported
  apart. *cold*: the first photo through an engine that was not warmed up (``load`` not called; the imports
  are done); *warm*: after ``load()`` — what the server does at start — the median of the other runs.
  ``matte only``: the segmentation (backdrop, mask, mannequin, matting) without the composite.
* **peak memory**: the child's VmHWM, with one photo (and, for GrabCut, its ground truth) loaded at a time.
* **GrabCut**: ``cv2.grabCut`` (5 iterations, rect from the ground-truth box grown by 3 %) at the engine's
  working resolution (1024 px long side) with the downscale and the mask's upscale to 12 MP — what a pipeline
  built on it would do; with ``--grabcut-full``, at the full 12 MP as well.

Ratios are against GrabCut measured in the same run. Target: under 1.5 s per 12 MP photo on one core.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 1.5
_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def _pin_one_core() -> int | None:
    """Pin this process to one CPU (the first it may use); returns it, or None where unsupported."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[0]})
        return cpus[0]
    except (AttributeError, OSError):
        return None


def _rss_mib() -> float:
    """Peak resident memory of this process so far, MiB: VmHWM (reset at exec, unlike ru_maxrss, which a
    child inherits from its parent at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _worker(method: str, files: list[str], repeat: int, megapixels: float) -> dict[str, Any]:
    """Runs in the child: measure ``method`` on the saved photos; returns the numbers as a dict."""
    cpu = _pin_one_core()
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    sys.path.insert(0, str(REPO / "inference_container"))
    t_import = time.perf_counter()
    from modamoda_inference.engines.studio import StudioEngine
    from modamoda_inference.imageio import decode_image, encode_image
    from modamoda_inference.schemas import parse_request
    from PIL import Image

    import_s = time.perf_counter() - t_import
    rss_ready = _rss_mib()

    def photo(f: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """One photo at a time: the peak memory is one photo's plus the method's."""
        with np.load(f) as data:
            return data["rgb"], data["alpha"], json.loads(str(data["options"]))

    first_rgb, _, _ = photo(files[0])
    out: dict[str, Any] = {"method": method, "cpu": cpu, "import_s": import_s, "photos": len(files)}
    out["megapixels"] = round(first_rgb.shape[0] * first_rgb.shape[1] / 1e6, 2)
    del first_rgb

    if method == "engine":
        engine = StudioEngine()
        runs: list[float] = []
        matte_runs: list[float] = []
        job = "0b5e4c1e-7d59-4a0e-9a7f-3c2b1d4e5f60"

        def prepared(f: str) -> tuple[Image.Image, Any]:
            rgb, _, options = photo(f)
            body = {
                "job_id": job,
                "mode": "ghost",
                "image": {"b64": "eA=="},
                "options": {**options, "preset": "amazon"},
            }
            return Image.fromarray(rgb), parse_request(body)

        image, request = prepared(files[0])
        rss_before = _rss_mib()
        t0 = time.perf_counter()
        engine.run(image, request)
        out["cold_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine.load(Path("/nonexistent"))
        out["load_s"] = time.perf_counter() - t0
        for _ in range(repeat):
            for f in files:
                image, request = prepared(f)
                t0 = time.perf_counter()
                result = engine.run(image, request)
                runs.append(time.perf_counter() - t0)
                rgb = np.asarray(image)
                t0 = time.perf_counter()
                engine.matte(rgb, mannequin=request.options.mannequin)
                matte_runs.append(time.perf_counter() - t0)
                del rgb
        out["warm_s"] = runs
        out["matte_s"] = matte_runs
        # decoding and encoding, apart: a JPEG of the photo in, the packshot out in each format
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=92)
        t0 = time.perf_counter()
        decode_image(buf.getvalue())
        out["decode_jpeg_s"] = time.perf_counter() - t0
        for fmt in ("png", "jpeg", "webp", "avif"):
            t0 = time.perf_counter()
            encode_image(result.image, fmt, 90)
            out[f"encode_{fmt}_s"] = time.perf_counter() - t0
        out["rss_before_mib"] = rss_before
    else:
        full = method == "grabcut_full"
        runs = []
        ious = []
        sys.path.insert(0, str(REPO))
        import bench.studio_quality as quality
        from bench.studio_data import LabelledImage
        from bench.studio_quality import WORK_LONG_SIDE, grabcut_alpha

        if full:
            quality.WORK_LONG_SIDE = 10**6  # no downscale
        rss_before = _rss_mib()
        for _ in range(1 if full else repeat):
            for f in files:
                rgb, alpha, options = photo(f)
                item = LabelledImage("photo", rgb, alpha, options, ())
                t0 = time.perf_counter()
                mask = grabcut_alpha(item)
                runs.append(time.perf_counter() - t0)
                g = alpha >= 0.5
                ious.append(float((mask.astype(bool) & g).sum() / ((mask.astype(bool) | g).sum())))
                del rgb, alpha, item, mask, g
        quality.WORK_LONG_SIDE = WORK_LONG_SIDE
        out["warm_s"] = runs
        out["iou"] = ious
        out["rss_before_mib"] = rss_before
    out["rss_ready_mib"] = rss_ready
    out["peak_rss_mib"] = _rss_mib()
    del megapixels
    return out


def _spawn(method: str, files: list[str], repeat: int, megapixels: float) -> dict[str, Any]:
    env = {**os.environ, **_THREAD_ENV, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "bench.studio_speed", "--worker", method, "--repeat", str(repeat), *files]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise RuntimeError(f"{method} worker failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def run(
    photos: int = 3, repeat: int = 2, megapixels: float = 12.0, grabcut_full: bool = False
) -> dict[str, Any]:
    """Generate the photos, measure every method in its own pinned process; returns the numbers."""
    import numpy as np

    from bench.studio_data import build_image, scaled

    width = round((megapixels * 1e6 * 3 / 4) ** 0.5)
    height = round(width * 4 / 3)
    results: dict[str, Any] = {"width": width, "height": height, "photos": photos}
    with tempfile.TemporaryDirectory(prefix="studio-speed-") as tmp:
        files = []
        for i in range(photos):
            item = scaled(
                build_image(i * 3 + 1, (max(16, width // 2), max(16, height // 2)), 7), (width, height)
            )
            path = Path(tmp) / f"photo{i}.npz"
            np.savez(path, rgb=item.rgb, alpha=item.alpha, options=json.dumps(item.options))
            files.append(str(path))
        results["engine"] = _spawn("engine", files, repeat, megapixels)
        results["grabcut"] = _spawn("grabcut", files, repeat, megapixels)
        if grabcut_full:
            results["grabcut_full"] = _spawn("grabcut_full", files[:1], 1, megapixels)
    return results


def print_report(r: dict[str, Any]) -> None:
    e, g = r["engine"], r["grabcut"]
    warm = _median(e["warm_s"])
    matte = _median(e["matte_s"])
    gc = _median(g["warm_s"])
    mp = e["megapixels"]
    print(
        f"{r['photos']} photos of {r['width']}x{r['height']} ({mp} MP), one core (cpu {e['cpu']}), 1 thread\n"
    )
    print(
        f"engine   packshot   warm {warm:6.3f} s/photo (median of {len(e['warm_s'])}; min {min(e['warm_s']):.3f}, max {max(e['warm_s']):.3f})"
    )
    print(
        f"                    cold {e['cold_s']:6.3f} s (first photo, engine not warmed up); load() {e['load_s']:.3f} s; imports {e['import_s']:.2f} s"
    )
    print(f"         matte only warm {matte:6.3f} s/photo")
    print(
        f"         decode JPEG {e['decode_jpeg_s']:.3f} s; encode 2000 px packshot: PNG {e['encode_png_s']:.3f} s, "
        f"JPEG {e['encode_jpeg_s']:.3f} s, WebP {e['encode_webp_s']:.3f} s, AVIF {e['encode_avif_s']:.3f} s"
    )
    print(
        f"         peak RSS {e['peak_rss_mib']:.0f} MiB (after imports {e['rss_ready_mib']:.0f} MiB; one photo loaded {e['rss_before_mib']:.0f} MiB)"
    )
    print(
        f"grabcut  @1024 px   warm {gc:6.3f} s/photo (median of {len(g['warm_s'])}); mean IoU {sum(g['iou']) / len(g['iou']):.4f}"
    )
    print(
        f"         peak RSS {g['peak_rss_mib']:.0f} MiB (after imports {g['rss_ready_mib']:.0f} MiB; "
        "one photo and its truth loaded at a time)"
    )
    if "grabcut_full" in r:
        f = r["grabcut_full"]
        print(
            f"grabcut  @{mp} MP   {_median(f['warm_s']):7.2f} s/photo; IoU {f['iou'][0]:.4f}; peak RSS {f['peak_rss_mib']:.0f} MiB"
        )
    print(f"\nengine/grabcut time: packshot x{warm / gc:.2f}, matte only x{matte / gc:.2f}")
    verdict = "met" if warm < TARGET_SECONDS else "NOT met"
    print(f"target < {TARGET_SECONDS} s per 12 MP photo on one core: {verdict} ({warm:.3f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2, help="warm passes over the photos")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--grabcut-full", action="store_true", help="also GrabCut at full resolution (slow)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=["engine", "grabcut", "grabcut_full"], help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.files, args.repeat, args.megapixels)))
        return 0
    results = run(args.photos, args.repeat, args.megapixels, args.grabcut_full)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
