"""The streams against misbehaving readers, on a real loopback server: every violation ends with a valid
close code and a reason, never a traceback; the server closes after the end or an error and sends
nothing after its Close; a reader that vanished is noticed by pings; one reader per burst (issue 11)."""

import json
import struct

import websocket
from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

import andor
from tests.helpers import LoopbackServer

OP_CLOSE = websocket.ABNF.OPCODE_CLOSE


class HygieneFixture(unittest.TestCase):
    args = ()

    @defer.inlineCallbacks
    def setUp(self):
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.server = LoopbackServer()
        yield self.server.start(*self.args)
        self.cam = self.server.cam
        yield threads.deferToThread(self.cam.aoi, {"width": 64, "height": 64})
        yield threads.deferToThread(self.cam.exposure_time, 0.001)

    def tearDown(self):
        errors = [e for e in self.events if e["log_level"] >= LogLevel.error]
        self.assertEqual(errors, [], "nothing worse than a warning is logged")
        return self.server.stop()

    def url(self, path):
        return f"ws://{self.server.address}{path}"

    def until_close(self, ws):
        """Every message up to the server's Close: ([(opcode, data)], close code, reason)."""
        seen = []
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                return seen, code, data[2:].decode()
            seen.append((opcode, data))

    def exchange(self, path, *sends, binary=False, first=True):
        """In a thread: open ``path``, read its first message (if ``first``), send each of ``sends``; the
        messages up to the Close, its code and reason."""

        def run():
            ws = websocket.create_connection(self.url(path), timeout=10)
            try:
                if first:
                    ws.recv()
                for message in sends:
                    if binary:
                        ws.send_binary(message.encode() if isinstance(message, str) else message)
                    else:
                        ws.send(message)
                return self.until_close(ws)
            finally:
                ws.close()

        return threads.deferToThread(run)

    def handshake_status(self, path):
        def run():
            try:
                websocket.create_connection(self.url(path), timeout=10).close()
            except websocket.WebSocketBadStatusException as e:
                return e.status_code, str(e)
            return "open", ""

        return threads.deferToThread(run)


class BurstStreamHygieneTests(HygieneFixture):
    @defer.inlineCallbacks
    def test_violations_close_with_reason(self):
        """A binary ack, an ack out of range, Infinity, and deep nesting each close the stream with 4400
        and a reason; the burst keeps its frames for the next reader."""
        frames = yield threads.deferToThread(self.cam.burst, 40, 200.0)
        yield self.server.bursts.current.when_captured()
        path = f"/stream/burst?id={frames.id}"
        for sends, binary, words in (([json.dumps({"ack": 0})], True, "text message"),
                                     (['{"ack": 1' + "0" * 30 + "}"], False, "ack"),
                                     (['{"ack": Infinity}'], False, "ack"),
                                     (["[" * 10000 + "]" * 10000], False, "ack"),
                                     ([json.dumps({"ack": 2 ** 40})], False, "acknowledged frame 1099511627776")):
            _, code, reason = yield self.exchange(path, *sends, binary=binary)
            self.assertEqual(code, 4400, sends)
            self.assertIn(words, reason, sends)
        images = yield threads.deferToThread(list, frames)
        self.assertEqual(len(images), 40)

    @defer.inlineCallbacks
    def test_closes_after_end(self):
        """After the end message the server sends its Close (1000) and nothing after it."""
        frames = yield threads.deferToThread(self.cam.burst, 3, 200.0)

        def read():
            ws = websocket.create_connection(self.url(f"/stream/burst?id={frames.id}"), timeout=10)
            try:
                messages = []
                while True:
                    opcode, data = ws.recv_data(control_frame=True)
                    messages.append((opcode, data))
                    if opcode == websocket.ABNF.OPCODE_BINARY:
                        number = struct.unpack_from("<Q", data, 16)[0]
                        ws.send(json.dumps({"ack": number}))
                    if opcode == OP_CLOSE:
                        ws.sock.settimeout(2)
                        try:
                            rest = ws.sock.recv(65536)  # the server closes TCP after the handshake: nothing more
                        except ConnectionResetError:
                            rest = b""
                        return messages, rest
            finally:
                ws.close()

        messages, rest = yield threads.deferToThread(read)
        kinds = [opcode for opcode, _ in messages]
        self.assertEqual(kinds, [1, 2, 2, 2, 1, OP_CLOSE])
        self.assertEqual(json.loads(messages[-2][1])["type"], "end")
        self.assertEqual(struct.unpack("!H", messages[-1][1][:2])[0], 1000)
        self.assertEqual(rest, b"")

    @defer.inlineCallbacks
    def test_gone_burst_closes_with_error(self):
        """A stream of a burst that is not there: the error message, then Close 4410 with the reason."""
        frames = yield threads.deferToThread(self.cam.burst, 3, 200.0)
        seen, code, reason = yield self.exchange(f"/stream/burst?id={frames.id + 5}", first=False)
        self.assertEqual(json.loads(seen[0][1])["error"], "no_such_burst")
        self.assertEqual(code, 4410)
        self.assertIn("no such burst", reason)

    @defer.inlineCallbacks
    def test_second_reader_refused(self):
        """While one reader holds a burst, a second is refused with a clear error the client raises, and the
        first one's frames are untouched."""
        frames = yield threads.deferToThread(self.cam.burst, 20, 200.0)
        first = yield threads.deferToThread(lambda: [next(frames) for _ in range(2)])
        second = yield threads.deferToThread(self.cam.resume_burst)
        with self.assertRaises(andor.CameraBusy) as caught:
            yield threads.deferToThread(next, second)
        self.assertEqual(caught.exception.code, "burst_has_reader")
        self.assertIn("already has a reader", str(caught.exception))
        rest = yield threads.deferToThread(list, frames)
        self.assertEqual(len(first) + len(rest), 20)
        self.assertEqual(frames.frame_numbers.tolist(), list(range(20)))

    @defer.inlineCallbacks
    def test_bad_handshakes(self):
        """Unknown, repeated, malformed or out-of-range query parameters are refused at the handshake (400)."""
        for path, words in (("/stream/burst", "id=N"), ("/stream/burst?id=abc", "whole number"),
                            ("/stream/burst?id=1&id=2", "once"), ("/stream/burst?id=99999999999", "whole number"),
                            ("/stream/burst?id=1&who=me", "'who'"), ("/stream/live?width=Infinity", "width"),
                            ("/stream/live?width=0&height=5", "width"), ("/stream/live?w=5", "'w'")):
            status, body = yield self.handshake_status(path)
            self.assertEqual(status, 400, path)
            self.assertIn(words, body, path)


class LiveStreamHygieneTests(HygieneFixture):
    @defer.inlineCallbacks
    def test_violations_close_with_reason(self):
        """Display requests holding Infinity, zero or huge sizes, binary messages, and acks of frames not
        sent close the live stream with 4400 and a reason."""
        for sends, binary, words in ((['{"display": [Infinity, 100]}'], False, "display"),
                                     (['{"display": [0, 100]}'], False, "1 to 16384"),
                                     (['{"display": [1, 1e400]}'], False, "display"),
                                     (['{"ack": 0}'], True, "text message"),
                                     (['{"ack": 123456789}'], False, "acknowledged frame 123456789")):
            _, code, reason = yield self.exchange("/stream/live?width=64&height=64", *sends, binary=binary,
                                                  first=False)
            self.assertEqual(code, 4400, sends)
            self.assertIn(words, reason, sends)
        yield self.server.live.when_stopped() if hasattr(self.server.live, "when_stopped") else None
        self.assertEqual(self.server.live.viewers, [])


class VanishedReaderTests(HygieneFixture):
    args = ("--ping-interval", "1", "--ping-timeout", "1")  # autobahn batches its timers in 0.2 s buckets

    @defer.inlineCallbacks
    def test_vanished_reader_noticed(self):
        """A reader that stops answering (pings unanswered) is dropped within the ping timeout, and its
        burst becomes readable again from the first frame it did not acknowledge."""
        frames = yield threads.deferToThread(self.cam.burst, 10, 200.0)
        detached = defer.Deferred()
        bursts = self.server.bursts
        original = bursts.reader_detached

        def reader_detached(burst):
            original(burst)
            if not detached.called:
                detached.callback(burst)

        bursts.reader_detached = reader_detached
        ws = yield threads.deferToThread(websocket.create_connection, self.url(f"/stream/burst?id={frames.id}"),
                                         timeout=10)
        self.addCleanup(ws.shutdown)
        burst = yield detached  # never read, never answered a ping
        self.assertEqual(burst.readers, 0)
        images = yield threads.deferToThread(list, frames)
        self.assertEqual(len(images), 10)


class ClosingHandshakeTests(unittest.SynchronousTestCase):
    """The frame sender writes to the transport itself, past autobahn's state: it must stop when the
    closing handshake starts, whoever starts it, not only when TCP is gone."""

    def protocol(self):
        from twisted.internet.testing import StringTransport

        from andor_twisted.stream.protocols import BurstStreamProtocol, stream_resource

        resource = stream_resource(BurstStreamProtocol, clock=Clock(), bursts=None)
        protocol = resource._factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.state = protocol.STATE_OPEN  # as after the handshake
        stopped = []
        protocol.sender = type("Sender", (), {"stop": lambda self: stopped.append(True)})()
        return protocol, stopped

    def test_our_close_stops_the_frames(self):
        """The server's own Close (a violation, the end, an error) stops the sender before the Close goes out."""
        protocol, stopped = self.protocol()
        protocol.close(4400, "a reader sends acks")
        self.assertEqual(stopped, [True])
        self.assertEqual(protocol.state, protocol.STATE_CLOSING)
        written = protocol.transport.value()
        self.assertEqual(written[-len("a reader sends acks") - 4:-len("a reader sends acks")], b"\x88\x15\x11\x30")

    def test_reply_to_their_close_stops_the_frames(self):
        """The reply to the reader's Close stops the sender too."""
        protocol, stopped = self.protocol()
        protocol.sendCloseFrame(1000, None, isReply=True)
        self.assertEqual(stopped, [True])


class PausingReaderTests(HygieneFixture):
    args = ("--ping-interval", "1", "--ping-timeout", "1")

    @defer.inlineCallbacks
    def test_reader_that_pauses_reads_on(self):
        """A reader that stops reading past the ping timeout is dropped by the server; the client opens the
        stream again and reads on from the first frame it had not read: every frame once, in order."""
        frames = yield threads.deferToThread(self.cam.burst, 40, 200.0)
        yield self.server.bursts.current.when_captured()
        original = self.server.bursts.reader_detached
        first = yield threads.deferToThread(lambda: [next(frames) for _ in range(5)])
        dropped = defer.Deferred()

        def detached(burst):
            original(burst)
            if not dropped.called:
                dropped.callback(None)

        self.server.bursts.reader_detached = detached
        yield dropped  # the server gave up on the paused reader
        rest = yield threads.deferToThread(list, frames)
        self.assertEqual(len(first) + len(rest), 40)
        self.assertEqual(frames.frame_numbers.tolist(), list(range(40)))
        self.assertEqual(frames.summary["acknowledged"], 40)
