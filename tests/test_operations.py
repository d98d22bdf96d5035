"""/metrics and /api/health end to end: a real server on loopback with a simulated camera whose link fails
after seven frames of an acquisition, scraped with prometheus_client's own parser before and after each
thing it does; the counters must move by exactly what happened."""

import io
import json
import os
import re
import sys

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest

import andor
from andor.progress import BurstProgress
from andor_twisted import logs
from andor_twisted.acquisition.probe import CameraProbe
from andor_twisted.camera.errors import CameraNotReady
from andor_twisted.web.health import HealthCheck

from tests.helpers import LoopbackServer

FPS = 200.0
FAULT_AFTER = 7  # --sim-fault-after: a burst longer than this fails with AT_ERR_COMM at this frame
BURST_COUNTERS = ("andor_bursts_started_total", "andor_bursts_completed_total", "andor_bursts_failed_total",
                  "andor_bursts_rejected_total", "andor_bursts_discarded_total",
                  "andor_burst_frames_captured_total", "andor_burst_frames_sent_total",
                  "andor_burst_frames_acknowledged_total", "andor_burst_frames_late_total",
                  "andor_burst_frames_lost_total", "andor_burst_bytes_sent_total", "andor_snaps_total")


def samples(text):
    """{(sample name, ((label, value), ...)): value} of a scrape, parsed by prometheus_client."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def moved(before, after, names=BURST_COUNTERS):
    """{name: change} of the label-less ``names`` that changed between two scrapes."""
    changes = {name: after.get((name, ()), 0) - before.get((name, ()), 0) for name in names}
    return {name: change for name, change in changes.items() if change}


class ServerFixture(unittest.TestCase):
    maxDiff = None

    @defer.inlineCallbacks
    def setUp(self):
        self.server = LoopbackServer()
        yield self.server.start("--sim-fault-after", str(FAULT_AFTER))
        self.cam = self.server.cam
        yield self.client(self.cam.aoi, {"width": 64, "height": 64})
        yield self.client(self.cam.exposure_time, 0.001)

    def tearDown(self):
        return self.server.stop()

    def client(self, fn, *args):
        """Run blocking client code in a thread while the reactor serves it."""
        return threads.deferToThread(fn, *args)

    @defer.inlineCallbacks
    def scrape(self):
        status, kind, body = yield self.client(self.server.raw, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(kind.startswith("text/plain"), kind)
        return samples(body.decode())

    @defer.inlineCallbacks
    def health(self):
        status, _, body = yield self.client(self.server.raw, "GET", "/api/health")
        return status, body

    def message_bytes(self):
        """A frame message's length (header and pixels) in the newest burst."""
        return self.server.bursts.current.message_bytes

    def read_all(self, frames):
        return self.client(lambda: [image for image in frames])


class OperationsTests(ServerFixture):
    @defer.inlineCallbacks
    def test_burst(self):
        """A burst read to its end: one burst started and completed, its frames captured, sent and
        acknowledged once each, their bytes sent, nothing late or lost; the spool's high water is there."""
        before = yield self.scrape()
        frames = yield self.client(self.cam.burst, 5, FPS)
        images = yield self.read_all(frames)
        self.assertEqual(len(images), 5)
        after = yield self.scrape()
        self.assertEqual(moved(before, after), {
            "andor_bursts_started_total": 1, "andor_bursts_completed_total": 1,
            "andor_burst_frames_captured_total": 5, "andor_burst_frames_sent_total": 5,
            "andor_burst_frames_acknowledged_total": 5, "andor_burst_bytes_sent_total": 5 * self.message_bytes()})
        self.assertGreaterEqual(after[("andor_spool_high_water_frames", ())], 1)
        self.assertEqual(after[("andor_spool_frames", ())], 0)
        self.assertEqual(after[("andor_burst_capturing", ())], 0)
        self.assertLess(after[("andor_seconds_since_last_frame", ())], 30)
        route = (("method", "POST"), ("route", "/api/burst"))
        self.assertEqual(after[("andor_request_duration_seconds_count", route)]
                         - before.get(("andor_request_duration_seconds_count", route), 0), 1)

    @defer.inlineCallbacks
    def test_snap(self):
        """A snap counts as a snap and a request on its route, and moves no burst counter."""
        before = yield self.scrape()
        yield self.client(self.cam.snap)
        after = yield self.scrape()
        self.assertEqual(moved(before, after), {"andor_snaps_total": 1})
        route = (("method", "GET"), ("route", "/api/snap"))
        self.assertEqual(after[("andor_request_duration_seconds_count", route)]
                         - before.get(("andor_request_duration_seconds_count", route), 0), 1)

    @defer.inlineCallbacks
    def test_discarded_burst(self):
        """A burst discarded unread counts as started and discarded; its frames captured and never sent."""
        before = yield self.scrape()
        status, _, body = yield self.client(self.server.raw, "POST", "/api/burst",
                                            {"value": {"frames": 5, "fps": FPS}})
        self.assertEqual(status, 200, body)
        yield self.server.bursts.current.when_captured()
        status, _, body = yield self.client(self.server.raw, "DELETE", "/api/burst")
        self.assertEqual((status, body["value"]["state"]), (200, "discarded"))
        after = yield self.scrape()
        self.assertEqual(moved(before, after), {
            "andor_bursts_started_total": 1, "andor_bursts_discarded_total": 1,
            "andor_burst_frames_captured_total": 5})
        # a new burst retires the discarded one: its frames stay counted exactly once
        frames = yield self.client(self.cam.burst, 2, FPS)
        yield self.read_all(frames)
        last = yield self.scrape()
        self.assertEqual(moved(after, last), {
            "andor_bursts_started_total": 1, "andor_bursts_completed_total": 1,
            "andor_burst_frames_captured_total": 2, "andor_burst_frames_sent_total": 2,
            "andor_burst_frames_acknowledged_total": 2, "andor_burst_bytes_sent_total": 2 * self.message_bytes()})

    @defer.inlineCallbacks
    def test_rejected_burst(self):
        """A burst the camera refuses as it arms (a frame rate it cannot do) is the client's mistake:
        rejected, not failed, and no frame counts as lost."""
        before = yield self.scrape()
        status, _, body = yield self.client(self.server.raw, "POST", "/api/burst",
                                            {"value": {"frames": 5, "fps": 1e6}})
        self.assertEqual(status, 400, body)
        after = yield self.scrape()
        self.assertEqual(moved(before, after), {"andor_bursts_started_total": 1, "andor_bursts_rejected_total": 1})

    @defer.inlineCallbacks
    def test_camera_fault(self):
        """The camera's link fails mid-burst: the burst failed, its frames up to the fault captured and the
        rest lost, one AT_ERR_COMM; health answers 503 naming it until the camera delivers a frame again."""
        status, body = yield self.health()
        self.assertEqual((status, body["healthy"], body["reasons"]), (200, True, []))
        before = yield self.scrape()
        frames = yield self.client(self.cam.burst, 10, FPS)

        def read():
            images = []
            with self.assertRaises(andor.CameraFailure):
                for image in frames:
                    images.append(image)
            return images

        images = yield self.client(read)
        self.assertEqual(len(images), FAULT_AFTER)
        after = yield self.scrape()
        self.assertEqual(moved(before, after), {
            "andor_bursts_started_total": 1, "andor_bursts_failed_total": 1,
            "andor_burst_frames_captured_total": 7, "andor_burst_frames_sent_total": 7,
            "andor_burst_frames_acknowledged_total": 7, "andor_burst_frames_lost_total": 3,
            "andor_burst_bytes_sent_total": 7 * self.message_bytes()})
        comm = ("andor_sdk_errors_total", (("error", "AT_ERR_COMM"),))
        self.assertEqual(after[comm] - before.get(comm, 0), 1)

        status, body = yield self.health()
        self.assertEqual((status, body["healthy"]), (503, False))
        self.assertEqual(len(body["reasons"]), 1)
        self.assertIn("AT_ERR_COMM", body["reasons"][0])
        self.assertEqual(body["last_sdk_error"]["error"], "AT_ERR_COMM")

        yield self.client(self.cam.snap)  # the camera delivers again
        status, body = yield self.health()
        self.assertEqual((status, body["healthy"], body["reasons"]), (200, True, []))
        self.assertEqual(body["last_sdk_error"]["error"], "AT_ERR_COMM")  # still reported, no longer a reason

    @defer.inlineCallbacks
    def test_camera_figures(self):
        """The camera's temperature and cooling status come from the probe's cached reading: the first
        scrape starts a read, a later one shows it."""
        yield self.scrape()
        status, body = yield self.health()  # waits for a fresh reading
        self.assertEqual(status, 200)
        after = yield self.scrape()
        self.assertEqual(after[("andor_camera_open", ())], 1)
        self.assertEqual(after[("andor_camera_answering", ())], 1)
        self.assertAlmostEqual(after[("andor_camera_temperature_celsius", ())], body["temperature"], places=6)
        self.assertEqual(after[("andor_camera_cooling", ())], 0)
        self.assertEqual(after[("andor_camera_cooling_status", (("status", "Cooler Off"),))], 1)
        self.assertEqual(after[("andor_camera_cooling_status", (("status", "Fault"),))], 0)

    @defer.inlineCallbacks
    def test_documented_metrics_exist(self):
        """Every andor_ metric docs/operations.md names (in its table and its alerting rules) is in a scrape,
        and every one in a scrape is documented."""
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                               "operations.md")) as f:
            documented = set(re.findall(r"\b(andor_(?!twisted)[a-z_]+)", f.read()))  # (not the package)
        documented = {re.sub(r"_(bucket|count|sum)$", "", name) for name in documented}
        yield self.client(self.cam.snap)  # a frame, for the time since the last one
        yield self.health()  # a temperature reading
        families = {family.name: family.type
                    for family in text_string_to_metric_families((yield self.client(self.server.raw, "GET",
                                                                                     "/metrics"))[2].decode())}
        exported = {name + "_total" if kind == "counter" else name for name, kind in families.items()
                    if not name.endswith("_created")}  # prometheus_client's creation times of its own metrics
        self.assertEqual(documented, exported)

    @defer.inlineCallbacks
    def test_health_is_next_to_the_api(self):
        """/api/health answers JSON without a camera grant; other names under /api still reach the API."""
        status, kind, body = yield self.client(self.server.raw, "GET", "/api/health")
        self.assertEqual((status, kind), (200, "application/json"))
        self.assertEqual(body["camera_open"], True)
        status, _, body = yield self.client(self.server.raw, "GET", "/api/health/")
        self.assertEqual((status, body["healthy"]), (200, True))
        status, _, body = yield self.client(self.server.raw, "GET", "/api/health/more")
        self.assertEqual((status, body["error"]), (404, "not_found"))


class ProgressTests(ServerFixture):
    @defer.inlineCallbacks
    def test_bar(self):
        """burst(progress=True) shows a bar on stderr: frames read, MB/s, and at the end the server's spool
        use from the summary; progress=None off a terminal shows none."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        frames = yield self.client(self.cam.burst, 5, FPS, 0, None, None, None, True)
        yield self.read_all(frames)
        text = err.getvalue()
        self.assertRegex(text, rf"burst {frames.id}: 100%.*5/5.*MB/s, spool 0/5 \(0 MB\), high water \d")
        err.truncate(0)
        frames = yield self.client(self.cam.burst, 5, FPS)
        yield self.read_all(frames)
        self.assertEqual(err.getvalue(), "")


class BarTests(unittest.TestCase):
    def test_figures(self):
        """The bar's figures: MB/s since the first frame, the spool's use as the server last said (asked at
        most once a second, and only for this burst)."""
        now, asked = [10.0], []
        statuses = iter([{"id": 4, "spool_frames": 12, "spool_capacity": 100, "spool_bytes": 24e6,
                          "high_water_frames": 80},
                         {"id": 5, "spool_frames": 1, "spool_capacity": 1}])

        def status():
            asked.append(now[0])
            return next(statuses)

        bar = BurstProgress(4, 10, status, out=io.StringIO(), clock=lambda: now[0])
        now[0] = 11.0
        bar.frame(2_000_000)
        self.assertEqual(bar.postfix(now[0]), "2.0 MB/s, spool 12/100 (24 MB), high water 80")
        now[0] = 11.5
        bar.frame(2_000_000)
        self.assertEqual(asked, [11.0])
        now[0] = 12.0
        bar.frame(2_000_000)  # a newer burst's status is not this one's
        self.assertEqual(bar.postfix(now[0]), "3.0 MB/s, spool 12/100 (24 MB), high water 80")
        bar.close({"spool_frames": 0, "spool_capacity": 100, "spool_bytes": 0, "high_water_frames": 90})
        self.assertEqual(bar.postfix(now[0]), "3.0 MB/s, spool 0/100 (0 MB), high water 90")


class LogTests(ServerFixture):
    """What the server logs of what it does: a summary per burst, who changed what, and no traceback for a
    client's mistakes."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    @defer.inlineCallbacks
    def test_one_summary_per_burst(self):
        """A burst read to its end, then one replaced by a new one: one summary event each, with the
        whole status, as JSON; the replaced one is logged as discarded, the done one not again."""
        frames = yield self.client(self.cam.burst, 3, FPS)
        yield self.read_all(frames)
        yield self.client(self.server.raw, "POST", "/api/burst", {"value": {"frames": 4, "fps": FPS}})
        yield self.server.bursts.current.when_captured()
        yield self.client(self.server.raw, "POST", "/api/burst", {"value": {"frames": 2, "fps": FPS}})
        summaries = [e for e in self.events if "summary" in e]
        self.assertEqual([(e["id"], e["state"]) for e in summaries], [(1, "done"), (2, "discarded")])
        first = json.loads(logs.format_json(summaries[0]))
        self.assertEqual(first["message"], "burst 1 done: 3 of 3 frames captured, 3 acknowledged, 0 late, 0 lost")
        self.assertEqual((first["summary"]["captured"], first["summary"]["state"]), (3, "done"))
        self.assertIn("plan", first["summary"])
        self.assertEqual(summaries[1]["summary"]["message"], "burst 2 was discarded: burst 3 replaced it")

    @defer.inlineCallbacks
    def test_who_changed_what(self):
        """A change is logged with the client that made it and the value the camera now has; reads are not."""
        yield self.client(self.server.raw, "GET", "/api/exposure_time")
        yield self.client(self.server.raw, "PUT", "/api/exposure_time", {"value": 0.02})
        changes = [e for e in self.events if "who" in e]
        self.assertEqual(len(changes), 1)
        self.assertEqual((changes[0]["method"], changes[0]["route"]), ("PUT", "/api/exposure_time"))
        self.assertRegex(changes[0]["who"], r"^127\.0\.0\.1:\d+$")
        self.assertAlmostEqual(changes[0]["result"], 0.02, places=6)

    @defer.inlineCallbacks
    def test_no_traceback_for_client_mistakes(self):
        """Malformed JSON, an unknown feature or route, a value out of range, a burst the camera refuses,
        a burst that is not there: answered with 4xx, and nothing logs a traceback or an error."""
        raw = self.server.raw
        for method, path, body, status in [
            ("GET", "/api/burst", None, 404), ("DELETE", "/api/burst", None, 404),  # (before there is one)
            ("PUT", "/api/exposure_time", b"{not json", 400), ("GET", "/api/features/Nope", None, 404),
            ("GET", "/api/nowhere", None, 404), ("PUT", "/api/exposure_time", {"value": -1}, 400),
            ("POST", "/api/burst", {"value": {"frames": 5, "fps": 1e6}}, 400),
            ("POST", "/api/burst", {"value": {"frames": "many"}}, 400), ("DELETE", "/api/snap", None, 405),
        ]:
            answer = yield self.client(raw, method, path, body)
            self.assertEqual(answer[0], status, (method, path, answer))
        self.assertEqual([e for e in self.events if "log_failure" in e], [])
        self.assertEqual([formatEvent(e) for e in self.events if e["log_level"] >= LogLevel.error], [])


class FakeCameraService:
    description = "fake"

    def __init__(self, camera=None, error=None):
        self._camera, self._error = camera, error

    def camera(self):
        if self._camera is None:
            raise CameraNotReady(self._error or "the camera is still opening")
        return self._camera


class SlowCamera:
    """A camera whose feature reads answer only when the test says so."""

    features = {"SensorTemperature": "float", "TemperatureStatus": "enum", "SensorCooling": "bool"}
    sdk_errors = {}
    last_sdk_error = last_sdk_error_at = last_frame_at = None

    def __init__(self):
        self.pending = []

    def get(self, name):
        d = defer.Deferred()
        self.pending.append((name, d))
        return d

    def answer(self, values):
        pending, self.pending = self.pending, []
        for name, d in pending:
            d.callback(values[name])


class ProbeAndHealthTests(unittest.TestCase):
    """The probe and the health check on a task.Clock, with fake cameras."""

    def setUp(self):
        self.clock = Clock()
        self.camera = SlowCamera()
        self.probe = CameraProbe(FakeCameraService(self.camera), self.clock, max_age_s=5, timeout_s=2)

    def test_one_read_in_flight_and_cached(self):
        """Reads while one is in flight share it; a reading younger than max_age_s is used as it is."""
        first, second = self.probe.read(), self.probe.read()
        self.assertEqual(len(self.camera.pending), 3)  # one read: its three features
        self.camera.answer({"SensorTemperature": -30.0, "TemperatureStatus": "Stabilised", "SensorCooling": True})
        a, b = self.successResultOf(first), self.successResultOf(second)
        self.assertIs(a, b)
        self.assertEqual((a.temperature, a.cooling_status, a.cooling, a.ok), (-30.0, "Stabilised", True, True))
        self.clock.advance(4)
        self.assertIs(self.successResultOf(self.probe.read()), a)
        self.clock.advance(1)
        self.assertNoResult(self.probe.read())
        self.assertEqual(len(self.camera.pending), 3)

    def test_not_answering(self):
        """A camera that does not answer within timeout_s is reported as not answering, and health is 503."""
        health = HealthCheck(FakeCameraService(self.camera), self.probe, self.clock)
        d = health.check()
        self.assertNoResult(d)
        self.clock.advance(2)
        result = self.successResultOf(d)
        self.assertFalse(result.healthy)
        self.assertEqual(result.reasons, ["camera not answering: the camera did not answer within 2 s"])
        self.assertIsNone(self.probe.cached())  # the read still goes on; scrapes show nothing meanwhile
        self.camera.answer({"SensorTemperature": 20.0, "TemperatureStatus": "Cooler Off", "SensorCooling": False})
        self.assertTrue(self.successResultOf(health.check()).healthy)

    def test_camera_not_open(self):
        """A camera that could not be opened: 503 with why."""
        service = FakeCameraService(error="the camera (fake) could not be opened: AT_ERR_DEVICEINUSE")
        health = HealthCheck(service, CameraProbe(service, self.clock), self.clock)
        result = self.successResultOf(health.check())
        self.assertEqual(result.reasons, ["camera not open: the camera (fake) could not be opened: AT_ERR_DEVICEINUSE"])
        self.assertEqual(json.loads(json.dumps(result.to_json()))["camera_open"], False)

    def test_cooling_and_disk(self):
        """A cooler reporting a fault, and a data directory short of room, are reasons; the disk is checked
        only when a data directory is configured."""

        class Usage:
            free = 10 << 20

        health = HealthCheck(FakeCameraService(self.camera), self.probe, self.clock, data_dir="/data",
                             min_free_bytes=1 << 30, disk_usage=lambda path: Usage)
        d = health.check()
        self.camera.answer({"SensorTemperature": -5.0, "TemperatureStatus": "Fault", "SensorCooling": True})
        result = self.successResultOf(d)
        self.assertEqual(result.reasons, ["cooling: TemperatureStatus is Fault",
                                          "data directory /data: only 0.01 GB free"])
        self.assertEqual(result.details["disk_free_bytes"], 10 << 20)
        without_disk = HealthCheck(FakeCameraService(self.camera), self.probe, self.clock,
                                   disk_usage=lambda path: self.fail("no data directory: no disk check"))
        self.assertEqual(self.successResultOf(without_disk.check()).reasons, ["cooling: TemperatureStatus is Fault"])

    def test_missing_data_directory(self):
        """A data directory that is not there is a reason, not a crash."""

        def missing(path):
            raise FileNotFoundError(2, "No such file or directory", path)

        health = HealthCheck(FakeCameraService(self.camera), self.probe, self.clock, data_dir="/nope",
                             disk_usage=missing)
        d = health.check()
        self.camera.answer({"SensorTemperature": 20.0, "TemperatureStatus": "Cooler Off", "SensorCooling": False})
        self.assertEqual(self.successResultOf(d).reasons, ["data directory /nope: No such file or directory"])
