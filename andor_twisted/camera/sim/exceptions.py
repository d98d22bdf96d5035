"""The simulated SDK's exceptions, shaped like ``pyAndorSDK3.andor_sdk3_exceptions`` (1.22.6).

``ATException(err_code, message="")`` is the base; ``ATCoreException`` is what the low-level ``ATCore``
raises for every nonzero return code, ``CameraException`` (a subclass of it) what the attribute-magic
``Camera`` class raises, and ``ATUtilityException`` what metadata parsing raises. ``err_code`` is an
``ErrorCodes`` member where the code is known (it compares equal to the int) and the raw int otherwise;
``str(e)`` is ``"13 (AT_ERR_TIMEDOUT)"``, or ``"<message> - 13 (AT_ERR_TIMEDOUT)"`` with a message.
The wrapper's table lacks 39 (DEVICENOTFOUND) and 1007, which it reports as ``"Unknown Error"``;
so does this one.
"""

from __future__ import annotations

import enum


class ErrorCodes(enum.IntEnum):
    AT_SUCCESS = 0
    AT_ERR_NOTINITIALISED = 1
    AT_ERR_NOTIMPLEMENTED = 2
    AT_ERR_READONLY = 3
    AT_ERR_NOTREADABLE = 4
    AT_ERR_NOTWRITABLE = 5
    AT_ERR_OUTOFRANGE = 6
    AT_ERR_INDEXNOTAVAILABLE = 7
    AT_ERR_INDEXNOTIMPLEMENTED = 8
    AT_ERR_EXCEEDEDMAXSTRINGLENGTH = 9
    AT_ERR_CONNECTION = 10
    AT_ERR_NODATA = 11
    AT_ERR_INVALIDHANDLE = 12
    AT_ERR_TIMEDOUT = 13
    AT_ERR_BUFFERFULL = 14
    AT_ERR_INVALIDSIZE = 15
    AT_ERR_INVALIDALIGNMENT = 16
    AT_ERR_COMM = 17
    AT_ERR_STRINGNOTAVAILABLE = 18
    AT_ERR_STRINGNOTIMPLEMENTED = 19
    AT_ERR_NULL_FEATURE = 20
    AT_ERR_NULL_HANDLE = 21
    AT_ERR_NULL_IMPLEMENTED_VAR = 22
    AT_ERR_NULL_READABLE_VAR = 23
    AT_ERR_NULL_READONLY_VAR = 24
    AT_ERR_NULL_WRITABLE_VAR = 25
    AT_ERR_NULL_MINVALUE = 26
    AT_ERR_NULL_MAXVALUE = 27
    AT_ERR_NULL_VALUE = 28
    AT_ERR_NULL_STRING = 29
    AT_ERR_NULL_COUNT_VAR = 30
    AT_ERR_NULL_ISAVAILABLE_VAR = 31
    AT_ERR_NULL_MAXSTRINGLENGTH = 32
    AT_ERR_NULL_EVCALLBACK = 33
    AT_ERR_NULL_QUEUE_PTR = 34
    AT_ERR_NULL_WAIT_PTR = 35
    AT_ERR_NULL_PTRSIZE = 36
    AT_ERR_NOMEMORY = 37
    AT_ERR_DEVICEINUSE = 38
    AT_ERR_HARDWARE_OVERFLOW = 100
    AT_ERR_INVALIDOUTPUTPIXELENCODING = 1002
    AT_ERR_INVALIDINPUTPIXELENCODING = 1003
    AT_ERR_INVALIDMETADATAINFO = 1004
    AT_ERR_CORRUPTEDMETADATA = 1005
    AT_ERR_METADATANOTFOUND = 1006
    AT_ERR_INVALIDFORMAT = 1008
    AT_ERR_INVALIDPATH = 1009
    AT_ERR_NO_NEW_DATA = 1010
    AT_ERR_SPOOLING_NOT_CONFIGURED = 1011


class ATException(Exception):
    def __init__(self, err_code: int, message: str = ""):
        try:
            self.err_code: int = ErrorCodes(err_code)
            self.err_str = self.err_code.name
        except ValueError:
            self.err_code = err_code
            self.err_str = "Unknown Error"
        text = f"{int(err_code)} ({self.err_str})"
        super().__init__(f"{message} - {text}" if message else text)

    def _get_message(self) -> str:
        return str(self)


class ATCoreException(ATException):
    """Raised by ATCore for any nonzero return code."""


class CameraException(ATCoreException):
    """Raised by the attribute-magic Camera class, wrapping an ATCoreException with context."""


class ATUtilityException(ATException):
    """Raised by the utility library (conversion, metadata)."""


def fail(code: int) -> ATCoreException:
    """The exception ATCore raises for return code ``code``."""
    return ATCoreException(code)

