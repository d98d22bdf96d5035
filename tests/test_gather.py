"""GatherWriter on a real loopback connection: frames sent from where they are, in the order written; and
the Twisted internals it relies on, checked on the installed Twisted against the versions declared."""

import importlib.metadata
import re
import socket

import numpy as np
import twisted
from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from andor_twisted import gather


class Collect(protocol.Protocol):
    def __init__(self):
        self.chunks = []
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        self.closed.callback(b"".join(self.chunks))


class Serve(protocol.Protocol):
    """Writes what ``script(transport, writer)`` writes, then closes."""

    def __init__(self, script):
        self.script = script

    def connectionMade(self):
        # a small send buffer: every frame takes many partial sends and writable events
        self.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        self.script(self.transport, gather.frame_writer(self.transport))
        self.transport.loseConnection()


class GatherWriterTests(unittest.TestCase):
    def received(self, make_server):
        """Everything a client receives from a server protocol ``make_server()``, once it closes."""
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(make_server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Collect()
        protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port.getHost().port)
        return client.closed

    @defer.inlineCallbacks
    def test_order_kept_across_both_paths(self):
        """A frame written onto an empty transport goes out at once from its own buffers, as far as the
        socket takes it; bytes written after it wait for the rest; a frame written behind those bytes
        joins them. Everything arrives once, in order."""
        one = np.arange(1_000_000, dtype="<u2")
        two = np.arange(500_000, dtype="<u2")[::-1].copy()
        seen = {}

        def script(transport, write):
            seen["sent whole"] = write((b"head-1", memoryview(one).cast("B")), True)
            seen["parts pending"] = len(write.__self__._parts)
            seen["copied into the transport"] = transport._tempDataLen
            transport.write(b"between")
            write((b"head-2", memoryview(two).cast("B")))
            transport.write(b"end")

        data = yield self.received(lambda: Serve(script))
        # the 8 KiB socket took the header and some pixels: the rest of the pixels wait, in place
        self.assertEqual(seen, {"sent whole": False, "parts pending": 1, "copied into the transport": 0})
        expected = b"head-1" + one.tobytes() + b"between" + b"head-2" + two.tobytes() + b"end"
        self.assertEqual(len(data), len(expected))
        self.assertTrue(data == expected)

    @defer.inlineCallbacks
    def test_small_frame_sent_at_once(self):
        """A frame the socket takes whole is sent within write(), which says so: the transport is free
        for more without waiting for the reactor's next pass."""
        frame = np.arange(4096, dtype="<u2")
        seen = {}

        def script(transport, write):
            transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            seen["sent whole"] = write((b"head", memoryview(frame).cast("B")), True)
            seen["parts pending"] = len(write.__self__._parts)
            seen["transport holds"] = len(transport.dataBuffer) + transport._tempDataLen

        data = yield self.received(lambda: Serve(script))
        self.assertEqual(seen, {"sent whole": True, "parts pending": 0, "transport holds": 0})
        self.assertTrue(data == b"head" + frame.tobytes())

    @defer.inlineCallbacks
    def test_producer_resumed_after_the_parts(self):
        """A pull producer is asked for more only once a frame's parts have all gone out."""
        frames = [np.full(300_000, n, "<u2") for n in range(3)]

        class Frames:
            def __init__(self, transport, write):
                self.transport, self.write, self.sent = transport, write, 0

            def resumeProducing(self):
                if self.sent == len(frames):
                    self.transport.unregisterProducer()
                    self.transport.loseConnection()
                    return
                assert not self.write.__self__._parts, "asked for more while parts are unsent"
                self.write((b"h", memoryview(frames[self.sent]).cast("B")))
                self.sent += 1

            def stopProducing(self):
                pass

        class Pull(Serve):
            def connectionMade(self):
                self.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
                self.transport.registerProducer(Frames(self.transport, gather.frame_writer(self.transport)), False)

        data = yield self.received(lambda: Pull(None))
        self.assertTrue(data == b"".join(b"h" + f.tobytes() for f in frames))


def declared_twisted():
    """The Twisted requirement of the installed andor-twisted, such as 'twisted<27,>=23.10'."""
    return next(r for r in importlib.metadata.requires("andor-twisted") if re.match(r"(?i)twisted\b", r))


def satisfies(version, requirement):
    """Whether ``version`` ('26.10.0') meets every clause of ``requirement`` ('twisted<27,>=23.10')."""
    def numbers(text):
        return tuple(int(n) for n in re.findall(r"\d+", text)[:3])

    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           "==": lambda a, b: a == b}
    clauses = re.findall(r"(>=|<=|==|<|>)\s*([\d.]+)", requirement)
    have = numbers(version)
    return bool(clauses) and all(ops[op](have, numbers(bound) + (0,) * (3 - len(numbers(bound))))
                                 for op, bound in clauses)


class TwistedInternalsTests(unittest.TestCase):
    """gather.py reads FileDescriptor's private buffer and replaces doWrite. These tests fail loudly, naming
    the Twisted version, when a Twisted release changes what it relies on."""

    def why(self, what):
        return (f"Twisted {twisted.__version__}: {what}. gather.GatherWriter relies on it; andor-twisted is tested "
                f"on {declared_twisted()} (pyproject.toml). Check gather.py against this Twisted's "
                f"twisted/internet/abstract.py before allowing it.")

    def test_declared_range(self):
        """The installed Twisted is one of the versions pyproject.toml declares andor-twisted tested on."""
        self.assertTrue(satisfies(twisted.__version__, declared_twisted()),
                        self.why("not within the declared range"))
        self.assertTrue(satisfies("26.10.0", "twisted<27,>=23.10"))
        self.assertFalse(satisfies("27.1.0", "twisted<27,>=23.10"))
        self.assertFalse(satisfies("23.8.0", "twisted<27,>=23.10"))

    @defer.inlineCallbacks
    def test_transport_internals(self):
        """A TCP transport has every attribute of gather.INTERNALS; write() queues bytes in _tempDataLen
        without touching dataBuffer/offset; and doWrite() with nothing left to send stops writing and asks
        a pull producer for more (what GatherWriter.doWrite hands over to once its parts are out)."""
        seen = {}

        class Producer:
            resumed = 0

            def resumeProducing(self):
                self.resumed += 1

            def stopProducing(self):
                pass

        def script(transport, write):
            seen["missing"] = gather.missing_internals(transport)
            if seen["missing"]:
                return
            seen["empty"] = (transport.dataBuffer, transport.offset, transport._tempDataLen)
            transport.write(b"abc")
            seen["queued"] = (len(transport.dataBuffer) - transport.offset, transport._tempDataLen)
            transport.doWrite()  # sends it
            producer = Producer()
            transport.registerProducer(producer, False)  # a pull producer is asked at once ...
            transport.startWriting()
            seen["nothing to send"] = transport.doWrite()
            seen["resumed"] = producer.resumed  # ... and again by doWrite with nothing to send
            seen["still writing"] = transport in reactor.getWriters()
            transport.unregisterProducer()
            seen["send limit"] = type(transport).SEND_LIMIT

        data = yield self.received(lambda: Serve(script))
        self.assertEqual(seen["missing"], [], self.why(f"its TCP transports have no {seen['missing']}"))
        self.assertEqual(seen["empty"], (b"", 0, 0), self.why("a new transport's buffers are not empty"))
        self.assertEqual(seen["queued"], (0, 3), self.why("write() does not queue into _tempDataLen"))
        self.assertIsNone(seen["nothing to send"], self.why("doWrite() with nothing to send returns something"))
        self.assertEqual(seen["resumed"], 2, self.why("doWrite() with nothing to send does not resume a pull "
                                                      "producer"))
        self.assertFalse(seen["still writing"], self.why("doWrite() with nothing to send does not stop writing"))
        self.assertIsInstance(seen["send limit"], int, self.why("FileDescriptor has no SEND_LIMIT"))
        self.assertEqual(data, b"abc")

    def received(self, make_server):
        return GatherWriterTests.received(self, make_server)
