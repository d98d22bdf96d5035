"""The layout of an SDK3 frame buffer, in one place.

A buffer holds ``AOIHeight`` rows of ``AOIStride`` bytes (a row may be padded past its pixels), then,
with ``MetadataEnable``, metadata blocks. Blocks are read backwards from the end of the buffer, each laid
out as ``[data][CID u32][LEN u32]`` where LEN counts the CID and the data. The image itself is block
CID 0; CID 1 holds the int64 timestamp ticks; CID 7 the frame info.

The driver decodes with these functions; the simulated camera encodes with them, and the tests pin
both against hand-built byte vectors.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

ENCODINGS = ("Mono12", "Mono12Packed", "Mono16", "Mono32")

CID_IMAGE = 0
CID_TICKS = 1
CID_FRAME_INFO = 7
# stride u16, encoding index u8, reserved u8, width u16, height u16
FRAME_INFO = struct.Struct("<HBxHH")
BLOCK_TAIL = struct.Struct("<II")  # CID, LEN
TICKS = struct.Struct("<q")
# what MetadataEnable and MetadataTimestamp add to ImageSizeBytes: the image block's tail, the ticks block
METADATA_BYTES = BLOCK_TAIL.size + TICKS.size + BLOCK_TAIL.size
FRAME_INFO_BYTES = FRAME_INFO.size + BLOCK_TAIL.size  # with MetadataFrameInfo too

# a frame buffer: the driver's and the simulator's are uint8 arrays, the tests' byte vectors bytes
Raw: TypeAlias = "NDArray[np.uint8] | bytes | bytearray | memoryview"
Pixels: TypeAlias = "NDArray[np.uint16] | NDArray[np.uint32]"  # a decoded image


def row_bytes(encoding: str, width: int) -> int:
    """Bytes of pixel data in one row, before stride padding."""
    if encoding == "Mono12Packed":
        return (3 * width + 1) // 2
    return width * np.dtype(pixel_dtype(encoding)).itemsize


def pixel_dtype(encoding: str) -> type[np.uint16] | type[np.uint32]:
    """The dtype a decoded image has: 16-bit for the 12- and 16-bit encodings, 32-bit for Mono32."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported pixel encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    return np.uint32 if encoding == "Mono32" else np.uint16


def rows_view(raw: Raw, height: int, stride: int) -> NDArray[np.uint8]:
    """The image rows of a buffer as a (height, stride) uint8 array (no copy)."""
    return np.frombuffer(raw, dtype=np.uint8, count=height * stride).reshape(height, stride)


def decode(raw: Raw, encoding: str, width: int, height: int, stride: int, copy: bool = True) -> Pixels:
    """The pixels of ``raw`` as a 2-D array, row padding stripped.

    A copy by default, so the caller can hand the buffer back to the SDK at once. With ``copy=False``
    the 16- and 32-bit encodings come back as a (possibly strided) view of ``raw`` that is only valid
    until the buffer is reused; Mono12Packed is always unpacked into a new array.
    """
    rows = rows_view(raw, height, stride)
    if encoding == "Mono12Packed":
        return _unpack12(rows, width)
    dtype = np.dtype(pixel_dtype(encoding)).newbyteorder("<")
    view: Pixels = rows[:, : row_bytes(encoding, width)].view(dtype)
    return view.astype(dtype.newbyteorder("=")) if copy else view


def encode_into(image: NDArray[np.integer[Any]], raw: Raw, encoding: str, stride: int) -> None:
    """Write a 2-D image into ``raw`` in ``encoding`` with rows ``stride`` bytes apart."""
    height, width = image.shape
    rows = rows_view(raw, height, stride)
    if encoding == "Mono12Packed":
        rows[:, : row_bytes(encoding, width)] = _pack12(image)
        return
    dtype = np.dtype(pixel_dtype(encoding)).newbyteorder("<")
    rows[:, : row_bytes(encoding, width)].view(dtype)[...] = image


def _unpack12(rows: NDArray[np.uint8], width: int) -> NDArray[np.uint16]:
    """Mono12Packed: two pixels in three bytes. Byte 0 holds bits 11..4 of pixel A, byte 1 bits 3..0
    of A (low nibble) and of B (high nibble), byte 2 bits 11..4 of B."""
    pairs = (width + 1) // 2
    need = 3 * pairs
    if rows.shape[1] < need:  # an odd width whose last pair is cut by the stride
        padded = np.zeros((rows.shape[0], need), np.uint8)
        padded[:, : rows.shape[1]] = rows
        rows = padded
    triples = rows[:, :need].reshape(rows.shape[0], pairs, 3).astype(np.uint16)
    out = np.empty((rows.shape[0], 2 * pairs), np.uint16)
    out[:, 0::2] = (triples[..., 0] << 4) | (triples[..., 1] & 0x0F)
    out[:, 1::2] = (triples[..., 2] << 4) | (triples[..., 1] >> 4)
    return out[:, :width]


def _pack12(image: NDArray[np.integer[Any]]) -> NDArray[np.uint8]:
    height, width = image.shape
    pairs = (width + 1) // 2
    pixels = np.zeros((height, 2 * pairs), np.uint16)
    pixels[:, :width] = image & 0x0FFF
    a, b = pixels[:, 0::2], pixels[:, 1::2]
    triples = np.empty((height, pairs, 3), np.uint8)
    triples[..., 0] = a >> 4
    triples[..., 1] = (a & 0x0F) | ((b & 0x0F) << 4)
    triples[..., 2] = b >> 4
    return triples.reshape(height, 3 * pairs)[:, : row_bytes("Mono12Packed", width)]


def write_metadata(raw: Raw, image_bytes: int, ticks: int | None = None,
                   frame_info: tuple[str, int, int, int] | None = None) -> int:
    """Append the image block's tail, then the ticks block (if ``ticks``) and the frame-info block (if
    ``frame_info``, as (encoding, width, height, stride)) after ``image_bytes`` of pixel data; returns
    where the metadata ends."""
    view = byte_view(raw)
    offset = image_bytes
    BLOCK_TAIL.pack_into(view, offset, CID_IMAGE, image_bytes + 4)
    offset += BLOCK_TAIL.size
    if ticks is not None:
        TICKS.pack_into(view, offset, ticks)
        BLOCK_TAIL.pack_into(view, offset + TICKS.size, CID_TICKS, TICKS.size + 4)
        offset += TICKS.size + BLOCK_TAIL.size
    if frame_info is not None:
        encoding, width, height, stride = frame_info
        FRAME_INFO.pack_into(view, offset, stride, ENCODINGS.index(encoding), width, height)
        BLOCK_TAIL.pack_into(view, offset + FRAME_INFO.size, CID_FRAME_INFO, FRAME_INFO.size + 4)
        offset += FRAME_INFO.size + BLOCK_TAIL.size
    return offset


def read_metadata(raw: Raw, size: int) -> dict[int, memoryview]:
    """The metadata blocks of a buffer of ``size`` bytes, as {CID: memoryview of the data}."""
    view = byte_view(raw)[:size]
    blocks = {}
    end = size
    while end >= BLOCK_TAIL.size:
        cid, length = BLOCK_TAIL.unpack_from(view, end - BLOCK_TAIL.size)
        start = end - 4 - length
        if length < 4 or start < 0:
            raise ValueError(f"corrupt metadata: block CID {cid} of length {length} at byte {end}")
        blocks[cid] = view[start : end - BLOCK_TAIL.size]
        if cid == CID_IMAGE:
            break
        end = start
    return blocks


def byte_view(raw: Raw) -> memoryview:
    """``raw`` as a flat memoryview of its bytes. (numpy's stubs give arrays the buffer protocol only
    from Python 3.12 on, hence the cast.)"""
    return memoryview(cast("ReadableBuffer", raw)).cast("B")


_TICKS_LAST = struct.Struct("<qII")  # the ticks block when it is the last block: ticks, CID, LEN


def read_ticks(raw: Raw, size: int) -> int | None:
    """The frame's timestamp in clock ticks, or None if the buffer carries no timestamp block."""
    if size >= _TICKS_LAST.size:  # the usual layout, at once: the ticks block last
        ticks, cid, length = _TICKS_LAST.unpack_from(cast("ReadableBuffer", raw), size - _TICKS_LAST.size)
        if cid == CID_TICKS and length == TICKS.size + 4:
            return int(ticks)
    block = read_metadata(raw, size).get(CID_TICKS)
    return None if block is None else TICKS.unpack(block)[0]
