"""The binary frame message of burst and live streams (docs/streaming.md), and its WebSocket framing.

A burst frame leaves the server in two parts written with one gathering send: the WebSocket frame
header with our 48-byte header, then the pixels where the camera put them. The live view's reduced
frames are joined into one bytes object instead (they are new arrays anyway, and small).
"""

import struct

import numpy as np

MAGIC = b"ANDF"
VERSION = 1
HEADER = struct.Struct("<4sHHI2sHQQQII")
HEADER_SIZE = HEADER.size  # 48
HAS_TIMESTAMP = 1
DTYPES = {"u2": np.dtype("<u2"), "u4": np.dtype("<u4")}


class WireError(ValueError):
    """A message that is not a valid frame message."""


def pack_header(burst_id, frame_number, image, ticks=None, tick_frequency=None):
    """The 48-byte header for ``image`` (2-D uint16 or uint32)."""
    code = image.dtype.str[1:]
    if code not in DTYPES:
        raise WireError(f"frames are uint16 or uint32, not {image.dtype}")
    timed = ticks is not None and bool(tick_frequency)
    height, width = image.shape
    return HEADER.pack(MAGIC, VERSION, HEADER_SIZE, burst_id, code.encode(), HAS_TIMESTAMP if timed else 0,
                       frame_number, ticks if timed else 0, tick_frequency if timed else 0, height, width)


def websocket_header(length):
    """RFC 6455 header of one unmasked, final, binary WebSocket frame of ``length`` payload bytes."""
    if length < 126:
        return struct.pack("!BB", 0x82, length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x82, 126, length)
    return struct.pack("!BBQ", 0x82, 127, length)


def frame_parts(burst_id, frame_number, image, ticks=None, tick_frequency=None):
    """One frame as a complete WebSocket frame in two parts, (framing and header bytes, pixel bytes),
    and the image those pixel bytes hold. The pixels are a memoryview of ``image`` itself unless it
    is not contiguous little-endian (padded rows, say): then of a contiguous copy."""
    image = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<"))
    header = pack_header(burst_id, frame_number, image, ticks, tick_frequency)
    return (websocket_header(HEADER_SIZE + image.nbytes) + header, memoryview(image).cast("B")), image


def frame_message(burst_id, frame_number, image, ticks=None, tick_frequency=None):
    """One frame as a complete WebSocket frame, in one bytes object."""
    return b"".join(frame_parts(burst_id, frame_number, image, ticks, tick_frequency)[0])


def parse_header(header, message_length):
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


def parse(message):
    """(fields, 2-D image view) of one whole frame message (a WebSocket payload)."""
    if len(message) < HEADER_SIZE:
        raise WireError(f"a frame message is at least {HEADER_SIZE} bytes, this one is {len(message)}")
    fields = parse_header(message, len(message))
    count = fields["height"] * fields["width"]
    image = np.frombuffer(message, fields["dtype"], count, fields["header_size"])
    return fields, image.reshape(fields["height"], fields["width"])
