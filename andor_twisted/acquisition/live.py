"""The live view: the camera runs continuously while anyone watches and nothing else needs it.

Every viewer gets the newest frame, reduced (every k-th pixel) to about its display size, and never a
backlog: a viewer holds at most one frame in flight and one waiting, and a newer frame replaces the
waiting one. A slow viewer therefore skips frames; it never slows the camera or the other viewers.
Anything that needs the camera (a burst, a snap, a change of settings) pauses the live view and
resumes it when done.
"""

import math
from dataclasses import replace

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from andor_twisted.web import wire

LIVE_BUFFERS = 4
MAX_PIXELS = 1_000_000  # a reduced frame is at most this big: 2 MB, over 5 frames/s on 100 Mbit/s
RETRY_S = 2.0  # after a camera error, try again this much later


class Viewer:
    """One viewer's share of the live view: its display size, and its one-frame queue."""

    def __init__(self, send_frame, send_json, display=(1024, 1024)):
        self.send_frame = send_frame
        self.send_json = send_json
        self.display = display
        self.step = None
        self.in_flight = False  # a frame sent and not yet acknowledged
        self.waiting = None  # the newest frame not sent yet
        self.skipped = 0

    def offer(self, message):
        if self.in_flight:
            self.skipped += self.waiting is not None
            self.waiting = message
        else:
            self.in_flight = True
            self.send_frame(message)

    def acknowledged(self):
        self.in_flight = False
        if self.waiting is not None:
            message, self.waiting = self.waiting, None
            self.offer(message)


def reduction(width, height, display):
    """The decimation step that makes a width x height frame fit ``display``, and MAX_PIXELS."""
    fit = max(width / max(display[0], 1), height / max(display[1], 1))
    return max(1, math.ceil(fit - 1e-9), math.ceil(math.sqrt(width * height / MAX_PIXELS) - 1e-9))


class LiveView(service.Service):
    log = Logger()

    def __init__(self, camera_service, clock):
        self.camera_service = camera_service
        self.clock = clock
        self.viewers = []
        self._pauses = []  # why the live view is paused, one entry per pause() not yet resumed
        self._loop = None  # the running acquisition
        self._waiting = None  # its wait for frames
        self._steps = frozenset()  # the decimation steps viewers use (read by the SDK thread)
        self._retry = None
        self._view = None  # the AOI, binning and frame rate of the running acquisition
        self.frames = 0

    # ---- viewers ----

    def add(self, viewer):
        self.viewers.append(viewer)
        if self._pauses:
            viewer.send_json({"type": "paused", "reason": self._pauses[-1]})
        elif self._view is not None:
            self._send_view(viewer)
        self._start()

    def remove(self, viewer):
        self.viewers.remove(viewer)
        if not self.viewers:
            self._stop()

    def resize(self, viewer, display):
        viewer.display = display
        if self._view is not None:
            self._send_view(viewer)

    # ---- others who need the camera ----

    def pause(self, reason):
        """Stop the live view until ``resume``; fires once the camera is free."""
        self._pauses.append(reason)
        for viewer in self.viewers:
            viewer.send_json({"type": "paused", "reason": reason})
        return self._stop()

    def resume(self, reason):
        self._pauses.remove(reason)
        if self._pauses:
            return
        self._start()

    @defer.inlineCallbacks
    def paused(self, reason, operation):
        """Run ``operation()`` (returning a Deferred) with the live view paused."""
        yield self.pause(reason)
        try:
            return (yield operation())
        finally:
            self.resume(reason)

    # ---- the acquisition ----

    def _wanted(self):
        return bool(self.viewers) and not self._pauses and self.running

    def startService(self):
        super().startService()
        self._start()

    def stopService(self):
        super().stopService()
        return self._stop()

    def _start(self):
        if self._loop is None and self._retry is None and self._wanted():
            self._loop = self._run()
            self._loop.addBoth(self._ended)

    def _stop(self):
        """Fires once the live acquisition has stopped and released the camera."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._loop is None:
            return defer.succeed(None)
        done = defer.Deferred()
        self._loop.addBoth(lambda result: done.callback(None))
        if self._waiting is not None:
            self._waiting.cancel()  # only the wait for frames: arming always runs to its end
        return done

    def _ended(self, result):
        self._loop = None
        self._view = None
        if isinstance(result, Failure):
            self.log.error("live view stopped: {why}; trying again in {s:g} s", why=result.value, s=RETRY_S)
            self._retry = self.clock.callLater(RETRY_S, self._retry_now)
        else:
            self._start()  # wanted again meanwhile

    def _retry_now(self):
        self._retry = None
        self._start()

    @defer.inlineCallbacks
    def _run(self):
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
                frames = yield self._waiting
                self.frames += len(frames)
                newest = frames[-1].message
                for viewer in self.viewers:
                    if viewer.step in newest:
                        viewer.offer(newest[viewer.step])
        except defer.CancelledError:
            pass  # paused, or nobody watches
        except Exception as e:
            error = e
            for viewer in self.viewers:
                viewer.send_json({"type": "error", "error": getattr(e, "code", "internal_error"),
                                  "message": getattr(e, "message", str(e))})
        self._waiting = None
        yield camera.stop()
        if error is not None:
            raise error

    def _reduce(self, frame):
        """In the SDK thread: the frame as a message for each decimation step viewers use."""
        messages = {}
        for step in self._steps:
            reduced = frame.image[::step, ::step] if step > 1 else frame.image
            messages[step] = wire.frame_message(0, frame.frame_number, reduced, frame.ticks, frame.tick_frequency)
        return replace(frame, image=None, message=messages)

    def _send_view(self, viewer):
        view = self._view
        viewer.step = reduction(view["width"], view["height"], viewer.display)
        self._steps = frozenset(v.step for v in self.viewers if v.step is not None)
        viewer.send_json({"type": "view", "step": viewer.step, "aoi": view["aoi"], "binning": view["binning"],
                          "frame_rate": view["frame_rate"]})
