"""Shared test fixtures: a simulated SDK on a task.Clock, a synchronous SDK call, and a loopback server
built by ``tap.makeService`` from command-line options, as twistd builds it."""

import http.client
import json

from twisted.internet import defer, reactor
from twisted.internet.task import Clock

import andor
from andor_twisted import tap
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


def open_clock_camera(choice=None, simcam_first=False, **overrides):
    """(driver, simulated device, clock): the driver calling the SDK inline, time on a Clock, the host
    clock synchronised."""
    clock = Clock()
    sdk = clock_sdk(clock, simcam_first, **overrides)
    time = sdk.simulated.devices[0].time
    camera, _ = result_of(AndorCamera.open(sdk, choice or Choice(), defer.maybeDeferred, clock, now_ns=time.host_ns,
                                           host_clock=lambda: SYNCHRONISED))
    return camera, camera.sdk.simulated.devices[camera.device.index], clock


# the simulated Neo as the command line would ask for it, arming quickly so the tests run fast
SIM_ARGS = ("--sim-arm-latency", "0.005", "--spool-memory-limit", "1GiB")
SIM_OPTIONS = {"sim-model": "neo", "sim-onboard-memory": None, "sim-link-rate": None, "sim-arm-latency": 0.005,
               "sim-fault-after": None}


def sdk_with_camera_in_use():
    """A simulated SDK whose camera another process holds: opening it fails with AT_ERR_DEVICEINUSE."""
    sdk = tap.simulated_sdk(SIM_OPTIONS)
    sdk.make_core().open(0)
    return sdk


class RecordingEndpoint:
    """A server endpoint that remembers the port it listened on (tcp:0 picks a free one)."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.port = None

    def listen(self, factory):
        def listening(port):
            self.port = port
            return port

        return self.endpoint.listen(factory).addCallback(listening)


class LoopbackServer:
    """The server as ``twistd andor ARGS --listen tcp:0:interface=127.0.0.1`` builds it (tap.makeService),
    running in the test's reactor, and a client for it."""

    @defer.inlineCallbacks
    def start(self, *args, sdk=None):
        """``args``: command-line options beyond SIM_ARGS; ``sdk``: a pyAndorSDK3-shaped module to use
        instead of the simulated one the options describe."""
        options = tap.Options()
        options.parseOptions([*SIM_ARGS, *args, "--listen", "tcp:0:interface=127.0.0.1"])
        simulated = tap.simulated_sdk
        if sdk is not None:
            tap.simulated_sdk = lambda options: sdk
        try:
            self.top = tap.makeService(options, reactor)
        finally:
            tap.simulated_sdk = simulated
        self.service = self.top.getServiceNamed("camera")
        self.service.on_open_failure = None  # the test reports it, rather than the process exiting
        self.live = self.top.getServiceNamed("live")
        self.bursts = self.top.getServiceNamed("bursts")
        self.arbiter = self.bursts.arbiter
        listening = self.top.getServiceNamed("listen 0")
        listening.endpoint = endpoint = RecordingEndpoint(listening.endpoint)
        self.top.startService()
        yield self.service.opened
        self.address = f"127.0.0.1:{endpoint.port.getHost().port}"
        self.cam = andor.Camera(self.address)

    @defer.inlineCallbacks
    def stop(self):
        """Stop the service tree, and end the connections still open (as the process's exit would)."""
        self.cam.close()
        yield self.top.stopService()
        for child in self.top:
            if child.name.startswith("listen "):
                yield child.factory.limits.close_all()

    def raw(self, method, path, body=None, headers=None):
        """(status, content type, parsed JSON or bytes) of one plain HTTP request; a body that is not bytes
        is sent as JSON. Without ``headers``, a body is declared Content-Type: application/json."""
        conn = http.client.HTTPConnection(*self.address.split(":"), timeout=30)
        if headers is None:
            headers = {} if body is None else {"Content-Type": "application/json"}
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        kind = response.getheader("Content-Type")
        return response.status, kind, json.loads(data) if kind == "application/json" else data
