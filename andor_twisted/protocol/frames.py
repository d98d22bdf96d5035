"""The frame message of burst and live streams (docs/streaming.md, version 1): a 48-byte little-endian
header, then the pixels.

This is the one writer of the header. Its readers are the Python client (``client/andor/wire.py``) and
the browser viewer (``web/static/frames.js``); all three are held to the byte vectors of
``docs/frame-vectors.json``. The pixels are not here: the acquisition layer keeps them where the camera
put them and sends them after the header, so a frame is never joined into one bytes object.
"""

from __future__ import annotations

import struct
from typing import Final

MAGIC: Final = b"ANDF"
VERSION: Final = 1
# magic, version, header size, burst id, dtype, flags, frame number, ticks, tick frequency, height, width
HEADER: Final = struct.Struct("<4sHHI2sHQQQII")
HEADER_SIZE: Final = HEADER.size  # 48
HAS_TIMESTAMP: Final = 1  # flags bit 0: ticks and tick_frequency are set
ITEMSIZE: Final = {"u2": 2, "u4": 4}  # pixel types (numpy codes, little-endian) and their bytes
LIVE_VIEW_ID: Final = 0  # the burst id of live-view frames


class FrameFormatError(ValueError):
    """Values that no frame message can carry (a pixel type other than u2 or u4, say)."""


def pack_header(burst_id: int, frame_number: int, dtype: str, height: int, width: int,
                ticks: int | None = None, tick_frequency: int | None = None) -> bytes:
    """The 48-byte header of a ``height`` x ``width`` frame of ``dtype`` pixels ("u2" or "u4").

    A frame carries a timestamp only with both ``ticks`` and a non-zero ``tick_frequency``."""
    if dtype not in ITEMSIZE:
        raise FrameFormatError(f"frames are uint16 (u2) or uint32 (u4), not {dtype!r}")
    timed = ticks is not None and bool(tick_frequency)
    return HEADER.pack(MAGIC, VERSION, HEADER_SIZE, burst_id, dtype.encode(), HAS_TIMESTAMP if timed else 0,
                       frame_number, ticks if timed else 0, (tick_frequency or 0) if timed else 0, height, width)


def message_bytes(dtype: str, height: int, width: int) -> int:
    """The length of a whole frame message: the header and the pixels."""
    if dtype not in ITEMSIZE:
        raise FrameFormatError(f"frames are uint16 (u2) or uint32 (u4), not {dtype!r}")
    return HEADER_SIZE + height * width * ITEMSIZE[dtype]


def frame_number_of(message: bytes) -> int:
    """The frame number in a frame message's header."""
    number: int = HEADER.unpack_from(message)[6]
    return number
