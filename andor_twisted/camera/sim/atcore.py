"""The simulated SDK's C layer, shaped like pyAndorSDK3's ``ATCore`` (``andor_sdk3_internals``, 1.22.6).

One method per AT_ function of atcore.h, with the wrapper's names and return types: handles and
integers as ``int``, booleans and ``is_*`` answers as the ints 0/1, ``wait_buffer`` returning
``(AT_U8** cdata, size)`` whose element 0 points at the queued buffer, callbacks as cffi callbacks,
and every nonzero return code raised as ``ATCoreException(code)``. Argument types are checked as cffi
checks them (a float for an int is a TypeError, a negative timeout an OverflowError).

Which code comes back where follows the SDK3 manual as other drivers record it: a feature a camera
lacks, or asked for with the getter of another type, is AT_ERR_NOTIMPLEMENTED (pyAndorSDK3's type
probing relies on it); a permanently read-only one AT_ERR_READONLY, one not writable in the camera's
current state AT_ERR_NOTWRITABLE; an enum string the camera does not list AT_ERR_OUTOFRANGE, one it
lists but does not implement AT_ERR_STRINGNOTIMPLEMENTED, one not available now AT_ERR_STRINGNOTAVAILABLE;
a command that cannot run now (AcquisitionStop while idle) AT_ERR_NOTWRITABLE; AT_WaitBuffer with
nothing queued AT_ERR_NODATA. Where the manual is unclear these are inferences (docs/cameras.md).

The system handle (1) answers DeviceCount and SoftwareVersion. Its devices are the simulated model
and, after it, the SDK's two SIMCAMs, as a real install lists one camera and two SIMCAMs.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from andor_twisted.camera import atcore, buffers
from andor_twisted.camera.sim.device import FFI, IRIG_BLOCK, IRIG_CID, Feature, SimDevice, memory_at
from andor_twisted.camera.sim.exceptions import ATCoreException, ATUtilityException, fail
from andor_twisted.camera.sim.models import SIMCAM, CameraModel
from andor_twisted.camera.sim.timesource import TimeSource

AT_HANDLE_SYSTEM = 1
SOFTWARE_VERSION = "3.15.30092.2 (simulated)"


class SimSystem:
    """What the simulated library knows: its devices, and which are open under which handle."""

    def __init__(self, models: Sequence[CameraModel], time: TimeSource, seed: int = 0):
        self.devices = [SimDevice(model, time, index, seed) for index, model in enumerate(models)]
        self.handles: dict[int, SimDevice] = {}
        self._next_handle = 100
        self.lock = threading.Lock()


def devices(model: CameraModel, simcam_first: bool = False) -> list[CameraModel]:
    """The device list of an install with one camera of ``model`` (and the SDK's two SIMCAMs)."""
    return [SIMCAM, model, SIMCAM] if simcam_first else [model, SIMCAM, SIMCAM]


class ATCore:
    """Stands in for ``pyAndorSDK3.andor_sdk3_internals.ATCore``, over a ``SimSystem``."""

    LIBRARY_NAME = "atcore"

    def __init__(self, system: SimSystem):
        self.ffi = FFI
        self._system = system

    # ---- library and handles ----

    def get_version(self) -> str:
        return "0.1"

    def initialise(self) -> None:
        pass

    def finalise(self) -> None:
        pass

    def open(self, index: int) -> int:
        _int(index)
        system = self._system
        with system.lock:
            if not 0 <= index < len(system.devices):
                raise fail(atcore.OUTOFRANGE)
            device = system.devices[index]
            if device.is_open:
                raise fail(atcore.DEVICEINUSE)
            device.is_open = True
            handle, system._next_handle = system._next_handle, system._next_handle + 1
            system.handles[handle] = device
            return handle

    def close(self, handle: int) -> None:
        device = self._device(handle)
        if device._timeline is not None:
            device._acquisition_stop()
        device._queue.clear()
        device.is_open = False
        del self._system.handles[handle]

    def _device(self, handle: int) -> SimDevice:
        _int(handle)
        device = self._system.handles.get(handle)
        if device is None:
            raise fail(atcore.INVALIDHANDLE)
        return device

    def _feature(self, handle: int, name: str, kind: str | None = None) -> Feature:
        if not isinstance(name, str):
            raise TypeError(f"initializer for ctype 'wchar_t *' must be a str, not {type(name).__name__}")
        if handle == AT_HANDLE_SYSTEM:
            feature = _system_feature(self._system, name)
        else:
            feature = self._device(handle).features.get(name)
        if feature is None or (kind is not None and feature.kind != kind):
            raise fail(atcore.NOTIMPLEMENTED)
        return feature

    def _read(self, handle: int, name: str, kind: str) -> Any:
        feature = self._feature(handle, name, kind)
        if not feature.readable():
            raise fail(atcore.NOTREADABLE)
        return feature.get()

    def _write(self, handle: int, name: str, kind: str, value: Any) -> None:
        feature = self._feature(handle, name, kind)
        if feature.readonly:
            raise fail(atcore.READONLY)
        if not feature.writable():
            raise fail(atcore.NOTWRITABLE)
        if kind in ("int", "float") and not feature.min() <= value <= feature.max():
            raise fail(atcore.OUTOFRANGE)
        assert feature.set is not None  # not read-only
        feature.set(value)

    # ---- feature queries ----

    def is_implemented(self, handle: int, name: str) -> int:
        try:
            self._feature(handle, name)
        except ATCoreException:
            return 0
        return 1

    def is_readable(self, handle: int, name: str) -> int:
        return int(self._feature(handle, name).readable())

    def is_writable(self, handle: int, name: str) -> int:
        feature = self._feature(handle, name)
        return int(not feature.readonly and feature.writable())

    def is_readonly(self, handle: int, name: str) -> int:
        return int(self._feature(handle, name).readonly)

    # ---- numbers, booleans, strings, commands ----

    def get_int(self, handle: int, name: str) -> int:
        return int(self._read(handle, name, "int"))

    def set_int(self, handle: int, name: str, value: int) -> None:
        self._write(handle, name, "int", _int(value))

    def get_int_min(self, handle: int, name: str) -> int:
        return int(self._feature(handle, name, "int").min())

    def get_int_max(self, handle: int, name: str) -> int:
        return int(self._feature(handle, name, "int").max())

    def get_float(self, handle: int, name: str) -> float:
        return float(self._read(handle, name, "float"))

    def set_float(self, handle: int, name: str, value: float) -> None:
        if not isinstance(value, numbers.Real):
            raise TypeError(f"must be real number, not {type(value).__name__}")
        self._write(handle, name, "float", float(value))

    def get_float_min(self, handle: int, name: str) -> float:
        return float(self._feature(handle, name, "float").min())

    def get_float_max(self, handle: int, name: str) -> float:
        return float(self._feature(handle, name, "float").max())

    def get_bool(self, handle: int, name: str) -> int:
        return int(bool(self._read(handle, name, "bool")))

    def set_bool(self, handle: int, name: str, value: int) -> None:
        value = _int(value)
        if value not in (0, 1):
            raise fail(atcore.OUTOFRANGE)
        self._write(handle, name, "bool", value)

    def command(self, handle: int, name: str) -> None:
        feature = self._feature(handle, name, "command")
        if not feature.writable():
            raise fail(atcore.NOTWRITABLE)
        assert feature.set is not None  # what a command does
        feature.set(None)

    def get_string(self, handle: int, name: str, result_length: int = 0) -> str:
        return str(self._read(handle, name, "string"))

    def get_string_max_length(self, handle: int, name: str) -> int:
        return len(self._read(handle, name, "string")) + 1

    def set_string(self, handle: int, name: str, strvalue: str) -> None:
        self._write(handle, name, "string", strvalue)

    # ---- enumerations ----

    def _enum(self, handle: int, name: str) -> Feature:
        return self._feature(handle, name, "enum")

    def get_enumerated(self, handle: int, name: str) -> int:
        feature = self._enum(handle, name)
        return feature.options.index(self._read(handle, name, "enum"))

    def get_enumerated_count(self, handle: int, name: str) -> int:
        return len(self._enum(handle, name).options)

    def get_enumerated_string_by_index(self, handle: int, name: str, index: int, result_length: int = 128) -> str:
        options = self._enum(handle, name).options
        if not 0 <= _int(index) < len(options):
            raise fail(atcore.OUTOFRANGE)
        return str(options[index])

    def get_enumerated_string(self, handle: int, name: str, result_length: int = 128) -> str:
        return self.get_enumerated_string_by_index(handle, name, self.get_enumerated(handle, name))

    def get_enumerated_string_options(self, handle: int, name: str) -> list[str]:
        return list(self._enum(handle, name).options)

    def get_enumerated_index_by_string(self, handle: int, name: str, item: str) -> int:
        options = self._enum(handle, name).options
        return options.index(item) if item in options else -1

    def is_enumerated_index_implemented(self, handle: int, name: str, index: int) -> int:
        feature = self._enum(handle, name)
        return int(feature.implemented(self.get_enumerated_string_by_index(handle, name, index)))

    def is_enumerated_index_available(self, handle: int, name: str, index: int) -> int:
        feature = self._enum(handle, name)
        option = self.get_enumerated_string_by_index(handle, name, index)
        return int(feature.implemented(option) and feature.available(option))

    def is_enumerated_string_available(self, handle: int, name: str, item: str) -> int:
        return self.is_enumerated_index_available(handle, name, self.get_enumerated_index_by_string(handle, name,
                                                                                                    item))

    def set_enumerated_string(self, handle: int, name: str, item: str) -> None:
        if not isinstance(item, str):
            raise TypeError(f"initializer for ctype 'wchar_t *' must be a str, not {type(item).__name__}")
        feature = self._enum(handle, name)
        if item not in feature.options:
            raise fail(atcore.OUTOFRANGE)
        if not feature.implemented(item):
            raise fail(atcore.STRINGNOTIMPLEMENTED)
        if not feature.available(item):
            raise fail(atcore.STRINGNOTAVAILABLE)
        self._write(handle, name, "enum", item)

    def set_enumerated(self, handle: int, name: str, value: int) -> None:
        # pyAndorSDK3 1.22.6 calls a function its cdef does not declare
        raise AttributeError("cffi library 'atcore' has no function, constant or global variable named "
                             "'AT_SetEnumerated'")

    # ---- buffers ----

    def queue_buffer(self, handle: int, buf_ptr: Any, buffer_size: int) -> None:
        address = int(FFI.cast("uintptr_t", buf_ptr)) if isinstance(buf_ptr, FFI.CData) else _int(buf_ptr)
        self._device(handle).queue(address, _int(buffer_size))

    def wait_buffer(self, handle: int, timeout: int = 20000) -> tuple[Any, int]:
        timeout = int(timeout)
        if timeout < 0:
            raise OverflowError("can't convert negative number to unsigned")
        address, size = self._device(handle).wait(timeout)
        pointer = FFI.new("unsigned char * *")
        pointer[0] = FFI.cast("unsigned char *", address)
        return pointer, size

    def flush(self, handle: int) -> None:
        self._device(handle).flush()

    # ---- callbacks ----

    def build_callback(self, func: Callable[[int, Any, Any], int]) -> Any:
        return FFI.callback("int(*)(AT_H, AT_WC *, void *)", func)

    def register_feature_callback(self, handle: int, feature: str, func: Any) -> None:
        self._callback_check(func)
        self._feature(handle, feature)
        self._device(handle).register(feature, self._caller(handle, func))

    def unregister_feature_callback(self, handle: int, feature: str, func: Any) -> None:
        self._callback_check(func)
        self._device(handle).unregister(feature, self._caller(handle, func))

    def _callback_check(self, func: Any) -> None:
        if not isinstance(func, FFI.CData):
            raise TypeError("initializer for ctype 'int(*)(int, wchar_t *, void *)' must be a cdata pointer, "
                            f"not {type(func).__name__}")

    def _caller(self, handle: int, func: Any) -> Callable[[str], None]:
        return _Caller(handle, func)


class _Caller:
    """A registered C callback, called as the SDK calls it (equal to another for the same callback)."""

    def __init__(self, handle: int, func: Any):
        self.handle, self.func = handle, func

    def __call__(self, feature: str) -> None:
        self.func(self.handle, FFI.new("wchar_t[]", feature), FFI.NULL)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Caller) and (self.handle, self.func) == (other.handle, other.func)

    def __hash__(self) -> int:
        return hash((self.handle, id(self.func)))


class ATUtility:
    """Stands in for pyAndorSDK3's ``andor_utility.ATUtility``: only the IRIG reader the driver uses.
    It reads the simulator's own IRIG block; the real library reads the camera's."""

    def getExtendedIRIGDataFromMetadata(self, input_buf: int, imagesizebytes: int,
                                        clockfrequency: int) -> tuple[float, int, int, int, int, int]:
        block = buffers.read_metadata(memory_at(input_buf, imagesizebytes), imagesizebytes).get(IRIG_CID)
        if block is None:
            raise ATUtilityException(1006)  # AT_ERR_METADATANOTFOUND
        r = np.frombuffer(block, IRIG_BLOCK)[0]
        return float(r["ns"]), int(r["s"]), int(r["min"]), int(r["h"]), int(r["day"]), int(r["year"])


def _system_feature(system: SimSystem, name: str) -> Feature | None:
    if name == "DeviceCount":
        return Feature("int", lambda: len(system.devices))
    if name == "SoftwareVersion":
        return Feature("string", lambda: SOFTWARE_VERSION)
    return None


def _int(value: Any) -> int:
    if not isinstance(value, (int, np.integer)):  # as cffi converts: bools are ints, floats are not
        raise TypeError("an integer is required")
    return int(value)
