"""The live view: newest frame wins, one frame queued per viewer, reduced to the display, and stepping
aside whenever the arbiter gives the camera to someone else."""

import json
import types

import numpy as np
import websocket
from twisted.internet import defer, reactor, threads
from twisted.internet.task import Clock
from twisted.trial import unittest

from andor import wire
from andor_twisted.acquisition import live
from andor_twisted.acquisition.arbiter import Arbiter, Purpose
from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.acquisition.spool import Spool
from andor_twisted.camera.driver import Frame
from andor_twisted.camera.errors import SDKError
from andor_twisted.protocol.burst import BurstState

from tests.helpers import LoopbackServer


class FakeCamera:
    """A camera whose frames arrive when the test says so."""

    def __init__(self):
        self.acquiring = None
        self.starts = 0
        self.waiting = None  # (Deferred, pack) of the pending next_frames

    def get_aoi(self):
        return defer.succeed({"left": 1, "top": 1, "width": 2000, "height": 1000})

    def get_binning(self):
        return defer.succeed("1x1")

    def start(self, purpose, n_buffers, frame_rate=None):
        self.acquiring = purpose
        self.starts += 1
        return defer.succeed(types.SimpleNamespace(frame_rate=10.0, width=2000, height=1000))

    def next_frames(self, layout, first, max_count, pack):
        self.waiting = (defer.Deferred(), pack)
        return self.waiting[0]

    def deliver(self, *numbers):
        d, pack = self.waiting
        image = np.zeros((1000, 2000), np.uint16)
        d.callback([pack(Frame(image, n, 100 * n, 1000)) for n in numbers])

    def fail(self, error):
        self.waiting[0].errback(error)

    def stop(self):
        self.acquiring = None
        return defer.succeed(None)


class Screen:
    """A viewer's far end: what it was sent (frame messages, without the stream's WebSocket framing)."""

    def __init__(self, display=(1000, 1000)):
        self.frames, self.messages = [], []
        self.viewer = live.Viewer(self.frames.append, self.messages.append, display)

    def numbers(self):
        return [wire.parse(m)[0]["frame_number"] for m in self.frames]

    def shape(self):
        return wire.parse(self.frames[-1])[1].shape


class WatchTests(unittest.SynchronousTestCase):
    """Viewers watch a capturing burst: the newest spooled frame, reduced, at the display's pace, and the
    burst's reader still gets every frame."""

    def setUp(self):
        self.camera = FakeCamera()
        self.clock = Clock()
        self.arbiter = Arbiter()
        self.spool = Spool(100)
        settings = {"aoi_left": 1, "aoi_top": 1, "aoi_width": 2000, "aoi_height": 1000, "binning": "1x1"}
        layout = types.SimpleNamespace(width=2000, height=1000, frame_rate=50.0, tick_frequency=1000,
                                       settings=settings)
        self.burst = types.SimpleNamespace(id=7, state=BurstState.CAPTURING, spool=self.spool, layout=layout)
        self.bursts = types.SimpleNamespace(current=None)
        self.live = live.LiveView(type("Service", (), {"camera": lambda _: self.camera})(), self.arbiter, self.clock,
                                  self.bursts)
        self.live.startService()

    def capture(self, *numbers):
        for n in numbers:
            image = np.full((1000, 2000), n, np.uint16)
            self.spool.put(BurstFrame.pack(7, Frame(image, n, 100 * n, 1000)))

    def test_viewers_watch_a_capturing_burst(self):
        """While a burst captures, a viewer gets the newest frame in its spool, reduced to its display and
        labelled with the burst's id, one at a time as it acknowledges; the spool is only looked at."""
        screen = Screen()
        self.live.add(screen.viewer)
        grant = self.successResultOf(self.arbiter.request(Purpose.BURST, "burst 7"))
        self.bursts.current = self.burst
        self.capture(0, 1, 2, 3, 4)
        self.clock.advance(1 / live.WATCH_HZ)
        fields, image = wire.parse(screen.frames[-1])
        self.assertEqual((fields["burst_id"], fields["frame_number"], fields["ticks"]), (7, 4, 400))
        self.assertEqual((image.shape, int(image[0, 0])), ((500, 1000), 4))
        view = [m for m in screen.messages if m["type"] == "view"][-1]
        self.assertEqual((view["burst"], view["step"], view["aoi"]["width"]), (7, 2, 2000))
        self.capture(5, 6)
        self.clock.advance(1 / live.WATCH_HZ)
        self.assertEqual(screen.numbers(), [4])  # not acknowledged yet: nothing more
        screen.viewer.acknowledged()
        self.clock.advance(1 / live.WATCH_HZ)
        self.assertEqual(screen.numbers(), [4, 6])
        screen.viewer.acknowledged()
        self.clock.advance(1 / live.WATCH_HZ)
        self.assertEqual(screen.numbers(), [4, 6])  # nothing newer: nothing sent
        self.assertEqual((self.spool.sent, self.spool.acknowledged, self.spool.frames), (0, 0, 7))
        self.assertEqual([f.frame_number for f in self.spool.take(100, 1 << 30)], list(range(7)))
        grant.release()

    def test_only_a_capturing_burst(self):
        """A burst that has captured (its spool draining) is not watched: the live view has the camera."""
        screen = Screen()
        self.live.add(screen.viewer)
        self.bursts.current = self.burst
        self.burst.state = BurstState.CAPTURED
        self.capture(0)
        self.clock.advance(1 / live.WATCH_HZ)
        self.assertEqual(screen.frames, [])

    def test_nothing_runs_without_viewers(self):
        """Nobody watching, nothing is scheduled; the last viewer leaving stops the looks at the burst."""
        self.bursts.current = self.burst
        self.assertEqual(self.clock.getDelayedCalls(), [])
        screen = Screen()
        self.live.add(screen.viewer)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.live.remove(screen.viewer)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LiveViewTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.camera = FakeCamera()
        self.clock = Clock()
        self.arbiter = Arbiter()
        self.live = live.LiveView(type("Service", (), {"camera": lambda _: self.camera})(), self.arbiter, self.clock)
        self.live.startService()

    def test_runs_only_while_watched(self):
        """The camera starts with the first viewer and stops when the last one leaves."""
        self.assertIsNone(self.camera.acquiring)
        screen = Screen()
        self.live.add(screen.viewer)
        self.assertEqual(self.camera.acquiring, "live view")
        self.live.remove(screen.viewer)
        self.assertIsNone(self.camera.acquiring)

    def test_newest_frame_wins(self):
        """A viewer that has not acknowledged its frame gets no backlog: only the newest frame waits,
        and a fast viewer meanwhile gets every frame."""
        slow, fast = Screen(), Screen()
        self.live.add(slow.viewer)
        self.live.add(fast.viewer)
        for n in range(4):
            self.camera.deliver(n)
            fast.viewer.acknowledged()
        self.assertEqual(slow.numbers(), [0])
        self.assertEqual(fast.numbers(), [0, 1, 2, 3])
        self.assertEqual(slow.viewer.skipped, 2)
        slow.viewer.acknowledged()
        self.assertEqual(slow.numbers(), [0, 3])
        slow.viewer.acknowledged()
        self.assertEqual(slow.numbers(), [0, 3])  # nothing newer yet

    def test_only_the_newest_of_a_batch(self):
        """Frames that arrived together: viewers get the newest."""
        screen = Screen()
        self.live.add(screen.viewer)
        self.camera.deliver(0, 1, 2)
        self.assertEqual(screen.numbers(), [2])

    def test_reduced_to_the_display(self):
        """A frame is decimated to fit the viewer's display, and the view message says by how much."""
        screen = Screen(display=(500, 500))
        self.live.add(screen.viewer)
        self.camera.deliver(0)
        self.assertEqual(screen.shape(), (250, 500))
        view = [m for m in screen.messages if m["type"] == "view"][-1]
        self.assertEqual((view["step"], view["aoi"]["width"], view["frame_rate"]), (4, 2000, 10.0))
        self.live.resize(screen.viewer, (4000, 4000))  # never enlarged, and at most MAX_PIXELS
        screen.viewer.acknowledged()
        self.camera.deliver(1)
        self.assertEqual(screen.shape(), (500, 1000))

    def test_steps_aside_and_comes_back(self):
        """A burst gets the camera once the live view has stopped (viewers are told why); the live view
        comes back by itself when the burst gives the camera up."""
        screen = Screen()
        self.live.add(screen.viewer)
        grant = self.successResultOf(self.arbiter.request(Purpose.BURST, "burst 1"))
        self.assertIsNone(self.camera.acquiring)
        self.assertEqual(screen.messages[-1], {"type": "paused", "reason": "burst 1 is capturing"})
        late = Screen()
        self.live.add(late.viewer)  # a viewer arriving meanwhile does not restart it, and is told why
        self.assertIsNone(self.camera.acquiring)
        self.assertEqual(late.messages, [{"type": "paused", "reason": "burst 1 is capturing"}])
        self.assertEqual([m["type"] for m in screen.messages].count("paused"), 1)
        grant.release()
        self.assertEqual(self.camera.acquiring, "live view")
        self.assertEqual(screen.messages[-1]["type"], "view")
        self.assertEqual(self.arbiter.busy_with(), "live view")

    def test_waits_while_the_camera_is_busy(self):
        """A first viewer while a snap has the camera waits, told why, and gets frames after it."""
        snap = self.successResultOf(self.arbiter.request(Purpose.SNAP, "GET /api/snap"))
        screen = Screen()
        self.live.add(screen.viewer)
        self.assertEqual((self.camera.starts, screen.messages), (0, [{"type": "paused", "reason": "GET /api/snap"}]))
        snap.release()
        self.camera.deliver(0)
        self.assertEqual(screen.numbers(), [0])

    def test_last_viewer_leaving_withdraws_the_request(self):
        """A live view waiting for the camera stops waiting when its last viewer leaves."""
        burst = self.successResultOf(self.arbiter.request(Purpose.BURST, "burst 1"))
        screen = Screen()
        self.live.add(screen.viewer)
        self.live.remove(screen.viewer)
        burst.release()
        self.assertEqual((self.camera.starts, self.arbiter.busy_with()), (0, None))

    def test_camera_error(self):
        """A camera error is shown to viewers and the live view tries again a little later."""
        screen = Screen()
        self.live.add(screen.viewer)
        self.camera.fail(SDKError(17, "camera error AT_ERR_COMM"))
        self.assertEqual(screen.messages[-1]["error"], "sdk_error")
        self.assertIsNone(self.camera.acquiring)
        self.clock.advance(live.RETRY_S)
        self.assertEqual((self.camera.acquiring, self.camera.starts), ("live view", 2))


class LiveStreamTests(unittest.TestCase):
    """The live stream on loopback with the simulated camera, and a burst taking the camera from it."""

    @defer.inlineCallbacks
    def setUp(self):
        self.server = LoopbackServer()
        yield self.server.start()
        yield threads.deferToThread(self.server.cam.aoi, {"width": 640, "height": 480})

    def tearDown(self):
        return self.server.stop()

    def watch(self, enough, first_frame=None):
        """In a thread: connect as a viewer and read, acknowledging every frame, until ``enough(messages)``;
        return the messages (dicts, or frame header fields). ``first_frame`` fires when the first frame is in."""
        ws = websocket.create_connection(f"ws://{self.server.address}/stream/live?width=320&height=240", timeout=10)
        got = []
        try:
            while not enough(got):
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    got.append(wire.parse(data)[0])
                    ws.send(json.dumps({"ack": got[-1]["frame_number"]}))
                    if first_frame is not None and not first_frame.called:
                        reactor.callFromThread(first_frame.callback, None)
                else:
                    got.append(json.loads(data))
        finally:
            ws.close()
        return got

    @defer.inlineCallbacks
    def test_frames_reduced(self):
        """The viewer gets the view message, then distinct frames reduced to its display."""
        messages = yield threads.deferToThread(self.watch, lambda got: sum("frame_number" in m for m in got) >= 3)
        self.assertEqual(messages[0]["type"], "view")
        self.assertEqual(messages[0]["step"], 2)
        frames = [m for m in messages if "frame_number" in m]
        self.assertEqual({(m["height"], m["width"], m["burst_id"]) for m in frames}, {(240, 320, 0)})
        self.assertEqual(len({m["frame_number"] for m in frames}), 3)

    @defer.inlineCallbacks
    def test_settings_and_bursts_take_the_camera(self):
        """Settings change while the live view runs (it steps aside for them), and a burst stops it until its
        capture ends; then it comes back: a view message and frames after the burst's pause."""

        def after_burst(got):
            paused = [i for i, m in enumerate(got) if m.get("type") == "paused" and "burst" in m["reason"]]
            if not paused:
                return False
            rest = [m.get("type", "frame") for m in got[paused[-1] + 1:]]
            return "view" in rest and "frame" in rest[rest.index("view"):]

        first_frame = defer.Deferred()
        watching = threads.deferToThread(self.watch, after_burst, first_frame)
        yield first_frame
        exposure = yield threads.deferToThread(self.server.cam.exposure_time, 0.002)
        self.assertEqual(exposure, 0.002)
        frames = yield threads.deferToThread(self.server.cam.burst, 5, 50)
        images = yield threads.deferToThread(list, frames)
        self.assertEqual(len(images), 5)
        messages = yield watching
        reasons = [m["reason"] for m in messages if m.get("type") == "paused"]
        self.assertEqual(reasons, ["PUT /api/exposure_time", f"burst {frames.id} is capturing"], messages)
        self.assertTrue(after_burst(messages), messages)
