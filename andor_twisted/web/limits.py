"""Bounds on what clients can make the server hold: connections, time, and request bodies.

Why: every connection costs a file descriptor (1,024 by default; systemd/andor.service raises it) and
some memory, and twisted.web's defaults are generous (12 h of idleness, a body of any size spooled to a
temporary file). Here a peer may hold at most ``per_peer`` connections and everyone ``total``, and one
over the cap is answered 503 at once; a connection must send its request headers within
``header_timeout`` seconds and is closed after ``idle_timeout`` seconds without a request; a body over
MAX_BODY_BYTES is refused (413) as soon as its length is known, before it is read.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server

MAX_BODY_BYTES = 64 * 1024  # the API's bodies are small JSON
HEADER_TIMEOUT = 10.0  # seconds for a request's line and headers to arrive (slow-loris clients)
IDLE_TIMEOUT = 60.0  # seconds a connection may sit without a request (twisted.web's default: 12 h)
MAX_CONNECTIONS = 512  # in all, below LimitNOFILE (4096 in systemd/andor.service) with room for the SDK's files
MAX_CONNECTIONS_PER_PEER = 64  # a browser opens 6 per server, and a script a few: 64 leaves plenty


def raw_response(status: int, reason: str, code: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response with a JSON error body, for answering below twisted.web's Request."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}",
            "Connection: close", *(f"{name}: {value}" for name, value in (headers or {}).items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Refuser(protocol.Protocol):
    """Answers a connection over the cap with 503 and closes it."""

    def __init__(self, message: str) -> None:
        self.message = message

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(raw_response(503, "Service Unavailable", "too_many_connections", self.message,
                                     {"Retry-After": "5"}))
        transport.loseConnection()


class LimitedChannel(http.HTTPChannel):
    """An HTTPChannel with a header timeout, and a ``release`` for its place under the connection caps
    that runs once, when the connection ends, whoever has it by then (a WebSocket takes it over)."""

    header_timeout = HEADER_TIMEOUT
    release: Callable[[], None] = staticmethod(lambda: None)
    _header_call: Any = None
    _between_requests = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.holds(self.transport)
        self._await_headers()

    def holds(self, transport: Any) -> None:
        """Set by the site: the connection's transport, for ConnectionLimits.close_all."""

    def _await_headers(self) -> None:
        self._header_call = self.callLater(self.header_timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_call = None
        transport: Any = self.transport
        if transport is not None:
            transport.write(raw_response(408, "Request Timeout", "request_timeout",
                                         f"the request's headers did not come within {self.header_timeout:g} s"))
            transport.loseConnection()

    def _cancel_header_timer(self) -> None:
        if self._header_call is not None and self._header_call.active():
            self._header_call.cancel()
        self._header_call = None

    def allHeadersReceived(self) -> None:
        self._cancel_header_timer()
        super().allHeadersReceived()

    def requestDone(self, request: http.Request) -> None:
        super().requestDone(request)
        self._between_requests = True  # a kept-alive connection: the idle timeout applies until the next byte

    def dataReceived(self, data: bytes) -> None:
        if self._between_requests:
            self._between_requests = False
            if self._header_call is None:
                self._await_headers()
        super().dataReceived(data)

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line or header longer than twisted.web takes: 431 instead of a silent close."""
        self._answer_and_close(431, "Request Header Fields Too Large", "header_too_large",
                               f"a request line or header is longer than {self.MAX_LENGTH} bytes")

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Malformed or oversized request lines and headers (twisted.web's checks): 400 with a JSON body."""
        self._answer_and_close(400, "Bad Request", "bad_request",
                               "the request line or headers are malformed, or there are more than "
                               f"{self.maxHeaders} headers or {self.totalHeadersSize} bytes of them")

    def _answer_and_close(self, status: int, reason: str, code: str, message: str) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.write(raw_response(status, reason, code, message))
            transport.loseConnection()

    def refuse_body(self, length: int | None) -> None:
        """A body over MAX_BODY_BYTES: answer 413 now and close, without reading it."""
        transport: Any = self.transport
        if transport is not None:
            said = f" ({length} bytes)" if length is not None else ""
            transport.write(raw_response(413, "Content Too Large", "body_too_large",
                                         f"request bodies are at most {MAX_BODY_BYTES} bytes{said}"))
            transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._cancel_header_timer()
        super().connectionLost(reason)
        self.release()


class LimitedRequest(server.Request):
    """A request whose body may not exceed MAX_BODY_BYTES: refused as soon as its length says so, or, for
    a chunked body, as soon as that many bytes came; never stored."""

    received = 0
    refused = False

    def gotLength(self, length: int | None) -> None:
        super().gotLength(length if length is None or length <= MAX_BODY_BYTES else 0)
        if length is not None and length > MAX_BODY_BYTES:
            self._refuse(length)

    def handleContentChunk(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > MAX_BODY_BYTES:
            self._refuse(None)
        elif not self.refused:
            super().handleContentChunk(data)

    def _refuse(self, length: int | None) -> None:
        if not self.refused:
            self.refused = True
            channel: Any = self.channel
            if isinstance(channel, LimitedChannel):
                channel.refuse_body(length)


class ConnectionLimits:
    """Counts open connections, in all and per peer address."""

    log = Logger()

    def __init__(self, total: int = MAX_CONNECTIONS, per_peer: int = MAX_CONNECTIONS_PER_PEER) -> None:
        self.total, self.per_peer = total, per_peer
        self.open = 0
        self.by_peer: collections.Counter[str] = collections.Counter()
        self.transports: set[Any] = set()
        self._idle: list[defer.Deferred[None]] = []

    def close_all(self) -> defer.Deferred[None]:
        """Abort every open connection (HTTP or a stream); fires once all are gone. Stopping to listen
        leaves open connections open: a server stopped in a process that goes on (tests) uses this."""
        for transport in list(self.transports):
            transport.abortConnection()
        if not self.open:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        return d

    def admit(self, peer: str) -> Callable[[], None] | str:
        """A release to call once the connection ends (its ``holds`` takes the transport to abort on
        close_all), or why it is refused."""
        if self.open >= self.total:
            why = f"the server has its most connections ({self.total}) open; try again shortly"
        elif self.by_peer[peer] >= self.per_peer:
            why = f"{peer} has {self.per_peer} connections open, the most one address may have"
        else:
            self.open += 1
            self.by_peer[peer] += 1
            held: list[Any] = []

            def release() -> None:
                if held != [None]:
                    self.transports.difference_update(held)
                    held[:] = [None]
                    self.open -= 1
                    self.by_peer[peer] -= 1
                    if not self.by_peer[peer]:
                        del self.by_peer[peer]
                    if not self.open:
                        waiting, self._idle = self._idle, []
                        for d in waiting:
                            d.callback(None)

            def holds(transport: Any) -> None:
                if held != [None]:
                    held.append(transport)
                    self.transports.add(transport)

            release.holds = holds  # type: ignore[attr-defined]
            return release
        self.log.warn("refused a connection from {peer}: {why}", peer=peer, why=why)
        return why
