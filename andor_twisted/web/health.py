"""``GET /api/health``: whether the server can do its job now, for lab monitors and load balancers.

200 when healthy, 503 with the reasons otherwise. Healthy means: the camera is open and answers a
feature read within a few seconds (``CameraProbe``, cached, so monitors polling it cost the camera
nothing); its last SDK failure, if any, is followed by a frame (an acquisition that failed leaves the
server unhealthy until the camera delivers again: a snap is enough); its cooler, when on, is not
reporting a fault, drift or a setpoint it cannot reach; and the disk for recordings, when there is one,
has room. Whether the process itself is alive is systemd's watchdog's question (``andor_twisted.systemd``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.server import Request

from andor_twisted.acquisition.contracts import CameraSource, Clock
from andor_twisted.acquisition.probe import CameraProbe
from andor_twisted.camera.errors import CameraError, TriggerTimeout

MIN_FREE_BYTES = 1 << 30  # less room than this where recordings go is unhealthy
BAD_COOLING = ("Fault", "Drift", "Not Stabilised")  # TemperatureStatus values that need a person


@dataclass
class Health:
    reasons: list[str] = field(default_factory=list)  # why it is unhealthy; empty when healthy
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "reasons": self.reasons, **self.details}


class HealthCheck:
    """``data_dir``: where recordings go, if the server writes any (its free space is checked)."""

    def __init__(self, camera_service: CameraSource, probe: CameraProbe, clock: Clock, data_dir: str | None = None,
                 min_free_bytes: int = MIN_FREE_BYTES,
                 disk_usage: Callable[[str], Any] = shutil.disk_usage) -> None:
        self.camera_service = camera_service
        self.probe = probe
        self.clock = clock
        self.data_dir = data_dir
        self.min_free_bytes = min_free_bytes
        self.disk_usage = disk_usage

    @defer.inlineCallbacks
    def check(self) -> Generator[defer.Deferred[Any], Any, Health]:
        health = Health()
        try:
            camera = self.camera_service.camera()
        except CameraError as e:
            health.reasons.append(f"camera not open: {e.message}")
            camera = None
        health.details["camera_open"] = camera is not None
        if camera is not None:
            reading = yield self.probe.read()
            health.details["camera_answering"] = reading.ok
            if not reading.ok:
                health.reasons.append(f"camera not answering: {reading.error}")
            else:
                health.details["temperature"] = reading.temperature
                health.details["cooling"] = reading.cooling
                health.details["cooling_status"] = reading.cooling_status
                if reading.cooling and reading.cooling_status in BAD_COOLING:
                    health.reasons.append(f"cooling: TemperatureStatus is {reading.cooling_status}")
            self._last_error(camera, health)
        if self.data_dir is not None:
            self._disk(health)
        return health

    def _last_error(self, camera: Any, health: Health) -> None:
        error, at = camera.last_sdk_error, camera.last_sdk_error_at
        if error is None or at is None:
            health.details["last_sdk_error"] = None
            return
        age = self.clock.seconds() - at
        health.details["last_sdk_error"] = {"error": error.sdk_error, "message": error.message, "age_s": age}
        recovered = camera.last_frame_at is not None and camera.last_frame_at >= at
        if not recovered and not isinstance(error, TriggerTimeout):  # a trigger that never came is not the camera's
            health.reasons.append(f"the camera failed {age:.0f} s ago ({error.sdk_error}: {error.message}) and has "
                                  f"delivered no frame since")

    def _disk(self, health: Health) -> None:
        assert self.data_dir is not None
        try:
            free = self.disk_usage(self.data_dir).free
        except OSError as e:
            health.reasons.append(f"data directory {self.data_dir}: {e.strerror or e}")
            return
        health.details["disk_free_bytes"] = free
        if free < self.min_free_bytes:
            health.reasons.append(f"data directory {self.data_dir}: only {free / 1e9:.2f} GB free")


class HealthResource(resource.Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, check: HealthCheck) -> None:
        super().__init__()
        self.health = check
        self._reasons: list[str] = []  # the last answer's, to log changes only (monitors poll for months)

    def render_GET(self, request: Request) -> int:
        finished: list[object] = []
        request.notifyFinish().addBoth(finished.append)

        def answer(health: Health) -> None:
            if health.reasons != self._reasons:
                self._reasons = health.reasons
                if health.healthy:
                    self.log.info("healthy again")
                else:
                    self.log.warn("unhealthy: {reasons}", reasons="; ".join(health.reasons))
            if finished:
                return
            body = json.dumps(health.to_json(), default=str).encode()
            request.setResponseCode(200 if health.healthy else 503)
            request.setHeader("Content-Type", "application/json")
            request.setHeader("Cache-Control", "no-store")
            request.setHeader("Content-Length", str(len(body)))
            request.write(body)
            request.finish()

        def broken(failure: Failure) -> Health:
            self.log.failure("the health check failed", failure)
            return Health([f"the health check failed: {failure.getErrorMessage()}"])

        d: defer.Deferred[Health] = self.health.check()
        d.addErrback(broken)
        d.addCallback(answer)
        return server.NOT_DONE_YET
