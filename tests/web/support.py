"""What the browser tests share: a watched browser session, sign-in, processing a sample, and the page checks
(contrast, labels) every screen must pass."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from local.stack import LocalStack

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
