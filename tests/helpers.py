"""Shared test fixtures: a simulated SDK on a task.Clock, a synchronous SDK call, and a loopback server."""

import http.client
import json

from twisted.internet import defer, reactor
from twisted.internet.task import Clock

import andor
from andor_twisted import tap
from andor_twisted.acquisition.burst import Bursts
from andor_twisted.acquisition.live import LiveView
from andor_twisted.service import CameraService
from andor_twisted.web.site import make_site

from andor_twisted.camera import sim
from andor_twisted.camera.devices import Choice
from andor_twisted.camera.driver import AndorCamera
from andor_twisted.camera.sim.models import MODELS
from andor_twisted.protocol.timebase import HostClock

SYNCHRONISED = HostClock(True, estimated_error_s=1e-3, maximum_error_s=5e-3, source="test")


def clock_sdk(clock, simcam_first=False, **overrides):
    """A simulated SDK3 install whose camera lives on ``clock``; ``overrides`` change its model."""
    model = MODELS[overrides.pop("model", "neo")].with_overrides(**overrides)
    return sim.sdk(model, sim.ClockTime(clock), simcam_first=simcam_first)


def result_of(d):
    """The result of an already-fired Deferred; its exception raised if it failed."""
    results = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def open_clock_camera(choice=Choice(), simcam_first=False, **overrides):
    """(driver, simulated device, clock): the driver calling the SDK inline, time on a Clock, the host
    clock synchronised."""
    clock = Clock()
    sdk = clock_sdk(clock, simcam_first, **overrides)
    time = sdk.simulated.devices[0].time
    camera, _ = result_of(AndorCamera.open(sdk, choice, defer.maybeDeferred, clock, now_ns=time.host_ns,
                                           host_clock=lambda: SYNCHRONISED))
    return camera, camera.sdk.simulated.devices[camera.device.index], clock


# the simulated Neo as the command line would ask for it, arming quickly so the tests run fast
SIM_OPTIONS = {"sim-model": "neo", "sim-onboard-memory": None, "sim-link-rate": None, "sim-arm-latency": 0.005,
               "sim-fault-after": None}


def sdk_with_camera_in_use():
    """A simulated SDK whose camera another process holds: opening it fails with AT_ERR_DEVICEINUSE."""
    sdk = tap.simulated_sdk(SIM_OPTIONS)
    sdk.make_core().open(0)
    return sdk


class LoopbackServer:
    """A camera service and its site on 127.0.0.1, and a client for it."""

    @defer.inlineCallbacks
    def start(self, sdk=None, memory_limit=1 << 30, idle_timeout=600.0):
        self.service = CameraService(sdk or tap.simulated_sdk(SIM_OPTIONS), Choice(), reactor, "simulated neo")
        self.service.startService()
        yield self.service.opened
        self.live = LiveView(self.service, reactor)
        self.live.startService()
        self.bursts = Bursts(self.service, reactor, memory_limit, idle_timeout, self.live)
        self.bursts.startService()
        self.port = reactor.listenTCP(0, make_site(self.service, self.bursts, self.live), interface="127.0.0.1")
        self.address = f"127.0.0.1:{self.port.getHost().port}"
        self.cam = andor.Camera(self.address)

    @defer.inlineCallbacks
    def stop(self):
        self.cam.close()
        yield self.port.stopListening()
        yield self.bursts.stopService()
        yield self.live.stopService()
        yield self.service.stopService()

    def raw(self, method, path, body=None):
        """(status, content type, parsed JSON or bytes) of one plain HTTP request."""
        conn = http.client.HTTPConnection(*self.address.split(":"), timeout=30)
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        kind = response.getheader("Content-Type")
        return response.status, kind, json.loads(data) if kind == "application/json" else data
