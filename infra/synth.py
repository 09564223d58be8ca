"""``python -m infra.synth``: synthesise the CDK app into ``cdk.out/`` in-process, without the CDK CLI.

Uses the context of ``cdk.json`` (feature flags, defaults) plus ``-c key=value`` overrides, like the CLI.
Bundling is on by default, so the dependency layer is built (pip downloads arm64 wheels from PyPI) and the
assembly is deployable with ``npx aws-cdk@2 deploy --app cdk.out``; ``--no-bundling`` skips it (offline).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra.config import BUNDLING_STACKS_KEY, PROJECT_ROOT, cdk_json_context
from infra.nag import add_checks
from infra.stack import build


def parse_context(pairs: list[str]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"context must be key=value, got {pair!r}")
        try:
            context[key] = json.loads(value)
        except json.JSONDecodeError:
            context[key] = value
    return context


def synth(outdir: Path, *, bundling: bool, context: dict[str, Any] | None = None) -> cdk.cx_api.CloudAssembly:
    merged = {**cdk_json_context(), **(context or {})}
    if not bundling:
        merged[BUNDLING_STACKS_KEY] = []
    app = cdk.App(outdir=str(outdir), context=merged)
    build(app)
    add_checks(app)  # like app.py: unacknowledged cdk-nag findings fail the synthesis
    return app.synth()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.synth", description=__doc__)
    parser.add_argument("--outdir", type=Path, default=PROJECT_ROOT / "cdk.out")
    parser.add_argument(
        "--bundling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="build the Lambda dependency layer (pip, needs PyPI); --no-bundling skips it",
    )
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    started = time.monotonic()
    assembly = synth(args.outdir, bundling=args.bundling, context=parse_context(args.context))
    for stack in assembly.stacks:
        resources = len(stack.template.get("Resources", {}))
        print(f"{stack.stack_name}: {resources} resources → {Path(args.outdir) / stack.template_file}")
    print(f"synthesised in {time.monotonic() - started:.1f} s (bundling {'on' if args.bundling else 'off'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
