"""Pack local weight folders into the inference container's ``model.tar.gz`` (unpacked by SageMaker to
/opt/ml/model): the diffusion engine's weights, the segmentation stage's (SAM + CLIP), or both.

    python scripts/pack_model.py \\
        --component sdxl-inpaint=~/weights/stable-diffusion-xl-1.0-inpainting-0.1 \\
        --component controlnet-openpose-sdxl=~/weights/controlnet-openpose-sdxl-1.0 \\
        --component ip-adapter=~/weights/ip-adapter-sdxl-vit-h \\
        --component upscaler=~/weights/sd-x2-latent-upscaler \\
        --component openpose-detector=~/weights/annotators-openpose \\
        --component segmentation/sam=~/weights/sam-vit-huge \\
        --component segmentation/clip=~/weights/clip-vit-large-patch14 \\
        --source sdxl-inpaint=diffusers/stable-diffusion-xl-1.0-inpainting-0.1@<revision> \\
        --source segmentation/sam=facebook/sam-vit-huge@<revision> \\
        --source segmentation/clip=openai/clip-vit-large-patch14@<revision> \\
        --licence segmentation/sam=Apache-2.0 --licence segmentation/clip=MIT \\
        --variant fp16 --version 2025.11.1 --out build/model.tar.gz

Components come in groups (:data:`modamoda_inference.diffusion.weights.GROUPS`): a pack may hold the
``diffusion`` group, the ``segmentation`` group (``segmentation/sam``, a transformers SamModel + SamProcessor
folder, and ``segmentation/clip``, a CLIPModel + CLIPProcessor folder; both required) or both; each group it
has components of must be complete. ``--licence NAME=SPDX`` records the weights' licence in the component's
manifest entry; it is required for the segmentation components.

Each folder is copied into the layout of :mod:`modamoda_inference.diffusion.weights` under a staging directory
(``--staging``, default a temporary one) with only what the engine loads: ``.safetensors`` in preference to
``.bin`` / ``.ckpt``, the ``--variant`` (e.g. ``fp16``) when a folder has both, configs, tokenizer and processor
files, no ``.git``, TensorFlow / Flax / ONNX weights, READMEs or images.
The IP-Adapter folder holds the adapter file (``--ip-adapter-weight``, e.g. ``ip-adapter_sdxl_vit-h.safetensors``
from h94/IP-Adapter ``sdxl_models/``) and ``image_encoder/`` (``models/image_encoder`` of the same repository for
the vit-h adapters). ``modamoda-model.json`` records every file's size, SHA-256 and tensor dtype, then the staging
directory is validated group by group (hashes included) and archived. ``--no-archive`` stops after the directory.

Upload (``--upload``, boto3 with the usual AWS credentials; the bucket must be in the endpoint's region):

* ``--upload s3://bucket/models/modamoda/2025.11.1/`` (a prefix, preferred): the validated directory is uploaded
  uncompressed under the prefix, ``modamoda-model.json`` last, and no archive is written (unless ``--out`` is
  given). SageMaker copies the prefix into /opt/ml/model when an instance starts (``ModelDataSource``,
  ``S3Prefix``, ``CompressionType: None``), with nothing to decompress, which AWS recommends for large models.
* ``--upload s3://bucket/models/modamoda-2025.11.1.tar.gz``: the archive is uploaded to that key.

The target must be new (an empty prefix, a key that does not exist): SageMaker uses every object under the prefix,
and CloudFormation only replaces the model when ``model_data`` changes, so each version gets its own prefix. The
upload is checked against the local files (keys and sizes) and the script prints the context to deploy with:
``make deploy CDK_ARGS="-c model_data=s3://bucket/models/modamoda/2025.11.1/"``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "inference_container"))

from modamoda_inference.diffusion import weights  # noqa: E402

SKIP_SUFFIXES = {
    ".ckpt",
    ".msgpack",
    ".h5",
    ".onnx",
    ".onnx_data",
    ".md",
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".gif",
}
SKIP_NAMES = {".gitattributes", "LICENSE", "LICENSE.md", "README.md"}


def select_files(folder: Path, variant: str | None) -> list[Path]:
    """The files of a weight folder worth shipping (relative paths)."""
    chosen: list[Path] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in SKIP_SUFFIXES or path.name in SKIP_NAMES:
            continue
        siblings = list(path.parent.glob("*.safetensors"))
        if path.suffix == ".bin" and siblings:
            continue  # the safetensors copy is there
        if path.suffix == ".safetensors":
            stem = path.name[: -len(".safetensors")]
            base, _, tag = stem.rpartition(".")
            is_variant = bool(base) and tag in {"fp16", "bf16", "fp32"}
            if is_variant and tag != variant:
                continue  # another variant
            if not is_variant and variant and (path.parent / f"{stem}.{variant}.safetensors").exists():
                continue  # the requested variant is there
        chosen.append(rel)
    return chosen


def stage(components: dict[str, Path], staging: Path, variant: str | None) -> None:
    for name, src in components.items():
        if not src.is_dir():
            raise SystemExit(f"{name}: {src} is not a folder")
        dst = staging / name
        files = select_files(src, variant)
        if not files:
            raise SystemExit(f"{name}: nothing to pack in {src}")
        for rel in files:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)


def archive(staging: Path, out: Path, level: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w:gz", compresslevel=level) as tar:
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                info = tar.gettarinfo(str(path), arcname=path.relative_to(staging).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
    tmp.replace(out)


def parse_upload_target(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` → (bucket, ``prefix/``) or ``s3://bucket/key.tar.gz`` → (bucket, key)."""
    parts = urlsplit(uri.strip())
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise SystemExit(f"--upload takes s3://bucket/prefix/ or s3://bucket/key.tar.gz, got {uri!r}")
    if not key.strip("/"):
        raise SystemExit(
            f"--upload needs a prefix inside the bucket (s3://bucket/models/<version>/), got {uri!r}"
        )
    if "//" in key or any(ch in key for ch in "*?"):
        raise SystemExit(f"--upload: no empty path segments or wildcards in the key, got {uri!r}")
    if key.endswith(".tar.gz"):
        return parts.netloc, key
    if key.endswith((".tar", ".tgz", ".gz", ".zip")):
        raise SystemExit(f"--upload: an archive must be named .tar.gz, got {uri!r}")
    return parts.netloc, key.rstrip("/") + "/"


def ensure_new_target(s3: Any, bucket: str, key: str) -> None:
    """Refuse a prefix that holds objects, or an archive key that exists: a deployed model never changes under
    the endpoint, and SageMaker would copy stray objects under a prefix into /opt/ml/model."""
    if key.endswith("/"):
        found = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("KeyCount", 0)
        if found:
            raise SystemExit(
                f"s3://{bucket}/{key} is not empty: upload each model version to a new prefix "
                f"(or remove it first: aws s3 rm --recursive s3://{bucket}/{key})"
            )
        return
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return
        raise
    raise SystemExit(f"s3://{bucket}/{key} exists: upload each model version to a new key")


def upload_directory(s3: Any, staging: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every file of ``staging`` under ``prefix`` (multipart for large files), the manifest last so that an
    interrupted upload never looks complete; then check keys and sizes. Returns the keys in upload order."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(staging).as_posix() == weights.MANIFEST_NAME)
    keys = []
    for path in files:
        key = prefix + path.relative_to(staging).as_posix()
        s3.upload_file(str(path), bucket, key)
        keys.append(key)
    expected = {prefix + p.relative_to(staging).as_posix(): p.stat().st_size for p in files}
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({obj["Key"]: obj["Size"] for obj in page.get("Contents", [])})
    if found != expected:
        differ = sorted(set(found.items()) ^ set(expected.items()))[:5]
        raise SystemExit(f"the upload to s3://{bucket}/{prefix} does not match the local files: {differ}")
    return keys


def upload_archive(s3: Any, archive: Path, bucket: str, key: str) -> None:
    s3.upload_file(str(archive), bucket, key)
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if size != archive.stat().st_size:
        raise SystemExit(f"s3://{bucket}/{key} has {size} bytes, the archive {archive.stat().st_size}")


def _s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def _pairs(values: Sequence[str], what: str, packed: Collection[str] | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        rest = rest.strip()
        if not sep or not name or not rest:
            raise SystemExit(f"--{what} takes NAME=VALUE, got {value!r}")
        if name not in weights.COMPONENTS:
            raise SystemExit(f"--{what}: unknown component {name!r}; known: {', '.join(weights.COMPONENTS)}")
        if packed is not None and name not in packed:
            raise SystemExit(f"--{what}: {name} is not packed (no --component {name}=FOLDER)")
        out[name] = rest
    return out


def _groups(names: Collection[str]) -> list[str]:
    """The groups ``names`` has components of, in :data:`weights.GROUPS` order."""
    present = {weights.group_of(n) for n in names}
    return [g for g in weights.GROUPS if g in present]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--component", action="append", default=[], metavar="NAME=FOLDER", required=True)
    parser.add_argument("--source", action="append", default=[], metavar="NAME=REPO[@REVISION]")
    parser.add_argument(
        "--licence",
        action="append",
        default=[],
        metavar="NAME=SPDX",
        help="licence of a component's weights (Apache-2.0, MIT ...); required for the segmentation components",
    )
    parser.add_argument(
        "--variant", default=None, help="weights variant to keep when a folder has several (fp16)"
    )
    parser.add_argument("--dtype", default="float16", choices=weights.DTYPES, help="dtype the weights are in")
    parser.add_argument("--ip-adapter-weight", default=None, help="file name of the IP-Adapter weights")
    parser.add_argument(
        "--name",
        default=None,
        help="model name in the manifest (default modamoda-diffusion, modamoda-segmentation or modamoda)",
    )
    parser.add_argument("--version", default="dev")
    parser.add_argument("--staging", type=Path, default=None, help="directory to build the layout in (kept)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the archive (default build/model.tar.gz; none for a prefix upload)",
    )
    parser.add_argument("--no-archive", action="store_true", help="build and validate the directory only")
    parser.add_argument("--compress-level", type=int, default=1, choices=range(0, 10))
    parser.add_argument(
        "--upload",
        default=None,
        metavar="S3_URI",
        help="upload to s3://bucket/prefix/ (uncompressed, preferred) or s3://bucket/key.tar.gz; deploy with "
        "-c model_data=<the same URI>",
    )
    args = parser.parse_args(argv)
    target = None if args.upload is None else parse_upload_target(args.upload)
    to_prefix = target is not None and target[1].endswith("/")
    if target is not None and not to_prefix and args.no_archive:
        raise SystemExit(
            "--upload to a .tar.gz key needs the archive: drop --no-archive (or upload a prefix)"
        )
    write_archive = not args.no_archive and (args.out is not None or not to_prefix)
    out: Path = args.out if args.out is not None else ROOT / "build" / "model.tar.gz"
    s3: Any = None
    if target is not None:  # fail before the (long) packing, not after it
        s3 = _s3_client()
        ensure_new_target(s3, *target)

    folders = {name: Path(p).expanduser() for name, p in _pairs(args.component, "component").items()}
    missing = weights.missing_required(folders)
    if missing:
        raise SystemExit(f"required components missing: {', '.join(missing)}")
    groups = _groups(folders)
    licences = _pairs(args.licence, "licence", folders)
    unlicensed = [n for n in folders if weights.group_of(n) in weights.LICENSED_GROUPS and n not in licences]
    if unlicensed:
        example = " ".join(f"--licence {n}=SPDX-ID" for n in unlicensed)
        raise SystemExit(
            f"the licence of the weights is required for {', '.join(unlicensed)}: add {example} "
            "(e.g. Apache-2.0 for facebook/sam-vit-huge, MIT for openai/clip-vit-large-patch14)"
        )
    info: dict[str, dict[str, Any]] = {name: {} for name in folders}
    for name, src in _pairs(args.source, "source", folders).items():
        repo, _, revision = src.partition("@")
        info[name]["source"] = repo
        if revision:
            info[name]["revision"] = revision
    for name, licence in licences.items():
        info[name]["licence"] = licence
    if args.ip_adapter_weight and "ip-adapter" in info:
        info["ip-adapter"]["weight_name"] = args.ip_adapter_weight
    if args.variant:
        for name in folders:
            info[name].setdefault("variant", args.variant)

    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.staging is None:
        tmp = tempfile.TemporaryDirectory(prefix="modamoda-model-")
        staging = Path(tmp.name)
    else:
        staging = args.staging
        if staging.exists() and any(staging.iterdir()):
            raise SystemExit(f"--staging {staging} is not empty")
        staging.mkdir(parents=True, exist_ok=True)
    try:
        stage(folders, staging, args.variant)
        for name in folders:  # a variant only counts where such files were kept
            kept = [p.name for p in (staging / name).rglob("*.safetensors")]
            if info[name].get("variant") and not any(f".{info[name]['variant']}." in n for n in kept):
                info[name].pop("variant")
        name = args.name or (f"modamoda-{groups[0]}" if len(groups) == 1 else "modamoda")
        try:
            manifest = weights.build_manifest(
                staging, name=name, version=args.version, dtype=args.dtype, components=info
            )
            weights.write_manifest(staging, manifest)
            checked = [weights.validate(staging, verify="sha256", group=group) for group in groups]
        except weights.WeightsError as exc:
            raise SystemExit(f"the packed directory does not validate: {exc.message}") from exc
        total = sum(f["bytes"] for c in manifest["components"].values() for f in c["files"])
        count = sum(len(m.components) for m in checked)
        print(f"staged {count} components ({', '.join(groups)}), {total / 1e9:.2f} GB, in {staging}")
        if write_archive:
            archive(staging, out, args.compress_level)
            print(f"wrote {out} ({out.stat().st_size / 1e9:.2f} GB)")
        if target is not None:
            bucket, key = target
            if to_prefix:
                keys = upload_directory(s3, staging, bucket, key)
                print(f"uploaded {len(keys)} files, uncompressed, to s3://{bucket}/{key}")
            else:
                upload_archive(s3, out, bucket, key)
                print(f"uploaded {out} to s3://{bucket}/{key}")
            print(f'deploy with: make deploy CDK_ARGS="-c model_data=s3://{bucket}/{key}"')
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
