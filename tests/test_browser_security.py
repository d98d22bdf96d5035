"""Hostile pages in a real headless Chromium (Playwright) against a loopback server: a page on another
origin cannot start a burst or open a stream, and a DNS-rebinding page (another name resolving to the
server's address) is refused (issue 11). Skips like tests/test_browser.py without Chromium."""


from twisted.internet import defer, reactor, threads
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from twisted.web import resource, server, static

from tests import browser_support
from tests.helpers import LoopbackServer

EVIL_PAGE = b"""<!doctype html><title>cat pictures</title><script>
window.attack = async (camera) => {
  const results = {};
  // a "simple" cross-site request: no preflight, the browser sends it and hides the answer
  try {
    await fetch(`${camera}/api/burst`, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                                        body: JSON.stringify({value: {frames: 5}})});
    results.simple = "sent";
  } catch (e) { results.simple = `failed: ${e.message}`; }
  // a JSON request needs a preflight, which the server refuses
  try {
    const r = await fetch(`${camera}/api/burst`, {method: "POST", headers: {"Content-Type": "application/json"},
                                                  body: JSON.stringify({value: {frames: 5}})});
    results.json = `answered ${r.status}`;
  } catch (e) { results.json = `failed: ${e.message}`; }
  // a form post, as a page could submit it in a hidden frame
  const form = document.createElement("form");
  form.method = "POST"; form.action = `${camera}/api/burst`; form.enctype = "text/plain"; form.target = "sink";
  const input = document.createElement("input");
  input.name = '{"value": {"frames": 5}, "x": "'; input.value = '"}';
  form.appendChild(input);
  const sink = document.createElement("iframe"); sink.name = "sink"; document.body.appendChild(sink);
  document.body.appendChild(form);
  const loaded = new Promise((resolve) => { sink.onload = resolve; });
  form.submit();
  await loaded;
  // the streams
  for (const path of ["stream/live?width=64&height=64", "stream/burst?id=1"]) {
    results[path] = await new Promise((resolve) => {
      const ws = new WebSocket(`${camera.replace("http", "ws")}/${path}`);
      ws.onopen = () => { resolve("opened"); ws.close(); };
      ws.onmessage = () => resolve("got a message");
      ws.onerror = () => resolve("refused");
    });
  }
  return results;
};
</script>"""


class ChromiumCase(unittest.TestCase):
    """A loopback server, a page of another origin (another port), and Chromium to drive."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        browser_support.require_browser(self)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.server = LoopbackServer()
        yield self.server.start()
        root = resource.Resource()
        root.putChild(b"", static.Data(EVIL_PAGE, "text/html"))
        self.evil = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
        self.addCleanup(self.evil.stopListening)

    def tearDown(self):
        return self.server.stop()

    def chromium(self, check, *args):
        """Run ``check(tab)`` in a fresh headless Chromium (in a thread), with ``args`` for it."""
        from playwright.sync_api import sync_playwright

        def session():
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=browser_support.chromium_path(), headless=True,
                                                     args=["--no-sandbox", *args])
                try:
                    tab = browser.new_page()
                    tab.set_default_timeout(browser_support.TIMEOUT_MS)
                    return check(tab)
                finally:
                    browser.close()

        return threads.deferToThread(session)

    def refusals(self):
        return [e for e in self.events if "refused" in str(e.get("log_format", ""))]


class HostilePageTests(ChromiumCase):
    @defer.inlineCallbacks
    def test_foreign_page_cannot_burst_or_stream(self):
        """A page on another origin sends a simple POST, a JSON POST (preflighted), a text/plain form and two
        WebSocket handshakes to the camera: each reaches the server and is refused; no burst starts and
        no stream opens."""
        camera = f"http://{self.server.address}"

        def attack(tab):
            tab.goto(f"http://127.0.0.1:{self.evil.getHost().port}/")
            return tab.evaluate("(camera) => window.attack(camera)", camera)

        results = yield self.chromium(attack)
        self.assertEqual(results["stream/live?width=64&height=64"], "refused", results)
        self.assertEqual(results["stream/burst?id=1"], "refused", results)
        self.assertTrue(results["json"].startswith("failed"), results)  # its preflight was refused
        self.assertIsNone(self.server.bursts.current)
        self.assertEqual(self.server.live.viewers, [])
        why = [e["why"] for e in self.refusals()]
        self.assertGreaterEqual(sum("refused" in w and "127.0.0.1" in w for w in why), 5, why)  # all reached it

    @defer.inlineCallbacks
    def test_dns_rebinding_refused(self):
        """A page at another name that resolves to the server (DNS rebinding) gets 421 for the viewer, the API
        and the streams."""
        port = self.server.address.split(":")[1]

        def rebound(tab):
            response = tab.goto(f"http://rebind.test:{port}/")
            api = tab.evaluate("async () => (await fetch('/api/temperature')).status")
            stream = tab.evaluate("""() => new Promise((resolve) => {
                const ws = new WebSocket(`ws://${location.host}/stream/live`);
                ws.onopen = () => resolve("opened"); ws.onerror = () => resolve("refused"); })""")
            return response.status, tab.content(), api, stream

        status, content, api, stream = yield self.chromium(rebound, "--host-resolver-rules=MAP rebind.test 127.0.0.1")
        self.assertEqual((status, api, stream), (421, 421, "refused"))
        self.assertIn("unknown_host", content)
        self.assertEqual(self.server.live.viewers, [])


class ViewerLoginTests(ChromiumCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        yield self.server.stop()
        from tests.test_auth import VIC, write_tokens
        self.token = VIC
        self.server = LoopbackServer()
        yield self.server.start("--tokens", write_tokens(self.mktemp()))

    @defer.inlineCallbacks
    def test_viewer_asks_once(self):
        """On a server with tokens the viewer asks for one once, logs in (the cookie is HttpOnly: the page
        cannot read it), and then shows the live image; a viewer token's settings are refused with the
        server's message."""

        def login(tab):
            asked = []

            def answer(dialog):
                asked.append(dialog.message)
                dialog.accept(self.token)

            tab.on("dialog", answer)
            tab.goto(f"http://{self.server.address}/")
            browser_support.wait_for_frames(tab, 2)
            return asked, tab.evaluate("document.cookie")

        asked, cookie = yield self.chromium(login)
        self.assertEqual(len(asked), 1, asked)
        self.assertIn("needs a token", asked[0])
        self.assertEqual(cookie, "")  # HttpOnly
        self.assertTrue(any("logged in" in str(e.get("log_format")) and e.get("name") == "vic" for e in self.events))
