"""The driver against the simulated SDK3 install: the contract every model must keep, and each way the
real SDK differs from an idealised one (a Neo without AOIHBin, NODATA, buffers matched by pointer,
read-only and mistyped features, SIMCAMs in the device list, overflows, triggers, UTC times)."""

import threading

import numpy as np
from twisted.internet import defer, reactor, threads
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from andor_twisted.camera import atcore, driver, sim
from andor_twisted.camera.devices import Choice
from andor_twisted.camera.driver import WAIT_SLICE_MS, AndorCamera
from andor_twisted.camera.errors import (AcquisitionRunning, CameraOverflow, CameraTimeout, InvalidValue,
                                         NoSuchCamera, SDKError, TriggerTimeout, UnknownFeature)
from andor_twisted.camera.sim.exceptions import fail

from tests.helpers import open_clock_camera, result_of

REAL_MODELS = [key for key in sim.MODELS if key != "ideal"]


def run(clock, d, step=0.01, limit=100.0):
    """The result of ``d``, advancing ``clock`` (for the driver's own short waits) until it fires."""
    results = []
    d.addBoth(results.append)
    while not results and clock.seconds() < limit:
        clock.advance(step)
    assert results, "the Deferred has not fired"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


class ContractTests(unittest.TestCase):
    """What the server relies on, on every simulated model."""

    def test_every_model(self):
        """Each model opens, reports typed features (booleans as bool), round-trips its AOI and a 2x2
        binning through whichever binning features it has, and snaps a frame with its time stamp."""
        for model in REAL_MODELS:
            camera, device, clock = open_clock_camera(model=model)
            self.assertIs(result_of(camera.get("SensorCooling")), False, model)
            self.assertEqual(camera.features["ExposureTime"], "float", model)
            aoi = result_of(camera.set_aoi({"left": 101, "top": 201, "width": 512, "height": 256}))
            self.assertEqual(aoi, {"left": 101, "top": 201, "width": 512, "height": 256}, model)
            self.assertEqual(result_of(camera.set_binning(2)), "2x2", model)
            self.assertEqual(result_of(camera.get_aoi())["width"], 512, model)
            self.assertEqual(device.value("AOIWidth"), 256, model)
            frame = result_of(camera.snap())
            self.assertEqual(frame.image.shape, (128, 256), model)
            self.assertIsNotNone(frame.ticks, model)
            self.assertIsNone(camera.acquiring, model)

    def test_neo_has_only_aoibinning(self):
        """A Neo has no AOIHBin/AOIVBin: binning goes through AOIBinning, and a binning it lacks is
        refused with its options."""
        camera, device, _ = open_clock_camera(model="neo")
        self.assertNotIn("AOIHBin", camera.features)
        result_of(camera.set_binning("4x4"))
        self.assertEqual(device.value("AOIBinning"), "4x4")
        e = self.failureResultOf(camera.set_binning("2x1"), InvalidValue).value
        self.assertEqual(e.details["options"], ["1x1", "2x2", "3x3", "4x4", "8x8"])

    def test_zyla_bins_asymmetrically(self):
        """A Zyla's AOIHBin/AOIVBin allow a binning its AOIBinning enum does not list."""
        camera, device, _ = open_clock_camera(model="zyla")
        self.assertEqual(result_of(camera.set_binning("2x1")), "2x1")
        self.assertEqual((device.value("AOIHBin"), device.value("AOIVBin")), (2, 1))

    def test_read_only_setpoint(self):
        """A Zyla's TemperatureControl is read-only: a clear 400 saying so, not an SDK failure."""
        camera, _, _ = open_clock_camera(model="zyla")
        e = self.failureResultOf(camera.set("TemperatureControl", "0.00"), InvalidValue).value
        self.assertEqual(e.code, "not_writable")
        self.assertIn("read-only", e.message)
        info = result_of(camera.info("TemperatureControl"))
        self.assertEqual((info["writable"], info["readonly"]), (False, True))

    def test_refused_odd_height(self):
        """A camera refusing a value inside its limits (a Zyla's odd AOI height) is said so, and the AOI
        it had is kept."""
        camera, _, _ = open_clock_camera(model="zyla")
        before = result_of(camera.get_aoi())
        e = self.failureResultOf(camera.set_aoi({"height": 511}), InvalidValue).value
        self.assertIn("even height", e.message)
        self.assertEqual(result_of(camera.get_aoi()), before)


class DeviceChoiceTests(unittest.TestCase):
    """DeviceCount counts the SDK's SIMCAMs: a camera is chosen so that none is opened by mistake."""

    def test_simcam_first(self):
        """With a SIMCAM at index 0 the default choice opens the real camera at 1, and index 0 is refused."""
        camera, _, _ = open_clock_camera(simcam_first=True)
        self.assertEqual((camera.device.index, camera.device.model), (1, "DC-152Q-C00-FI"))
        self.assertEqual([d.model for d in camera.devices], ["SIMCAM CMOS", "DC-152Q-C00-FI", "SIMCAM CMOS"])
        e = self.assertRaises(NoSuchCamera, open_clock_camera, Choice(index=0), simcam_first=True)
        self.assertIn("sdk3:simcam", e.message)

    def test_by_serial(self):
        camera, _, _ = open_clock_camera(Choice(serial="SCC-10000"))
        self.assertEqual(camera.device.serial, "SCC-10000")
        e = self.assertRaises(NoSuchCamera, open_clock_camera, Choice(serial="VSC-99999"))
        self.assertIn("SCC-10000", e.message)  # the devices there are

    def test_simcam_by_name(self):
        """A SIMCAM, asked for by name, works despite what it lacks: no stride, no metadata, fixed AOI."""
        camera, _, _ = open_clock_camera(Choice(simcam=True))
        self.assertTrue(camera.device.simcam)
        frame = result_of(camera.snap())
        self.assertEqual(frame.image.shape, (2160, 2560))
        self.assertIsNone(frame.ticks)
        e = self.failureResultOf(camera.set_aoi({"width": 64}), InvalidValue).value
        self.assertEqual(e.code, "not_writable")

    def test_only_simcams(self):
        """No real camera: the error says so, rather than opening a SIMCAM."""
        sdk = sim.sdk(sim.SIMCAM, sim.ClockTime(Clock()))
        failure = self.failureResultOf(AndorCamera.open(sdk, Choice(), defer.maybeDeferred, reactor), NoSuchCamera)
        self.assertIn("no camera found", failure.value.message)

    def test_error_without_a_code(self):
        """A device that fails to open with an exception carrying no SDK code is listed as "unknown",
        not with a made-up AT_ERR_None."""
        self.assertEqual(atcore.error_name(atcore.error_code_of(ValueError("no code here"))), "unknown")
        self.assertEqual(atcore.error_name(13), "AT_ERR_TIMEDOUT")


class FeatureTests(unittest.TestCase):
    def setUp(self):
        self.camera, self.device, self.clock = open_clock_camera()

    def test_features_read_from_camera(self):
        """The feature list is what the camera implements, with SDK types named simply."""
        features = self.camera.features
        self.assertEqual(features["AOIWidth"], "int")
        self.assertEqual(features["SensorCooling"], "bool")
        self.assertEqual(features["PixelEncoding"], "enum")
        self.assertEqual(features["SerialNumber"], "string")
        self.assertEqual(features["AcquisitionStart"], "command")
        self.assertNotIn("ShutterMode", features)  # an SDK3 feature the Neo lacks

    def test_open_enables_timestamps_and_overflow_events(self):
        self.assertEqual((self.device.value("MetadataEnable"), self.device.value("MetadataTimestamp")), (1, 1))
        self.assertTrue(self.camera.reports_overflow)
        self.assertEqual(self.device.value("EventEnable"), 1)

    def test_get_set_info(self):
        """Set returns the value now in the camera; info gives limits, options and writability."""
        self.assertEqual(result_of(self.camera.set("ExposureTime", 0.02)), 0.02)
        self.assertEqual(result_of(self.camera.get("ExposureTime")), 0.02)
        info = result_of(self.camera.info("FrameRate"))
        self.assertEqual((info["type"], info["writable"]), ("float", True))
        self.assertAlmostEqual(info["max"], 50.0)
        enum = result_of(self.camera.info("PixelEncoding"))
        self.assertEqual(enum["options"], ["Mono12", "Mono12Packed", "Mono16", "Mono32"])
        self.assertEqual(enum["available_options"], ["Mono16", "Mono32"])
        self.assertEqual(result_of(self.camera.set("FrameCount", 7.0)), 7)  # integral floats are ints
        self.assertIs(result_of(self.camera.set("SensorCooling", True)), True)

    def assertRejected(self, d, cls, code=None, *words):
        failure = self.failureResultOf(d, cls)
        if code is not None:
            self.assertEqual(failure.value.code, code)
        for word in words:
            self.assertIn(word, failure.value.message)
        return failure.value

    def test_bad_values(self):
        """Each wrong request names its problem: type, range with limits, options, availability; numbers
        too large for the SDK are refused before any conversion."""
        c = self.camera
        self.assertRejected(c.set("ExposureTime", "fast"), InvalidValue, "wrong_type", "number")
        self.assertRejected(c.set("ExposureTime", True), InvalidValue, "wrong_type")
        self.assertRejected(c.set("FrameCount", 2.5), InvalidValue, "wrong_type", "integer")
        self.assertRejected(c.set("FrameCount", 10**30), InvalidValue, "out_of_range", "64-bit")
        self.assertRejected(c.set("ExposureTime", 10**400), InvalidValue, "out_of_range")
        e = self.assertRejected(c.set("ExposureTime", 100.0), InvalidValue, "out_of_range", "30.0")
        self.assertEqual((e.details["min"], e.details["max"]), (9.7e-6, 30.0))
        self.assertRejected(c.set("PixelEncoding", "Mono99"), InvalidValue, "invalid_option", "Mono16")
        self.assertRejected(c.set("PixelEncoding", "Mono8"), InvalidValue, "invalid_option", "Mono16")
        self.assertRejected(c.set("PixelEncoding", "Mono12"), InvalidValue, "option_not_available", "Mono32")
        self.assertRejected(c.set("SensorTemperature", 3.0), InvalidValue, "not_writable", "read-only")
        self.assertRejected(c.get("AcquisitionStart"), InvalidValue, "not_readable")

    def test_unknown_feature_suggests(self):
        """Feature names are case-sensitive; a near miss is suggested."""
        e = self.assertRejected(self.camera.get("exposuretime"), UnknownFeature, None, "'ExposureTime'")
        self.assertEqual(e.details["feature"], "exposuretime")

    def test_busy_refuses_settings(self):
        """While an acquisition runs, settings cannot change (409); reads still work."""
        result_of(self.camera.start("burst 1", 1))
        self.assertRejected(self.camera.set("ExposureTime", 0.02), AcquisitionRunning, None, "burst")
        self.assertRejected(self.camera.set_aoi({"width": 64}), AcquisitionRunning)
        self.assertRejected(self.camera.snap(), AcquisitionRunning)
        self.assertEqual(result_of(self.camera.get("ExposureTime")), 0.01)
        result_of(self.camera.stop())
        result_of(self.camera.set("ExposureTime", 0.02))

    def test_sdk_failure_named(self):
        """Other SDK errors become SDKError carrying the AT_ERR_ name."""
        def broken(value):
            raise fail(atcore.COMM)
        self.device.features["FrameRate"].set = broken
        e = self.assertRejected(self.camera.set("FrameRate", 5.0), SDKError)
        self.assertEqual(e.sdk_error, "AT_ERR_COMM")


class AOITests(unittest.TestCase):
    def setUp(self):
        self.camera, self.device, self.clock = open_clock_camera()

    def test_partial_update(self):
        """Keys not given keep their values; sizes are in sensor pixels."""
        result_of(self.camera.set_aoi({"left": 101, "top": 201, "width": 512, "height": 256}))
        aoi = result_of(self.camera.set_aoi({"width": 300}))
        self.assertEqual(aoi, {"left": 101, "top": 201, "width": 300, "height": 256})
        self.assertEqual((self.device.value("AOILeft"), self.device.value("AOIWidth")), (101, 300))

    def test_binning_keeps_region(self):
        """Binning 2 on a 512x512 AOI: 256x256 super-pixels over the same sensor region."""
        result_of(self.camera.set_aoi({"left": 1, "top": 1, "width": 512, "height": 512}))
        self.assertEqual(result_of(self.camera.set_binning(2)), "2x2")
        self.assertEqual((self.device.value("AOIWidth"), self.device.value("AOIHeight")), (256, 256))
        self.assertEqual(result_of(self.camera.get_aoi())["width"], 512)
        self.assertEqual(result_of(self.camera.set_binning("1x1")), "1x1")
        self.assertEqual(self.device.value("AOIWidth"), 512)

    def test_move_to_far_corner(self):
        """Moving a full-width AOI's origin right needs the size shrunk first; the driver orders it."""
        aoi = result_of(self.camera.set_aoi({"left": 2049, "top": 1649, "width": 512, "height": 512}))
        self.assertEqual(aoi, {"left": 2049, "top": 1649, "width": 512, "height": 512})

    def test_bad_aoi(self):
        """An AOI off the sensor, a bad field, a bad binning: 400s naming the problem; nothing changes."""
        before = result_of(self.camera.get_aoi())
        cases = [({"left": 2600}, "out_of_range"), ({"left": 0}, "out_of_range"), ({"width": 0}, "out_of_range"),
                 ({"left": 2000, "width": 600}, "out_of_range"), ({"wide": 3}, "unknown_field"),
                 ({"width": "big"}, "wrong_type"), ({}, "wrong_type"), ({"width": 2**70}, "out_of_range")]
        for aoi, code in cases:
            failure = self.failureResultOf(self.camera.set_aoi(aoi), InvalidValue)
            self.assertEqual(failure.value.code, code, aoi)
        self.assertEqual(self.failureResultOf(self.camera.set_binning(5), InvalidValue).value.code, "invalid_option")
        self.assertEqual(self.failureResultOf(self.camera.set_binning([2]), InvalidValue).value.code, "wrong_type")
        self.assertEqual(result_of(self.camera.get_aoi()), before)


class BufferTests(unittest.TestCase):
    """Frames come back by pointer; NODATA and broken metadata do not derail the frames after them."""

    def setUp(self):
        self.camera, self.device, self.clock = open_clock_camera(arm_latency_s=0.0)
        result_of(self.camera.set_aoi({"width": 64, "height": 64}))
        result_of(self.camera.set("ExposureTime", 0.001))

    def burst(self, n, batch=1):
        """Frames 0..n-1 of a 100 fps acquisition, taken ``batch`` at a time."""
        layout = result_of(self.camera.start("test", 4, 100.0))
        frames = []
        while len(frames) < n:
            frames += run(self.clock, self.camera.next_frames(layout, len(frames), batch))
        run(self.clock, self.camera.stop())
        return frames

    def test_lent_buffers_come_back_with_new_pixels(self):
        """Buffers lent with frames and given back are queued again, and each frame read from a buffer
        that comes back shows that frame's pixels, not the ones it held before (the driver keeps a view
        of each buffer's pixels); a buffer it drops is forgotten with its view."""
        camera, device, clock = open_clock_camera(model="ideal", arm_latency_s=0.0)
        result_of(camera.set_aoi({"width": 64, "height": 64}))
        layout = result_of(camera.start("test", 3, 100.0))
        painter = device._painter
        for k in range(40):
            frame = run(clock, camera.next_frames(layout, k, 1, lend=True))[0]
            expected = painter._scene(0, 0.0, np.empty(painter.shape, np.uint16))
            painter._digits(expected, k)
            self.assertTrue(np.array_equal(frame.image, expected), f"frame {k}")
            camera.give_back(frame.buffer)
        self.assertLessEqual(len(camera._views), 3 + 2 * 3)  # the queue and the spares
        run(clock, camera.stop())
        self.assertEqual(camera._views, {})

    def test_frames_taken_without_a_buffer_in_their_place(self):
        """Only the first ``replace`` frames lent get a buffer queued in their place, so frames held
        back leave the camera with fewer buffers; a later trip queues buffers up to ``queued`` (buffers
        given back first), and the frames keep coming in order."""
        camera, device, clock = open_clock_camera(model="ideal", arm_latency_s=0.0)
        result_of(camera.set_aoi({"width": 64, "height": 64}))
        layout = result_of(camera.start("test", 4, 100.0))
        camera.keep_buffers(8)
        clock.advance(1.0)  # frames wait in the camera
        taken = run(clock, camera.next_frames(layout, 0, 3, lend=True, replace=1))
        self.assertEqual(len(device._queue), 4 - 3 + 1)
        camera.give_back(taken[0].buffer)
        more = run(clock, camera.next_frames(layout, 3, 2, lend=True, queued=4, replace=0))
        self.assertEqual(len(device._queue), 4 - 2)  # topped up to 4 (one given back, one new), then 2 taken
        self.assertIn(id(taken[0].buffer), [id(device_buffer) for device_buffer in camera._queued.values()]
                      + [id(f.buffer) for f in more])
        self.assertEqual([f.frame_number for f in taken + more], list(range(5)))
        self.assertEqual(np.diff([f.ticks for f in taken + more]).tolist(), [1_000_000] * 4)
        run(clock, camera.stop())

    def test_buffers_kept_between_acquisitions(self):
        """The buffers of one acquisition serve the next of the same frame size (new memory costs a page
        fault per page, a burst's worth of them before its first frames): those the SDK held, and those
        given back after the end, up to KEEP_IDLE_BYTES; another frame size gets new ones."""
        made = []
        original = driver.aligned_buffer
        self.patch(driver, "aligned_buffer", lambda size: made.append(size) or original(size))
        camera, clock = self.camera, self.clock
        layout = result_of(camera.start("test", 4, 100.0))
        self.patch(driver, "KEEP_IDLE_BYTES", 5 * layout.size)  # five of these frames' buffers
        camera.keep_buffers(8)
        clock.advance(1.0)  # frames wait in the camera
        frames = run(clock, camera.next_frames(layout, 0, 3, lend=True))
        first = {id(b) for b in camera._queued.values()} | {id(f.buffer) for f in frames}
        self.assertEqual(len(made), 4 + 3)
        run(clock, camera.stop())
        for frame in frames:
            camera.give_back(frame.buffer)  # a reader's frames, read after the acquisition ended
        self.assertEqual(len(camera._spare), 5)
        layout = result_of(camera.start("test", 4, 100.0))
        self.assertEqual(len(made), 4 + 3)  # none new
        self.assertLessEqual({id(b) for b in camera._queued.values()}, first)
        clock.advance(1.0)
        frames = run(clock, camera.next_frames(layout, 0, 2, lend=True))
        self.assertEqual([f.frame_number for f in frames], [0, 1])
        self.assertEqual(len(made), 4 + 3 + 1)  # five kept: the sixth buffer it queued is new
        run(clock, camera.stop())
        result_of(camera.set_aoi({"width": 32, "height": 32}))
        result_of(camera.start("test", 4, 100.0))
        self.assertEqual(len(made), 4 + 3 + 1 + 4)
        self.assertEqual(len(camera._spare), 0)
        run(clock, camera.stop())

    def test_matched_by_pointer(self):
        """The SDK returning buffers in another order than they were queued (here: its queue reversed)
        costs nothing: each frame is read from the buffer the SDK names."""
        original = self.device.queue

        def queue(address, size):
            original(address, size)
            self.device._queue.rotate(1)  # the newest buffer first
        self.device.queue = queue
        frames = self.burst(12)
        self.assertEqual(np.diff([f.ticks for f in frames]).tolist(), [1_000_000] * 11)

    def test_nodata_is_no_frame_yet(self):
        """AT_ERR_NODATA now and then (real installs) is retried like a timeout: every frame comes, once."""
        self.device.model = self.device.model.with_overrides(nodata_every=2)
        frames = self.burst(20, batch=3)
        self.assertEqual([f.frame_number for f in frames], list(range(20)))
        self.assertEqual(np.diff([f.ticks for f in frames]).tolist(), [1_000_000] * 19)

    def test_corrupt_metadata(self):
        """A frame whose metadata cannot be read (where pyAndorSDK3's Camera.wait_buffer raises after the
        SDK returned the buffer) is delivered without a time; the frames after it are right."""
        self.device.model = self.device.model.with_overrides(corrupt_metadata_at=3)
        frames = self.burst(8)
        self.assertIsNone(frames[3].ticks)
        self.assertEqual(self.camera.metadata_errors, 1)
        ticks = [f.ticks - frames[0].ticks for i, f in enumerate(frames) if i != 3]
        self.assertEqual(ticks, [i * 1_000_000 for i in range(8) if i != 3])


class OverflowTests(unittest.TestCase):
    """Each way a camera ends when its memory fills, as the driver reports it."""

    def fill(self, when_full, model="neo"):
        memory = 0 if model == "zyla" else 3 * (64 * 64 * 2 + 24)
        camera, device, clock = open_clock_camera(model=model, onboard_memory_bytes=memory, when_full=when_full,
                                                  arm_latency_s=0.0)
        result_of(camera.set_aoi({"width": 64, "height": 64}))
        result_of(camera.set("ExposureTime", 0.001))
        layout = result_of(camera.start("test", 2, 100.0))
        taken = run(clock, camera.next_frames(layout, 0, 2, lend=True))  # 2 frames kept: no buffer queued
        clock.advance(1.0)
        for frame in taken:
            camera.give_back(frame.buffer)
        # the two buffers queued in their place were filled before on-head memory filled
        self.assertEqual([f.frame_number for f in result_of(camera.next_frames(layout, 2, 8))], [2, 3])
        return camera, clock, layout, taken

    def test_abort(self):
        """BufferOverflowEvent: the frames before it come, then CameraOverflow at once (no long timeout);
        stopping works although the camera stopped itself."""
        camera, clock, layout, taken = self.fill("abort")
        failure = self.failureResultOf(camera.next_frames(layout, 4, 8), CameraOverflow)
        self.assertIn("BufferOverflowEvent", failure.value.message)
        self.assertLess(clock.seconds(), 1.0 + 2 * WAIT_SLICE_MS / 1000)
        result_of(camera.stop())
        self.assertIsNone(camera.acquiring)

    def test_frame_grabber(self):
        """A Camera Link Zyla without on-head memory: AT_ERR_HARDWARE_OVERFLOW, as CameraOverflow."""
        camera, clock, layout, taken = self.fill("error", model="zyla")
        failure = self.failureResultOf(camera.next_frames(layout, 4, 8), CameraOverflow)
        self.assertEqual(failure.value.sdk_error, "AT_ERR_HARDWARE_OVERFLOW")
        result_of(camera.stop())

    def test_hang(self):
        """A camera that stops without a word: a timeout after exposure + frame period + grace."""
        camera, clock, layout, taken = self.fill("hang")
        self.failureResultOf(camera.next_frames(layout, 4, 8), CameraTimeout)
        result_of(camera.stop())

    def test_throttle(self):
        """A camera that slows down: the frames come, late."""
        camera, clock, layout, taken = self.fill("throttle")
        frames = []
        while len(frames) < 4:
            frames += result_of(camera.next_frames(layout, 4 + len(frames), 8))
        ticks = [f.ticks / 1e8 for f in frames]
        self.assertLess(ticks[2], 0.1)  # the last frame on-head memory held, on time
        self.assertGreater(ticks[3], 1.0)  # exposed once the host took frames again


class TriggerTests(unittest.TestCase):
    def setUp(self):
        self.camera, self.device, self.clock = open_clock_camera(arm_latency_s=0.0)
        result_of(self.camera.set_aoi({"width": 64, "height": 64}))
        result_of(self.camera.set("ExposureTime", 0.001))

    def test_software(self):
        """TriggerMode Software: no frame until the trigger, one frame per trigger."""
        layout = result_of(self.camera.start("test", 2, trigger_mode="Software", trigger_timeout=5.0))
        start = self.clock.seconds()
        triggered = []
        self.clock.callLater(1.5, lambda: self.camera.software_trigger().addBoth(triggered.append))
        frames = result_of(self.camera.next_frames(layout, 0, 2))  # the SDK runs inline: waiting advances the clock
        self.assertEqual(triggered, [None])
        self.assertEqual(len(frames), 1)
        # exposed when the trigger came (the Clock runs it at the end of the wait slice it falls in, or of
        # the pause after a NODATA)
        self.assertTrue(1.5 <= frames[0].ticks / 1e8 - start <= 1.5 + 2 * WAIT_SLICE_MS / 1000, frames[0].ticks)
        result_of(self.camera.stop())
        self.failureResultOf(self.camera.software_trigger(), InvalidValue)

    def test_no_trigger_times_out(self):
        """TriggerMode External with no trigger: TriggerTimeout after the time the user allowed."""
        layout = result_of(self.camera.start("test", 2, trigger_mode="External", trigger_timeout=3.0))
        start = self.clock.seconds()
        failure = self.failureResultOf(self.camera.next_frames(layout, 0), TriggerTimeout)
        self.assertIn("no trigger within 3.0 s", failure.value.message)
        self.assertLessEqual(self.clock.seconds() - start, 3.001 + WAIT_SLICE_MS / 1000)
        result_of(self.camera.stop())

    def test_frame_rate_and_triggers(self):
        """A frame rate with external triggers is refused: the triggers set the pace."""
        self.failureResultOf(self.camera.start("test", 2, 10.0, trigger_mode="External"), InvalidValue)
        self.assertIsNone(self.camera.acquiring)


class TimeTests(unittest.TestCase):
    def test_snap_in_utc(self):
        """A snap's exposure start, mapped through its time base (camera clock 40 ppm fast, host clock
        0.8 ms off, within the 1 ms it states), is the true UTC instant within the stated uncertainty;
        the anchors at start and end measure the drift."""
        camera, device, clock = open_clock_camera(clock_drift_ppm=40.0)
        device.time.host_offset_ns = 800_000
        clock.advance(3.0)
        result_of(camera.set("ExposureTime", 0.5))  # anchors half a second apart
        frame = result_of(camera.snap())
        truth = device.time.utc_ns(device._stopped.exposed[0])
        timebase = frame.timebase
        error = abs(int(timebase.to_utc_ns([frame.ticks])[0]) - truth) * 1e-9
        self.assertLess(error, timebase.uncertainty_s([frame.ticks])[0])
        self.assertGreater(error, 0.7e-3)  # the host clock's own error is in it: it is said, not hidden
        self.assertLess(abs(timebase.drift_ppm - 40.0), timebase.drift_uncertainty_ppm)

    def test_irig(self):
        """A Balor stamping IRIG-B time: each frame carries the UTC nanosecond of its exposure start."""
        camera, device, clock = open_clock_camera(model="balor")
        result_of(camera.set("MetadataIRIG", True))
        result_of(camera.set_aoi({"width": 64, "height": 64}))
        frame = result_of(camera.snap())
        self.assertEqual(frame.utc_ns, device.time.utc_ns(device._stopped.exposed[0]))
        self.assertEqual(frame.timebase.host_clock.source, "MetadataIRIG")


class SnapTests(unittest.TestCase):
    def setUp(self):
        self.camera, self.device, self.clock = open_clock_camera()

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
        self.assertGreater(frame.timestamp, 0.05)  # the Neo's arming latency after opening
        self.assertIsNone(self.camera.acquiring)
        self.assertFalse(self.device.value("CameraAcquiring"))
        self.assertEqual(len(self.device._queue), 0)

    def test_every_encoding_with_padding(self):
        """Mono12, Mono12Packed, Mono16, Mono32 at a width whose rows are padded all decode to the same
        image: the padding is stripped and each encoding's bytes are read right."""
        result_of(self.camera.set_aoi({"width": 503, "height": 40}))
        low, high = "11-bit (high well capacity)", "16-bit (low noise & high well capacity)"
        for encoding in ("Mono12", "Mono12Packed", "Mono16", "Mono32"):
            row = {"Mono12": 1006, "Mono12Packed": 755, "Mono16": 1006, "Mono32": 2012}[encoding]
            result_of(self.camera.set("SimplePreAmpGainControl", high if encoding == "Mono32" else low))
            result_of(self.camera.set("PixelEncoding", encoding))
            self.assertGreater(self.device.value("AOIStride"), row, encoding)  # padded rows
        images = {}
        for gain, encodings in [(low, ("Mono12", "Mono12Packed", "Mono16")), (high, ("Mono16", "Mono32"))]:
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
        self.assertLessEqual(images["11", "Mono16"].max(), 2047)  # 11-bit gain saturates at 2047

    def test_snap_sets_exposure(self):
        frame = result_of(self.camera.snap(0.002))
        self.assertEqual(self.device.value("ExposureTime"), 0.002)
        self.assertEqual(frame.image.ndim, 2)

    def test_snap_timeout(self):
        """A frame that never comes ends in CameraTimeout after exposure + frame period + grace, waiting
        in slices; the acquisition is stopped and the camera free again."""
        camera, device, clock = open_clock_camera(arm_latency_s=1000.0)
        start = clock.seconds()
        failure = self.failureResultOf(camera.snap(), CameraTimeout)
        self.assertEqual(failure.value.sdk_error, "AT_ERR_TIMEDOUT")
        deadline = 0.01 + 0.1 + 2.0
        waited = clock.seconds() - start
        self.assertTrue(deadline <= waited <= deadline + WAIT_SLICE_MS / 1000 + 0.01, waited)
        self.assertIsNone(camera.acquiring)
        self.assertFalse(device.value("CameraAcquiring"))


class ThreadOwnershipTests(unittest.TestCase):
    """With a real thread pool: every SDK call runs in one thread, never the reactor's."""

    @defer.inlineCallbacks
    def test_one_thread_owns_the_sdk(self):
        seen, waits = set(), []
        sdk = sim.sdk(sim.MODELS["neo"])

        class Recording:
            def __init__(self):
                self.core = sdk.make_core()

            def __getattr__(self, name):
                seen.add(threading.get_ident())
                if name == "wait_buffer":
                    return lambda handle, timeout: waits.append(timeout) or self.core.wait_buffer(handle, timeout)
                return getattr(self.core, name)

        recording = type(sdk)(sdk.name, Recording, sdk.error, sdk.utility, sdk.simulated)
        pool = ThreadPool(1, 1, name="andor-sdk-test")
        pool.start()
        self.addCleanup(pool.stop)
        call = lambda fn, *args: threads.deferToThreadPool(reactor, pool, fn, *args)  # noqa: E731
        camera, _ = yield AndorCamera.open(recording, Choice(), call, reactor)
        yield camera.set_aoi({"width": 64, "height": 64})
        yield camera.set("ExposureTime", 0.001)
        yield camera.info("FrameRate")
        yield camera.snap()
        yield camera.close()
        self.assertEqual(len(seen), 1)
        self.assertNotIn(threading.get_ident(), seen)
        self.assertTrue(waits)
        self.assertTrue(all(0 < w <= WAIT_SLICE_MS for w in waits), waits)
