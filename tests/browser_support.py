"""Driving the viewer page in a real headless Chromium through Playwright's blocking API.

Everything here blocks: run it in a thread (``threads.deferToThread``) while the reactor serves the page.
The browser is the system's Chromium (Debian: ``apt-get install chromium``), not one Playwright downloads.
"""

import contextlib
import json
import os
import shutil
import urllib.error
import urllib.request

from twisted.trial import unittest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_MS = 15000  # for anything that waits on the server
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path():
    """The Chromium to drive: $ANDOR_TEST_CHROMIUM, or the first of CHROMIUM_NAMES on the PATH."""
    return os.environ.get("ANDOR_TEST_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def missing():
    """Why the browser tests cannot run here, or None if they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: .venv/bin/pip install playwright (no 'playwright install' needed)"
    if not chromium_path():
        return "no Chromium found: apt-get install chromium, or point ANDOR_TEST_CHROMIUM at one"
    return None


def require_browser(test):
    """Skip ``test`` (a TestCase) where the browser tests cannot run; under CI=true, fail it instead."""
    why = missing()
    if why:
        if os.environ.get("CI") == "true":
            test.fail(f"the browser tests must run in CI (CI=true), but cannot: {why}")
        raise unittest.SkipTest(why)


@contextlib.contextmanager
def page(url, screenshot):
    """A page showing ``url`` in a fresh headless Chromium; saved to ``screenshot`` (a PNG path) at the
    end, also when the test fails. Uncaught JavaScript errors fail the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            tab.set_default_timeout(TIMEOUT_MS)
            errors = []
            tab.on("pageerror", lambda error: errors.append(error))
            tab.goto(url)
            try:
                yield tab
            finally:
                try:
                    tab.screenshot(path=screenshot)
                    print(f"screenshot: {screenshot}")
                except Exception as e:  # never hide the test's own failure behind this one
                    print(f"no screenshot: {e}")
            if errors:
                raise AssertionError(f"JavaScript errors in the page: {errors}")
        finally:
            browser.close()


def http(address, method, path, value=None):
    """(status, parsed JSON body) of one API request from the test itself, as a script would make it."""
    body = None if value is None else json.dumps({"value": value}).encode()
    request = urllib.request.Request(f"http://{address}{path}", data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def frames_drawn(tab):
    return tab.evaluate("Number(document.getElementById('image').dataset.frames)")


def fix_levels(tab, black, white):
    """Auto-contrast off, and the given black and white levels."""
    tab.uncheck("#auto-contrast")
    tab.fill("#black", str(black))
    tab.fill("#white", str(white))


def wait_for_frames(tab, count, timeout=TIMEOUT_MS, since=None):
    """Wait until the page has drawn ``count`` frames more than ``since`` (default: the frames it has drawn
    now); say what the page shows if it does not."""
    from playwright.sync_api import TimeoutError

    target = (frames_drawn(tab) if since is None else since) + count
    try:
        tab.wait_for_function(f"Number(document.getElementById('image').dataset.frames) >= {target}",
                              timeout=timeout)
    except TimeoutError:
        raise AssertionError(
            f"the page drew {frames_drawn(tab)} frames, not {target}, within {timeout / 1000:g} s; live status "
            f"{tab.text_content('#live-status')!r}, error area {tab.text_content('#error')!r}") from None


def canvas_means(tab):
    """Mean red, green and blue of the #image canvas as it is on screen, 0..255."""
    return tab.evaluate("""() => {
        const canvas = document.getElementById('image');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        const sums = [0, 0, 0];
        for (let i = 0; i < data.length; i += 4) { sums[0] += data[i]; sums[1] += data[i + 1]; sums[2] += data[i + 2]; }
        return sums.map((s) => s / (data.length / 4));
    }""")
