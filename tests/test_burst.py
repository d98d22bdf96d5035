"""Bursts on a Clock: the capture runs on the camera's clock into the spool, stops taking frames when
the spool is full, and the camera then slows to the reader's pace; supersede, failure, idle timeout."""

import types

import numpy as np
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from andor import wire
from andor_twisted.acquisition.arbiter import Arbiter, Purpose
from andor_twisted.acquisition.burst import BurstDiscarded, Bursts, NoSuchBurst
from andor_twisted.camera.errors import AcquisitionRunning, InvalidValue, SDKError
from andor_twisted.protocol.burst import BurstState

from tests.helpers import open_clock_camera, result_of

FPS = 100.0
TICKS_PER_FRAME = 1_000_000  # the simulated clock counts 100 MHz


class BurstFixture:
    def setUp(self, **overrides):
        overrides.setdefault("onboard_memory_bytes", 3 * (64 * 64 * 2 + 64))  # three frames of on-head memory
        self.camera, self.sdk_cam, self.clock = open_clock_camera(**overrides)
        result_of(self.camera.set_aoi({"width": 64, "height": 64}))
        result_of(self.camera.set("ExposureTime", 0.001))
        self.arbiter = Arbiter()
        self.bursts = Bursts(types.SimpleNamespace(camera=lambda: self.camera), self.arbiter, self.clock,
                             memory_limit=1 << 30, idle_timeout=600.0)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.addCleanup(self.bursts.stopService)

    def read(self, burst, n):
        """Read and acknowledge n frames, as a reader would; returns them."""
        frames = []
        for _ in range(n):
            frame = self.successResultOf(burst.spool.next())
            burst.spool.acknowledge(frame.frame_number)
            frames.append(frame)
        return frames


class BurstTests(BurstFixture, unittest.SynchronousTestCase):
    def test_capture_runs_on_the_camera_clock(self):
        """With a spool for the whole burst, every frame is captured before anyone reads, one frame
        period apart; the log says how long it took."""
        burst = self.successResultOf(self.bursts.start(20, FPS))
        self.assertEqual(burst.state, BurstState.CAPTURED)
        self.assertEqual((burst.spool.frames, burst.spool.sent), (20, 0))
        frames = self.read(burst, 20)
        ticks = [f.ticks for f in frames]
        self.assertEqual({b - a for a, b in zip(ticks[:-1], ticks[1:], strict=True)}, {TICKS_PER_FRAME})
        self.assertEqual(burst.timing.waited_frames, 0)
        self.assertAlmostEqual(burst.status().fps_achieved, FPS)
        self.assertEqual(burst.state, BurstState.DONE)
        messages = [e["log_format"].format(**e) for e in self.log]
        self.assertIn(f"taking 20 frames took {burst.took_s:.3f}s", messages)
        # arming (50 ms), 19 frame periods, then the last exposure and readout
        self.assertTrue(0.24 < burst.took_s < 0.245, burst.took_s)
        self.assertIsNone(self.camera.acquiring)

    def test_frames_are_stream_messages(self):
        """Each spooled frame is a frame header and pixels that are still in the camera's buffer (no
        WebSocket framing: the stream adds that)."""
        burst = self.successResultOf(self.bursts.start(2, FPS))
        frame = self.read(burst, 1)[0]
        self.assertTrue(np.shares_memory(np.frombuffer(frame.pixels, np.uint8), frame.buffer))
        fields, image = wire.parse(frame.header + bytes(frame.pixels))
        self.assertEqual((fields["burst_id"], fields["frame_number"], fields["ticks"]), (burst.id, 0, frame.ticks))
        self.assertEqual(image.tolist(), frame.image.tolist())

    def test_camera_buffers_are_lent_until_acknowledged(self):
        """A spooled frame's pixels stay in its own camera buffer, which the camera does not get back
        until the reader acknowledges the frame; then buffers go round instead of new ones being made."""
        burst = self.successResultOf(self.bursts.start(200, FPS, 20))
        self.clock.pump([0.01] * 100)
        unread = list(burst.spool._unsent)
        self.assertEqual(len(unread), 20)
        lent = {id(frame.buffer) for frame in unread}
        self.assertEqual(len(lent), 20)
        self.assertFalse(lent & {id(b) for b in self.camera._queued})
        seen = set()
        for _ in range(180):
            seen.update(id(frame.buffer) for frame in self.read(burst, 1))
            self.clock.advance(0.01)
        self.read(burst, 20)
        self.assertEqual(burst.state, BurstState.DONE)
        self.assertLessEqual(len(seen), 20 + 8 + 2 * 8)  # the spool, the queue, the spares

    def test_full_spool_stops_taking_frames(self):
        """With a spool of 2, the capture stops taking frames; the camera fills its host buffers and
        on-head memory, then waits. Each frame the reader frees lets exactly one more be exposed, late."""
        burst = self.successResultOf(self.bursts.start(40, FPS, 2))
        self.clock.advance(5.0)
        timeline = self.sdk_cam._timeline
        held = 2 + 8 + 3  # spool, SDK buffers queued, on-head memory
        self.assertEqual(burst.spool.frames, 2)
        self.assertEqual(timeline.exposed_by(self.clock.seconds()), held)
        self.assertEqual(burst.state, BurstState.CAPTURING)
        for _ in range(3):
            self.read(burst, 1)
            self.clock.advance(1.0)
        self.assertEqual(timeline.exposed_by(self.clock.seconds()), held + 3)
        frames = self.read(burst, 40 - 3)
        ticks = [f.ticks for f in frames]
        self.assertEqual([f.frame_number for f in frames], list(range(3, 40)))
        self.assertGreater(burst.timing.waited_frames, 0)
        late = (ticks[held - 3 + 1] - ticks[held - 3]) / TICKS_PER_FRAME
        self.assertGreater(late, 50)  # the frame after memory filled waited about a second
        self.assertEqual(burst.state, BurstState.DONE)

    def test_settings_wait_for_the_capture(self):
        """Settings are refused (409) while a burst captures, and free again once its last frame is off
        the camera, even with frames still unread."""
        burst = self.successResultOf(self.bursts.start(10, FPS, 2))
        self.failureResultOf(self.camera.set("ExposureTime", 0.002), AcquisitionRunning)
        self.failureResultOf(self.camera.snap(), AcquisitionRunning)
        refused = self.failureResultOf(self.arbiter.request(Purpose.SETTING, "PUT /api/exposure_time"),
                                       AcquisitionRunning).value
        self.assertEqual(refused.details["busy_with"], f"burst {burst.id}")
        self.read(burst, 8)
        self.assertEqual(burst.state, BurstState.CAPTURED)
        self.assertIsNone(self.arbiter.busy_with())
        self.successResultOf(self.arbiter.request(Purpose.SETTING, "PUT /api/exposure_time")).release()
        self.assertEqual(result_of(self.camera.set("ExposureTime", 0.002)), 0.002)

    def test_new_burst_discards_the_previous(self):
        """A new burst stops the previous one's capture and frees its spool; its reader gets BurstDiscarded."""
        first = self.successResultOf(self.bursts.start(30, FPS, 5))
        for _ in range(5):
            first.spool.next()  # in flight, not acknowledged: the spool stays full
        waiting = first.spool.next()
        second = self.successResultOf(self.bursts.start(4, FPS))
        self.assertEqual(first.state, BurstState.DISCARDED)
        self.assertEqual((first.spool.frames, first.spool.bytes), (0, 0))
        self.assertIn("replaced", str(self.failureResultOf(waiting, BurstDiscarded).value))
        self.assertEqual(second.state, BurstState.CAPTURED)
        self.assertEqual([f.frame_number for f in self.read(second, 4)], [0, 1, 2, 3])
        self.assertRaises(NoSuchBurst, self.bursts.get, first.id)

    def test_bad_requests(self):
        """Bad counts and rates are refused before anything starts; an fps the camera cannot reach is
        refused by the camera with its limits, and leaves it free."""
        for args in ((0, FPS), (1.5, FPS), (10, -1), (10, "fast"), (10, FPS, -1), (True, FPS)):
            self.failureResultOf(self.bursts.start(*args), InvalidValue)
        error = self.failureResultOf(self.bursts.start(10, 1e6), InvalidValue).value
        self.assertIn("FrameRate", error.message)
        self.assertIn("max", error.details)
        self.assertIsNone(self.camera.acquiring)

    def test_memory_limit_caps_the_spool(self):
        """--spool-memory-limit bounds the spool in frames of the burst's size."""
        self.bursts.memory_limit = 5 * (64 * 64 * 2 + wire.HEADER_SIZE)
        burst = self.successResultOf(self.bursts.start(40, FPS))
        self.assertEqual(burst.spool.capacity, 5)
        self.assertEqual(burst.spool.frames, 5)

    def test_idle_timeout(self):
        """A stalled burst nobody reads is discarded after the idle timeout, freeing the camera; a burst
        with a reader is kept."""
        burst = self.successResultOf(self.bursts.start(40, FPS, 2))
        self.bursts.reader_attached(burst)
        self.clock.advance(601)
        self.assertEqual(burst.state, BurstState.CAPTURING)
        self.bursts.reader_detached(burst)
        self.clock.advance(599)
        self.assertEqual(burst.state, BurstState.CAPTURING)
        self.clock.advance(2)
        self.assertEqual(burst.state, BurstState.DISCARDED)
        self.assertEqual(burst.spool.bytes, 0)
        self.assertIsNone(self.camera.acquiring)

    def test_idle_timeout_after_capture(self):
        """Captured frames nobody reads are freed after the idle timeout too."""
        burst = self.successResultOf(self.bursts.start(10, FPS))
        self.clock.advance(600.5)
        self.assertEqual(burst.state, BurstState.DISCARDED)


class FailingCameraTests(BurstFixture, unittest.SynchronousTestCase):
    def setUp(self):
        super().setUp(fault_after_frames=5)

    def test_camera_failure_mid_burst(self):
        """A camera failure ends the capture: the frames before it are read, then the error; the camera is free."""
        burst = self.successResultOf(self.bursts.start(20, FPS))
        self.assertEqual(burst.state, BurstState.FAILED)
        self.assertEqual([f.frame_number for f in self.read(burst, 5)], [0, 1, 2, 3, 4])
        error = self.failureResultOf(burst.spool.next(), SDKError).value
        self.assertEqual(error.sdk_error, "AT_ERR_COMM")
        self.assertIsNone(self.camera.acquiring)
        self.assertEqual(burst.status().error, "sdk_error")
