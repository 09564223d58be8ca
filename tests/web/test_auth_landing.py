"""Signing in as a person does it, in headless Chromium against a local stack whose sign-ups wait for the e-mailed
code (``LocalSettings(confirm_sign_ups=True)``; the codes land in the stack's local mailbox): the landing page a
signed-out visitor sees (examples, prices), "Keep me signed in on this device" across tabs and restarts, sign-out
in every tab with the refresh token revoked, forgot password, confirm-by-code with "Send a new code", and our own
sentences for a refused password. Desktop (1366 x 900) and phone (390 x 844) sizes; screenshots ``auth-*``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import LocalSettings, LocalStack
from tests.web.support import CONTRAST, PASSWORD, UNLABELLED, Session, balance_text

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DESKTOP: dict[str, Any] = {"viewport": {"width": 1366, "height": 900}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
SIZES: dict[str, dict[str, Any]] = {"desktop": DESKTOP, "phone": PHONE}
SESSION_KEY = "modamoda.session"
# What a person must never read: internals of the sign-in service and its raw sentences.
LEAKS = re.compile(
    r"cognito|exception|did not conform|validation error|constraint|__type|amazon|aws", re.IGNORECASE
)
WELCOME_CREDITS = 10


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """This module's own stack: sign-ups are confirmed with the code from the mailbox, and codes are checked."""
    with LocalStack(LocalSettings(confirm_sign_ups=True)) as running:
        yield running


@pytest.fixture
def opened(browser: Any, stack: LocalStack, screenshot_dir: Path) -> Iterator[Callable[..., Session]]:
    """Open browser sessions (closed, and checked for page errors, at the end of the test)."""
    sessions: list[Session] = []

    def open_session(size: str = "desktop", csp: bool = False, **options: Any) -> Session:
        # wait_for_function evaluates strings in the page, which the CSP forbids: tests that keep the CSP on poll
        # with evaluate() instead (poll() below).
        s = Session(browser, stack, screenshot_dir, **SIZES[size], bypass_csp=not csp, **options)
        sessions.append(s)
        return s

    yield open_session
    errors = [e for s in sessions for e in s.unexpected_errors()]
    for s in sessions:
        s.close()
    assert errors == [], errors


def poll(page: Any, script: str, timeout: float = 20.0) -> Any:
    """Evaluate ``script`` until it is truthy (evaluate() runs under the app's CSP; wait_for_function does not)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {script}")
        page.wait_for_timeout(100)


def cognito(stack: LocalStack, operation: str, body: dict[str, Any]) -> requests.Response:
    """A call to the sign-in service as the browser makes it."""
    return requests.post(
        f"{stack.web_url}/local/cognito",
        json=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AWSCognitoIdentityProviderService.{operation}",
        },
        timeout=10,
    )


def sign_in(
    page: Any, stack: LocalStack, email: str, password: str = PASSWORD, remember: bool = False
) -> None:
    page.goto(f"{stack.web_url}/#/signin")
    page.fill("#signin-email", email)
    page.fill("#signin-password", password)
    if remember:
        page.check("#signin-remember")
    else:
        assert not page.is_checked("#signin-remember")  # not kept unless the person asks
    page.click("#signin-submit")
    page.wait_for_selector("#credits-balance")


def stored_session(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            f"""() => ({{local: localStorage.getItem('{SESSION_KEY}'), tab: sessionStorage.getItem('{SESSION_KEY}')}})"""
        )
    )


def is_signed_in(page: Any, stack: LocalStack) -> bool:
    """Open the dashboard route in ``page``: the dashboard (signed in) or the landing page (signed out)."""
    page.goto(f"{stack.web_url}/#/")
    page.wait_for_selector("#credits-balance, #landing-title")
    return page.locator("#credits-balance").count() == 1


def assert_page_checks(page: Any, name: str) -> None:
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow}px"
    assert page.evaluate(UNLABELLED) == [], name
    assert page.evaluate(CONTRAST) == [], name
    text = page.inner_text("body")
    assert not LEAKS.search(text), LEAKS.search(text)


def new_customer(stack: LocalStack, name: str, password: str = PASSWORD) -> str:
    email = f"{name}-{time.monotonic_ns()}@modamoda.example"
    stack.sign_up(email, password)
    return email


# ---- the landing page ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_landing_page_shows_examples_and_pack_prices(
    opened: Callable[..., Session], stack: LocalStack, size: str
) -> None:
    session = opened(size, csp=True)
    violations: list[str] = []
    session.page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    page = session.open()
    page.wait_for_selector("#landing-title")
    assert page.locator("#site-nav").is_hidden()  # signed out
    assert page.locator("#landing-signup").is_visible()
    assert page.locator("#landing-signin").is_visible()

    # examples: each pair loaded, said to be made from sample photos
    examples = page.locator("img[data-example]")
    assert examples.count() >= 6
    poll(
        page,
        "() => [...document.querySelectorAll('img[data-example]')].every(i => i.complete && i.naturalWidth > 0)",
    )
    for i in range(examples.count()):
        assert (examples.nth(i).get_attribute("alt") or "").strip()
        assert (examples.nth(i).get_attribute("src") or "").endswith(".webp")
    assert "sample photos" in page.inner_text(".landing")

    # prices: every pack on sale, its price, credits and per-image cost for each mode
    public = requests.get(f"{stack.api_url}/v1/public/packs", timeout=10).json()
    page.wait_for_selector("#landing-packs [data-pack]")
    assert page.locator("#landing-packs [data-pack]").count() == len(public["items"])
    for pack in public["items"]:
        card = page.locator(f'#landing-packs [data-pack="{pack["id"]}"]').inner_text()
        assert pack["name"] in card
        assert f"{pack['credits']} credits" in card
        assert f"{pack['price_cents'] / 100:.2f}" in card.replace(",", ".")
        assert "per ghost-mannequin image" in card
    costs = page.inner_text("#image-costs")
    assert f"One ghost-mannequin image costs {public['costs']['ghost']} credit" in costs
    if "on-model" in public["costs"]:
        assert f"One on-model image costs {public['costs']['on-model']} credits" in costs
    assert "nothing is charged" in page.inner_text(".landing")

    assert_page_checks(page, f"landing ({size})")
    session.shot(f"auth-landing-{size}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"  # the skip link first
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "landing-signup"  # the calls to action next

    page.click("#landing-signup")
    page.wait_for_selector("#signup-email", state="visible")
    assert page.get_by_role("heading", name="Create an account").count() == 1
    page.click("#show-signin")
    page.wait_for_selector("#signin-email", state="visible")
    assert_page_checks(page, f"sign-in ({size})")
    session.shot(f"auth-signin-{size}")
    assert violations == [], violations


# ---- sign-up: one heading, our own password sentences ----------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_sign_up_has_one_heading_and_explains_a_weak_password(
    opened: Callable[..., Session], stack: LocalStack, size: str
) -> None:
    session = opened(size)
    page = session.open("signin")
    page.click("#show-signup")
    page.wait_for_selector("#signup-email", state="visible")
    assert page.get_by_role("heading", name="Create an account").count() == 1
    assert page.locator("h1, h2, h3").filter(has_text="Create an account").count() == 1
    email = f"weak-{size}-{time.monotonic_ns()}@modamoda.example"
    for weak in ("short", "nouppercase-or-digits"):
        page.fill("#signup-email", email)
        page.fill("#signup-password", weak)
        page.click("#signup-submit")
        error = page.locator("#signup-error")
        error.wait_for(state="visible")
        text = error.inner_text()
        assert "at least 12 characters" in text, text
        assert "upper- and lower-case letters, a number and a symbol" in text, text
        assert not LEAKS.search(text), text
        assert page.locator("#credits-balance").count() == 0
    assert_page_checks(page, f"sign-up error ({size})")
    session.shot(f"auth-signup-weak-password-{size}")


# ---- staying signed in -----------------------------------------------------------------------------------------


def test_keep_me_signed_in_survives_new_tabs_and_restarts(
    opened: Callable[..., Session], stack: LocalStack
) -> None:
    email = new_customer(stack, "kept")
    first = opened("desktop")
    sign_in(first.page, stack, email, remember=True)
    kept = stored_session(first.page)
    assert kept["local"]
    assert not kept["tab"]

    second = first.context.new_page()  # a new tab of the same browser
    assert is_signed_in(second, stack)
    first.shot("auth-kept-first-tab")

    # the browser restarts: every tab closed, the stored data kept
    state = first.context.storage_state()
    for page in list(first.context.pages):
        page.close()
    reopened = first.context.new_page()
    assert is_signed_in(reopened, stack)
    restarted = opened("desktop", storage_state=state)
    assert is_signed_in(restarted.page, stack)
    assert balance_text(restarted.page) == WELCOME_CREDITS
    restarted.shot("auth-kept-after-restart")


def test_without_keep_me_signed_in_the_session_ends_with_the_browser(
    opened: Callable[..., Session], stack: LocalStack
) -> None:
    email = new_customer(stack, "tab-only")
    first = opened("desktop")
    sign_in(first.page, stack, email)
    stored = stored_session(first.page)
    assert stored["tab"]
    assert not stored["local"]

    # a new tab while the first is open asks it for the session (BroadcastChannel): still signed in, still not kept
    second = first.context.new_page()
    assert is_signed_in(second, stack)
    assert not stored_session(second)["local"]

    # the browser restarts: nothing was kept
    state = first.context.storage_state()
    assert SESSION_KEY not in str(state)
    for page in list(first.context.pages):
        page.close()
    reopened = first.context.new_page()
    assert not is_signed_in(reopened, stack)
    fresh = opened("desktop", storage_state=state)
    assert not is_signed_in(fresh.page, stack)
    fresh.shot("auth-not-kept-new-browser")


@pytest.mark.parametrize("remember", [True, False], ids=["kept", "tab-only"])
def test_sign_out_in_one_tab_signs_out_the_other_and_revokes_the_token(
    opened: Callable[..., Session], stack: LocalStack, remember: bool
) -> None:
    email = new_customer(stack, f"signout-{remember}")
    first = opened("phone")
    sign_in(first.page, stack, email, remember=remember)
    stored = stored_session(first.page)
    refresh_token = json.loads(stored["local"] or stored["tab"])["refreshToken"]
    second = first.context.new_page()
    assert is_signed_in(second, stack)

    first.page.click("#signout")
    first.page.wait_for_selector("#signin-email")
    second.wait_for_selector("#signin-email")  # the other tab follows
    second.wait_for_selector("#toast:has-text('signed out in another tab')")
    for page in (first.page, second):
        assert stored_session(page) == {"local": None, "tab": None}
    second.screenshot(
        path=str(first.shots / f"auth-signed-out-elsewhere-{'kept' if remember else 'tab'}.png")
    )

    # the refresh token is revoked: trading it for new tokens fails
    deadline = time.monotonic() + 10
    while True:
        answer = cognito(
            stack,
            "InitiateAuth",
            {
                "AuthFlow": "REFRESH_TOKEN_AUTH",
                "ClientId": stack.client_id,
                "AuthParameters": {"REFRESH_TOKEN": refresh_token},
            },
        )
        if answer.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the revocation is sent as the tab signs out
    assert answer.status_code == 400
    assert answer.json()["__type"].endswith("NotAuthorizedException")


# ---- forgot password -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["phone"])
def test_forgot_password_with_the_mailed_code(
    opened: Callable[..., Session], stack: LocalStack, size: str
) -> None:
    old, new = PASSWORD, "Brand-New-Passw0rd!"
    email = new_customer(stack, "forgot", old)
    session = opened(size)
    page = session.open("signin")
    page.fill("#signin-email", email)
    page.click("#show-forgot")
    assert page.input_value("#forgot-email") == email
    assert page.get_by_role("heading", name="Reset your password").count() == 1
    assert_page_checks(page, "forgot password")
    session.shot(f"auth-forgot-{size}")
    page.click("#forgot-submit")
    page.wait_for_selector("#reset-code", state="visible")
    code = stack.last_code(email, "forgot_password")
    assert code

    # a wrong code: our sentence, the password unchanged
    page.fill("#reset-code", "000000" if code != "000000" else "111111")
    page.fill("#reset-password", new)
    page.click("#reset-submit")
    page.locator("#reset-error").wait_for(state="visible")
    assert "code is not right" in page.inner_text("#reset-error")
    assert not LEAKS.search(page.inner_text("#reset-error"))

    # a new code replaces the first
    page.click("#reset-resend")
    page.wait_for_selector("#reset-status:has-text('We sent a new code')")
    newest = stack.last_code(email, "forgot_password")
    assert newest
    assert_page_checks(page, "reset password")
    session.shot(f"auth-reset-{size}")
    page.fill("#reset-code", newest)
    page.fill("#reset-password", new)
    page.click("#reset-submit")
    page.wait_for_selector("#credits-balance")  # changed and signed in with it
    session.shot(f"auth-reset-signed-in-{size}")

    page.click("#signout")
    page.wait_for_selector("#signin-email")
    page.fill("#signin-email", email)
    page.fill("#signin-password", old)
    page.click("#signin-submit")
    page.locator("#signin-error").wait_for(state="visible")
    assert page.inner_text("#signin-error") == "Incorrect e-mail address or password."
    assert page.locator("#credits-balance").count() == 0
    sign_in(page, stack, email, new)


# ---- sign-up with a code ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_sign_up_confirm_with_the_newest_code_after_a_resend(
    opened: Callable[..., Session], stack: LocalStack, size: str
) -> None:
    email = f"coded-{size}-{time.monotonic_ns()}@modamoda.example"
    session = opened(size)
    page = session.open()
    page.click("#landing-signup")
    page.fill("#signup-email", email)
    page.fill("#signup-password", PASSWORD)
    page.click("#signup-submit")
    page.wait_for_selector("#confirm-code", state="visible")
    assert page.get_by_role("heading", name="Confirm your e-mail address").count() == 1
    first = stack.last_code(email)
    assert first

    page.click("#resend-code")
    page.wait_for_selector("#confirm-status:has-text('We sent a new code')")
    newest = stack.last_code(email, "resend")
    assert newest
    assert_page_checks(page, f"confirm ({size})")
    session.shot(f"auth-confirm-resent-{size}")
    if newest != first:  # the replaced code no longer works
        page.fill("#confirm-code", first)
        page.click("#confirm-submit")
        page.locator("#confirm-error").wait_for(state="visible")
        assert not LEAKS.search(page.inner_text("#confirm-error"))
    page.fill("#confirm-code", newest)
    page.click("#confirm-submit")
    page.wait_for_selector("#credits-balance")
    page.wait_for_function(
        f"Number(document.querySelector('#credits-balance').textContent.replace(/\\D/g, '')) === {WELCOME_CREDITS}"
    )
    assert balance_text(page) == WELCOME_CREDITS
    session.shot(f"auth-confirmed-signed-in-{size}")


def test_an_unconfirmed_sign_in_gets_the_code_screen_and_a_new_code(
    opened: Callable[..., Session], stack: LocalStack
) -> None:
    email = f"unconfirmed-{time.monotonic_ns()}@modamoda.example"
    answer = cognito(
        stack,
        "SignUp",
        {
            "ClientId": stack.client_id,
            "Username": email,
            "Password": PASSWORD,
            "UserAttributes": [{"Name": "email", "Value": email}],
        },
    )
    assert answer.status_code == 200
    assert not answer.json()["UserConfirmed"]
    session = opened("desktop")
    page = session.open("signin")
    page.fill("#signin-email", email)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    page.wait_for_selector("#confirm-code", state="visible")
    assert "not confirmed yet" in page.inner_text("#confirm-text")
    page.click("#resend-code")
    page.wait_for_selector("#confirm-status:has-text('We sent a new code')")
    page.fill("#confirm-code", stack.last_code(email, "resend") or "")
    page.click("#confirm-submit")
    page.wait_for_selector("#credits-balance")
    session.shot("auth-unconfirmed-then-confirmed")


def test_the_examples_are_small_webp_files_in_the_app_shell() -> None:
    from PIL import Image

    from local.stack import ROOT

    app = ROOT / "web" / "app"
    shell = (app / "sw.js").read_text(encoding="utf-8")
    landing = (app / "js" / "pages" / "landing.js").read_text(encoding="utf-8")
    files = sorted((app / "examples").glob("*.webp"))
    assert len(files) >= 6
    for path in files:
        assert path.stat().st_size < 100 * 1024, path.name
        with Image.open(path) as image:
            assert image.format == "WEBP"
            assert max(image.size) <= 600
        assert f"'examples/{path.name}'" in shell, f"{path.name} is not precached"
        assert path.stem.rsplit("-", 1)[0] in landing
