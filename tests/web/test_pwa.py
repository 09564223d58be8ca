"""The PWA as a customer uses it, in headless Chromium against the local stack: sign up and sign in, process a
sample photo and see the result, buy credits through the test checkout, browse history offline, and the phone,
keyboard and contrast checks. Each test saves screenshots of what it saw."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import LocalStack
from tests.web.conftest import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "Browser-Test-Passw0rd"
PHONE = {"width": 360, "height": 740}


class Session:
    """A browser context (own storage, own service worker) with the console watched for errors."""

    def __init__(self, browser: Any, stack: LocalStack, shots: Path, **options: Any) -> None:
        self.stack, self.shots = stack, shots
        self.context = browser.new_context(**options)
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
            ),
        )

    def open(self, route: str = "") -> Any:
        self.page.goto(f"{self.stack.web_url}/#/{route}")
        return self.page

    def sign_in(self, email: str, password: str = PASSWORD) -> Any:
        page = self.open("signin")
        page.fill("#signin-email", email)
        page.fill("#signin-password", password)
        page.click("#signin-submit")
        page.wait_for_selector("#credits-balance")
        return page

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def unexpected_errors(self) -> list[str]:
        """Page errors and console errors, less the browser's own log lines for failed requests (4xx answers the
        app handles, requests cut off by going offline)."""
        return [e for e in self.errors if "Failed to load resource" not in e]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser: Any, stack: LocalStack, screenshot_dir: Path) -> Iterator[Session]:
    # Playwright's wait_for_function evaluates strings in the page, which the app's CSP (no eval) forbids; the
    # phone test below runs under the CSP and fails on any violation.
    opened = Session(browser, stack, screenshot_dir, viewport={"width": 1280, "height": 900}, bypass_csp=True)
    yield opened
    errors = opened.unexpected_errors()
    opened.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def customer(stack: LocalStack) -> str:
    email = "browser-customer@modamoda.example"
    stack.sign_up(email, PASSWORD)
    return email


def balance_text(page: Any) -> int:
    return int(re.sub(r"\D", "", page.text_content("#credits-balance") or ""))


def process_sample(page: Any, sample: Path) -> str:
    """Upload a sample on the processing page and wait for its result image; returns the job id."""
    page.click('[data-nav="process"]')
    page.set_input_files("#file-input", str(sample))
    page.select_option("#mode", "ghost")
    page.click("#process-submit")
    row = page.locator("[data-upload]").last
    row.locator('[data-status="succeeded"]').wait_for(timeout=120_000)
    image = row.locator("img[data-result]")
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    job_id = row.get_attribute("data-job-id") or row.locator("[data-job-id]").first.get_attribute(
        "data-job-id"
    )
    assert job_id, "the upload row names its job"
    return job_id


def test_sign_up_in_the_app_and_see_the_welcome_credits(session: Session) -> None:
    page = session.open()
    page.wait_for_selector("#signin-email")  # signed out: the app asks to sign in
    page.click("#show-signup")
    page.fill("#signup-email", "new-shop@modamoda.example")
    page.fill("#signup-password", PASSWORD)
    page.click("#signup-submit")
    page.wait_for_selector("#credits-balance")
    assert balance_text(page) == 10
    session.shot("01-dashboard-after-sign-up")
    page.click("#signout")
    page.wait_for_selector("#signin-email")
    page.fill("#signin-email", "new-shop@modamoda.example")
    page.fill("#signin-password", "Wrong-Passw0rd-123")
    page.click("#signin-submit")
    page.wait_for_function("document.querySelector('#toast').textContent.trim().length > 0")
    assert page.locator("#credits-balance").count() == 0
    session.shot("02-sign-in-refused")


def test_upload_a_sample_and_see_the_result(session: Session, customer: str) -> None:
    page = session.sign_in(customer)
    before = balance_text(page)
    session.shot("03-dashboard")
    job_id = process_sample(page, SAMPLES / "tshirt_navy.jpg")
    session.shot("04-processed")
    progress = page.locator("[data-upload] progress").last
    assert progress.get_attribute("value") == progress.get_attribute("max")  # the upload finished
    page.click('[data-nav="dashboard"]')
    page.wait_for_selector(f'#recent-jobs [data-job-id="{job_id}"]')
    assert balance_text(page) == before - 1


def test_buy_credits_through_the_test_checkout(session: Session, customer: str) -> None:
    page = session.sign_in(customer)
    page.click('[data-nav="credits"]')
    page.wait_for_selector("button[data-buy]")
    before = balance_text(page)
    buy = page.locator("button[data-buy]").first
    pack_id = buy.get_attribute("data-buy")
    session.shot("05-credits-packs")
    buy.click()
    page.wait_for_url(re.compile(r"/local/stripe/checkout/cs_"))
    session.shot("06-test-checkout")
    page.click("#pay")
    page.wait_for_url(re.compile(r"#/credits\?checkout=success"))
    page.wait_for_function(
        f"Number((document.querySelector('#credits-balance')||{{}}).textContent?.replace(/\\D/g,'')) > {before}",
        timeout=30_000,
    )
    after = balance_text(page)
    session.shot("07-credits-bought")
    token = session.stack.sign_in(customer, PASSWORD)["access_token"]
    packs = requests.get(
        f"{session.stack.api_url}/v1/credits/packs", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()["items"]
    pack = next(p for p in packs if p["id"] == pack_id)
    assert after == before + pack["credits"]
    page.wait_for_selector("#ledger")
    assert "grant" in (page.text_content("#ledger") or "").lower() or pack["name"] in (
        page.text_content("#ledger") or ""
    )


def test_history_is_browsable_offline(session: Session, customer: str) -> None:
    page = session.sign_in(customer)
    job_id = process_sample(page, SAMPLES / "hoodie_burgundy.jpg")
    page.click('[data-nav="history"]')
    item = page.locator(f'#history-list [data-job-id="{job_id}"]')
    item.wait_for()
    thumb = item.locator("img[data-result]")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)
    session.shot("08-history-online")

    session.context.set_offline(True)
    page.reload()
    page.wait_for_selector("#offline-banner", state="visible")
    item = page.locator(f'#history-list [data-job-id="{job_id}"]')
    item.wait_for()
    thumb = item.locator("img[data-result]")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    session.shot("09-history-offline")
    session.context.set_offline(False)


def test_history_filters_download_and_delete(session: Session, customer: str) -> None:
    page = session.sign_in(customer)
    job_id = process_sample(page, SAMPLES / "trousers_khaki.jpg")
    page.click('[data-nav="history"]')
    page.wait_for_selector(f'#history-list [data-job-id="{job_id}"]')
    page.fill("#history-search", "trousers")
    page.wait_for_function(
        "[...document.querySelectorAll('#history-list [data-job-id]')].every(e => e.textContent.includes('trousers'))"
    )
    item = page.locator(f'#history-list [data-job-id="{job_id}"]')
    with page.expect_download() as download:
        item.locator("a[data-download]").click()
    assert download.value.suggested_filename.startswith("trousers_khaki")
    page.once("dialog", lambda dialog: dialog.accept())
    item.locator("button[data-delete]").click()
    item.wait_for(state="detached")
    session.shot("10-history-after-delete")


def test_installable_manifest_and_service_worker(session: Session) -> None:
    page = session.open()
    href = page.get_attribute('link[rel="manifest"]', "href")
    assert href
    manifest = json.loads(requests.get(f"{session.stack.web_url}/{href.lstrip('./')}", timeout=10).text)
    assert manifest["display"] == "standalone"
    assert manifest["start_url"]
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    assert any("maskable" in icon.get("purpose", "") for icon in manifest["icons"])
    for icon in manifest["icons"]:
        got = requests.get(f"{session.stack.web_url}/{icon['src'].lstrip('./')}", timeout=10)
        assert got.status_code == 200
        assert got.headers["content-type"] == "image/png"
    page.wait_for_function("navigator.serviceWorker.controller !== null || navigator.serviceWorker.ready")
    registered = page.evaluate("navigator.serviceWorker.getRegistrations().then(r => r.length)")
    assert registered == 1


CONTRAST = """
() => {
  const parse = c => { const m = c.match(/[\\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m[3] ?? 1}; };
  const lum = ({r, g, b}) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = el => { for (; el; el = el.parentElement) { const c = parse(getComputedStyle(el).backgroundColor);
      if (c.a > 0.5) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === 'hidden' || style.display === 'none' || !el.getClientRects().length) continue;
    const [a, b] = [lum(parse(style.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(`${el.tagName}#${el.id}.${el.className}: ${ratio.toFixed(2)} "${el.textContent.trim().slice(0, 30)}"`);
  }
  return bad;
}
"""

UNLABELLED = """
() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden' && el.getClientRects().length)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 80))
"""


def test_phone_layout_keyboard_labels_and_contrast(
    browser: Any, stack: LocalStack, screenshot_dir: Path, customer: str
) -> None:
    phone = Session(browser, stack, screenshot_dir, viewport=PHONE, is_mobile=True, has_touch=True)
    violations: list[str] = []
    phone.page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    try:
        page = phone.open("signin")
        page.wait_for_selector("#signin-email")
        assert page.evaluate(UNLABELLED) == []
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"  # the skip link first
        page.focus("#signin-email")
        page.keyboard.type(customer)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")  # keyboard only
        page.wait_for_selector("#credits-balance")
        for route in ("dashboard", "process", "history", "credits", "account"):
            page.click(f'[data-nav="{route}"]')
            page.wait_for_selector("#main")
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{route} scrolls sideways on a phone by {overflow}px"
            assert page.evaluate(UNLABELLED) == [], route
            assert page.evaluate(CONTRAST) == [], route
            phone.shot(f"11-phone-{route}")
        errors = phone.unexpected_errors()
        assert errors == [], errors
        assert violations == [], violations  # the app runs under the cloud's CSP
    finally:
        phone.close()
