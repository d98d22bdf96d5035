"""The acknowledgement window of a burst stream, as arithmetic on frame numbers.

The server sends a reader at most ``size`` frames beyond those it has acknowledged. Frames are
numbered from 0, sent in order and acknowledged in order (an acknowledgement of frame n acknowledges
every frame before it), so all a window holds is two numbers: frames ``[0, acknowledged)`` are
acknowledged, ``[acknowledged, sent)`` are in flight. An acknowledgement of a frame not sent yet is a
protocol violation; one of a frame acknowledged already changes nothing.
"""

from __future__ import annotations

from typing import Final

from andor_twisted.protocol.messages import ProtocolViolation

WINDOW_FRAMES: Final = 256  # at most this many unacknowledged frames (small frames: an ack costs more than one) ...
WINDOW_BYTES: Final = 32 * 1024 * 1024  # ... and bytes (but always at least one frame)


def window_for(message_bytes: int, max_frames: int = WINDOW_FRAMES) -> int:
    """How many frames of ``message_bytes`` may be unacknowledged, at most ``max_frames``."""
    return max(1, min(WINDOW_FRAMES, WINDOW_BYTES // max(message_bytes, 1), max_frames))


def ack_every(window: int) -> int:
    """How many frames a reader may read between acknowledgements without stalling the stream: half
    the window (each acknowledgement costs the server more than a small frame)."""
    return max(1, window // 2)


class AckOutOfRange(ProtocolViolation):
    """An acknowledgement of a frame that was not sent."""


class AckWindow:
    """One reader's window: which frames may go out and which acknowledgements are valid."""

    def __init__(self, size: int, acknowledged: int = 0) -> None:
        if size < 1:
            raise ValueError(f"a window holds at least one frame, not {size}")
        self.size = size
        self.acknowledged = acknowledged  # frames before this one are acknowledged
        self.sent = acknowledged  # frames before this one have been sent

    @property
    def in_flight(self) -> int:
        return self.sent - self.acknowledged

    @property
    def room(self) -> int:
        """How many more frames may be sent now."""
        return self.size - self.in_flight

    def sent_through(self, frame_number: int) -> None:
        """Frames up to ``frame_number`` have been sent."""
        if frame_number < self.sent:
            raise ValueError(f"frame {frame_number} was sent before (frames go out in order)")
        if frame_number + 1 - self.acknowledged > self.size:
            raise ValueError(f"frame {frame_number} is beyond the window of {self.size} frames after "
                             f"frame {self.acknowledged - 1}")
        self.sent = frame_number + 1

    def acknowledge(self, frame_number: int) -> int:
        """The reader acknowledges ``frame_number``: how many frames that newly acknowledges. Raises
        ``AckOutOfRange`` for a frame not sent."""
        if not 0 <= frame_number < self.sent:
            sent = f"frames up to {self.sent - 1} were sent" if self.sent else "no frame was sent"
            raise AckOutOfRange(f"acknowledged frame {frame_number}, but {sent}")
        newly = max(0, frame_number + 1 - self.acknowledged)
        self.acknowledged += newly
        return newly
