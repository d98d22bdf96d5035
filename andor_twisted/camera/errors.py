"""What can go wrong with a camera request, as exceptions the HTTP layer turns into status codes."""

from __future__ import annotations

from typing import Any

from andor_twisted.camera import atcore


class CameraError(Exception):
    """Base of every error the driver reports; ``code`` is a stable short name, ``details`` a dict."""

    code = "camera_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UnknownFeature(CameraError):
    code = "unknown_feature"


class InvalidValue(CameraError):
    """The request is wrong whatever state the camera is in: wrong type, out of range, not an option."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code


class AcquisitionRunning(CameraError):
    code = "acquisition_running"


class CameraNotReady(CameraError):
    code = "camera_not_ready"


class SDKError(CameraError):
    """The SDK refused or failed; ``sdk_error`` is its AT_ERR_ name."""

    code = "sdk_error"

    def __init__(self, err_code: int | None, message: str) -> None:
        self.err_code = err_code
        self.sdk_error = atcore.error_name(err_code) if err_code is not None else "unknown"
        super().__init__(message, sdk_error=self.sdk_error)


class CameraTimeout(SDKError):
    code = "camera_timeout"


class TriggerTimeout(CameraTimeout):
    """No trigger came (TriggerMode External, Software, ...) within the time the user allowed."""

    code = "trigger_timeout"


class CameraOverflow(SDKError):
    """The camera's on-head memory or its frame grabber overflowed: the acquisition ended early."""

    code = "camera_overflow"


class NoSuchCamera(CameraError):
    """The camera asked for (by index, serial number or as a SIMCAM) is not there, or is ambiguous."""

    code = "camera_not_found"
