"""Bursts: N frames at a frame rate, captured from the moment they are asked for into the spool.

The capture runs on the camera's clock as long as the spool has room, whether or not anyone reads.
When the spool is full it stops taking frames off the camera, whose on-head memory then fills until
the camera slows to the pace at which the reader frees room: frames are late, never lost, and their
timestamps say so. A new burst discards the previous one. Only the capture holds the camera (the
arbiter's BURST grant): once the last frame is off it, settings and snaps work again while the spool
drains. A burst's states and the moves between them are ``protocol.burst``'s.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from andor_twisted.acquisition.arbiter import Arbiter, Grant, Purpose
from andor_twisted.acquisition.contracts import CameraSource, Clock, DelayedCall, FrameSource
from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.acquisition.recorder import RecordedFrames, Recorder, Recordings
from andor_twisted.acquisition.spool import Spool
from andor_twisted.camera.driver import AndorCamera, Frame, Layout, irig_timebase
from andor_twisted.camera.errors import (CameraError, CameraOverflow, CameraTimeout, InvalidValue, TriggerTimeout,
                                         UnknownFeature)
from andor_twisted.protocol import frames as frame_format
from andor_twisted.protocol import plan as planning
from andor_twisted.protocol.access import ANONYMOUS, Principal
from andor_twisted.protocol.burst import BurstState, BurstStatus, FrameTiming, Lifecycle
from andor_twisted.protocol.timebase import TimeBase
from andor_twisted.protocol.window import window_for

BURST_BUFFERS = 8  # SDK buffers queued for a burst, at least: frames that may leave the camera while the spool
# is full (the spool holds them back, and lets them in as soon as the reader makes room); small frames get
# as many as one trip takes (``camera_buffers``)
REFILL = 8  # a full spool waits for room for this many frames (a quarter of a small spool) before taking more
TRIP_BYTES = 4 * 1024 * 1024  # frames taken in one trip to the SDK thread: about this many bytes ...
TRIP_FRAMES = 256  # ... and at most this many frames (but always one). A trip is short, so the reader gets
# frames while the camera still captures, and a temperature reading waits for one trip at most.


class BurstDiscarded(CameraError):
    code = "burst_discarded"


class NoSuchBurst(CameraError):
    code = "no_such_burst"


class Burst:
    """One burst: its capture loop, its spool, and what a status or summary reports of them."""

    log = Logger()

    def __init__(self, burst_id: int, frames: int, fps: float | None, spool_frames: int, camera: AndorCamera,
                 clock: Clock, trigger_mode: str = "Internal", trigger_timeout: float | None = None,
                 reader_bytes_per_s: float | None = None, owner: Principal = ANONYMOUS,
                 viewers: tuple[str, ...] = ()) -> None:
        self.id = burst_id
        self.owner = owner  # who started it: it, any controller, and the ``viewers`` named may read it
        self.viewers = viewers
        self.trigger_mode = trigger_mode
        self.trigger_timeout = trigger_timeout
        self.reader_bytes_per_s = reader_bytes_per_s  # what the plan assumes of the reader
        self.frames = frames
        self.fps_requested = fps
        self.fps = fps  # what the camera set, once armed (it may round)
        self.requested_spool = spool_frames or frames  # 0: the whole burst
        self.camera = camera
        self.clock = clock
        # resized to the memory limit once the frame size is known
        self.spool = Spool(self.requested_spool, camera.give_back, self._acknowledged)
        self.life = Lifecycle()
        self.timing = FrameTiming()  # replaced once armed, when the camera's clock is known
        self.started_at = clock.seconds()
        self.took_s: float | None = None
        self.error: BaseException | None = None
        self._capture: defer.Deferred[Any] | None = None  # the capture; the stop, if discarded while arming
        self._capture_waiters: list[defer.Deferred[Burst]] | None = []  # when_captured(); None once captured
        self.message_bytes = 0  # a frame's message (header and pixels), once armed
        self.readers = 0
        self.idle_call: DelayedCall | None = None  # the idle timeout's pending call, while nobody reads
        self.layout: Layout | None = None  # the acquisition as the camera set it up, once armed
        self.timebase: TimeBase | None = None  # how ticks map to UTC: from the start anchor, then both anchors
        self.plan: planning.Plan | None = None
        self.spool_was_full = False  # the capture once stopped taking frames off the camera
        self._irig: list[tuple[int, int]] = []  # (ticks, UTC ns) of the first and last frames with IRIG-B time
        self.recorder: Recorder | None = None  # a recording burst's: it reads the spool, readers the recording
        self._recorded: RecordedFrames | None = None
        self.on_state: Callable[[Burst, BurstState, BurstState], None] | None = None  # told (burst, old, new)

    @property
    def state(self) -> BurstState:
        return self.life.state

    def _to(self, new: BurstState) -> None:
        old = self.life.state
        self.life.to(new)
        if self.on_state is not None:
            self.on_state(self, old, new)

    @property
    def capture_ended(self) -> bool:
        """The capture has ended, however (``when_captured`` has fired): its counters move no more."""
        return self._capture_waiters is None
    def may_read(self, principal: Principal) -> bool:
        """Whether ``principal`` may read (and so acknowledge) this burst's frames."""
        return principal.controls or principal.name == self.owner.name or principal.name in self.viewers

    def start(self, memory_limit: int) -> defer.Deferred[Burst]:
        """Arm the camera and start capturing. Fires once frames are coming (or the camera refused,
        say an fps out of range); the capture then runs on its own."""
        if self.state is BurstState.DISCARDED:  # discarded while waiting for the camera: never armed
            self._captured(None)
            return defer.succeed(self)
        d: defer.Deferred[Any] = self.camera.start(f"burst {self.id}", min(self.frames, BURST_BUFFERS), self.fps,
                                                   self.trigger_mode, self.trigger_timeout)
        d.addCallback(self._started, memory_limit)
        d.addErrback(self._not_started)
        return d

    def _started(self, layout: Layout, memory_limit: int) -> Burst:
        if self.state is BurstState.DISCARDED:  # discarded while arming
            self._capture = self.camera.stop()
            self._capture.addBoth(self._captured)
            return self
        dtype = "u4" if layout.encoding == "Mono32" else "u2"
        self.message_bytes = frame_format.message_bytes(dtype, layout.height, layout.width)
        self.spool.capacity = min(self.requested_spool, max(1, memory_limit // self.message_bytes))
        if self.spool.capacity < self.requested_spool:
            self.log.warn("burst {id}: the spool holds {n} frames, not {asked}, within --spool-memory-limit",
                          id=self.id, n=self.spool.capacity, asked=self.requested_spool)
        self.spool.hold = min(self.frames, camera_buffers(self.message_bytes))  # queued by the first trip
        window = window_for(self.message_bytes)  # a reader's frames in flight, beyond the spool
        # the frames in the spool, in flight to its reader, and held back may all be in camera buffers
        self.camera.keep_buffers(self.spool.capacity + window + self.spool.hold)
        self.fps = layout.frame_rate
        self.layout = layout
        self.timebase = layout.timebase
        self.timing = FrameTiming(layout.tick_frequency if layout.timestamps else None, layout.frame_rate,
                                  paced=layout.trigger_mode in ("Internal", "External Start"))
        self.plan = planning.plan(self.camera.plan_camera(layout), self.frames, self.spool.capacity,
                                  self.message_bytes, self.reader_bytes_per_s,
                                  triggered=self.trigger_mode != "Internal", window_frames=window)
        self._to(BurstState.CAPTURING)
        self._capture = self._run(layout)
        self._capture.addBoth(self._captured)
        return self

    def _not_started(self, failure: Failure) -> Failure:
        if self.life.can(BurstState.FAILED):
            self.error = failure.value
            self._to(BurstState.FAILED)
        self.spool.finish(failure.value)
        self._captured(None)
        return failure

    @defer.inlineCallbacks
    def _run(self, layout: Layout) -> Generator[defer.Deferred[Any], Any, None]:
        """Capture, stop the camera, and only then tell the reader the end (or the error), with the final
        time base: a reader told the burst is over may take a snap at once."""
        try:
            # a full spool is refilled in batches: a trip to the SDK thread for every frame acknowledged
            # would cost more than the frame
            refill = min(REFILL, max(1, self.spool.capacity // 4))
            trip = trip_frames(self.message_bytes)
            spool = self.spool
            while spool.captured < self.frames:
                self.spool_was_full = self.spool_was_full or spool.full
                yield spool.room(min(refill if spool.full else 1, self.frames - spool.captured))
                # frames beyond the spool's room keep their buffers from the camera while held back: the
                # camera gets buffers for them again once they are in the spool
                room = max(0, spool.capacity - spool.waiting)
                want = min(spool.free, self.frames - spool.captured, trip)
                batch = yield self.camera.next_frames(layout, spool.captured, want, self._pack, lend=True,
                                                      queued=spool.hold - spool.held_buffers, replace=room)
                for frame in batch:
                    self.timing.exposed(frame.ticks)
                    if frame.utc_ns is not None and frame.ticks is not None:
                        stamp = (frame.ticks, frame.utc_ns)
                        self._irig = [self._irig[0] if self._irig else stamp, stamp]
                spool.put_all(batch)  # the reader takes them together
            self.took_s = self.clock.seconds() - self.started_at
            self.log.info("taking {n} frames took {took:.3f}s", n=self.frames, took=self.took_s)
            self._to(BurstState.CAPTURED)
        except Exception as e:
            if self.state is not BurstState.DISCARDED:  # else discard() has dealt with the spool
                self.took_s = self.clock.seconds() - self.started_at
                self.error = self._account(e)
                self._to(BurstState.FAILED)
                self.log.error("burst {id} failed: {why}", id=self.id, why=self.error)
        try:
            timebase = yield self.camera.stop()
            if self._irig and self.layout is not None and self.layout.tick_frequency:
                (first_ticks, first_utc), (last_ticks, last_utc) = self._irig
                self.timebase = irig_timebase(first_ticks, first_utc, last_ticks, last_utc, self.layout.tick_frequency)
            elif timebase is not None:
                self.timebase = timebase
        except Exception as e:
            self.log.error("burst {id}: stopping the acquisition failed: {why}", id=self.id, why=e)
        if self.state is not BurstState.DISCARDED:  # else discard() has dealt with the spool
            self.spool.finish(self.error if self.state is BurstState.FAILED else None)

    def _account(self, error: Exception) -> Exception:
        """The error that ended the capture, its message saying what came and what was lost, and why."""
        captured, lost = self.spool.captured, self.frames - self.spool.captured
        came = f"{captured} of {self.frames} frames came, the other {lost} are lost"
        if isinstance(error, TriggerTimeout):
            return TriggerTimeout(error.err_code, f"{error.message}: {captured} of {self.frames} frames taken")
        if isinstance(error, CameraOverflow):
            return CameraOverflow(error.err_code, f"{error.message}: {came}")
        if isinstance(error, CameraTimeout) and self.spool_was_full:
            return CameraTimeout(error.err_code, f"{error.message} after the spool had filled and the camera's "
                                                 f"on-head memory with it: the camera probably overflowed and "
                                                 f"stopped without saying so; {came}")
        if isinstance(error, CameraError):
            error.message = f"{error.message}: {came}"
        return error

    def _pack(self, frame: Frame) -> BurstFrame:
        """In the SDK thread: the frame as the spool keeps it (``BurstFrame.pack``)."""
        return BurstFrame.pack(self.id, frame)

    def _captured(self, _: object) -> None:
        self._capture = None
        waiters, self._capture_waiters = self._capture_waiters, None
        for d in waiters or ():
            d.callback(self)

    def when_captured(self) -> defer.Deferred[Burst]:
        """A Deferred that fires once the capture has ended, however, and the camera is free."""
        if self._capture_waiters is None:
            return defer.succeed(self)
        d: defer.Deferred[Burst] = defer.Deferred()
        self._capture_waiters.append(d)
        return d

    def reader_source(self) -> FrameSource:
        """Where a reader takes the frames from: the spool, or the recording of a recording burst."""
        if self.recorder is None:
            return self.spool
        if self._recorded is None:  # one for every reader in turn, so that the next resumes where one left
            self._recorded = RecordedFrames(self.recorder)
        return self._recorded

    def _acknowledged(self, frames: int) -> None:
        """The spool's reader has acknowledged ``frames`` frames (before the spool tells it the end)."""
        if self.state is BurstState.CAPTURED and frames == self.frames:
            self._to(BurstState.DONE)

    def discard(self, why: str) -> defer.Deferred[Burst]:
        """Stop the capture and free the spool; fires once the camera is free."""
        if self.state is not BurstState.DISCARDED:
            self.log.info("burst {id} discarded ({why}); {n} frames unread", id=self.id, why=why,
                          n=self.spool.frames)
            self.error = BurstDiscarded(f"burst {self.id} was discarded: {why}", burst=self.id)
            self._to(BurstState.DISCARDED)  # (after the error: its summary says why)
            if self._capture is not None:
                self._capture.cancel()
            self.spool.discard(self.error)
            recorder = self.recorder
            if recorder is not None:  # once its file is finished
                recorder.done.addCallback(lambda _: recorder.release())
        return self.when_captured()

    def status(self) -> BurstStatus:
        """What the HTTP status resource and the stream's summary report."""
        spool, error = self.spool, self.error
        return BurstStatus(
            id=self.id, state=self.state, frames=self.frames, fps_requested=self.fps_requested, fps=self.fps,
            spool_capacity=spool.capacity, captured=spool.captured, sent=spool.sent,
            acknowledged=spool.acknowledged, spool_frames=spool.frames, spool_bytes=spool.bytes,
            high_water_frames=spool.high_water_frames, high_water_bytes=spool.high_water_bytes,
            late_frames=self.timing.late_frames, max_late_s=self.timing.max_late_s,
            lost_frames=self.frames - spool.captured if self.state is BurstState.FAILED else 0,
            took_s=self.took_s, fps_achieved=self.timing.fps_achieved(spool.captured), readers=self.readers,
            trigger_mode=self.trigger_mode, waiting_for_trigger=self.waiting_for_trigger,
            error=getattr(error, "code", None) if error else None,
            message=getattr(error, "message", str(error)) if error else None,
            timebase=None if self.timebase is None else self.timebase.to_json(),
            time_uncertainty_s=self.time_uncertainty_s(),
            plan=None if self.plan is None else self.plan.to_json(),
            settings=None if self.layout is None else self.layout.settings,
            recording=None if self.recorder is None else self.recorder.name,
            bytes_sent=spool.bytes_sent,
            owner=self.owner.name,
        )

    @property
    def waiting_for_trigger(self) -> bool:
        """Capturing, with room in the spool, and the next frame waits for a trigger."""
        return (self.state is BurstState.CAPTURING and self.layout is not None and not self.spool.full
                and self.layout.waits_for_trigger(self.spool.captured))

    def time_uncertainty_s(self) -> float | None:
        first, last = self.timing.first_ticks, self.timing.last_ticks
        if self.timebase is None or first is None or last is None:
            return None
        return self.timebase.max_uncertainty_s(first, last)

    def ledger(self) -> dict[str, list[Any]]:
        """Frame by frame: number, ticks and UTC nanoseconds (decimal strings; "" where unknown), whether
        it was late and by how much, whether it was lost. Docs/streaming.md."""
        ticks = list(self.timing.ticks)
        known = [t for t in ticks if t >= 0]
        utc = iter(self.timebase.to_utc_ns(known).tolist() if self.timebase is not None and known else [])
        lost = self.frames - len(ticks) if self.state is BurstState.FAILED else 0
        return {
            "frame": list(range(len(ticks) + lost)),
            "ticks": [str(t) if t >= 0 else "" for t in ticks] + [""] * lost,
            "utc_ns": [str(next(utc)) if t >= 0 and self.timebase is not None else "" for t in ticks] + [""] * lost,
            "late_by_s": [self.timing.late_by(k, t if t >= 0 else None) for k, t in enumerate(ticks)] + [0.0] * lost,
            "lost": [False] * len(ticks) + [True] * lost,
        }


@dataclass
class BurstCounts:
    """Totals since the server started, for /metrics. Bursts are counted by how they ended (started =
    completed + failed + rejected + discarded + the one still running): completed once every frame was
    acknowledged, failed when the camera failed, rejected when the camera refused the request as it armed
    (a frame rate out of range, say: the client's mistake), discarded when dropped before any of these.
    Frames are a burst's own counters, read at scrape time (``Bursts.counts``): nothing is counted per frame."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    discarded: int = 0
    frames_captured: int = 0
    frames_sent: int = 0  # distinct frames handed to a reader
    frames_acknowledged: int = 0
    frames_late: int = 0
    frames_lost: int = 0  # never came off the camera: the burst failed before them
    bytes_sent: int = 0  # frame bytes written to readers, a frame sent again counting again

    def add_frames_of(self, burst: Burst) -> None:
        spool = burst.spool
        self.frames_captured += spool.captured
        self.frames_sent += spool.sent
        self.frames_acknowledged += spool.acknowledged
        self.frames_late += burst.timing.late_frames
        self.bytes_sent += spool.bytes_sent


def camera_buffers(message_bytes: int) -> int:
    """How many SDK buffers a burst of ``message_bytes`` frames keeps queued: BURST_BUFFERS, or as many
    as a trip takes. Small frames come fast: a few buffers would fill within one reactor pass, and
    frames held back in them refill a small spool while the next trip takes more."""
    return max(BURST_BUFFERS, trip_frames(message_bytes))


def trip_frames(message_bytes: int) -> int:
    """The most frames of ``message_bytes`` one trip to the SDK thread takes (TRIP_BYTES, TRIP_FRAMES)."""
    return max(1, min(TRIP_FRAMES, TRIP_BYTES // max(message_bytes, 1)))


class Bursts(service.Service):
    """The newest burst and the rules between bursts: a new one discards the previous one, one reader
    at a time, and a burst nobody reads is freed after ``idle_timeout`` seconds."""

    log = Logger()

    def __init__(self, camera_service: CameraSource, arbiter: Arbiter, clock: Clock, memory_limit: int,
                 idle_timeout: float, recordings: Recordings | None = None, max_bytes: float = math.inf,
                 max_seconds: float = math.inf) -> None:
        self.camera_service = camera_service
        self.recordings = recordings or Recordings(None, clock)
        self.arbiter = arbiter
        self.clock = clock
        self.memory_limit = memory_limit
        self.idle_timeout = idle_timeout
        self.max_bytes = max_bytes  # the most a burst may capture, frames and headers (--max-burst-bytes)
        self.max_seconds = max_seconds  # the longest a burst may be planned to take (--max-burst-seconds)
        self.current: Burst | None = None
        self._next_id = 1
        self._counts = BurstCounts()  # bursts, and the frames of the bursts retired
        self._unretired: list[Burst] = []  # bursts whose frame counters may still move
        # /metrics reads the counts in a thread of the reactor's pool (prometheus_client's resource is WSGI):
        # a burst moves from _unretired into _counts under this lock, so no scrape sees it twice or never
        self._counts_lock = threading.Lock()

    def counts(self) -> BurstCounts:
        """The totals now: those of the bursts retired, plus the frame counters of the others. Any thread."""
        with self._counts_lock:
            counts = dataclasses.replace(self._counts)
            for burst in self._unretired:
                counts.add_frames_of(burst)
        return counts

    def _retire(self) -> None:
        """Fold the bursts whose counters no longer move into the totals (the reactor, as a burst starts)."""
        with self._counts_lock:
            for burst in [b for b in self._unretired if b.state is BurstState.DISCARDED and b.capture_ended]:
                self._unretired.remove(burst)
                self._counts.add_frames_of(burst)

    def _moved(self, burst: Burst, old: BurstState, new: BurstState) -> None:
        """A burst changed state: count how it ended, and log its summary once, as it ends."""
        counts = self._counts
        if new is BurstState.DONE:
            counts.completed += 1
        elif new is BurstState.FAILED and isinstance(burst.error, (InvalidValue, UnknownFeature)):
            counts.rejected += 1
        elif new is BurstState.FAILED:
            counts.failed += 1
            counts.frames_lost += burst.frames - burst.spool.captured
        elif new is BurstState.DISCARDED and old not in (BurstState.DONE, BurstState.FAILED):
            counts.discarded += 1
        else:
            return
        status = burst.status()
        self.log.info("burst {id} {state}: {captured} of {frames} frames captured, {acknowledged} acknowledged, "
                      "{late} late, {lost} lost", id=burst.id, state=new.value, captured=status.captured,
                      frames=status.frames, acknowledged=status.acknowledged, late=status.late_frames,
                      lost=status.lost_frames, summary=status.to_json())

    def get(self, burst_id: int | None = None) -> Burst:
        """The newest burst, or burst ``burst_id`` if it still is the newest."""
        burst = self.current
        if burst is None:
            raise NoSuchBurst("there has been no burst yet")
        if burst_id is not None and burst_id != burst.id:
            why = "it was replaced by a newer burst" if burst_id < burst.id else "there is no such burst yet"
            raise NoSuchBurst(f"burst {burst_id} is not available: {why} (the newest is burst {burst.id})",
                              newest=burst.id)
        return burst

    def start(self, request: BurstRequest, owner: Principal = ANONYMOUS) -> defer.Deferred[Burst]:
        """Discard the previous burst and start a new one for ``owner``; fires with it once its capture runs."""
        return defer.maybeDeferred(self._start, request, owner)

    @defer.inlineCallbacks
    def _start(self, request: BurstRequest, owner: Principal) -> Generator[defer.Deferred[Any], Any, Burst]:
        camera = self.camera_service.camera()
        path = None if request.record is None else self.recordings.path_for(request.record)
        limited = self.max_bytes < math.inf or self.max_seconds < math.inf
        if limited or path is not None:  # checked before anything is discarded: a refusal stops nothing
            try:
                inputs = yield camera.plan_inputs(request.fps, request.trigger)
                self.check_limits(request, inputs)
            except InvalidValue:  # a frame rate out of range, a burst over the limits: counted as refused
                with self._counts_lock:
                    self._counts.started += 1
                    self._counts.rejected += 1
                raise
        recorder: Recorder | None = None
        if path is not None:  # its file first: a full disk stops nothing
            _, dtype, height, width = inputs
            recorder = yield self.recordings.create(path, (height, width), dtype, request.frames)
        burst = Burst(self._next_id, request.frames, request.fps, request.spool, camera, self.clock,
                      request.trigger, request.trigger_timeout, request.reader_bytes_per_s, owner, request.viewers)
        self._next_id += 1
        burst.on_state = self._moved
        self._retire()
        with self._counts_lock:
            self._counts.started += 1
            self._unretired.append(burst)
        previous, self.current = self.current, burst
        try:
            if previous is not None:
                self._stop_idle_timer(previous)
                yield previous.discard(f"burst {burst.id} replaced it")
            if self.current is not burst:
                raise BurstDiscarded(f"burst {burst.id} was replaced by burst {self.current.id} before it started",
                                     burst=burst.id)
            grant: Grant = yield self.arbiter.request(Purpose.BURST, f"burst {burst.id}")
            burst.when_captured().addCallback(lambda _: grant.release())
            yield burst.start(self.memory_limit)
        except BaseException:
            if recorder is not None:
                recorder.abandon()
            raise
        if recorder is not None:
            if burst.state is BurstState.CAPTURING:
                burst.recorder = recorder
                recorder.attach(burst)
            else:  # discarded while arming
                recorder.abandon()
        self._start_idle_timer(burst)
        burst.when_captured().addCallback(self._start_idle_timer)
        return burst

    def plan(self, request: BurstRequest) -> defer.Deferred[planning.Plan]:
        """What ``request`` would do, captured nothing: the dry run of ``POST /api/burst``."""
        camera = self.camera_service.camera()

        def predict(inputs: tuple[planning.Camera, str, int, int]) -> planning.Plan:
            plan_camera, dtype, height, width = inputs
            frame_message = frame_format.message_bytes(dtype, height, width)
            spool = min(request.spool or request.frames, max(1, self.memory_limit // frame_message))
            return planning.plan(plan_camera, request.frames, spool, frame_message, request.reader_bytes_per_s,
                                 triggered=request.trigger != "Internal", window_frames=window_for(frame_message))

        return camera.plan_inputs(request.fps, request.trigger).addCallback(predict)

    def check_limits(self, request: BurstRequest, inputs: tuple[planning.Camera, str, int, int]) -> None:
        """Raises InvalidValue (``over_limit``) if ``request`` would take more bytes than ``max_bytes`` or
        longer than ``max_seconds`` at the frame rate it asks for (or the camera's), given the camera's
        ``plan_inputs``."""
        plan_camera, dtype, height, width = inputs
        total = request.frames * frame_format.message_bytes(dtype, height, width)
        seconds = request.frames / plan_camera.frame_rate
        if total > self.max_bytes:
            raise InvalidValue("over_limit", f"a burst of {request.frames} frames of {width}x{height} is "
                               f"{total:.4g} bytes, more than this server's limit of {self.max_bytes:.4g} "
                               f"bytes (--max-burst-bytes)", limit_bytes=self.max_bytes, bytes=total)
        if seconds > self.max_seconds:
            raise InvalidValue("over_limit", f"a burst of {request.frames} frames at "
                               f"{plan_camera.frame_rate:.4g} frames/s takes {seconds:.4g} s, longer than this "
                               f"server's limit of {self.max_seconds:g} s (--max-burst-seconds)",
                               limit_seconds=self.max_seconds, seconds=seconds)

    def discard(self) -> defer.Deferred[Burst]:
        """Discard the newest burst (``DELETE /api/burst``)."""
        burst = self.get()
        self._stop_idle_timer(burst)
        return burst.discard("asked to")

    # ---- readers and the idle timeout ----

    def reader_attached(self, burst: Burst) -> None:
        burst.readers += 1
        self._stop_idle_timer(burst)

    def reader_detached(self, burst: Burst) -> None:
        burst.readers -= 1
        self._start_idle_timer(burst)

    def _start_idle_timer(self, burst: Burst) -> None:
        if burst.readers == 0 and burst.idle_call is None and burst.state.readable and burst.recorder is None:
            burst.idle_call = self.clock.callLater(self.idle_timeout, self._idle, burst)

    def _stop_idle_timer(self, burst: Burst) -> None:
        if burst.idle_call is not None:
            if burst.idle_call.active():
                burst.idle_call.cancel()
            burst.idle_call = None

    def _idle(self, burst: Burst) -> None:
        burst.idle_call = None
        if burst.readers or not burst.state.readable:
            return
        if burst.state.holds_camera and not burst.spool.full:
            self._start_idle_timer(burst)  # still filling its spool on the camera's clock
            return
        burst.discard(f"nobody read it for {self.idle_timeout:g} s")

    def stopService(self) -> defer.Deferred[Any] | None:
        super().stopService()
        burst = self.current
        if burst is None:
            return None
        self._stop_idle_timer(burst)
        stopped = burst.discard("the server is stopping")
        if burst.recorder is not None:  # and its file finished
            recorded = burst.recorder.done
            stopped.addCallback(lambda _: recorded)
        return stopped


@dataclass(frozen=True)
class BurstRequest:
    """What ``POST /api/burst`` asks for, checked (``parse``)."""

    frames: int
    fps: float | None = None  # None: the camera's FrameRate as it is
    spool: int = 0  # frames; 0: the whole burst
    trigger: str = "Internal"  # TriggerMode
    trigger_timeout: float | None = None  # seconds to wait for each trigger (triggered modes)
    reader_bytes_per_s: float | None = None  # what the plan may assume of the reader
    dry_run: bool = False  # plan only: capture nothing
    record: str | None = None  # a recording's name: write the burst into the data directory
    viewers: tuple[str, ...] = ()  # names of viewer tokens that may read it too

    FIELDS: ClassVar[tuple[str, ...]] = ("frames", "fps", "spool", "trigger", "trigger_timeout", "reader_rate",
                                         "dry_run", "record", "viewers")

    @classmethod
    def parse(cls, value: object) -> BurstRequest:
        if not isinstance(value, dict):
            raise InvalidValue("wrong_type", 'a burst is {"frames": N, "fps": F, "spool": S, ...}')
        unknown = sorted(set(value) - set(cls.FIELDS))
        if unknown:
            raise InvalidValue("unknown_field", f"a burst has no field {unknown[0]!r}; fields: {', '.join(cls.FIELDS)}")
        if "frames" not in value:
            raise InvalidValue("missing_value", "a burst needs frames (and fps, spool)")
        trigger = value.get("trigger", "Internal")
        if not isinstance(trigger, str):
            raise InvalidValue("wrong_type", f"trigger is a TriggerMode such as 'Software', not {trigger!r}")
        dry_run = value.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise InvalidValue("wrong_type", f"dry_run is true or false, not {dry_run!r}")
        record = value.get("record")
        if record is not None and not isinstance(record, str):
            raise InvalidValue("wrong_type", f"record is a recording's name such as 'run1.h5', not {record!r}")
        viewers = value.get("viewers", [])
        if not isinstance(viewers, list) or len(viewers) > 100 or not all(
                isinstance(name, str) and 0 < len(name) <= 100 for name in viewers):
            raise InvalidValue("wrong_type", "viewers is a list of token names that may read the burst")
        return cls(_count("frames", value["frames"], 1), _positive("fps", value.get("fps")),
                   _count("spool", value.get("spool", 0), 0), trigger,
                   _positive("trigger_timeout", value.get("trigger_timeout")),
                   _positive("reader_rate", value.get("reader_rate")), dry_run, record, tuple(viewers))


def _count(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidValue("wrong_type" if not isinstance(value, int) or isinstance(value, bool) else "out_of_range",
                           f"{name} is a whole number of frames, at least {least}, not {value!r}")
    return value


def _positive(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise InvalidValue("wrong_type", f"{name} is a number above 0, not {value!r}")
    return float(value)
