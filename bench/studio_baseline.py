"""The baseline of :mod:`bench.studio_real`: the studio engine as it was before the real-photo work, run in a
subprocess from a copy taken out of git. This module imports nothing of the current engine (``bench.studio_real``
and ``bench.studio_quality`` do), so the subprocess's ``modamoda_inference`` is the baseline's."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.real_truth import load_photo, stem


def run(src: str, items: list[dict[str, Any]], out_dir: str) -> None:
    """One .npz mask (or the refusal code) per photo, with the baseline's package first on sys.path."""
    sys.path.insert(0, src)
    from modamoda_inference.engines import studio
    from modamoda_inference.engines.studio import StudioEngine as Baseline
    from modamoda_inference.errors import ModamodaError

    if not Path(studio.__file__).resolve().is_relative_to(Path(src).resolve()):
        raise RuntimeError(f"the baseline run imported the current engine ({studio.__file__}), not {src}")

    engine = Baseline()
    results: dict[str, Any] = {}
    for item in items:
        rgb = load_photo(Path(item["root"]), item["file"])
        t0 = time.perf_counter()
        try:
            matte = engine.matte(rgb, mannequin=item["options"].get("mannequin"))
            if matte.bbox() is None:
                raise ModamodaError("no garment found in the photo")
            mask = matte.full_resolution() >= 0.5
            np.savez_compressed(Path(out_dir) / f"{stem(item['file'])}.npz", mask=mask)
            results[item["file"]] = {"code": None}
        except ModamodaError as exc:
            results[item["file"]] = {"code": exc.code}
        results[item["file"]]["seconds"] = time.perf_counter() - t0
    (Path(out_dir) / "results.json").write_text(json.dumps(results))
