"""The live view: the camera runs continuously while anyone watches and nothing else needs it.

Every viewer gets the newest frame, reduced (every k-th pixel) to about its display size, and never a
backlog: a viewer holds at most one frame in flight and one waiting, and a newer frame replaces the
waiting one. A slow viewer therefore skips frames; it never slows the camera or the other viewers.
The live view asks the arbiter for the camera at the lowest priority: it steps aside for a burst, a
snap or a change of settings (viewers are told why) and gets the camera back by itself once it is free.

While a burst captures, viewers watch it: at most WATCH_HZ times a second, and only to a viewer that has
acknowledged its last frame (the display's pace), the newest frame already in the burst's spool is
reduced to the viewer's display, in the reactor, and sent with the burst's id. The spool is only looked
at: the burst's reader still gets every frame, and the camera and the capture do not know. Nobody
watching, nothing runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from andor_twisted.acquisition.arbiter import Arbiter, Grant, Purpose
from andor_twisted.acquisition.burst import Burst, Bursts
from andor_twisted.acquisition.contracts import CameraSource, Clock, DelayedCall
from andor_twisted.acquisition.frames import LiveFrame, reduced_message
from andor_twisted.protocol.burst import BurstState
from andor_twisted.camera.driver import Frame
from andor_twisted.protocol import messages

LIVE_BUFFERS = 4
MAX_PIXELS = 1_000_000  # a reduced frame is at most this big: 2 MB, over 5 frames/s on 100 Mbit/s
RETRY_S = 2.0  # after a camera error, try again this much later
WATCH_HZ = 25.0  # a capturing burst's frames go to each viewer at most this often


class Viewer:
    """One viewer's share of the live view: its display size, and its one-frame queue. ``send_frame``
    takes a frame message (header and pixels), ``send_json`` a control message."""

    def __init__(self, send_frame: Callable[[bytes], None], send_json: Callable[[Mapping[str, object]], None],
                 display: tuple[int, int] = (1024, 1024)) -> None:
        self.send_frame = send_frame
        self.send_json = send_json
        self.display = display
        self.step: int | None = None
        self.in_flight = False  # a frame sent and not yet acknowledged
        self.waiting: bytes | None = None  # the newest frame not sent yet
        self.watching: int | None = None  # the burst whose frames it is sent (its view message sent)
        self.skipped = 0

    def offer(self, message: bytes) -> None:
        if self.in_flight:
            self.skipped += self.waiting is not None
            self.waiting = message
        else:
            self.in_flight = True
            self.send_frame(message)

    def acknowledged(self) -> None:
        self.in_flight = False
        if self.waiting is not None:
            message, self.waiting = self.waiting, None
            self.offer(message)


def reduction(width: int, height: int, display: tuple[int, int]) -> int:
    """The decimation step that makes a width x height frame fit ``display``, and MAX_PIXELS."""
    fit = max(width / max(display[0], 1), height / max(display[1], 1))
    return max(1, math.ceil(fit - 1e-9), math.ceil(math.sqrt(width * height / MAX_PIXELS) - 1e-9))


class LiveView(service.Service):
    log = Logger()

    def __init__(self, camera_service: CameraSource, arbiter: Arbiter, clock: Clock,
                 bursts: Bursts | None = None) -> None:
        self.camera_service = camera_service
        self.bursts = bursts  # whose capturing burst viewers watch
        self.arbiter = arbiter
        self.clock = clock
        self.viewers: list[Viewer] = []
        self._loop: defer.Deferred[None] | None = None  # asking for the camera, then running an acquisition
        self._request: defer.Deferred[Grant] | None = None  # the arbiter's answer, while it waits
        self._waiting: defer.Deferred[list[LiveFrame]] | None = None  # the acquisition's wait for frames
        self._stepping_aside = False  # asked to give the camera up
        self._paused: str | None = None  # why the live view waits for the camera, as viewers were told
        self._steps: frozenset[int] = frozenset()  # the decimation steps viewers use (read by the SDK thread)
        self._retry: DelayedCall | None = None
        self._view: dict[str, Any] | None = None  # the AOI, binning and frame rate of the running acquisition
        self.frames = 0
        self._watch: DelayedCall | None = None  # the next look at a capturing burst, while anyone watches
        self._watched: tuple[int, int] | None = None  # (burst id, frame number) last sent from a burst

    # ---- viewers ----

    def add(self, viewer: Viewer) -> None:
        self.viewers.append(viewer)
        if self._paused is not None:
            viewer.send_json(messages.paused(self._paused))
        elif self._view is not None:
            self._send_view(viewer)
        self._start()
        self._schedule_watch()

    def remove(self, viewer: Viewer) -> None:
        self.viewers.remove(viewer)
        if not self.viewers:
            self._stop()
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None

    # ---- watching a burst ----

    def _schedule_watch(self) -> None:
        if self._watch is None and self.bursts is not None and self.viewers:
            self._watch = self.clock.callLater(1.0 / WATCH_HZ, self._watch_burst)

    def _watch_burst(self) -> None:
        """Send viewers that are ready the newest frame of the capturing burst's spool, reduced."""
        self._watch = None
        self._schedule_watch()
        burst = self.bursts.current if self.bursts is not None else None
        if burst is None or burst.state is not BurstState.CAPTURING or self._view is not None or burst.layout is None:
            return
        frame = burst.spool.newest()
        if frame is None or self._watched == (burst.id, frame.frame_number):
            return
        ready = [viewer for viewer in self.viewers if not viewer.in_flight]
        if not ready:
            return
        self._watched = (burst.id, frame.frame_number)
        made: dict[int, bytes] = {}
        for viewer in ready:
            if viewer.watching != burst.id:
                self._send_burst_view(viewer, burst)
            step = viewer.step or 1
            if step not in made:
                made[step] = reduced_message(burst.id, frame, step, burst.layout.tick_frequency)
            viewer.offer(made[step])

    def _send_burst_view(self, viewer: Viewer, burst: Burst) -> None:
        layout = burst.layout
        assert layout is not None
        settings = layout.settings
        viewer.step = reduction(layout.width, layout.height, viewer.display)
        viewer.watching = burst.id
        aoi = {key: settings.get(f"aoi_{key}") for key in ("left", "top", "width", "height")}
        viewer.send_json(messages.view(viewer.step, aoi, settings.get("binning"), layout.frame_rate, burst=burst.id))

    def resize(self, viewer: Viewer, display: tuple[int, int]) -> None:
        viewer.display = display
        viewer.watching = None  # a burst it watches gets a new view message, and step, for this display
        if self._view is not None:
            self._send_view(viewer)

    # ---- the camera ----

    def startService(self) -> None:
        super().startService()
        self._start()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return self._stop()

    def _wanted(self) -> bool:
        return bool(self.viewers) and bool(self.running) and not self._stepping_aside

    def _start(self) -> None:
        if self._loop is None and self._retry is None and self.viewers and self.running:
            self._stepping_aside = False
            self._loop = self._run()
            self._loop.addBoth(self._ended)

    def _stop(self) -> defer.Deferred[None]:
        """Fires once the live acquisition has stopped and given the camera back."""
        if not self.viewers and self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._loop is None:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._loop.addBoth(lambda result: done.callback(None))
        if self._request is not None:
            self._request.cancel()
        if self._waiting is not None:
            self._waiting.cancel()  # only the wait for frames: arming always runs to its end
        return done

    def _step_aside(self, reason: str) -> None:
        """The arbiter wants the camera for someone else (``reason``): stop, and tell the viewers why."""
        self._stepping_aside = True
        self._pause(reason)
        if self._waiting is not None:
            self._waiting.cancel()

    def _pause(self, reason: str) -> None:
        if reason != self._paused:
            self._paused = reason
            for viewer in self.viewers:
                viewer.send_json(messages.paused(reason))

    def _ended(self, result: object) -> None:
        self._loop = None
        self._view = None
        if isinstance(result, Failure):
            if not self.running:
                self.log.info("live view stopped with the server: {why}", why=result.value)
                return
            self.log.error("live view stopped: {why}; trying again in {s:g} s", why=result.value, s=RETRY_S)
            self._retry = self.clock.callLater(RETRY_S, self._retry_now)
        else:
            self._start()  # it asks for the camera again, and gets it once the camera is free

    def _retry_now(self) -> None:
        self._retry = None
        self._start()

    @defer.inlineCallbacks
    def _run(self) -> Generator[defer.Deferred[Any], Any, None]:
        request = self.arbiter.request(Purpose.LIVE_VIEW, "live view", self._step_aside)
        if not request.called:
            busiest = self.arbiter.busiest()
            if busiest is not None:
                self._pause(busiest.reason)
        self._request = request
        try:
            grant: Grant = yield request
        except defer.CancelledError:
            return  # nobody watches any more
        finally:
            self._request = None
        self._paused = None
        try:
            if self._wanted():  # still: the server may be stopping
                yield self._acquire()
        finally:
            grant.release()

    @defer.inlineCallbacks
    def _acquire(self) -> Generator[defer.Deferred[Any], Any, None]:
        camera = self.camera_service.camera()
        aoi = yield camera.get_aoi()
        binning = yield camera.get_binning()
        layout = yield camera.start("live view", LIVE_BUFFERS)
        error = None
        try:
            self._view = {"aoi": aoi, "binning": binning, "frame_rate": layout.frame_rate,
                          "width": layout.width, "height": layout.height}
            for viewer in self.viewers:
                self._send_view(viewer)
            while self._wanted():
                self._waiting = camera.next_frames(layout, self.frames, LIVE_BUFFERS, self._reduce)
                frames: list[LiveFrame] = yield self._waiting
                self.frames += len(frames)
                newest = frames[-1].messages
                for viewer in self.viewers:
                    if viewer.step in newest:
                        viewer.offer(newest[viewer.step])
        except defer.CancelledError:
            pass  # stepping aside, or nobody watches
        except Exception as e:
            error = e
            for viewer in self.viewers:
                viewer.send_json(messages.error(getattr(e, "code", "internal_error"), getattr(e, "message", str(e))))
        self._waiting = None
        yield camera.stop()
        if error is not None:
            raise error

    def _reduce(self, frame: Frame) -> LiveFrame:
        """In the SDK thread: the frame as a message for each decimation step viewers use."""
        return LiveFrame.pack(frame, self._steps)

    def _send_view(self, viewer: Viewer) -> None:
        view = self._view
        if view is None:
            return
        viewer.step = reduction(view["width"], view["height"], viewer.display)
        viewer.watching = None
        self._steps = frozenset(v.step for v in self.viewers if v.step is not None)
        viewer.send_json(messages.view(viewer.step, view["aoi"], view["binning"], view["frame_rate"]))
