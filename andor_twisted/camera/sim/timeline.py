"""The physics of one simulated acquisition: when each frame is exposed and when it reaches the host.

All times are on the simulator's clock (seconds) and are worked out lazily, frame by frame::

    ready[k]     = max(start, exposed[k-1] + cycle, delivered[k - capacity])   (a throttling camera)
    exposed[k]   = ready[k], or the first trigger at or after it (triggered modes)
    delivered[k] = max(exposed[k] + exposure + readout, delivered[k-1], queued[k]) + frame_bytes / link_rate

A frame takes a slot of on-head memory when it is exposed and frees it once it has crossed the link,
which it can only do into the next buffer the host queued (``queued[k]``: when that buffer was queued).
In Internal mode ``cycle`` is the frame period; with triggers it is the shortest cycle the sensor
allows, and a trigger that comes while the camera is not ready is dropped, as real cameras drop it.

What happens when a frame is due and memory is full depends on the model (``models.WHEN_FULL``): a
throttling camera waits for a slot (the frame is late); the others fault there (``fault``): the frames
still in memory are lost and no frame is exposed after it. A camera without on-head memory holds
``OVERFLOW_SLOTS`` frames (its frame grabber's).
"""

from __future__ import annotations

import bisect
import math

OVERFLOW_SLOTS = 2
FORGET_EVERY = 4096  # frames; a continuous acquisition (the live view) runs for days


class History(list[float]):
    """Per-frame times indexed by frame number, which can forget its oldest entries (``forget_before``)
    and still be indexed by frame number."""

    def __init__(self) -> None:
        super().__init__()
        self.base = 0  # the frame number of the first entry kept

    def __len__(self) -> int:
        return self.base + super().__len__()

    def __getitem__(self, k: int) -> float:  # type: ignore[override]  # by frame number: never a slice
        if 0 <= k < self.base:
            raise IndexError(f"frame {k}'s time was forgotten (kept from frame {self.base})")
        return super().__getitem__(k if k < 0 else k - self.base)

    def forget_before(self, k: int) -> None:
        if k > self.base:
            super().__delitem__(slice(0, k - self.base))
            self.base = k


class Periodic:
    """An external trigger source firing ``rate`` times a second from time 0 (never if rate is 0)."""

    def __init__(self, rate: float):
        self.rate = rate

    def first_at_or_after(self, t: float, now: float) -> float | None:
        if self.rate <= 0:
            return None
        return math.ceil(t * self.rate - 1e-9) / self.rate


class Software:
    """Triggers sent with the SoftwareTrigger command: known only once they are sent."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def fire(self, when: float) -> None:
        self.times.append(when)

    def first_at_or_after(self, t: float, now: float) -> float | None:
        i = bisect.bisect_left(self.times, t - 1e-12)
        return self.times[i] if i < len(self.times) else None


class Timeline:
    def __init__(self, start: float, period: float, exposure: float, readout: float, frame_bytes: int,
                 memory_bytes: int, link_rate: float, when_full: str = "throttle",
                 frame_limit: int | None = None, triggers: Periodic | Software | None = None,
                 triggered_frames: str = "all", cycle: float | None = None):
        self.start = start
        self.period = period
        self.exposure = exposure
        self.readout = readout
        self.when_full = when_full
        self.capacity = OVERFLOW_SLOTS if memory_bytes <= 0 else max(1, memory_bytes // frame_bytes)
        self.transfer = frame_bytes / link_rate if link_rate else 0.0
        self.frame_limit = frame_limit
        self.triggers = triggers
        self.triggered_frames = triggered_frames  # "all", or "first" (External Start)
        self.cycle = period if cycle is None else cycle
        self.exposed = History()
        self.delivered = History()
        self.queued = History()
        self.fault: tuple[int, float] | None = None  # (frame that found memory full, when)
        self.stopped_at: float | None = None

    def buffer_queued(self, when: float) -> None:
        """The host queued one more buffer at ``when``; it receives the next frame not yet placed."""
        self.queued.append(when)

    def stop(self, when: float) -> None:
        self.stopped_at = when

    def delivery_time(self, k: int, now: float) -> float | None:
        """When frame k reaches the host buffer, or None if that is not decided by ``now`` (or never)."""
        while len(self.delivered) <= k:
            i = len(self.delivered)
            if i >= len(self.queued) or not self._expose_upto(i, now):
                return None
            ready = self.exposed[i] + self.exposure + self.readout
            previous = self.delivered[-1] if self.delivered else ready
            self.delivered.append(max(ready, previous, self.queued[i]) + self.transfer)
        when = self.delivered[k]
        if self.stopped_at is not None and when > self.stopped_at:
            return None
        if self.fault is not None and when > self.fault[1]:
            return None  # still on the camera when it faulted: lost
        return when

    def exposed_by(self, when: float) -> int:
        """How many frames have started exposing at or before ``when`` (this also finds faults)."""
        while self._expose_upto(len(self.exposed), when) and self.exposed[-1] <= when:
            pass
        return bisect.bisect_right(self.exposed, when, lo=self.exposed.base)

    def delivered_to_host(self, k: int) -> None:
        """Frame k is with the host: forget, now and then, what no later frame depends on."""
        if k % FORGET_EVERY == FORGET_EVERY - 1:
            oldest_needed = min(k, len(self.exposed) - self.capacity, len(self.delivered) - 1)
            for history in (self.exposed, self.delivered, self.queued):
                history.forget_before(oldest_needed)

    def _expose_upto(self, k: int, now: float) -> bool:
        while len(self.exposed) <= k:
            i = len(self.exposed)
            if self.frame_limit is not None and i >= self.frame_limit:
                return False
            if self.fault is not None:
                return False
            ready = self.exposed[-1] + self.cycle if self.exposed else self.start
            room = None
            if i >= self.capacity:
                room = self._delivered_if_known(i - self.capacity, now)
                if self.when_full == "throttle":
                    if room is None:
                        return False  # memory full until the host takes a frame
                    ready = max(ready, room)
            scheduled = self._trigger(i, ready, now)
            if scheduled is None:
                return False  # no trigger (yet)
            if self.stopped_at is not None and scheduled > self.stopped_at:
                return False
            if i >= self.capacity and self.when_full != "throttle":
                if room is None and now < scheduled:
                    return False  # undecided: the host may still take a frame in time
                if room is None or room > scheduled:
                    self.fault = (i, scheduled)
                    return False
            self.exposed.append(scheduled)
        return True

    def _trigger(self, i: int, ready: float, now: float) -> float | None:
        if self.triggers is None or (self.triggered_frames == "first" and i > 0):
            return ready
        if i > 0:
            ready = max(ready, self.exposed[-1] + self.exposure + self.readout)  # busy until read out
        return self.triggers.first_at_or_after(ready, now)

    def _delivered_if_known(self, k: int, now: float) -> float | None:
        if k < len(self.delivered):
            return self.delivered[k]
        return self.delivery_time(k, now)
