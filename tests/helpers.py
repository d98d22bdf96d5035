"""Shared test fixtures: a simulated SDK on a task.Clock, a synchronous SDK call, and a loopback server."""

import functools
import types

from twisted.internet import defer
from twisted.internet.task import Clock

from andor_twisted.camera import sim
from andor_twisted.camera.driver import AndorCamera
from andor_twisted.camera.sim.models import MODELS


def clock_sdk(clock, **overrides):
    """A pyAndorSDK3-shaped module whose simulated camera lives on ``clock``."""
    model = MODELS[overrides.pop("model", "neo")].with_overrides(**overrides)
    return types.SimpleNamespace(
        AndorSDK3=functools.partial(sim.AndorSDK3, model=model, time=sim.ClockTime(clock)),
        CameraException=sim.CameraException, model=model)


def result_of(d):
    """The result of an already-fired Deferred; its exception raised if it failed."""
    results = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def open_clock_camera(**overrides):
    """(driver, simulated SDK camera, clock): the driver calling the SDK inline, time on a Clock."""
    clock = Clock()
    sdk = clock_sdk(clock, **overrides)
    camera = result_of(AndorCamera.open(sdk, 0, defer.maybeDeferred, clock))
    return camera, camera._cam, clock


# the simulated Neo as the command line would ask for it, arming quickly so the tests run fast
SIM_OPTIONS = {"sim-model": "neo", "sim-onboard-memory": None, "sim-link-rate": None, "sim-arm-latency": 0.005}


def sdk_with_camera_in_use():
    """A simulated SDK whose camera another process holds: opening it fails with AT_ERR_DEVICEINUSE."""
    from andor_twisted import tap

    sdk = tap.simulated_sdk(SIM_OPTIONS)
    in_use = sim.AndorSDK3()
    in_use.GetCamera(0)
    sdk.AndorSDK3 = lambda: in_use
    return sdk
