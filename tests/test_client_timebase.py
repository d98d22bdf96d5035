"""The client's reader of time bases (andor.timebase), against docs/timebase-vectors.json."""

import subprocess
import sys

import numpy as np
from twisted.trial import unittest

from andor.timebase import TimeBase
from tests.timebase_vectors import VECTORS, check_reader


class ClientTimeBaseTests(unittest.SynchronousTestCase):
    def test_vectors(self):
        """The client maps each vector's ticks to its UTC nanoseconds and uncertainties, and trusts the
        times as UTC exactly when the vector says."""
        def reader(spec):
            timebase = TimeBase(spec)
            return timebase.utc_ns, timebase.uncertainty_s, timebase.utc_trusted
        check_reader(self, reader)

    def test_times_are_datetime64(self):
        """``times`` gives numpy datetime64[ns] UTC times, exact beyond 2**53 nanoseconds."""
        v = VECTORS[0]
        times = TimeBase(v["timebase"]).times([int(t) for t in v["ticks"]])
        self.assertEqual(times.dtype, np.dtype("datetime64[ns]"))
        self.assertEqual(str(times[0]), "2024-12-02T00:00:00.000000000")
        self.assertEqual(times.astype(np.int64).tolist(), [int(u) for u in v["utc_ns"]])

    def test_untrusted_reason(self):
        """When the server's clock was not synchronised, the reader says why."""
        spec = next(v["timebase"] for v in VECTORS if not v["utc_trusted"])
        timebase = TimeBase(spec)
        self.assertFalse(timebase.utc_trusted)
        self.assertIn("unsynchronised", timebase.utc_reason)

    def test_client_does_not_import_the_server(self):
        """andor.timebase stands alone: the client package never imports andor_twisted."""
        check = ("import sys, andor.timebase; "
                 "print(sorted(m for m in sys.modules if m.split('.')[0] in ('andor_twisted', 'twisted')))")
        out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.strip(), "[]")
