"""Client for the andor-twisted camera server: ``andor.Camera("host:port")``."""

from andor.camera import Camera, parse_seconds
from andor.errors import AndorError, BadRequest, CameraBusy, CameraFailure, ServerUnreachable

__all__ = ["Camera", "AndorError", "BadRequest", "CameraBusy", "CameraFailure", "ServerUnreachable",
           "parse_seconds"]
