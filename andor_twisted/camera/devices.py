"""Which camera to open: SDK3's device list, and the user's choice of one of them.

``DeviceCount`` counts the SDK's own simulated cameras ("SIMCAM CMOS", two of them on a default
install, after the real ones): an index alone can silently open a SIMCAM. So a camera is chosen by
serial number, by index (refused if it is a SIMCAM), as the only real camera there is, or, for trying
the SDK without hardware, as a SIMCAM by name. Runs in the SDK thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from andor_twisted.camera import atcore
from andor_twisted.camera.contract import ATCoreLike
from andor_twisted.camera.errors import NoSuchCamera

SYSTEM_HANDLE = 1  # AT_HANDLE_SYSTEM
SIMCAM_MODEL = "SIMCAM CMOS"


@dataclass(frozen=True)
class Choice:
    """What ``--camera`` asked for: a serial number, an index, a SIMCAM, or (none of them) the one real camera."""

    serial: str | None = None
    index: int | None = None
    simcam: bool = False

    @classmethod
    def parse(cls, text: str) -> Choice:
        """From the part of ``--camera`` after ``sdk3`` or ``sim``: '', ':N', ':serial=S' or ':simcam'."""
        if text in ("", ":"):
            return cls()
        if text == ":simcam":
            return cls(simcam=True)
        match = re.fullmatch(r":(?:(\d+)|serial=(\S+))", text)
        if not match:
            raise ValueError("choose a camera with :INDEX, :serial=SERIAL or :simcam")
        return cls(index=int(match.group(1))) if match.group(1) else cls(serial=match.group(2))

    def __str__(self) -> str:
        if self.serial is not None:
            return f"the camera with serial number {self.serial}"
        if self.index is not None:
            return f"device {self.index}"
        return "a SIMCAM" if self.simcam else "the camera"


@dataclass(frozen=True)
class Device:
    index: int
    model: str | None = None
    serial: str | None = None
    interface: str | None = None
    error: str | None = None  # why it could not be opened (AT_ERR_DEVICEINUSE: another program has it)

    @property
    def simcam(self) -> bool:
        return self.model == SIMCAM_MODEL

    def __str__(self) -> str:
        if self.error:
            return f"{self.index}: cannot be opened ({self.error})"
        details = ", ".join(x for x in (self.serial, self.interface) if x)
        return f"{self.index}: {self.model}" + (f" ({details})" if details else "")


def open_chosen(lib: ATCoreLike, error: type[Exception], choice: Choice) -> tuple[int, Device, list[Device]]:
    """Open every device to list it, keep the chosen one open: (its handle, it, the whole list)."""
    count = lib.get_int(SYSTEM_HANDLE, "DeviceCount")
    listed: list[Device] = []
    handles: dict[int, int] = {}
    try:
        for index in range(count):
            try:
                handle = lib.open(index)
            except error as e:
                listed.append(Device(index, error=atcore.error_name(atcore.error_code_of(e))))
                continue
            handles[index] = handle
            listed.append(Device(index, *(_string(lib, handle, name)
                                          for name in ("CameraModel", "SerialNumber", "InterfaceType"))))
        chosen = _choose(listed, choice)
        return handles.pop(chosen.index), chosen, listed
    finally:
        for handle in handles.values():  # all but the chosen one
            lib.close(handle)


def _choose(devices: list[Device], choice: Choice) -> Device:
    listing = "; ".join(map(str, devices)) or "none"
    if choice.serial is not None:
        found = [d for d in devices if d.serial == choice.serial]
        if not found:
            raise NoSuchCamera(f"no camera has serial number {choice.serial!r}; devices: {listing}",
                               devices=[str(d) for d in devices])
        return found[0]
    if choice.index is not None:
        if not 0 <= choice.index < len(devices):
            raise NoSuchCamera(f"there is no device {choice.index}; devices: {listing}",
                               devices=[str(d) for d in devices])
        device = devices[choice.index]
        if device.simcam:
            raise NoSuchCamera(f"device {device.index} is the SDK's simulated camera ({SIMCAM_MODEL}), not a real "
                               f"one; ask for it by name (sdk3:simcam) if that is what you want; devices: {listing}")
        if device.error:
            raise NoSuchCamera(f"device {device.index} cannot be opened ({device.error}); devices: {listing}")
        return device
    if choice.simcam:
        found = [d for d in devices if d.simcam]
        if not found:
            raise NoSuchCamera(f"the SDK lists no {SIMCAM_MODEL}; devices: {listing}")
        return found[0]
    real = [d for d in devices if not d.simcam]
    usable = [d for d in real if not d.error]
    if len(real) == 1 and usable:
        return usable[0]
    if not real:
        raise NoSuchCamera(f"no camera found, only the SDK's simulated ones (is the camera on, its cable in, its "
                           f"driver loaded?); devices: {listing}")
    if not usable:
        raise NoSuchCamera(f"the camera cannot be opened; devices: {listing}")
    raise NoSuchCamera(f"{len(real)} cameras found: choose one with sdk3:serial=SERIAL; devices: {listing}")


def _string(lib: ATCoreLike, handle: int, name: str) -> str | None:
    return lib.get_string(handle, name) if lib.is_implemented(handle, name) else None
