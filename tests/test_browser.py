"""The review page end to end, in a real browser: headless Chromium driven through Selenium.

The server runs in a thread (uvicorn on a free 127.0.0.1 port) over the small index; the
browser is Debian's ``chromium`` with its ``chromium-driver``, named by path, so nothing
downloads a browser or a driver. The expert opens MIT-BIH 233, labels five suggested
beats with the keyboard (each with its class in 233.atr), propagates with Enter, reloads the page (the labels come back
from the server), and exports an annotation that ``wfdb.rdann`` reads.

Without the browser the test is skipped, except on CI (``CI`` set), where it fails.
``SIMSEARCH_SCREENSHOT=1`` also writes the page's screenshot to docs/review-page.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import wfdb

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "review-page.png"
RECORD = "233"
LABELS = 5
"""Suggested beats the expert labels, each with its class in 233.atr (the cardiologists' answer)."""

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install chromium chromium-driver",
                    pytrace=False)
    pytest.skip("no Chromium here (apt-get install chromium chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
uvicorn = pytest.importorskip("uvicorn")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from simsearch.aami import SYMBOL_TO_AAMI  # noqa: E402
from simsearch.server.app import create_app  # noqa: E402
from simsearch.server.state import ServerState  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(small_index, data_dir, tmp_path):
    """The app served by uvicorn in a thread; yields (base URL, state)."""
    state = ServerState(small_index.path, data_dir, tmp_path / "workspaces", encoder=small_index.encoder)
    port = free_port()
    config = uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/", state
    running.should_exit = True
    thread.join(timeout=10)
    state.close()


@pytest.fixture
def browser(tmp_path):
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager, were it asked, may not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1400,1250", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def state_of(driver) -> str:
    return driver.execute_script("return document.body.dataset.state")


def wait_for(driver, condition, timeout: float = 60, what: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d), message=what)


def labeled(driver) -> dict[int, str]:
    """The expert labels the page lists (read in one go: the list is redrawn as labels arrive)."""
    pairs = driver.execute_script(
        "return [...document.querySelectorAll('#labeled li')].map(li => [li.dataset.sample, li.dataset.label])")
    return {int(s): label for s, label in pairs}


def queue(driver) -> tuple[list[int], int | None]:
    """The samples of the queue, and the one selected."""
    samples, current = driver.execute_script(
        "const items = [...document.querySelectorAll('#queue li')];"
        "const cur = document.querySelector('#queue li.current');"
        "return [items.map(li => li.dataset.sample), cur ? cur.dataset.sample : null]")
    return [int(s) for s in samples], (int(current) if current is not None else None)


def reference_class(data_dir, sample: int) -> str:
    ann = wfdb.rdann(str(data_dir / RECORD), "atr")
    beats = [(abs(int(s) - sample), SYMBOL_TO_AAMI[sym]) for s, sym in zip(ann.sample, ann.symbol)
             if sym in SYMBOL_TO_AAMI]
    return min(beats)[1]


def test_label_propagate_reload_export(server, browser, data_dir, tmp_path):
    base, state = server
    browser.get(base)
    wait_for(browser, lambda d: "beats of" in d.find_element(By.ID, "index-info").text, what="index info")
    browser.find_element(By.ID, "record-path").send_keys(RECORD)
    browser.find_element(By.ID, "open-btn").click()
    wait_for(browser, lambda d: state_of(d) in ("ready", "failed"), timeout=180, what="the record prepared")
    assert state_of(browser) == "ready", browser.find_element(By.ID, "message").text
    ventricular = browser.find_element(By.CSS_SELECTOR, "#ectopy tr[data-cls='V']").text.split()
    assert ventricular[0] == "V" and int(ventricular[-1]) > 0  # 233's episodes of ventricular bigeminy
    assert browser.find_element(By.ID, "rhythm-facts").text.startswith("HR ")
    asked, _ = queue(browser)
    assert len(asked) >= LABELS and not labeled(browser)
    keys = [reference_class(data_dir, sample) for sample in asked[:LABELS]]

    body = browser.find_element(By.TAG_NAME, "body")
    for i, key in enumerate(keys):
        wait_for(browser, lambda d, i=i: queue(d)[1] == asked[i], what=f"beat {i + 1} selected")  # labels move it on
        body.send_keys(key)
        wait_for(browser, lambda d, i=i: len(labeled(d)) == i + 1, what=f"label {i + 1} stored")
    given = dict(zip(asked, keys))
    assert labeled(browser) == given

    body.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: d.find_element(By.ID, "changes").get_attribute("data-switched") is not None,
             what="the propagation report")
    report = browser.find_element(By.ID, "changes").text
    assert "Last propagation" in report and "before" in report and "after" in report
    wait_for(browser, lambda d: d.execute_script("return document.body.dataset.busy") == "0", what="idle")
    time.sleep(0.5)  # the strip's last redraw
    shot = tmp_path / "review-page.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("SIMSEARCH_SCREENSHOT"):
        save_small_png(shot, SCREENSHOT)

    browser.refresh()  # the page comes back to the workspace (#ws=...) and its labels from the server
    wait_for(browser, lambda d: state_of(d) == "ready" and len(labeled(d)) == LABELS, timeout=120,
             what="the workspace reopened")
    assert labeled(browser) == given
    assert "#ws=" in browser.current_url

    browser.find_element(By.ID, "export-btn").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#export-links a"), what="the export links")
    files = dict(browser.execute_script(
        "return [...document.querySelectorAll('#export-links a')].map(a => [a.dataset.kind, a.dataset.file])"))
    assert files == {"wfdb": "233.pred", "csv": "233.pred.csv", "json": "233.pred.json"}
    workspace = browser.current_url.split("#ws=")[1]
    ann = wfdb.rdann(str(state.workspace_dir / workspace / "export" / RECORD), "pred")
    symbols = dict(zip(ann.sample.tolist(), ann.symbol))
    assert {s: symbols[s] for s in given} == given
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe


def save_small_png(source: Path, target: Path) -> None:
    """The screenshot as a palette PNG (a few hundred kB at most), for the README."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(source, target)
        return
    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=128).save(target, optimize=True)
