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

# WebSocket close code for a reader that broke the stream protocol (4000-4999: for applications, RFC 6455)
CLOSE_PROTOCOL_VIOLATION: Final = 4400


class ProtocolViolation(ValueError):
    """A reader sent something the stream protocol does not allow."""

    close_code = CLOSE_PROTOCOL_VIOLATION


@dataclass(frozen=True)
class Ack:
    """A live viewer has drawn the frame ``frame_number`` (not checked: it only asks for the next)."""

    frame_number: object


@dataclass(frozen=True)
class Display:
    """A live viewer now shows ``width`` x ``height`` device pixels."""

    width: int
    height: int


BURST_READER_SENDS: Final = 'a reader sends {"ack": frame_number}'
VIEWER_SENDS: Final = 'a viewer sends {"ack": frame_number} or {"display": [width, height]}'


def parse_burst_reader(payload: bytes) -> int:
    """A burst reader's message: the frame number it acknowledges."""
    try:
        ack = _object(payload)["ack"]
        if not isinstance(ack, int) or isinstance(ack, bool):
            raise ValueError(ack)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ProtocolViolation(BURST_READER_SENDS) from None
    return ack


def parse_viewer(payload: bytes) -> Ack | Display:
    """A live viewer's message: an acknowledgement, or the size of its display."""
    try:
        message = _object(payload)
        if "ack" in message:
            return Ack(message["ack"])
        if "display" in message:
            display = message["display"]
            if not isinstance(display, list):
                raise TypeError(display)
            width, height = (int(n) for n in display)
            return Display(width, height)
        raise ValueError(message)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise ProtocolViolation(VIEWER_SENDS) from None


def _object(payload: bytes) -> dict[str, object]:
    message = json.loads(payload)
    if not isinstance(message, dict):
        raise ValueError(message)
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
