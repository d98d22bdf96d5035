"""The sans-I/O layer (andor_twisted.protocol) with plain values only: no reactor, no sockets."""

import json
import os

from twisted.trial import unittest

from andor_twisted.protocol import frames, messages, window
from andor_twisted.protocol.burst import (TRANSITIONS, BurstState, BurstStatus, FrameTiming, IllegalTransition,
                                          Lifecycle)

with open(os.path.join(os.path.dirname(__file__), "..", "docs", "frame-vectors.json")) as _f:
    VECTORS = json.load(_f)["vectors"]


class FrameHeaderTests(unittest.SynchronousTestCase):
    def test_headers_are_the_vectors(self):
        """The header written for each vector's fields is the first 48 bytes of the vector's message."""
        for v in VECTORS:
            f = v["fields"]
            header = frames.pack_header(f["burst_id"], f["frame_number"], f["dtype"], f["height"], f["width"],
                                        f["ticks"], f["tick_frequency"])
            self.assertEqual(header.hex(), v["message_hex"][: 2 * frames.HEADER_SIZE], v["description"])
            self.assertEqual(frames.message_bytes(f["dtype"], f["height"], f["width"]),
                             len(v["message_hex"]) // 2, v["description"])

    def test_a_timestamp_needs_both_values(self):
        """Ticks without a tick frequency (or a zero one) make an untimed frame: flags 0, both fields 0."""
        for ticks, frequency in ((5, None), (5, 0), (None, 100)):
            header = frames.pack_header(1, 0, "u2", 1, 1, ticks, frequency)
            fields = frames.HEADER.unpack(header)
            self.assertEqual((fields[5], fields[7], fields[8]), (0, 0, 0), (ticks, frequency))

    def test_only_16_and_32_bit_pixels(self):
        """Other pixel types are refused before anything is sent."""
        self.assertRaises(frames.FrameFormatError, frames.pack_header, 1, 0, "f4", 2, 2)
        self.assertRaises(frames.FrameFormatError, frames.message_bytes, "u1", 2, 2)


class BurstStateTests(unittest.SynchronousTestCase):
    def test_diagram_is_whole(self):
        """Every state has its entry in TRANSITIONS and is reachable from ARMING; only DISCARDED is final."""
        self.assertEqual(set(TRANSITIONS), set(BurstState))
        reached, frontier = {BurstState.ARMING}, [BurstState.ARMING]
        while frontier:
            for new in TRANSITIONS[frontier.pop()]:
                if new not in reached:
                    reached.add(new)
                    frontier.append(new)
        self.assertEqual(reached, set(BurstState))
        self.assertEqual([s for s in BurstState if not TRANSITIONS[s]], [BurstState.DISCARDED])
        self.assertTrue(all(BurstState.DISCARDED in TRANSITIONS[s] for s in BurstState if s != BurstState.DISCARDED))

    def test_flags(self):
        """Only arming and capturing hold the camera; done and discarded bursts keep no frames for a reader."""
        self.assertEqual({s for s in BurstState if s.holds_camera}, {BurstState.ARMING, BurstState.CAPTURING})
        self.assertEqual({s for s in BurstState if not s.readable}, {BurstState.DONE, BurstState.DISCARDED})
        self.assertEqual([s.value for s in BurstState], ["arming", "capturing", "captured", "done", "failed",
                                                         "discarded"])

    def test_moves(self):
        """A lifecycle moves along the diagram and refuses any other move, naming both states."""
        life = Lifecycle()
        for state in (BurstState.CAPTURING, BurstState.CAPTURED, BurstState.DONE, BurstState.DISCARDED):
            self.assertTrue(life.can(state))
            life.to(state)
            self.assertIs(life.state, state)
        with self.assertRaises(IllegalTransition) as caught:
            life.to(BurstState.CAPTURING)
        self.assertEqual(str(caught.exception), "a burst cannot go from discarded to capturing")
        failed = Lifecycle(BurstState.CAPTURING)
        failed.to(BurstState.FAILED)
        self.assertRaises(IllegalTransition, failed.to, BurstState.CAPTURED)
        self.assertFalse(Lifecycle().can(BurstState.DONE))


class FrameTimingTests(unittest.SynchronousTestCase):
    def test_late_frames_and_rate(self):
        """A frame more than 1.5 periods after the previous one was late, by the interval less a period;
        the rate spans first to last frame; each frame's ticks are kept for the ledger."""
        timing = FrameTiming(tick_frequency=1000, frame_rate=10.0)  # 100 ticks a frame
        for ticks in (0, 100, 200, 349, 500, 700):  # 349 is 1.49 periods on, 500 is 1.51, 700 two
            timing.exposed(ticks)
        self.assertEqual(timing.late_frames, 2)
        self.assertAlmostEqual(timing.max_late_s, 0.1)
        self.assertEqual([timing.late_by(k, t) for k, t in enumerate(timing.ticks)], [0, 0, 0, 0, 0.051, 0.1])
        self.assertEqual(timing.fps_achieved(6), 5 * 1000 / 700)

    def test_triggered_frames_are_never_late(self):
        """In a triggered mode the triggers set the pace: long intervals are not lateness."""
        timing = FrameTiming(tick_frequency=1000, frame_rate=10.0, paced=False)
        for ticks in (0, 100, 900):
            timing.exposed(ticks)
        self.assertEqual(timing.late_frames, 0)

    def test_without_timestamps(self):
        """Frames without ticks, or a camera without a clock frequency, say nothing."""
        timing = FrameTiming(None, 10.0)
        for ticks in (0, 500, None):
            timing.exposed(ticks)
        self.assertEqual((timing.late_frames, timing.fps_achieved(3)), (0, None))
        self.assertEqual(list(timing.ticks), [0, 500, -1])
        self.assertIsNone(FrameTiming(1000, 10.0).fps_achieved(0))


class BurstStatusTests(unittest.SynchronousTestCase):
    def test_json(self):
        """The status is a JSON object with the fields of docs/streaming.md in order, the state by its label."""
        status = BurstStatus(id=3, state=BurstState.CAPTURED, frames=10, fps_requested=50, fps=49.9,
                             spool_capacity=10, captured=10, sent=4, acknowledged=2, spool_frames=8,
                             spool_bytes=800, high_water_frames=10, high_water_bytes=1000, late_frames=1,
                             max_late_s=0.02, lost_frames=0, took_s=0.2, fps_achieved=49.9, readers=1,
                             trigger_mode="Internal", waiting_for_trigger=False, error=None, message=None)
        value = status.to_json()
        self.assertEqual(list(value), ["id", "state", "frames", "fps_requested", "fps", "spool_capacity",
                                       "captured", "sent", "acknowledged", "spool_frames", "spool_bytes",
                                       "high_water_frames", "high_water_bytes", "late_frames", "max_late_s",
                                       "lost_frames", "took_s", "fps_achieved", "readers", "trigger_mode",
                                       "waiting_for_trigger", "error", "message", "timebase", "time_uncertainty_s",
                                       "plan", "settings", "recording", "bytes_sent", "owner"])
        self.assertEqual(value["state"], "captured")
        self.assertEqual(json.loads(json.dumps(value)), value)


class WindowTests(unittest.SynchronousTestCase):
    def test_size(self):
        """256 frames, fewer when they pass 32 MiB or the spool is smaller, never below one."""
        self.assertEqual(window.window_for(1000), window.WINDOW_FRAMES)
        self.assertEqual(window.window_for(window.WINDOW_BYTES // 3), 3)
        self.assertEqual(window.window_for(window.WINDOW_BYTES * 2), 1)
        self.assertEqual(window.window_for(1000, max_frames=5), 5)
        self.assertEqual([window.ack_every(n) for n in (1, 2, 3, 32)], [1, 1, 1, 16])

    def test_room_follows_sends_and_acks(self):
        """Room is the window less the frames in flight; an acknowledgement frees it and every frame before."""
        w = window.AckWindow(4, acknowledged=10)  # a reader resuming a burst at frame 10
        self.assertEqual((w.room, w.in_flight), (4, 0))
        w.sent_through(12)
        self.assertEqual((w.room, w.in_flight), (1, 3))
        self.assertEqual(w.acknowledge(11), 2)
        self.assertEqual((w.room, w.acknowledged), (3, 12))
        self.assertEqual(w.acknowledge(11), 0)  # acknowledged already: changes nothing
        self.assertEqual(w.acknowledge(5), 0)
        w.sent_through(15)
        self.assertEqual(w.room, 0)
        self.assertRaises(ValueError, w.sent_through, 16)  # past the window
        self.assertRaises(ValueError, w.sent_through, 14)  # sent before

    def test_ack_of_a_frame_not_sent(self):
        """Acknowledging a frame not sent yet (or a negative one) is a protocol violation."""
        w = window.AckWindow(4)
        with self.assertRaises(window.AckOutOfRange) as caught:
            w.acknowledge(0)
        self.assertIn("no frame was sent", str(caught.exception))
        w.sent_through(2)
        for bad in (3, 100, -1):
            with self.assertRaises(messages.ProtocolViolation) as caught:
                w.acknowledge(bad)
            self.assertIn(f"frame {bad}, but frames up to 2 were sent", str(caught.exception))
        self.assertEqual(w.acknowledged, 0)
        self.assertRaises(ValueError, window.AckWindow, 0)


class MessageTests(unittest.SynchronousTestCase):
    def test_burst_reader(self):
        """A burst reader sends {"ack": n} with an integer n; anything else is a violation saying so."""
        self.assertEqual(messages.parse_burst_reader(b'{"ack": 7}'), 7)
        for bad in (b'{"ack": "7"}', b'{"ack": true}', b'{"ack": 1.5}', b'{"nack": 1}', b"[7]", b"not json",
                    b"\xff"):
            with self.assertRaises(messages.ProtocolViolation) as caught:
                messages.parse_burst_reader(bad)
            self.assertEqual(str(caught.exception), messages.BURST_READER_SENDS, bad)
            self.assertEqual(caught.exception.close_code, 4400)

    def test_viewer(self):
        """A viewer acknowledges (any frame number) or gives its display size as two integers."""
        self.assertEqual(messages.parse_viewer(b'{"ack": 12345678901234567890}'),
                         messages.Ack(12345678901234567890))
        self.assertEqual(messages.parse_viewer(b'{"display": [640, 480.0]}'), messages.Display(640, 480))
        for bad in (b'{"display": [1]}', b'{"display": "12"}', b'{"size": 1}', b'"ack"', b"{"):
            self.assertRaises(messages.ProtocolViolation, messages.parse_viewer, bad)

    def test_hostile_messages(self):
        """Infinity, NaN, huge, fractional, negative or boolean numbers, deep nesting, extra keys and binary
        messages are violations (close code 4400), never another exception."""
        for bad in (b'{"display": [Infinity, 1]}', b'{"display": [NaN, 1]}', b'{"display": [1e400, 1]}',
                    b'{"display": [0, 1]}', b'{"display": [1, 100000]}', b'{"display": [1.5, 2]}',
                    b'{"display": [true, 2]}', b'{"ack": -1}', b'{"ack": 1' + b"0" * 30 + b"}",
                    b'{"ack": Infinity}', b'{"ack": 1, "more": 2}', b"[" * 5000 + b"]" * 5000, b'{"ack": [[[1]]]}'):
            with self.assertRaises(messages.ProtocolViolation, msg=bad) as caught:
                messages.parse_viewer(bad)
            self.assertEqual(caught.exception.close_code, 4400)
            self.assertRaises(messages.ProtocolViolation, messages.parse_burst_reader, bad)
        self.assertRaises(messages.ProtocolViolation, messages.parse_burst_reader, b'{"ack": 1}', True)
        self.assertRaises(messages.ProtocolViolation, messages.parse_viewer, b'{"ack": 1}', True)

    def test_server_messages(self):
        """What the server sends, as docs/streaming.md lists it; values JSON cannot hold become strings."""
        self.assertEqual(json.loads(messages.encode(messages.stream(3, 100, 16))),
                         {"type": "stream", "burst": 3, "frames": 100, "window": 16})
        self.assertEqual(messages.error("sdk_error", "link lost", {"sdk_error": "AT_ERR_COMM"}),
                         {"type": "error", "error": "sdk_error", "message": "link lost", "sdk_error": "AT_ERR_COMM"})
        self.assertEqual(messages.paused("burst 1 is capturing"), {"type": "paused", "reason": "burst 1 is capturing"})
        self.assertEqual(json.loads(messages.encode({"x": b"y"})), {"x": "b'y'"})
