"""Gathering sends on a Twisted TCP transport, and its tuning: the one module that touches Twisted's
internals.

``transport.write()`` takes one bytes object, but a burst frame is a header and pixels that sit in the
camera's buffer: joining an 11 MB frame costs more than sending it, and Twisted then copies the last
SEND_LIMIT of it again (``FileDescriptor.doWrite``). ``GatherWriter`` sends a frame's parts with one
``sendmsg()`` from where they are instead. To do so it reads ``FileDescriptor``'s private buffer
(``dataBuffer``, ``offset``, ``_tempDataLen``) and stands in front of the transport's ``doWrite``.
``INTERNALS`` lists what it relies on; ``missing_internals()`` checks a transport for it, and
``tests/test_gather.py`` fails loudly, naming the Twisted version, on a Twisted whose internals differ.
pyproject.toml declares the Twisted versions this is tested on.
"""

from __future__ import annotations

import collections
import errno
from collections.abc import Callable, Sequence
from typing import Any

import twisted
from twisted.internet import main, tcp
from twisted.logger import Logger

# bytes per send(). Twisted's 128 KiB takes 85 reactor passes per full frame; but once less than this is
# left of a frame, Twisted copies what is left (abstract.FileDescriptor.doWrite), so not much more.
SEND_LIMIT = 1024 * 1024

# what GatherWriter and tune() use of a twisted.internet.tcp.Connection beyond its interfaces
INTERNALS = ("dataBuffer", "offset", "_tempDataLen", "doWrite", "writeSomeData", "startWriting", "socket",
             "SEND_LIMIT", "disconnecting", "disconnected")

Part = bytes | memoryview
Writer = Callable[[Sequence[Part], bool], bool]  # (parts, at_once) -> True: all sent, the transport is free

log = Logger()


def missing_internals(transport: object) -> list[str]:
    """What of ``INTERNALS`` this transport lacks (an empty list on the Twisted versions we know)."""
    return [name for name in INTERNALS if not hasattr(transport, name)]


def tune(transport: Any) -> None:
    """For a connection that streams frames: TCP_NODELAY (an acknowledgement held back by Nagle's
    algorithm stalls the stream for a delayed ACK: autobahn's own attempt happens before its options
    are set) and a large per-send limit; and the connection leaves twisted.web's HTTP channel, which
    handed it over to the WebSocket protocol and still registers itself as its producer."""
    transport.setTcpNoDelay(True)
    transport.SEND_LIMIT = SEND_LIMIT
    transport.unregisterProducer()


def frame_writer(transport: Any) -> Writer:
    """How to write frames' parts to ``transport``: gathered from where they are on a TCP connection
    (``GatherWriter``), else joined into one bytes object for ``transport.write()``."""
    if isinstance(transport, tcp.Connection):
        missing = missing_internals(transport)
        if not missing:
            return GatherWriter(transport).write
        log.warn("Twisted {version} has no {missing} on its TCP transports: burst frames are joined before "
                 "sending (slower). andor-twisted is tested on the Twisted versions pyproject.toml declares.",
                 version=twisted.__version__, missing=", ".join(missing))
    def write(parts: Sequence[Part], at_once: bool = False) -> bool:
        transport.write(b"".join(parts))
        return False  # the transport says when it has sent it (resumeProducing)

    return write


class GatherWriter:
    """Sends frames' parts with one ``sendmsg()`` from where they are (the pixels in the camera's
    buffers).

    Asked to (``at_once``), it sends what the socket takes within ``write``: small frames then leave in
    the reactor pass that made them ready (an acknowledgement, frames off the camera), not in the next.
    The rest waits for the transport's own ``doWrite``, in front of which it stands; that still sends
    everything else (autobahn's messages) after the parts, and keeps its producer and close handling:
    called with nothing to send, it stops writing and asks a pull producer for more. A frame written
    while the transport's own buffer holds earlier bytes joins that buffer instead, so messages always
    leave in the order they were written.
    """

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self._parts: collections.deque[Part] = collections.deque()  # unsent bytes and byte memoryviews, in order
        self._transport_do_write: Callable[[], object] = transport.doWrite
        self._transport_write_some: Callable[[Any], object] = transport.writeSomeData
        transport.doWrite = self.doWrite
        transport.writeSomeData = self._write_some

    def write(self, parts: Sequence[Part], at_once: bool = False) -> bool:
        """Send ``parts`` (now, if ``at_once``: as far as the socket takes them). True if the socket took
        them all (and the transport holds nothing): more may be written at once."""
        transport = self.transport
        if (len(transport.dataBuffer) > transport.offset or transport._tempDataLen or transport.disconnecting
                or transport.disconnected):
            transport.write(b"".join(parts))
            return False
        self._parts.extend(parts)
        if at_once and self._send() is True:
            return True
        transport.startWriting()  # the rest (or the error) when the socket is writable
        return False

    def doWrite(self) -> object:
        """The socket is writable: our parts first, then whatever the transport holds."""
        done = self._send()
        return self._transport_do_write() if done is True else done

    def _send(self) -> object:
        """Send what the socket takes: True once every part is sent, else what ``doWrite`` returns
        (None: wait until the socket is writable; CONNECTION_LOST)."""
        while self._parts:
            try:
                sent = self.transport.socket.sendmsg(self._parts)
            except BlockingIOError:
                return None
            except OSError as e:
                return None if e.errno == errno.ENOBUFS else main.CONNECTION_LOST
            while sent:
                part = self._parts[0]
                if sent < len(part):
                    self._parts[0] = memoryview(part)[sent:]
                    return None  # the socket is full: wait until it is writable again
                sent -= len(part)
                self._parts.popleft()
        return True

    def _write_some(self, data: Any) -> object:
        """The transport's ``writeSomeData``, without the empty ``send()`` its ``doWrite`` makes when it has
        nothing of its own to send (after every batch of frames: a system call for nothing)."""
        return self._transport_write_some(data) if len(data) else 0
