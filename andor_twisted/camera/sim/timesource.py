"""Where the simulated camera gets its time: the system's clocks, or a test's task.Clock.

``now()`` is the simulator's time line (seconds); ``utc_ns(t)`` says which UTC instant a time on it
is, for what a camera with an IRIG-B input would stamp; ``host_ns()`` is the host's UTC clock, as the
driver reads it (``time.time_ns`` in production).
"""

from __future__ import annotations

import time
from typing import Protocol

from twisted.internet.task import Clock

# where a test's clock starts in UTC: 2026-12-01T00:00:00Z
CLOCK_EPOCH_NS = 1_796_083_200 * 10**9


class TimeSource(Protocol):
    """What the simulated camera needs of its time: ``SystemTime`` or ``ClockTime``."""

    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    def utc_ns(self, t: float) -> int: ...
    def host_ns(self) -> int: ...


class SystemTime:
    """Real time: a wait really sleeps, in the SDK thread, as the real SDK blocks."""

    def __init__(self) -> None:
        self._utc_offset_ns = time.time_ns() - time.monotonic_ns()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def utc_ns(self, t: float) -> int:
        return round(t * 1e9) + self._utc_offset_ns

    def host_ns(self) -> int:
        return time.time_ns()


class ClockTime:
    """Time from a ``twisted.internet.task.Clock``: sleeping advances the clock, so a test that waits for
    a frame sees exactly the frames the physics delivers by then, without real waiting. The host's UTC
    clock reads ``host_offset_s`` off the truth (a badly set host clock)."""

    def __init__(self, clock: Clock, host_offset_s: float = 0.0):
        self.clock = clock
        self.host_offset_ns = round(host_offset_s * 1e9)

    def now(self) -> float:
        return self.clock.seconds()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.clock.advance(seconds)

    def utc_ns(self, t: float) -> int:
        return CLOCK_EPOCH_NS + round(t * 1e9)

    def host_ns(self) -> int:
        return self.utc_ns(self.clock.seconds()) + self.host_offset_ns
