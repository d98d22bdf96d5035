"""Frames as the acquisition layer hands them on: a frame header (``protocol.frames``) and the pixels.

Never WebSocket bytes: the stream adds its framing as it sends. A burst frame keeps its pixels where
the camera put them (``BurstFrame.buffer``, lent to the spool until the reader has the frame); a live
frame is a small copy reduced to each viewer's display, one message per decimation step in use.
Both are built in the SDK thread, by the ``pack`` the driver calls on each frame it takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from andor_twisted.camera.driver import Frame
from andor_twisted.protocol.frames import LIVE_VIEW_ID, pack_header


@dataclass(slots=True, eq=False)
class BurstFrame:
    """One frame of a burst: its 48-byte header and its pixels, sent one after the other."""

    frame_number: int
    ticks: int | None
    header: bytes
    pixels: memoryview  # the image's bytes, in the camera's buffer unless they had to be copied out
    image: np.ndarray  # the same pixels as an array
    buffer: np.ndarray | None  # the camera's buffer holding them, while lent to the spool
    nbytes: int  # header and pixels: the frame message's length
    utc_ns: int | None = None  # the camera's IRIG-B stamp, where it has one

    @classmethod
    def pack(cls, burst_id: int, frame: Frame) -> BurstFrame:
        """In the SDK thread: ``frame`` as a burst frame. The pixels stay in the camera's buffer unless the
        pixel encoding or padded rows meant copying them out; then the buffer can go back at once."""
        header, image = _header_and_pixels(burst_id, frame, frame.image)
        buffer = frame.buffer if frame.buffer is not None and np.may_share_memory(image, frame.buffer) else None
        pixels = image.data.cast("B")
        return cls(frame.frame_number, frame.ticks, header, pixels, image, buffer, len(header) + pixels.nbytes,
                   frame.utc_ns)


@dataclass(slots=True, eq=False)
class LiveFrame:
    """One frame of the live view, as a complete frame message (header and pixels) for each decimation
    step that viewers use."""

    frame_number: int
    messages: dict[int, bytes]
    buffer: np.ndarray | None = None  # always None: a live frame owns its pixels (the driver clears it)

    @classmethod
    def pack(cls, frame: Frame, steps: Iterable[int]) -> LiveFrame:
        """In the SDK thread: ``frame`` reduced by every ``step`` (every step-th pixel of every step-th row)."""
        messages = {}
        for step in steps:
            header, image = _header_and_pixels(LIVE_VIEW_ID, frame, frame.image[::step, ::step])
            messages[step] = b"".join((header, image.data.cast("B")))
        return cls(frame.frame_number, messages)


def _header_and_pixels(burst_id: int, frame: Frame, image: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The header for ``image`` and the image as contiguous little-endian pixels (itself if it is)."""
    image = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<"))
    height, width = image.shape
    header = pack_header(burst_id, frame.frame_number, image.dtype.str[1:], height, width, frame.ticks,
                         frame.tick_frequency)
    return header, image


def reduced_message(burst_id: int, frame: BurstFrame, step: int, tick_frequency: int | None) -> bytes:
    """A burst frame reduced by ``step`` (every step-th pixel of every step-th row), as a complete frame
    message of its own: for a viewer watching the burst. The burst frame itself is only read."""
    image = np.ascontiguousarray(frame.image[::step, ::step], dtype=frame.image.dtype.newbyteorder("<"))
    height, width = image.shape
    header = pack_header(burst_id, frame.frame_number, image.dtype.str[1:], height, width, frame.ticks,
                         tick_frequency)
    return b"".join((header, image.data.cast("B")))
