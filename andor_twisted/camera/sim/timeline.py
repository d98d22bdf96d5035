"""The physics of one simulated acquisition: when each frame is exposed and when it reaches the host.

All times are on the camera's clock (seconds) and are worked out lazily, frame by frame::

    exposed[k]   = max(start,  exposed[k-1] + period,  delivered[k - capacity])
    delivered[k] = max(exposed[k] + exposure + readout,  delivered[k-1],  queued[k]) + frame_bytes / link_rate

A frame takes a slot of on-head memory when it is exposed and frees it once it has crossed the link,
which it can only do into the next buffer the host queued (``queued[k]``: when that buffer was queued).
So the camera runs at its frame rate while memory has room, then exposes one frame each time a slot
frees: frames are never lost, only late, and their exposure times say so.

A camera without on-head memory holds ``OVERFLOW_SLOTS`` frames; a frame that finds no room at its
scheduled time is an overflow, and the acquisition faults there (AT_ERR_HARDWARE_OVERFLOW).
"""

import bisect

OVERFLOW_SLOTS = 2
FORGET_EVERY = 4096  # frames; a continuous acquisition (the live view) runs for days


class History(list):
    """Per-frame times indexed by frame number, which can forget its oldest entries (``forget_before``)
    and still be indexed by frame number."""

    def __init__(self):
        super().__init__()
        self.base = 0  # the frame number of the first entry kept

    def __len__(self):
        return self.base + super().__len__()

    def __getitem__(self, k):
        return super().__getitem__(k if k < 0 else k - self.base)

    def forget_before(self, k):
        if k > self.base:
            super().__delitem__(slice(0, k - self.base))
            self.base = k


class Timeline:
    def __init__(self, start, period, exposure, readout, frame_bytes, memory_bytes, link_rate,
                 frame_limit=None):
        self.start = start
        self.period = period
        self.exposure = exposure
        self.readout = readout
        self.overflows = memory_bytes <= 0
        self.capacity = OVERFLOW_SLOTS if self.overflows else max(1, memory_bytes // frame_bytes)
        self.transfer = frame_bytes / link_rate if link_rate else 0.0
        self.frame_limit = frame_limit
        self.exposed = History()
        self.delivered = History()
        self.queued = History()
        self.fault = None  # (frame index, time) of an overflow
        self.stopped_at = None

    def buffer_queued(self, when):
        """The host queued one more buffer at ``when``; it receives the next frame not yet placed."""
        self.queued.append(when)

    def stop(self, when):
        self.stopped_at = when

    def exposure_time(self, k, now):
        """When frame k was (or will be) exposed, or None if that is not decided by ``now``."""
        return self.exposed[k] if self._expose_upto(k, now) else None

    def delivery_time(self, k, now):
        """When frame k reaches the host buffer, or None if that is not decided by ``now``."""
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
        return when

    def exposed_by(self, when):
        """How many frames have started exposing at or before ``when`` (this also finds overflows)."""
        while self._expose_upto(len(self.exposed), when) and self.exposed[-1] <= when:
            pass
        return bisect.bisect_right(self.exposed, when, lo=self.exposed.base)

    def delivered_to_host(self, k):
        """Frame k is with the host: forget, now and then, what no later frame depends on."""
        if k % FORGET_EVERY == FORGET_EVERY - 1:
            oldest_needed = min(k, len(self.exposed) - self.capacity, len(self.delivered) - 1)
            for history in (self.exposed, self.delivered, self.queued):
                history.forget_before(oldest_needed)

    def _expose_upto(self, k, now):
        while len(self.exposed) <= k:
            i = len(self.exposed)
            if self.frame_limit is not None and i >= self.frame_limit:
                return False
            if self.fault is not None and i >= self.fault[0]:
                return False
            scheduled = self.exposed[-1] + self.period if self.exposed else self.start
            if self.stopped_at is not None and scheduled > self.stopped_at:
                return False
            if i >= self.capacity:
                room = self._delivered_if_known(i - self.capacity, now)
                if self.overflows:
                    if room is None and now < scheduled:
                        return False  # undecided: the host may still take a frame in time
                    if room is None or room > scheduled:
                        self.fault = (i, scheduled)
                        return False
                elif room is None:
                    return False  # memory full until the host takes a frame
                else:
                    scheduled = max(scheduled, room)
            self.exposed.append(scheduled)
        return True

    def _delivered_if_known(self, k, now):
        if k < len(self.delivered):
            return self.delivered[k]
        return self.delivery_time(k, now)
