"""The process page as a customer uses it, in headless Chromium against the local stack, at desktop (1366 x 900) and
phone (390 x 844) sizes: the cost of the selection and the balance after it, a batch larger than the balance, photos
dropped, pasted and chosen several at once, the background, size and priority options, one stage label per photo,
the batch counter, the results grid with Download all (one ZIP), Retry of a refused photo, on-model not offered
where the deployment cannot make it, and the status line never over a control. Screenshots: out/screenshots/
process-*.png."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from local.stack import LocalStack
from tests.web.conftest import SAMPLES
from tests.web.support import CONTRAST, PASSWORD, UNLABELLED, Session

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
SAMPLE_FILES = ("tshirt_navy.jpg", "hoodie_burgundy.jpg", "dress_emerald.jpg", "trousers_khaki.jpg")
_emails = itertools.count(1)

# Dispatches a drop on the drop zone, or a paste on the page, carrying the given files (built from bytes).
GIVE_FILES = """
({files, how}) => {
  const data = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    data.items.add(new File([bytes], f.name, {type: f.type}));
  }
  if (how === 'paste') {
    document.body.dispatchEvent(new ClipboardEvent('paste', {bubbles: true, cancelable: true, clipboardData: data}));
    return;
  }
  const zone = document.querySelector('#dropzone');
  for (const type of ['dragenter', 'dragover', 'drop']) {
    zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: data}));
  }
}
"""

# Watches every tile: the badge, the tile's stage label and the progress bar's spoken value must always agree.
WATCH_STAGES = """
() => {
  window.__stages = {seen: [], mismatches: []};
  const check = () => {
    for (const tile of document.querySelectorAll('#upload-list [data-upload]')) {
      const badge = tile.querySelector('[data-stage-badge]').textContent;
      const label = tile.dataset.stageLabel;
      const spoken = tile.querySelector('[data-stage-progress]').getAttribute('aria-valuetext');
      if (badge !== label || spoken !== label) window.__stages.mismatches.push([badge, label, spoken]);
      const last = window.__stages.seen[window.__stages.seen.length - 1];
      const key = tile.dataset.upload + '|' + label;
      if (last !== key) window.__stages.seen.push(key);
    }
  };
  new MutationObserver(check).observe(document.querySelector('#upload-list'),
    {subtree: true, childList: true, characterData: true, attributes: true});
  check();
}
"""

# Visible buttons, links styled as buttons and error messages that the status line overlaps.
TOAST_OVERLAPS = """
() => {
  const toast = document.querySelector('#toast').getBoundingClientRect();
  if (!toast.width || !toast.height) return [];
  const hits = [];
  for (const el of document.querySelectorAll('button, .btn, a, input, select, .form-error, .upload-error')) {
    if (el.closest('#toast') || !el.getClientRects().length) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.height && r.left < toast.right && r.right > toast.left && r.top < toast.bottom && r.bottom > toast.top) {
      hits.push(el.outerHTML.slice(0, 80));
    }
  }
  return hits;
}
"""


def sample_files(*names: str, rename: str | None = None) -> list[dict[str, str]]:
    files = []
    for index, name in enumerate(names):
        data = (SAMPLES / name).read_bytes()
        shown = f"{rename}-{index + 1}.jpg" if rename else name
        files.append({"name": shown, "type": "image/jpeg", "b64": base64.b64encode(data).decode()})
    return files


def give(page: Any, files: list[dict[str, str]], how: str = "drop") -> None:
    page.evaluate(GIVE_FILES, {"files": files, "how": how})


def new_customer(stack: LocalStack) -> str:
    email = f"process-{next(_emails)}@modamoda.example"
    stack.sign_up(email, PASSWORD)
    return email


def open_process(session: Session, email: str) -> Any:
    page = session.sign_in(email)
    page.click('[data-nav="process"]')
    page.wait_for_selector("#process-form")
    page.locator("#process-cost").wait_for()
    return page


def wait_for(page: Any, expression: str, arg: Any = None, timeout: float = 60_000) -> None:
    page.wait_for_function(expression, arg=arg, timeout=timeout)


def capabilities(stack: LocalStack, email: str) -> dict[str, Any]:
    token = stack.sign_in(email, PASSWORD)["access_token"]
    answer = requests.get(
        f"{stack.api_url}/v1/capabilities", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def with_balance(page: Any, balance: int) -> None:
    """The page sees `balance` credits (the account keeps its own): the answers of /v1/capabilities and
    /v1/credits are changed on the way."""

    def handle(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        body["balance"] = balance
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/capabilities", handle)
    page.route("**/v1/credits", handle)


@pytest.fixture
def desktop(browser: Any, stack: LocalStack, screenshot_dir: Path) -> Iterator[Session]:
    opened = Session(browser, stack, screenshot_dir, viewport=DESKTOP, bypass_csp=True, accept_downloads=True)
    yield opened
    errors = opened.unexpected_errors()
    opened.close()
    assert errors == [], errors


@pytest.fixture
def routed(browser: Any, stack: LocalStack, screenshot_dir: Path) -> Iterator[Session]:
    """A desktop session whose API answers a test may change (page.route): no service worker, which would
    fetch them itself."""
    opened = Session(
        browser, stack, screenshot_dir, viewport=DESKTOP, bypass_csp=True, service_workers="block"
    )
    yield opened
    errors = opened.unexpected_errors()
    opened.page.unroute_all(behavior="ignoreErrors")
    opened.close()
    assert errors == [], errors


def test_cost_before_process_and_photos_dropped_pasted_and_removed(desktop: Session) -> None:
    email = new_customer(desktop.stack)
    page = open_process(desktop, email)
    assert "1 credit a photo" in page.text_content("#process-cost")
    # the drop zone is the picker, by keyboard too: Tab reaches it (its outline shows) and Space opens the picker
    page.focus("#file-input")
    assert page.eval_on_selector("#dropzone", "el => getComputedStyle(el).outlineStyle") == "solid"
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    assert chooser.value.is_multiple()
    # several photos at once by drop, one more by paste, and the picker: each listed with a preview
    give(page, sample_files("tshirt_navy.jpg", "hoodie_burgundy.jpg", "dress_emerald.jpg"))
    page.wait_for_selector("#chosen-list [data-chosen] >> nth=2")
    give(page, sample_files("trousers_khaki.jpg", rename="pasted"), how="paste")
    page.wait_for_selector("#chosen-list [data-chosen] >> nth=3")
    page.set_input_files("#file-input", str(SAMPLES / "tshirt_navy.jpg"))  # already in the list
    assert "already in the list" in page.text_content("#dropzone-status")
    names = page.locator("#chosen-list .chosen-name").all_text_contents()
    assert names == ["tshirt_navy.jpg", "hoodie_burgundy.jpg", "dress_emerald.jpg", "pasted-1.jpg"]
    for thumb in page.locator("#chosen-list img.chosen-thumb").element_handles():
        wait_for(page, "img => img.complete && img.naturalWidth > 0", thumb)
    assert page.get_attribute("#process-cost [data-cost]", "data-cost") == "4"
    assert page.get_attribute("#process-cost [data-balance-after]", "data-balance-after") == "6"
    assert "4 photos \u00d7 1 credit = 4 credits" in page.text_content("#process-cost")
    desktop.shot("process-desktop-chosen")

    page.click("[data-remove] >> nth=1")  # remove the hoodie
    page.wait_for_selector("#chosen-list [data-chosen] >> nth=3", state="detached")
    assert "hoodie_burgundy.jpg" not in page.text_content("#chosen-list")
    assert page.get_attribute("#process-cost [data-balance-after]", "data-balance-after") == "7"
    # a file that is not a photo is not added, with a sentence that says so
    page.set_input_files(
        "#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    assert "not a photo type we accept" in page.text_content("#dropzone-status")
    assert page.locator("#chosen-list [data-chosen]").count() == 3


def with_on_model(page: Any, available: bool) -> None:
    """The page is told on-model is (or is not) available here, whatever the deployment says."""

    def handle(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        for mode in body["modes"]:
            if mode["id"] == "on-model":
                mode["available"] = available
                mode["reason"] = (
                    None if available else "On-model images are not available on this service yet."
                )
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/capabilities", handle)


def test_only_the_modes_the_deployment_can_make_are_offered(desktop: Session) -> None:
    email = new_customer(desktop.stack)
    offered = {m["id"]: m for m in capabilities(desktop.stack, email)["modes"]}
    page = open_process(desktop, email)
    options = page.locator("#mode option").evaluate_all("els => els.map(e => e.value)")
    assert options == [m for m in ("ghost", "on-model") if offered[m]["available"]]
    for mode in offered.values():
        assert page.locator(f'[data-unavailable="{mode["id"]}"]').count() == (0 if mode["available"] else 1)
    assert not page.locator("#pose").is_visible()  # the pose is an on-model option


def test_on_model_hidden_where_it_cannot_run(routed: Session) -> None:
    email = new_customer(routed.stack)
    with_on_model(routed.page, available=False)  # a deployment without the diffusion weights
    page = open_process(routed, email)
    assert page.locator("#mode option").evaluate_all("els => els.map(e => e.value)") == ["ghost"]
    note = page.locator('[data-unavailable="on-model"]')
    assert note.is_visible()
    assert note.text_content() == "On-model images are not available on this service yet."
    assert "On-model" not in (page.text_content("#mode-hint") or "")
    routed.shot("process-desktop-on-model-unavailable")


def test_on_model_shows_its_pose_cost_and_opaque_backgrounds(routed: Session) -> None:
    email = new_customer(routed.stack)
    with_on_model(routed.page, available=True)
    page = open_process(routed, email)
    give(page, sample_files("tshirt_navy.jpg", "dress_emerald.jpg"))
    page.wait_for_selector("#chosen-list [data-chosen] >> nth=1")
    assert not page.locator("#pose").is_visible()
    assert page.locator("#bg-kind-transparent").is_visible()
    page.select_option("#mode", "on-model")
    assert page.locator("#pose").is_visible()
    assert page.locator("#pose option").count() > 1
    assert not page.locator("#bg-kind-transparent").is_visible()  # on-model pictures are opaque
    assert not page.locator("#hollow").is_visible()
    assert page.get_attribute("#process-cost [data-cost]", "data-cost") == "8"
    assert page.get_attribute("#process-cost [data-balance-after]", "data-balance-after") == "2"
    routed.shot("process-desktop-on-model")


def test_a_batch_over_the_balance_is_refused_or_limited(routed: Session) -> None:
    desktop = routed
    email = new_customer(desktop.stack)
    with_balance(desktop.page, 2)
    page = open_process(desktop, email)
    give(page, sample_files("tshirt_navy.jpg", "hoodie_burgundy.jpg", "dress_emerald.jpg"))
    over = page.locator("[data-over-balance]")
    over.wait_for()
    assert "need 3 credits, but you have 2 credits" in over.text_content()
    assert page.get_attribute("#process-cost [data-buy-credits]", "href") == "#/credits"
    assert page.text_content("#process-affordable") == "Process the first 2 only"
    page.click("#process-submit")
    page.wait_for_selector("#process-error", state="visible")
    assert "Nothing was sent" in page.text_content("#process-error")
    assert page.locator("#upload-list [data-upload]").count() == 0
    desktop.shot("process-desktop-over-balance")
    assert page.evaluate(TOAST_OVERLAPS) == []

    page.click("#process-affordable")
    page.wait_for_selector("#upload-list [data-upload] >> nth=1")
    assert page.locator("#upload-list [data-upload]").count() == 2
    assert page.locator("#chosen-list .chosen-name").all_text_contents() == ["dress_emerald.jpg"]
    # the photo left over cannot be paid for now: the page says so and offers the packs
    page.wait_for_selector("[data-over-balance]")
    assert page.locator("#process-affordable").count() == 0
    page.locator('#upload-list [data-stage="done"] >> nth=1').wait_for(timeout=120_000)


def test_background_size_and_priority_options(desktop: Session) -> None:
    email = new_customer(desktop.stack)
    caps = capabilities(desktop.stack, email)
    page = open_process(desktop, email)
    colour = page.locator("#background-colour-panel")
    assert colour.is_visible()
    assert page.locator("#background-hex").input_value() == "#ffffff"
    # a swatch sets the code and the picker; a code sets the picker; the picker sets the code
    page.click('label:has-text("Beige")')
    assert page.locator("#background-hex").input_value() == "#efe6d8"
    assert page.locator("#background-colour").input_value() == "#efe6d8"
    page.fill("#background-hex", "#123ABC")
    assert page.locator("#background-colour").input_value() == "#123abc"
    assert page.locator(".swatches input:checked").count() == 0
    page.locator("#background-colour").evaluate(
        "el => { el.value = '#ff8800'; el.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    assert page.locator("#background-hex").input_value() == "#ff8800"
    # the colour controls only where a colour applies
    page.check("#bg-kind-transparent")
    assert not colour.is_visible()
    page.check("#bg-kind-library")
    assert not colour.is_visible()
    library = page.locator("#background-library")
    library.wait_for()
    thumbs = library.locator("img.library-thumb")
    assert thumbs.count() >= 5
    for thumb in thumbs.element_handles():
        wait_for(page, "img => img.complete && img.naturalWidth > 0", thumb)
    assert library.locator("input:checked").count() == 1
    desktop.shot("process-desktop-library")
    page.check("#bg-kind-colour")
    assert colour.is_visible()
    assert not library.is_visible()

    # each size says what it is; Amazon refuses a beige background, inline and on Process
    amazon = next(p for p in caps["presets"] if p["id"] == "amazon")
    page.select_option("#preset", "amazon")
    assert re.search("2000 [\u00d7x] 2000", page.text_content("#preset-hint") or "")
    assert amazon["rule"] in page.text_content("#preset-rule")
    page.click('label:has-text("Beige")')
    problem = page.locator('#background-problem [data-problem="background"]')
    problem.wait_for()
    assert "Amazon allows only a white background" in problem.text_content()
    give(page, sample_files("tshirt_navy.jpg"))
    page.wait_for_selector("#chosen-list [data-chosen]")
    page.click("#process-submit")
    page.wait_for_selector("#process-error", state="visible")
    assert "Amazon allows only a white background" in page.text_content("#process-error")
    assert page.locator("#upload-list [data-upload]").count() == 0
    desktop.shot("process-desktop-amazon-beige-refused")
    page.check("#bg-kind-transparent")
    assert problem.count() == 1  # transparent is not white either
    problem.locator("button").click()  # "Use white"
    problem.wait_for(state="detached")
    assert page.locator("#background-hex").input_value() == "#ffffff"

    # priorities say what they do, in the API's words; nothing promises a quiet time
    text = page.text_content("#priority-fieldset") or ""
    for priority in caps["priorities"]:
        assert priority["description"] in text
    assert "quiet" not in text.lower()


def test_batch_progress_results_and_download_all(desktop: Session, tmp_path: Path) -> None:
    email = new_customer(desktop.stack)
    page = open_process(desktop, email)
    page.evaluate(WATCH_STAGES)
    give(page, sample_files("tshirt_navy.jpg", "hoodie_burgundy.jpg", "dress_emerald.jpg"))
    page.wait_for_selector("#chosen-list [data-chosen] >> nth=2")
    page.click("#process-submit")
    page.wait_for_selector("#upload-list [data-upload] >> nth=2")
    counter = page.locator("#batch-counter")
    assert " of 3 done" in counter.text_content()
    desktop.shot("process-desktop-in-progress")
    assert page.evaluate(TOAST_OVERLAPS) == []
    page.wait_for_function(
        "document.querySelector('#batch-counter').textContent.startsWith('3 of 3 done')", timeout=180_000
    )
    stages = page.evaluate("window.__stages")
    assert stages["mismatches"] == []
    labels = {key.split("|", 1)[1] for key in stages["seen"]}
    assert "Done" in labels
    assert labels & {
        "Waiting to upload",
        "Waiting to start",
        "Checking the photo",
        "Waiting its turn",
        "Making the image",
    }
    assert all(
        label
        in {
            "Waiting to upload",
            "Waiting to start",
            "Checking the photo",
            "Waiting its turn",
            "Making the image",
            "Done",
        }
        or label.startswith("Uploading ")
        for label in labels
    ), labels
    for image in page.locator("#upload-list img[data-result]").element_handles():
        wait_for(page, "img => img.complete && img.naturalWidth > 0", image)
    # the results sit beside the form on a desktop, near the top
    form = page.locator("#process-form").bounding_box()
    results = page.locator("#results").bounding_box()
    assert results["x"] > form["x"] + form["width"] - 1
    assert results["y"] < 400
    token = desktop.stack.sign_in(email, PASSWORD)["access_token"]
    for tile in page.locator("#upload-list [data-upload]").all():
        job_id = tile.get_attribute("data-job-id")
        job = requests.get(
            f"{desktop.stack.api_url}/v1/jobs/{job_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        assert job["thumbnail_url"]  # the tile shows the small preview, not the full image
        src = tile.locator("img[data-result]").get_attribute("src") or ""
        assert src.split("?")[0] == job["thumbnail_url"].split("?")[0]
        assert tile.locator("a[data-download]").is_visible()
        assert tile.locator("button[data-view]").is_visible()
        assert tile.locator("a[data-job-link]").get_attribute("href") == f"#/jobs/{job_id}"
        assert not tile.locator("progress").is_visible()  # no finished-looking bar left behind
    assert page.evaluate(TOAST_OVERLAPS) == []
    desktop.shot("process-desktop-results")

    with page.expect_download() as download:
        page.click("#download-all")
    assert download.value.suggested_filename.endswith(".zip")
    saved = tmp_path / "all.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
        assert len(names) == 3
        for name in names:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                assert image.width > 0
    page.wait_for_selector("[data-archive-ready]")
    assert page.evaluate(TOAST_OVERLAPS) == []

    # View opens the before/after viewer; it closes with Esc
    page.locator("#upload-list button[data-view]").first.click()
    page.wait_for_selector("dialog[open]")
    desktop.shot("process-desktop-viewer")
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog[open]", state="detached")


def test_a_refused_photo_says_why_and_can_be_retried(desktop: Session, tmp_path: Path) -> None:
    blank = tmp_path / "blank_wall.png"
    Image.new("RGB", (900, 900), (236, 236, 236)).save(blank)  # no garment in it: the engine refuses it
    email = new_customer(desktop.stack)
    page = open_process(desktop, email)
    page.set_input_files("#file-input", str(blank))
    page.click("#process-submit")
    tile = page.locator("#upload-list [data-upload]").first
    tile.locator('[data-status="rejected"], [data-status="failed"]').wait_for(timeout=120_000)
    first_job = tile.get_attribute("data-job-id")
    error = tile.locator(".upload-error").text_content() or ""
    assert "No credits were charged" in error
    for raw in ("Error", "{", "/opt", "SageMaker", "Exception"):
        assert raw not in error
    counted = page.text_content("#batch-counter") or ""
    assert "1 refused" in counted or "1 not processed" in counted
    desktop.shot("process-desktop-refused")
    tile.locator("button[data-retry]").click()
    page.wait_for_function(
        "([el, old]) => el.dataset.jobId && el.dataset.jobId !== old", arg=[tile.element_handle(), first_job]
    )
    # the new job is followed to its end like any other
    tile.locator('[data-status="rejected"], [data-status="failed"], [data-status="succeeded"]').wait_for(
        timeout=120_000
    )
    assert tile.locator(".upload-error").is_visible()


def test_phone_layout_results_right_after_process(
    browser: Any, stack: LocalStack, screenshot_dir: Path
) -> None:
    phone = Session(browser, stack, screenshot_dir, viewport=PHONE, is_mobile=True, has_touch=True)
    violations: list[str] = []
    phone.page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    try:
        email = new_customer(stack)
        page = open_process(phone, email)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 0
        assert page.evaluate(UNLABELLED) == []
        assert page.evaluate(CONTRAST) == []
        phone.shot("process-phone-form")
        page.check("#bg-kind-library")
        page.locator("#background-library").wait_for()
        assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 0
        phone.shot("process-phone-library")
        page.check("#bg-kind-colour")
        page.set_input_files(
            "#file-input", [str(SAMPLES / "tshirt_navy.jpg"), str(SAMPLES / "dress_emerald.jpg")]
        )
        page.locator("#chosen-list [data-chosen]").nth(1).wait_for()
        assert page.evaluate(UNLABELLED) == []
        assert page.evaluate(CONTRAST) == []
        page.click("#process-submit")
        page.locator("#upload-list [data-upload]").nth(1).wait_for()
        page.locator("#results-heading").wait_for()
        # the page scrolls to the results
        page.wait_for_timeout(300)  # the page scrolls smoothly (as far as the page goes)
        for _ in range(50):
            top = page.evaluate("document.querySelector('#results').getBoundingClientRect().top")
            if 0 <= top < PHONE["height"] / 2:
                break
            page.wait_for_timeout(100)
        assert 0 <= top < PHONE["height"] / 2, top
        assert page.evaluate(TOAST_OVERLAPS) == []
        page.locator('#upload-list [data-stage="done"]').nth(1).wait_for(timeout=180_000)
        assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 0
        assert page.evaluate(CONTRAST) == []
        assert page.evaluate(TOAST_OVERLAPS) == []
        phone.shot("process-phone-results")
        errors = phone.unexpected_errors()
        assert errors == [], errors
        assert violations == [], violations  # the app runs under the cloud's CSP
    finally:
        phone.close()


def test_every_library_background_has_its_preview() -> None:
    """The background library's previews (web/make_previews.py) match what the catalog API lists."""
    from functions.common import catalogs

    previews = Path(__file__).resolve().parents[2] / "web" / "app" / "img" / "backgrounds"
    assert {p.stem for p in previews.glob("*.webp")} == set(catalogs.ids("backgrounds"))
    sw = (previews.parents[1] / "sw.js").read_text(encoding="utf-8")
    for background in catalogs.ids("backgrounds"):
        assert f"'img/backgrounds/{background}.webp'" in sw  # kept for offline use
