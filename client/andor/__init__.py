"""Client for the andor-twisted camera server: ``andor.Camera("host:port")``."""

from andor.camera import Camera, parse_seconds
from andor.burst import BurstFrames
from andor.errors import AndorError, BadRequest, BurstDiscarded, CameraBusy, CameraFailure, ServerUnreachable

__all__ = ["Camera", "BurstFrames", "AndorError", "BadRequest", "BurstDiscarded", "CameraBusy", "CameraFailure",
           "ServerUnreachable", "parse_seconds"]
