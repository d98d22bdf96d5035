"""The HTTP API end to end: a real server on a loopback port, driven by the real client."""

import http.client
import json
import os

import numpy as np
from twisted.internet import defer, threads
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

import andor
from andor_twisted.acquisition.arbiter import Purpose
from andor_twisted.camera import atcore
from andor_twisted.camera.sim.exceptions import fail

from tests.helpers import LoopbackServer, sdk_with_camera_in_use



class APITestCase(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.server = LoopbackServer()
        yield self.server.start()
        self.cam = self.server.cam
        yield self.client(self.cam.aoi, {"left": 1, "top": 1, "width": 256, "height": 128})

    def tearDown(self):
        return self.server.stop()

    def client(self, fn, *args):
        """Run a blocking client call in a thread, so the reactor serves it meanwhile."""
        return threads.deferToThread(fn, *args)

    def sdk_camera(self):
        """The simulated device behind the server's camera."""
        service = self.server.service
        return service.sdk.simulated.devices[service.camera().device.index]


class ClientTests(APITestCase):
    @defer.inlineCallbacks
    def test_access_log(self):
        """Requests that change the camera or fail are logged; a viewer's successful polls are not."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        yield self.client(self.server.raw, "GET", "/api/temperature")
        yield self.client(self.server.raw, "PUT", "/api/exposure_time", {"value": 0.02})
        yield self.client(self.server.raw, "GET", "/api/features/Nope")
        lines = [e["log_io"] for e in events if "log_io" in e]
        self.assertEqual([line.split('"')[3].split()[:2] for line in lines],
                         [["PUT", "/api/exposure_time"], ["GET", "/api/features/Nope"]])

    @defer.inlineCallbacks
    def test_quick_start(self):
        """The README's quick start: exposure, AOI, binning, snap, features, cooling."""
        c = self.cam
        yield self.client(c.exposure_time, 0.01)
        yield self.client(c.aoi, {"left": 1, "top": 1, "width": 512, "height": 512})
        self.assertEqual((yield self.client(c.binning, 2)), 2)
        img = yield self.client(c.snap)
        self.assertIsInstance(img, np.ndarray)
        self.assertEqual((img.shape, img.dtype), ((256, 256), np.uint16))
        img -= 1  # the user's array to change in place
        features = yield self.client(lambda: c.features)
        self.assertEqual(features["ExposureTime"], "float")
        self.assertEqual(features["FrameRate"], "float")
        info = yield self.client(c.get_feature_info, "FrameRate")
        self.assertEqual(info["type"], "float")
        self.assertLess(info["min"], info["max"])
        self.assertIsInstance((yield self.client(lambda: c.temperature)), float)
        self.assertEqual((yield self.client(lambda: c.cooling_status)), "Cooler Off")
        self.assertIn("-30.00", (yield self.client(lambda: c.temperature_setpt_options)))

    @defer.inlineCallbacks
    def test_settings_round_trip(self):
        """Each setter returns what the camera now has, and the camera has it."""
        c = self.cam
        self.assertEqual((yield self.client(c.exposure_time, "25ms")), 0.025)
        self.assertEqual(self.sdk_camera().value("ExposureTime"), 0.025)
        self.assertEqual((yield self.client(c.exposure_time)), 0.025)
        self.assertEqual((yield self.client(c.aoi, {"width": 200})),
                         {"left": 1, "top": 1, "width": 200, "height": 128})
        self.assertFalse((yield self.client(c.fan, False)))
        self.assertEqual(self.sdk_camera().value("FanSpeed"), "Off")
        self.assertTrue((yield self.client(c.fan, "Low")))
        self.assertTrue((yield self.client(c.sensor_cooling, True)))
        self.assertEqual((yield self.client(c.temperature_setpt, -30)), "-30.00")
        self.assertEqual((yield self.client(c.set_feature, "FrameRate", 20)), 20.0)
        self.assertEqual((yield self.client(c.get_feature, "FrameRate")), 20.0)

    @defer.inlineCallbacks
    def test_snap_files_hold_the_same_pixels(self):
        """TIFF and FITS snaps, written by tifffile and astropy, hold the pixels of a raw snap."""
        import tifffile
        from astropy.io import fits

        raw = yield self.client(self.cam.snap)
        tiff_path = yield self.client(self.cam.snap_file, os.path.abspath("snap.tiff"))
        fits_path = yield self.client(self.cam.snap_file, os.path.abspath("snap.fits"), "10ms")
        self.assertTrue(np.array_equal(tifffile.imread(tiff_path), raw))
        with fits.open(fits_path) as hdus:
            self.assertTrue(np.array_equal(hdus[0].data, raw))
            header = hdus[0].header
            self.assertEqual(header["EXPTIME"], 0.01)
            self.assertEqual(header["TICKFREQ"], 100_000_000)
            self.assertEqual((header["TIMESYS"], header["INSTRUME"], header["SERIALNO"]),
                             ("UTC", "DC-152Q-C00-FI", "SCC-10000"))
            self.assertEqual((header["AOIWIDTH"], header["BINNING"], header["PIXENCOD"], header["TRIGMODE"]),
                             (256, "1x1", "Mono16", "Internal"))
            self.assertIn("COOLSTAT", header)
            self.assertIn("CCD-TEMP", header)
            self.assertLess(header["TIMSYER"], 1.0)
            self.assertTrue(np.datetime64(header["DATE-OBS"].rstrip("Z")) > np.datetime64("2026-01-01"))
        with tifffile.TiffFile(tiff_path) as tif:
            metadata = json.loads(tif.pages[0].description)["metadata"]
        self.assertEqual((metadata["camera_model"], metadata["aoi_height"]), ("DC-152Q-C00-FI", 128))
        self.assertIn("date_obs", metadata)

    @defer.inlineCallbacks
    def test_snap_time(self):
        """A snap says when its exposure started, in UTC with an uncertainty, and on the camera's clock."""
        before = np.datetime64("now", "ns")
        frame = yield self.client(self.cam.snap_frame, "5ms")
        self.assertEqual(frame.image.shape, (128, 256))
        self.assertEqual(frame.exposure_time, 0.005)
        self.assertLess(abs((frame.time - before) / np.timedelta64(1, "s")), 5)
        self.assertLess(frame.time_uncertainty_s, 1.0)
        self.assertGreater(frame.timestamp, 0)

    @defer.inlineCallbacks
    def test_snap_carries_timing(self):
        """A raw snap's headers give dtype, shape and the exposure's camera ticks."""
        status, kind, _ = yield self.client(self.server.raw, "GET", "/api/snap")
        self.assertEqual((status, kind), (200, "application/octet-stream"))
        conn = http.client.HTTPConnection(*self.server.address.split(":"))
        yield self.client(conn.request, "GET", "/api/snap")
        response = yield self.client(conn.getresponse)
        yield self.client(response.read)
        conn.close()
        self.assertEqual(response.getheader("X-Andor-Dtype"), "<u2")
        self.assertEqual(response.getheader("X-Andor-Shape"), "128,256")
        self.assertEqual(response.getheader("X-Andor-Tick-Frequency"), "100000000")
        self.assertGreater(int(response.getheader("X-Andor-Ticks")), 0)


# method, path, body, status, error code, words the message must contain
BAD_REQUESTS = [
    ("PUT", "/api/exposure_time", {"value": "fast"}, 400, "wrong_type", ["ExposureTime", "number"]),
    ("PUT", "/api/exposure_time", {"value": 100}, 400, "out_of_range", ["[9.7e-06, 30.0]"]),
    ("PUT", "/api/exposure_time", b"{not json", 400, "malformed_json", ["not valid JSON"]),
    ("PUT", "/api/exposure_time", {"val": 1}, 400, "missing_value", ['{"value": ...}']),
    ("PUT", "/api/exposure_time", [0.1], 400, "missing_value", ['{"value": ...}']),
    ("PUT", "/api/exposure_time", b"x" * 70000, 413, "body_too_large", ["65536"]),
    ("GET", "/api/features/Nope", None, 404, "unknown_feature", ["'Nope'"]),
    ("GET", "/api/features/exposuretime", None, 404, "unknown_feature", ["did you mean 'ExposureTime'"]),
    ("PUT", "/api/features/PixelEncoding", {"value": "Mono13"}, 400, "invalid_option", ["Mono16"]),
    ("PUT", "/api/features/PixelEncoding", {"value": "Mono12"}, 400, "option_not_available", ["current mode"]),
    ("PUT", "/api/features/SensorTemperature", {"value": -5.0}, 400, "not_writable", ["SensorTemperature"]),
    ("GET", "/api/features/AcquisitionStart", None, 400, "not_readable", ["command"]),
    ("PUT", "/api/features/FrameCount", {"value": 1.5}, 400, "wrong_type", ["integer"]),
    ("PUT", "/api/aoi", {"value": {"left": 2600}}, 400, "out_of_range", ["2560"]),
    ("PUT", "/api/aoi", {"value": {"wide": 1}}, 400, "unknown_field", ["'wide'"]),
    ("PUT", "/api/aoi", {"value": 5}, 400, "wrong_type", ["left, top, width, height"]),
    ("PUT", "/api/binning", {"value": 5}, 400, "invalid_option", ["5x5", "2x2"]),
    ("PUT", "/api/fan", {"value": "Max"}, 400, "invalid_option", ["Low"]),
    ("PUT", "/api/sensor_cooling", {"value": "yes"}, 400, "wrong_type", ["true or false"]),
    ("PUT", "/api/temperature_setpoint", {"value": "-99.00"}, 400, "invalid_option", ["-40.00"]),
    ("GET", "/api/snap?format=png", None, 400, "invalid_option", ["'png'"]),
    ("GET", "/api/snap?exposure_time=soon", None, 400, "wrong_type", ["seconds"]),
    ("GET", "/api/snap?exposure_time=60", None, 400, "out_of_range", ["30.0"]),
    ("DELETE", "/api/aoi", None, 405, "method_not_allowed", ["GET or PUT"]),
    ("PUT", "/api/temperature", {"value": 1}, 405, "method_not_allowed", ["GET"]),
    ("GET", "/api/nothing/here", None, 404, "not_found", ["/api/nothing/here"]),
]


class BadInputTests(APITestCase):
    @defer.inlineCallbacks
    def test_table(self):
        """Every bad input gets its 4xx and a JSON body naming the problem."""
        for method, path, body, status, code, words in BAD_REQUESTS:
            got_status, kind, answer = yield self.client(self.server.raw, method, path, body)
            case = f"{method} {path} {body!r:.40}"
            self.assertEqual(got_status, status, f"{case}: {answer}")
            self.assertEqual(kind, "application/json", case)
            self.assertEqual(answer["error"], code, case)
            for word in words:
                self.assertIn(word, answer["message"], case)
        aoi = yield self.client(self.cam.aoi)
        self.assertEqual(aoi, {"left": 1, "top": 1, "width": 256, "height": 128})  # nothing changed

    @defer.inlineCallbacks
    def test_client_raises_server_message(self):
        """The client raises AndorError subclasses carrying the server's message and details."""
        with self.assertRaises(andor.BadRequest) as caught:
            yield self.client(self.cam.exposure_time, 100)
        error = caught.exception
        self.assertIsInstance(error, andor.AndorError)
        self.assertEqual((error.status, error.code), (400, "out_of_range"))
        self.assertEqual(error.details["max"], 30.0)
        self.assertIn("out of range", str(error))
        self.assertRaises(ValueError, self.cam.exposure_time, "soon")  # caught before sending

    @defer.inlineCallbacks
    def test_busy_camera_409(self):
        """Settings and snaps are refused while a burst has the camera: 409 naming it, and the client's
        CameraBusy; reading is fine, and the camera's description says who has it."""
        grant = yield self.server.arbiter.request(Purpose.BURST, "burst 7")
        try:
            with self.assertRaises(andor.CameraBusy) as caught:
                yield self.client(self.cam.exposure_time, 0.02)
            self.assertEqual(caught.exception.status, 409)
            self.assertEqual(caught.exception.code, "acquisition_running")
            self.assertIn("burst 7", str(caught.exception))
            with self.assertRaises(andor.CameraBusy):
                yield self.client(self.cam.snap)
            self.assertEqual((yield self.client(self.cam.exposure_time)), 0.01)  # reading is fine
            status, _, camera = yield self.client(self.server.raw, "GET", "/api/camera")
            self.assertEqual((status, camera["value"]["busy_with"]), (200, "burst 7"))
        finally:
            grant.release()
        self.assertEqual((yield self.client(self.cam.exposure_time, 0.02)), 0.02)

    def test_routes_declare_what_they_need(self):
        """Every route that changes the camera declares it needs the camera for a setting, the snap for a
        snap; nothing else does (a burst asks for the camera itself)."""
        api = self.server.top.getServiceNamed("listen 0").factory.resource.children[b"api"]
        needs = {(r.method, "/".join(p if isinstance(p, str) else "*" for p in r.path)): r.needs_camera
                 for r in api.routes}
        self.assertEqual({k for k, v in needs.items() if v is Purpose.SETTING},
                         {k for k in needs if k[0] == "PUT"})
        self.assertEqual({k for k, v in needs.items() if v is Purpose.SNAP}, {("GET", "snap")})
        self.assertEqual({v for k, v in needs.items() if k[0] != "PUT" and k != ("GET", "snap")}, {None})

    @defer.inlineCallbacks
    def test_camera_error_is_5xx_with_sdk_name(self):
        """An SDK failure mid-snap: 500 naming AT_ERR_HARDWARE_OVERFLOW; the camera is usable after."""
        sdk_cam = self.sdk_camera()

        def overflow(timeout):
            raise fail(atcore.HARDWARE_OVERFLOW)

        sdk_cam.wait = overflow
        with self.assertRaises(andor.CameraFailure) as caught:
            yield self.client(self.cam.snap)
        self.assertEqual(caught.exception.status, 500)
        self.assertEqual(caught.exception.details["sdk_error"], "AT_ERR_HARDWARE_OVERFLOW")
        self.assertIn("AT_ERR_HARDWARE_OVERFLOW", str(caught.exception))
        del sdk_cam.wait
        self.assertEqual((yield self.client(self.cam.snap)).shape, (128, 256))

    @defer.inlineCallbacks
    def test_unexpected_error_is_json_500(self):
        """A bug in a handler answers 500 JSON, never a traceback page; the traceback goes to the log."""
        camera = self.server.service.camera()
        camera.get = lambda name: 1 / 0
        status, kind, answer = yield self.client(self.server.raw, "GET", "/api/exposure_time")
        self.assertEqual((status, kind, answer["error"]), (500, "application/json", "internal_error"))
        self.assertNotIn("Traceback", answer["message"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class UnreachableTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_camera_that_cannot_open_503(self):
        """A camera that failed to open: every API call is 503 with the SDK's reason."""
        server = LoopbackServer()
        yield server.start(sdk=sdk_with_camera_in_use())
        self.addCleanup(server.stop)
        status, kind, answer = yield threads.deferToThread(server.raw, "GET", "/api/camera")
        self.assertEqual((status, answer["error"]), (503, "camera_not_ready"))
        self.assertIn("AT_ERR_DEVICEINUSE", answer["message"])

    def test_no_server(self):
        """Nothing listening: ServerUnreachable, an AndorError, saying where it looked."""
        cam = andor.Camera("127.0.0.1:1")
        with self.assertRaises(andor.ServerUnreachable) as caught:
            cam.exposure_time()
        self.assertIn("127.0.0.1:1", str(caught.exception))
