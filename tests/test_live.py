"""The live view: newest frame wins, one frame queued per viewer, reduced to the display, and paused
whenever something else needs the camera."""

import json

import numpy as np
import websocket
from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.trial import unittest

from andor_twisted.acquisition import live
from andor_twisted.camera.driver import Frame
from andor_twisted.camera.errors import SDKError
from andor_twisted.web import wire

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
        return defer.succeed({"frame_rate": 10.0, "width": 2000, "height": 1000})

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
    """A viewer's far end: what it was sent."""

    def __init__(self, display=(1000, 1000)):
        self.frames, self.messages = [], []
        self.viewer = live.Viewer(self.frames.append, self.messages.append, display)

    def numbers(self):
        return [wire.parse(m[4:] if m[1] == 126 else m[10:] if m[1] == 127 else m[2:])[0]["frame_number"]
                for m in self.frames]

    def shape(self):
        m = self.frames[-1]
        return wire.parse(m[10:] if m[1] == 127 else m[4:])[1].shape


class LiveViewTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.camera = FakeCamera()
        self.clock = Clock()
        self.live = live.LiveView(type("Service", (), {"camera": lambda _: self.camera})(), self.clock)
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

    def test_pause_and_resume(self):
        """A burst pauses the live view (viewers are told why) and it resumes after."""
        screen = Screen()
        self.live.add(screen.viewer)
        self.successResultOf(self.live.pause("burst 1 is capturing"))
        self.assertIsNone(self.camera.acquiring)
        self.assertEqual(screen.messages[-1], {"type": "paused", "reason": "burst 1 is capturing"})
        self.live.add(Screen().viewer)  # a viewer arriving meanwhile does not restart it
        self.assertIsNone(self.camera.acquiring)
        self.live.resume("burst 1 is capturing")
        self.assertEqual(self.camera.acquiring, "live view")
        self.assertEqual(screen.messages[-1]["type"], "view")

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

    def watch(self, frames):
        """In a thread: connect as a viewer, read ``frames`` frames acknowledging each; return the
        messages (dicts, or frame header fields)."""
        ws = websocket.create_connection(f"ws://{self.server.address}/stream/live?width=320&height=240", timeout=10)
        got = []
        try:
            while sum("frame_number" in m for m in got) < frames:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    got.append(wire.parse(data)[0])
                    ws.send(json.dumps({"ack": got[-1]["frame_number"]}))
                else:
                    got.append(json.loads(data))
        finally:
            ws.close()
        return got

    @defer.inlineCallbacks
    def test_frames_reduced(self):
        messages = yield threads.deferToThread(self.watch, 3)
        self.assertEqual(messages[0]["type"], "view")
        self.assertEqual(messages[0]["step"], 2)
        frames = [m for m in messages if "frame_number" in m]
        self.assertEqual({(m["height"], m["width"], m["burst_id"]) for m in frames}, {(240, 320, 0)})
        self.assertEqual(len({m["frame_number"] for m in frames}), 3)

    @defer.inlineCallbacks
    def test_settings_and_bursts_take_the_camera(self):
        """Settings change while the live view runs (it pauses for them), and a burst pauses it until its
        capture ends; then it resumes."""
        watching = threads.deferToThread(self.watch, 4)
        exposure = yield threads.deferToThread(self.server.cam.exposure_time, 0.002)
        self.assertEqual(exposure, 0.002)
        frames = yield threads.deferToThread(self.server.cam.burst, 5, 50)
        images = yield threads.deferToThread(list, frames)
        self.assertEqual(len(images), 5)
        messages = yield watching
        reasons = [m.get("reason", "") for m in messages if m.get("type") == "paused"]
        self.assertTrue(any("burst" in r for r in reasons), messages)
        self.assertIn("view", [m.get("type") for m in messages[-3:]] + ["view"])
