"""What a burst will do, worked out before it runs: a fluid model of frames flowing from the sensor
through on-head memory and the link into the server's spool and on to the reader.

Frames are treated as a fluid (fractions of frames), with rates that are constant between events:

    sensor --e--> on-head memory (C frames) --x--> spool (S frames) --a--> reader

* ``e``, exposures: the frame rate while on-head memory has room. When it is full, a throttling
  camera exposes only as frames leave it (late frames); an overflowing one ends the acquisition
  (lost frames).
* ``x``, the link: at most the interface's frame rate, no faster than frames arrive when on-head memory
  is empty, and no faster than the reader frees room when the spool is full (the server then stops
  taking frames off the camera).
* ``a``, the reader: at its own rate while the spool holds frames. While one reads, the frames it has in
  flight (its acknowledgement window) are held by the server too: S is the spool and the window.

An event is one of these quantities reaching a bound; between events everything is linear, so the
model is exact for the fluid and off by at most about a frame for real frames. The numbers it answers
with (capture time, late and lost frames, the slowest reader that keeps every frame on time) are
predictions: the burst's own ledger says what really happened.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

WhenFull = Literal["throttle", "overflow", "unknown"]
Regime = Literal["camera-paced", "link-paced", "reader-paced", "throttled", "overflow", "stalls"]

_EPS = 1e-9  # frames: a bound counts as reached within this much


@dataclass(frozen=True)
class Camera:
    """What the plan needs to know of the camera, as the camera reports it (None: it does not say)."""

    frame_bytes: int  # ImageSizeBytes
    frame_rate: float  # FrameRate the acquisition will run at, frames/s
    link_frame_rate: float | None  # MaxInterfaceTransferRate, frames/s
    onhead_bytes: int | None  # on-head memory; 0: none
    when_full: WhenFull  # what the model does when on-head memory is full
    arm_s: float = 0.0  # AcquisitionStart to the first exposure
    exposure_s: float = 0.0
    readout_s: float = 0.0


@dataclass(frozen=True)
class Plan:
    """The prediction for one burst. Times are seconds from the request."""

    regime: Regime
    frames: int
    fits_on_head: bool | None  # the whole burst fits in on-head memory (None: its size is unknown)
    onhead_frames: int | None  # frames on-head memory holds
    spool_frames: int
    spool_bytes: int  # the most the spool may hold
    capture_s: float | None  # until the last frame is off the camera (None: never, without a reader)
    exposures_s: float | None  # until the last exposure starts
    late_frames: int  # exposed later than the frame rate allows (a throttling camera)
    lost_frames: int  # never exposed (an overflowing camera ends the acquisition)
    reader_bytes_per_s: float | None  # the reader this plan assumed (None: nobody reads)
    reader_needed_bytes_per_s: float | None  # the slowest reader for which no frame is late or lost
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def plan(camera: Camera, frames: int, spool_frames: int, message_bytes: int,
         reader_bytes_per_s: float | None = None, triggered: bool = False, window_frames: int = 0) -> Plan:
    """Predict a burst of ``frames`` at ``camera.frame_rate`` into a spool of ``spool_frames`` frames
    of ``message_bytes`` each, read at ``reader_bytes_per_s`` (None: nobody reads while it captures),
    who may have ``window_frames`` more in flight (sent, not yet acknowledged: the server holds those too).
    With ``triggered``, triggers set the pace: the plan is for triggers at ``camera.frame_rate``."""
    if frames < 1 or spool_frames < 1 or camera.frame_bytes < 1 or not camera.frame_rate > 0:
        raise ValueError("a plan needs at least one frame, a spool of at least one frame and a frame rate")
    notes = []
    if triggered:
        notes.append(f"triggers set the pace: planned as if they came at {camera.frame_rate:.4g} frames/s, the "
                     f"camera's frame rate setting")
    onhead = None if camera.onhead_bytes is None else camera.onhead_bytes // camera.frame_bytes
    if onhead is None:
        notes.append("the camera's on-head memory is unknown: planned as if it had none")
    link = camera.link_frame_rate
    if link is None or not link > 0:
        notes.append("the camera reports no interface rate: planned as if the link kept up with the sensor")
        link = math.inf
    elif link < camera.frame_rate:
        notes.append(f"the interface carries {link:.4g} frames/s, less than the {camera.frame_rate:.4g} "
                     f"frames/s asked for: on-head memory takes the difference")
    reader = 0.0 if reader_bytes_per_s is None else reader_bytes_per_s / message_bytes
    flow = _Flow(frames, camera.frame_rate, link, onhead or 0, spool_frames, window_frames, reader,
                 camera.when_full if onhead is not None or camera.when_full != "unknown" else "unknown")
    flow.run()
    needed = _reader_needed(camera, frames, spool_frames, window_frames, link, onhead or 0)
    # the fluid's frame k is done at (k+1)/rate; a real frame starts exposing at k/rate and is read
    # out an exposure and a readout later
    tail = camera.exposure_s + camera.readout_s - 1.0 / camera.frame_rate
    if camera.when_full == "unknown" and (flow.late or flow.lost):
        notes.append("what this camera does when its on-head memory is full is not known: it may slow down "
                     "(frames late) or overflow (the acquisition ends, frames lost); planned as slowing down")
    return Plan(
        regime=flow.regime(),
        frames=frames,
        fits_on_head=None if onhead is None else frames <= onhead,
        onhead_frames=onhead,
        spool_frames=spool_frames,
        spool_bytes=spool_frames * message_bytes,
        capture_s=None if flow.captured_at is None else camera.arm_s + max(flow.captured_at + tail, 0.0),
        exposures_s=None if flow.exposed_at is None else camera.arm_s + max(flow.exposed_at - 1.0 / camera.frame_rate,
                                                                            0.0),
        late_frames=round(flow.late),
        lost_frames=round(flow.lost),
        reader_bytes_per_s=reader_bytes_per_s,
        reader_needed_bytes_per_s=None if needed is None else needed * message_bytes,
        notes=notes,
    )


def _reader_needed(camera: Camera, frames: int, spool: int, window: int, link: float,
                   onhead: int) -> float | None:
    """The slowest reader (frames/s) for which no frame is late or lost; 0 if none is needed; None if
    no reader is fast enough (the link or the sensor is the limit)."""
    def on_time(reader: float) -> bool:
        flow = _Flow(frames, camera.frame_rate, link, onhead, spool, window, reader, "throttle")
        flow.run()
        return not flow.stalled and flow.late < 0.5

    if on_time(0.0):
        return 0.0
    high = camera.frame_rate
    if not on_time(high):
        return None
    low = 0.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if on_time(middle) else (middle, high)
    return high if high > 1e-6 else 0.0  # any reader at all will do


class _Flow:
    """The fluid model itself: state in frames, advanced from event to event. While a reader reads, the
    server holds its window of frames in flight beyond the spool."""

    def __init__(self, frames: int, rate: float, link: float, onhead: int, spool: int, window: int, reader: float,
                 when_full: WhenFull):
        self.n, self.f, self.link, self.c, self.r = frames, rate, link, onhead, reader
        self.s = spool + (window if reader > 0 else 0)
        self.when_full = when_full
        self.t = 0.0
        self.exposed = self.transferred = self.read = 0.0
        self.late = self.lost = 0.0
        self.exposed_at: float | None = None
        self.captured_at: float | None = None
        self.throttled = self.overflowed = self.stalled = self.spool_filled = self.link_limited = False

    def regime(self) -> Regime:
        if self.overflowed:
            return "overflow"
        if self.stalled:
            return "stalls"
        if self.late >= 0.5:
            return "throttled"
        if self.spool_filled and self.r > 0:
            return "reader-paced"
        if self.link_limited:
            return "link-paced"
        return "camera-paced"

    def rates(self) -> tuple[float, float, float]:
        onhead = self.exposed - self.transferred
        spooled = self.transferred - self.read
        producing = self.exposed < self.n - _EPS
        full = onhead >= self.c - _EPS
        source = (self.f if producing else 0.0) if onhead <= _EPS else math.inf
        sink = self.r if spooled >= self.s - _EPS else math.inf
        x = min(self.link, source, sink)
        if not producing:
            e = 0.0
        elif full:
            e = min(self.f, x)
        else:
            e = self.f
        a = min(self.r, x) if spooled <= _EPS else self.r
        return e, x, a

    def run(self) -> None:
        for _ in range(10_000):
            if self.transferred >= self.n - _EPS and self.captured_at is None:
                self.captured_at = self.t
            if self.captured_at is not None and (self.r == 0 or self.read >= self.n - _EPS):
                return
            e, x, a = self.rates()
            if e < self.f - _EPS and self.exposed < self.n - _EPS:
                if self.when_full == "overflow":
                    self.overflowed = True
                    self.lost = self.n - self.exposed
                    self.captured_at = None
                    return
                self.throttled = True
            if x < self.f - _EPS and x == self.link:
                self.link_limited = True
            if self.transferred - self.read >= self.s - _EPS and self.exposed > self.transferred + _EPS:
                self.spool_filled = True
            dt = self._next_event(e, x, a)
            if dt is None:
                self.stalled = True
                return
            if e < self.f - _EPS:
                self.late += e * dt  # every frame exposed while the camera waits for room is late
            self.exposed = min(self.exposed + e * dt, float(self.n))
            self.transferred = min(self.transferred + x * dt, self.exposed)
            self.read = min(self.read + a * dt, self.transferred)
            self.t += dt
            if self.exposed >= self.n - _EPS and self.exposed_at is None:
                self.exposed_at = self.t
        raise RuntimeError("the burst plan did not converge")

    def _next_event(self, e: float, x: float, a: float) -> float | None:
        onhead = self.exposed - self.transferred
        spooled = self.transferred - self.read
        candidates = []
        if e > 0:
            candidates.append((self.n - self.exposed) / e)
        if e > x and onhead < self.c - _EPS:
            candidates.append((self.c - onhead) / (e - x))
        if x > e and onhead > _EPS:
            candidates.append(onhead / (x - e))
        if x > a and spooled < self.s - _EPS:
            candidates.append((self.s - spooled) / (x - a))
        if a > x and spooled > _EPS:
            candidates.append(spooled / (a - x))
        if x > 0 and self.transferred < self.n - _EPS:
            candidates.append((self.n - self.transferred) / x)
        if a > 0 and self.read < self.n - _EPS:
            candidates.append((self.n - self.read) / a)
        candidates = [dt for dt in candidates if dt > 0 and math.isfinite(dt)]
        return min(candidates) if candidates else None
