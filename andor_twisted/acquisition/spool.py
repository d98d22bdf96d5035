"""The burst spool: a FIFO of frames between the camera and the reader, bounded in frames.

A frame enters when it is off the camera (``put``) and leaves when the reader acknowledges it
(``acknowledge``); in between it is unsent, or sent and in flight. Nothing polls: the capture waits on
``room()``, the reader on ``next()``. Memory is taken frame by frame as frames arrive and given back
as they are acknowledged, never reserved up front. A frame's pixels may still be in the camera's
buffer (``frame.buffer``): an acknowledgement hands that buffer to ``give_back``.
"""

import collections

from twisted.internet import defer


def message_bytes(frame):
    """The size of a frame's message, the parts it is sent in together."""
    return sum(map(len, frame.message))


class Spool:
    def __init__(self, capacity, give_back=lambda buffer: None):
        self.capacity = capacity  # frames it may hold, unsent and in flight together
        self.give_back = give_back
        self._unsent = collections.deque()
        self._in_flight = collections.deque()
        self.bytes = 0
        self.in_flight_bytes = 0
        self.high_water_frames = 0
        self.high_water_bytes = 0
        self.captured = 0  # frames put
        self.sent = 0  # distinct frames handed to a reader (a frame sent again after a reconnect counts once)
        self.acknowledged = 0
        self._room = None  # the capture's Deferred waiting for room
        self._room_for = 1  # ... for this many frames
        self._reader = None  # the reader's Deferred waiting for a frame
        self._end = None  # once no frame will come: None (the capture finished) or the error to raise
        self._ended = False

    @property
    def frames(self):
        return len(self._unsent) + len(self._in_flight)

    @property
    def in_flight(self):
        return len(self._in_flight)

    @property
    def full(self):
        return self.frames >= self.capacity

    # ---- the capture's side ----

    def room(self, frames=1):
        """A Deferred that fires once the spool can take ``frames`` more frames."""
        if self._ended:
            return defer.fail(self._end or RuntimeError("the spool is closed"))
        if self.capacity - self.frames >= frames:
            return defer.succeed(None)
        self._room_for = frames
        self._room = defer.Deferred(lambda d: setattr(self, "_room", None))
        return self._room

    def put(self, frame):
        """Add a frame just off the camera (``frame.message`` holds it as sent, in parts)."""
        self._unsent.append(frame)
        self.captured += 1
        self.bytes += message_bytes(frame)
        self.high_water_frames = max(self.high_water_frames, self.frames)
        self.high_water_bytes = max(self.high_water_bytes, self.bytes)
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.callback(self._send_next())

    def finish(self, error=None):
        """No frame will come any more; with ``error``, the reader gets it after the last frame."""
        self._ended, self._end = True, error
        self._wake_reader_at_end()

    def discard(self, error):
        """Drop every frame now; whoever waits gets ``error``. The camera's buffers are not given back
        (a frame may be half-way out of one): they go with the frames."""
        self._unsent.clear()
        self._in_flight.clear()
        self.bytes = self.in_flight_bytes = 0
        self.finish(error)
        if self._room is not None:
            room, self._room = self._room, None
            room.errback(error)

    # ---- the reader's side ----

    def next(self):
        """A Deferred firing with the next unsent frame (now in flight); with None once a finished
        capture's frames are all acknowledged; or failing with the capture's error after the frames
        captured before it."""
        if self._reader is not None:
            raise RuntimeError("the spool has a reader already")
        self._reader = defer.Deferred(lambda d: setattr(self, "_reader", None))
        reader = self._reader
        if self._unsent:
            self._reader = None
            reader.callback(self._send_next())
        else:
            self._wake_reader_at_end()
        return reader

    def take(self, max_frames, max_bytes):
        """Without waiting: the unsent frames there are (now in flight), up to ``max_frames`` and
        ``max_bytes`` but at least one if there is one."""
        frames, size = [], 0
        while self._unsent and len(frames) < max_frames:
            size += message_bytes(self._unsent[0])
            if frames and size > max_bytes:
                break
            frames.append(self._send_next())
        return frames

    def acknowledge(self, frame_number):
        """The reader has frame ``frame_number`` and every frame before it: free them."""
        while self._in_flight and self._in_flight[0].frame_number <= frame_number:
            frame = self._in_flight.popleft()
            size = message_bytes(frame)
            self.bytes -= size
            self.in_flight_bytes -= size
            self.acknowledged += 1
            if frame.buffer is not None:
                self.give_back(frame.buffer)
        if self._room is not None and self.capacity - self.frames >= self._room_for:
            room, self._room = self._room, None
            room.callback(None)
        self._wake_reader_at_end()

    def return_unacknowledged(self):
        """The reader went away: its frames in flight go back to the front, for the next reader."""
        while self._in_flight:
            self._unsent.appendleft(self._in_flight.pop())
        self.in_flight_bytes = 0
        if self._reader is not None:
            self._reader.cancel()

    def _send_next(self):
        frame = self._unsent.popleft()
        self._in_flight.append(frame)
        self.in_flight_bytes += message_bytes(frame)
        self.sent = max(self.sent, frame.frame_number + 1)
        return frame

    def _wake_reader_at_end(self):
        if self._reader is None or not self._ended or self._unsent:
            return
        if self._end is not None:
            reader, self._reader = self._reader, None
            reader.errback(self._end)
        elif not self._in_flight:
            reader, self._reader = self._reader, None
            reader.callback(None)
