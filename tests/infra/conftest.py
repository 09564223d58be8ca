"""Synthesis fixtures for the infrastructure tests: each stage's app is synthesised once per session."""

from __future__ import annotations

import pytest

from tests.infra.synthesis import Synth, synthesize


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default (dev) stage."""
    return synthesize(tmp_path_factory.mktemp("cdk.out.dev"))


@pytest.fixture(scope="session")
def prod_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(
        tmp_path_factory.mktemp("cdk.out.prod"), {"stage": "prod", "web_origin": "https://app.example"}
    )
