"""The JSON text messages of the frame streams (docs/streaming.md), both ways, as plain values.

Readers send little: a burst reader ``{"ack": frame_number}``, a live viewer that or ``{"display":
[width, height]}``. Anything else is a ``ProtocolViolation``, which the stream answers by closing the
connection with ``close_code`` and the violation's text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from andor_twisted.protocol import strictjson

# WebSocket close codes (4000-4999: for applications, RFC 6455), after the HTTP status they resemble
CLOSE_PROTOCOL_VIOLATION: Final = 4400  # the reader broke the stream protocol
CLOSE_FORBIDDEN: Final = 4403  # the reader's token may not read this burst
CLOSE_GONE: Final = 4410  # no such burst (any more): replaced, discarded, or never started
CLOSE_CONFLICT: Final = 4409  # the burst already has a reader
CLOSE_FAILED: Final = 4500  # the burst or live view failed (the error message before the close says how)
CLOSE_NORMAL: Final = 1000  # the end: every frame sent and acknowledged
MAX_FRAME_NUMBER: Final = 2**64 - 1  # frame numbers are u64 on the wire
MAX_DISPLAY: Final = 16384  # device pixels a viewer may ask for, each way


class ProtocolViolation(ValueError):
    """A reader sent something the stream protocol does not allow."""

    close_code = CLOSE_PROTOCOL_VIOLATION


@dataclass(frozen=True)
class Ack:
    """A live viewer has drawn the frame ``frame_number`` (a u64; it only asks for the next)."""

    frame_number: int


@dataclass(frozen=True)
class Display:
    """A live viewer now shows ``width`` x ``height`` device pixels."""

    width: int
    height: int


BURST_READER_SENDS: Final = 'a reader sends {"ack": frame_number}'
VIEWER_SENDS: Final = 'a viewer sends {"ack": frame_number} or {"display": [width, height]}'


def parse_burst_reader(payload: bytes, is_binary: bool = False) -> int:
    """A burst reader's message: the frame number it acknowledges."""
    message = _object(payload, is_binary, BURST_READER_SENDS)
    if set(message) != {"ack"}:
        raise ProtocolViolation(BURST_READER_SENDS)
    return _frame_number(message["ack"], BURST_READER_SENDS)


def parse_viewer(payload: bytes, is_binary: bool = False) -> Ack | Display:
    """A live viewer's message: an acknowledgement, or the size of its display."""
    message = _object(payload, is_binary, VIEWER_SENDS)
    if set(message) == {"ack"}:
        return Ack(_frame_number(message["ack"], VIEWER_SENDS))
    if set(message) == {"display"}:
        display = message["display"]
        if (not isinstance(display, list) or len(display) != 2 or not all(
                (isinstance(n, int) and not isinstance(n, bool)) or (isinstance(n, float) and n.is_integer())
                for n in display)):
            raise ProtocolViolation(f"{VIEWER_SENDS}, width and height whole numbers")
        width, height = (int(n) for n in display)
        if not (1 <= width <= MAX_DISPLAY and 1 <= height <= MAX_DISPLAY):
            raise ProtocolViolation(f"a display is 1 to {MAX_DISPLAY} pixels each way")
        return Display(width, height)
    raise ProtocolViolation(VIEWER_SENDS)


def _frame_number(value: object, expected: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FRAME_NUMBER:
        raise ProtocolViolation(expected)
    return value


def _object(payload: bytes, is_binary: bool, expected: str) -> dict[str, object]:
    if is_binary:
        raise ProtocolViolation(f"{expected} as a text message, not a binary one")
    try:
        message = strictjson.loads(payload, max_depth=2, max_int_digits=20)  # u64 frame numbers
    except strictjson.StrictJSONError:
        raise ProtocolViolation(expected) from None
    if not isinstance(message, dict):
        raise ProtocolViolation(expected)
    return message


# ---- what the server sends ----

def encode(message: Mapping[str, object]) -> bytes:
    """A message as the UTF-8 JSON text of one WebSocket text message."""
    return json.dumps(message, default=str).encode()


def stream(burst_id: int, frames: int, window: int) -> dict[str, object]:
    """First on a burst stream: which burst, how many frames, how many the server sends ahead of acks."""
    return {"type": "stream", "burst": burst_id, "frames": frames, "window": window}


def end(summary: Mapping[str, object]) -> dict[str, object]:
    """Last on a burst stream once every frame is acknowledged: the burst's status."""
    return {"type": "end", "summary": summary}


def error(code: str, message: str, details: Mapping[str, object] | None = None) -> dict[str, object]:
    """The burst failed or is gone (after the frames captured before the failure), or the live view failed."""
    return {"type": "error", "error": code, "message": message, **(details or {})}


def view(step: int, aoi: object, binning: object, frame_rate: object, burst: int | None = None) -> dict[str, object]:
    """The live view's acquisition: the decimation step of this viewer's frames, and the sensor region;
    with ``burst``, the frames that follow are that burst's, watched while it captures."""
    message: dict[str, object] = {"type": "view", "step": step, "aoi": aoi, "binning": binning,
                                  "frame_rate": frame_rate}
    if burst is not None:
        message["burst"] = burst
    return message


def paused(reason: str) -> dict[str, object]:
    """The live view has stepped aside: someone else has the camera."""
    return {"type": "paused", "reason": reason}
