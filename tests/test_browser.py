"""The viewer page in a real browser: headless Chromium, driven by Playwright, against a loopback server.

Each test runs one blocking browser session in a thread while the trial reactor serves the page, and
leaves a screenshot in its temporary directory (the path is printed). Without Chromium or Playwright
the tests skip, except under CI=true, where they fail: CI must run them.
"""

import contextlib
import json
import os
import re

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests import browser_support
from tests.browser_support import canvas_means, fix_levels, frames_drawn, http, wait_for_frames
from andor_twisted.camera.sim.models import MODELS
from tests.helpers import LoopbackServer

FRAME_VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "frame-vectors.json")


def expect(locator):
    from playwright.sync_api import expect

    return expect(locator)


@contextlib.contextmanager
def answered(tab, method, path, status=200):
    """Wait for the page's ``method`` request to ``/api/<path>``, made in the block, to be answered ``status``."""

    def wanted(response):
        return response.request.method == method and response.url.split("?")[0].endswith(f"/api/{path}")

    with tab.expect_response(wanted) as info:
        yield
    response = info.value
    if response.status != status:
        raise AssertionError(f"{method} /api/{path} answered {response.status}, not {status}: {response.text()}")


class BrowserTestCase(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        browser_support.require_browser(self)
        self.server = LoopbackServer()
        yield self.server.start()
        self.address = self.server.address

    def tearDown(self):
        return self.server.stop()

    def browse(self, check):
        """Open the viewer and run ``check(tab)`` (blocking Playwright calls) in a thread."""
        directory = self.mktemp()
        os.makedirs(directory)
        screenshot = os.path.abspath(os.path.join(directory, "viewer.png"))

        def session():
            with browser_support.page(f"http://{self.address}/", screenshot) as tab:
                check(tab)

        return threads.deferToThread(session)

    def api(self, method, path, value=None):
        """An API request as a script would make it (blocking: call it from inside ``check``)."""
        return http(self.address, method, path, value)


class PageTests(BrowserTestCase):
    """What works over the HTTP API alone."""

    def test_controls_show_the_camera(self):
        """Once loaded, the controls show the camera's settings and the temperature readout runs."""

        def check(tab):
            _, exposure = self.api("GET", "/api/exposure_time")
            _, aoi = self.api("GET", "/api/aoi")
            expect(tab.locator("#exposure")).to_have_value(str(exposure["value"]))
            expect(tab.locator("#aoi-width")).to_have_value(str(aoi["value"]["width"]))
            expect(tab.locator("#aoi-height")).to_have_value(str(aoi["value"]["height"]))
            expect(tab.locator("#binning")).to_have_value("1")
            expect(tab.locator("#setpoint option")).to_contain_text(["-30.00", "-40.00"], timeout=5000)
            expect(tab.locator("#temperature")).to_have_text(re.compile(r"^-?\d+\.\d\d °C$"))
            expect(tab.locator("#cooling-status")).to_have_text("Cooler Off")
            expect(tab.locator("#camera-fps")).to_have_text(re.compile(r"fps$"))
            expect(tab.locator("#burst-progress")).to_have_text("no burst")
            expect(tab.locator("#error")).to_be_hidden()

        return self.browse(check)

    def test_controls_change_the_camera(self):
        """Exposure, binning, cooling, setpoint and fan set from the page reach the camera."""

        def check(tab):
            expect(tab.locator("#exposure")).not_to_have_value("")
            tab.fill("#exposure", "0.02")
            with answered(tab, "PUT", "exposure_time"):
                tab.click("#exposure-set")
            self.assertEqual(self.api("GET", "/api/exposure_time")[1]["value"], 0.02)

            with answered(tab, "PUT", "binning"):
                tab.select_option("#binning", "2")
            self.assertEqual(self.api("GET", "/api/binning")[1]["value"], "2x2")
            expect(tab.locator("#aoi-width")).to_have_value("2560")  # binning keeps the AOI's region

            with answered(tab, "PUT", "sensor_cooling"):
                tab.check("#cooling")
            self.assertIs(self.api("GET", "/api/sensor_cooling")[1]["value"], True)
            expect(tab.locator("#setpoint option")).to_contain_text(["-30.00"])
            with answered(tab, "PUT", "temperature_setpoint"):
                tab.select_option("#setpoint", "-30.00")
            self.assertEqual(self.api("GET", "/api/temperature_setpoint")[1]["value"], "-30.00")
            expect(tab.locator("#fan option")).to_contain_text(["Low"])
            with answered(tab, "PUT", "fan"):
                tab.select_option("#fan", "Low")
            self.assertEqual(self.api("GET", "/api/fan")[1]["value"], {"on": True, "speed": "Low"})
            expect(tab.locator("#error")).to_be_hidden()

        return self.browse(check)

    def test_invalid_aoi_shows_the_server_message(self):
        """An AOI the camera refuses shows the server's own message in #error."""

        def check(tab):
            expect(tab.locator("#aoi-height")).to_have_value("2160")
            status, refusal = self.api("PUT", "/api/aoi", {"left": 1, "top": 1, "width": 99999, "height": 2160})
            self.assertEqual(status, 400)
            tab.fill("#aoi-width", "99999")
            tab.click("#aoi-set")
            expect(tab.locator("#error")).to_be_visible()
            expect(tab.locator("#error")).to_contain_text(refusal["message"])
            self.assertEqual(self.api("GET", "/api/aoi")[1]["value"]["width"], 2560)

        return self.browse(check)

    def test_snap_downloads(self):
        """The snap links save a TIFF and a FITS file of the current AOI."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)

        def check(tab):
            self.api("PUT", "/api/aoi", {"width": 64, "height": 32})
            for link, magic in (("#snap-tiff", (b"II*\x00", b"MM\x00*")), ("#snap-fits", (b"SIMPLE  =",))):
                with tab.expect_download() as info:
                    tab.click(link)
                download = info.value
                path = os.path.join(directory, download.suggested_filename)
                download.save_as(path)
                with open(path, "rb") as f:
                    self.assertTrue(f.read(9).startswith(magic), download.suggested_filename)
                self.assertTrue(download.suggested_filename.endswith(link[6:]))
            expect(tab.locator("#error")).to_be_hidden()

        return self.browse(check)

    def test_burst_from_a_script_shows_progress(self):
        """A burst started by another program appears in #burst-progress, polled from GET /api/burst, with
        the spool's use and the rate its frames are sent at (MB/s)."""

        def check(tab):
            expect(tab.locator("#burst-progress")).to_have_text("no burst")
            self.api("PUT", "/api/aoi", {"width": 256, "height": 256})
            status, started = self.api("POST", "/api/burst", {"frames": 20, "fps": 50, "spool": 0})
            self.assertEqual(status, 200, started)
            progress = tab.locator("#burst-progress")
            expect(progress).to_contain_text(f"burst {started['value']['id']}: ")
            expect(progress).to_contain_text("captured 20/20")
            expect(progress).to_contain_text(re.compile(r"spool \d+/\d+ \(\d+ MB, high water \d+\)"))
            expect(progress).to_contain_text(re.compile(r"\d+\.\d MB/s"))  # from two polls: nobody reads it

        return self.browse(check)

    def test_frame_reader_passes_the_vectors(self):
        """frames.js reads docs/frame-vectors.json as the spec says, and refuses malformed messages."""
        with open(FRAME_VECTORS) as f:
            vectors = json.load(f)["vectors"]

        def check(tab):
            results = tab.evaluate("""async (vectors) => {
                const { parseFrame, timestamp } = await import('./static/frames.js');
                const bytes = (hex) => new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16))).buffer;
                const big = (n) => (n === null ? null : String(n));
                const refusal = (buffer) => {
                    try { parseFrame(buffer); return null; } catch (e) { return e.message; }
                };
                return vectors.map((v) => {
                    const f = parseFrame(bytes(v.message_hex));
                    const message = bytes(v.message_hex);
                    const wrongMagic = new Uint8Array(message.slice(0)); wrongMagic[0] = 0;
                    return {
                        fields: { burst_id: f.burst_id, frame_number: big(f.frame_number), dtype: f.dtype,
                                  ticks: big(f.ticks), tick_frequency: big(f.tick_frequency),
                                  height: f.height, width: f.width },
                        pixels: Array.from(f.pixels), seconds: timestamp(f),
                        truncated: refusal(message.slice(0, message.byteLength - 1)),
                        short: refusal(message.slice(0, 20)),
                        wrong_magic: refusal(wrongMagic.buffer),
                    };
                });
            }""", vectors)
            for vector, result in zip(vectors, results, strict=True):
                fields = {k: (str(v) if k in ("frame_number", "ticks", "tick_frequency") and v is not None else v)
                          for k, v in vector["fields"].items()}
                self.assertEqual(result["fields"], fields, vector["description"])
                self.assertEqual(result["pixels"], [p for row in vector["pixels"] for p in row])
                if vector["fields"]["ticks"] is None:
                    self.assertIsNone(result["seconds"])
                else:
                    self.assertAlmostEqual(result["seconds"],
                                           vector["fields"]["ticks"] / vector["fields"]["tick_frequency"], places=5)
                self.assertIn("bytes, not", result["truncated"])
                self.assertIn("at least 48 bytes", result["short"])
                self.assertIn("not a frame message", result["wrong_magic"])

        return self.browse(check)

    def test_render_levels_colormaps_saturation(self):
        """render.js: levels map linearly, viridis has matplotlib's ends, the bit depth's maximum is red,
        and auto-contrast takes the 0.1% and 99.9% percentiles."""

        def check(tab):
            result = tab.evaluate("""async () => {
                const r = await import('./static/render.js');
                const colours = (pixels, settings) => {
                    const table = r.levelTable(settings);
                    const image = new ImageData(pixels.length, 1);
                    r.colorize(Uint16Array.from(pixels), table, r.binning(settings.bitDepth).shift, image);
                    const rgb = (i) => Array.from(image.data.slice(4 * i, 4 * i + 3));
                    return Array.from({ length: pixels.length }, (_, i) => rgb(i));
                };
                const ramp = Uint16Array.from({ length: 1000 }, (_, i) => i);
                return {
                    gray: colours([0, 100, 600, 1100, 5000, 65534, 65535],
                                  { black: 100, white: 1100, colormap: 'gray', bitDepth: 16 }),
                    twelve: colours([4094, 4095], { black: 0, white: 4095, colormap: 'gray', bitDepth: 12 }),
                    viridis: colours([0, 10], { black: 0, white: 10, colormap: 'viridis', bitDepth: 16 }),
                    levels: r.autoLevels(r.histogram(ramp, 16)),
                };
            }""")
            self.assertEqual(result["gray"], [[0, 0, 0], [0, 0, 0], [128, 128, 128], [255, 255, 255],
                                              [255, 255, 255], [255, 255, 255], [255, 0, 0]])
            self.assertEqual(result["twelve"], [[255, 255, 255], [255, 0, 0]])
            self.assertEqual(result["viridis"], [[0x44, 0x01, 0x54], [0xfd, 0xe7, 0x25]])
            self.assertEqual(result["levels"], {"black": 1, "white": 999})

        return self.browse(check)


class LiveViewTests(BrowserTestCase):
    """The live image over /stream/live."""

    def test_live_image(self):
        """The page draws a first frame (awaited through the page's own promise, not a deadline), then
        frames keep coming, with their readouts and the cursor's pixel."""

        def check(tab):
            tab.wait_for_function("() => window.andorViewer !== undefined")
            first_frame = tab.evaluate("() => window.andorViewer.firstFrame")
            self.assertRegex(first_frame["frame_number"], r"^\d+$")
            self.assertGreater(first_frame["ms"], 0)
            self.assertGreaterEqual(frames_drawn(tab), 1)
            first = tab.text_content("#frame-number")
            expect(tab.locator("#frame-number")).not_to_have_text(first)
            expect(tab.locator("#live-status")).to_have_text("live")
            expect(tab.locator("#timestamp")).to_have_text(re.compile(r"^\d+\.\d{6} s$"))
            expect(tab.locator("#display-fps")).to_have_text(re.compile(r"^\d+\.\d fps$"))
            expect(tab.locator("#camera-fps")).to_have_text(re.compile(r"^\d+\.\d\d fps$"))
            box = tab.locator("#image").bounding_box()
            tab.mouse.move(box["x"] + 5, box["y"] + box["height"] / 2)
            expect(tab.locator("#cursor")).to_have_text(re.compile(r"^x \d+, y \d+: \d+$"))
            expect(tab.locator("#error")).to_be_hidden()

        return self.browse(check)

    def test_exposure_changes_the_image(self):
        """With fixed levels, a longer exposure makes the image brighter."""

        def check(tab):
            wait_for_frames(tab, 1)
            fix_levels(tab, 100, 3000)
            brightness = []
            for exposure in ("0.002", "0.05"):
                tab.fill("#exposure", exposure)
                with answered(tab, "PUT", "exposure_time"):
                    tab.click("#exposure-set")
                wait_for_frames(tab, 4)  # past any frame exposed before the change
                brightness.append(canvas_means(tab)[1])
            self.assertGreater(brightness[1], brightness[0] + 20, brightness)
            expect(tab.locator("#error")).to_be_hidden()

        return self.browse(check)

    def test_levels_and_colormap_change_the_image(self):
        """A lower white level brightens the image at once; viridis colours it."""

        def check(tab):
            wait_for_frames(tab, 1)
            fix_levels(tab, 100, 3000)
            red, green, blue = canvas_means(tab)
            self.assertAlmostEqual(green, blue, delta=0.5)  # gray (saturated red pixels aside)
            tab.select_option("#colormap", "viridis")
            red, green, blue = canvas_means(tab)
            self.assertGreater(blue, green + 20)  # the dark end of viridis is blue-violet
            tab.select_option("#colormap", "gray")
            before = canvas_means(tab)[1]
            tab.fill("#white", "600")
            after = canvas_means(tab)[1]
            self.assertGreater(after, before + 20, (before, after))

        return self.browse(check)

    def test_burst_is_watched_while_it_captures(self):
        """While a burst has the camera the page shows the burst's frames and says so, then the live
        view comes back."""

        def check(tab):
            wait_for_frames(tab, 1)
            self.api("PUT", "/api/aoi", {"width": 256, "height": 256})
            status, started = self.api("POST", "/api/burst", {"frames": 30, "fps": 10, "spool": 0})
            self.assertEqual(status, 200, started)
            expect(tab.locator("#live-status")).to_contain_text("watching burst")
            expect(tab.locator("#burst-progress")).to_contain_text("captured 30/30")
            wait_for_frames(tab, 2)
            expect(tab.locator("#live-status")).to_have_text("live")

        return self.browse(check)


class EveryModelTests(BrowserTestCase):
    """The viewer on every simulated camera model: each has its own features (a Neo bins with the
    AOIBinning enum alone, a Zyla's TemperatureControl is read-only, a Balor is larger), and the page must
    show live frames, and bin them, on each. One browser visits a server per model."""

    @defer.inlineCallbacks
    def test_live_view_and_binning_on_every_model(self):
        servers = {}
        for model in MODELS:
            servers[model] = server = LoopbackServer()
            self.addCleanup(server.stop)
            yield server.start("--sim-model", model)

        def check(tab):
            for model, server in servers.items():
                self.address = server.address
                tab.goto(f"http://{server.address}/")
                wait_for_frames(tab, 2)
                _, aoi = self.api("GET", "/api/aoi")
                with answered(tab, "PUT", "binning"):
                    tab.select_option("#binning", "2")
                self.assertEqual(self.api("GET", "/api/binning")[1]["value"], "2x2", model)
                wait_for_frames(tab, 2)
                expect(tab.locator("#aoi-width")).to_have_value(str(aoi["value"]["width"]))
                expect(tab.locator("#error")).to_be_hidden()

        yield self.browse(check)
