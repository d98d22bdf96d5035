"""A simulated Andor SDK3 installation shaped like pyAndorSDK3's low-level ``ATCore``.

``sdk(model)`` is a provider (``camera.contract.SDK``) whose library lists one camera of ``model`` and
the SDK's two SIMCAMs; ``models`` holds what each real model implements and does, ``device`` its
features and physics, ``timeline`` when frames exist, ``scene`` what they show.
"""

from __future__ import annotations

import functools

from andor_twisted.camera.contract import SDK, CameraFacts, known_facts
from andor_twisted.camera.sim.atcore import ATCore, ATUtility, SimSystem, devices
from andor_twisted.camera.sim.exceptions import ATCoreException
from andor_twisted.camera.sim.models import MODELS, SIMCAM, CameraModel
from andor_twisted.camera.sim.timesource import ClockTime, SystemTime, TimeSource

__all__ = ["MODELS", "SIMCAM", "CameraModel", "ClockTime", "SystemTime", "SimSystem", "sdk"]


def sdk(model: CameraModel, time: TimeSource | None = None, simcam_first: bool = False, seed: int = 0) -> SDK:
    """A simulated SDK3 install with one ``model`` camera (after a SIMCAM if ``simcam_first``)."""
    system = SimSystem(devices(model, simcam_first), time or SystemTime(), seed)
    facts = CameraFacts(model.onboard_memory_bytes, "throttle" if model.when_full == "throttle" else "overflow")
    return SDK(f"simulated SDK3 ({model.name})", functools.partial(ATCore, system), ATCoreException, ATUtility,
               simulated=system, facts=lambda name: facts if name == model.name else known_facts(name))
