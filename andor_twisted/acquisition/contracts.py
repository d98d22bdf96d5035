"""What the acquisition layer needs from around it, as typing Protocols: a clock (the reactor, or a
test's ``task.Clock``) and the service that owns the camera. (zope interfaces such as
``IReactorTime`` do not type-check without a plugin; these say the same for mypy.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.camera.driver import AndorCamera


class DelayedCall(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall: ...


class CameraSource(Protocol):
    """The service that owns the camera (``service.CameraService``)."""

    description: str  # which camera, for people: "simulated neo (DC-152Q-C00-FI)", "sdk3:0"

    def camera(self) -> AndorCamera:
        """The open camera, or CameraNotReady (HTTP 503)."""
        ...


class FrameSource(Protocol):
    """Where a burst's reader takes its frames from (``stream.sender.FrameSender``): the burst's spool,
    or for a recording burst the recording (``recorder.RecordedFrames``)."""

    max_window: int  # the most frames a reader may have unacknowledged (fewer of large frames: ``window_for``)
    acknowledged: int  # frames acknowledged, which are frames 0 .. acknowledged - 1

    def take(self, max_frames: int, max_bytes: int) -> list[BurstFrame]: ...

    def next(self) -> Deferred[BurstFrame | None]: ...

    def acknowledge(self, frame_number: int) -> None: ...

    def return_unacknowledged(self) -> None: ...
