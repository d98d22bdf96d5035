"""Bursts on a Clock: the capture runs on the camera's clock into the spool, stops taking frames when
the spool is full, and the camera then slows to the reader's pace; supersede, failure, idle timeout."""

import types

import numpy as np
from twisted.internet import defer
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from andor import wire
from andor_twisted.acquisition import burst as burst_module
from andor_twisted.acquisition.arbiter import Arbiter, Purpose
from andor_twisted.camera import driver
from andor_twisted.acquisition.burst import BurstDiscarded, BurstRequest, Bursts, NoSuchBurst
from andor_twisted.camera.errors import (AcquisitionRunning, CameraOverflow, CameraTimeout, InvalidValue, SDKError,
                                         TriggerTimeout)
from andor_twisted.protocol.burst import BurstState

from tests.helpers import open_clock_camera, result_of

FPS = 100.0
CAMERA_BUFFERS = burst_module.camera_buffers  # before the fixture patches it
TICKS_PER_FRAME = 1_000_000  # the simulated clock counts 100 MHz


class BurstFixture:
    def setUp(self, **overrides):
        overrides.setdefault("onboard_memory_bytes", 3 * (64 * 64 * 2 + 64))  # three frames of on-head memory
        # the camera's 8 buffers, as for large frames (small ones get more: test_small_frames_more_buffers)
        self.patch(burst_module, "camera_buffers", lambda message_bytes: burst_module.BURST_BUFFERS)
        self.camera, self.sdk_cam, self.clock = open_clock_camera(**overrides)
        result_of(self.camera.set_aoi({"width": 64, "height": 64}))
        result_of(self.camera.set("ExposureTime", 0.001))
        self.arbiter = Arbiter()
        self.bursts = Bursts(types.SimpleNamespace(camera=lambda: self.camera), self.arbiter, self.clock,
                             memory_limit=1 << 30, idle_timeout=600.0)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.addCleanup(self.bursts.stopService)

    def start(self, frames, fps=None, spool=0, **request):
        """A burst as POST /api/burst asks for it (its values checked as the API checks them)."""
        return defer.maybeDeferred(lambda: self.bursts.start(BurstRequest.parse(
            {"frames": frames, "fps": fps, "spool": spool, **request})))

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
        burst = self.successResultOf(self.start(20, FPS))
        self.assertEqual(burst.state, BurstState.CAPTURED)
        self.assertEqual((burst.spool.frames, burst.spool.sent), (20, 0))
        frames = self.read(burst, 20)
        ticks = [f.ticks for f in frames]
        self.assertEqual({b - a for a, b in zip(ticks[:-1], ticks[1:], strict=True)}, {TICKS_PER_FRAME})
        self.assertEqual(burst.timing.late_frames, 0)
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
        burst = self.successResultOf(self.start(2, FPS))
        frame = self.read(burst, 1)[0]
        self.assertTrue(np.shares_memory(np.frombuffer(frame.pixels, np.uint8), frame.buffer))
        fields, image = wire.parse(frame.header + bytes(frame.pixels))
        self.assertEqual((fields["burst_id"], fields["frame_number"], fields["ticks"]), (burst.id, 0, frame.ticks))
        self.assertEqual(image.tolist(), frame.image.tolist())

    def test_camera_buffers_are_lent_until_acknowledged(self):
        """A spooled frame's pixels stay in its own camera buffer, which the camera does not get back
        until the reader acknowledges the frame; then buffers go round instead of new ones being made."""
        burst = self.successResultOf(self.start(200, FPS, 20))
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
        self.assertLessEqual(len(seen), 20 + 1 + 8)  # the spool, the frame in flight and the queue

    def test_small_frames_more_buffers(self):
        """Small frames get as many camera buffers as a trip takes: frames held back in them refill a
        small spool at once as the reader frees it, and the camera's own memory fills that much later."""
        self.patch(burst_module, "camera_buffers", CAMERA_BUFFERS)
        burst = self.successResultOf(self.start(300, FPS, 2))
        self.assertEqual(burst.spool.hold, burst_module.trip_frames(burst.message_bytes))
        self.clock.pump([0.01] * 300)
        self.assertEqual((burst.spool.frames, burst.spool.held), (2, 256))
        self.assertEqual(burst.state, BurstState.CAPTURING)  # the other 42 on the camera (3 in its memory)
        frames = self.read(burst, 300)
        self.assertEqual([f.frame_number for f in frames], list(range(300)))
        self.assertEqual(burst.spool.high_water_frames, 2 + 1)  # waiting, and the one in flight
        self.assertEqual(burst.state, BurstState.DONE)

    def test_buffers_go_round_with_a_large_spool(self):
        """With a spool larger than the camera's queue and a reader that reads in bursts, the buffers it
        frees are all queued again (a new buffer costs a page fault per page): the camera never holds
        more buffers than the spool held at its fullest (waiting and in flight) and the queue."""
        made = []
        self.patch(driver, "aligned_buffer", lambda size: made.append(size) or np.empty(size, np.uint8))
        burst = self.successResultOf(self.start(200, FPS, 30))
        while burst.state is not BurstState.DONE:
            self.clock.pump([0.01] * 40)
            frames = burst.spool.take(30, 1 << 30)  # read them all, then acknowledge them at once
            burst.spool.acknowledge(frames[-1].frame_number)
        self.assertEqual(burst.spool.high_water_frames, 30 + 30)
        self.assertLessEqual(len(made), 30 + 30 + 8)

    def test_trips_to_the_sdk_thread_are_short(self):
        """However many frames are waiting and however large the spool, one trip to the SDK thread takes
        at most trip_frames of them, so frames reach the spool (and the reader) while the camera still
        captures; every frame arrives once, in order."""
        self.patch(burst_module, "TRIP_BYTES", 3 * (64 * 64 * 2 + 48))
        trips = []
        next_frames = self.camera.next_frames

        def counted(layout, first, max_count, *args, **kwargs):
            trips.append(max_count)
            return next_frames(layout, first, max_count, *args, **kwargs)

        self.patch(self.camera, "next_frames", counted)
        burst = self.successResultOf(self.start(50, FPS))
        self.clock.pump([0.01] * 100)
        self.assertEqual([f.frame_number for f in self.read(burst, 50)], list(range(50)))
        self.assertEqual(burst.state, BurstState.DONE)
        self.assertEqual(max(trips), 3)
        self.assertGreaterEqual(len(trips), 50 // 3)

    def test_full_spool_stops_taking_frames(self):
        """With a spool of 2, the capture stops taking frames; the camera fills its host buffers and
        on-head memory, then waits. Each frame the reader frees lets exactly one more be exposed, late."""
        burst = self.successResultOf(self.start(40, FPS, 2))
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
        self.assertGreater(burst.timing.late_frames, 0)
        late = (ticks[held - 3 + 1] - ticks[held - 3]) / TICKS_PER_FRAME
        self.assertGreater(late, 50)  # the frame after memory filled waited about a second
        self.assertEqual(burst.state, BurstState.DONE)

    def test_settings_wait_for_the_capture(self):
        """Settings are refused (409) while a burst captures, and free again once its last frame is off
        the camera, even with frames still unread."""
        burst = self.successResultOf(self.start(20, FPS, 2))  # 2 in the spool, 8 held back: 10 on the camera
        self.failureResultOf(self.camera.set("ExposureTime", 0.002), AcquisitionRunning)
        self.failureResultOf(self.camera.snap(), AcquisitionRunning)
        refused = self.failureResultOf(self.arbiter.request(Purpose.SETTING, "PUT /api/exposure_time"),
                                       AcquisitionRunning).value
        self.assertEqual(refused.details["busy_with"], f"burst {burst.id}")
        self.read(burst, 10)
        self.assertEqual(burst.state, BurstState.CAPTURED)
        self.assertIsNone(self.arbiter.busy_with())
        self.successResultOf(self.arbiter.request(Purpose.SETTING, "PUT /api/exposure_time")).release()
        self.assertEqual(result_of(self.camera.set("ExposureTime", 0.002)), 0.002)

    def test_new_burst_discards_the_previous(self):
        """A new burst stops the previous one's capture and frees its spool; its reader gets BurstDiscarded."""
        first = self.successResultOf(self.start(30, FPS, 5))
        waiting = first.spool.next()
        while waiting.called:  # read what has come (in flight, not acknowledged) until the reader waits
            waiting = first.spool.next()
        second = self.successResultOf(self.start(4, FPS))
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
            self.failureResultOf(self.start(*args), InvalidValue)
        error = self.failureResultOf(self.start(10, 1e6), InvalidValue).value
        self.assertIn("FrameRate", error.message)
        self.assertIn("max", error.details)
        self.assertIsNone(self.camera.acquiring)

    def test_memory_limit_caps_the_spool(self):
        """--spool-memory-limit bounds the spool in frames of the burst's size."""
        self.bursts.memory_limit = 5 * (64 * 64 * 2 + wire.HEADER_SIZE)
        burst = self.successResultOf(self.start(40, FPS))
        self.assertEqual(burst.spool.capacity, 5)
        self.assertEqual(burst.spool.frames, 5)

    def test_idle_timeout(self):
        """A stalled burst nobody reads is discarded after the idle timeout, freeing the camera; a burst
        with a reader is kept."""
        burst = self.successResultOf(self.start(40, FPS, 2))
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
        burst = self.successResultOf(self.start(10, FPS))
        self.clock.advance(600.5)
        self.assertEqual(burst.state, BurstState.DISCARDED)


class FailingCameraTests(BurstFixture, unittest.SynchronousTestCase):
    def setUp(self):
        super().setUp(fault_after_frames=5)

    def test_camera_failure_mid_burst(self):
        """A camera failure ends the capture: the frames before it are read, then the error; the camera is free."""
        burst = self.successResultOf(self.start(20, FPS))
        self.assertEqual(burst.state, BurstState.FAILED)
        self.assertEqual([f.frame_number for f in self.read(burst, 5)], [0, 1, 2, 3, 4])
        error = self.failureResultOf(burst.spool.next(), SDKError).value
        self.assertEqual(error.sdk_error, "AT_ERR_COMM")
        self.assertIsNone(self.camera.acquiring)
        self.assertEqual(burst.status().error, "sdk_error")


class BurstEndTests(BurstFixture, unittest.SynchronousTestCase):
    """How a burst ends when the camera's memory fills, and what it then reports: frames delivered, late
    (and by how much) and lost, and why."""

    def fill(self, when_full):
        """A burst of 40 with a spool of 2 on a camera holding 3 frames, unread for 5 s, then read out."""
        self.setUp(when_full=when_full)
        burst = self.successResultOf(self.start(40, FPS, 2))
        self.clock.advance(5.0)
        frames = []
        while True:
            d = burst.spool.next()
            self.clock.advance(0.5)  # the capture meets the camera again once the reader frees room
            result = []
            d.addBoth(result.append)
            if not result or not hasattr(result[0], "frame_number"):
                return burst, frames, result[0] if result else None
            burst.spool.acknowledge(result[0].frame_number)
            frames.append(result[0])

    def test_throttle(self):
        """A camera that slows down: every frame comes, the late ones counted with how late the latest was,
        and the ledger marks them."""
        burst, frames, end = self.fill("throttle")
        self.assertIsNone(end)
        self.assertEqual(len(frames), 40)
        status = burst.status()
        self.assertGreater(status.late_frames, 0)
        self.assertGreater(status.max_late_s, 4.0)  # the frame after memory filled waited about 5 s
        self.assertEqual(status.lost_frames, 0)
        ledger = burst.ledger()
        self.assertEqual(sum(1 for late in ledger["late_by_s"] if late), status.late_frames)
        self.assertFalse(any(ledger["lost"]))

    def test_abort(self):
        """A camera that overflows (BufferOverflowEvent): the frames that came, then CameraOverflow saying
        how many came and how many are lost; the ledger lists the lost ones."""
        burst, frames, end = self.fill("abort")
        self.assertIsInstance(end.value, CameraOverflow)
        status = burst.status()
        self.assertEqual(status.state, BurstState.FAILED)
        self.assertEqual(status.lost_frames, 40 - len(frames))
        self.assertIn(f"{len(frames)} of 40 frames came, the other {40 - len(frames)} are lost", status.message)
        self.assertIn("BufferOverflowEvent", status.message)
        ledger = burst.ledger()
        self.assertEqual(len(ledger["frame"]), 40)
        self.assertEqual(sum(ledger["lost"]), status.lost_frames)
        self.assertIsNone(self.camera.acquiring)

    def test_hang(self):
        """A camera that stops without a word after the spool filled: a timeout that says the camera
        probably overflowed, and what was lost."""
        burst, frames, end = self.fill("hang")
        self.assertIsInstance(end.value, CameraTimeout)
        self.assertIn("probably overflowed", end.value.message)
        self.assertEqual(burst.status().lost_frames, 40 - len(frames))


class TriggeredBurstTests(BurstFixture, unittest.SynchronousTestCase):
    def test_software_triggers(self):
        """A burst with TriggerMode Software says it waits for triggers; each trigger gives a frame. (The
        simulated SDK runs inline here: the triggers come while the capture waits, as the clock advances.)"""
        waiting, triggered = [], []
        for t in (0.5, 1.0, 1.5):
            self.clock.callLater(t - 0.1, lambda: waiting.append(self.bursts.current.status().waiting_for_trigger))
            self.clock.callLater(t, lambda: self.camera.software_trigger().addBoth(triggered.append))
        burst = self.successResultOf(self.start(3, trigger="Software", trigger_timeout=30))
        self.assertEqual((waiting, triggered), ([True] * 3, [None] * 3))
        self.assertEqual(burst.state, BurstState.CAPTURED)
        self.assertFalse(burst.status().waiting_for_trigger)
        self.assertEqual(burst.status().late_frames, 0)  # the triggers set the pace: nothing is late

    def test_triggers_that_never_come(self):
        """External triggers that never come: the burst ends after the time allowed, with an error saying
        so; it never hangs the server, and the camera is free again."""
        burst = self.successResultOf(self.start(3, trigger="External", trigger_timeout=10))
        self.assertEqual(burst.state, BurstState.FAILED)
        self.assertTrue(10 < self.clock.seconds() < 11, self.clock.seconds())
        error = self.failureResultOf(burst.spool.next(), TriggerTimeout).value
        self.assertIn("no trigger within", error.message)
        self.assertIn("0 of 3 frames taken", error.message)
        self.assertIsNone(self.camera.acquiring)


class BurstReportTests(BurstFixture, unittest.SynchronousTestCase):
    def test_plan_time_base_and_ledger(self):
        """A burst reports its plan, its time base (both anchors once captured), the uncertainty of its
        frames' UTC times, the camera's settings, and a ledger with every frame's UTC time."""
        burst = self.successResultOf(self.start(20, FPS))
        status = burst.status()
        self.assertEqual(status.plan["regime"], "camera-paced")
        self.assertIsNotNone(status.timebase["end"])
        self.assertLess(status.time_uncertainty_s, 0.01)
        self.assertEqual(status.settings["camera_model"], "DC-152Q-C00-FI")
        self.assertEqual(status.settings["aoi_width"], 64)
        ledger = burst.ledger()
        utc = [int(u) for u in ledger["utc_ns"]]
        self.assertEqual(len(utc), 20)
        self.assertTrue(all(9_999_000 < b - a < 10_001_000 for a, b in zip(utc[:-1], utc[1:], strict=True)))

    def test_dry_run(self):
        """The plan of a burst, captured nothing: the camera stays idle; an fps beyond the camera is refused."""
        plan = self.successResultOf(self.bursts.plan(BurstRequest.parse({"frames": 100, "fps": FPS, "spool": 10})))
        self.assertEqual(plan.frames, 100)
        self.assertTrue(plan.fits_on_head is False)
        self.assertIsNone(self.camera.acquiring)
        error = self.failureResultOf(self.bursts.plan(BurstRequest.parse({"frames": 10, "fps": 1e6})),
                                     InvalidValue).value
        self.assertIn("FrameRate", error.message)


class CountTests(BurstFixture, unittest.SynchronousTestCase):
    """What /metrics reads of the bursts (``Bursts.counts``): each burst counted once by how it ended, and
    its frames, which stay counted after the burst is gone."""

    def test_counts(self):
        """A burst read to its end is completed; one left unread is discarded by the idle timeout; one the
        camera refuses is rejected; started is their sum. The first burst's frames stay counted once
        after later bursts retire it."""
        burst = self.successResultOf(self.start(6, FPS))
        self.read(burst, 6)
        counts = self.bursts.counts()
        self.assertEqual((counts.started, counts.completed, counts.discarded), (1, 1, 0))
        self.assertEqual((counts.frames_captured, counts.frames_sent, counts.frames_acknowledged), (6, 6, 6))
        self.assertEqual(counts.bytes_sent, 6 * burst.message_bytes)
        unread = self.successResultOf(self.start(4, FPS))
        self.read(unread, 1)
        self.clock.advance(600.5)
        self.assertEqual(unread.state, BurstState.DISCARDED)
        self.failureResultOf(self.start(3, 1e6), InvalidValue)
        counts = self.bursts.counts()
        self.assertEqual((counts.started, counts.completed, counts.discarded, counts.rejected, counts.failed),
                         (3, 1, 1, 1, 0))
        self.assertEqual((counts.frames_captured, counts.frames_sent, counts.frames_acknowledged, counts.frames_lost),
                         (10, 7, 7, 0))
        self.assertEqual(len(self.bursts._unretired), 1)  # the first two are folded into the totals
        summaries = [(e["id"], e["state"]) for e in self.log if "summary" in e]
        self.assertEqual(summaries, [(1, "done"), (2, "discarded"), (3, "failed")])


class FailedCountTests(BurstFixture, unittest.SynchronousTestCase):
    def setUp(self):
        super().setUp(fault_after_frames=5)

    def test_failed_burst(self):
        """A camera failure: the burst failed, the frames before it captured, the rest lost; the driver
        counts the SDK error by name and remembers it, and when the last frame came."""
        burst = self.successResultOf(self.start(20, FPS))
        self.assertEqual(burst.state, BurstState.FAILED)
        counts = self.bursts.counts()
        self.assertEqual((counts.started, counts.failed, counts.frames_captured, counts.frames_lost), (1, 1, 5, 15))
        self.assertEqual(self.camera.sdk_errors, {"AT_ERR_COMM": 1})
        self.assertEqual(self.camera.last_sdk_error.sdk_error, "AT_ERR_COMM")
        self.assertLessEqual(self.camera.last_frame_at, self.camera.last_sdk_error_at)
