"""Camera ticks to UTC (andor_twisted.protocol.timebase): anchors, the map and its stated uncertainty,
the JSON, and the recovery of a simulated camera clock with an offset, a drift and jittery reads."""

import json
from fractions import Fraction

import numpy as np
from twisted.trial import unittest

from andor_twisted.protocol.timebase import ASSUMED_DRIFT_PPM, Anchor, Bracket, HostClock, TimeBase, anchor_from
from tests.timebase_vectors import VECTORS, check_reader

F_NOMINAL = 100_000_000  # Hz
SYNCHRONISED = HostClock(True, estimated_error_s=0.001, maximum_error_s=0.01, offset_s=0.0, status=0x2001,
                         source="ntp_adjtime")
UNSYNCHRONISED = HostClock(False, source="ntp_adjtime", reason="the kernel reports the clock unsynchronised")


class VectorTests(unittest.SynchronousTestCase):
    def test_vectors(self):
        """The server's TimeBase, read from each vector's JSON, maps its ticks to its UTC nanoseconds and
        uncertainties, and trusts the times as UTC exactly when the vector says."""
        def reader(spec):
            timebase = TimeBase.from_json(spec)
            return timebase.to_utc_ns, timebase.uncertainty_s, timebase.utc_trusted
        check_reader(self, reader)

    def test_vectors_round_trip(self):
        """Each vector's JSON object is what the TimeBase read from it writes back, through json text."""
        for v in VECTORS:
            timebase = TimeBase.from_json(v["timebase"])
            self.assertEqual(json.loads(json.dumps(timebase.to_json())), v["timebase"], v["description"])
            self.assertEqual(TimeBase.from_json(json.loads(json.dumps(timebase.to_json()))), timebase)

    def test_drift_of_the_vectors(self):
        """drift_ppm is the vector's measured drift with two anchors and None with one."""
        for v in VECTORS:
            drift = TimeBase.from_json(v["timebase"]).drift_ppm
            if v["drift_ppm"] is None:
                self.assertIsNone(drift, v["description"])
            else:
                self.assertAlmostEqual(drift, v["drift_ppm"], places=9, msg=v["description"])


class AnchorTests(unittest.SynchronousTestCase):
    def test_tightest_bracket(self):
        """The anchor is the tightest bracket's: its ticks, its midpoint, half its width; the first of
        equally tight ones."""
        brackets = [Bracket(1000, 5, 1300), Bracket(2000, 15, 2100), Bracket(3000, 25, 3100), Bracket(4000, 35, 4250)]
        self.assertEqual(anchor_from(brackets), Anchor(15, 2050, 50))
        self.assertEqual(anchor_from(iter(brackets)), Anchor(15, 2050, 50))

    def test_odd_width(self):
        """An odd width rounds the half width up, so the anchor's interval covers the whole bracket."""
        anchor = anchor_from([Bracket(1000, 7, 1101)])
        self.assertEqual(anchor, Anchor(7, 1050, 51))
        self.assertLessEqual(anchor.utc_ns - anchor.half_width_ns, 1000)
        self.assertGreaterEqual(anchor.utc_ns + anchor.half_width_ns, 1101)

    def test_refused(self):
        """No bracket, or one that ends before it starts, is a ValueError."""
        self.assertRaises(ValueError, anchor_from, [])
        self.assertRaises(ValueError, anchor_from, [Bracket(1000, 7, 1100), Bracket(2000, 8, 1999)])


class TimeBaseTests(unittest.SynchronousTestCase):
    start = Anchor(1_000_000, 1_733_097_600_000_000_000, 3_000)
    end = Anchor(6_001_000_000, 1_733_097_660_000_000_000, 5_000)

    def test_refused(self):
        """An end anchor not after the start (a reset camera clock, a host clock stepped back), a
        frequency that is not positive and a negative assumed drift are ValueErrors; so is a host clock
        that is synchronised without an error, or unsynchronised without a reason."""
        self.assertRaises(ValueError, TimeBase, self.end, self.start, F_NOMINAL, SYNCHRONISED)
        self.assertRaises(ValueError, TimeBase, self.start, Anchor(0, self.end.utc_ns, 1), F_NOMINAL, SYNCHRONISED)
        self.assertRaises(ValueError, TimeBase, self.start, None, 0.0, SYNCHRONISED)
        self.assertRaises(ValueError, TimeBase, self.start, None, F_NOMINAL, SYNCHRONISED, -1.0)
        self.assertRaises(ValueError, HostClock, True)
        self.assertRaises(ValueError, HostClock, False)

    def test_json_integers_are_strings(self):
        """Ticks and nanoseconds go over JSON as decimal strings (exact past 2**53 in any reader); a
        number in their place is refused rather than trusted."""
        obj = TimeBase(self.start, self.end, F_NOMINAL, SYNCHRONISED).to_json()
        self.assertEqual(obj["start"], {"ticks": "1000000", "utc_ns": "1733097600000000000", "half_width_ns": "3000"})
        self.assertEqual(obj["end"]["utc_ns"], "1733097660000000000")
        self.assertEqual(obj["assumed_drift_ppm"], ASSUMED_DRIFT_PPM)
        self.assertEqual(obj["host_clock"]["source"], "ntp_adjtime")
        obj["start"]["utc_ns"] = 1733097600000000000
        self.assertRaises(ValueError, TimeBase.from_json, obj)

    def test_datetime64(self):
        """to_datetime64 gives numpy datetime64[ns] UTC times."""
        times = TimeBase(self.start, self.end, F_NOMINAL, SYNCHRONISED).to_datetime64([1_000_000, 3_001_000_000])
        self.assertEqual(times.dtype, np.dtype("datetime64[ns]"))
        self.assertEqual([str(t) for t in times], ["2024-12-02T00:00:00.000000000", "2024-12-02T00:00:30.000000000"])

    def test_max_uncertainty(self):
        """max_uncertainty_s over a range of ticks is the largest of every tick count's in it, between
        and beyond the anchors, with one anchor or two."""
        for end in (None, self.end):
            timebase = TimeBase(self.start, end, F_NOMINAL, SYNCHRONISED)
            for first, last in ((2_000_000, 5_000_000_000), (-3_000_000_000, 2_000_000_000), (5_000_000, 9e9)):
                dense = timebase.uncertainty_s(np.linspace(first, last, 10_001).astype(np.int64))
                self.assertEqual(timebase.max_uncertainty_s(first, int(last)), dense.max())

    def test_between_anchors_at_most_the_larger(self):
        """Between two anchors the anchors' term is at most the larger half width (plus the ticks' own
        resolution); only the host clock's error comes on top."""
        timebase = TimeBase(self.start, self.end, F_NOMINAL, SYNCHRONISED)
        between = timebase.uncertainty_s(np.linspace(self.start.ticks, self.end.ticks, 1001).astype(np.int64))
        self.assertLessEqual(between.max(), 0.001 + (5_000 + 20) * 1e-9)
        self.assertAlmostEqual(between[-1], 0.001 + 5_020e-9, places=15)

    def test_unsynchronised_host_clock(self):
        """With the host clock unsynchronised the times are still given, not trusted as UTC, with the
        reason, and the uncertainty holds only what was measured (no number for the host clock)."""
        trusted = TimeBase(self.start, self.end, F_NOMINAL, SYNCHRONISED)
        untrusted = TimeBase(self.start, self.end, F_NOMINAL, UNSYNCHRONISED)
        ticks = [1_000_000, 4_000_000_000]
        self.assertTrue(trusted.utc_trusted)
        self.assertIsNone(trusted.utc_reason)
        self.assertFalse(untrusted.utc_trusted)
        self.assertIn("unsynchronised", untrusted.utc_reason)
        self.assertEqual(untrusted.to_utc_ns(ticks).tolist(), trusted.to_utc_ns(ticks).tolist())
        np.testing.assert_allclose(untrusted.uncertainty_s(ticks) + 0.001, trusted.uncertainty_s(ticks), rtol=1e-12)

    def test_worse_host_clock(self):
        """Of the host clock's readings at the start and at the end, the one trusting less is kept."""
        looser = HostClock(True, estimated_error_s=0.004, source="ntp_adjtime")
        self.assertIs(SYNCHRONISED.worse(looser), looser)
        self.assertIs(looser.worse(SYNCHRONISED), looser)
        self.assertIs(looser.worse(UNSYNCHRONISED), UNSYNCHRONISED)
        self.assertIs(UNSYNCHRONISED.worse(looser), UNSYNCHRONISED)


class AbsoluteTimeTests(unittest.SynchronousTestCase):
    def test_identity(self):
        """A camera stamping UTC itself (IRIG-B): its UTC nanoseconds map to themselves exactly, far past
        2**53, with the time source's uncertainty (and 2 ns of tick terms)."""
        timebase = TimeBase.absolute(2e-6)
        utc = np.array([1_733_097_600_123_456_789, 1_733_097_600_123_456_790, 2**62 + 1], np.int64)
        self.assertEqual(timebase.to_utc_ns(utc).tolist(), utc.tolist())
        np.testing.assert_allclose(timebase.uncertainty_s(utc), 2e-6 + 2e-9, rtol=1e-12)
        self.assertTrue(timebase.utc_trusted)
        self.assertEqual(timebase.host_clock.source, "MetadataIRIG")
        self.assertEqual(TimeBase.from_json(json.loads(json.dumps(timebase.to_json()))), timebase)

    def test_unlocked(self):
        """An IRIG source that is not locked gives untrusted times, with the reason and no number for it."""
        timebase = TimeBase.absolute(None, reason="no IRIG-B signal")
        self.assertFalse(timebase.utc_trusted)
        self.assertEqual(timebase.utc_reason, "no IRIG-B signal")
        self.assertAlmostEqual(float(timebase.uncertainty_s([10**18])[0]), 2e-9, places=15)


class SimulatedClocks:
    """A camera clock and a host clock against the true UTC (integer nanoseconds, no real time).

    The camera counts ``F_NOMINAL * (1 + drift)`` ticks a true second from an offset, rounding down to
    whole ticks; the host clock reads the true time plus a constant ``host_error_ns``. A read of the
    camera clock lasts 5 to 300 us and latches the count at a random point inside its bracket.
    """

    def __init__(self, rng, drift_ppm, host_error_ns, epoch_ns):
        self.rng = rng
        rate = Fraction(F_NOMINAL) * (1 + Fraction(drift_ppm) / 10**6) / 10**9  # ticks a nanosecond, exactly
        self.numerator, self.denominator = rate.numerator, rate.denominator
        self.epoch_ns = epoch_ns
        self.tick_offset = int(rng.integers(0, 2**40))
        self.host_error_ns = host_error_ns

    def ticks(self, true_ns):
        return self.tick_offset + (np.asarray(true_ns, np.int64) - self.epoch_ns) * self.numerator // self.denominator

    def host(self, true_ns):
        return true_ns + self.host_error_ns

    def brackets(self, true_ns, count):
        """``count`` reads of the camera clock one after another from ``true_ns``."""
        brackets = []
        for _ in range(count):
            width = int(self.rng.integers(5_000, 300_001))
            latched = true_ns + int(self.rng.integers(0, width + 1))
            brackets.append(Bracket(self.host(true_ns), int(self.ticks(latched)), self.host(true_ns + width)))
            true_ns += width + int(self.rng.integers(1_000, 50_000))
        return brackets


class RecoveryTests(unittest.SynchronousTestCase):
    """Anchors at the start and 60 s later of a simulated camera clock with an offset, a drift and jittery
    reads, and frames between and beyond them: the recovered UTC must lie within the stated uncertainty."""

    epoch_ns = 1_733_097_600_000_000_000
    host_error_s = 0.001  # the host clock's stated estimated error

    def simulate(self, seed, drift_ppm, host=SYNCHRONISED, host_error_ns=None):
        rng = np.random.default_rng(seed)
        if host_error_ns is None:
            host_error_ns = int(rng.integers(-1_000_000, 1_000_001))  # within the stated 1 ms
        clocks = SimulatedClocks(rng, drift_ppm, host_error_ns, self.epoch_ns + int(rng.integers(0, 10**12)))
        start = clocks.brackets(clocks.epoch_ns, 10)
        end = clocks.brackets(clocks.epoch_ns + 60_000_000_000, 10)
        # frames from 10 s before the start anchor to 30 s after the end anchor, most between them
        true_ns = np.sort(clocks.epoch_ns + np.concatenate([
            rng.integers(-10_000_000_000, 0, 200), rng.integers(2_400_000_000, 60_000_000_000, 2000),
            rng.integers(60_010_000_000, 90_000_000_000, 300)]))
        return clocks, start, end, true_ns, clocks.ticks(true_ns)

    def assert_within(self, timebase, true_ns, ticks, seed):
        error_ns = np.abs(timebase.to_utc_ns(ticks) - true_ns).astype(np.float64)
        allowed_ns = timebase.uncertainty_s(ticks) * 1e9
        worst = int(np.argmax(error_ns / allowed_ns))
        self.assertTrue(np.all(error_ns <= allowed_ns), f"seed {seed}: frame {worst} off by "
                        f"{error_ns[worst]:.0f} ns, stated {allowed_ns[worst]:.0f} ns")

    def test_recovered_within_uncertainty(self):
        """With both anchors (drift measured) and with the start anchor alone (drift assumed at most 100
        ppm), every frame's recovered UTC is within its stated uncertainty of the truth, for clocks
        37 ppm fast and 80 ppm slow, and between the anchors the uncertainty stays near the bracket."""
        for seed in range(20):
            for drift_ppm in (37, -80):
                clocks, start, end, true_ns, ticks = self.simulate(seed, drift_ppm)
                both = TimeBase(anchor_from(start), anchor_from(end), F_NOMINAL, SYNCHRONISED)
                self.assert_within(both, true_ns, ticks, seed)
                one = TimeBase(anchor_from(start), None, F_NOMINAL, SYNCHRONISED)
                self.assert_within(one, true_ns, ticks, seed)
                between = ticks[(ticks > both.start.ticks) & (ticks < both.end.ticks)]
                self.assertLessEqual(both.max_uncertainty_s(between[0], between[-1]),
                                     self.host_error_s + 150e-6 + 30e-9)

    def test_drift_recovered(self):
        """drift_ppm recovers the simulated drift within drift_uncertainty_ppm, the most the anchors'
        half widths allow over 60 s (at most 5 ppm: two half widths of 150 us)."""
        for seed in range(20):
            for drift_ppm in (37, -80):
                clocks, start, end, true_ns, ticks = self.simulate(seed, drift_ppm)
                timebase = TimeBase(anchor_from(start), anchor_from(end), F_NOMINAL, SYNCHRONISED)
                self.assertLessEqual(abs(timebase.drift_ppm - drift_ppm), timebase.drift_uncertainty_ppm,
                                     f"seed {seed}")
                self.assertLess(timebase.drift_uncertainty_ppm, 5.001)

    def test_tightest_bracket_chosen(self):
        """Of the simulated reads, the anchor is the narrowest's, and its interval holds the true time
        (on the host clock) at which its count was latched."""
        clocks, start, end, true_ns, ticks = self.simulate(1, 37)
        anchor = anchor_from(start)
        tightest = min(start, key=lambda b: b.host_after_ns - b.host_before_ns)
        self.assertEqual(anchor.ticks, tightest.ticks)
        self.assertEqual(anchor.half_width_ns, (tightest.host_after_ns - tightest.host_before_ns + 1) // 2)
        self.assertLess(anchor.half_width_ns, np.median([b.host_after_ns - b.host_before_ns for b in start]) / 2)

    def test_unsynchronised_host_relative(self):
        """With the host clock unsynchronised (and 3 s off), the times are within the stated uncertainty
        of the host clock's time, which is all they claim (utc_trusted is False)."""
        clocks, start, end, true_ns, ticks = self.simulate(2, 37, UNSYNCHRONISED, host_error_ns=3_000_000_000)
        timebase = TimeBase(anchor_from(start), anchor_from(end), F_NOMINAL, UNSYNCHRONISED)
        self.assertFalse(timebase.utc_trusted)
        self.assert_within(timebase, clocks.host(true_ns), ticks, 2)

    def test_bound_is_reached(self):
        """The stated uncertainty is not padded: reads latched at opposite ends of their brackets, with
        an exact host clock, put a frame half the anchors' span beyond the end at 99% of it; a clock off
        by exactly the assumed drift does the same with one anchor."""
        exact = HostClock(True, estimated_error_s=0.0, source="test")
        clocks = SimulatedClocks(np.random.default_rng(0), 0, 0, self.epoch_ns)
        first = Bracket(self.epoch_ns, int(clocks.ticks(self.epoch_ns)), self.epoch_ns + 200_000)
        t = self.epoch_ns + 60_000_000_000
        last = Bracket(t - 200_000, int(clocks.ticks(t)), t)
        timebase = TimeBase(anchor_from([first]), anchor_from([last]), F_NOMINAL, exact)
        true_ns = self.epoch_ns + 90_000_000_000
        ticks = clocks.ticks([true_ns])
        error_ns = abs(int(timebase.to_utc_ns(ticks)[0]) - true_ns)
        self.assertTrue(0.99 <= error_ns / (timebase.uncertainty_s(ticks)[0] * 1e9) <= 1)

        fast = SimulatedClocks(np.random.default_rng(0), ASSUMED_DRIFT_PPM, 0, self.epoch_ns)
        anchor = Anchor(int(fast.ticks(self.epoch_ns)), self.epoch_ns, 0)
        one = TimeBase(anchor, None, F_NOMINAL, exact)
        ticks = fast.ticks([true_ns])
        error_ns = abs(int(one.to_utc_ns(ticks)[0]) - true_ns)
        self.assertTrue(0.99 <= error_ns / (one.uncertainty_s(ticks)[0] * 1e9) <= 1)
