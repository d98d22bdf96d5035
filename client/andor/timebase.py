"""Camera ticks to UTC, from the time base the server sends with a burst or a snap.

The server anchors the camera's tick clock to its own UTC clock at the start and end of an
acquisition; this reads the JSON object it sends (docs/timing.md) and applies it. The server's
``andor_twisted.protocol.timebase`` computes the same, and docs/timebase-vectors.json holds both to it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


class TimeBase:
    """``times(ticks)``: UTC ``datetime64[ns]``; ``uncertainty_s(ticks)``: how far off they may be.

    ``utc_trusted`` is False when the server's clock was not synchronised: the times are then the
    server clock's, and ``utc_reason`` says why.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.tick_frequency_hz = float(spec["tick_frequency_hz"])
        self._anchors = [(int(a["ticks"]), int(a["utc_ns"]), int(a["half_width_ns"]))
                         for a in (spec["start"], spec["end"]) if a is not None]
        clock = spec["host_clock"]
        self.utc_trusted = bool(clock["synchronised"])
        self.utc_reason = None if self.utc_trusted else clock.get("reason")
        self._clock_error_s = clock["estimated_error_s"] if self.utc_trusted else 0.0

    def _measured(self) -> bool:
        """Whether the slope measured between the anchors beats the assumed drift bound (as the server)."""
        if len(self._anchors) == 1:
            return False
        (t0, u0, h0), (t1, u1, h1) = self._anchors
        errors = h0 + h1 + 2e9 / self.tick_frequency_hz
        return errors / (u1 - u0) * 1e6 <= float(self.spec["assumed_drift_ppm"])

    def _ns_per_tick(self) -> float:
        if not self._measured():
            return 1e9 / self.tick_frequency_hz
        (t0, u0, _), (t1, u1, _) = self._anchors
        return (u1 - u0) / (t1 - t0)

    def utc_ns(self, ticks: ArrayLike) -> NDArray[np.int64]:
        """UTC nanoseconds (int64) of tick counts."""
        t0, u0, _ = self._anchors[0]
        elapsed = np.asarray(ticks, np.int64) - np.int64(t0)
        slope = self._ns_per_tick()
        whole = math.floor(slope)  # exact in integers; only the fraction of the slope goes through a double
        return elapsed * np.int64(whole) + np.rint(elapsed * (slope - whole)).astype(np.int64) + np.int64(u0)

    def times(self, ticks: ArrayLike) -> NDArray[np.datetime64]:
        """UTC times of tick counts, numpy ``datetime64[ns]``."""
        return self.utc_ns(ticks).view("datetime64[ns]")

    def uncertainty_s(self, ticks: ArrayLike) -> NDArray[np.float64]:
        """How far from UTC each time may be, in seconds (float64)."""
        tick_ns = 1e9 / self.tick_frequency_hz
        t0, _, h0 = self._anchors[0]
        elapsed = (np.asarray(ticks, np.int64) - np.int64(t0)).astype(np.float64)
        if not self._measured():
            drift = float(self.spec["assumed_drift_ppm"]) * 1e-6
            anchors = h0 + tick_ns + drift * np.abs(elapsed) * tick_ns
        else:
            t1, _, h1 = self._anchors[1]
            lever = elapsed / (t1 - t0)
            anchors = np.abs(1 - lever) * (h0 + tick_ns) + np.abs(lever) * (h1 + tick_ns)
        return (anchors + tick_ns) * 1e-9 + self._clock_error_s
