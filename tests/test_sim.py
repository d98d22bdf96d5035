"""The simulated SDK3 install, through the ATCore the driver uses: the C API's semantics as pyAndorSDK3
1.22.6 presents them, each model's features and limits, and the physics of an acquisition on a Clock."""

import concurrent.futures
import threading

import numpy as np
from twisted.internet.task import Clock
from twisted.trial import unittest

from andor_twisted.camera import atcore, buffers, features
from andor_twisted.camera.driver import aligned_buffer
from andor_twisted.camera.features import FEATURE_TYPES
from andor_twisted.camera.sim import device as sim_device
from andor_twisted.camera.sim.exceptions import ATCoreException, ATException, CameraException, ErrorCodes
from andor_twisted.camera.sim.timeline import FORGET_EVERY

from tests.helpers import clock_sdk

SMALL = {"AOIWidth": 64, "AOIHeight": 32, "ExposureTime": 0.001}
SMALL_FRAME_BYTES = 64 * 2 * 32 + buffers.METADATA_BYTES  # Mono16 rows need no padding


class Cam:
    """One simulated camera opened through ATCore, its features read and set by name."""

    def __init__(self, model="neo", index=0, simcam_first=False, small=True, frame_rate=100.0, **overrides):
        self.clock = Clock()
        overrides.setdefault("arm_latency_s", 0.0)
        self.sdk = clock_sdk(self.clock, simcam_first, model=model, **overrides)
        self.lib = self.sdk.make_core()
        self.h = self.lib.open(index)
        self.device = self.sdk.simulated.devices[index]
        self.buffers = {}  # address -> buffer, as the driver keeps them alive while queued
        if small:
            for name, value in SMALL.items():
                self[name] = value
            self["MetadataEnable"] = self["MetadataTimestamp"] = True
            self["CycleMode"] = "Continuous"
            self["FrameRate"] = frame_rate

    def __getitem__(self, name):
        return features.read(self.lib, self.h, name, FEATURE_TYPES[name])

    def __setitem__(self, name, value):
        features.write(self.lib, self.h, name, FEATURE_TYPES[name], value)

    def run(self, command):
        self.lib.command(self.h, command)

    def queue(self, n=1):
        size = self["ImageSizeBytes"]
        for _ in range(n):
            buf = aligned_buffer(size)
            self.lib.queue_buffer(self.h, buf.ctypes.data, size)
            self.buffers[buf.ctypes.data] = buf

    def take(self, requeue=True, timeout_ms=10_000):
        """Wait for the next frame: (its buffer, exposure start in s from its ticks, when it came)."""
        pointer, size = self.lib.wait_buffer(self.h, timeout_ms)
        buf = self.buffers.pop(int(self.lib.ffi.cast("uintptr_t", pointer[0])))
        ticks = buffers.read_ticks(buf, size)
        if requeue:
            self.lib.queue_buffer(self.h, buf.ctypes.data, size)
            self.buffers[buf.ctypes.data] = buf
        return buf, ticks / self["TimestampClockFrequency"], self.clock.seconds()

    def image(self, buf):
        return buffers.decode(buf, self["PixelEncoding"], self["AOIWidth"], self["AOIHeight"], self["AOIStride"])

    def exposed(self):
        return self.device._timeline.exposed_by(self.clock.seconds())

    def refuses(self, test, code, fn, *args):
        with test.assertRaises(ATCoreException) as caught:
            fn(*args)
        test.assertEqual(caught.exception.err_code, code, caught.exception)
        return caught.exception


class APITests(unittest.TestCase):
    """The C API as pyAndorSDK3's ATCore presents it: types, return codes, buffers by pointer."""

    def test_values_have_the_wrappers_types(self):
        """Booleans and is_* answers are the ints 0/1, never bool; numbers and strings as such."""
        cam = Cam()
        for value in (cam.lib.get_bool(cam.h, "SensorCooling"), cam.lib.is_implemented(cam.h, "ExposureTime"),
                      cam.lib.is_readonly(cam.h, "SensorTemperature")):
            self.assertIs(type(value), int)
        self.assertEqual(cam.lib.get_bool(cam.h, "MetadataEnable"), 1)
        self.assertIs(type(cam.lib.get_float(cam.h, "ExposureTime")), float)
        self.assertIs(type(cam.lib.get_enumerated_string(cam.h, "PixelEncoding")), str)

    def test_missing_and_mistyped_features(self):
        """A feature the model lacks, or asked for with another type's getter: AT_ERR_NOTIMPLEMENTED, as
        pyAndorSDK3's type probing needs; is_readable of a missing feature is an error too."""
        cam = Cam()
        self.assertEqual(cam.lib.is_implemented(cam.h, "AOIHBin"), 0)  # the Neo has AOIBinning only
        e = cam.refuses(self, atcore.NOTIMPLEMENTED, cam.lib.get_int, cam.h, "AOIHBin")
        self.assertEqual(str(e), "2 (AT_ERR_NOTIMPLEMENTED)")
        cam.refuses(self, atcore.NOTIMPLEMENTED, cam.lib.get_int, cam.h, "ExposureTime")
        cam.refuses(self, atcore.NOTIMPLEMENTED, cam.lib.is_readable, cam.h, "AOIHBin")
        cam.refuses(self, atcore.NOTIMPLEMENTED, cam.lib.get_string, cam.h, "AcquisitionStart")

    def test_exceptions_are_the_wrappers(self):
        """ATException -> ATCoreException -> CameraException; err_code an ErrorCodes member, or the raw int
        with "Unknown Error" for codes the wrapper's table lacks (39)."""
        e = ATCoreException(13)
        self.assertIsInstance(e, ATException)
        self.assertTrue(issubclass(CameraException, ATCoreException))
        self.assertIs(e.err_code, ErrorCodes.AT_ERR_TIMEDOUT)
        self.assertEqual(str(CameraException(15, "Error queuing buffer")),
                         "Error queuing buffer - 15 (AT_ERR_INVALIDSIZE)")
        self.assertEqual(str(ATCoreException(39)), "39 (Unknown Error)")

    def test_argument_types_as_cffi_checks_them(self):
        cam = Cam()
        self.assertRaises(TypeError, cam.lib.set_int, cam.h, "AOIWidth", 64.0)
        self.assertRaises(TypeError, cam.lib.set_float, cam.h, "ExposureTime", "fast")
        self.assertRaises(OverflowError, cam.lib.wait_buffer, cam.h, -1)
        cam.refuses(self, atcore.OUTOFRANGE, cam.lib.set_bool, cam.h, "SensorCooling", 2)

    def test_enum_refusals(self):
        """A string the feature does not list: OUTOFRANGE; listed but not on this model: STRINGNOTIMPLEMENTED;
        not in the current mode: STRINGNOTAVAILABLE."""
        cam = Cam()
        cam.refuses(self, atcore.OUTOFRANGE, cam.lib.set_enumerated_string, cam.h, "PixelEncoding", "Mono99")
        cam.refuses(self, atcore.STRINGNOTIMPLEMENTED, cam.lib.set_enumerated_string, cam.h, "PixelEncoding", "Mono8")
        cam.refuses(self, atcore.STRINGNOTAVAILABLE, cam.lib.set_enumerated_string, cam.h, "PixelEncoding", "Mono12")
        self.assertEqual(features.options(cam.lib, cam.h, "PixelEncoding"),
                         (["Mono12", "Mono12Packed", "Mono16", "Mono32"], ["Mono16", "Mono32"]))

    def test_read_only_and_not_writable_now(self):
        """Read-only for good (AT_ERR_READONLY) differs from not writable now (AT_ERR_NOTWRITABLE)."""
        cam = Cam()
        cam.refuses(self, atcore.READONLY, cam.lib.set_float, cam.h, "SensorTemperature", 0.0)
        cam.queue()
        cam.run("AcquisitionStart")
        cam.refuses(self, atcore.NOTWRITABLE, cam.lib.set_int, cam.h, "AOIWidth", 32)
        cam.refuses(self, atcore.NOTWRITABLE, cam.lib.command, cam.h, "AcquisitionStart")
        cam.run("AcquisitionStop")
        cam.refuses(self, atcore.NOTWRITABLE, cam.lib.command, cam.h, "AcquisitionStop")  # not acquiring

    def test_buffers_by_pointer(self):
        """wait_buffer answers (AT_U8** cdata, size); element 0 points at the buffer queued, which the
        camera has written into; queue_buffer checks alignment and size."""
        cam = Cam()
        size = cam["ImageSizeBytes"]
        buf = aligned_buffer(size)
        buf[:] = 0
        cam.lib.queue_buffer(cam.h, buf.ctypes.data, size)
        cam.run("AcquisitionStart")
        pointer, got = cam.lib.wait_buffer(cam.h, 1000)
        self.assertEqual(int(cam.lib.ffi.cast("uintptr_t", pointer[0])), buf.ctypes.data)
        self.assertEqual(got, size)
        self.assertGreater(buf[:64].max(), 0)
        self.assertIsNotNone(buffers.read_ticks(buf, size))
        cam.run("AcquisitionStop")
        cam.lib.flush(cam.h)
        misaligned = aligned_buffer(size + 1)[1:]
        cam.refuses(self, atcore.INVALIDALIGNMENT, cam.lib.queue_buffer, cam.h, misaligned.ctypes.data, size)
        cam.refuses(self, atcore.INVALIDSIZE, cam.lib.queue_buffer, cam.h, buf.ctypes.data, size - 8)

    def test_nodata_and_timedout(self):
        """Nothing queued: AT_ERR_NODATA at once; buffers queued but no frame: AT_ERR_TIMEDOUT after the
        timeout, on the clock."""
        cam = Cam()
        cam.run("AcquisitionStart")
        cam.refuses(self, atcore.NODATA, cam.lib.wait_buffer, cam.h, 500)
        self.assertEqual(cam.clock.seconds(), 0)
        cam.run("AcquisitionStop")
        cam.queue()
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 500)
        self.assertAlmostEqual(cam.clock.seconds(), 0.5)

    def test_nodata_now_and_then(self):
        """The simulated fault seen on real installs: every Nth WaitBuffer answers NODATA at once."""
        cam = Cam(nodata_every=3)
        cam.queue(2)
        cam.run("AcquisitionStart")
        cam.take()
        cam.take()
        cam.refuses(self, atcore.NODATA, cam.lib.wait_buffer, cam.h, 1000)
        cam.take()

    def test_devices(self):
        """DeviceCount counts the SDK's two SIMCAMs after the camera; a device opens once."""
        cam = Cam()
        self.assertEqual(cam.lib.get_int(1, "DeviceCount"), 3)
        for index in (1, 2):
            handle = cam.lib.open(index)
            self.assertEqual(cam.lib.get_string(handle, "CameraModel"), "SIMCAM CMOS")
        cam.refuses(self, atcore.DEVICEINUSE, cam.lib.open, 0)
        cam.refuses(self, atcore.OUTOFRANGE, cam.lib.open, 3)
        cam.lib.close(cam.h)
        cam.refuses(self, atcore.INVALIDHANDLE, cam.lib.get_int, cam.h, "AOIWidth")

    def test_simcam(self):
        """The SDK's SIMCAM: no stride, no metadata, no time stamps, a fixed AOI, no Mono16."""
        cam = Cam(index=1, small=False)
        for name in ("AOIStride", "MetadataEnable", "TimestampClock", "AOIBinning", "TemperatureControl",
                     "SoftwareTrigger", "EventSelector"):
            self.assertEqual(cam.lib.is_implemented(cam.h, name), 0, name)
        self.assertEqual(cam.lib.is_writable(cam.h, "AOIWidth"), 0)
        self.assertNotIn("Mono16", features.options(cam.lib, cam.h, "PixelEncoding")[0])

    def test_callbacks(self):
        """A callback is a cffi callback; it is called once as it is registered, then per event."""
        cam = Cam()
        calls = []
        callback = cam.lib.build_callback(lambda handle, feature, context: calls.append(handle) or 0)
        self.assertRaises(TypeError, cam.lib.register_feature_callback, cam.h, "BufferOverflowEvent", print)
        cam.lib.register_feature_callback(cam.h, "BufferOverflowEvent", callback)
        self.assertEqual(calls, [cam.h])
        cam.lib.unregister_feature_callback(cam.h, "BufferOverflowEvent", callback)
        self.assertEqual(cam.device._callbacks["BufferOverflowEvent"], [])


class ModelTests(unittest.TestCase):
    """What each model implements and refuses, as the real ones do (docs/cameras.md)."""

    def test_binning_features(self):
        """The Neo has only the AOIBinning enum; the Zylas have AOIHBin/AOIVBin too; the SIMCAM H/V only."""
        for model, binning, hv in [("neo", 1, 0), ("zyla", 1, 1), ("zyla-usb3", 1, 1), ("zyla5.5", 1, 1),
                                   ("sona", 1, 1), ("balor", 1, 1)]:
            cam = Cam(model, small=False)
            self.assertEqual((cam.lib.is_implemented(cam.h, "AOIBinning"), cam.lib.is_implemented(cam.h, "AOIHBin")),
                             (binning, hv), model)

    def test_temperature_control(self):
        """The Neo's setpoints can be chosen; the Zyla's and Sona's TemperatureControl is read-only."""
        cam = Cam("neo")
        cam["TemperatureControl"] = "-30.00"
        for model in ("zyla", "zyla5.5", "sona"):
            cam = Cam(model)
            self.assertEqual(cam.lib.is_readonly(cam.h, "TemperatureControl"), 1, model)
            cam.refuses(self, atcore.READONLY, cam.lib.set_enumerated_string, cam.h, "TemperatureControl",
                        cam["TemperatureControl"])

    def test_sona_gain_and_aoi(self):
        """The Sona sets its gain with GainMode (no SimplePreAmpGainControl), and AOIs from 25 pixels wide."""
        cam = Cam("sona", small=False)
        self.assertEqual(cam.lib.is_implemented(cam.h, "SimplePreAmpGainControl"), 0)
        self.assertEqual(cam.lib.is_implemented(cam.h, "GainMode"), 1)
        self.assertEqual(cam.lib.get_int_min(cam.h, "AOIWidth"), 25)

    def test_zyla_rows_in_pairs(self):
        """A Zyla 4.2 refuses an odd AOI height although it is within its limits."""
        cam = Cam("zyla", small=False)
        cam.refuses(self, atcore.OUTOFRANGE, cam.lib.set_int, cam.h, "AOIHeight", 511)
        cam["AOIHeight"] = 512

    def test_frame_rate_max_rises_as_aoi_shrinks(self):
        """Fewer rows read out: a shorter ReadoutTime and a higher FrameRate maximum."""
        cam = Cam()
        cam["ExposureTime"] = 1e-5
        cam["AOIHeight"] = 2160
        full = cam.lib.get_float_max(cam.h, "FrameRate")
        cam["AOIHeight"] = 216
        self.assertAlmostEqual(full, 100.0, places=6)
        self.assertAlmostEqual(cam.lib.get_float_max(cam.h, "FrameRate"), 1000.0, places=6)
        self.assertLess(cam["ReadoutTime"], 0.0011)

    def test_exposure_readout_rate_shutter_and_overlap_limit_the_frame_rate(self):
        """A longer exposure lowers the maximum and clamps FrameRate; a slower readout rate, global
        shutter (a reference frame too) and no overlap lower it further."""
        cam = Cam(frame_rate=100.0)
        cam["AOIHeight"] = 2160
        cam["ExposureTime"] = 0.05
        self.assertAlmostEqual(cam.lib.get_float_max(cam.h, "FrameRate"), 20.0)
        self.assertAlmostEqual(cam["FrameRate"], 20.0)
        cam["ExposureTime"] = 1e-5
        cam["PixelReadoutRate"] = "100 MHz"
        self.assertAlmostEqual(cam.lib.get_float_max(cam.h, "FrameRate"), 1 / 0.028, places=3)
        cam["ElectronicShutteringMode"] = "Global"
        self.assertAlmostEqual(cam.lib.get_float_max(cam.h, "FrameRate"), 1 / 0.056, places=3)
        cam["ElectronicShutteringMode"] = "Rolling"
        cam["ExposureTime"] = 0.01
        cam["Overlap"] = False
        self.assertAlmostEqual(cam.lib.get_float_max(cam.h, "FrameRate"), 1 / 0.038, places=3)

    def test_frame_rate_not_writable_in_external_trigger_modes(self):
        cam = Cam()
        cam["TriggerMode"] = "External"
        cam.refuses(self, atcore.NOTWRITABLE, cam.lib.set_float, cam.h, "FrameRate", 10.0)
        self.assertFalse(cam.lib.is_enumerated_string_available(cam.h, "TriggerMode", "Advanced"))

    def test_cooling(self):
        """Cooling on: the sensor approaches the setpoint and reports Stabilised; off: Cooler Off."""
        cam = Cam()
        self.assertEqual(cam["TemperatureStatus"], "Cooler Off")
        cam["TemperatureControl"] = "-30.00"
        cam["SensorCooling"] = True
        cam.clock.advance(5)
        self.assertEqual(cam["TemperatureStatus"], "Cooling")
        cam.clock.advance(600)
        self.assertAlmostEqual(cam["SensorTemperature"], -30.0, places=2)
        self.assertEqual(cam["TemperatureStatus"], "Stabilised")
        cam["FanSpeed"] = "Off"  # without the fan the sensor cannot hold -30
        cam.clock.advance(600)
        self.assertEqual(cam["TemperatureStatus"], "Not Stabilised")


class FrameTimingTests(unittest.TestCase):
    def test_frames_at_frame_rate_while_memory_has_room(self):
        """With room on the head and buffers queued, frame k is exposed at start + k / FrameRate."""
        cam = Cam()
        cam.queue(4)
        cam.run("AcquisitionStart")
        times = [cam.take()[1] for _ in range(50)]
        np.testing.assert_allclose(np.diff(times), 0.01, rtol=0, atol=1e-8)

    def test_arm_latency(self):
        """The first exposure starts the arm latency after AcquisitionStart."""
        cam = Cam(arm_latency_s=0.25)
        cam.run("TimestampClockReset")
        cam.queue()
        cam.run("AcquisitionStart")
        self.assertAlmostEqual(cam.take()[1], 0.25, places=7)

    def test_ticks_count_at_clock_frequency_with_its_drift(self):
        """TimestampClock advances TimestampClockFrequency ticks a second (times the simulated drift)
        from TimestampClockReset; a read takes time, latched somewhere inside it."""
        cam = Cam(clock_drift_ppm=50.0)
        cam.run("TimestampClockReset")
        cam.clock.advance(1.5)
        ticks = cam["TimestampClock"]
        self.assertTrue(1.5e8 * (1 + 50e-6) <= ticks <= 1.5002e8 * (1 + 50e-6), ticks)

    def test_memory_full_stops_exposures(self):
        """On-head memory for 5 frames, the host takes nothing: 5 exposures, then none however long."""
        cam = Cam(onboard_memory_bytes=5 * SMALL_FRAME_BYTES)
        cam.run("AcquisitionStart")
        cam.clock.advance(1.0)
        self.assertEqual(cam.exposed(), 5)
        cam.clock.advance(10.0)
        self.assertEqual(cam.exposed(), 5)

    def test_taking_one_frees_exactly_one_exposure(self):
        """With memory full, each frame the host takes lets exactly one new frame be exposed, then."""
        cam = Cam(onboard_memory_bytes=5 * SMALL_FRAME_BYTES)
        cam.run("AcquisitionStart")
        cam.clock.advance(1.0)
        cam.queue()
        _, exposed, delivered = cam.take(requeue=False)
        self.assertEqual(exposed, 0.0)
        cam.clock.advance(5.0)
        self.assertEqual(cam.exposed(), 6)
        self.assertAlmostEqual(cam.device._timeline.exposed[5], delivered, places=9)

    def test_full_memory_paces_exposures_to_the_reader(self):
        """A throttling camera (the lab's Neo) taking a frame every 0.1 s from a full memory: exposures
        0.1 s apart, and the ticks say so."""
        cam = Cam(onboard_memory_bytes=3 * SMALL_FRAME_BYTES)
        cam.run("AcquisitionStart")
        cam.clock.advance(1.0)
        times = []
        for _ in range(10):
            cam.queue()
            times.append(cam.take(requeue=False)[1])
            cam.clock.advance(0.1)
        gaps = np.diff(times)
        np.testing.assert_allclose(gaps[:2], 0.01, atol=1e-8)
        self.assertTrue(np.all(gaps[3:] >= 0.1 - 1e-8), gaps)

    def test_link_rate_bounds_delivery(self):
        """Frames reach the host no faster than frame bytes / link rate, whatever the frame rate."""
        cam = Cam(link_rate_bytes_per_s=SMALL_FRAME_BYTES * 100, frame_rate=50.0)
        cam["ExposureTime"] = 0.0001
        cam["FrameRate"] = 1000.0
        cam.queue(8)
        cam.run("AcquisitionStart")
        deliveries = [cam.take()[2] for _ in range(30)]
        np.testing.assert_allclose(np.diff(deliveries), 0.01, atol=1e-9)

    def test_fixed_frame_count(self):
        """CycleMode Fixed stops after FrameCount frames."""
        cam = Cam()
        cam["CycleMode"] = "Fixed"
        cam["FrameCount"] = 3
        cam.queue(5)
        cam.run("AcquisitionStart")
        for _ in range(3):
            cam.take(requeue=False)
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 1000)

    def test_stop_discards_undelivered(self):
        """After AcquisitionStop, frames that had not reached the host are gone; flush drops buffers."""
        cam = Cam()
        cam.run("AcquisitionStart")
        cam.clock.advance(0.1)
        cam.run("AcquisitionStop")
        cam.queue(2)
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 100)
        cam.lib.flush(cam.h)
        self.assertEqual(len(cam.device._queue), 0)


class OverflowTests(unittest.TestCase):
    """What each behaviour on a full on-head memory looks like from the host."""

    def fill(self, when_full, model="neo"):
        """A camera with 3 frames of memory (2 frame-grabber slots without memory), 3 frames taken, then
        none taken for a second."""
        memory = 0 if model == "zyla" else 3 * SMALL_FRAME_BYTES
        cam = Cam(model, onboard_memory_bytes=memory, when_full=when_full)
        events = []
        callback = cam.lib.build_callback(lambda handle, feature, context: events.append(cam.clock.seconds()) or 0)
        if cam.lib.is_implemented(cam.h, "EventSelector"):
            cam.lib.set_enumerated_string(cam.h, "EventSelector", "BufferOverflowEvent")
            cam.lib.set_bool(cam.h, "EventEnable", 1)
            cam.lib.register_feature_callback(cam.h, "BufferOverflowEvent", callback)
            events.clear()  # the call at registration
        cam.queue(3)
        cam.run("AcquisitionStart")
        for _ in range(3):
            cam.take(requeue=False)
        cam.clock.advance(1.0)
        cam.queue(8)
        return cam, events

    def test_throttle(self):
        """throttle: nothing lost, the camera waited: the frames its memory held come on time, the next
        one late."""
        cam, events = self.fill("throttle")
        times = [cam.take()[1] for _ in range(4)]
        np.testing.assert_allclose(times[:3], [0.03, 0.04, 0.05], atol=1e-8)
        self.assertGreater(times[3], 1.0)
        self.assertEqual(events, [])

    def test_abort(self):
        """abort: BufferOverflowEvent, the camera stops acquiring, what its memory held is lost, and
        WaitBuffer only times out."""
        cam, events = self.fill("abort")
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 500)
        self.assertEqual(len(events), 1)
        self.assertFalse(cam["CameraAcquiring"])
        cam.refuses(self, atcore.NOTWRITABLE, cam.lib.command, cam.h, "AcquisitionStop")

    def test_hang(self):
        """hang: the same without an event."""
        cam, events = self.fill("hang")
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 500)
        self.assertEqual(events, [])

    def test_frame_grabber_error(self):
        """error (a Zyla on Camera Link, no on-head memory): AT_ERR_HARDWARE_OVERFLOW from WaitBuffer."""
        cam, events = self.fill("error", model="zyla")
        cam.refuses(self, atcore.HARDWARE_OVERFLOW, cam.lib.wait_buffer, cam.h, 500)


class TriggerTests(unittest.TestCase):
    def test_software_trigger(self):
        """TriggerMode Software: a frame for each SoftwareTrigger, none without; SoftwareTrigger is not
        executable when no such acquisition runs."""
        cam = Cam()
        cam.refuses(self, atcore.NOTWRITABLE, cam.lib.command, cam.h, "SoftwareTrigger")
        cam["TriggerMode"] = "Software"
        cam.queue(2)
        cam.run("AcquisitionStart")
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 1000)
        cam.run("SoftwareTrigger")
        _, exposed, _ = cam.take()
        self.assertAlmostEqual(exposed, cam.clock.seconds() - 0.001 - cam["ReadoutTime"] - 0.0, places=3)

    def test_external_triggers(self):
        """TriggerMode External with a 20 Hz source: frames 50 ms apart; without a source, none."""
        cam = Cam(trigger_rate_hz=20.0)
        cam["TriggerMode"] = "External"
        cam.queue(4)
        cam.run("AcquisitionStart")
        times = [cam.take()[1] for _ in range(5)]
        np.testing.assert_allclose(np.diff(times), 0.05, atol=1e-8)
        cam = Cam()
        cam["TriggerMode"] = "External"
        cam.queue(1)
        cam.run("AcquisitionStart")
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 5000)

    def test_external_start(self):
        """External Start: the first frame waits for a trigger, then the camera runs at FrameRate."""
        cam = Cam(trigger_rate_hz=2.0, arm_latency_s=0.0)
        cam["TriggerMode"] = "External Start"
        cam.clock.advance(0.1)
        cam.queue(4)
        cam.run("AcquisitionStart")
        times = [cam.take()[1] for _ in range(4)]
        self.assertAlmostEqual(times[0], 0.5, places=6)
        np.testing.assert_allclose(np.diff(times), 0.01, atol=1e-8)


class ImageTests(unittest.TestCase):
    def test_images_differ_and_show_spots(self):
        """Frames are distinct buffers with distinct content: noise, moving spots, frame numbers."""
        cam = Cam()
        cam["AOIWidth"], cam["AOIHeight"] = 2560, 2160
        cam.queue(2)
        cam.run("AcquisitionStart")
        a, b = (cam.image(cam.take(requeue=False)[0]) for _ in range(2))
        self.assertFalse(np.array_equal(a, b))
        self.assertGreater(a.max(), 10 * np.median(a))  # bright spots on a dimmer background

    def test_ideal_camera_redraws_only_the_frame_number(self):
        """The ideal camera's static scene: every frame, in whichever reused buffer, is the scene of
        frame 0 with its own frame number drawn, as numbers gain digits (9 -> 10, 99 -> 100) and
        buffers come back in any order."""
        cam = Cam("ideal", frame_rate=1000.0)
        size = cam["ImageSizeBytes"]
        cam.queue(3)
        cam.run("AcquisitionStart")
        painter = cam.device._painter
        spare, queued = [aligned_buffer(size)], 3
        for k in range(130):
            buf = cam.take(requeue=False)[0]
            expected = painter._scene(0, 0.0, np.empty(painter.shape, np.uint16))
            painter._digits(expected, k)
            self.assertTrue(np.array_equal(cam.image(buf), expected), f"frame {k}")
            spare.append(buf)
            queued -= 1
            while queued < 3 and len(spare) > (2 if k % 7 == 3 else 0):  # now and then one sits out
                buf = spare.pop(0 if k % 2 else -1)
                cam.lib.queue_buffer(cam.h, buf.ctypes.data, size)
                cam.buffers[buf.ctypes.data] = buf
                queued += 1

    def test_ideal_camera_fills_new_buffers_in_its_own_thread(self):
        """The ideal camera writes a buffer queued while it acquires in a thread of its own, as a camera's
        DMA does: WaitBuffer hands over no frame whose buffer is still being filled (TIMEDOUT within its
        timeout)."""
        self.patch(sim_device, "FILL_AHEAD_BYTES", 0)  # (these small frames are copied inline otherwise)
        cam = Cam("ideal", frame_rate=1000.0)
        cam.queue(1)
        cam.run("AcquisitionStart")
        first = cam.take(requeue=False)[0]  # frame 0 (kept: a new buffer is not at its address)
        busy = threading.Event()
        cam.device._dma = concurrent.futures.ThreadPoolExecutor(1)
        self.addCleanup(cam.device._dma.shutdown)
        self.addCleanup(busy.set)  # (first, should the test fail while the camera's thread waits)
        cam.device._dma.submit(busy.wait)  # the camera's thread is busy: the next fill waits
        cam.queue(1)
        cam.clock.advance(1.0)
        cam.refuses(self, atcore.TIMEDOUT, cam.lib.wait_buffer, cam.h, 5)
        busy.set()
        buf = cam.take(requeue=False)[0]
        painter = cam.device._painter
        expected = painter._scene(0, 0.0, np.empty(painter.shape, np.uint16))
        painter._digits(expected, 1)
        self.assertTrue(np.array_equal(cam.image(buf), expected))
        self.assertIsNot(first, buf)

    def test_ideal_camera_flush_waits_only_for_a_fill_under_way(self):
        """A flush returns once nothing writes into the host's buffers any more: after the fill under way,
        and without the fills not begun, which never happen (a flush drops what is queued)."""
        self.patch(sim_device, "FILL_AHEAD_BYTES", 0)
        cam = Cam("ideal", frame_rate=1000.0)
        cam.queue(1)
        cam.run("AcquisitionStart")
        _first = cam.take(requeue=False)[0]  # (kept: a new buffer is not at its address)
        writing, release = threading.Event(), threading.Event()
        self.addCleanup(release.set)
        copyto = np.copyto

        def held_copy(dst, src):  # the camera's thread is writing a buffer as the host flushes
            writing.set()
            release.wait()
            copyto(dst, src)

        self.patch(np, "copyto", held_copy)
        cam.queue(2)
        self.addCleanup(cam.device._dma.shutdown)
        (under_way, _), (not_begun, pixels) = cam.device._filling.values()
        pixels[:] = 7
        self.assertTrue(writing.wait(10))
        cam.run("AcquisitionStop")
        threading.Timer(0.05, release.set).start()
        cam.lib.flush(cam.h)
        self.assertTrue(under_way.done())
        self.assertFalse(under_way.cancelled())
        self.assertTrue(not_begun.cancelled())
        cam.device._dma.shutdown(wait=True)
        self.assertTrue((pixels == 7).all())

    def test_ideal_camera_repaints_a_buffer_that_lost_its_scene(self):
        """A buffer the host freed can come back as new (zeroed) memory at the same address: the ideal
        camera paints the whole scene into it again, not only the frame number."""
        cam = Cam("ideal", frame_rate=1000.0)
        cam.queue(1)
        cam.run("AcquisitionStart")
        buf = cam.take(requeue=False)[0]
        buf[:] = 0  # as if freed, and the same address mapped again
        cam.lib.queue_buffer(cam.h, buf.ctypes.data, buf.size)
        cam.buffers[buf.ctypes.data] = buf
        cam.clock.advance(1.0)
        buf = cam.take(requeue=False)[0]
        painter = cam.device._painter
        expected = painter._scene(0, 0.0, np.empty(painter.shape, np.uint16))
        painter._digits(expected, 1)
        self.assertTrue(np.array_equal(cam.image(buf), expected))

    def test_exposure_scales_signal(self):
        """Ten times the exposure: about ten times the signal above the dark offset."""
        cam = Cam()
        means = []
        for exposure in (0.001, 0.01):
            cam["ExposureTime"] = exposure
            cam.queue()
            cam.run("AcquisitionStart")
            means.append(np.median(cam.image(cam.take(requeue=False)[0])) - 100)
            cam.run("AcquisitionStop")
            cam.lib.flush(cam.h)
        self.assertTrue(8.5 < means[1] / means[0] < 11.5, means)

    def test_corrupt_metadata(self):
        """The simulated fault: one frame's metadata is garbage (the wrapper's parser would raise)."""
        cam = Cam(corrupt_metadata_at=1)
        cam.queue(3)
        cam.run("AcquisitionStart")
        cam.take()
        self.assertRaises(ValueError, cam.take)

    def test_history_is_forgotten(self):
        """A continuous acquisition (the live view, for days) keeps a bounded history of frame times,
        and frames keep their numbers and spacing."""
        cam = Cam(onboard_memory_bytes=3 * (64 * 64 * 2 + 64), small=False)
        cam["AOIWidth"], cam["AOIHeight"], cam["ExposureTime"], cam["FrameRate"] = 64, 64, 0.0001, 1000.0
        cam["CycleMode"] = "Continuous"
        cam.queue(4)
        cam.run("AcquisitionStart")
        timeline = cam.device._timeline
        size = cam["ImageSizeBytes"]
        for _ in range(3 * FORGET_EVERY):
            pointer, _ = cam.lib.wait_buffer(cam.h, 1000)
            cam.lib.queue_buffer(cam.h, int(cam.lib.ffi.cast("uintptr_t", pointer[0])), size)
        self.assertGreaterEqual(timeline.exposed_by(cam.clock.seconds()), 3 * FORGET_EVERY)
        self.assertLess(list.__len__(timeline.exposed), FORGET_EVERY + 100)
        last = len(timeline.exposed) - 1
        self.assertGreater(last - 1, timeline.exposed.base)
        self.assertAlmostEqual(timeline.exposed[last] - timeline.exposed[last - 1], 0.001)
        self.assertRaises(IndexError, timeline.exposed.__getitem__, timeline.exposed.base - 1)
