"""The host clock: how well it is synchronised to UTC, and brackets of the camera clock read against it.

The kernel keeps the state its time daemon (chrony, ntpd, phc2sys) last reported: an estimated and a
maximum error, the offset it is still slewing out and ``STA_*`` status bits. glibc's ``ntp_adjtime``
reads it without privileges when ``modes`` is 0 (nothing is set). The clock counts as synchronised
unless the call reports ``TIME_ERROR`` or the status has ``STA_UNSYNC`` (the daemon has not disciplined
the clock, or the kernel gave up on it once the maximum error passed 16 s).

``struct timex`` is laid out here for Linux on 64-bit machines (x86_64, aarch64 and the other LP64
ones: all longs are 8 bytes, an int before a long is padded to 8); elsewhere the state is reported as
unknown, with the reason, rather than read through a guessed layout.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import time
from collections.abc import Callable

from andor_twisted.protocol.timebase import Bracket, HostClock

TIME_ERROR = 5  # ntp_adjtime's return value when the clock is not synchronised
STA_UNSYNC = 0x0040
STA_NANO = 0x2000  # offset (and the PLL's times) in nanoseconds instead of microseconds


class Timex(ctypes.Structure):
    """glibc's ``struct timex`` (sys/timex.h) where ``long`` is 64-bit; 208 bytes."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),  # us, or ns with STA_NANO
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),  # us
        ("esterror", ctypes.c_long),  # us
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),  # struct timeval
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


AdjTime = Callable[["ctypes._Pointer[Timex]"], int]


def host_clock_status(adjtime: AdjTime | None = None) -> HostClock:
    """The host clock's synchronisation, read now (a system call: microseconds). ``adjtime`` stands in
    for libc's ``ntp_adjtime`` in tests; a failing call reports ``ctypes.get_errno()``."""
    if adjtime is None:
        adjtime, why = _libc_adjtime()
        if adjtime is None:
            return HostClock(False, source=None, reason=why)
    timex = Timex()  # modes = 0: read only
    result = adjtime(ctypes.pointer(timex))
    if result == -1:
        error = ctypes.get_errno()
        return HostClock(False, source=None, reason=f"ntp_adjtime failed: {os.strerror(error)} (errno {error})")
    offset_unit = 1e-9 if timex.status & STA_NANO else 1e-6
    if result == TIME_ERROR:
        reason: str | None = "the kernel reports the clock unsynchronised (ntp_adjtime returned TIME_ERROR)"
    elif timex.status & STA_UNSYNC:
        reason = "the kernel reports the clock unsynchronised (STA_UNSYNC)"
    else:
        reason = None
    return HostClock(reason is None, estimated_error_s=timex.esterror * 1e-6, maximum_error_s=timex.maxerror * 1e-6,
                     offset_s=timex.offset * offset_unit, status=timex.status, source="ntp_adjtime", reason=reason)


@functools.cache
def _libc_adjtime() -> tuple[AdjTime | None, str | None]:
    if not sys.platform.startswith("linux"):
        return None, f"the host clock's synchronisation is not read on {sys.platform} (no ntp_adjtime)"
    if ctypes.sizeof(ctypes.c_long) != 8:
        return None, "struct timex is laid out here only for 64-bit Linux"
    libc = ctypes.CDLL(None, use_errno=True)  # the process's own libc: no library search
    for name in ("ntp_adjtime", "adjtimex"):
        function = getattr(libc, name, None)
        if function is not None:
            function.argtypes = [ctypes.POINTER(Timex)]
            function.restype = ctypes.c_int
            return function, None
    return None, "the C library has neither ntp_adjtime nor adjtimex"


def read_brackets(read_ticks: Callable[[], int], count: int,
                  now_ns: Callable[[], int] = time.time_ns) -> list[Bracket]:
    """``count`` reads of the camera clock (``read_ticks``, e.g. the SDK's ``TimestampClock``), each
    between two reads of the host's UTC clock. Call it in the thread that owns the camera, with nothing
    else in between: ``protocol.timebase.anchor_from`` keeps the tightest."""
    brackets = []
    for _ in range(count):
        before = now_ns()
        ticks = read_ticks()
        brackets.append(Bracket(before, ticks, now_ns()))
    return brackets
