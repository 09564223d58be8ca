"""The studio engine on REAL garment photos, beside the engine as it was before this work and OpenCV GrabCut.

    python -m bench.studio_real                          # every annotated photo of ../shared/eval/real-photos
    python -m bench.studio_real --only mannequin --json out/studio_real/report.json

The photos are read from ``../shared/eval/real-photos/`` (or ``$MODAMODA_REAL_PHOTOS``) at run time and never
copied into this repository; without them the bench says so and exits 0. Ground truth per photo comes from
:mod:`bench.real_truth` (authored annotations in ``bench/annotations/`` over the set's own refs and masks).

Three methods on the same photos in the same run, with the options a seller sends (``mannequin: "auto"`` for
photos on a mannequin or form, the defaults otherwise):

* **baseline** — the studio engine as it was on main before the real-photo work (commit ``BASELINE_COMMIT``),
  taken from git into a temporary folder and run in a subprocess (``StudioEngine.matte``; a
  ``no_garment_found`` is a refusal);
* **grabcut** — ``cv2.grabCut``, 5 iterations at the engine's working size, started from the frame inset by
  5 % on each side (what an automatic GrabCut gets without a person drawing a box);
* **studio** — this engine as a job runs it (``StudioEngine.cutout``: segmentation, mannequin/hanger/prop
  removal, person check and the quality gate; any refusal is ``rejected``, no charge);
* **learned** — only when ``$MODEL_DIR`` (default ``/opt/ml/model``) holds the segmentation stage's SAM and CLIP
  weights (:mod:`modamoda_inference.segmentation`): the same ``cutout`` with the stage, as a job with
  ``segmenter: "auto"`` runs on such an endpoint. The report says whether it ran and with which weights.

Per photo (at the photo's resolution, mask = alpha >= 0.5): garment IoU, boundary F (boundaries matched within
max(2 px, 0.5 % of the long side)), **residue** = share of the must-not-keep region (mannequin, stand, hanger,
props, person) kept, **holes** = share of the garment lost inside the result's own outline. Residue and holes
leave out the garment's own edge (max(1 px, 0.2 % of the long side) either side of the true outline: mixed
pixels, and the annotation's own +-1 px), which IoU and boundary F already judge. Verdict:

* *usable* — the photo should be cut (``expect: cut``) and IoU >= 0.95, residue <= 1 %, holes <= 1 %;
* *refused* — the method refused it (no charge); refusing a photo of a person wearing the garment is right;
* *wrong* — anything else: a picture was delivered and charged that a seller could not publish.

Contact sheets (input | baseline | grabcut | studio | ref or truth) go to ``out/studio_real/``. The run ends
with one summary line per method, the project's engine last.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from bench.real_truth import SetMissing, Truth, data_root, load_photo, manifest, stem, truth
from bench.studio_quality import boundary_f

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "inference_container") not in sys.path:
    sys.path.insert(0, str(REPO / "inference_container"))

BASELINE_COMMIT = "3a9c123"  # main before the real-photo work (issue 14)
OUT = REPO / "out" / "studio_real"
IOU_USABLE, RESIDUE_MAX, HOLES_MAX = 0.95, 0.01, 0.01
METHODS = ("baseline", "grabcut", "studio")  # + "learned" when the stage's weights are there
WORK_LONG_SIDE = 1024


@dataclass
class Outcome:
    method: str
    file: str
    category: str
    verdict: str  # usable | refused | wrong
    iou: float | None = None
    boundary_f: float | None = None
    residue: float | None = None
    holes: float | None = None
    code: str | None = None  # the refusal code
    score: float | None = None  # the engine's own confidence, when it gives one
    seconds: float = 0.0


def options_for(entry: dict[str, Any]) -> dict[str, Any]:
    """What a seller sends for this photo: ``mannequin: "auto"`` for a photo on a mannequin or form."""
    return {"mannequin": "auto"} if entry["category"] == "mannequin" else {}


# -- metrics ------------------------------------------------------------------------------------------------


def fill_outline(mask: np.ndarray) -> np.ndarray:
    """The mask with every enclosed hole filled (its outline's inside)."""
    m = np.pad(mask.astype(np.uint8), 1)
    flood = m.copy()
    cv2.floodFill(flood, np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint8), (0, 0), 2)
    return (flood != 2)[1:-1, 1:-1]


def measure(pred: np.ndarray, t: Truth) -> dict[str, float]:
    gt = t.garment
    union = int((pred | gt).sum())
    iou = float((pred & gt).sum() / union) if union else 1.0
    tolerance = max(2, round(0.005 * max(gt.shape)))
    # the garment's own edge (mixed pixels, and the annotation's +-1 px) is neither residue nor a hole
    edge_px = max(1, round(0.002 * max(gt.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * edge_px + 1, 2 * edge_px + 1))
    g8 = gt.astype(np.uint8)
    edge = (cv2.dilate(g8, kernel) > 0) & ~(cv2.erode(g8, kernel) > 0)
    other_core = t.other & ~edge
    other = int(other_core.sum())
    residue = float((pred & other_core).sum() / other) if other else 0.0
    lost_inside = gt & ~edge & ~pred & fill_outline(pred)
    holes = float(lost_inside.sum() / max(1, int(gt.sum())))
    return {"iou": iou, "boundary_f": boundary_f(pred, gt, tolerance), "residue": residue, "holes": holes}


def verdict(t: Truth, refused: bool, scores: dict[str, float] | None) -> str:
    if refused:
        return "refused"
    if t.expect != "cut" or scores is None:
        return "wrong"
    ok = scores["iou"] >= IOU_USABLE and scores["residue"] <= RESIDUE_MAX and scores["holes"] <= HOLES_MAX
    return "usable" if ok else "wrong"


# -- methods ------------------------------------------------------------------------------------------------


def grabcut_mask(rgb: np.ndarray) -> np.ndarray:
    """OpenCV GrabCut from the frame inset by 5 %, 5 iterations, at the engine's working size, seeded (the same
    rectangle start as the engine's textured path, :func:`modamoda_inference.textured.rect_cut`)."""
    from modamoda_inference.textured import rect_cut

    return rect_cut(rgb, 0.05, WORK_LONG_SIDE, 5)


def studio_result(
    engine: Any, rgb: np.ndarray, options: dict[str, Any], stage: Any = None
) -> tuple[np.ndarray | None, str | None, float | None]:
    from modamoda_inference.errors import ModamodaError

    try:
        matte = engine.cutout(rgb, mannequin=options.get("mannequin"), stage=stage)
    except ModamodaError as exc:
        score = exc.details.get("score") if getattr(exc, "details", None) else None
        return None, exc.code, score
    quality = getattr(matte, "quality", None) or {}
    return matte.full_resolution() >= 0.5, None, quality.get("score")


def run_baseline(root: Path, entries: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """The baseline engine from git, in a subprocess; ``{file: (mask or None, code, seconds)}``."""
    src = workdir / "baseline"
    src.mkdir()
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("the baseline is taken from git history: git is not installed")
    archive = subprocess.run(  # noqa: S603 - fixed arguments, our own repository
        [git, "-C", str(REPO), "archive", BASELINE_COMMIT, "inference_container/modamoda_inference"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(src, filter="data")
    items = [{"root": str(root), "file": e["file"], "options": options_for(e)} for e in entries]
    masks = workdir / "masks"
    masks.mkdir()
    (workdir / "items.json").write_text(json.dumps(items))
    code = (
        "import json; from bench.studio_baseline import run; "
        f"run({str(src / 'inference_container')!r}, json.load(open({str(workdir / 'items.json')!r})), "
        f"{str(masks)!r})"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO), env=env)  # noqa: S603 - our worker
    results = json.loads((masks / "results.json").read_text())
    out: dict[str, Any] = {}
    for file, r in results.items():
        mask = None
        if r["code"] is None:
            with np.load(masks / f"{stem(file)}.npz") as data:
                mask = data["mask"]
        out[file] = (mask, r["code"], r["seconds"])
    return out


# -- report -------------------------------------------------------------------------------------------------


def _cutout(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        grey = np.full_like(rgb, 225)
        return grey
    return np.where(mask[..., None], rgb, 255).astype(np.uint8)


def _ref_panel(root: Path, t: Truth, rgb: np.ndarray) -> np.ndarray:
    ref = root / "refs" / f"{stem(t.file)}.ref.jpg"
    if ref.is_file():
        with Image.open(ref) as im:
            return np.asarray(im.convert("RGB"))
    return _cutout(rgb, t.garment)


def learned_stage() -> tuple[Any, str]:
    """The segmentation stage from ``$MODEL_DIR`` (or None) and a sentence for the report saying so."""
    from modamoda_inference.engines import model_dir_from_env
    from modamoda_inference.segmentation.stage import shared_stage

    model_dir = model_dir_from_env()
    stage = shared_stage(model_dir)
    if stage is None:
        return None, f"learned segmenter: not run (no SAM + CLIP weights under MODEL_DIR={model_dir})"
    models = ", ".join(
        f"{name.split('/')[-1]} {info.get('source', '?')}"
        for name, info in stage.describe()["models"].items()
    )
    return stage, f"learned segmenter: run from MODEL_DIR={model_dir} ({models})"


def contact_sheets(rows: list[dict[str, Any]], out_dir: Path, thumb: int = 220) -> list[Path]:
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_cat[row["category"]].append(row)
    paths = []
    methods = list(rows[0]["outcomes"]) if rows else list(METHODS)
    for category, items in sorted(by_cat.items()):
        cols = 2 + len(methods)
        sheet = Image.new("RGB", (cols * thumb, len(items) * (thumb + 28)), "white")
        draw = ImageDraw.Draw(sheet)
        for r, item in enumerate(items):
            panels = [("input", item["input"], "")]
            for method in methods:
                o: Outcome = item["outcomes"][method]
                label = f"{method}: {o.verdict}"
                if o.iou is not None:
                    label += (
                        f" IoU {o.iou:.3f} res {100 * (o.residue or 0):.1f}% hol {100 * (o.holes or 0):.1f}%"
                    )
                elif o.code:
                    label += f" ({o.code})"
                panels.append((method, item["panels"][method], label))
            panels.append(("ref", item["ref"], "ref / truth"))
            y = r * (thumb + 28)
            for c, (_, arr, label) in enumerate(panels):
                im = Image.fromarray(arr)
                im.thumbnail((thumb - 4, thumb - 4))
                sheet.paste(im, (c * thumb + 2, y + 2))
                colour = {"usable": (0, 130, 0), "refused": (150, 110, 0), "wrong": (200, 0, 0)}
                verdict_word = label.split(": ")[1].split(" ")[0] if ": " in label else ""
                draw.text((c * thumb + 2, y + thumb), label[:44], fill=colour.get(verdict_word, (0, 0, 0)))
                if len(label) > 44:
                    draw.text((c * thumb + 2, y + thumb + 12), label[44:88], fill=(60, 60, 60))
            draw.text((2, y + thumb + 12), item["file"][:40], fill=(0, 0, 0))
        path = out_dir / f"sheet_{category}.png"
        sheet.save(path)
        paths.append(path)
    return paths


def summary_line(method: str, outcomes: list[Outcome]) -> str:
    n = len(outcomes)
    if n == 0:
        return f"{method}: no photos"
    share = {v: 100.0 * sum(o.verdict == v for o in outcomes) / n for v in ("usable", "wrong", "refused")}
    return (
        f"{method}: usable {share['usable']:.0f} % | wrong-and-charged {share['wrong']:.0f} % | "
        f"refused {share['refused']:.0f} % (n={n})"
    )


def _mean(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    return f"{np.mean(vals):.3f}" if vals else "-"


def tables(outcomes: dict[str, list[Outcome]]) -> str:
    methods = list(outcomes)
    lines = ["| category | n | " + " | ".join(f"{m} usable / wrong / refused" for m in methods) + " |"]
    lines.append("|---|---:|" + "---|" * len(methods))
    cats = sorted({o.category for o in outcomes[methods[0]]})
    for cat in [*cats, "all"]:
        cells = []
        n = 0
        for m in methods:
            sel = [o for o in outcomes[m] if cat in ("all", o.category)]
            n = len(sel)
            cells.append(
                " / ".join(str(sum(o.verdict == v for o in sel)) for v in ("usable", "wrong", "refused"))
                + f" (IoU {_mean([o.iou for o in sel])})"
            )
        lines.append(f"| {cat} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| photo | " + " | ".join(methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    for i, o0 in enumerate(outcomes[methods[0]]):
        cells = []
        for m in methods:
            o = outcomes[m][i]
            if o.iou is None:
                cells.append(f"{o.verdict} ({o.code})")
            else:
                cells.append(
                    f"{o.verdict} IoU {o.iou:.3f} BF {o.boundary_f:.2f} res {100 * (o.residue or 0):.1f} % "
                    f"hol {100 * (o.holes or 0):.1f} %"
                )
        lines.append(f"| {stem(o0.file)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(root: Path, only: str | None = None, sheets: bool = True) -> dict[str, list[Outcome]]:
    from modamoda_inference.engines.studio import StudioEngine

    entries = [e for e in manifest(root) if not only or only in e["file"]]
    truths: dict[str, Truth] = {}
    for e in entries:
        t = truth(e, root)
        if t is None:
            print(f"  {e['file']}: no ground truth yet, skipped")
            continue
        truths[e["file"]] = t
    entries = [e for e in entries if e["file"] in truths]
    with tempfile.TemporaryDirectory() as tmp:
        baseline = run_baseline(root, entries, Path(tmp))
    engine = StudioEngine()
    stage, said = learned_stage()
    print(f"  {said}")
    methods = METHODS + (("learned",) if stage is not None else ())
    outcomes: dict[str, list[Outcome]] = {m: [] for m in methods}
    rows = []
    for e in entries:
        t = truths[e["file"]]
        rgb = load_photo(root, e["file"])
        results: dict[str, tuple[np.ndarray | None, str | None, float | None, float]] = {}
        b_mask, b_code, b_secs = baseline[e["file"]]
        results["baseline"] = (b_mask, b_code, None, b_secs)
        t0 = time.perf_counter()
        results["grabcut"] = (grabcut_mask(rgb), None, None, time.perf_counter() - t0)
        t0 = time.perf_counter()
        s_mask, s_code, s_score = studio_result(engine, rgb, options_for(e))
        results["studio"] = (s_mask, s_code, s_score, time.perf_counter() - t0)
        if stage is not None:
            t0 = time.perf_counter()
            l_mask, l_code, l_score = studio_result(engine, rgb, options_for(e), stage)
            results["learned"] = (l_mask, l_code, l_score, time.perf_counter() - t0)
        panels = {}
        per: dict[str, Outcome] = {}
        for method, (mask, code, score, secs) in results.items():
            scores = measure(mask, t) if mask is not None else None
            o = Outcome(
                method,
                e["file"],
                e["category"],
                verdict(t, mask is None, scores),
                code=code,
                score=score,
                seconds=round(secs, 3),
            )
            if scores:
                o.iou, o.boundary_f = round(scores["iou"], 4), round(scores["boundary_f"], 4)
                o.residue, o.holes = round(scores["residue"], 4), round(scores["holes"], 4)
            outcomes[method].append(o)
            per[method] = o
            panels[method] = _cutout(rgb, mask)
        rows.append(
            {
                "file": e["file"],
                "category": e["category"],
                "input": rgb,
                "panels": panels,
                "ref": _ref_panel(root, t, rgb),
                "outcomes": per,
            }
        )
        s = per["studio"]
        print(
            f"  {stem(e['file'])[:52]:52s} baseline {per['baseline'].verdict:7s} grabcut {per['grabcut'].verdict:7s}"
            f" studio {s.verdict:7s} "
            + (
                f"IoU {s.iou:.3f} res {s.residue:.3f} hol {s.holes:.3f}"
                if s.iou is not None
                else f"({s.code})"
            )
            + (f" score {s.score:.2f}" if s.score is not None else "")
        )
    if sheets and rows:
        OUT.mkdir(parents=True, exist_ok=True)
        for path in contact_sheets(rows, OUT):
            print(f"  contact sheet: {path.relative_to(REPO)}")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="only photos whose file name contains this (e.g. mannequin)")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--no-sheets", action="store_true")
    args = parser.parse_args(argv)
    root = data_root()
    try:
        manifest(root)
    except SetMissing as exc:
        print(f"skipped: {exc}")
        return 0
    outcomes = evaluate(root, args.only, sheets=not args.no_sheets)
    print()
    print(tables(outcomes))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({m: [asdict(o) for o in v] for m, v in outcomes.items()}, indent=1))
    print()
    mannequin = {m: [o for o in v if o.category == "mannequin"] for m, v in outcomes.items()}
    for m in outcomes:
        print(f"  mannequin photos, {summary_line(m, mannequin[m])}")
    for m in outcomes:
        print(summary_line(m, outcomes[m]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
