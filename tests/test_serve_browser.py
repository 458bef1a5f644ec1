"""The chat page of `ecr serve` in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium (PyPI, in the build tree's venv: tools/setup_venv.sh) loads
the page from a server this test starts, types a message and waits for the streamed reply, the
ranked movies and the emotion bars. It saves a screenshot as $ECR_TEST_TMP/serve.png (docs/serve.png
is one). Skips with a message when the browser, its driver or Selenium is missing.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

from test_serve import BUNDLE, LIMITS, Server

VENV = Path(os.environ.get("ECR_VENV", Path(__file__).resolve().parents[1] / "build" / "venv"))
# First: the venv's newer typing_extensions (selenium's) over Debian's.
sys.path[:0] = [str(p) for p in VENV.glob("lib/python3*/site-packages")]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TMP = Path(os.environ.get("ECR_TEST_TMP", "/tmp/ecr-serve-tests"))


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (tools/install_deps.sh)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(f"needs selenium in {VENV} (tools/setup_venv.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def test_page_chats_with_the_server(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    # The LLM when one is installed (docs/serve.png shows it), else ECR's generator.
    server = Server(*LIMITS, generator="auto")
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        assert "ecr" in browser.title
        # Count the reply's text changes: a streamed reply grows piece by piece before the result.
        browser.execute_script("""
            window.replyLengths = [];
            new MutationObserver(() => {
              const t = document.querySelector('.turn.system .text');
              if (t) window.replyLengths.push(t.textContent.length);
            }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true});""")
        box = browser.find_element(By.ID, "message")
        box.send_keys("I loved The Shining (1980). Any horror movies like it?", Keys.ENTER)
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#items li.item"))
        reply = browser.find_element(By.CSS_SELECTOR, ".turn.system .text").text
        assert reply.strip(), "no reply"
        lengths = browser.execute_script("return window.replyLengths")
        assert len(set(lengths)) > 2, f"the reply did not stream in: {lengths}"
        items = browser.find_elements(By.CSS_SELECTOR, "#items li.item")
        assert len(items) == 5  # --top-k's default
        assert all(i.find_element(By.CSS_SELECTOR, ".score").text.strip() for i in items)
        assert browser.find_elements(By.CSS_SELECTOR, ".why"), "no explanation shown"
        bars = browser.find_elements(By.CSS_SELECTOR, ".turn.user .bar.emotion")
        assert bars, "no emotion bars for the user's turn"
        assert "heard:" in browser.find_element(By.CSS_SELECTOR, ".turn.user").text  # "loved" The Shining
        assert browser.find_element(By.ID, "status").text == ""
        TMP.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(TMP / "serve.png"))
    finally:
        server.stop()
    assert server.proc.returncode == 0
