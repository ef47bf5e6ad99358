"""The dashboard in a real headless browser: Debian's chromium driven by selenium through the system
chromedriver (never a browser or driver download). The server is uvicorn on a free loopback port serving
a SQLite status DB built through db/queries.py. Screenshots go to artifacts/web/ (git-ignored).

Skips with the install commands when chromium, chromedriver or selenium is missing:
    apt-get install -y chromium chromium-driver && pip install 'selenium>=4.20'
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_web_api import Archive, build_archive, free_port, png, synthetic_photo, web_settings

from db import queries

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
INSTALL = "apt-get install -y chromium chromium-driver && pip install 'selenium>=4.20'"

webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed ({INSTALL})")
if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip(f"{CHROMIUM} / {CHROMEDRIVER} not found ({INSTALL})", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, tiny_model_path: Path) -> Iterator[tuple[str, Archive]]:
    """uvicorn serving the dashboard over the test archive; yields (base URL, archive)."""
    import uvicorn

    from web.app import create_app

    root = tmp_path_factory.mktemp("web-browser")
    archive = build_archive(root, f"sqlite:///{root / 'status.sqlite3'}")
    app = create_app(web_settings(archive.url, model_path=str(tiny_model_path)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", archive
    finally:
        server.should_exit = True
        thread.join(10)
        archive.database.dispose()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    mp = pytest.MonkeyPatch()
    mp.setenv("SE_OFFLINE", "true")  # selenium-manager must never download a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        mp.undo()


def wait(driver, condition, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def image_loaded(driver, css: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(driver.execute_script("const i = document.querySelector(arguments[0]); "
                                      "return i && i.complete && i.naturalWidth > 0;", css))  # fmt: skip


def test_jobs_page_shows_the_job_and_refreshes_live(site, browser):
    base, archive = site
    browser.get(base + "/")
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{archive.job_id}"]'))
    assert "family album" in row.text and "active" in row.text
    bar = row.find_element(By.CSS_SELECTOR, "[role=progressbar]")
    assert float(bar.get_attribute("aria-valuenow")) == pytest.approx(66.7, abs=0.1)  # 4 of 6 finished
    assert "66.7%" in bar.text
    browser.execute_script("window.notReloaded = true;")

    # a worker finishes the two queued items: the row follows without a page load
    for item_id in archive.queued:
        claim = archive.database.run(queries.claim_item, item_id, worker_id="w2", lease_seconds=60)
        archive.database.run(queries.record_failure, claim, code="not_an_image", message="the file is text")
    cell = f'tr[data-job-id="{archive.job_id}"] td[data-count="failed"]'
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, cell).text == "3", timeout=15)
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{archive.job_id}"]')
    assert browser.execute_script("return window.notReloaded === true;")
    assert row.find_element(By.CSS_SELECTOR, "[role=progressbar]").get_attribute("aria-valuenow") == "100"
    assert "finished" in row.text and "done" in row.text
    browser.save_screenshot(str(ARTIFACTS / "jobs.png"))


def test_item_viewer_slider_moves(site, browser):
    base, archive = site
    browser.get(f"{base}/jobs/{archive.job_id}?state=succeeded")
    rows = browser.find_elements(By.CSS_SELECTOR, "#items tbody tr")
    assert len(rows) == 3 and all("succeeded" in row.text for row in rows)
    browser.save_screenshot(str(ARTIFACTS / "job.png"))
    browser.find_element(By.CSS_SELECTOR, f'a[href="/items/{archive.succeeded[0]}"]').click()
    wait(browser, lambda d: image_loaded(d, ".compare-after") and image_loaded(d, ".compare-before"))
    before = browser.find_element(By.CSS_SELECTOR, ".compare-before")
    assert "inset(0px 50% 0px 0px)" in before.value_of_css_property("clip-path")

    slider = browser.find_element(By.CSS_SELECTOR, ".compare-range")
    slider.send_keys(Keys.HOME)
    for _ in range(25):
        slider.send_keys(Keys.ARROW_RIGHT)
    assert slider.get_attribute("value") == "25"
    assert "inset(0px 75% 0px 0px)" in before.value_of_css_property("clip-path")
    line_left = browser.execute_script("return document.querySelector('.compare-line').style.left;")
    assert line_left == "25%"
    browser.save_screenshot(str(ARTIFACTS / "item-slider.png"))


def test_try_page_restores_an_upload(site, browser, tmp_path, request):
    base, _archive = site
    try:
        shared = request.getfixturevalue("shared_dir")
        photo = shared / "data" / "realworld" / "CodeFormer/inputs/whole_imgs/01.jpg"  # 248x189, 4 faces
        min_faces = 3
    except pytest.skip.Exception:
        photo = tmp_path / "photo.png"
        photo.write_bytes(png(synthetic_photo(120, 90, 3)))
        min_faces = 0
    browser.get(base + "/try")
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    browser.find_element(By.ID, "restore-button").click()
    wait(browser, lambda d: d.find_element(By.ID, "try-result").is_displayed(), timeout=90)
    wait(browser, lambda d: image_loaded(d, "#try-result .compare-after"))
    faces = int(browser.find_element(By.ID, "face-count").text)
    assert faces >= min_faces
    assert len(browser.find_elements(By.CSS_SELECTOR, "#boxed .face-box")) == faces
    natural = browser.execute_script(
        "const a = document.querySelector('#try-result .compare-after'), b = document.getElementById('boxed-image');"
        "return [a.naturalWidth, b.naturalWidth];"
    )
    assert natural[0] == 2 * natural[1]  # upscale 2
    download = browser.find_element(By.ID, "download")
    assert download.get_attribute("href").startswith("blob:") and download.get_attribute("download").endswith(
        ("_restored.jpg", "_restored.png")
    )
    browser.execute_script("document.getElementById('try-result').scrollIntoView();")
    browser.save_screenshot(str(ARTIFACTS / "try.png"))


def test_try_page_shows_the_reason_for_a_bad_file(site, browser, tmp_path):
    base, _archive = site
    fake = tmp_path / "holiday.png"
    fake.write_text("definitely not a photo\n")
    browser.get(base + "/try")
    browser.find_element(By.ID, "photo").send_keys(str(fake))
    browser.find_element(By.ID, "restore-button").click()
    problem = wait(browser, lambda d: d.find_element(By.ID, "try-error") if d.find_element(By.ID, "try-error")
                   .is_displayed() else None)  # fmt: skip
    assert "holiday.png" in problem.text and "text" in problem.text
    browser.save_screenshot(str(ARTIFACTS / "try-refused.png"))
