"""Camera clock ticks to UTC, with a stated uncertainty: values in, values out.

The camera stamps each frame with a tick count of its own clock (``MetadataTimestamp``), nominally
``TimestampClockFrequency`` ticks a second from an arbitrary zero. To put a frame in UTC, the driver
reads the camera's clock (``TimestampClock``) several times, each read bracketed by two readings of the
host's UTC clock (``time.time_ns()``): a ``Bracket``. The tick count was latched at some instant inside
its bracket, so the tightest bracket maps that count to the bracket's midpoint, give or take half its
width: an ``Anchor``. An anchor at the start of an acquisition and one at its end fix the line from
ticks to UTC (its slope is the camera clock's rate as the host clock sees it); with the start anchor
alone, the nominal frequency stands in for the slope and the uncertainty grows with the distance
from the anchor at an assumed bound on the clock's drift (``ASSUMED_DRIFT_PPM``).

The uncertainty of a frame's time (``TimeBase.uncertainty_s``) is the sum of
- the anchors' terms: between two anchors each anchor's error weighs in by the lever of a line
  through two points, ``|1 - l| H0 + |l| H1`` with ``l`` the tick's fraction of the way from start
  to end anchor (between them at most the larger of H0 and H1, beyond them it grows linearly);
  with one anchor ``H0 + ASSUMED_DRIFT_PPM * |elapsed|``. ``H`` is an anchor's half width plus one
  tick, because the count an anchor reads became current up to one tick before it was latched;
- one tick for the frame's own stamp, which rounds its exposure start down to a whole tick;
- the host clock's own estimated error (``HostClock.estimated_error_s``, from the kernel's NTP state)
  when the host clock is synchronised. When it is not, times are still given, relative to the host
  clock, but ``utc_trusted`` is False and ``utc_reason`` says why: no number is invented for it.

What is assumed: that the camera clock runs at a constant rate over an acquisition (a crystal's rate
wanders by far less than a ppm over minutes) and that the host clock's error is constant over it
(its rate error then counts as camera drift, which the two anchors measure). Beyond the end anchor
the line is extrapolated with the measured slope: a frame taken later than the end anchor should get
a new anchor instead.

``TimeBase.to_json()`` is the object the server sends (docs/timing.md); ticks and nanoseconds travel
as decimal strings, because UTC nanoseconds (about 1.7e18) and long tick counts exceed 2**53, past
which a JSON number loses integers in JavaScript and other readers that parse numbers as doubles.
The client reads the same object (``client/andor/timebase.py``); docs/timebase-vectors.json holds
both to the same results.

A camera stamping absolute time itself (IRIG-B via ``MetadataIRIG``) needs no anchors: its stamps,
converted to UTC nanoseconds by the driver, map to themselves (``TimeBase.absolute``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

# An assumed bound on how far a camera clock's rate may be from its nominal frequency, in ppm: ordinary
# quartz crystals are specified to +-20..50 ppm at 25 C, plus a few ppm a year of ageing and tens over
# the temperature range, so 100 ppm covers the usual tolerances with room to spare. It is an assumption,
# used only while a time base has its start anchor alone: once the end anchor exists, the rate is
# measured (``TimeBase.drift_ppm``) and the stated uncertainty comes from the measurement alone.
ASSUMED_DRIFT_PPM = 100.0


@dataclasses.dataclass(frozen=True)
class Bracket:
    """One read of the camera clock (``ticks``) between two reads of the host's UTC clock.

    ``host_before_ns`` and ``host_after_ns`` are UTC nanoseconds from CLOCK_REALTIME
    (``time.time_ns()``), read just before and just after the camera clock.
    """

    host_before_ns: int
    ticks: int
    host_after_ns: int

    @property
    def width_ns(self) -> int:
        return self.host_after_ns - self.host_before_ns


@dataclasses.dataclass(frozen=True)
class Anchor:
    """The camera clock read ``ticks`` at ``utc_ns`` (host clock), give or take ``half_width_ns``."""

    ticks: int
    utc_ns: int
    half_width_ns: int

    def to_json(self) -> dict[str, str]:
        return {"ticks": str(self.ticks), "utc_ns": str(self.utc_ns), "half_width_ns": str(self.half_width_ns)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Anchor:
        return cls(_integer(obj["ticks"]), _integer(obj["utc_ns"]), _integer(obj["half_width_ns"]))


def anchor_from(brackets: Iterable[Bracket]) -> Anchor:
    """The anchor of the tightest bracket: its midpoint, give or take half its width (rounded up, so
    that the interval covers the whole bracket). The first of equally tight brackets wins."""
    brackets = list(brackets)
    if not brackets:
        raise ValueError("no bracket to anchor the camera clock to")
    for b in brackets:
        if b.width_ns < 0:
            raise ValueError(f"a bracket ends before it starts (the host clock stepped back?): {b}")
    tightest = min(brackets, key=lambda b: b.width_ns)
    half_width = (tightest.width_ns + 1) // 2
    return Anchor(tightest.ticks, tightest.host_after_ns - half_width, half_width)


@dataclasses.dataclass(frozen=True)
class HostClock:
    """How well the clock behind the anchors' UTC times is synchronised.

    Filled from the kernel's NTP state by ``andor_twisted.hostclock.host_clock_status``, read-only:
    ``estimated_error_s`` and ``maximum_error_s`` are the kernel's ``esterror`` and ``maxerror`` as the
    synchronisation daemon (chrony, ntpd, ptp4l's phc2sys, ...) last set them; ``offset_s`` the offset
    the kernel is still slewing out; ``status`` its ``STA_*`` bits. ``synchronised`` is False when the
    clock cannot be trusted or its state cannot be read, with the reason; ``source`` names where the
    numbers come from (``"ntp_adjtime"``), or, for a camera stamping absolute time, its time source.
    """

    synchronised: bool
    estimated_error_s: float | None = None
    maximum_error_s: float | None = None
    offset_s: float | None = None
    status: int | None = None
    source: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.synchronised and self.estimated_error_s is None:
            raise ValueError("a synchronised clock needs its estimated error")
        if not self.synchronised and not self.reason:
            raise ValueError("an unsynchronised clock needs the reason")

    def worse(self, other: HostClock) -> HostClock:
        """Of two readings (at the start and at the end of an acquisition), the one that trusts less:
        an unsynchronised one, else the one with the larger estimated error."""
        if not self.synchronised:
            return self
        if not other.synchronised:
            return other
        assert self.estimated_error_s is not None and other.estimated_error_s is not None
        return other if other.estimated_error_s > self.estimated_error_s else self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HostClock:
        fields: dict[str, Any] = {f.name: obj.get(f.name) for f in dataclasses.fields(cls)}
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class TimeBase:
    """The map from camera ticks to UTC nanoseconds, and its uncertainty (see the module docstring).

    ``start`` is the anchor read at the start of an acquisition, ``end`` the one read at its end (or
    None until then); ``tick_frequency_hz`` the camera's nominal ``TimestampClockFrequency``.
    """

    start: Anchor
    end: Anchor | None
    tick_frequency_hz: float
    host_clock: HostClock
    assumed_drift_ppm: float = ASSUMED_DRIFT_PPM

    def __post_init__(self) -> None:
        if not self.tick_frequency_hz > 0:
            raise ValueError(f"the tick frequency must be positive, not {self.tick_frequency_hz}")
        if not self.assumed_drift_ppm >= 0:
            raise ValueError(f"the assumed drift must be >= 0 ppm, not {self.assumed_drift_ppm}")
        if self.end is not None and not (self.end.ticks > self.start.ticks and self.end.utc_ns > self.start.utc_ns):
            raise ValueError(f"the end anchor {self.end} is not after the start anchor {self.start} "
                             "(was the camera clock reset, or the host clock stepped back, in between?)")

    @classmethod
    def absolute(cls, uncertainty_s: float | None, source: str = "MetadataIRIG",
                 reason: str | None = None) -> TimeBase:
        """The time base of a camera that stamps UTC itself (IRIG-B through ``MetadataIRIG``), whose
        frame "ticks" are the UTC nanoseconds the driver decoded from the stamps: the map is the
        identity, with the time source's ``uncertainty_s``, or None with the ``reason`` when the
        source is not locked. (An anchor at 0, one tick a nanosecond and no drift: any reader of the
        JSON handles it without a special case; it adds 2 ns of tick terms.)"""
        clock = HostClock(uncertainty_s is not None, estimated_error_s=uncertainty_s, source=source,
                          reason=None if uncertainty_s is not None else reason)
        return cls(Anchor(0, 0, 0), None, 1e9, clock, assumed_drift_ppm=0.0)

    @property
    def measured(self) -> bool:
        """Whether the map's slope is the one measured between the anchors: only when that measurement is
        better than the assumed bound on the drift (anchors a fraction of a second apart, as for a snap or a
        short burst, measure it worse than the crystal's tolerance: then the nominal rate is used)."""
        if self.end is None:
            return False
        tick_ns = 1e9 / self.tick_frequency_hz
        errors = self.start.half_width_ns + self.end.half_width_ns + 2 * tick_ns
        return errors / (self.end.utc_ns - self.start.utc_ns) * 1e6 <= self.assumed_drift_ppm

    @property
    def ns_per_tick(self) -> float:
        """The slope of the map: measured between two anchors if that is good enough, else nominal."""
        if not self.measured:
            return 1e9 / self.tick_frequency_hz
        assert self.end is not None
        return (self.end.utc_ns - self.start.utc_ns) / (self.end.ticks - self.start.ticks)

    @property
    def drift_ppm(self) -> float | None:
        """How much faster than nominal the camera clock ran between the anchors, in ppm of the
        nominal frequency, against the host clock; None without an end anchor."""
        if self.end is None:
            return None
        slope = (self.end.utc_ns - self.start.utc_ns) / (self.end.ticks - self.start.ticks)
        return (1e9 / slope / self.tick_frequency_hz - 1) * 1e6

    @property
    def drift_uncertainty_ppm(self) -> float | None:
        """How far ``drift_ppm`` may be from the truth: the anchors' errors over the time between
        them (to first order); None without an end anchor."""
        if self.end is None:
            return None
        tick_ns = 1e9 / self.tick_frequency_hz
        errors = self.start.half_width_ns + self.end.half_width_ns + 2 * tick_ns
        return errors / (self.end.utc_ns - self.start.utc_ns) * 1e6

    @property
    def utc_trusted(self) -> bool:
        """Whether the host clock was synchronised, so that the times are UTC within the uncertainty."""
        return self.host_clock.synchronised

    @property
    def utc_reason(self) -> str | None:
        """Why the times are not trusted as UTC (None when they are)."""
        return None if self.host_clock.synchronised else self.host_clock.reason

    def to_utc_ns(self, ticks: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """UTC nanoseconds (int64) of tick counts, rounded to the nearest nanosecond."""
        elapsed = np.asarray(ticks, dtype=np.int64) - np.int64(self.start.ticks)
        # The integer part of the slope multiplies exactly; only the fraction goes through a double,
        # so that a whole number of nanoseconds a tick (IRIG's 1) maps 1.7e18 exactly.
        slope = self.ns_per_tick
        whole = math.floor(slope)
        scaled = elapsed * np.int64(whole) + np.rint(elapsed * (slope - whole)).astype(np.int64)
        result: npt.NDArray[np.int64] = scaled + np.int64(self.start.utc_ns)
        return result

    def to_datetime64(self, ticks: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
        """UTC times of tick counts as numpy ``datetime64[ns]``."""
        return self.to_utc_ns(ticks).view("datetime64[ns]")

    def uncertainty_s(self, ticks: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """How far from UTC (in seconds, float64) the time of each tick count may be."""
        elapsed = (np.asarray(ticks, dtype=np.int64) - np.int64(self.start.ticks)).astype(np.float64)
        tick_ns = 1e9 / self.tick_frequency_hz
        start = self.start.half_width_ns + tick_ns
        if self.end is None or not self.measured:
            anchors = start + self.assumed_drift_ppm * 1e-6 * np.abs(elapsed) * tick_ns
        else:
            lever = elapsed / (self.end.ticks - self.start.ticks)
            anchors = np.abs(1 - lever) * start + np.abs(lever) * (self.end.half_width_ns + tick_ns)
        host = self.host_clock.estimated_error_s if self.host_clock.synchronised else None
        result: npt.NDArray[np.float64] = (anchors + tick_ns) * 1e-9 + (host or 0.0)
        return result

    def max_uncertainty_s(self, first_ticks: int, last_ticks: int) -> float:
        """The largest uncertainty of any tick count from ``first_ticks`` to ``last_ticks``: one number
        for a burst. The uncertainty is convex in the ticks, so the larger of the two ends is it."""
        return float(self.uncertainty_s([first_ticks, last_ticks]).max())

    def to_json(self) -> dict[str, Any]:
        """The JSON object sent to clients (docs/timing.md); ticks and ns values are decimal strings."""
        return {
            "tick_frequency_hz": self.tick_frequency_hz,
            "start": self.start.to_json(),
            "end": None if self.end is None else self.end.to_json(),
            "assumed_drift_ppm": self.assumed_drift_ppm,
            "host_clock": self.host_clock.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TimeBase:
        end = obj["end"]
        return cls(Anchor.from_json(obj["start"]), None if end is None else Anchor.from_json(end),
                   float(obj["tick_frequency_hz"]), HostClock.from_json(obj["host_clock"]),
                   float(obj["assumed_drift_ppm"]))


def _integer(value: object) -> int:
    """An integer sent as a decimal string (a JSON number might have lost digits on its way)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an integer as a decimal string, got {value!r}")
    return int(value)
