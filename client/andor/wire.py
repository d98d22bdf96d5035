"""The frame message of docs/streaming.md, read by the client. The server writes it
(``andor_twisted/protocol/frames.py``); both are held to the byte vectors of docs/frame-vectors.json,
and this package never imports the server's."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

MAGIC = b"ANDF"
HEADER = struct.Struct("<4sHHI2sHQQQII")
HEADER_SIZE = HEADER.size  # 48
HAS_TIMESTAMP = 1
DTYPES: dict[str, np.dtype[Any]] = {"u2": np.dtype("<u2"), "u4": np.dtype("<u4")}


class WireError(ValueError):
    """Bytes that are not a valid frame message."""


def parse_header(header: bytes | bytearray | memoryview, message_length: int) -> dict[str, Any]:
    """The fields of a frame message whose first 48 bytes are ``header`` and whose whole length is
    ``message_length``; ``fields['header_size']`` is where its pixels start."""
    magic, version, header_size, burst_id, code, flags, number, ticks, frequency, height, width = \
        HEADER.unpack_from(header)
    if magic != MAGIC or version < 1 or header_size < HEADER_SIZE:
        raise WireError(f"not a frame message (magic {magic!r}, version {version}, header size {header_size})")
    dtype = DTYPES.get(code.decode("ascii", "replace"))
    if dtype is None:
        raise WireError(f"unknown pixel type {code!r}")
    expected = header_size + height * width * dtype.itemsize
    if message_length != expected:
        raise WireError(f"a {height}x{width} {dtype} frame message has {expected} bytes, not {message_length}")
    timed = bool(flags & HAS_TIMESTAMP)
    return {"burst_id": burst_id, "frame_number": number, "height": height, "width": width, "dtype": dtype,
            "ticks": ticks if timed else None, "tick_frequency": frequency if timed else None,
            "header_size": header_size}


def parse(message: bytes | bytearray | memoryview) -> tuple[dict[str, Any], np.ndarray]:
    """(fields, 2-D image view) of one whole frame message (a WebSocket payload)."""
    if len(message) < HEADER_SIZE:
        raise WireError(f"a frame message is at least {HEADER_SIZE} bytes, this one is {len(message)}")
    fields = parse_header(message, len(message))
    count = fields["height"] * fields["width"]
    image = np.frombuffer(message, fields["dtype"], count, fields["header_size"])
    return fields, image.reshape(fields["height"], fields["width"])
