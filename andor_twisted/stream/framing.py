"""The WebSocket framing of frame messages (RFC 6455): what turns a frame (header and pixels, from the
acquisition layer) into bytes on a connection. Frames are written straight to the transport, around
autobahn, which would copy them; autobahn still does the handshake, control frames and text messages.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.gather import Part


@functools.lru_cache(maxsize=64)  # every frame of a burst has the same length
def websocket_header(length: int) -> bytes:
    """RFC 6455 header of one unmasked, final, binary WebSocket frame of ``length`` payload bytes."""
    if length < 126:
        return struct.pack("!BB", 0x82, length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x82, 126, length)
    return struct.pack("!BBQ", 0x82, 127, length)


def burst_parts(frames: Sequence[BurstFrame]) -> list[Part]:
    """Burst frames as the parts of complete WebSocket frames: per frame, the WebSocket header with the
    frame's header, then its pixels where they are."""
    parts: list[Part] = []
    for frame in frames:
        parts.append(websocket_header(frame.nbytes) + frame.header)
        parts.append(frame.pixels)
    return parts


def message_parts(message: bytes) -> tuple[bytes, bytes]:
    """A frame message already in one piece (a live frame) as a WebSocket frame, in two parts."""
    return websocket_header(len(message)), message
