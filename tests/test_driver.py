"""The driver against the simulated SDK: features, AOI and binning, snaps in every pixel encoding."""

import threading
import types

import numpy as np
from twisted.internet import defer, reactor, threads
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from andor_twisted.camera import atcore
from andor_twisted.camera.driver import WAIT_SLICE_MS, AndorCamera
from andor_twisted.camera.errors import (AcquisitionRunning, CameraTimeout, InvalidValue, SDKError,
                                         UnknownFeature)
from andor_twisted.camera import sim
from andor_twisted.camera.sim import CameraException

from tests.helpers import open_clock_camera, result_of


class FeatureTests(unittest.TestCase):
    def setUp(self):
        self.camera, self.sdk_cam, self.clock = open_clock_camera()

    def test_features_read_from_camera(self):
        """The feature list is what the camera implements, with SDK types named simply."""
        features = self.camera.features
        self.assertEqual(features["ExposureTime"], "float")
        self.assertEqual(features["AOIWidth"], "int")
        self.assertEqual(features["SensorCooling"], "bool")
        self.assertEqual(features["PixelEncoding"], "enum")
        self.assertEqual(features["SerialNumber"], "string")
        self.assertEqual(features["AcquisitionStart"], "command")
        self.assertNotIn("ShutterMode", features)  # an SDK3 feature the Neo model lacks

    def test_open_enables_timestamps(self):
        self.assertTrue(self.sdk_cam.MetadataEnable)
        self.assertTrue(self.sdk_cam.MetadataTimestamp)

    def test_get_set_info(self):
        """Set returns the value now in the camera; info gives limits or options."""
        self.assertEqual(result_of(self.camera.set("ExposureTime", 0.02)), 0.02)
        self.assertEqual(result_of(self.camera.get("ExposureTime")), 0.02)
        info = result_of(self.camera.info("FrameRate"))
        self.assertEqual(info["type"], "float")
        self.assertAlmostEqual(info["max"], 50.0)
        enum = result_of(self.camera.info("PixelEncoding"))
        self.assertEqual(enum["options"], ["Mono12", "Mono12Packed", "Mono16", "Mono32"])
        self.assertEqual(enum["available_options"], ["Mono16", "Mono32"])
        self.assertEqual(result_of(self.camera.set("FrameCount", 7.0)), 7)  # integral floats are ints

    def assertRejected(self, d, cls, code=None, *words):
        failure = self.failureResultOf(d, cls)
        if code is not None:
            self.assertEqual(failure.value.code, code)
        for word in words:
            self.assertIn(word, failure.value.message)
        return failure.value

    def test_bad_values(self):
        """Each wrong request names its problem: type, range with limits, options, availability."""
        c = self.camera
        self.assertRejected(c.set("ExposureTime", "fast"), InvalidValue, "wrong_type", "number")
        self.assertRejected(c.set("ExposureTime", True), InvalidValue, "wrong_type")
        self.assertRejected(c.set("FrameCount", 2.5), InvalidValue, "wrong_type", "integer")
        e = self.assertRejected(c.set("ExposureTime", 100.0), InvalidValue, "out_of_range", "30.0")
        self.assertEqual((e.details["min"], e.details["max"]), (9.7e-6, 30.0))
        self.assertRejected(c.set("PixelEncoding", "Mono99"), InvalidValue, "invalid_option", "Mono16")
        self.assertRejected(c.set("PixelEncoding", "Mono12"), InvalidValue, "option_not_available", "Mono32")
        self.assertRejected(c.set("SensorTemperature", 3.0), InvalidValue, "not_writable")
        self.assertRejected(c.get("AcquisitionStart"), InvalidValue, "not_readable")

    def test_unknown_feature_suggests(self):
        """Feature names are case-sensitive; a near miss is suggested."""
        e = self.assertRejected(self.camera.get("exposuretime"), UnknownFeature, None, "'ExposureTime'")
        self.assertEqual(e.details["feature"], "exposuretime")

    def test_busy_refuses_settings(self):
        """While the camera is claimed by an acquisition, settings cannot change (409)."""
        self.camera.claim("burst")
        self.assertRejected(self.camera.set("ExposureTime", 0.02), AcquisitionRunning, None, "burst")
        self.assertRejected(self.camera.set_aoi({"width": 64}), AcquisitionRunning)
        self.assertRejected(self.camera.set_binning(2), AcquisitionRunning)
        self.assertRejected(self.camera.snap(), AcquisitionRunning)
        self.assertEqual(result_of(self.camera.get("ExposureTime")), 0.01)  # reads still work
        self.camera.release()
        result_of(self.camera.set("ExposureTime", 0.02))

    def test_sdk_failure_named(self):
        """Other SDK errors become SDKError carrying the AT_ERR_ name."""
        def broken(value):
            raise CameraException(atcore.COMM, "link lost")
        self.sdk_cam._features["FrameRate"].set = broken
        e = self.assertRejected(self.camera.set("FrameRate", 5.0), SDKError)
        self.assertEqual(e.sdk_error, "AT_ERR_COMM")


class AOITests(unittest.TestCase):
    def setUp(self):
        self.camera, self.sdk_cam, self.clock = open_clock_camera()

    def test_partial_update(self):
        """Keys not given keep their values; sizes are in sensor pixels."""
        result_of(self.camera.set_aoi({"left": 101, "top": 201, "width": 512, "height": 256}))
        aoi = result_of(self.camera.set_aoi({"width": 300}))
        self.assertEqual(aoi, {"left": 101, "top": 201, "width": 300, "height": 256})
        self.assertEqual((self.sdk_cam.AOILeft, self.sdk_cam.AOIWidth), (101, 300))

    def test_binning_keeps_region(self):
        """Binning 2 on a 512x512 AOI: 256x256 super-pixels over the same sensor region."""
        result_of(self.camera.set_aoi({"left": 1, "top": 1, "width": 512, "height": 512}))
        self.assertEqual(result_of(self.camera.set_binning(2)), "2x2")
        self.assertEqual((self.sdk_cam.AOIWidth, self.sdk_cam.AOIHeight), (256, 256))
        self.assertEqual(result_of(self.camera.get_aoi())["width"], 512)
        self.assertEqual(result_of(self.camera.set_binning("1x1")), "1x1")
        self.assertEqual(self.sdk_cam.AOIWidth, 512)

    def test_move_to_far_corner(self):
        """Moving a full-width AOI's origin right needs the size shrunk first; the driver orders it."""
        aoi = result_of(self.camera.set_aoi({"left": 2049, "top": 1649, "width": 512, "height": 512}))
        self.assertEqual(aoi, {"left": 2049, "top": 1649, "width": 512, "height": 512})

    def test_bad_aoi(self):
        """An AOI off the sensor, a bad field, a bad binning: 400s naming the problem; nothing changes."""
        before = result_of(self.camera.get_aoi())
        cases = [({"left": 2600}, "out_of_range"), ({"left": 0}, "out_of_range"), ({"width": 0}, "out_of_range"),
                 ({"left": 2000, "width": 600}, "out_of_range"), ({"wide": 3}, "unknown_field"),
                 ({"width": "big"}, "wrong_type"), ({}, "wrong_type")]
        for aoi, code in cases:
            failure = self.failureResultOf(self.camera.set_aoi(aoi), InvalidValue)
            self.assertEqual(failure.value.code, code, aoi)
        self.assertEqual(self.failureResultOf(self.camera.set_binning(5), InvalidValue).value.code, "invalid_option")
        self.assertEqual(self.failureResultOf(self.camera.set_binning([2]), InvalidValue).value.code, "wrong_type")
        self.assertEqual(result_of(self.camera.get_aoi()), before)


class SnapTests(unittest.TestCase):
    def setUp(self):
        self.camera, self.sdk_cam, self.clock = open_clock_camera()

    def snap(self):
        return result_of(self.camera.snap())

    def test_snap(self):
        """A snap is a 2-D uint16 frame with its exposure's tick count; the camera ends idle."""
        result_of(self.camera.set_aoi({"left": 1, "top": 1, "width": 512, "height": 512}))
        result_of(self.camera.set_binning(2))
        frame = self.snap()
        self.assertEqual(frame.image.shape, (256, 256))
        self.assertEqual(frame.image.dtype, np.uint16)
        self.assertEqual(frame.tick_frequency, 100_000_000)
        self.assertAlmostEqual(frame.timestamp, 0.05, places=6)  # the Neo's arming latency after opening
        self.assertIsNone(self.camera.acquiring)
        self.assertFalse(self.sdk_cam.CameraAcquiring)
        self.assertEqual(len(self.sdk_cam._buffers), 0)

    def test_every_encoding_with_padding(self):
        """Mono12, Mono12Packed, Mono16, Mono32 at a width whose rows are padded all decode to the same
        image: the padding is stripped and each encoding's bytes are read right."""
        result_of(self.camera.set_aoi({"width": 503, "height": 40}))
        for encoding in ("Mono12", "Mono12Packed", "Mono16", "Mono32"):
            row = {"Mono12": 1006, "Mono12Packed": 755, "Mono16": 1006, "Mono32": 2012}[encoding]
            gain = "16-bit (low noise & high well capacity)" if encoding == "Mono32" else "12-bit (high well capacity)"
            result_of(self.camera.set("SimplePreAmpGainControl", gain))
            result_of(self.camera.set("PixelEncoding", encoding))
            self.assertGreater(self.sdk_cam.AOIStride, row, encoding)  # padded rows
        images = {}
        for gain, encodings in [("12-bit (high well capacity)", ("Mono12", "Mono12Packed", "Mono16")),
                                ("16-bit (low noise & high well capacity)", ("Mono16", "Mono32"))]:
            result_of(self.camera.set("SimplePreAmpGainControl", gain))
            for encoding in encodings:
                result_of(self.camera.set("PixelEncoding", encoding))
                images[gain[:2], encoding] = self.snap().image
        for (bits, encoding), image in images.items():
            self.assertEqual(image.shape, (40, 503), encoding)
            self.assertEqual(image.dtype, np.uint32 if encoding == "Mono32" else np.uint16)
            self.assertGreater(len(np.unique(image)), 50)
            reference = images[bits, "Mono16"]
            self.assertTrue(np.array_equal(image, reference), f"{encoding} differs from Mono16 at {bits} bits")
        self.assertLessEqual(images["12", "Mono16"].max(), 4095)  # 12-bit gain saturates at 4095

    def test_snap_sets_exposure(self):
        frame = result_of(self.camera.snap(0.002))
        self.assertEqual(self.sdk_cam.ExposureTime, 0.002)
        self.assertEqual(frame.image.ndim, 2)

    def test_snap_timeout(self):
        """A frame that never comes ends in CameraTimeout after exposure + frame period + grace, waiting
        in slices; the acquisition is stopped and the camera free again."""
        camera, sdk_cam, clock = open_clock_camera(arm_latency=1000.0)
        failure = self.failureResultOf(camera.snap(), CameraTimeout)
        self.assertEqual(failure.value.sdk_error, "AT_ERR_TIMEDOUT")
        deadline = 0.01 + 0.1 + 2.0
        self.assertTrue(deadline <= clock.seconds() <= deadline + WAIT_SLICE_MS / 1000 + 1e-9, clock.seconds())
        self.assertIsNone(camera.acquiring)
        self.assertFalse(sdk_cam.CameraAcquiring)


class ThreadOwnershipTests(unittest.TestCase):
    """With a real thread pool: every SDK call runs in one thread, never the reactor's."""

    @defer.inlineCallbacks
    def test_one_thread_owns_the_sdk(self):
        seen, waits = set(), []

        class Recording(sim.SimCamera):
            def __getattribute__(self, name):
                seen.add(threading.get_ident())
                return object.__getattribute__(self, name)

            def wait_buffer(self, timeout):
                waits.append(timeout)
                return super().wait_buffer(timeout)

        one_camera = types.SimpleNamespace(GetCamera=lambda index: Recording(sim.MODELS["neo"], sim.SystemTime()))
        sdk = types.SimpleNamespace(AndorSDK3=lambda: one_camera, CameraException=sim.CameraException)
        pool = ThreadPool(1, 1, name="andor-sdk-test")
        pool.start()
        self.addCleanup(pool.stop)
        call = lambda fn, *args: threads.deferToThreadPool(reactor, pool, fn, *args)  # noqa: E731
        camera = yield AndorCamera.open(sdk, 0, call, reactor)
        yield camera.set_aoi({"width": 64, "height": 64})
        yield camera.set("ExposureTime", 0.001)
        yield camera.info("FrameRate")
        yield camera.snap()
        yield camera.close()
        self.assertEqual(len(seen), 1)
        self.assertNotIn(threading.get_ident(), seen)
        self.assertTrue(waits)
        self.assertTrue(all(0 < w <= WAIT_SLICE_MS for w in waits), waits)
