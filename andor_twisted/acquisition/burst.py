"""Bursts: N frames at a frame rate, captured from the moment they are asked for into the spool.

The capture runs on the camera's clock as long as the spool has room, whether or not anyone reads.
When the spool is full it stops taking frames off the camera, whose on-head memory then fills until
the camera slows to the pace at which the reader frees room: frames are late, never lost, and their
timestamps say so. A new burst discards the previous one. Only the capture holds the camera: once
the last frame is off it, settings and snaps work again while the spool drains.
"""

import numpy as np
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from andor_twisted.acquisition.spool import Spool
from andor_twisted.camera.errors import CameraError, InvalidValue
from andor_twisted.web import wire

BURST_BUFFERS = 8  # SDK buffers queued for a burst: frames that may leave the camera while the spool is full
REFILL = 8  # a full spool waits for room for this many frames (a quarter of a small spool) before taking more
LATE = 1.5  # a frame exposed more than this many frame periods after the previous one waited for room


class BurstDiscarded(CameraError):
    code = "burst_discarded"


class NoSuchBurst(CameraError):
    code = "no_such_burst"


class Burst:
    """One burst: its capture loop, its spool, and what a status or summary reports of them."""

    log = Logger()

    def __init__(self, burst_id, frames, fps, spool_frames, camera, clock):
        self.id = burst_id
        self.frames = frames
        self.fps_requested = fps
        self.fps = fps  # what the camera set, once armed (it may round)
        self.requested_spool = spool_frames or frames  # 0: the whole burst
        self.camera = camera
        self.clock = clock
        # resized to the memory limit once the frame size is known
        self.spool = Spool(self.requested_spool, camera.give_back)
        self._state = "arming"
        self.started_at = clock.seconds()
        self.took_s = None
        self.error = None
        self.waited_frames = 0
        self._first_ticks = self._last_ticks = None
        self._period_ticks = self._tick_frequency = None
        self._capture = None
        self._capture_waiters = []  # Deferreds for when_captured()
        self.message_bytes = None  # a frame's size on the wire, once armed
        self.readers = 0
        self.idle_call = None  # the idle timeout's pending call, while nobody reads

    @property
    def state(self):
        """arming, capturing, captured, done (every frame acknowledged), failed or discarded."""
        if self._state == "captured" and self.spool.acknowledged == self.frames:
            return "done"
        return self._state

    @property
    def capturing(self):
        return self._state in ("arming", "capturing")

    def start(self, memory_limit):
        """Arm the camera and start capturing. Fires once frames are coming (or the camera refused,
        say an fps out of range); the capture then runs on its own."""
        d = self.camera.start(f"burst {self.id}", min(self.frames, BURST_BUFFERS), self.fps)
        d.addCallback(self._started, memory_limit)
        d.addErrback(self._not_started)
        return d

    def _started(self, layout, memory_limit):
        if self._state == "discarded":  # discarded while arming
            self._capture = self.camera.stop()
            self._capture.addBoth(self._captured)
            return self
        itemsize = 4 if layout.encoding == "Mono32" else 2
        message_bytes = wire.HEADER_SIZE + layout.width * layout.height * itemsize
        self.message_bytes = message_bytes
        self.spool.capacity = min(self.requested_spool, max(1, memory_limit // message_bytes))
        if self.spool.capacity < self.requested_spool:
            self.log.warn("burst {id}: the spool holds {n} frames, not {asked}, within --spool-memory-limit",
                          id=self.id, n=self.spool.capacity, asked=self.requested_spool)
        self.fps = layout.frame_rate
        if layout.timestamps and layout.tick_frequency:
            self._tick_frequency = layout.tick_frequency
            self._period_ticks = layout.tick_frequency / layout.frame_rate
        self._state = "capturing"
        self._capture = self._run(layout)
        self._capture.addBoth(self._captured)
        return self

    def _not_started(self, failure):
        self._state = "failed"
        self.error = failure.value
        self.spool.finish(failure.value)
        self._captured(None)
        return failure

    @defer.inlineCallbacks
    def _run(self, layout):
        try:
            # a full spool is refilled in batches: a trip to the SDK thread for every frame acknowledged
            # would cost more than the frame
            refill = min(REFILL, max(1, self.spool.capacity // 4))
            while self.spool.captured < self.frames:
                yield self.spool.room(min(refill if self.spool.full else 1, self.frames - self.spool.captured))
                want = min(self.spool.capacity - self.spool.frames, self.frames - self.spool.captured)
                batch = yield self.camera.next_frames(layout, self.spool.captured, want, self._pack, lend=True)
                for frame in batch:
                    self._time(frame)
                    self.spool.put(frame)
            self.took_s = self.clock.seconds() - self.started_at
            self.log.info("taking {n} frames took {took:.3f}s", n=self.frames, took=self.took_s)
            self._state = "captured"
            self.spool.finish()
        except Exception as e:
            if self._state != "discarded":  # else discard() has dealt with the spool
                self.took_s = self.clock.seconds() - self.started_at
                self.error = e
                self._state = "failed"
                self.log.error("burst {id} failed after {n} of {total} frames: {why}", id=self.id,
                               n=self.spool.captured, total=self.frames, why=e)
                self.spool.finish(e)
        try:
            yield self.camera.stop()
        except Exception as e:
            self.log.error("burst {id}: stopping the acquisition failed: {why}", id=self.id, why=e)

    def _captured(self, _):
        self._capture = None
        waiters, self._capture_waiters = self._capture_waiters, None
        for d in waiters:
            d.callback(self)

    def when_captured(self):
        """A Deferred that fires once the capture has ended, however, and the camera is free."""
        if self._capture_waiters is None:
            return defer.succeed(self)
        d = defer.Deferred()
        self._capture_waiters.append(d)
        return d

    def discard(self, why):
        """Stop the capture and free the spool; fires once the camera is free."""
        if self._state != "discarded":
            self.log.info("burst {id} discarded ({why}); {n} frames unread", id=self.id, why=why,
                          n=self.spool.frames)
            self._state = "discarded"
            self.error = BurstDiscarded(f"burst {self.id} was discarded: {why}", burst=self.id)
            if self._capture is not None:
                self._capture.cancel()
            self.spool.discard(self.error)
        return self.when_captured()

    def _pack(self, frame):
        """In the SDK thread: the frame as its stream message. The pixels stay in the camera's buffer,
        lent to the spool until the reader has them, unless the pixel encoding or padded rows meant
        copying them out."""
        frame.message, frame.image = wire.frame_parts(self.id, frame.frame_number, frame.image, frame.ticks,
                                                      frame.tick_frequency)
        if not np.may_share_memory(frame.image, frame.buffer):
            frame.buffer = None
        return frame

    def _time(self, frame):
        if frame.ticks is None:
            return
        if self._first_ticks is None:
            self._first_ticks = frame.ticks
        elif self._period_ticks and frame.ticks - self._last_ticks > LATE * self._period_ticks:
            self.waited_frames += 1
        self._last_ticks = frame.ticks

    def status(self):
        """What the HTTP status resource and the stream's summary report."""
        spool = self.spool
        fps_achieved = None
        if self._first_ticks is not None and self._last_ticks > self._first_ticks:
            fps_achieved = (spool.captured - 1) * self._tick_frequency / (self._last_ticks - self._first_ticks)
        return {
            "id": self.id, "state": self.state, "frames": self.frames, "fps_requested": self.fps_requested,
            "fps": self.fps,
            "spool_capacity": spool.capacity, "captured": spool.captured, "sent": spool.sent,
            "acknowledged": spool.acknowledged, "spool_frames": spool.frames, "spool_bytes": spool.bytes,
            "high_water_frames": spool.high_water_frames, "high_water_bytes": spool.high_water_bytes,
            "waited_frames": self.waited_frames, "took_s": self.took_s, "fps_achieved": fps_achieved,
            "readers": self.readers,
            "error": getattr(self.error, "code", None) if self.error else None,
            "message": getattr(self.error, "message", str(self.error)) if self.error else None,
        }


class Bursts(service.Service):
    """The newest burst and the rules between bursts: a new one discards the previous one, one reader
    at a time, and a burst nobody reads is freed after ``idle_timeout`` seconds."""

    log = Logger()

    def __init__(self, camera_service, clock, memory_limit, idle_timeout, live=None):
        self.camera_service = camera_service
        self.live = live  # paused while a burst captures
        self.clock = clock
        self.memory_limit = memory_limit
        self.idle_timeout = idle_timeout
        self.current = None
        self._next_id = 1

    def get(self, burst_id=None):
        """The newest burst, or burst ``burst_id`` if it still is the newest."""
        burst = self.current
        if burst is None:
            raise NoSuchBurst("there has been no burst yet")
        if burst_id is not None and burst_id != burst.id:
            why = "it was replaced by a newer burst" if burst_id < burst.id else "there is no such burst yet"
            raise NoSuchBurst(f"burst {burst_id} is not available: {why} (the newest is burst {burst.id})",
                              newest=burst.id)
        return burst

    def start(self, frames, fps, spool=0):
        """Discard the previous burst and start a new one; fires with it once its capture runs."""
        return defer.maybeDeferred(self._start, frames, fps, spool)

    @defer.inlineCallbacks
    def _start(self, frames, fps, spool):
        _check_count("frames", frames, 1)
        _check_count("spool", spool, 0)
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
            raise InvalidValue("wrong_type", f"fps is a frame rate above 0 (frames per second), not {fps!r}")
        camera = self.camera_service.camera()
        burst = Burst(self._next_id, frames, fps, spool, camera, self.clock)
        self._next_id += 1
        previous, self.current = self.current, burst
        if previous is not None:
            self._stop_idle_timer(previous)
            yield previous.discard(f"burst {burst.id} replaced it")
        if self.current is not burst:
            raise BurstDiscarded(f"burst {burst.id} was replaced by burst {self.current.id} before it started",
                                 burst=burst.id)
        if self.live is not None:
            reason = f"burst {burst.id} is capturing"
            yield self.live.pause(reason)
            burst.when_captured().addCallback(lambda _: self.live.resume(reason))
        yield burst.start(self.memory_limit)
        self._start_idle_timer(burst)
        burst.when_captured().addCallback(self._captured)
        return burst

    def discard(self):
        """Discard the newest burst (``DELETE /api/burst``)."""
        burst = self.get()
        self._stop_idle_timer(burst)
        return burst.discard("asked to")

    # ---- readers and the idle timeout ----

    def reader_attached(self, burst):
        burst.readers += 1
        self._stop_idle_timer(burst)

    def reader_detached(self, burst):
        burst.readers -= 1
        self._start_idle_timer(burst)

    def _captured(self, burst):
        self._start_idle_timer(burst)

    def _start_idle_timer(self, burst):
        if burst.readers == 0 and burst.idle_call is None and burst.state not in ("discarded", "done"):
            burst.idle_call = self.clock.callLater(self.idle_timeout, self._idle, burst)

    def _stop_idle_timer(self, burst):
        if burst.idle_call is not None:
            if burst.idle_call.active():
                burst.idle_call.cancel()
            burst.idle_call = None

    def _idle(self, burst):
        burst.idle_call = None
        if burst.readers or burst.state in ("discarded", "done"):
            return
        if burst.capturing and not burst.spool.full:
            self._start_idle_timer(burst)  # still filling its spool on the camera's clock
            return
        burst.discard(f"nobody read it for {self.idle_timeout:g} s")

    def stopService(self):
        super().stopService()
        if self.current is not None:
            self._stop_idle_timer(self.current)
            return self.current.discard("the server is stopping")


def _check_count(name, value, least):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidValue("wrong_type" if not isinstance(value, int) or isinstance(value, bool) else "out_of_range",
                           f"{name} is a whole number of frames, at least {least}, not {value!r}")
