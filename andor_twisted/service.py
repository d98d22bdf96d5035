"""The service that owns the camera: opens it when twistd starts, stops and closes it at shutdown."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from andor_twisted.camera.driver import AndorCamera
from andor_twisted.camera.errors import CameraNotReady


class CameraService(service.Service):
    """Holds the one camera and the one thread that may touch its SDK handle.

    ``sdk`` is a pyAndorSDK3-shaped module (Andor's, or the simulator). The camera opens
    asynchronously; until it has, ``camera()`` raises CameraNotReady (HTTP 503). If it cannot be
    opened, ``on_open_failure`` is called with the Failure (the twistd wiring stops the process).
    """

    log = Logger()

    def __init__(self, sdk: Any, index: int, reactor: Any, description: str,
                 on_open_failure: Callable[[Failure], None] | None = None) -> None:
        self.sdk = sdk
        self.index = index
        self.reactor = reactor
        self.description = description
        self.on_open_failure = on_open_failure
        self._camera: AndorCamera | None = None
        self._failure: Failure | None = None
        self._pool: ThreadPool | None = None
        self.opened: defer.Deferred[Any] | None = None  # fires when the open attempt ends

    def camera(self) -> AndorCamera:
        if self._camera is None:
            why = f"could not be opened: {self._failure.getErrorMessage()}" if self._failure else "is still opening"
            raise CameraNotReady(f"the camera ({self.description}) {why}")
        return self._camera

    def startService(self) -> None:
        super().startService()
        pool = self._pool = ThreadPool(minthreads=1, maxthreads=1, name="andor-sdk")
        pool.start()
        call = functools.partial(threads.deferToThreadPool, self.reactor, pool)
        self.log.info("opening camera {camera}", camera=self.description)
        self.opened = AndorCamera.open(self.sdk, self.index, call, self.reactor)
        self.opened.addCallbacks(self._opened, self._open_failed)

    def _opened(self, camera: AndorCamera) -> None:
        self._camera = camera
        self.log.info("camera {camera} is open: {n} features", camera=self.description, n=len(camera.features))

    def _open_failed(self, failure: Failure) -> None:
        self._failure = failure
        self.log.critical("cannot open camera {camera}: {why}", camera=self.description,
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
                self.log.info("camera {camera} closed", camera=self.description)
            except Exception:
                self.log.failure("closing the camera failed")
        if self._pool is not None:
            self._pool.stop()
