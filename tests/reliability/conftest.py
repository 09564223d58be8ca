"""The reliability and security suite (issue 9): bad input, injected faults, two-tenant security and load, each
against the whole local stack, each ending with the books audited (``books.assert_balanced``).

Each module that asks for ``stack`` gets its own local stack (moto and the process environment are global).
What the suite tried is counted in ``tally.TALLY`` and printed as a table after the run.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bench.load import garment_image
from local.client import ApiClient
from local.stack import LocalSettings, LocalStack
from tests.reliability.tally import TALLY

PASSWORD = "Reliab1lity-Passw0rd"
# `make stress` (MODAMODA_STRESS=1) runs every fault injection several times: races between duplicate deliveries,
# outages and retries land differently each round.
STRESS_ROUNDS = int(
    os.environ.get("MODAMODA_STRESS_ROUNDS", "5" if os.environ.get("MODAMODA_STRESS") else "1")
)
REPEATED_MODULES = ("test_faults",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if STRESS_ROUNDS > 1 and metafunc.module.__name__.rsplit(".", 1)[-1] in REPEATED_MODULES:
        metafunc.fixturenames.append("stress_round")
        metafunc.parametrize("stress_round", range(1, STRESS_ROUNDS + 1), ids=lambda n: f"round{n}")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # Ghost work goes to the GPU path here (GHOST_ON_LAMBDA=false), the studio engine standing in for the GPU's: the
    # fault suite drives the asynchronous endpoint (task token, SNS, notifier). test_studio_path.py turns the
    # studio function back on for its own tests.
    with LocalStack(LocalSettings(inference_timeout_seconds=60, ghost_on_lambda=False)) as running:
        yield running


@dataclass
class Tenant:
    email: str
    tokens: dict[str, str]
    api: ApiClient
    tenant_id: str
    balance: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


def new_tenant(stack: LocalStack, prefix: str = "rel") -> Tenant:
    """A new customer: signed up, signed in, provisioned (welcome credits) by the first ``GET /v1/me``."""
    email = f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"
    tokens = stack.sign_up(email, PASSWORD)
    api = ApiClient(stack.api_url, tokens["access_token"])
    me = api.me()
    return Tenant(email, tokens, api, str(me["tenant_id"]), int(me["balance"]))


def garment_jpeg(size: tuple[int, int] = (480, 600), colour: tuple[int, int, int] = (30, 60, 140)) -> bytes:
    """A small, valid garment photo on a grey backdrop (the studio engine processes it in well under a second)."""
    buffer = io.BytesIO()
    garment_image(size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.empty():
        return
    TALLY.write()
    terminalreporter.section("reliability suite: what was tried")
    terminalreporter.write_line(TALLY.render())
