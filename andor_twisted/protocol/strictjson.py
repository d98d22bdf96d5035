"""JSON from a client, parsed only within bounds: nesting depth, integer digits, finite floats.

Why: Python's ``json`` turns anything into values the server then converts, and fails in ways that are
not ValueError: a document nested thousands of levels deep raises RecursionError, and ``float()`` of an
integer of 400 digits raises OverflowError far from the parser. Here the depth is counted before
parsing, and numbers are bounded while they are still text. Both the HTTP API's bodies and the streams'
messages are parsed here.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 16  # nesting of JSON arrays and objects; the API's bodies use three at most
MAX_INT_DIGITS = 18  # integers below 10**18: inside an int64


class StrictJSONError(ValueError):
    """JSON the server does not take: ``code`` says which rule it broke ("too_deep", "out_of_range",
    "malformed_json")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def depth(raw: bytes) -> int:
    """How deep arrays and objects nest in ``raw`` (JSON text), counting brackets outside strings."""
    level = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            level += 1
            deepest = max(deepest, level)
        elif byte in (0x5D, 0x7D):  # ] }
            level -= 1
    return deepest


def _int(text: str, most: int = MAX_INT_DIGITS) -> int:
    if len(text.lstrip("-")) > most:
        raise StrictJSONError("out_of_range", f"the number {text[:24]}... has more than {most} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError("out_of_range", f"the number {text[:24]} is too large")
    return value


def _constant(name: str) -> float:
    raise StrictJSONError("malformed_json", f"{name} is not a JSON number")


def loads(raw: bytes, max_depth: int = MAX_DEPTH, max_int_digits: int = MAX_INT_DIGITS) -> Any:
    """JSON from ``raw``, nested at most ``max_depth`` deep, its integers of at most ``max_int_digits``
    digits and its floats finite (no NaN or Infinity); else StrictJSONError."""
    if depth(raw) > max_depth:
        raise StrictJSONError("too_deep", f"the JSON nests deeper than {max_depth} levels")
    try:
        return json.loads(raw, parse_int=lambda text: _int(text, max_int_digits), parse_float=_float,
                          parse_constant=_constant)
    except StrictJSONError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise StrictJSONError("malformed_json", f"not valid JSON: {e}") from None
