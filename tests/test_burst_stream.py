"""Bursts end to end: a real server on loopback with the simulated camera, read by the real client.

The camera is small and fast (64x64 pixels, 1 ms exposures, 200 frames/s) with four frames of on-head
memory, so every test runs in well under a second of camera time. A slow reader is one that spends
20 ms on each frame, four camera frame periods.
"""

import collections.abc
import json
import struct
import time

import h5py
import numpy as np
from astropy.io import fits
import websocket
from twisted.internet import defer, threads
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

import andor
from andor_twisted.acquisition import burst as burst_module
from andor_twisted.acquisition.spool import Spool

from tests.helpers import LoopbackServer

FPS = 200.0
PERIOD = 1 / FPS
FRAME_BYTES = 64 * 64 * 2 + 24  # Mono16 and the metadata (image block tail, ticks)
SLOW = 0.02  # seconds a slow reader spends on each frame
WINDOW = 2  # frames the server sends ahead of acknowledgements (the tests' own: a short burst outruns it)
HELD_OFF_CAMERA = 1 + WINDOW + 8 + 4  # frames the camera runs ahead of a reader through a spool of one frame:
# the spool, the frames in flight, the camera's buffers and its on-head memory


def read_slowly(frames):
    images = []
    for image in frames:
        time.sleep(SLOW)  # the reader's own work on the frame
        images.append(image)
    return images


class StreamFixture(unittest.TestCase):
    sim = ()  # --sim-* options beyond the helpers' and four frames of on-head memory

    @defer.inlineCallbacks
    def setUp(self):
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        # the camera's 8 buffers, as for large frames, so that a short burst of these small ones fills them
        self.patch(burst_module, "camera_buffers", lambda message_bytes: burst_module.BURST_BUFFERS)
        self.patch(Spool, "max_window", WINDOW)
        self.server = LoopbackServer()
        yield self.server.start("--sim-onboard-memory", str(4 * FRAME_BYTES), *self.sim)
        self.cam = self.server.cam
        yield self.client(self.cam.aoi, {"width": 64, "height": 64})
        yield self.client(self.cam.exposure_time, 0.001)

    def tearDown(self):
        return self.server.stop()

    def client(self, fn, *args, **kwargs):
        """Run blocking client code in a thread while the reactor serves it."""
        return threads.deferToThread(fn, *args, **kwargs)

    def burst(self, *args):
        return self.client(self.cam.burst, *args)


class BurstStreamTests(StreamFixture):
    @defer.inlineCallbacks
    def test_whole_burst_spool_with_a_slow_reader(self):
        """With a spool for the whole burst, capture time is set by the camera's clock, not the reader:
        the frames are evenly spaced and all captured long before the reader is done."""
        frames = yield self.burst(30, FPS)
        self.assertIsInstance(frames, collections.abc.Generator)
        images = yield self.client(read_slowly, frames)
        self.assertEqual(len(images), 30)
        self.assertEqual((images[0].shape, images[0].dtype), ((64, 64), np.uint16))
        self.assertEqual(frames.frame_numbers.tolist(), list(range(30)))
        np.testing.assert_allclose(np.diff(frames.timestamps), PERIOD, atol=1e-6)
        summary = frames.summary
        self.assertEqual((summary["frames"], summary["late_frames"], summary["state"]), (30, 0, "done"))
        self.assertEqual((summary["fps_requested"], summary["fps"]), (FPS, FPS))
        self.assertLess(summary["took_s"], 0.5 * 30 * SLOW)
        self.assertAlmostEqual(summary["fps_achieved"], FPS, places=3)
        debug = [e for e in self.events if e["log_level"] == LogLevel.debug]
        self.assertEqual(debug, [], "nothing is logged per message")

    @defer.inlineCallbacks
    def test_spool_of_one_with_a_slow_reader(self):
        """With a spool of one frame the reader sets the pace: once on-head memory is full the camera
        exposes a frame only as the reader frees room, and the timestamps show where."""
        frames = yield self.burst(40, FPS, 1)
        yield self.client(read_slowly, frames)
        steps = np.diff(frames.timestamps)
        self.assertEqual(frames.frame_numbers.tolist(), list(range(40)))
        full = int(np.argmax(steps > PERIOD + 1e-6))  # the first frame that waited for room
        self.assertGreaterEqual(full, HELD_OFF_CAMERA, steps)
        np.testing.assert_allclose(steps[:full], PERIOD, atol=1e-6)
        self.assertTrue(np.all(steps[full + 2 :] > 0.75 * SLOW), steps)  # after one frame of transition
        summary = frames.summary
        self.assertEqual(summary["late_frames"], np.sum(steps > 1.5 * PERIOD))
        self.assertGreater(summary["took_s"], (40 - full - 2) * SLOW * 0.9)
        self.assertEqual(summary["high_water_frames"], 1 + WINDOW)  # waiting, and in flight

    @defer.inlineCallbacks
    def test_capture_before_any_read(self):
        """burst() returns as soon as the capture runs; it completes with nobody reading."""
        frames = yield self.burst(20, FPS)
        burst = yield self.server.bursts.current.when_captured()
        status = yield self.client(self.cam.burst_status)
        self.assertEqual((status["state"], status["captured"], status["sent"]), ("captured", 20, 0))
        self.assertEqual(status["spool_frames"], 20)
        self.assertEqual(burst.id, frames.id)
        images = yield self.client(list, frames)
        self.assertEqual(len(images), 20)
        status = yield self.client(self.cam.burst_status)
        self.assertEqual((status["state"], status["acknowledged"], status["spool_bytes"]), ("done", 20, 0))

    @defer.inlineCallbacks
    def test_new_burst_discards_the_previous(self):
        """A new burst discards the previous one: its generator raises a clear error, even mid-read."""
        first = yield self.burst(400, FPS, 2)
        yield self.client(next, first)
        second = yield self.burst(10, FPS)
        error = yield self.assertFailure(self.client(list, first), andor.BurstDiscarded)
        self.assertIn(f"burst {second.id} replaced it", str(error))
        never_read = yield self.burst(10, FPS)
        error = yield self.assertFailure(self.client(list, second), andor.BurstDiscarded)
        self.assertIn("replaced", str(error))
        images = yield self.client(list, never_read)
        self.assertEqual(len(images), 10)

    @defer.inlineCallbacks
    def test_disconnect_mid_burst(self):
        """A reader that leaves mid-burst stops neither the capture nor loses frames: the next reader
        gets every frame not yet acknowledged."""
        frames = yield self.burst(30, FPS)
        first = yield self.client(lambda: [next(frames) for _ in range(5)])
        frames.close()
        yield self.server.bursts.current.when_captured()
        status = yield self.client(self.cam.burst_status)
        self.assertEqual((status["captured"], status["acknowledged"], status["spool_frames"]), (30, 5, 25))
        rest = yield self.client(self.cam.resume_burst)
        images = yield self.client(list, rest)
        self.assertEqual(rest.frame_numbers.tolist(), list(range(5, 30)))
        self.assertEqual(len(first) + len(images), 30)
        self.assertEqual(rest.summary["acknowledged"], 30)

    @defer.inlineCallbacks
    def test_ten_thousand_frames(self):
        """10,000 small frames arrive in order, none lost or duplicated, never closer than one period."""
        yield self.client(self.cam.aoi, {"width": 32, "height": 16})
        yield self.client(self.cam.exposure_time, 0.0001)
        frames = yield self.burst(10_000, 5000.0)
        count = yield self.client(lambda: sum(1 for _ in frames))
        self.assertEqual(count, 10_000)
        self.assertEqual(frames.frame_numbers.tolist(), list(range(10_000)))
        self.assertGreater(np.diff(frames.timestamps).min(), 1 / 5000.0 - 1e-6)

    @defer.inlineCallbacks
    def test_status_and_bad_requests(self):
        """The status resource 404s before any burst; bad bursts get 400 with the reason; DELETE discards."""
        status, _, body = yield self.client(self.server.raw, "GET", "/api/burst")
        self.assertEqual((status, body["error"]), (404, "no_such_burst"))
        for value, fragment in (({"frames": 0, "fps": 10}, "at least 1"), ({"frames": 5, "fps": 0}, "fps"),
                                ({"frames": 5, "fps": 10, "spool": -1}, "spool"), ({"fps": 10}, "needs frames"),
                                ({"frames": 5, "fps": 10, "buffer": 3}, "no field 'buffer'"),
                                ({"frames": 5, "fps": 1e7}, "FrameRate")):
            status, _, body = yield self.client(self.server.raw, "POST", "/api/burst", {"value": value})
            self.assertEqual(status, 400, value)
            self.assertIn(fragment, body["message"])
        yield self.burst(1000, FPS, 3)
        status, _, body = yield self.client(self.server.raw, "PUT", "/api/exposure_time", {"value": 0.002})
        self.assertEqual(status, 409)
        status, _, body = yield self.client(self.server.raw, "DELETE", "/api/burst")
        self.assertEqual((status, body["value"]["state"]), (200, "discarded"))
        status, _, body = yield self.client(self.server.raw, "PUT", "/api/exposure_time", {"value": 0.002})
        self.assertEqual(status, 200)


class ProtocolViolationTests(StreamFixture):
    def violate(self, burst_id, message):
        """In a thread: open the burst's stream, read its first message, send ``message``; return the
        close code and reason the server answers with."""
        ws = websocket.create_connection(f"ws://{self.server.address}/stream/burst?id={burst_id}", timeout=10)
        try:
            first = json.loads(ws.recv())
            assert first["type"] == "stream", first
            ws.send(message)
            while True:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return struct.unpack("!H", data[:2])[0], data[2:].decode()
        finally:
            ws.close()

    @defer.inlineCallbacks
    def test_bad_messages_close_the_stream(self):
        """An acknowledgement of a frame not sent, or a message that is no acknowledgement, closes the
        stream with code 4400 saying why; the burst keeps its frames for the next reader."""
        frames = yield self.burst(40, FPS)
        yield self.server.bursts.current.when_captured()
        code, reason = yield self.client(self.violate, frames.id, json.dumps({"ack": 40}))
        self.assertEqual(code, 4400)
        self.assertIn(f"acknowledged frame 40, but frames up to {WINDOW - 1} were sent", reason)
        code, reason = yield self.client(self.violate, frames.id, "hello")
        self.assertEqual((code, reason), (4400, 'a reader sends {"ack": frame_number}'))
        images = yield self.client(list, frames)
        self.assertEqual(frames.frame_numbers.tolist(), list(range(40)))
        self.assertEqual(len(images), 40)


class FailingCameraTests(StreamFixture):
    sim = ("--sim-fault-after", "7")

    @defer.inlineCallbacks
    def test_camera_error_mid_burst(self):
        """A camera failure mid-burst reaches the reader after every frame captured before it."""
        frames = yield self.burst(20, FPS)

        def read():
            images = []
            with self.assertRaises(andor.CameraFailure) as caught:
                for image in frames:
                    images.append(image)
            return images, caught.exception

        images, error = yield self.client(read)
        self.assertEqual(len(images), 7)
        self.assertIn("AT_ERR_COMM", str(error))
        self.assertEqual(error.details.get("sdk_error"), "AT_ERR_COMM")
        status = yield self.client(self.cam.burst_status)
        self.assertEqual((status["state"], status["captured"]), ("failed", 7))



class TimesLedgerAndFilesTests(StreamFixture):
    """What the client makes of a burst beyond its pixels: UTC times, the ledger, the plan, and files."""

    @defer.inlineCallbacks
    def test_times_ledger_plan(self):
        """Every frame has a UTC time, one frame period apart, with an uncertainty; the ledger has a row a
        frame, none late; the plan predicted the regime."""
        frames = yield self.burst(20, FPS)
        yield self.client(list, frames)
        times = frames.times
        self.assertEqual(times.dtype, np.dtype("datetime64[ns]"))
        np.testing.assert_allclose(np.diff(times).astype(np.int64), PERIOD * 1e9, rtol=2e-4)
        self.assertLess(frames.time_uncertainty_s, 1.0)
        ledger = frames.ledger
        self.assertEqual(ledger["frame"].tolist(), list(range(20)))
        self.assertFalse(ledger["late"].any() or ledger["lost"].any())
        self.assertEqual(ledger["time"].tolist(), times.tolist())
        self.assertEqual(frames.plan["regime"], "camera-paced")
        server_ledger = (yield self.client(lambda: self.cam._get("burst", ledger="true")))["ledger"]
        self.assertEqual([int(u) for u in server_ledger["utc_ns"]], times.astype(np.int64).tolist())
        plan = yield self.client(lambda: self.cam.plan_burst(100_000, FPS, 10))
        self.assertEqual(plan["regime"], "stalls")  # nobody reads: spool and on-head memory fill

    @defer.inlineCallbacks
    def test_save_while_reading(self):
        """frames.save(path) writes the burst as it is read: HDF5 and FITS, pixels, ledger and metadata."""
        frames = yield self.burst(12, FPS)
        path = yield self.client(frames.save, self.mktemp() + ".h5")
        with h5py.File(path) as f:
            self.assertEqual(f["frames"].shape, (12, 64, 64))
            self.assertEqual(f["ledger"]["frame"].tolist(), list(range(12)))
            self.assertEqual(f.attrs["camera_model"], "DC-152Q-C00-FI")
            self.assertEqual(f.attrs["aoi_width"], 64)
        frames = yield self.burst(5, FPS)
        path = yield self.client(frames.save, self.mktemp() + ".fits")
        with fits.open(path) as hdus:
            self.assertEqual(hdus[0].data.shape, (5, 64, 64))
            self.assertEqual(hdus[0].header["TIMESYS"], "UTC")
            self.assertTrue(hdus[0].header["DATE-OBS"].startswith("2"))

    @defer.inlineCallbacks
    def test_software_triggers(self):
        """A burst on software triggers: a frame per cam.trigger(), from another client."""
        frames = yield self.client(lambda: self.cam.burst(3, trigger="Software", trigger_timeout=20))
        other = andor.Camera(self.server.address)
        self.addCleanup(other.close)
        reading = self.client(list, frames)
        for _ in range(3):
            yield self.client(other.trigger)
        images = yield reading
        self.assertEqual(len(images), 3)
        self.assertFalse(frames.ledger["late"].any())
        with self.assertRaises(andor.BadRequest):
            yield self.client(other.trigger)  # no burst waits for one


class OverflowingCameraTests(StreamFixture):
    """A camera that overflows when its memory fills (BufferOverflowEvent), read slowly through a spool of
    one frame: the reader gets every frame that came, then the error naming the overflow and the lost."""

    sim = ("--sim-overflow", "abort")

    @defer.inlineCallbacks
    def test_overflow(self):
        frames = yield self.burst(60, FPS, 1)
        with self.assertRaises(andor.CameraFailure) as caught:
            yield self.client(read_slowly, frames)
        self.assertEqual(caught.exception.code, "camera_overflow")
        self.assertIn("lost", caught.exception.message)
        ledger = frames.ledger
        self.assertEqual(len(ledger), 60)
        self.assertEqual(int(ledger["lost"].sum()), 60 - len(frames.frame_numbers))
        self.assertGreater(ledger["lost"].sum(), 0)
