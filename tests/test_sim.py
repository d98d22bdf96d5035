"""The simulated camera's physics, driven by a task.Clock through its pyAndorSDK3 surface."""

from dataclasses import replace

import numpy as np
from twisted.internet.task import Clock
from twisted.trial import unittest

from andor_twisted.camera import atcore, buffers
from andor_twisted.camera.sim import AndorSDK3, CameraException, ClockTime, MODELS
from andor_twisted.camera.sim.timeline import FORGET_EVERY

from tests.helpers import clock_sdk

SMALL = {"AOIWidth": 64, "AOIHeight": 32, "ExposureTime": 0.001}
SMALL_FRAME_BYTES = 64 * 2 * 32 + buffers.METADATA_BYTES  # Mono16 rows need no padding


class SimTestCase(unittest.TestCase):
    def camera(self, frame_rate=100.0, memory_frames=None, link_rate=None, arm_latency=0.0, model="neo"):
        """A simulated camera on self.clock with small frames, timestamps on, in continuous mode."""
        self.clock = Clock()
        changes = {"arm_latency_s": arm_latency}
        if memory_frames is not None:
            changes["onboard_memory_bytes"] = memory_frames * SMALL_FRAME_BYTES
        if link_rate is not None:
            changes["link_rate_bytes_per_s"] = link_rate
        cam = AndorSDK3(model=replace(MODELS[model], **changes), time=ClockTime(self.clock)).GetCamera(0)
        for name, value in SMALL.items():
            setattr(cam, name, value)
        cam.MetadataEnable = True
        cam.MetadataTimestamp = True
        cam.CycleMode = "Continuous"
        cam.FrameRate = frame_rate
        self.size = cam.ImageSizeBytes
        self.freq = cam.TimestampClockFrequency
        return cam

    def queue(self, cam, n):
        for _ in range(n):
            cam.queue(np.empty(self.size, np.uint8), self.size)

    def take(self, cam, requeue=True, timeout_ms=10_000):
        """Wait for the next frame; returns (exposure time in s from its ticks, delivery time)."""
        acq = cam.wait_buffer(timeout_ms)
        ticks = buffers.read_ticks(acq._np_data, self.size)
        if requeue:
            cam.queue(acq._np_data, self.size)
        return ticks / self.freq, self.clock.seconds()

    def exposed(self, cam):
        return cam._timeline.exposed_by(self.clock.seconds())


class FrameTimingTests(SimTestCase):
    def test_frames_at_frame_rate_while_memory_has_room(self):
        """With room on the head and buffers queued, frame k is exposed at start + k / FrameRate."""
        cam = self.camera(frame_rate=100.0)
        self.queue(cam, 4)
        cam.AcquisitionStart()
        times = [self.take(cam)[0] for _ in range(50)]
        np.testing.assert_allclose(np.diff(times), 0.01, rtol=0, atol=1e-8)

    def test_arm_latency(self):
        """The first exposure starts the arm latency after AcquisitionStart."""
        cam = self.camera(arm_latency=0.25)
        cam.TimestampClockReset()
        self.queue(cam, 1)
        cam.AcquisitionStart()
        exposed, _ = self.take(cam)
        self.assertAlmostEqual(exposed, 0.25, places=7)

    def test_ticks_count_at_clock_frequency(self):
        """TimestampClock advances TimestampClockFrequency ticks a second, from TimestampClockReset."""
        cam = self.camera()
        cam.TimestampClockReset()
        self.clock.advance(1.5)
        self.assertEqual(cam.TimestampClock, int(1.5 * cam.TimestampClockFrequency))

    def test_memory_full_stops_exposures(self):
        """On-head memory for 5 frames, the host takes nothing: 5 exposures, then none however long."""
        cam = self.camera(frame_rate=100.0, memory_frames=5)
        cam.AcquisitionStart()  # no buffer queued: nothing leaves the camera
        self.clock.advance(1.0)
        self.assertEqual(self.exposed(cam), 5)
        self.clock.advance(10.0)
        self.assertEqual(self.exposed(cam), 5)

    def test_taking_one_frees_exactly_one_exposure(self):
        """With memory full, each frame the host takes lets exactly one new frame be exposed, then."""
        cam = self.camera(frame_rate=100.0, memory_frames=5)
        cam.AcquisitionStart()
        self.clock.advance(1.0)
        self.queue(cam, 1)
        exposed, delivered = self.take(cam, requeue=False)
        self.assertEqual(exposed, 0.0)
        self.clock.advance(5.0)
        self.assertEqual(self.exposed(cam), 6)
        # the sixth exposure began the moment the first frame left memory
        self.assertAlmostEqual(cam._timeline.exposed[5], delivered, places=9)

    def test_full_memory_paces_exposures_to_the_reader(self):
        """A host taking a frame every 0.1 s from a full camera: exposures 0.1 s apart, ticks say so."""
        cam = self.camera(frame_rate=100.0, memory_frames=3)
        cam.AcquisitionStart()
        self.clock.advance(1.0)
        times = []
        for _ in range(10):
            self.queue(cam, 1)
            times.append(self.take(cam, requeue=False)[0])
            self.clock.advance(0.1)
        gaps = np.diff(times)
        np.testing.assert_allclose(gaps[:2], 0.01, atol=1e-8)  # the 3 frames exposed at the frame rate
        self.assertTrue(np.all(gaps[3:] >= 0.1 - 1e-8), gaps)  # then at the reader's pace

    def test_link_rate_bounds_delivery(self):
        """Frames reach the host no faster than frame bytes / link rate, whatever the frame rate."""
        cam = self.camera(link_rate=SMALL_FRAME_BYTES * 100)  # a 100 frames/s link...
        cam.ExposureTime = 0.0001
        cam.FrameRate = 1000.0  # ...under a 1000 frames/s sensor
        self.queue(cam, 8)
        cam.AcquisitionStart()
        deliveries = [self.take(cam)[1] for _ in range(30)]
        np.testing.assert_allclose(np.diff(deliveries), 0.01, atol=1e-9)

    def test_buffers_only_into_queued(self):
        """No queued buffer: wait_buffer times out (AT_ERR_TIMEDOUT) after its timeout, on the clock."""
        cam = self.camera()
        cam.AcquisitionStart()
        with self.assertRaises(CameraException) as caught:
            cam.wait_buffer(500)
        self.assertEqual(caught.exception.err_code, atcore.TIMEDOUT)
        self.assertAlmostEqual(self.clock.seconds(), 0.5)

    def test_fixed_frame_count(self):
        """CycleMode Fixed stops after FrameCount frames."""
        cam = self.camera()
        cam.CycleMode = "Fixed"
        cam.FrameCount = 3
        self.queue(cam, 5)
        cam.AcquisitionStart()
        for _ in range(3):
            self.take(cam, requeue=False)
        self.assertRaises(CameraException, cam.wait_buffer, 1000)

    def test_no_onhead_memory_overflows(self):
        """A camera without on-head memory (Zyla) faults with AT_ERR_HARDWARE_OVERFLOW when the host
        stops taking frames, rather than slowing down."""
        cam = self.camera(model="zyla", frame_rate=100.0)
        self.queue(cam, 3)
        cam.AcquisitionStart()
        self.take(cam, requeue=False)
        self.take(cam, requeue=False)
        self.take(cam, requeue=False)
        with self.assertRaises(CameraException) as caught:
            for _ in range(5):
                self.take(cam, requeue=False, timeout_ms=200)
        self.assertEqual(caught.exception.err_code, atcore.HARDWARE_OVERFLOW)

    def test_stop_discards_undelivered(self):
        """After AcquisitionStop, frames that had not reached the host are gone; flush drops buffers."""
        cam = self.camera()
        cam.AcquisitionStart()
        self.clock.advance(0.1)
        cam.AcquisitionStop()
        self.queue(cam, 2)
        self.assertRaises(CameraException, cam.wait_buffer, 100)
        cam.flush()
        self.assertEqual(len(cam._buffers), 0)


class FeatureModelTests(SimTestCase):
    def test_frame_rate_max_rises_as_aoi_shrinks(self):
        """Fewer rows read out: a shorter ReadoutTime and a higher FrameRate maximum."""
        cam = self.camera()
        cam.ExposureTime = 1e-5
        cam.AOIHeight = 2160
        full = cam.max_FrameRate
        cam.AOIHeight = 216
        self.assertAlmostEqual(full, 100.0, places=6)
        self.assertAlmostEqual(cam.max_FrameRate, 1000.0, places=6)
        self.assertLess(cam.ReadoutTime, 0.0011)

    def test_exposure_caps_frame_rate(self):
        """A longer exposure lowers FrameRate's maximum and clamps a FrameRate above it."""
        cam = self.camera(frame_rate=100.0)
        cam.ExposureTime = 0.05
        self.assertAlmostEqual(cam.max_FrameRate, 20.0)
        self.assertAlmostEqual(cam.FrameRate, 20.0)

    def test_feature_surface(self):
        """pyAndorSDK3's helpers: type_, min_/max_, options_/available_options_/is_available_."""
        cam = self.camera()
        self.assertEqual(cam.type_ExposureTime, "float")
        self.assertEqual(cam.type_AcquisitionStart, "command")
        self.assertEqual(cam.options_PixelEncoding, list(buffers.ENCODINGS))
        self.assertFalse(cam.is_available_PixelEncoding("Mono12"))
        cam.SimplePreAmpGainControl = "12-bit (high well capacity)"
        self.assertIn("Mono12Packed", cam.available_options_PixelEncoding)
        with self.assertRaises(AttributeError):
            cam.NoSuchFeature
        with self.assertRaises(AttributeError):
            cam.min_PixelEncoding

    def test_errors_carry_codes(self):
        """Bad values raise CameraException with the SDK's err_code."""
        cam = self.camera()
        for name, value, code in [("ExposureTime", 100.0, atcore.OUTOFRANGE),
                                  ("PixelEncoding", "Mono99", atcore.STRINGNOTIMPLEMENTED),
                                  ("PixelEncoding", "Mono12", atcore.STRINGNOTAVAILABLE),
                                  ("SensorTemperature", 0.0, atcore.NOTWRITABLE)]:
            with self.assertRaises(CameraException) as caught:
                setattr(cam, name, value)
            self.assertEqual(caught.exception.err_code, code, name)

    def test_settings_locked_while_acquiring(self):
        """AOI and encoding cannot change during an acquisition (AT_ERR_NOTWRITABLE)."""
        cam = self.camera()
        cam.AcquisitionStart()
        with self.assertRaises(CameraException) as caught:
            cam.AOIWidth = 32
        self.assertEqual(caught.exception.err_code, atcore.NOTWRITABLE)

    def test_queue_wrong_size(self):
        cam = self.camera()
        with self.assertRaises(CameraException) as caught:
            cam.queue(np.empty(10, np.uint8), 10)
        self.assertEqual(caught.exception.err_code, atcore.INVALIDSIZE)

    def test_opening_twice(self):
        """A camera already open elsewhere is AT_ERR_DEVICEINUSE."""
        sdk = AndorSDK3(time=ClockTime(Clock()))
        sdk.GetCamera(0)
        with self.assertRaises(CameraException) as caught:
            sdk.GetCamera(0)
        self.assertEqual(caught.exception.err_code, atcore.DEVICEINUSE)

    def test_cooling(self):
        """Cooling on: the sensor approaches the setpoint and reports Stabilised; off: Cooler Off."""
        cam = self.camera()
        self.assertEqual(cam.TemperatureStatus, "Cooler Off")
        cam.TemperatureControl = "-30.00"
        cam.SensorCooling = True
        self.clock.advance(5)
        self.assertEqual(cam.TemperatureStatus, "Cooling")
        self.clock.advance(600)
        self.assertAlmostEqual(cam.SensorTemperature, -30.0, places=2)
        self.assertEqual(cam.TemperatureStatus, "Stabilised")
        cam.FanSpeed = "Off"  # without the fan the sensor cannot hold -30
        self.clock.advance(600)
        self.assertEqual(cam.TemperatureStatus, "Not Stabilised")


class ImageTests(SimTestCase):
    def test_images_differ_and_show_spots(self):
        """Frames are distinct buffers with distinct content: noise, moving spots, frame numbers."""
        cam = self.camera()
        cam.AOIWidth, cam.AOIHeight = 2560, 2160
        self.size = cam.ImageSizeBytes
        self.queue(cam, 2)
        cam.AcquisitionStart()
        first = cam.wait_buffer(1000)
        second = cam.wait_buffer(1000)
        self.assertIsNot(first._np_data, second._np_data)
        a, b = first.image, second.image
        self.assertFalse(np.array_equal(a, b))
        self.assertGreater(a.max(), 10 * np.median(a))  # bright spots on a dimmer background

    def test_ideal_camera_redraws_only_the_frame_number(self):
        """The ideal camera's static scene: every frame, in whichever reused buffer, is the scene of
        frame 0 with its own frame number drawn, as numbers gain digits (9 -> 10, 99 -> 100) and
        buffers come back in any order."""
        cam = self.camera(frame_rate=1000.0, model="ideal")
        self.queue(cam, 3)
        cam.AcquisitionStart()
        painter = cam._painter
        spare, queued = [np.empty(self.size, np.uint8)], 3
        for k in range(130):
            acq = cam.wait_buffer(1000)
            expected = painter._scene(0, 0.0, np.empty(painter.shape, np.uint16))
            painter._digits(expected, k)
            self.assertTrue(np.array_equal(acq.image, expected), f"frame {k}")
            spare.append(acq._np_data)
            queued -= 1
            while queued < 3 and len(spare) > (2 if k % 7 == 3 else 0):  # now and then one sits out
                cam.queue(spare.pop(0 if k % 2 else -1), self.size)
                queued += 1

    def test_exposure_scales_signal(self):
        """Ten times the exposure: about ten times the signal above the dark offset."""
        cam = self.camera()
        means = []
        for exposure in (0.001, 0.01):
            cam.ExposureTime = exposure
            self.size = cam.ImageSizeBytes
            self.queue(cam, 1)
            cam.AcquisitionStart()
            means.append(np.median(cam.wait_buffer(1000).image) - 100)
            cam.AcquisitionStop()
            cam.flush()
        self.assertTrue(8.5 < means[1] / means[0] < 11.5, means)


class LongAcquisitionTests(unittest.SynchronousTestCase):
    def test_history_is_forgotten(self):
        """A continuous acquisition (the live view, for days) keeps a bounded history of frame times,
        and frames keep their numbers and spacing."""
        clock = Clock()
        cam = clock_sdk(clock, onboard_memory=3 * 8232).AndorSDK3().GetCamera(0)
        cam.AOIWidth, cam.AOIHeight, cam.ExposureTime, cam.FrameRate = 64, 64, 0.0001, 1000.0
        cam.CycleMode = "Continuous"
        size = cam.ImageSizeBytes
        for _ in range(4):
            cam.queue(np.empty(size, np.uint8), size)
        cam.AcquisitionStart()
        timeline = cam._timeline
        for _ in range(3 * FORGET_EVERY):
            buf = cam.wait_buffer(1000)._np_data
            cam.queue(buf, size)
        self.assertGreaterEqual(timeline.exposed_by(clock.seconds()), 3 * FORGET_EVERY)
        self.assertLess(list.__len__(timeline.exposed), FORGET_EVERY + 100)
        self.assertAlmostEqual(timeline.exposed[3 * FORGET_EVERY - 1] - timeline.exposed[3 * FORGET_EVERY - 2], 0.001)
