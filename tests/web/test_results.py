"""Results in the PWA (issue 16), in headless Chromium against the local stack, at desktop (1366 x 900) and phone
(390 x 844, touch) sizes: the image viewer (zoom, before/after divider by pointer and keyboard), the job page reached
from History and the dashboard, "Make another version" without a new upload, retrying a refused photo, one ZIP of
selected results, credit history rows that name the photo and link Stripe's receipt, the account's e-mail, and
History with 50 finished jobs on a phone under 1 MB of images. Screenshots: ``out/screenshots/results-*.png``.

Jobs the tests only need to exist are made through the API (as the CLI and shop tools do: the same pre-signed
upload, the same pipeline and studio engine) with photos scaled to 384 px, where the engine is quick."""

from __future__ import annotations

import io
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from functions.common import credits, db
from local.client import ApiClient
from local.stack import LocalStack
from tests.web.conftest import SAMPLES
from tests.web.support import CONTRAST, PASSWORD, UNLABELLED, Session, balance_text

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DESKTOP: dict[str, Any] = {"viewport": {"width": 1366, "height": 900}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}
SIZES: dict[str, dict[str, Any]] = {"desktop": DESKTOP, "phone": PHONE}
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
# What no screen may show: exception names, error JSON, AWS service names, file paths.
INTERNALS = re.compile(
    r"ClientError|Exception|Traceback|\{\s*\"|SageMaker|Lambda|Step Functions|/opt/ml|\bS3\b|no_garment_found|"
    r"inference_failed|Job finished 0"
)


# ---- making jobs through the API -------------------------------------------------------------------------------


def small_photo(path: Path, size: int = 384) -> bytes:
    with Image.open(path) as image:
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=90)
        return buffer.getvalue()


def blank_photo() -> bytes:
    """An empty grey backdrop: the studio engine refuses it (no_garment_found) and nothing is charged."""
    rng = np.random.default_rng(4)
    blank = np.clip(np.full((500, 400, 3), 225.0) + rng.normal(0, 2, (500, 400, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blank).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


class Customer:
    def __init__(self, stack: LocalStack, credit: int = 0) -> None:
        self.stack = stack
        self.email = f"results-{uuid.uuid4().hex[:10]}@modamoda.example"
        tokens = stack.sign_up(self.email, PASSWORD)
        self.api = ApiClient(stack.api_url, tokens["access_token"])
        self.tenant_id = str(self.api.me()["tenant_id"])
        if credit:
            with db.transaction(self.tenant_id) as conn:
                credits.grant(conn, self.tenant_id, credit, f"test:results:{self.tenant_id}", "test")

    def balance(self) -> int:
        return int(self.api.request("GET", "/v1/credits")["balance"])

    def make(self, photos: list[tuple[str, bytes]], **options: Any) -> list[dict[str, Any]]:
        """Upload each (filename, bytes) through the API and wait until every job has finished."""

        def one(item: tuple[str, bytes]) -> dict[str, Any]:
            name, data = item
            job_id = self.api.upload(name, data, "image/jpeg", options=options or None)
            return self.api.wait(job_id, timeout=300, interval=0.25)

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(one, photos))


def samples() -> list[tuple[str, bytes]]:
    return [(path.name, small_photo(path)) for path in sorted(SAMPLES.glob("*.jpg"))]


# ---- browser sessions ----------------------------------------------------------------------------------------


@pytest.fixture
def open_session(browser: Any, stack: LocalStack, screenshot_dir: Path) -> Iterator[Any]:
    """Sessions at a chosen size; each checked for page and console errors when the test ends."""
    opened: list[Session] = []

    def make(size: str, **extra: Any) -> Session:
        session = Session(browser, stack, screenshot_dir, bypass_csp=True, **SIZES[size], **extra)
        opened.append(session)
        return session

    yield make
    errors = [e for s in opened for e in s.unexpected_errors()]
    for session in opened:
        session.close()
    assert errors == [], errors


def screen_shot(session: Session, name: str) -> Path:
    """What is on the screen (a modal dialog sits in the viewport; a full-page capture would stretch it)."""
    path = session.shots / f"{name}.png"
    session.page.screenshot(path=str(path), full_page=False)
    return path


def wait_image(page: Any, selector: str) -> None:
    image = page.locator(selector).first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())


def page_checks(page: Any, where: str, phone: bool) -> None:
    """What every screen passes: labels, contrast, no internals on screen; on a phone, no sideways scroll."""
    assert page.evaluate(UNLABELLED) == [], where
    assert page.evaluate(CONTRAST) == [], where
    text = page.inner_text("body")
    assert not INTERNALS.search(text), (where, INTERNALS.search(text))
    assert not UUID.search(text), (where, UUID.search(text))
    if phone:
        overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{where} scrolls sideways on a phone by {overflow}px"


def wait_thumbnails(page: Any) -> None:
    """Every list thumbnail on the screen has loaded (the ones below it load lazily, when scrolled to)."""
    page.wait_for_function(
        "[...document.querySelectorAll('img.thumb')].filter(i => i.getBoundingClientRect().top < innerHeight)"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )


def open_job(page: Any, job_id: str) -> None:
    page.wait_for_url(re.compile(rf"#/jobs/{job_id}$"))
    page.wait_for_selector("#job-facts dd")


# ---- the tests ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(stack: LocalStack) -> tuple[Customer, list[dict[str, Any]]]:
    """A customer with the four sample garments done (and credit to spare)."""
    customer = Customer(stack, credit=20)
    jobs = customer.make(samples())
    assert {j["status"] for j in jobs} == {"succeeded"}, [
        (j["filename"], j["status"], j["error"]) for j in jobs
    ]
    return customer, jobs


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_viewer_zooms_and_compares_before_and_after(
    open_session: Any, finished: tuple[Customer, list[dict[str, Any]]], size: str
) -> None:
    customer, jobs = finished
    job = jobs[0]
    session = open_session(size)
    page = session.sign_in(customer.email)
    page.goto(f"{session.stack.web_url}/#/jobs/{job['id']}")
    open_job(page, job["id"])
    wait_image(page, "#job-result")
    if job.get("original_url"):
        wait_image(page, "#job-original")
    page.click("#job-view")
    dialog = page.locator("dialog.viewer[open]")
    dialog.wait_for()
    stage = dialog.locator(".viewer-stage")
    wait_image(page, "dialog.viewer .viewer-layer[data-layer='after'] img")
    compare = job.get("original_url") is not None
    assert dialog.locator(".viewer-slider").count() == (1 if compare else 0)
    screen_shot(session, f"results-viewer-{size}")
    page_checks(page, f"viewer {size}", size == "phone")

    # zoom: the buttons, then the keyboard; Fit goes back
    assert stage.get_attribute("data-zoom") == "100"
    dialog.locator(".viewer-zoom-in").click()
    dialog.locator(".viewer-zoom-in").click()
    assert int(stage.get_attribute("data-zoom") or 0) > 200
    if size == "desktop":
        box = stage.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        before_wheel = int(stage.get_attribute("data-zoom") or 0)
        page.mouse.wheel(0, -300)
        page.wait_for_function(f"document.querySelector('.viewer-stage').dataset.zoom > {before_wheel}")
        # pan when zoomed: the picture moves with the pointer
        layer = dialog.locator(".viewer-layer[data-layer='after']")
        start = layer.evaluate("el => el.style.transform")
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.3)  # off the divider
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.25 - 120, box["y"] + box["height"] * 0.3 - 60, steps=5)
        page.mouse.up()
        assert layer.evaluate("el => el.style.transform") != start
    screen_shot(session, f"results-viewer-zoomed-{size}")
    dialog.locator(".viewer-fit").click()
    assert stage.get_attribute("data-zoom") == "100"
    stage.focus()
    page.keyboard.press("+")
    assert int(stage.get_attribute("data-zoom") or 0) > 100
    page.keyboard.press("0")
    assert stage.get_attribute("data-zoom") == "100"

    if compare:
        # the divider: keyboard on the slider, then dragging on the picture
        assert stage.get_attribute("data-split") == "50"
        dialog.locator(".viewer-slider").focus()
        for _ in range(10):
            page.keyboard.press("ArrowLeft")
        assert int(stage.get_attribute("data-split") or 50) == 40
        clip = dialog.locator(".viewer-clip").evaluate("el => el.style.clipPath")
        assert "60%" in clip, clip
        box = stage.bounding_box()
        y = box["y"] + box["height"] / 2
        if size == "phone":
            stage.tap(position={"x": box["width"] * 0.8, "y": box["height"] / 2})
        else:
            page.mouse.move(box["x"] + box["width"] * 0.4, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=6)
            page.mouse.up()
        split = int(stage.get_attribute("data-split") or 0)
        assert 75 <= split <= 85, split
        screen_shot(session, f"results-viewer-divider-{size}")

    # focus stays in the dialog; Esc closes it and gives focus back to the button that opened it
    for _ in range(8):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('dialog') !== null")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert page.evaluate("document.activeElement.id") == "job-view"


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_job_page_from_history_and_dashboard(
    open_session: Any, finished: tuple[Customer, list[dict[str, Any]]], size: str
) -> None:
    customer, jobs = finished
    newest = max(jobs, key=lambda j: j["created_at"])
    session = open_session(size)
    page = session.sign_in(customer.email)

    # from the dashboard: the job's name is a link to its page
    row = page.locator(f'#recent-jobs [data-job-id="{newest["id"]}"]')
    row.wait_for()
    assert "thumb" in (row.locator("img").get_attribute("src") or "")  # the small preview, not the result
    row.locator("a.job-link").click()
    open_job(page, newest["id"])
    wait_image(page, "#job-result")
    facts = page.inner_text("#job-facts")
    for label in ("Status", "Cost", "Image type", "Background", "Marketplace size", "File format"):
        assert label in facts, (label, facts)
    assert "1 credit" in facts
    assert page.inner_text("#job-status") == "Done"
    if newest.get("original_url"):
        wait_image(page, "#job-original")
    session.shot(f"results-job-page-{size}")
    page_checks(page, f"job page {size}", size == "phone")

    # from History: the whole item opens the job (a click on the thumbnail, not on the name)
    page.click('[data-nav="history"]')
    item = page.locator(f'#history-list [data-job-id="{jobs[1]["id"]}"]')
    item.wait_for()
    page.wait_for_load_state("networkidle")
    wait_thumbnails(page)
    session.shot(f"results-history-{size}")
    page_checks(page, f"history {size}", size == "phone")
    page.click("#history-view-list")  # the same items as rows
    wait_thumbnails(page)
    session.shot(f"results-history-list-{size}")
    page_checks(page, f"history list {size}", size == "phone")
    page.click("#history-view-grid")
    item.scroll_into_view_if_needed()
    thumb = item.locator(".thumb").bounding_box()  # the link covers the item: a click on the picture opens it
    page.mouse.click(thumb["x"] + thumb["width"] / 2, thumb["y"] + thumb["height"] / 2)
    open_job(page, jobs[1]["id"])
    assert page.inner_text("h1") == jobs[1]["filename"]
    page.go_back()
    page.wait_for_selector("#history-list [data-job-id]")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_make_another_version_without_a_new_upload(open_session: Any, stack: LocalStack, size: str) -> None:
    customer = Customer(stack, credit=5)
    (job,) = customer.make(samples()[:1])
    assert job["status"] == "succeeded"
    session = open_session(size)
    page = session.sign_in(customer.email)
    before = balance_text(page)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    page.goto(f"{stack.web_url}/#/jobs/{job['id']}")
    open_job(page, job["id"])
    page.click("#job-rerender")
    page.wait_for_selector("#rerender-form")
    assert page.input_value("#rerender-preset") == (job["options"].get("preset") or "square")
    page.select_option("#rerender-background", "#f2f2f2")
    page.select_option("#rerender-format", "webp")
    session.shot(f"results-rerender-form-{size}")
    page_checks(page, f"re-render form {size}", size == "phone")
    page.click("#rerender-submit")
    page.wait_for_url(re.compile(r"#/jobs/(?!" + job["id"] + r")[^/?]+$"))
    new_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector('#job-status [data-status="succeeded"]', timeout=120_000)
    wait_image(page, "#job-result")
    session.shot(f"results-rerendered-{size}")

    assert not [u for u in posts if "/local/s3/" in u], posts  # the stored photo was used: nothing uploaded
    assert [u for u in posts if u.endswith(f"/v1/jobs/{job['id']}/rerender")], posts
    new = customer.api.job(new_id)
    assert new["source_job_id"] == job["id"]
    assert new["options"]["background"] == "#f2f2f2"
    assert new["options"]["output_format"] == "webp"
    assert page.locator("#job-source-link").get_attribute("href") == f"#/jobs/{job['id']}"
    cost = int(new["cost"])
    assert cost >= 1
    page.click('[data-nav="dashboard"]')
    page.wait_for_function(
        f"Number((document.querySelector('#credits-balance')||{{}}).textContent?.replace(/\\D/g,'')) === {before - cost}"
    )
    assert balance_text(page) == before - cost


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_retry_a_refused_photo(open_session: Any, stack: LocalStack, size: str) -> None:
    customer = Customer(stack)
    (job,) = customer.make([("empty-backdrop.jpg", blank_photo())])
    assert job["status"] == "rejected", job
    start = customer.balance()
    session = open_session(size)
    page = session.sign_in(customer.email)
    page.click('[data-nav="history"]')
    item = page.locator(f'#history-list [data-job-id="{job["id"]}"]')
    item.wait_for()
    assert "could not find a garment" in item.inner_text()
    item.locator("a.job-link").click()
    open_job(page, job["id"])
    error = page.inner_text("#job-error")
    assert "could not find a garment" in error, error
    assert "No credits were charged" in error, error
    assert "Nothing" in page.inner_text('#job-facts [data-fact="Cost"]')
    session.shot(f"results-refused-{size}")
    page_checks(page, f"refused job {size}", size == "phone")
    page.click("#job-retry")
    page.wait_for_url(re.compile(r"#/jobs/(?!" + job["id"] + r")[^/?]+$"))
    new_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector('#job-status [data-status="rejected"]', timeout=120_000)
    retried = customer.api.job(new_id)
    assert retried["source_job_id"] == job["id"]
    assert retried["filename"] == job["filename"]
    assert customer.balance() == start  # refused twice, charged nothing
    session.shot(f"results-retried-{size}")


def test_history_downloads_selected_results_as_one_zip(
    open_session: Any, finished: tuple[Customer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    customer, jobs = finished
    session = open_session("desktop")
    page = session.sign_in(customer.email)
    page.click('[data-nav="history"]')
    page.wait_for_selector("#history-list [data-job-id]")
    page.click("#history-view-grid")
    assert "job-grid" in (page.get_attribute("#history-list", "class") or "")
    chosen = [jobs[0], jobs[2]]
    for job in chosen:
        page.check(f'#history-list input[data-select="{job["id"]}"]')
    assert "2 images selected" in page.inner_text("#history-selection")
    page.wait_for_load_state("networkidle")
    wait_thumbnails(page)
    session.shot("results-history-grid-selected")
    page_checks(page, "history grid", False)
    with page.expect_download() as download:
        page.click("#history-download-selected")
    path = tmp_path / "selected.zip"
    download.value.save_as(path)
    assert download.value.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        assert len(names) == 2, names
        for job in chosen:
            stem = Path(job["filename"]).stem
            assert any(stem in n for n in names), (stem, names)
        for name in names:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                image.verify()

    # all of them: the list view's button takes every finished job shown
    page.click("#history-view-list")
    with page.expect_download() as download:
        page.click("#history-download-all")
    path = tmp_path / "all.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert len([n for n in archive.namelist() if not n.endswith("/")]) == len(jobs)


def test_credit_history_names_the_photo_and_links_the_receipt(open_session: Any, stack: LocalStack) -> None:
    customer = Customer(stack)
    photos = samples()[:1]
    customer.make(photos)
    session = open_session("desktop")
    page = session.sign_in(customer.email)
    page.click('[data-nav="credits"]')
    page.wait_for_selector("button[data-buy]")
    before = balance_text(page)
    page.locator("button[data-buy]").first.click()
    page.wait_for_url(re.compile(r"/local/stripe/checkout/cs_"))
    page.click("#pay")
    page.wait_for_url(re.compile(r"#/credits\?checkout=success"))
    page.wait_for_function(
        f"Number((document.querySelector('#credits-balance')||{{}}).textContent?.replace(/\\D/g,'')) > {before}",
        timeout=30_000,
    )
    receipt = page.locator("#ledger a[data-receipt]").first
    deadline = time.monotonic() + 30
    while not receipt.count() and time.monotonic() < deadline:  # the receipt is attached after the grant
        page.reload()
        page.wait_for_selector("#ledger tbody tr")
        receipt = page.locator("#ledger a[data-receipt]").first
    assert receipt.count() == 1
    assert receipt.get_attribute("target") == "_blank"
    assert "noopener" in (receipt.get_attribute("rel") or "")
    assert re.match(r"https?://", receipt.get_attribute("href") or "")
    ledger = page.inner_text("#ledger")
    assert photos[0][0] in ledger, ledger  # the photo is named
    assert "Welcome" in ledger
    assert not re.search(r"\b0\s*$", ledger, re.M), ledger  # no zero-amount bookkeeping rows
    session.shot("results-credits-history")
    page_checks(page, "credits", False)


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_account_shows_the_email_not_an_id(open_session: Any, stack: LocalStack, size: str) -> None:
    customer = Customer(stack)
    session = open_session(size)
    page = session.sign_in(customer.email)
    page.click('[data-nav="account"]')
    page.wait_for_function("document.querySelector('#account-email')?.textContent.includes('@')")
    assert page.inner_text("#account-email") == customer.email
    session.shot(f"results-account-{size}")
    page_checks(page, f"account {size}", size == "phone")


def test_history_of_50_finished_jobs_on_a_phone_loads_under_1_mb_of_images(
    open_session: Any, stack: LocalStack
) -> None:
    customer = Customer(stack, credit=60)
    small = [(name, small_photo(SAMPLES / name, 256)) for name, _ in samples()]
    full = [(path.name, path.read_bytes()) for path in sorted(SAMPLES.glob("*.jpg"))]
    started = time.monotonic()
    # 38 older jobs from small photos (the engine is quickest on them, and writes JPEG quickest), then the 12 that
    # open History from the full-size sample photos with the default PNG output: the first screen's thumbnails
    # are those of real results.
    older = [(f"look-{i:02d}-{name}", data) for i in range(38) for name, data in [small[i % len(small)]]]
    jobs = customer.make(older, output_format="jpeg")
    newest = [(f"look-{i:02d}-{name}", data) for i in range(38, 50) for name, data in [full[i % len(full)]]]
    jobs += customer.make(newest)
    made_in = time.monotonic() - started
    assert sum(j["status"] == "succeeded" for j in jobs) == 50, [j["error"] for j in jobs if j["error"]]
    print(f"50 jobs through the API in {made_in:.0f}s")

    session = open_session("phone")
    page = session.sign_in(customer.email)
    page.wait_for_load_state("networkidle")
    images: list[Any] = []
    page.on("response", lambda r: images.append(r) if r.request.resource_type == "image" else None)
    page.click('[data-nav="history"]')
    page.wait_for_selector("#history-list [data-job-id]")
    wait_thumbnails(page)  # the first screen is complete (a hash route has no load event to wait for)
    page.wait_for_timeout(1500)  # and what the browser fetches ahead of scrolling has arrived
    sizes = []
    for response in images:
        try:
            sizes.append((response.url, len(response.body())))
        except Exception:  # a redirect or an aborted lazy load: nothing was delivered
            sizes.append((response.url, int(response.headers.get("content-length") or 0)))
    total = sum(n for _, n in sizes)
    print(f"History's first screen on a phone: {len(sizes)} images, {total / 1024:.0f} KB")
    for url, n in sizes:
        print(f"  {n:>7} {url.split('?')[0][-90:]}")
    session.shot("results-history-50-phone")
    assert total < 1_000_000, sizes
    assert sizes, "the first screen shows thumbnails"
    assert max(n for _, n in sizes) < 100_000, sizes  # thumbnails only, never a full-size result
    visible = page.evaluate(
        "[...document.querySelectorAll('#history-list img.thumb')]"
        ".filter(i => i.getBoundingClientRect().top < innerHeight)"
        ".map(i => i.complete && i.naturalWidth > 0)"
    )
    assert visible, "thumbnails on the first screen"
    assert all(visible), visible
    page_checks(page, "history of 50 on a phone", True)


def test_job_page_and_viewer_run_under_the_csp(
    browser: Any, stack: LocalStack, screenshot_dir: Path, finished: tuple[Customer, list[dict[str, Any]]]
) -> None:
    """The job page and the viewer as the cloud serves them: same-origin scripts only, no inline script or eval
    (this session keeps the CSP, so it waits with selectors only)."""
    customer, jobs = finished
    phone = Session(browser, stack, screenshot_dir, **PHONE)
    violations: list[str] = []
    phone.page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    try:
        page = phone.sign_in(customer.email)
        page.goto(f"{stack.web_url}/#/jobs/{jobs[0]['id']}")
        page.wait_for_selector("#job-facts dd")
        page.wait_for_selector("#job-view")
        page.click("#job-view")
        page.wait_for_selector("dialog.viewer[open] .viewer-stage")
        page.click("dialog.viewer .viewer-zoom-in")
        assert page.get_attribute("dialog.viewer .viewer-stage", "data-zoom") != "100"
        page.keyboard.press("Escape")
        page.wait_for_selector("dialog.viewer", state="detached")
        page.click("#job-rerender")
        page.wait_for_selector("#rerender-form")
        errors = phone.unexpected_errors()
        assert errors == [], errors
        assert violations == [], violations
    finally:
        phone.close()


def test_every_script_is_in_the_offline_shell() -> None:
    """The service worker precaches every module the app imports (a missing one breaks the app offline)."""
    from local.stack import ROOT

    app = ROOT / "web" / "app"
    shell = (app / "sw.js").read_text(encoding="utf-8")
    for path in sorted((app / "js").rglob("*.js")):
        assert f"'{path.relative_to(app).as_posix()}'" in shell, f"{path.name} is not precached"
