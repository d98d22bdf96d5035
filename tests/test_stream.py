"""GatherWriter on a real loopback connection: frames sent from where they are, in the order written."""

import socket

import numpy as np
from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from andor_twisted.web import stream


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
        self.script(self.transport, stream.frame_writer(self.transport))
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
        """A frame written onto an empty transport goes out from its own buffers; bytes written after
        it wait for it; a frame written behind those bytes joins them. Everything arrives once, in order."""
        one = np.arange(1_000_000, dtype="<u2")
        two = np.arange(500_000, dtype="<u2")[::-1].copy()
        seen = {}

        def script(transport, write):
            write((b"head-1", memoryview(one).cast("B")))
            seen["parts pending"] = len(write.__self__._parts)
            seen["copied into the transport"] = transport._tempDataLen
            transport.write(b"between")
            write((b"head-2", memoryview(two).cast("B")))
            transport.write(b"end")

        data = yield self.received(lambda: Serve(script))
        self.assertEqual(seen, {"parts pending": 2, "copied into the transport": 0})
        expected = b"head-1" + one.tobytes() + b"between" + b"head-2" + two.tobytes() + b"end"
        self.assertEqual(len(data), len(expected))
        self.assertTrue(data == expected)

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
                self.transport.registerProducer(Frames(self.transport, stream.frame_writer(self.transport)), False)

        data = yield self.received(lambda: Pull(None))
        self.assertTrue(data == b"".join(b"h" + f.tobytes() for f in frames))
