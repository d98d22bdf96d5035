"""``GET /metrics``: what the server does, in Prometheus' text format, for the lab's monitoring.

prometheus_client does the format and the resource (``prometheus_client.twisted.MetricsResource``). The
figures are read at scrape time from counters the server keeps anyway (the bursts' totals, the driver's
SDK errors and last frame, the probe's last temperature reading): nothing is counted per frame for
this. Each server has its own ``CollectorRegistry``, so two servers (or two tests) in one process never
share a metric. prometheus_client's resource renders in a thread of the reactor's pool: the collector
only reads, and asks the reactor (``callFromThread``) for a fresh temperature reading rather than
reading the camera itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.twisted import MetricsResource

from andor_twisted.acquisition.burst import Bursts
from andor_twisted.acquisition.contracts import CameraSource, Clock
from andor_twisted.acquisition.live import LiveView
from andor_twisted.acquisition.probe import CameraProbe
from andor_twisted.camera.errors import CameraError

# TemperatureStatus values of SDK3 (the manual's list): each one a 0/1 sample, so rules can match one
COOLING_STATUSES = ("Cooler Off", "Cooling", "Stabilised", "Not Stabilised", "Drift", "Fault")
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)  # seconds


class Metrics:
    """The registry of one server: its collector, and the request latency histogram the API feeds."""

    def __init__(self, camera_service: CameraSource, bursts: Bursts, live: LiveView, probe: CameraProbe,
                 clock: Clock, call_in_reactor: Callable[[Callable[[], Any]], None]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ServerCollector(camera_service, bursts, live, probe, clock, call_in_reactor))
        self.latency = Histogram("andor_request_duration_seconds", "Time to answer an API request, by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe_request(self, method: str, route: str, seconds: float) -> None:
        self.latency.labels(method, route).observe(seconds)

    def resource(self) -> Any:
        return MetricsResource(self.registry)


class ServerCollector(Collector):
    def __init__(self, camera_service: CameraSource, bursts: Bursts, live: LiveView, probe: CameraProbe,
                 clock: Clock, call_in_reactor: Callable[[Callable[[], Any]], None]) -> None:
        self.camera_service = camera_service
        self.bursts = bursts
        self.live = live
        self.probe = probe
        self.clock = clock
        self.call_in_reactor = call_in_reactor

    def collect(self) -> Iterator[Metric]:
        yield from self._bursts()
        yield from self._camera()

    def _bursts(self) -> Iterator[Metric]:
        counts = self.bursts.counts()
        for name, value, text in [
            ("bursts_started", counts.started, "Bursts started"),
            ("bursts_completed", counts.completed, "Bursts whose every frame was acknowledged by a reader"),
            ("bursts_failed", counts.failed, "Bursts ended by a camera or SDK failure"),
            ("bursts_rejected", counts.rejected, "Bursts the camera refused as they armed (a bad request)"),
            ("bursts_discarded", counts.discarded, "Bursts discarded before they completed or failed"),
            ("burst_frames_captured", counts.frames_captured, "Burst frames taken off the camera into the spool"),
            ("burst_frames_sent", counts.frames_sent, "Burst frames sent to a reader (once each)"),
            ("burst_frames_acknowledged", counts.frames_acknowledged, "Burst frames acknowledged by a reader"),
            ("burst_frames_late", counts.frames_late, "Burst frames exposed late (the camera waited for room)"),
            ("burst_frames_lost", counts.frames_lost, "Burst frames that never came: their burst failed first"),
            ("burst_bytes_sent", counts.bytes_sent, "Frame bytes written to burst readers"),
        ]:
            yield CounterMetricFamily(f"andor_{name}", text, value=value)
        burst = self.bursts.current
        spool = burst.spool if burst is not None else None
        yield _gauge("spool_frames", "Frames the newest burst's spool holds", spool.frames if spool else 0)
        yield _gauge("spool_bytes", "Bytes the newest burst's spool holds", spool.bytes if spool else 0)
        yield _gauge("spool_high_water_frames", "Most frames the newest burst's spool held",
                     spool.high_water_frames if spool else 0)
        yield _gauge("spool_high_water_bytes", "Most bytes the newest burst's spool held",
                     spool.high_water_bytes if spool else 0)
        yield _gauge("spool_capacity_frames", "Frames the newest burst's spool may hold",
                     spool.capacity if spool else 0)
        yield _gauge("spool_memory_limit_bytes", "--spool-memory-limit", self.bursts.memory_limit)
        yield _gauge("burst_capturing", "1 while a burst holds the camera",
                     int(burst is not None and burst.state.holds_camera))
        yield _gauge("burst_readers", "Readers connected to the newest burst", burst.readers if burst else 0)
        yield _gauge("live_viewers", "Live viewers connected", len(self.live.viewers))

    def _camera(self) -> Iterator[Metric]:
        try:
            camera = self.camera_service.camera()
        except CameraError:
            camera = None
        yield _gauge("camera_open", "1 once the camera is open", int(camera is not None))
        errors = CounterMetricFamily("andor_sdk_errors", "SDK failures by AT_ERR_ name", labels=["error"])
        for name, count in sorted(dict(camera.sdk_errors if camera else {}).items()):
            errors.add_metric([name], count)
        yield errors
        yield CounterMetricFamily("andor_snaps", "Snaps taken", value=camera.snaps if camera else 0)
        if camera is not None and camera.last_frame_at is not None:
            yield _gauge("seconds_since_last_frame", "Seconds since the camera last delivered a frame "
                         "(a burst, the live view or a snap)", max(0.0, self.clock.seconds() - camera.last_frame_at))
        self.call_in_reactor(self.probe.cached)  # a fresh reading for the next scrape, if this one is old
        reading = self.probe.latest
        if reading is None:
            return
        yield _gauge("camera_answering", "1 if the camera answered the last temperature read", int(reading.ok))
        yield _gauge("camera_reading_age_seconds", "Age of the last temperature read (answered or not)",
                     max(0.0, self.clock.seconds() - reading.at))
        if not reading.ok:
            return
        if reading.temperature is not None:
            yield _gauge("camera_temperature_celsius", "SensorTemperature", reading.temperature)
        if reading.cooling is not None:
            yield _gauge("camera_cooling", "SensorCooling: 1 when the cooler is on", int(reading.cooling))
        if reading.cooling_status is not None:
            status = GaugeMetricFamily("andor_camera_cooling_status", "TemperatureStatus: 1 for the current one",
                                       labels=["status"])
            for name in sorted({*COOLING_STATUSES, reading.cooling_status}):
                status.add_metric([name], int(name == reading.cooling_status))
            yield status


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"andor_{name}", text, value=value)
