"""Burst frames from a spool to a connection, within the reader's acknowledgement window.

Beneath the window the transport gets frames only once it has sent what it had (``FrameSender`` is a
pull producer, and a write the socket took whole leaves it free at once), so a slow reader slows only
the spool's drain. Frames already spooled go out together, up to BATCH_BYTES, since a write and a
reactor pass per frame cost more than a small frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IPullProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from andor_twisted import gather
from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.acquisition.contracts import FrameSource
from andor_twisted.protocol.window import AckWindow
from andor_twisted.stream.framing import burst_parts

BATCH_BYTES = 4 * 1024 * 1024  # frames already spooled go to the transport together, up to this (or one frame)
SMALL_FRAME_BYTES = 64 * 1024  # frames this small are sent within the reactor pass that has them (see _send)


@implementer(IPullProducer)
class FrameSender:
    """Moves frames from ``spool`` to ``transport`` within ``window``. Each time the transport has sent
    everything, the frames spooled by then (up to BATCH_BYTES) go out in one write.

    Acknowledgements come in through ``acknowledge``: checked against the window (an acknowledgement of
    a frame not sent raises ``AckOutOfRange``), then passed on to ``acknowledged`` (the burst's).
    ``on_end(error)`` is called once the spool has no more frames: with None after the last frame of a
    finished burst, or with the exception that ended it.
    """

    def __init__(self, transport: Any, spool: FrameSource, on_end: Callable[[BaseException | None], None],
                 window: AckWindow, acknowledged: Callable[[int], None]) -> None:
        self.transport = transport
        self.write = gather.frame_writer(transport)
        self.spool = spool
        self.on_end = on_end
        self.window = window
        self.acknowledged = acknowledged
        self._transport_ready = False
        self._waiting: defer.Deferred[BurstFrame | None] | None = None  # spool.next() not yet fired
        self._done = False

    def start(self) -> None:
        self.transport.registerProducer(self, False)  # a pull producer: asked for data at once

    def resumeProducing(self) -> None:
        """The transport has sent everything it had."""
        self._transport_ready = True
        self.pump()

    def stopProducing(self) -> None:
        self.stop()

    def stop(self) -> None:
        self._done = True
        if self._waiting is not None:
            self._waiting.cancel()

    def acknowledge(self, frame_number: int) -> None:
        """The reader has ``frame_number`` and every frame before it."""
        self.window.acknowledge(frame_number)
        self.acknowledged(frame_number)
        self.pump()

    def pump(self) -> None:
        """While the transport is idle and the window has room: send the frames spooled, or wait for one."""
        while not self._done and self._waiting is None and self._transport_ready and self.window.room > 0:
            frames = self.spool.take(self.window.room, BATCH_BYTES)
            if not frames:
                self._waiting = self.spool.next()
                self._waiting.addCallbacks(self._next, self._failed)
                return
            self._send(frames)

    def _next(self, frame: BurstFrame | None) -> None:
        self._waiting = None
        if frame is None:
            self._end(None)
            return
        frames = [frame]
        if frame.nbytes < BATCH_BYTES and self.window.room > 1:  # and the others that came with it
            frames += self.spool.take(self.window.room - 1, BATCH_BYTES - frame.nbytes)
        self._send(frames)
        self.pump()

    def _send(self, frames: list[BurstFrame]) -> None:
        self.window.sent_through(frames[-1].frame_number)
        # small frames come and go faster than a reactor pass (a large one is better sent with whatever
        # else comes by the next pass)
        self._transport_ready = self.write(burst_parts(frames), frames[0].nbytes <= SMALL_FRAME_BYTES)

    def _failed(self, failure: Failure) -> None:
        self._waiting = None
        if not failure.check(defer.CancelledError):
            self._end(failure.value)

    def _end(self, error: BaseException | None) -> None:
        self._done = True
        self.on_end(error)
