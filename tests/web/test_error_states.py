"""Every page in an error state shows sentences, never internals: the API and the sign-in service are made to
answer with the worst text they could send (an SDK exception with a storage address, a file path, a JSON body),
with unknown codes, with server errors and with no answer at all, and jobs come back failed with such text stored
on them. Each page's visible text (and the toast) is then searched for exception class names, JSON error bodies,
AWS service names and file paths. Screenshots: ``out/screenshots/errors-*.png``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.web.support import PHONE, Session

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LEAKY = (
    "botocore.errorfactory.ValidationError: An error occurred (ValidationError) when calling the "
    "InvokeEndpointAsync operation: ClientError: Received client error (400) from model with message "
    '"{"error":{"code":"no_garment_found"}}". See the SageMaker Endpoint logs in your account; '
    "s3://modamoda-uploads/in/t/j.jpg /opt/ml/model/weights.safetensors Traceback (most recent call last)"
)

# What no screen may show. The marketplace preset "Amazon" is a shop, not an AWS service: only AWS's own names.
FORBIDDEN = [
    (re.compile(r"\b[A-Z][A-Za-z]+(?:Error|Exception)\b"), "an exception class name"),
    (re.compile(r"Traceback|botocore|boto3"), "a stack trace or SDK name"),
    (re.compile(r"[{\[]\s*\"[a-z_]+\"\s*:"), "a JSON body"),
    (re.compile(r"\"(?:error|code|message)\"\s*:"), "a JSON field"),
    (
        re.compile(
            r"\b(?:AWS|SageMaker|Cognito|Lambda|S3|DynamoDB|Step Functions|EventBridge|CloudFront|CloudWatch|"
            r"API Gateway|RDS|SNS|SQS)\b"
        ),
        "an AWS service name",
    ),
    (re.compile(r"s3://|(?<![\w.])/(?:opt|tmp|var|usr|home|etc)/|[A-Za-z]:\\\\|\.py\b"), "a file path"),
]

PAGES = ("", "process", "history", "credits", "account")


def leaks(text: str) -> list[str]:
    return [f"{what}: {m.group(0)!r}" for pattern, what in FORBIDDEN for m in pattern.finditer(text)]


def visible_text(page: Any) -> str:
    return str(
        page.evaluate("() => document.body.innerText + '\\n' + document.getElementById('toast').textContent")
    )


def failed_job(job_id: str, status: str, code: str) -> dict[str, Any]:
    stamp = "2026-12-01T10:00:00+00:00"
    return {
        "id": job_id,
        "mode": "ghost",
        "status": status,
        "priority": "normal",
        "filename": f"{code}.jpg",
        "options": {"preset": "square", "background": "#ffffff"},
        "cost": None,
        "error": {"code": code, "message": LEAKY},
        "result_url": None,
        "thumbnail_url": None,
        "original_url": None,
        "progress": {"stage": "done", "label": "Failed", "percent": 100, "step": 5, "steps": 5},
        "stages": {"awaiting_upload": stamp, status: stamp},
        "created_at": stamp,
        "updated_at": stamp,
        "batch_id": None,
        "sku": None,
        "quality": None,
    }


JOBS = [
    failed_job("00000000-0000-4000-8000-000000000001", "failed", "inference_failed"),
    failed_job("00000000-0000-4000-8000-000000000002", "rejected", "no_garment_found"),
    failed_job("00000000-0000-4000-8000-000000000003", "failed", "some_code_the_app_does_not_know"),
    failed_job("00000000-0000-4000-8000-000000000004", "rejected", "low_confidence"),
]


def api_answer(mode: str) -> Callable[[Any], None]:
    """A route handler for the API: ``mode`` says how every call (but the job list/detail in "jobs") answers."""

    def handle(route: Any) -> None:
        request = route.request
        if request.method == "OPTIONS":
            route.continue_()
            return
        path = request.url.split("?")[0]
        if mode == "offline":
            route.abort("internetdisconnected")
            return
        if mode == "jobs" and re.search(r"/v1/jobs/?$", path):
            route.fulfill(
                status=200,
                content_type="application/json",
                body=json.dumps({"items": JOBS, "next_cursor": None}),
            )
            return
        if mode == "jobs" and re.search(r"/v1/jobs/[0-9a-f-]{36}$", path):
            job = next((j for j in JOBS if path.endswith(j["id"])), JOBS[0])
            route.fulfill(status=200, content_type="application/json", body=json.dumps(job))
            return
        if mode == "jobs":
            route.continue_()
            return
        status = {"server": 500, "unknown": 400, "gateway": 502}[mode]
        body = (
            {"message": LEAKY}  # API Gateway's own shape
            if mode == "gateway"
            else {
                "error": {
                    "code": "internal_error" if mode == "server" else "weird_new_code",
                    "message": LEAKY,
                    "details": [{"loc": ["body", "x"], "message": LEAKY}],
                }
            }
        )
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    return handle


MODES = ["server", "unknown", "gateway", "offline", "jobs"]
# make test: every failure at desktop size and the leaky jobs at phone size (the same pages, the same sentences);
# make stress (MODAMODA_STRESS=1): every failure at both sizes.
CASES = [(mode, "desktop") for mode in MODES] + [
    (mode, "phone") for mode in MODES if os.environ.get("MODAMODA_STRESS") or mode == "jobs"
]


@pytest.mark.parametrize(("mode", "viewport"), CASES)
def test_no_page_shows_internals_when_the_api_fails(
    browser: Any, stack: Any, screenshot_dir: Any, customer: str, mode: str, viewport: str
) -> None:
    size = PHONE if viewport == "phone" else {"width": 1366, "height": 900}
    session = Session(
        browser, stack, screenshot_dir, viewport=size, bypass_csp=True, is_mobile=viewport == "phone"
    )
    try:
        page = session.sign_in(customer)  # signed in for real; then every API answer goes bad
        session.context.route(f"{stack.api_url}/**", api_answer(mode))
        found: dict[str, list[str]] = {}
        routes = list(PAGES) + ([f"jobs/{job['id']}" for job in JOBS] if mode == "jobs" else [])
        for route in routes:
            page.goto(f"{stack.web_url}/#/{route}")
            page.wait_for_selector("#main:not([aria-busy])", timeout=30_000)
            page.wait_for_timeout(300)  # late toasts
            if mode == "jobs" and route == "history":
                page.wait_for_selector("#history-list [data-job-id]")
            text = visible_text(page)
            if leaks(text):
                found[route or "dashboard"] = leaks(text)
            session.shot(f"errors-{mode}-{viewport}-{(route or 'dashboard').replace('/', '-')[:20]}")
        if mode == "jobs":
            page.goto(f"{stack.web_url}/#/history")
            page.wait_for_selector("#history-list [data-job-id]")
            shown = visible_text(page)
            assert "No credits were charged" in shown, "a failed job says what happened to the credits"
        assert found == {}, found
    finally:
        session.context.unroute_all(behavior="ignoreErrors")
        session.close()


COGNITO_ERRORS = [
    (
        "InvalidPasswordException",
        "Password did not conform with policy: Password must have symbol characters",
    ),
    (
        "InvalidParameterException",
        "1 validation error detected: Value at 'password' failed to satisfy constraint",
    ),
    ("InternalErrorException", "An internal error occurred in Amazon Cognito"),
    ("SomethingNewException", "arn:aws:cognito-idp:us-east-1:123:userpool/x is misconfigured"),
]


@pytest.mark.parametrize(("kind", "message"), COGNITO_ERRORS)
def test_sign_in_and_sign_up_show_sentences_when_the_sign_in_service_fails(
    browser: Any, stack: Any, screenshot_dir: Any, kind: str, message: str
) -> None:
    session = Session(
        browser, stack, screenshot_dir, viewport={"width": 1366, "height": 900}, bypass_csp=True
    )
    try:
        session.context.route(
            "**/local/cognito",
            lambda route: route.fulfill(
                status=400,
                content_type="application/x-amz-json-1.1",
                body=json.dumps({"__type": kind, "message": message}),
            ),
        )
        page = session.open("signin")
        page.fill("#signin-email", "someone@modamoda.example")
        page.fill("#signin-password", "Whatever-Passw0rd!")
        page.click("#signin-submit")
        page.wait_for_function(
            "document.querySelector('#signin-error') && !document.querySelector('#signin-error').hidden"
        )
        assert leaks(visible_text(page)) == []
        page.click("#show-signup")
        page.fill("#signup-email", "someone@modamoda.example")
        page.fill("#signup-password", "weak")
        page.click("#signup-submit")
        page.wait_for_function(
            "document.querySelector('#signup-error') && !document.querySelector('#signup-error').hidden"
        )
        text = visible_text(page)
        assert leaks(text) == [], text
        assert "Password did not conform" not in text
        session.shot(f"errors-signup-{kind}")
    finally:
        session.close()
