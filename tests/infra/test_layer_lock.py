"""The dependency layer is built from a lock of the whole tree with hashes, and its asset hash is the lock.

The lock (``functions/requirements.lock``, ``make lock``) must pin every requirement of ``functions/requirements.txt``
at its pinned version, hold every dependency of every locked package (as Lambda's python3.12 on arm64 evaluates
their markers), and carry SHA-256 hashes on every entry, since the layer installs it with
``pip install --require-hashes --no-deps``. The dependency check reads each locked package's metadata from this
virtual environment (every one of them is installed here: the functions' tests import them).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import infra  # noqa: F401  (quiet jsii's Node version banner before aws_cdk starts it)
from infra import lambdas
from infra.config import BUNDLING_STACKS_KEY, FUNCTIONS_DIR
from infra.layer_lock import LAMBDA_MARKER_ENVIRONMENT, LOCK, REQUIREMENTS, Locked, normalise, parse_lock
from tests.infra.synthesis import Synth

pytestmark = pytest.mark.synth


def requirements() -> list[Requirement]:
    found = []
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            found.append(Requirement(line))
    return found


@pytest.fixture(scope="module")
def lock() -> dict[str, Locked]:
    return parse_lock(LOCK.read_text(encoding="utf-8"))


def test_every_requirement_is_locked_at_its_pin(lock: dict[str, Locked]) -> None:
    for requirement in requirements():
        (spec,) = requirement.specifier  # functions/requirements.txt pins exactly
        assert spec.operator == "==", requirement
        locked = lock.get(normalise(requirement.name))
        assert locked is not None, f"{requirement.name} is not in {LOCK.name}: run `make lock`"
        assert Version(locked.version) == Version(spec.version), (
            f"{requirement.name} is pinned {spec.version} but locked {locked.version}: run `make lock`"
        )


def test_every_locked_entry_is_an_exact_pin_with_hashes(lock: dict[str, Locked]) -> None:
    assert lock
    for locked in lock.values():
        assert locked.hashes, f"{locked.name} has no --hash (pip --require-hashes would refuse the lock)"
        Version(locked.version)  # an exact, valid version


def _extras_wanted() -> dict[str, set[str]]:
    """The extras each package is asked for, starting from the requirements (``aws-lambda-powertools[tracer]``,
    ``psycopg[binary]``, ``PyJWT[crypto]``) and following the dependencies' own."""
    wanted: dict[str, set[str]] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(normalise(r.name), set(r.extras)) for r in requirements()]
    while pending:
        name, extras = pending.pop()
        known = wanted.setdefault(name, set())
        known |= extras
        if (name, frozenset(known)) in seen:
            continue
        seen.add((name, frozenset(known)))
        for requirement in _dependencies(name, known):
            pending.append((normalise(requirement.name), set(requirement.extras)))
    return wanted


def _dependencies(name: str, extras: set[str]) -> list[Requirement]:
    """What ``name`` (with ``extras``) needs on Lambda's python3.12/arm64, from its installed metadata."""
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{name} is locked but not installed in this environment (make venv)")
    needed = []
    for text in distribution.requires or []:
        requirement = Requirement(text)
        environments = [{**LAMBDA_MARKER_ENVIRONMENT, "extra": extra} for extra in sorted(extras) or [""]]
        if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
            needed.append(requirement)
    return needed


def test_the_lock_holds_every_dependency_of_every_locked_package(lock: dict[str, Locked]) -> None:
    """Closed under dependencies: ``--no-deps`` installs nothing that the lock does not list. Where this environment
    has the locked version installed, the locked versions must also satisfy its requirement specifiers."""
    wanted = _extras_wanted()
    missing = sorted(set(wanted) - set(lock))
    assert not missing, f"dependencies missing from {LOCK.name}: {missing}; run `make lock`"
    for name, extras in wanted.items():
        exact = importlib.metadata.version(name) == lock[name].version
        for requirement in _dependencies(name, extras):
            dependency = lock[normalise(requirement.name)]
            if exact:
                assert requirement.specifier.contains(dependency.version, prereleases=True), (
                    f"{name} {lock[name].version} needs {requirement}, the lock has {dependency.version}"
                )
    unused = sorted(set(lock) - set(wanted))
    assert not unused, f"{LOCK.name} locks packages nothing requires: {unused}; run `make lock`"


def test_the_layer_installs_the_lock_with_hashes_and_nothing_else(tmp_path: Path) -> None:
    command = lambdas.pip_install_command(LOCK, tmp_path / "python")
    assert command[command.index("--requirement") + 1] == str(LOCK)
    assert "--require-hashes" in command
    assert "--no-deps" in command


def test_the_layer_hash_is_the_lock(tmp_path: Path) -> None:
    """The same lock, the same hash; one changed byte of the lock (a hash, a version), a new layer version."""
    copy = tmp_path / "requirements.lock"
    copy.write_bytes(LOCK.read_bytes())
    assert lambdas.requirements_hash(copy) == lambdas.requirements_hash(LOCK)
    text = copy.read_text(encoding="utf-8")
    first_hash = text.index("--hash=sha256:") + len("--hash=sha256:")
    flipped = "0" if text[first_hash] != "0" else "1"
    copy.write_text(text[:first_hash] + flipped + text[first_hash + 1 :], encoding="utf-8")
    assert lambdas.requirements_hash(copy) != lambdas.requirements_hash(LOCK)
    # the requirements file alone no longer decides the layer: only the lock does
    assert lambdas.requirements_hash(REQUIREMENTS) != lambdas.requirements_hash(LOCK)
    with pytest.raises(FileNotFoundError, match="make lock"):
        lambdas.requirements_hash(tmp_path / "missing.lock")


def test_the_deployed_layer_is_the_lock_s_asset(synth: Synth, tmp_path: Path) -> None:
    """The template's layer asset is the one a layer of the lock's hash gets (the same code path in a bare app), and
    the code asset does not carry the lock."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context={BUNDLING_STACKS_KEY: []})
    stack = cdk.Stack(app, "LayerOnly")
    lambda_.LayerVersion(
        stack,
        "Layer",
        code=lambda_.Code.from_asset(
            str(FUNCTIONS_DIR),
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=lambdas.requirements_hash(LOCK),
            bundling=cdk.BundlingOptions(
                image=lambdas.RUNTIME.bundling_image, command=["false"], local=lambdas.PipLayerBundling(LOCK)
            ),
        ),
    )
    expected = app.synth().get_stack_by_name("LayerOnly").template["Resources"]
    (expected_layer,) = [r for r in expected.values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    layers = {
        lid: res
        for lid, res in synth.of_type("AWS::Lambda::LayerVersion").items()
        if "DependenciesLayer" in lid
    }
    (layer,) = layers.values()
    assert "requirements.lock" in layer["Properties"]["Description"]
    assert layer["Properties"]["Content"]["S3Key"] == expected_layer["Properties"]["Content"]["S3Key"]

    (key,) = {props["Code"]["S3Key"] for props in synth.functions().values()}
    asset_dir = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    assert not (asset_dir / "functions" / "requirements.lock").exists()
