"""The PWA as a customer uses it, in headless Chromium against the local stack: sign up and sign in, process a
sample photo and see the result, buy credits through the test checkout, browse history offline, and the phone,
keyboard and contrast checks. Each test saves screenshots of what it saw."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import LocalStack
from tests.web.conftest import SAMPLES
from tests.web.support import (
    CONTRAST,
    PASSWORD,
    PHONE,
    UNLABELLED,
    Session,
    balance_text,
    process_sample,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_sign_up_in_the_app_and_see_the_welcome_credits(session: Session) -> None:
    page = session.open()
    page.wait_for_selector("#landing-title")  # signed out: the landing page (tests/web/test_auth_landing.py)
    page.click("#landing-signin")
    page.wait_for_selector("#signin-email")
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
    page.locator("#signin-error").wait_for(state="visible")  # said under the form
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
