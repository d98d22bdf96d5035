"""SDK3's features by type, and typed reads and writes through ATCore (in the SDK thread).

SDK3 has no call that tells a feature's type: the manual's feature reference does. So the types are
this table, and the camera is asked only which of these it implements (``AT_IsImplemented``); a feature
it claims but cannot read with its type's getter is dropped when the camera is opened. Booleans come
back from the SDK as the ints 0/1 and leave here as ``bool``.
"""

from __future__ import annotations

import math
from typing import Any

from andor_twisted.camera import atcore
from andor_twisted.camera.contract import ATCoreLike
from andor_twisted.camera.errors import InvalidValue

_TYPES = {
    "int": """AccumulateCount AOIHBin AOIHeight AOILeft AOIStride AOITop AOIVBin AOIWidth Baseline BaselineLevel
        ExposedPixelHeight FrameCount ImageSizeBytes IRIGClockFrequency LUTIndex LUTValue MultitrackCount
        MultitrackEnd MultitrackSelector MultitrackStart SensorHeight SensorWidth TimestampClock
        TimestampClockFrequency BufferOverflowEvent EventsMissedEvent ExposureEndEvent ExposureStartEvent
        RowNExposureEndEvent RowNExposureStartEvent""",
    "float": """BytesPerPixel CoolerPower ExposureTime ExternalTriggerDelay FrameRate LineScanSpeed
        MaxInterfaceTransferRate PixelHeight PixelWidth ReadoutTime RowReadTime SensorTemperature
        ShutterTransferTime TargetSensorTemperature""",
    "bool": """AlternatingReadoutDirection CameraAcquiring CameraPresent EventEnable FastAOIFrameRateEnable
        FullAOIControl IOInvert MetadataEnable MetadataFrame MetadataFrameInfo MetadataIRIG MetadataTimestamp
        MultitrackBinned Overlap RollingShutterGlobalClear ScanSpeedControlEnable SensorCooling
        SpuriousNoiseFilter StaticBlemishCorrection SynchronousTriggering VerticallyCentreAOI""",
    "enum": """AOIBinning AOILayout AuxiliaryOutSource AuxOutSourceTwo BitDepth CycleMode ElectronicShutteringMode
        EventSelector FanSpeed GainMode IOSelector PixelEncoding PixelReadoutRate PreAmpGainControl
        SensorReadoutMode ShutterMode ShutterOutputMode SimplePreAmpGainControl TemperatureControl
        TemperatureStatus TriggerMode""",
    "string": "CameraFamily CameraModel CameraName ControllerID FirmwareVersion InterfaceType SerialNumber",
    "command": "AcquisitionStart AcquisitionStop CameraDump SoftwareTrigger TimestampClockReset",
}
FEATURE_TYPES = {name: kind for kind, names in _TYPES.items() for name in names.split()}
EXPECTED = {"float": "a number", "int": "an integer", "bool": "true or false", "enum": "a string option",
            "string": "a string", "command": "nothing (it is a command)"}


def implemented(lib: ATCoreLike, handle: int) -> dict[str, str]:
    """{name: type} of the features this camera implements and can be read with their type."""
    features = {}
    for name, kind in FEATURE_TYPES.items():
        if not lib.is_implemented(handle, name):
            continue
        if kind != "command" and lib.is_readable(handle, name):
            try:
                read(lib, handle, name, kind)
            except Exception as e:  # the camera's type differs from the manual's: leave it out
                if atcore.error_code_of(e) == atcore.NOTIMPLEMENTED:
                    continue
        features[name] = kind
    return features


def read(lib: ATCoreLike, handle: int, name: str, kind: str) -> Any:
    if kind == "int":
        return lib.get_int(handle, name)
    if kind == "float":
        return lib.get_float(handle, name)
    if kind == "bool":
        return bool(lib.get_bool(handle, name))
    if kind == "enum":
        return lib.get_enumerated_string(handle, name)
    if kind == "string":
        return lib.get_string(handle, name)
    raise InvalidValue("not_readable", f"{name} is a command; it has no value", feature=name)


def write(lib: ATCoreLike, handle: int, name: str, kind: str, value: Any) -> None:
    if kind == "int":
        lib.set_int(handle, name, value)
    elif kind == "float":
        lib.set_float(handle, name, value)
    elif kind == "bool":
        lib.set_bool(handle, name, int(value))
    elif kind == "enum":
        lib.set_enumerated_string(handle, name, value)
    elif kind == "command":
        lib.command(handle, name)
    else:
        raise InvalidValue("not_writable", f"{name} cannot be set", feature=name)


def options(lib: ATCoreLike, handle: int, name: str) -> tuple[list[str], list[str]]:
    """An enum's options this camera implements, and those of them available in its current mode."""
    implemented, available = [], []
    for index in range(lib.get_enumerated_count(handle, name)):
        if lib.is_enumerated_index_implemented(handle, name, index):
            option = lib.get_enumerated_string_by_index(handle, name, index)
            implemented.append(option)
            if lib.is_enumerated_index_available(handle, name, index):
                available.append(option)
    return implemented, available


def coerce(name: str, kind: str, value: Any) -> Any:
    """Check a JSON value against a feature type, and its range against what SDK3 can carry (a 64-bit
    integer, a finite double), before any conversion; integral floats are fine for ints."""
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) > 2**53 or isinstance(value, float) and not math.isfinite(value):
            raise InvalidValue("out_of_range", f"{name} = {value!r} is not a number the camera can take",
                               feature=name)
        return float(value)
    if kind == "int" and not isinstance(value, bool) and isinstance(value, (int, float)):
        if isinstance(value, float) and not value.is_integer():
            raise InvalidValue("wrong_type", f"{name} takes {EXPECTED[kind]}, not {value!r}", expected=kind)
        if not -(2**63) <= value < 2**63:
            raise InvalidValue("out_of_range", f"{name} = {value!r} does not fit a 64-bit integer", feature=name)
        return int(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind in ("enum", "string") and isinstance(value, str):
        return value
    raise InvalidValue("wrong_type", f"{name} takes {EXPECTED[kind]}, not {value!r}", expected=kind)
