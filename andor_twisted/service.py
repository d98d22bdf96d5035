"""The service that owns the camera: opens it when twistd starts, stops and closes it at shutdown."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Generator
from typing import Any

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from andor_twisted.camera.contract import SDK
from andor_twisted.camera.devices import Choice
from andor_twisted.camera.driver import AndorCamera
from andor_twisted.camera.errors import CameraNotReady

GIL_SWITCH_S = 0.0005  # sys.setswitchinterval while the camera is served (CameraService.startService)


class CameraService(service.Service):
    """Holds the one camera and the one thread that may touch its SDK handle.

    ``sdk`` is a provider of pyAndorSDK3's ATCore (Andor's, or the simulator); ``choice`` says which of
    its devices to open. The camera opens asynchronously; until it has, ``camera()`` raises
    CameraNotReady (HTTP 503). If it cannot be opened, ``on_open_failure`` is called with the Failure
    (the twistd wiring stops the process).
    """

    log = Logger()

    def __init__(self, sdk: SDK, choice: Choice, reactor: Any, description: str,
                 on_open_failure: Callable[[Failure], None] | None = None, **camera_options: Any):
        self.sdk = sdk
        self.choice = choice
        self.reactor = reactor
        self.description = description
        self.on_open_failure = on_open_failure
        self.camera_options = camera_options  # for the driver: its host clock, in tests
        self._camera: AndorCamera | None = None
        self._failure: Failure | None = None
        self._pool: ThreadPool | None = None
        self._switch_interval = sys.getswitchinterval()  # CPython's, given back when the service stops
        self.opened: defer.Deferred[Any] | None = None  # fires when the open attempt ends

    def camera(self) -> AndorCamera:
        if self._camera is None:
            why = f"could not be opened: {self._failure.getErrorMessage()}" if self._failure else "is still opening"
            raise CameraNotReady(f"the camera ({self.description}) {why}")
        return self._camera

    def startService(self) -> None:
        super().startService()
        # the SDK thread and the reactor share the GIL: a thread that wants it waits this long at most for
        # the other to let go (CPython's default, 5 ms, would make an acknowledgement or a control request
        # wait behind a trip's Python work)
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="andor-sdk")
        self._pool.start()
        call = functools.partial(threads.deferToThreadPool, self.reactor, self._pool)
        self.log.info("opening {choice} of {sdk}", choice=self.choice, sdk=self.sdk.name)
        self.opened = AndorCamera.open(self.sdk, self.choice, call, self.reactor, **self.camera_options)
        self.opened.addCallbacks(self._opened, self._open_failed)

    def _opened(self, opened: tuple[AndorCamera, list[str]]) -> None:
        camera, notes = opened
        self._camera = camera
        self.log.info("devices: {devices}", devices="; ".join(map(str, camera.devices)))
        self.log.info("camera {device} is open: {n} features", device=camera.device, n=len(camera.features))
        for note in notes:
            self.log.warn("camera: {note}", note=note)

    def _open_failed(self, failure: Failure) -> None:
        self._failure = failure
        self.log.critical("cannot open {choice} ({camera}): {why}", choice=self.choice, camera=self.description,
                          why=failure.getErrorMessage())
        if self.on_open_failure is not None:
            self.on_open_failure(failure)

    @defer.inlineCallbacks
    def stopService(self) -> Generator[defer.Deferred[Any], Any, None]:
        super().stopService()
        if self.opened is not None:
            yield self.opened
        if self._camera is not None:
            camera, self._camera = self._camera, None
            try:
                yield camera.close()
                self.log.info("camera {device} closed", device=camera.device)
            except Exception:
                self.log.failure("closing the camera failed")
        assert self._pool is not None
        self._pool.stop()
        sys.setswitchinterval(self._switch_interval)
