"""scripts/pack_model.py --upload: the validated /opt/ml/model layout goes to S3 uncompressed under a new prefix
(the manifest last) or as a .tar.gz to a new key, checked after the upload; what comes back from the prefix is a
model directory the engine accepts. S3 is moto's."""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from modamoda_inference.diffusion import weights

REPO = Path(__file__).resolve().parents[3]
BUCKET = "modamoda-models-test"
DIFFUSION = ("sdxl-inpaint", "controlnet-openpose-sdxl", "ip-adapter")


@pytest.fixture(scope="module")
def pack_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pack_model_upload", REPO / "scripts" / "pack_model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pack_model_upload"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def s3(mocked_aws: None, pack_model: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto's S3 with the models bucket; the script's client records the keys it puts, in order."""
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_keys = []

    def record(params: dict[str, Any], **_: Any) -> None:
        client.put_keys.append(params["Key"])

    client.meta.events.register("provide-client-params.s3.PutObject", record)
    client.meta.events.register("provide-client-params.s3.CreateMultipartUpload", record)
    monkeypatch.setattr(pack_model, "_s3_client", lambda: client)
    return client


def components(root: Path) -> list[str]:
    return [f"--component={name}={root / name}" for name in DIFFUSION] + ["--dtype", "float32"]


def download(s3: Any, prefix: str, into: Path) -> None:
    """What SageMaker does for ``S3DataType: S3Prefix``: each key minus the prefix is a path under the model dir."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            path = into / obj["Key"][len(prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, obj["Key"], str(path))


def test_upload_targets(pack_model: ModuleType) -> None:
    parse = pack_model.parse_upload_target
    assert parse("s3://b-1/models/modamoda/2025.11.1") == ("b-1", "models/modamoda/2025.11.1/")
    assert parse("s3://b-1/models/v2/") == ("b-1", "models/v2/")
    assert parse("s3://b-1/models/model.tar.gz") == ("b-1", "models/model.tar.gz")
    for bad in ("https://b-1/x/", "s3://b-1", "s3://b-1/", "s3:///x/", "s3://b-1/x//y/", "s3://b-1/x/*"):
        with pytest.raises(SystemExit, match="--upload"):
            parse(bad)
    with pytest.raises(SystemExit, match=r"must be named \.tar\.gz"):
        parse("s3://b-1/models/model.tgz")


def test_upload_to_a_prefix_uncompressed(
    pack_model: ModuleType,
    s3: Any,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"s3://{BUCKET}/modamoda/2025.11.1"
    assert pack_model.main([*components(tiny_model_dir), "--version", "2025.11.1", "--upload", uri]) == 0
    prefix = "modamoda/2025.11.1/"
    keys = s3.put_keys
    assert keys[-1] == prefix + weights.MANIFEST_NAME  # an interrupted upload never looks complete
    assert all(k.startswith(prefix) for k in keys)
    assert any(k.startswith(prefix + "sdxl-inpaint/unet/") for k in keys)
    out = capsys.readouterr().out
    assert f'-c model_data=s3://{BUCKET}/{prefix}"' in out
    assert "wrote " not in out  # no archive for a prefix upload
    model_dir = tmp_path / "opt-ml-model"
    download(s3, prefix, model_dir)
    manifest = weights.validate(model_dir, verify="sha256")
    assert manifest.version == "2025.11.1"
    assert set(manifest.components) == set(DIFFUSION)
    # the same prefix again is refused before any packing: a deployed model never changes under the endpoint
    staging = tmp_path / "staging"
    with pytest.raises(SystemExit, match=r"is not empty: upload each model version to a new prefix"):
        pack_model.main([*components(tiny_model_dir), "--staging", str(staging), "--upload", uri])
    assert not staging.exists()


def test_upload_an_archive(pack_model: ModuleType, s3: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.tar.gz"
    uri = f"s3://{BUCKET}/archives/modamoda-2025.11.1.tar.gz"
    assert pack_model.main([*components(tiny_model_dir), "--out", str(out), "--upload", uri]) == 0
    assert s3.put_keys[-1] == "archives/modamoda-2025.11.1.tar.gz"
    fetched = tmp_path / "fetched.tar.gz"
    s3.download_file(BUCKET, "archives/modamoda-2025.11.1.tar.gz", str(fetched))
    assert fetched.read_bytes() == out.read_bytes()
    with tarfile.open(fetched) as tar:
        assert weights.MANIFEST_NAME in tar.getnames()
    with pytest.raises(SystemExit, match="exists: upload each model version to a new key"):
        pack_model.main([*components(tiny_model_dir), "--out", str(out), "--upload", uri])
    with pytest.raises(SystemExit, match="needs the archive"):
        pack_model.main([*components(tiny_model_dir), "--no-archive", "--upload", f"s3://{BUCKET}/x.tar.gz"])


def test_a_partial_upload_is_caught(pack_model: ModuleType, s3: Any, tmp_path: Path) -> None:
    """The listing after the upload must match the local files key for key and byte for byte."""
    staging = tmp_path / "staging"
    (staging / "sdxl-inpaint").mkdir(parents=True)
    (staging / "sdxl-inpaint" / "model_index.json").write_text("{}")
    (staging / weights.MANIFEST_NAME).write_text("{}")
    real_upload = s3.upload_file

    def lossy(path: str, bucket: str, key: str, **kwargs: Any) -> None:
        if not key.endswith("model_index.json"):
            real_upload(path, bucket, key, **kwargs)

    s3.upload_file = lossy
    with pytest.raises(SystemExit, match="does not match the local files"):
        pack_model.upload_directory(s3, staging, BUCKET, "partial/")
