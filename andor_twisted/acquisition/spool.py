"""The burst spool: a FIFO of frames between the camera and the reader, bounded in frames.

A frame enters when it is off the camera (``put``), waits for the reader, is sent (``take``, ``next``)
and is freed when the reader acknowledges it (``acknowledge``). The capacity bounds the frames
waiting: a frame sent and not yet acknowledged is in flight, bounded by the reader's acknowledgement
window (``protocol.window``), as the original server's frames in its sockets were. So a spool of one
frame still streams at the reader's pace, not at one round trip per frame, and the server holds at
most the capacity plus the window. Nothing polls: the capture waits on ``room()``, the reader on
``next()``. Memory is taken frame by frame as frames arrive and given back as they are acknowledged,
never reserved up front. A frame's pixels may still be in the camera's buffer (``frame.buffer``): an
acknowledgement hands that buffer to ``give_back``.

A spool may also hold back up to ``hold`` frames beyond its capacity: frames the camera has already
put in host memory (in the buffers it was given), taken off it early. The reader cannot have them;
each enters the spool the moment a frame leaves for the reader, so that a small spool refills at
once, without waiting for a trip to the camera.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import numpy as np
from twisted.internet import defer

from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.protocol.window import WINDOW_FRAMES


def _drop(buffer: np.ndarray) -> None:
    pass


class Spool:
    max_window = WINDOW_FRAMES  # a reader's window is bounded by the frames' size alone (``window_for``)

    def __init__(self, capacity: int, give_back: Callable[[np.ndarray], None] = _drop,
                 on_acknowledged: Callable[[int], None] | None = None, hold: int = 0) -> None:
        self.capacity = capacity  # frames it may hold waiting for the reader (those in flight are the window's)
        self.hold = hold  # frames it may hold back beyond that, until there is room
        self.give_back = give_back
        self.on_acknowledged = on_acknowledged  # told how many frames are acknowledged, before any waiter
        self._unsent: collections.deque[BurstFrame] = collections.deque()
        self._in_flight: collections.deque[BurstFrame] = collections.deque()
        self._held: collections.deque[BurstFrame] = collections.deque()  # put beyond capacity: not for the reader yet
        self.bytes = 0
        self.in_flight_bytes = 0
        self.high_water_frames = 0
        self.high_water_bytes = 0
        self.captured = 0  # frames put (held back ones too)
        self.sent = 0  # distinct frames handed to a reader (a frame sent again after a reconnect counts once)
        self.acknowledged = 0  # frames acknowledged, which are frames 0 .. acknowledged - 1
        self.bytes_sent = 0  # frame bytes handed to readers, a frame sent again counting again
        self._room: defer.Deferred[None] | None = None  # the capture's Deferred waiting for room
        self._room_for = 1  # ... for this many frames
        self._reader: defer.Deferred[BurstFrame | None] | None = None  # the reader's Deferred waiting for a frame
        self._end: BaseException | None = None  # once no frame will come: None (all captured) or the error
        self._ended = False

    @property
    def frames(self) -> int:
        """Frames in memory for the reader: waiting, and in flight."""
        return len(self._unsent) + len(self._in_flight)

    @property
    def waiting(self) -> int:
        """Frames waiting to be sent: at most the capacity (but for frames a lost reader had in flight)."""
        return len(self._unsent)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def held(self) -> int:
        """Frames held back beyond the capacity."""
        return len(self._held)

    @property
    def held_buffers(self) -> int:
        """Camera buffers in the frames held back."""
        return sum(frame.buffer is not None for frame in self._held)

    @property
    def full(self) -> bool:
        return len(self._unsent) >= self.capacity

    @property
    def free(self) -> int:
        """How many more frames ``put_all`` takes now, held back ones included."""
        return max(0, self.capacity + self.hold - len(self._unsent) - len(self._held))

    # ---- the capture's side ----

    def room(self, frames: int = 1) -> defer.Deferred[None]:
        """A Deferred that fires once the spool can take ``frames`` more frames (held back ones included)."""
        if self._ended:
            return defer.fail(self._end or RuntimeError("the spool is closed"))
        if self.free >= frames:
            return defer.succeed(None)
        self._room_for = frames
        self._room = defer.Deferred(lambda d: setattr(self, "_room", None))
        return self._room

    def put(self, frame: BurstFrame) -> None:
        """Add a frame just off the camera."""
        self.put_all([frame])

    def put_all(self, frames: list[BurstFrame]) -> None:
        """Add frames just off the camera, in order: those beyond the capacity are held back (at most
        ``free``). A waiting reader is woken once they are all in (and can take them all at once)."""
        if len(frames) > self.free:
            raise ValueError(f"{len(frames)} frames do not fit a spool with room for {self.free}")
        self._held.extend(frames)
        self.captured += len(frames)
        self._let_in()
        self._wake_reader()

    def finish(self, error: BaseException | None = None) -> None:
        """No frame will come any more; with ``error``, the reader gets it after the last frame."""
        self._ended, self._end = True, error
        self._wake_reader_at_end()

    def discard(self, error: BaseException) -> None:
        """Drop every frame now; whoever waits gets ``error``. The camera's buffers are not given back
        (a frame may be half-way out of one): they go with the frames."""
        self._unsent.clear()
        self._in_flight.clear()
        self._held.clear()
        self.bytes = self.in_flight_bytes = 0
        self.finish(error)
        if self._room is not None:
            room, self._room = self._room, None
            room.errback(error)

    # ---- the reader's side ----

    def next(self) -> defer.Deferred[BurstFrame | None]:
        """A Deferred firing with the next unsent frame (now in flight); with None once a finished
        capture's frames are all acknowledged; or failing with the capture's error after the frames
        captured before it."""
        if self._reader is not None:
            raise RuntimeError("the spool has a reader already")
        reader: defer.Deferred[BurstFrame | None] = defer.Deferred(lambda d: setattr(self, "_reader", None))
        self._reader = reader
        if self._unsent:
            self._wake_reader()
        else:
            self._wake_reader_at_end()
        return reader

    def take(self, max_frames: int, max_bytes: int) -> list[BurstFrame]:
        """Without waiting: the unsent frames there are (now in flight), up to ``max_frames`` and
        ``max_bytes`` but at least one if there is one."""
        frames: list[BurstFrame] = []
        size = 0
        while self._unsent and len(frames) < max_frames:
            size += self._unsent[0].nbytes
            if frames and size > max_bytes:
                break
            frames.append(self._send_next())
        if frames:
            self._made_room()
        return frames

    def newest(self) -> BurstFrame | None:
        """The newest frame the spool holds, sent or not (for a look at it: nothing changes)."""
        if self._held:
            return self._held[-1]
        if self._unsent:
            return self._unsent[-1]
        return self._in_flight[-1] if self._in_flight else None

    def acknowledge(self, frame_number: int) -> None:
        """The reader has frame ``frame_number`` and every frame before it: free them."""
        while self._in_flight and self._in_flight[0].frame_number <= frame_number:
            frame = self._in_flight.popleft()
            self.bytes -= frame.nbytes
            self.in_flight_bytes -= frame.nbytes
            self.acknowledged += 1
            if frame.buffer is not None:
                self.give_back(frame.buffer)
        if self.on_acknowledged is not None:
            self.on_acknowledged(self.acknowledged)
        self._wake_reader_at_end()

    def return_unacknowledged(self) -> None:
        """The reader went away: its frames in flight go back to the front, for the next reader."""
        while self._in_flight:
            self._unsent.appendleft(self._in_flight.pop())
        self.in_flight_bytes = 0
        if self._reader is not None:
            self._reader.cancel()

    def _wake_reader(self) -> None:
        """A reader waits and a frame waits: hand it over (and the capture may take another)."""
        if self._reader is not None and self._unsent:
            reader, self._reader = self._reader, None
            reader.callback(self._send_next())
            self._made_room()

    def _made_room(self) -> None:
        """Frames left for the reader: the capture may take more."""
        if self._room is not None and self.free >= self._room_for:
            room, self._room = self._room, None
            room.callback(None)

    def _let_in(self) -> None:
        """Move frames held back into the spool, as far as its capacity allows."""
        held, unsent = self._held, self._unsent
        while held and len(unsent) < self.capacity:
            frame = held.popleft()
            unsent.append(frame)
            self.bytes += frame.nbytes
        self.high_water_frames = max(self.high_water_frames, self.frames)
        self.high_water_bytes = max(self.high_water_bytes, self.bytes)

    def _send_next(self) -> BurstFrame:
        """The next frame waiting, now in flight; a frame held back takes its place."""
        frame = self._unsent.popleft()
        self._in_flight.append(frame)
        if self._held:
            self._let_in()
        self.in_flight_bytes += frame.nbytes
        self.bytes_sent += frame.nbytes
        self.sent = max(self.sent, frame.frame_number + 1)
        return frame

    def _wake_reader_at_end(self) -> None:
        if self._reader is None or not self._ended or self._unsent:
            return
        if self._end is not None:
            reader, self._reader = self._reader, None
            reader.errback(self._end)
        elif not self._in_flight:
            reader, self._reader = self._reader, None
            reader.callback(None)
