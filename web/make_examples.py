"""Make the landing page's before/after examples from the project's sample photos with the studio engine.

Run from the repository root: ``.venv/bin/python web/make_examples.py``. For each sample in ``samples/garments``
named below, the studio engine (the same code the inference container runs, CPU only, no weights) renders the
ghost-mannequin result with the options given in ``EXAMPLES``; the photo ("before") and
the result ("after") are written as small WebP files into ``web/app/examples`` (committed, like the icons), at most
``SIZE`` pixels on the long side and under ``MAX_BYTES`` each. The samples are the project's own drawings, so the
derived images may be published. The output is deterministic for a given engine.
"""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "inference_container"))

from modamoda_inference.engines.studio import StudioEngine  # noqa: E402
from modamoda_inference.imageio import decode_image  # noqa: E402
from modamoda_inference.schemas import InferenceRequest  # noqa: E402

SAMPLES = ROOT / "samples" / "garments"
OUT = Path(__file__).resolve().parent / "app" / "examples"
# sample → the options of its ghost-mannequin job (what the landing page's captions say); 4:5 like the photos,
# so that before and after sit side by side at the same size
EXAMPLES = {
    "tshirt_navy": {"preset": "portrait_4_5"},  # on white
    "hoodie_burgundy": {"preset": "portrait_4_5", "shadow": "drop"},  # on white, a drop shadow
    "dress_emerald": {"preset": "portrait_4_5", "background": "#F1ECE4"},  # a warm off-white
}
SIZE = 600
MAX_BYTES = 100 * 1024
QUALITY = 80


def webp(image: Image.Image) -> bytes:
    """The image scaled to ``SIZE`` px on its long side, as WebP, smaller than ``MAX_BYTES``."""
    image = image.convert("RGB")
    image.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    for quality in (QUALITY, 70, 60, 50):
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", quality=quality, method=6)
        if buffer.tell() < MAX_BYTES:
            return buffer.getvalue()
    raise SystemExit(f"cannot fit an example under {MAX_BYTES} bytes")


def main() -> None:
    engine = StudioEngine()
    engine.load(ROOT / "no-model-weights")  # no learned stage: the studio engine's own computer vision
    OUT.mkdir(parents=True, exist_ok=True)
    for name, options in EXAMPLES.items():
        data = (SAMPLES / f"{name}.jpg").read_bytes()
        photo = decode_image(data).image
        request = InferenceRequest.model_validate(
            {"job_id": str(uuid.UUID(int=0)), "mode": "ghost", "image": {"b64": "AA=="}, "options": options}
        )
        result = engine.run(photo, request)
        for suffix, image in (("before", photo), ("after", result.image)):
            path = OUT / f"{name}-{suffix}.webp"
            path.write_bytes(webp(image))
            with Image.open(path) as written:
                print(
                    f"{path.relative_to(ROOT)}: {written.size[0]}x{written.size[1]}, {path.stat().st_size} bytes"
                )


if __name__ == "__main__":
    main()
