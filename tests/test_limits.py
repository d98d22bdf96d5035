"""Bounded resources: connection caps per peer and in all (503), header and idle timeouts, and bodies over
the limit refused before they are read (issue 11)."""

import json
import socket

import websocket
from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web import resource

from andor_twisted.web import limits
from andor_twisted.web.site import Site
from tests.helpers import LoopbackServer


def answer_of(data):
    """(status, JSON body) of a raw HTTP response."""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else None


class LimitsTestCase(unittest.TestCase):
    args = ()

    @defer.inlineCallbacks
    def setUp(self):
        self.server = LoopbackServer()
        yield self.server.start(*self.args)
        self.site = self.server.top.getServiceNamed("listen 0").factory
        self.host, port = self.server.address.split(":")
        self.port = int(port)
        self.releases = []
        admit = self.site.limits.admit

        def counted_admit(peer):
            release = admit(peer)
            if callable(release):
                def counted_release():
                    release()
                    waiting, self.releases = self.releases, []
                    for d in waiting:
                        d.callback(None)
                counted_release.holds = release.holds
                return counted_release
            return release

        self.site.limits.admit = counted_admit

    def tearDown(self):
        return self.server.stop()

    def released(self):
        """Fires once the server has let go of a connection."""
        d = defer.Deferred()
        self.releases.append(d)
        return d

    def connect(self):
        sock = socket.create_connection((self.host, self.port), timeout=10)
        self.addCleanup(sock.close)
        return sock

    def exchange(self, sock, data):
        """Send ``data`` on ``sock`` (in a thread) and read until the server closes."""

        def run():
            if data:
                sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

        return threads.deferToThread(run)


class PerPeerTests(LimitsTestCase):
    args = ("--max-connections-per-peer", "3")

    @defer.inlineCallbacks
    def test_cap_per_peer(self):
        """A peer's connections beyond the cap are answered 503 naming the cap; once one closes, another
        is let in; WebSocket streams count, and free their place when they end."""
        ws = yield threads.deferToThread(websocket.create_connection,
                                         f"ws://{self.server.address}/stream/live?width=8&height=8", timeout=10)
        held = [self.connect(), self.connect()]
        data = yield self.exchange(self.connect(), b"GET /api/temperature HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, body = answer_of(data)
        self.assertEqual((status, body["error"]), (503, "too_many_connections"))
        self.assertIn("3 connections open", body["message"])
        gone = self.released()
        ws.close()
        yield gone
        data = yield self.exchange(self.connect(), b"GET /api/temperature HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                   b"Connection: close\r\n\r\n")
        self.assertEqual(answer_of(data)[0], 200)
        self.assertEqual(len(held), 2)


class TotalTests(LimitsTestCase):
    args = ("--max-connections", "2")

    @defer.inlineCallbacks
    def test_cap_in_all(self):
        """Beyond the total cap every new connection is answered 503."""
        self.connect(), self.connect()
        data = yield self.exchange(self.connect(), b"")
        status, body = answer_of(data)
        self.assertEqual(status, 503)
        self.assertIn("most connections (2)", body["message"])


class BodyTests(LimitsTestCase):
    @defer.inlineCallbacks
    def test_declared_length_over_limit(self):
        """A Content-Length over the limit is answered 413 at once, without the body being sent."""
        data = yield self.exchange(self.connect(), b"PUT /api/exposure_time HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                   b"Content-Type: application/json\r\n"
                                                   b"Content-Length: 10000000000\r\n\r\n")
        status, body = answer_of(data)
        self.assertEqual((status, body["error"]), (413, "body_too_large"))
        self.assertIn("10000000000 bytes", body["message"])

    @defer.inlineCallbacks
    def test_chunked_body_over_limit(self):
        """A chunked body is refused as soon as it passes the limit."""
        chunk = b"x" * 40000
        data = yield self.exchange(self.connect(), b"PUT /api/exposure_time HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                   b"Content-Type: application/json\r\n"
                                                   b"Transfer-Encoding: chunked\r\n\r\n" +
                                   (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3)
        self.assertEqual(answer_of(data)[0], 413)
        self.assertEqual(self.site.timeOut, 60.0)  # the idle timeout, not twisted.web's 12 hours


class HeaderTimeoutTests(unittest.TestCase):
    def channel(self):
        clock = Clock()
        site = Site(resource.NoResource(), timeout=60, reactor=clock)
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport, clock

    def test_slow_headers_closed(self):
        """A client that trickles its request line and headers is answered 408 and closed after the header
        timeout, although each byte resets the idle timeout."""
        channel, transport, clock = self.channel()
        for _ in range(9):
            channel.dataReceived(b"G")
            clock.advance(1)
        self.assertEqual(transport.value(), b"")
        clock.advance(1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 "))
        self.assertTrue(transport.disconnecting)

    def test_headers_in_time(self):
        """Headers that arrive in time cancel the header timeout."""
        channel, transport, clock = self.channel()
        channel.dataReceived(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        clock.advance(limits.HEADER_TIMEOUT + 1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404 "))
        self.assertNotIn(b"408", transport.value())
        self.assertFalse(transport.disconnecting)  # kept alive: the idle timeout applies between requests
        channel.dataReceived(b"GET /again HTTP/1.1\r\n")
        clock.advance(limits.HEADER_TIMEOUT)
        self.assertIn(b"HTTP/1.1 408 ", transport.value())
