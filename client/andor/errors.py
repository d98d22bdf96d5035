"""Errors the server reports, re-raised in the client with the server's own message."""

from __future__ import annotations

from typing import Any


class AndorError(Exception):
    """The server refused or failed a request. ``status`` is the HTTP status (None if the server
    could not be reached), ``code`` the server's short error name, ``details`` the rest of its answer."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}


class BadRequest(AndorError):
    """4xx: the request was wrong (unknown feature, value out of range, wrong type, ...)."""


class CameraBusy(BadRequest):
    """409: the camera is acquiring, so settings cannot change now."""


class CameraFailure(AndorError):
    """5xx: the camera or the server failed; ``details['sdk_error']`` names the SDK error if any."""


class BurstDiscarded(AndorError):
    """The burst is gone from the server: a newer burst replaced it, or nobody read it in time."""


class ServerUnreachable(AndorError):
    """No answer from the server at all."""


class RecordingError(AndorError):
    """Writing a recording to disk failed (disk full, no permission, read-only file system, ...).

    ``path`` is the recording, ``frames_written`` how many frames it holds (the file stays readable with
    them), ``errno`` the operating system's error number and ``__cause__`` the original ``OSError``."""

    def __init__(self, message: str, path: str | None = None, frames_written: int = 0,
                 errno: int | None = None) -> None:
        super().__init__(message, code="recording_failed",
                         details={"path": path, "frames_written": frames_written, "errno": errno})
        self.path = path
        self.frames_written = frames_written
        self.errno = errno


def error_for(status: int, body: object) -> AndorError:
    """The exception for an error response with JSON ``body``."""
    if not isinstance(body, dict):
        body = {"message": str(body)}
    message = str(body.get("message") or f"HTTP {status}")
    code = body.get("error")
    details = {k: v for k, v in body.items() if k not in ("message", "error")}
    cls = CameraBusy if status == 409 else BadRequest if status < 500 else CameraFailure
    return cls(message, status=status, code=code, details=details)
