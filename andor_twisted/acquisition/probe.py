"""A cheap, cached look at the camera's temperature and cooling, for /metrics and /api/health.

Reading a feature is a trip to the one SDK thread, which a burst is using: a scrape must never wait for
it, let alone block the reactor. So the probe reads at most once every ``max_age_s`` seconds, has at most
one read in flight, and a scrape takes whatever the last read found. The health check waits for a fresh
read, but no longer than ``timeout_s``: a camera that does not answer by then is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from andor_twisted.acquisition.contracts import CameraSource, Clock
from andor_twisted.camera.errors import CameraError

MAX_AGE_S = 5.0  # a reading younger than this is used as it is
TIMEOUT_S = 5.0  # a camera that has not answered a read in this long is "not answering"
FEATURES = ("SensorTemperature", "TemperatureStatus", "SensorCooling")


@dataclass(frozen=True)
class Reading:
    """What one probe found: the features it read (those the camera has), or why it could not."""

    at: float  # clock seconds when the read ended
    temperature: float | None = None  # SensorTemperature, degrees Celsius
    cooling_status: str | None = None  # TemperatureStatus: "Cooler Off", "Cooling", "Stabilised", ...
    cooling: bool | None = None  # SensorCooling
    error: str | None = None  # why the read failed (the camera is not open, an SDK error, no answer)

    @property
    def ok(self) -> bool:
        return self.error is None


class CameraProbe:
    def __init__(self, camera_service: CameraSource, clock: Clock, max_age_s: float = MAX_AGE_S,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.camera_service = camera_service
        self.clock = clock
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self.latest: Reading | None = None
        self._reading: defer.Deferred[Reading] | None = None  # the read in flight
        self._waiters: list[defer.Deferred[Reading]] = []

    def cached(self) -> Reading | None:
        """The last reading, at once; starts a new read in the background if it is old (for scrapes)."""
        self.read()
        return self.latest

    def read(self) -> defer.Deferred[Reading]:
        """A reading at most ``max_age_s`` old. Fires within ``timeout_s``: with the camera's answer, or a
        reading whose ``error`` says it did not answer (the read itself goes on in the SDK thread)."""
        if self.latest is not None and self.clock.seconds() - self.latest.at < self.max_age_s:
            return defer.succeed(self.latest)
        if self._reading is None:
            self._reading = self._read_camera()
            self._reading.addCallback(self._answered)
            if self._reading is None and self.latest is not None:  # answered at once
                return defer.succeed(self.latest)
        waiter: defer.Deferred[Reading] = defer.Deferred()
        self._waiters.append(waiter)
        timer = self.clock.callLater(self.timeout_s, self._timed_out, waiter)

        def answered(reading: Reading) -> Reading:
            if timer.active():
                timer.cancel()
            return reading

        return waiter.addCallback(answered)

    def _read_camera(self) -> defer.Deferred[Reading]:
        try:
            camera = self.camera_service.camera()
        except CameraError as e:
            return defer.succeed(Reading(self.clock.seconds(), error=e.message))
        present = [name for name in FEATURES if name in camera.features]
        d: defer.Deferred[Any] = defer.gatherResults([camera.get(name) for name in present], consumeErrors=True)

        def found(values: list[Any]) -> Reading:
            got = dict(zip(present, values, strict=True))
            temperature = got.get("SensorTemperature")
            return Reading(self.clock.seconds(), None if temperature is None else float(temperature),
                           got.get("TemperatureStatus"), got.get("SensorCooling"))

        def failed(failure: Any) -> Reading:
            error = failure.value.subFailure.value if isinstance(failure.value, defer.FirstError) else failure.value
            return Reading(self.clock.seconds(), error=getattr(error, "message", None) or str(error))

        return d.addCallbacks(found, failed)

    def _answered(self, reading: Reading) -> None:
        self._reading, self.latest = None, reading
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(reading)

    def _timed_out(self, waiter: defer.Deferred[Reading]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
            waiter.callback(Reading(self.clock.seconds(), error=f"the camera did not answer within "
                                                                f"{self.timeout_s:g} s"))
