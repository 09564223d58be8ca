"""The dependency layer's lock: ``functions/requirements.lock``, the whole tree pinned with its hashes.

``functions/requirements.txt`` pins what the functions import; their own dependencies (botocore, urllib3,
cryptography, ...) would float to whatever PyPI offers on the day the layer is built. The lock pins every package of
the tree, resolved for the runtime the layer serves (Lambda python3.12 on arm64, Amazon Linux 2023: glibc 2.34),
with the SHA-256 of each of its wheels. The layer is built from the lock alone
(``pip install --require-hashes --no-deps``) and its asset hash is the lock's bytes (``infra/lambdas.py``), so the
same asset hash means the same wheels, byte for byte.

Regenerate after changing ``functions/requirements.txt`` (``make lock``, needs PyPI)::

    .venv/bin/python -m infra.layer_lock

which runs uv's resolver for that platform (``uv pip compile --generate-hashes``, uv pinned in
requirements-dev.txt). tests/infra/test_layer_lock.py checks that the lock pins every requirement at its pinned
version, holds every dependency of every locked package, and has hashes on every line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.config import FUNCTIONS_DIR, PROJECT_ROOT

LAMBDA_PYTHON_VERSION = "3.12"
# Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34): accept every manylinux wheel up to that.
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, 35)))
# The same target for uv's resolver (its --python-platform names)
UV_PYTHON_PLATFORM = "aarch64-manylinux_2_34"
# What pip's environment markers evaluate to on that runtime (PEP 508), for checking the lock's completeness.
LAMBDA_MARKER_ENVIRONMENT = {
    "implementation_name": "cpython",
    "implementation_version": f"{LAMBDA_PYTHON_VERSION}.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": f"{LAMBDA_PYTHON_VERSION}.0",
    "python_version": LAMBDA_PYTHON_VERSION,
    "sys_platform": "linux",
}

REQUIREMENTS = FUNCTIONS_DIR / "requirements.txt"
LOCK = FUNCTIONS_DIR / "requirements.lock"
REGENERATE = "make lock"

_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Locked:
    name: str
    """normalised (PEP 503): lower case, runs of ``-_.`` as ``-``"""
    version: str
    hashes: tuple[str, ...]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, Locked]:
    """The lock's entries by normalised name. Every entry must be ``name==version`` followed by its hashes."""
    entries: dict[str, Locked] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        current.append(line.rstrip("\\").strip())
        if raw.rstrip().endswith("\\"):
            continue
        joined = " ".join(current)
        current = []
        match = _ENTRY.match(joined)
        if match is None:
            raise ValueError(f"not an exact pin with hashes: {joined!r}")
        name = normalise(match.group(1))
        if name in entries:
            raise ValueError(f"{name} is locked twice")
        entries[name] = Locked(name, match.group(3), tuple(_HASH.findall(joined)))
    if current:
        raise ValueError(f"the lock ends inside an entry: {' '.join(current)!r}")
    return entries


def compile_command(requirements: Path = REQUIREMENTS, output: Path = LOCK) -> list[str]:
    """uv's resolver for Lambda python3.12/arm64, wheels only (the layer installs no source distribution), every
    wheel's hash, and a header naming ``make lock`` as the way to regenerate."""
    return [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        str(
            requirements.relative_to(PROJECT_ROOT)
            if requirements.is_relative_to(PROJECT_ROOT)
            else requirements
        ),
        "--generate-hashes",
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--python-platform",
        UV_PYTHON_PLATFORM,
        "--only-binary",
        ":all:",
        "--custom-compile-command",
        REGENERATE,
        "--quiet",
        "--output-file",
        str(output),
    ]


def main() -> int:
    completed = subprocess.run(compile_command(), cwd=PROJECT_ROOT, check=False)  # noqa: S603
    if completed.returncode == 0:
        locked = parse_lock(LOCK.read_text(encoding="utf-8"))
        print(f"{LOCK.relative_to(PROJECT_ROOT)}: {len(locked)} packages, each with its wheels' hashes")
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
