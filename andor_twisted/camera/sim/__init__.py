"""A simulated Andor SDK3 camera shaped like Andor's pyAndorSDK3, so the real driver runs on it.

``sdk.AndorSDK3`` stands in for ``pyAndorSDK3.AndorSDK3``; ``timeline`` holds the physics of one
acquisition (frame rate, on-head memory, link bandwidth, arming), ``scene`` what the sensor sees.
"""

from andor_twisted.camera.sim.models import MODELS, CameraModel
from andor_twisted.camera.sim.sdk import AndorSDK3, CameraException, SimCamera
from andor_twisted.camera.sim.timesource import ClockTime, SystemTime

__all__ = ["MODELS", "CameraModel", "AndorSDK3", "CameraException", "SimCamera", "ClockTime", "SystemTime"]
