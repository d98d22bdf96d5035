"""Client for the andor-twisted camera server: ``andor.Camera("host:port")``."""

from andor.camera import Camera, SnapFrame, parse_seconds
from andor.burst import BurstFrames
from andor.errors import (AndorError, BadRequest, BurstDiscarded, CameraBusy, CameraFailure, RecordingError,
                          ServerUnreachable)
from andor.recording import LEDGER_DTYPE, open_recording

__all__ = ["Camera", "SnapFrame", "BurstFrames", "AndorError", "BadRequest", "BurstDiscarded", "CameraBusy",
           "CameraFailure",
           "RecordingError", "ServerUnreachable", "parse_seconds", "open_recording", "LEDGER_DTYPE"]
