"""Andor SDK3 error codes (atcore.h), so both providers and the driver speak of errors by name."""

from __future__ import annotations

ERROR_NAMES = {
    0: "AT_SUCCESS",
    1: "AT_ERR_NOTINITIALISED",
    2: "AT_ERR_NOTIMPLEMENTED",
    3: "AT_ERR_READONLY",
    4: "AT_ERR_NOTREADABLE",
    5: "AT_ERR_NOTWRITABLE",
    6: "AT_ERR_OUTOFRANGE",
    7: "AT_ERR_INDEXNOTAVAILABLE",
    8: "AT_ERR_INDEXNOTIMPLEMENTED",
    9: "AT_ERR_EXCEEDEDMAXSTRINGLENGTH",
    10: "AT_ERR_CONNECTION",
    11: "AT_ERR_NODATA",
    12: "AT_ERR_INVALIDHANDLE",
    13: "AT_ERR_TIMEDOUT",
    14: "AT_ERR_BUFFERFULL",
    15: "AT_ERR_INVALIDSIZE",
    16: "AT_ERR_INVALIDALIGNMENT",
    17: "AT_ERR_COMM",
    18: "AT_ERR_STRINGNOTAVAILABLE",
    19: "AT_ERR_STRINGNOTIMPLEMENTED",
    20: "AT_ERR_NULL_FEATURE",
    38: "AT_ERR_DEVICEINUSE",
    39: "AT_ERR_DEVICENOTFOUND",
    100: "AT_ERR_HARDWARE_OVERFLOW",
}
CODES = {name: code for code, name in ERROR_NAMES.items()}

NOTIMPLEMENTED = 2
READONLY = 3
NOTREADABLE = 4
NOTWRITABLE = 5
OUTOFRANGE = 6
NODATA = 11
INVALIDHANDLE = 12
TIMEDOUT = 13
INVALIDSIZE = 15
INVALIDALIGNMENT = 16
STRINGNOTAVAILABLE = 18
STRINGNOTIMPLEMENTED = 19
COMM = 17
DEVICEINUSE = 38
DEVICENOTFOUND = 39
HARDWARE_OVERFLOW = 100


def error_name(code: int | None) -> str:
    """The AT_ERR_ name of ``code``; "unknown" for None (an exception whose code could not be found)."""
    if code is None:
        return "unknown"
    return ERROR_NAMES.get(code, f"AT_ERR_{code}")


def error_code_of(exc: BaseException) -> int | None:
    """The SDK error code carried by a CameraException, from either provider.

    The simulated SDK and newer pyAndorSDK3 releases set ``err_code``; older releases only put the
    AT_ERR_ name in the message, so fall back to finding it there.
    """
    code = getattr(exc, "err_code", None)
    if isinstance(code, int):
        return code
    text = str(exc)
    for name, value in CODES.items():
        if name in text:
            return value
    return None
