"""The host clock's synchronisation from the kernel's NTP state (andor_twisted.hostclock): the struct
layout, its parsing through a fake ntp_adjtime, this machine's real reading, and brackets."""

import ctypes
import errno
import sys

from twisted.trial import unittest

from andor_twisted import hostclock
from andor_twisted.hostclock import STA_NANO, STA_UNSYNC, TIME_ERROR, Timex, host_clock_status, read_brackets
from andor_twisted.protocol.timebase import Bracket

STA_PLL = 0x0001
TIME_OK = 0


def fake_adjtime(result, error=0, **fields):
    """An ntp_adjtime that checks it is asked to set nothing, fills in ``fields`` and returns ``result``."""
    def adjtime(pointer):
        timex = pointer.contents
        assert timex.modes == 0, "the host clock is only read"
        for name, value in fields.items():
            setattr(timex, name, value)
        ctypes.set_errno(error)
        return result
    return adjtime


class ParsingTests(unittest.SynchronousTestCase):
    def test_layout(self):
        """struct timex as glibc lays it out on 64-bit Linux (x86_64, aarch64): 208 bytes, the fields
        read at the offsets sys/timex.h puts them (checked against gcc's offsetof on x86_64)."""
        if ctypes.sizeof(ctypes.c_long) != 8:
            raise unittest.SkipTest("the layout is for 64-bit longs")
        self.assertEqual(ctypes.sizeof(Timex), 208)
        offsets = {name: getattr(Timex, name).offset for name in ("offset", "maxerror", "esterror", "status", "tai")}
        self.assertEqual(offsets, {"offset": 8, "maxerror": 24, "esterror": 32, "status": 40, "tai": 160})

    def test_synchronised_nanoseconds(self):
        """A disciplined clock (TIME_OK, STA_PLL | STA_NANO): synchronised, errors from microseconds,
        the offset from nanoseconds."""
        status = host_clock_status(fake_adjtime(TIME_OK, status=STA_PLL | STA_NANO, offset=-1500,
                                                esterror=250, maxerror=12_000))
        self.assertTrue(status.synchronised)
        self.assertAlmostEqual(status.estimated_error_s, 250e-6)
        self.assertAlmostEqual(status.maximum_error_s, 0.012)
        self.assertAlmostEqual(status.offset_s, -1.5e-6)
        self.assertEqual(status.status, STA_PLL | STA_NANO)
        self.assertEqual(status.source, "ntp_adjtime")
        self.assertIsNone(status.reason)

    def test_offset_in_microseconds(self):
        """Without STA_NANO the offset is in microseconds."""
        status = host_clock_status(fake_adjtime(TIME_OK, status=STA_PLL, offset=-1500, esterror=1, maxerror=2))
        self.assertAlmostEqual(status.offset_s, -1.5e-3)

    def test_unsynchronised(self):
        """TIME_ERROR, or STA_UNSYNC even with TIME_OK, is an unsynchronised clock, with the reason; the
        numbers the kernel gave are kept."""
        for result, flags, why in ((TIME_ERROR, STA_UNSYNC, "TIME_ERROR"), (TIME_ERROR, 0, "TIME_ERROR"),
                                   (TIME_OK, STA_UNSYNC, "STA_UNSYNC")):
            status = host_clock_status(fake_adjtime(result, status=flags, esterror=16_000_000, maxerror=16_000_000))
            self.assertFalse(status.synchronised)
            self.assertIn(why, status.reason)
            self.assertEqual(status.maximum_error_s, 16.0)

    def test_call_fails(self):
        """A failing call (-1) reports the errno and no numbers."""
        status = host_clock_status(fake_adjtime(-1, error=errno.EPERM))
        self.assertFalse(status.synchronised)
        self.assertIsNone(status.source)
        self.assertIsNone(status.estimated_error_s)
        self.assertIn("Operation not permitted", status.reason)

    def test_no_ntp_adjtime(self):
        """Off Linux there is nothing to read: unsynchronised, no source, and the reason."""
        self.patch(sys, "platform", "darwin")
        function, why = hostclock._libc_adjtime.__wrapped__()
        self.assertIsNone(function)
        self.assertIn("darwin", why)
        self.patch(hostclock, "_libc_adjtime", lambda: (None, why))
        status = host_clock_status()
        self.assertFalse(status.synchronised)
        self.assertIsNone(status.source)
        self.assertEqual(status.reason, why)


class ThisMachineTests(unittest.SynchronousTestCase):
    def test_plausible(self):
        """This machine's real reading is plausible: on 64-bit Linux it comes from ntp_adjtime; a
        synchronised clock has 0 <= estimated error <= maximum error < 16 s; an unsynchronised one says why."""
        status = host_clock_status()
        if sys.platform.startswith("linux") and ctypes.sizeof(ctypes.c_long) == 8:
            self.assertIn(status.source, ("ntp_adjtime", None))  # None: the call itself was refused
        if status.synchronised:
            self.assertLessEqual(0, status.estimated_error_s)
            self.assertLessEqual(status.estimated_error_s, status.maximum_error_s)
            self.assertLess(status.maximum_error_s, 16)
            self.assertFalse(status.status & STA_UNSYNC)
        else:
            self.assertTrue(status.reason)


class BracketTests(unittest.SynchronousTestCase):
    def test_read_brackets(self):
        """Each camera clock read sits between two host clock reads, in order."""
        host = iter(range(1000, 2000, 10))
        ticks = iter(range(5, 100))
        brackets = read_brackets(lambda: next(ticks), 3, now_ns=lambda: next(host))
        self.assertEqual(brackets, [Bracket(1000, 5, 1010), Bracket(1020, 6, 1030), Bracket(1040, 7, 1050)])
