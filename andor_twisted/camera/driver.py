"""The camera driver: the one piece of code that talks to the SDK, through pyAndorSDK3's ``ATCore``.

It runs unchanged on Andor's SDK and on the simulator (``contract.ATCoreLike``). Every SDK call goes
through ``_call``, which runs it in the one thread that owns the SDK handle and returns a Deferred;
the reactor thread only checks requests and moves references. Waiting for a frame happens in short
slices so that other requests (a temperature reading, say) get their turn in the SDK thread during a
long exposure, and it always ends: a frame, or an error naming why none came.

Frames come back from ``AT_WaitBuffer`` as a pointer: each is matched to the buffer queued at that
address, never by position. ``AT_ERR_NODATA`` and ``AT_ERR_TIMEDOUT`` both mean "no frame yet".
Overflows are reported as ``CameraOverflow``: from ``BufferOverflowEvent`` where the camera has it, or
from ``AT_ERR_HARDWARE_OVERFLOW``; a camera that stops without saying so ends in a timeout.
"""

from __future__ import annotations

import datetime
import difflib
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, overload

import numpy as np
from numpy.typing import NDArray
from twisted.internet import defer
from twisted.python.failure import Failure

from andor_twisted.camera import atcore, buffers, features
from andor_twisted.camera.contract import SDK, ATCoreLike
from andor_twisted.camera.devices import Choice, Device, open_chosen
from andor_twisted.camera.errors import (AcquisitionRunning, CameraNotReady, CameraOverflow, CameraTimeout,
                                         InvalidValue, SDKError, TriggerTimeout, UnknownFeature)
from andor_twisted.hostclock import host_clock_status, read_brackets
from andor_twisted.protocol import plan as planning
from andor_twisted.protocol.timebase import Anchor, HostClock, TimeBase, anchor_from

WAIT_SLICE_MS = 5  # longest a single WaitBuffer holds the SDK thread (a temperature reading waits for it)
TRIP_S = 0.002  # after the first frame, a trip takes frames already waiting for at most this long (a control
# request waits for one trip at most)
FIRST_FRAME_GRACE_S = 2.0  # arming and first-frame latency allowed on top of exposure and frame period
KEEP_IDLE_BYTES = 256 * 1024 * 1024  # buffers kept between acquisitions (of one frame size), at most: new
# memory costs a page fault per page as the camera first fills it, many milliseconds per full frame
NODATA_RETRY_S = 0.005  # AT_ERR_NODATA comes back at once: wait this long before asking again
ANCHOR_READS = 10  # TimestampClock reads, each between two host clock reads, at each end of an acquisition
IRIG_HALF_WIDTH_NS = 1000  # an IRIG-B stamp's own uncertainty, taken as 1 us (the Balor's: 10 ns)
TRIGGERED = ("Software", "External", "External Exposure")  # every frame waits for a trigger
# SDK errors that mean the request was wrong, not that the camera failed
_REFUSALS = {atcore.OUTOFRANGE: "out_of_range", atcore.NOTWRITABLE: "not_writable", atcore.READONLY: "not_writable",
             atcore.STRINGNOTAVAILABLE: "option_not_available", atcore.STRINGNOTIMPLEMENTED: "invalid_option"}
_NO_FRAME_YET = (atcore.TIMEDOUT, atcore.NODATA)

Call = Callable[..., defer.Deferred[Any]]  # runs a function in the SDK thread
_T = TypeVar("_T")
_E = TypeVar("_E", bound=SDKError)


class DelayedCall(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the driver needs of the reactor (or a test's ``task.Clock``). (zope's ``IReactorTime`` does
    not type-check without a plugin.)"""

    def seconds(self) -> float: ...
    def callLater(self, delay: float, callable: Callable[..., object], *args: object, **kw: object) -> DelayedCall: ...


class Packed(Protocol):
    """What ``next_frames``' ``pack`` returns: a ``Frame``, or a layer above's own frame, that may
    still hold the SDK buffer its pixels are in (the driver reads ``buffer``, and clears it)."""

    buffer: NDArray[np.uint8] | None


P = TypeVar("P", bound=Packed)


@dataclass
class Frame:
    """One decoded frame and exactly when it was exposed: camera clock ticks, and where the camera
    stamps IRIG-B time, UTC nanoseconds."""

    image: buffers.Pixels
    frame_number: int
    ticks: int | None
    tick_frequency: int | None
    message: object = None  # the frame as a stream sends it, when one packed it
    buffer: NDArray[np.uint8] | None = None  # the SDK buffer holding the pixels, while it is lent (see next_frames)
    utc_ns: int | None = None  # from the camera's IRIG-B stamp
    timebase: TimeBase | None = None  # for a snap: how its ticks map to UTC
    settings: dict[str, Any] = field(default_factory=dict)  # for a snap: the camera's settings (Layout.settings)

    @property
    def timestamp(self) -> float | None:
        """Seconds on the camera's clock, or None if the camera gave no timestamp."""
        if self.ticks is None or not self.tick_frequency:
            return None
        return self.ticks / self.tick_frequency


@dataclass(frozen=True)
class Layout:
    """A running acquisition as the camera set it up: its frames' layout and pace."""

    size: int  # ImageSizeBytes: pixels, row padding and metadata
    encoding: str
    width: int
    height: int
    stride: int
    frame_rate: float  # FrameRate, frames/s (in triggered modes: the fastest the camera could go)
    exposure: float
    readout: float | None
    tick_frequency: int | None
    timestamps: bool
    irig: bool
    trigger_mode: str
    timeout_s: float  # for one frame, in Internal mode
    trigger_timeout_s: float | None  # for one trigger, in the triggered modes
    link_frame_rate: float | None  # MaxInterfaceTransferRate, frames/s
    timebase: TimeBase | None = None  # ticks to UTC from the start anchor alone (``stop`` gives both)
    settings: dict[str, Any] = field(default_factory=dict)  # what the camera was set to, for metadata

    def waits_for_trigger(self, frame_number: int) -> bool:
        return self.trigger_mode in TRIGGERED or (self.trigger_mode == "External Start" and frame_number == 0)


class AndorCamera:
    """An open camera. Public methods return Deferreds; errors are ``errors.CameraError``."""

    def __init__(self, sdk: SDK, lib: ATCoreLike, handle: int, device: Device, devices: list[Device],
                 features: dict[str, str], call: Call, clock: Clock,
                 now_ns: Callable[[], int] = time.time_ns, host_clock: Callable[[], HostClock] = host_clock_status):
        self.sdk = sdk
        self._lib = lib
        self._handle = handle
        self.device = device  # which of ``devices`` this is
        self.devices = devices
        self.features = features  # {name: type} of what this camera implements
        self._error = sdk.error
        self._submit = call
        self._clock = clock
        self._now_ns = now_ns
        self._host_clock = host_clock
        self.acquiring: str | None = None  # what holds the camera: "snap", a burst, ... or None
        self._queued: dict[int, NDArray[np.uint8]] = {}  # our buffers the SDK holds, by address
        # the running acquisition's buffers and their pixels, by address (dropped with the buffer)
        self._views: dict[int, tuple[NDArray[np.uint8], buffers.Pixels]] = {}
        self._spare: deque[NDArray[np.uint8]] = deque()  # buffers free to queue: given back, or left from before
        self._buffer_bytes: int | None = None  # their size: the running (or last) acquisition's
        self._spare_max = 0  # how many it keeps
        self._replace = 0  # in a trip: how many more frames lent get a buffer queued in their place
        self._start: tuple[Anchor, HostClock] | None = None  # the running acquisition's start anchor
        self._callback: Any = None  # the cffi callback registered for BufferOverflowEvent
        self.overflow_events = 0  # BufferOverflowEvents since the acquisition started
        self.reports_overflow = False  # whether this camera has BufferOverflowEvent
        self.metadata_errors = 0  # frames whose metadata could not be read (delivered without a time)
        self.arm_s = 0.0  # AcquisitionStart to the first exposure, as the last acquisition measured it
        # what /metrics and /api/health read: counted here, where every SDK call and every frame passes
        self.sdk_errors: dict[str, int] = {}  # SDK failures (not refusals of a bad request) by AT_ERR_ name
        self.last_sdk_error: SDKError | None = None
        self.last_sdk_error_at: float | None = None  # clock seconds
        self.last_frame_at: float | None = None  # clock seconds when frames last came (a burst, live view, snap)
        self.snaps = 0
        self._closed = False

    @classmethod
    def open(cls, sdk: SDK, choice: Choice, call: Call, clock: Clock,
             **kwargs: Any) -> defer.Deferred[tuple[AndorCamera, list[str]]]:
        """Open the camera ``choice`` asks for: lists the devices, opens the chosen one, reads what it
        implements, stops an acquisition a previous owner left running, turns on time stamps and
        overflow events. Fires with (the camera, notes for the log)."""

        def _open() -> tuple[ATCoreLike, int, Device, list[Device], dict[str, str]]:
            lib = sdk.make_core()
            handle, device, devices = open_chosen(lib, sdk.error, choice)
            try:
                return lib, handle, device, devices, features.implemented(lib, handle)
            except Exception:
                lib.close(handle)
                raise

        def _opened(opened: tuple[ATCoreLike, int, Device, list[Device], dict[str, str]],
                    ) -> defer.Deferred[tuple[AndorCamera, list[str]]]:
            camera = cls(sdk, *opened, call=call, clock=clock, **kwargs)
            return camera._call(camera._prepare).addCallback(lambda notes: (camera, notes))

        d = call(_open)
        d.addErrback(_translate, sdk.error)
        d.addCallback(_opened)
        return d

    def _prepare(self) -> list[str]:
        """In the SDK thread, once: a clean state, time stamps on, overflow events registered."""
        lib, h, f, notes = self._lib, self._handle, self.features, []
        if "CameraAcquiring" in f and lib.get_bool(h, "CameraAcquiring"):
            lib.command(h, "AcquisitionStop")  # left running by a previous owner
            lib.flush(h)
            notes.append("stopped an acquisition a previous owner left running")
        for name in ("MetadataEnable", "MetadataTimestamp"):
            if name in f and lib.is_writable(h, name):
                lib.set_bool(h, name, 1)
        if all(name in f for name in ("EventSelector", "EventEnable", "BufferOverflowEvent")):
            try:
                lib.set_enumerated_string(h, "EventSelector", "BufferOverflowEvent")
                lib.set_bool(h, "EventEnable", 1)
                self._callback = lib.build_callback(self._on_event)
                lib.register_feature_callback(h, "BufferOverflowEvent", self._callback)
                self.reports_overflow = True
            except self._error as e:
                notes.append(f"overflow events are not available ({e}): an overflow shows as an error or a timeout")
        else:
            notes.append("the camera has no BufferOverflowEvent: an overflow shows as an error or a timeout")
        if "TimestampClock" not in f:
            notes.append("the camera has no timestamp clock: frames carry no time")
        return notes

    def _on_event(self, handle: int, feature: Any, context: Any) -> int:
        """The SDK's callback for BufferOverflowEvent (any thread; the SDK calls it once as it is
        registered, which ``start`` forgets by counting from zero)."""
        self.overflow_events += 1
        return 0

    def _call(self, fn: Callable[..., _T], *args: Any) -> defer.Deferred[_T]:
        if self._closed:
            return defer.fail(CameraNotReady("the camera has been closed (the server is stopping)"))
        d: defer.Deferred[_T] = self._submit(fn, *args)
        d.addErrback(_translate, self._error)
        d.addErrback(self._note_failure)
        return d

    def _note_failure(self, failure: Failure) -> Failure:
        if isinstance(failure.value, SDKError):
            self._noted(failure.value)
        return failure

    def _noted(self, error: _E) -> _E:
        """Count an SDK failure by its AT_ERR_ name, and remember it as the last one."""
        self.sdk_errors[error.sdk_error] = self.sdk_errors.get(error.sdk_error, 0) + 1
        self.last_sdk_error, self.last_sdk_error_at = error, self._clock.seconds()
        return error

    # ---- features ----

    def _check_name(self, name: str) -> str:
        if name not in self.features:
            close = difflib.get_close_matches(name, self.features, n=1)
            hint = f"; did you mean {close[0]!r}? (names are case-sensitive)" if close else ""
            raise UnknownFeature(f"the camera has no feature {name!r}{hint}", feature=name)
        return self.features[name]

    def _check_idle(self, name: str) -> None:
        if self.acquiring is not None:
            raise AcquisitionRunning(f"cannot change {name} while the camera is busy with a {self.acquiring}",
                                     busy_with=self.acquiring)

    def get(self, name: str) -> defer.Deferred[Any]:
        """The value of feature ``name`` (booleans as bool)."""
        return defer.maybeDeferred(self._get, name)

    def _get(self, name: str) -> defer.Deferred[Any]:
        kind = self._check_name(name)
        if kind == "command":
            raise InvalidValue("not_readable", f"{name} is a command; it has no value", feature=name)
        return self._call(features.read, self._lib, self._handle, name, kind)

    def info(self, name: str) -> defer.Deferred[dict[str, Any]]:
        """Type, value, whether it can be set now, and limits: min/max for numbers, options for enums."""
        return defer.maybeDeferred(lambda: self._call(self._info, name, self._check_name(name)))

    def _info(self, name: str, kind: str) -> dict[str, Any]:
        lib, h = self._lib, self._handle
        info: dict[str, Any] = {"name": name, "type": kind, "writable": bool(lib.is_writable(h, name)),
                                "readonly": bool(lib.is_readonly(h, name))}
        if kind != "command" and lib.is_readable(h, name):
            info["value"] = features.read(lib, h, name, kind)
        if kind == "int":
            info["min"], info["max"] = lib.get_int_min(h, name), lib.get_int_max(h, name)
        elif kind == "float":
            info["min"], info["max"] = lib.get_float_min(h, name), lib.get_float_max(h, name)
        elif kind == "enum":
            info["options"], info["available_options"] = features.options(lib, h, name)
        return info

    def set(self, name: str, value: Any) -> defer.Deferred[Any]:
        """Set feature ``name`` and return the value the camera now reports (it may round)."""
        return defer.maybeDeferred(self._set, name, value)

    def _set(self, name: str, value: Any) -> defer.Deferred[Any]:
        kind = self._check_name(name)
        self._check_idle(name)
        if kind != "command":
            value = features.coerce(name, kind, value)
        return self._call(self._set_checked, name, kind, value)

    def _set_checked(self, name: str, kind: str, value: Any) -> Any:
        """In the SDK thread: set, and if the camera refuses, say what it would have taken."""
        lib, h = self._lib, self._handle
        try:
            features.write(lib, h, name, kind, value)
        except self._error as e:
            raise self._refusal(e, name, kind, value) from e
        return None if kind == "command" else features.read(lib, h, name, kind)

    def _refusal(self, error: Exception, name: str, kind: str, value: Any) -> Exception:
        """The clearest account of why the camera refused ``name = value`` (in the SDK thread)."""
        lib, h, code = self._lib, self._handle, atcore.error_code_of(error)
        model = self.device.model
        low: float
        high: float
        if code == atcore.READONLY:
            return InvalidValue("not_writable", f"{name} is read-only on this camera ({model})", feature=name)
        if code == atcore.NOTWRITABLE:
            return InvalidValue("not_writable", f"{name} cannot be changed in the camera's current state (an "
                                                f"acquisition, or a mode such as the trigger mode)", feature=name)
        if code == atcore.OUTOFRANGE and kind == "int":
            low, high = lib.get_int_min(h, name), lib.get_int_max(h, name)
        elif code == atcore.OUTOFRANGE and kind == "float":
            low, high = lib.get_float_min(h, name), lib.get_float_max(h, name)
        elif kind == "enum" and code in (atcore.OUTOFRANGE, atcore.STRINGNOTIMPLEMENTED, atcore.STRINGNOTAVAILABLE):
            implemented, available = features.options(lib, h, name)
            if value in implemented and code != atcore.OUTOFRANGE:
                return InvalidValue("option_not_available",
                                    f"{name} = {value!r} is not available in the camera's current mode; "
                                    f"available now: {available}", feature=name, available_options=available)
            return InvalidValue("invalid_option", f"{value!r} is not an option of {name} on this camera; "
                                                  f"options: {implemented}", feature=name, options=implemented)
        else:
            return error
        if low <= value <= high:
            return InvalidValue("out_of_range", f"the camera refused {name} = {value} although it is within "
                                                f"[{low}, {high}] (it may need a multiple of some step)",
                                feature=name, min=low, max=high)
        return InvalidValue("out_of_range", f"{name} = {value} is out of range [{low}, {high}]", feature=name,
                            min=low, max=high)

    # ---- area of interest and binning, in sensor pixels ----

    def get_aoi(self) -> defer.Deferred[dict[str, int]]:
        """The AOI as 1-based sensor-pixel ``left``/``top`` and sensor-pixel ``width``/``height``."""
        return self._call(self._read_aoi)

    def _read_aoi(self) -> dict[str, int]:
        lib, h = self._lib, self._handle
        hbin, vbin = self._binning_factors()
        return {"left": lib.get_int(h, "AOILeft"), "top": lib.get_int(h, "AOITop"),
                "width": lib.get_int(h, "AOIWidth") * hbin, "height": lib.get_int(h, "AOIHeight") * vbin}

    def _binning_factors(self) -> tuple[int, int]:
        """The binning: from AOIHBin/AOIVBin (Zyla and later), or the AOIBinning enum (the Neo's only one)."""
        lib, h = self._lib, self._handle
        if "AOIHBin" in self.features:
            return lib.get_int(h, "AOIHBin"), lib.get_int(h, "AOIVBin")
        if "AOIBinning" in self.features:
            hbin, vbin = lib.get_enumerated_string(h, "AOIBinning").split("x")
            return int(hbin), int(vbin)
        return 1, 1

    def set_aoi(self, changes: dict[str, Any]) -> defer.Deferred[dict[str, int]]:
        """Change any of left/top/width/height (sensor pixels); the others keep their values.

        Sizes round down to whole super-pixels of the current binning. Returns the AOI now set.
        """
        return defer.maybeDeferred(self._set_aoi, changes)

    def _set_aoi(self, changes: Any) -> defer.Deferred[dict[str, int]]:
        if not isinstance(changes, dict) or not changes:
            raise InvalidValue("wrong_type", "the AOI is an object with any of left, top, width, height")
        unknown = sorted(set(changes) - {"left", "top", "width", "height"})
        if unknown:
            raise InvalidValue("unknown_field",
                               f"the AOI has no field {unknown[0]!r}; fields: left, top, width, height")
        self._check_idle("the AOI")
        changes = {key: features.coerce(f"AOI {key}", "int", value) for key, value in changes.items()}
        return self._call(self._apply_aoi, changes, None)

    def get_binning(self) -> defer.Deferred[str]:
        return self._call(lambda: "{}x{}".format(*self._binning_factors()))

    def set_binning(self, binning: Any) -> defer.Deferred[str]:
        """Set the binning (2, "2x2" or "2x1"), keeping the AOI's region of the sensor."""
        return defer.maybeDeferred(self._set_binning, binning)

    def _set_binning(self, binning: Any) -> defer.Deferred[str]:
        self._check_idle("the binning")
        if isinstance(binning, int) and not isinstance(binning, bool):
            binning = f"{binning}x{binning}"
        if not isinstance(binning, str):
            raise InvalidValue("wrong_type",
                               f"binning is a factor such as 2 or a string such as '2x2', not {binning!r}")
        return self._call(self._apply_aoi, {}, binning).addCallback(lambda aoi: self.get_binning())

    def _apply_aoi(self, changes: dict[str, int], binning: str | None) -> dict[str, int]:
        """In the SDK thread: validate the whole AOI first, then set it in an order that never passes
        through an invalid state (binning, origin to 1,1, size, then origin); if the camera refuses a
        step, put back the AOI it had."""
        lib, h = self._lib, self._handle
        before = self._read_aoi()
        old_binning = self._binning_factors()
        aoi = dict(before, **changes)
        hbin, vbin = old_binning
        if binning is not None:
            hbin, vbin = self._check_binning(binning)
        sensor = {"width": lib.get_int(h, "SensorWidth"), "height": lib.get_int(h, "SensorHeight")}
        for origin, size in (("left", "width"), ("top", "height")):
            if aoi[origin] < 1 or aoi[size] < 1 or aoi[origin] + aoi[size] - 1 > sensor[size]:
                raise InvalidValue(
                    "out_of_range",
                    f"AOI {origin}={aoi[origin]} {size}={aoi[size]} does not fit the sensor: {origin} >= 1 and "
                    f"{origin} + {size} - 1 <= {sensor[size]}", aoi=aoi, sensor=sensor)
        width, height = aoi["width"] // hbin, aoi["height"] // vbin
        for name, value in (("AOIWidth", width), ("AOIHeight", height)):
            low = max(lib.get_int_min(h, name), 1)
            if value < low:
                raise InvalidValue("out_of_range", f"the AOI is {value} super-pixels of {hbin}x{vbin} in {name}; "
                                                   f"the camera's smallest is {low}", feature=name, min=low, aoi=aoi)
        if not lib.is_writable(h, "AOIWidth"):
            raise InvalidValue("not_writable", f"the AOI of this camera ({self.device.model}) cannot be changed")
        try:
            self._write_aoi(binning is not None, hbin, vbin, aoi["left"], aoi["top"], width, height)
        except self._error as e:
            old_h, old_v = old_binning
            try:
                self._write_aoi(binning is not None, old_h, old_v, before["left"], before["top"],
                                before["width"] // old_h, before["height"] // old_v)
            except self._error:
                pass  # the camera's refusal of the new AOI says more than this one
            if atcore.error_code_of(e) == atcore.OUTOFRANGE:
                raise InvalidValue("out_of_range", f"the camera refused the AOI {aoi} at binning {hbin}x{vbin} "
                                                   f"(some models need an even height, or a width in steps)",
                                   aoi=aoi) from e
            raise
        return self._read_aoi()

    def _check_binning(self, binning: str) -> tuple[int, int]:
        lib, h = self._lib, self._handle
        options = features.options(lib, h, "AOIBinning")[1] if "AOIBinning" in self.features else []
        try:
            hbin, vbin = (int(n) for n in binning.split("x"))
        except ValueError:
            hbin = vbin = 0
        if binning in options or ("AOIHBin" in self.features and hbin >= 1 and vbin >= 1
                                  and hbin <= lib.get_int_max(h, "AOIHBin") and vbin <= lib.get_int_max(h, "AOIVBin")):
            return hbin, vbin
        hint = options or "HxV up to {}x{}".format(lib.get_int_max(h, "AOIHBin"), lib.get_int_max(h, "AOIVBin"))
        raise InvalidValue("invalid_option", f"binning {binning!r} is not available; options: {hint}",
                           feature="AOIBinning", options=options)

    def _write_aoi(self, rebin: bool, hbin: int, vbin: int, left: int, top: int, width: int, height: int) -> None:
        lib, h = self._lib, self._handle
        if rebin:
            if "AOIHBin" in self.features:
                lib.set_int(h, "AOIHBin", hbin)
                lib.set_int(h, "AOIVBin", vbin)
            else:
                lib.set_enumerated_string(h, "AOIBinning", f"{hbin}x{vbin}")
        top_writable = bool(lib.is_writable(h, "AOITop"))  # not with VerticallyCentreAOI
        lib.set_int(h, "AOILeft", 1)
        if top_writable:
            lib.set_int(h, "AOITop", 1)
        lib.set_int(h, "AOIWidth", width)
        lib.set_int(h, "AOIHeight", height)
        lib.set_int(h, "AOILeft", left)
        if top_writable:
            lib.set_int(h, "AOITop", top)

    # ---- acquisition ----

    def start(self, purpose: str, n_buffers: int, frame_rate: float | None = None, trigger_mode: str | None = None,
              trigger_timeout: float | None = None) -> defer.Deferred[Layout]:
        """Take the camera for ``purpose`` and start a continuous acquisition with ``n_buffers`` queued,
        at ``frame_rate`` (Internal mode) or on triggers (``trigger_mode``; each waited for at most
        ``trigger_timeout`` seconds). Fires with the ``Layout``; settings cannot change until ``stop``.

        The 'Fixed' cycle mode proved unreliable on real cameras; continuous with an explicit stop is not.
        """
        return defer.maybeDeferred(self._begin, purpose, n_buffers, frame_rate, trigger_mode, trigger_timeout)

    def _begin(self, purpose: str, n_buffers: int, frame_rate: float | None, trigger_mode: str | None,
               trigger_timeout: float | None) -> defer.Deferred[Layout]:
        if frame_rate is not None:
            frame_rate = features.coerce("FrameRate", "float", frame_rate)
        mode = trigger_mode or "Internal"
        if mode != "Internal" and "TriggerMode" not in self.features:
            raise InvalidValue("invalid_option", "this camera has no TriggerMode: only its internal clock")
        if frame_rate is not None and mode not in ("Internal", "External Start"):
            raise InvalidValue("wrong_type", f"with TriggerMode {mode!r} the triggers set the pace: leave the "
                                             f"frame rate out", feature="FrameRate")
        if self.acquiring is not None:
            raise AcquisitionRunning(f"the camera is busy with a {self.acquiring}", busy_with=self.acquiring)
        self.acquiring = purpose
        d = self._call(self._arm, n_buffers, frame_rate, mode, trigger_timeout)
        d.addErrback(self._release)
        return d

    def _release(self, result: _T) -> _T:
        self.acquiring = None
        return result

    def _arm(self, n_buffers: int, frame_rate: float | None, mode: str, trigger_timeout: float | None) -> Layout:
        """In the SDK thread: configure, anchor the clock, queue buffers, start. Returns the layout."""
        lib, h, f = self._lib, self._handle, self.features
        if "TriggerMode" in f and lib.get_enumerated_string(h, "TriggerMode") != mode:
            self._set_checked("TriggerMode", "enum", mode)
        if "CycleMode" in f and lib.is_writable(h, "CycleMode"):
            lib.set_enumerated_string(h, "CycleMode", "Continuous")
        if frame_rate is not None:
            self._set_checked("FrameRate", "float", frame_rate)
        encoding = lib.get_enumerated_string(h, "PixelEncoding")
        width, height = lib.get_int(h, "AOIWidth"), lib.get_int(h, "AOIHeight")
        rate, exposure = lib.get_float(h, "FrameRate"), lib.get_float(h, "ExposureTime")
        metadata = "MetadataEnable" in f and bool(lib.get_bool(h, "MetadataEnable"))
        timestamps = metadata and "MetadataTimestamp" in f and bool(lib.get_bool(h, "MetadataTimestamp"))
        layout = Layout(
            size=lib.get_int(h, "ImageSizeBytes"), encoding=encoding, width=width, height=height,
            stride=lib.get_int(h, "AOIStride") if "AOIStride" in f else buffers.row_bytes(encoding, width),
            frame_rate=rate, exposure=exposure,
            readout=lib.get_float(h, "ReadoutTime") if "ReadoutTime" in f else None,
            tick_frequency=lib.get_int(h, "TimestampClockFrequency") if timestamps else None,
            timestamps=timestamps,
            irig=metadata and "MetadataIRIG" in f and bool(lib.get_bool(h, "MetadataIRIG")),
            trigger_mode=mode, timeout_s=exposure + 1.0 / rate + FIRST_FRAME_GRACE_S,
            trigger_timeout_s=None if mode == "Internal" else (trigger_timeout or 60.0) + exposure,
            link_frame_rate=lib.get_float(h, "MaxInterfaceTransferRate") if "MaxInterfaceTransferRate" in f else None,
        )
        self._start = self._anchor() if timestamps and "TimestampClock" in f else None
        if self._start is not None and layout.tick_frequency:
            layout = replace(layout, timebase=TimeBase(self._start[0], None, layout.tick_frequency, self._start[1]))
        layout = replace(layout, settings=self._settings(layout))
        self.overflow_events = 0
        if self._buffer_bytes != layout.size:
            self._spare.clear()
        self._buffer_bytes = layout.size
        self._spare_max = max(2 * n_buffers, KEEP_IDLE_BYTES // layout.size)
        for _ in range(n_buffers):
            self._queue(self._free_buffer(layout.size))
        try:
            lib.command(h, "AcquisitionStart")
        except self._error:
            self._flush()
            raise
        return layout

    def _settings(self, layout: Layout) -> dict[str, Any]:
        """In the SDK thread: the camera and its settings as an acquisition starts, as recordings keep
        them. What the camera does not have is left out, never guessed."""
        lib, h, f = self._lib, self._handle, self.features
        hbin, vbin = self._binning_factors()
        settings: dict[str, Any] = {
            "camera_model": self.device.model, "serial_number": self.device.serial,
            "exposure_time_s": layout.exposure, "frame_rate_hz": layout.frame_rate, "pixel_encoding": layout.encoding,
            "aoi_left": lib.get_int(h, "AOILeft"), "aoi_top": lib.get_int(h, "AOITop"),
            "aoi_width": layout.width * hbin, "aoi_height": layout.height * vbin, "binning": f"{hbin}x{vbin}",
            "trigger_mode": layout.trigger_mode, "tick_frequency_hz": layout.tick_frequency,
        }
        for key, name in (("firmware", "FirmwareVersion"), ("interface", "InterfaceType"), ("bit_depth", "BitDepth"),
                          ("sensor_temperature_c", "SensorTemperature"), ("cooling_status", "TemperatureStatus"),
                          ("readout_rate", "PixelReadoutRate"), ("shuttering", "ElectronicShutteringMode"),
                          ("gain", "SimplePreAmpGainControl"), ("gain", "GainMode")):
            if name in f and lib.is_readable(h, name):
                settings[key] = features.read(lib, h, name, f[name])
        return {key: value for key, value in settings.items() if value is not None}

    def plan_camera(self, layout: Layout) -> planning.Camera:
        """What the burst plan needs of this camera, as an acquisition has set it up."""
        facts = self.sdk.facts(self.device.model or "")
        return planning.Camera(frame_bytes=layout.size, frame_rate=layout.frame_rate,
                               link_frame_rate=layout.link_frame_rate, onhead_bytes=facts.onhead_bytes,
                               when_full=facts.when_full,
                               arm_s=self.arm_s, exposure_s=layout.exposure, readout_s=layout.readout or 0.0)

    def plan_inputs(self, frame_rate: float | None,
                    trigger_mode: str) -> defer.Deferred[tuple[planning.Camera, str, int, int]]:
        """The plan's view of the camera as it is now, at ``frame_rate`` (checked against its limits):
        fires with (plan.Camera, pixel dtype code, height, width)."""
        return defer.maybeDeferred(lambda: self._call(self._plan_inputs, frame_rate, trigger_mode))

    def _plan_inputs(self, frame_rate: float | None, trigger_mode: str) -> tuple[planning.Camera, str, int, int]:
        lib, h, f = self._lib, self._handle, self.features
        if frame_rate is None:
            frame_rate = lib.get_float(h, "FrameRate")
        else:
            low, high = lib.get_float_min(h, "FrameRate"), lib.get_float_max(h, "FrameRate")
            if not low <= frame_rate <= high:
                raise InvalidValue("out_of_range", f"FrameRate = {frame_rate} is out of range [{low}, {high}]",
                                   feature="FrameRate", min=low, max=high)
        encoding = lib.get_enumerated_string(h, "PixelEncoding")
        layout = Layout(
            size=lib.get_int(h, "ImageSizeBytes"), encoding=encoding, width=lib.get_int(h, "AOIWidth"),
            height=lib.get_int(h, "AOIHeight"), stride=0, frame_rate=frame_rate,
            exposure=lib.get_float(h, "ExposureTime"),
            readout=lib.get_float(h, "ReadoutTime") if "ReadoutTime" in f else None, tick_frequency=None,
            timestamps=False, irig=False, trigger_mode=trigger_mode, timeout_s=0.0, trigger_timeout_s=None,
            link_frame_rate=lib.get_float(h, "MaxInterfaceTransferRate") if "MaxInterfaceTransferRate" in f else None)
        return self.plan_camera(layout), "u4" if encoding == "Mono32" else "u2", layout.height, layout.width

    def _anchor(self) -> tuple[Anchor, HostClock]:
        """In the SDK thread: the camera clock against the host's UTC clock, and how good that is."""
        brackets = read_brackets(lambda: self._lib.get_int(self._handle, "TimestampClock"), ANCHOR_READS,
                                 self._now_ns)
        return anchor_from(brackets), self._host_clock()

    def stop(self) -> defer.Deferred[TimeBase | None]:
        """Stop the acquisition and free the camera (even if stopping fails). Fires with the
        acquisition's ``TimeBase`` (None if its frames carry no time stamps)."""
        d = self._call(self._stop)
        d.addBoth(self._release)
        return d

    def _stop(self) -> TimeBase | None:
        """In the SDK thread: stop if the camera still acquires (stopping an idle camera is an error;
        one that overflowed may have stopped itself), then flush (flushing a running camera froze some)."""
        lib, h = self._lib, self._handle
        try:
            if "CameraAcquiring" not in self.features or lib.get_bool(h, "CameraAcquiring"):
                lib.command(h, "AcquisitionStop")
        finally:
            self._flush()
        start, self._start = self._start, None
        if start is None:
            return None
        end = self._anchor()
        try:
            return TimeBase(start[0], end[0], lib.get_int(h, "TimestampClockFrequency"), start[1].worse(end[1]))
        except ValueError:  # the clock was reset, or the host clock stepped back, during the acquisition
            return TimeBase(start[0], None, lib.get_int(h, "TimestampClockFrequency"), start[1])

    def _flush(self) -> None:
        """Take every buffer back from the SDK; keep up to KEEP_IDLE_BYTES of them for the next acquisition."""
        self._lib.flush(self._handle)
        self._spare.extend(self._queued.values())
        self._queued.clear()
        self._views.clear()
        self._spare_max = KEEP_IDLE_BYTES // self._buffer_bytes if self._buffer_bytes else 0
        while len(self._spare) > self._spare_max:
            self._spare.popleft()

    def _queue(self, buf: NDArray[np.uint8]) -> None:
        address = buf.ctypes.data
        self._lib.queue_buffer(self._handle, address, buf.size)
        self._queued[address] = buf

    def _free_buffer(self, size: int) -> NDArray[np.uint8]:
        """A buffer to queue: the one given back last (its pages are the likeliest in cache), else a new one."""
        return self._spare.pop() if self._spare else aligned_buffer(size)

    def keep_buffers(self, count: int) -> None:
        """Keep up to ``count`` buffers given back, to queue again, for the running acquisition (at least
        twice the buffers it queued, and KEEP_IDLE_BYTES). A burst keeps as many as its spool holds: a new
        buffer costs a page fault per page as the camera first fills it, and the spool held that memory
        anyway. Once the acquisition ends, the keep falls back to KEEP_IDLE_BYTES."""
        self._spare_max = max(self._spare_max, count)

    def give_back(self, buffer: NDArray[np.uint8]) -> None:
        """A buffer lent with a frame (``next_frames(lend=True)``) is free again. Any thread.

        Some are kept to queue again (``keep_buffers``, KEEP_IDLE_BYTES); the rest are simply dropped."""
        if buffer.size == self._buffer_bytes and len(self._spare) < self._spare_max:
            self._spare.append(buffer)
        else:
            self._views.pop(buffer.ctypes.data, None)

    def software_trigger(self) -> defer.Deferred[None]:
        """Send a software trigger (TriggerMode Software): the camera exposes one frame."""
        if "SoftwareTrigger" not in self.features:
            return defer.fail(InvalidValue("invalid_option", "this camera has no SoftwareTrigger"))
        return self._call(self._lib.command, self._handle, "SoftwareTrigger").addErrback(
            self._not_triggerable)

    def _not_triggerable(self, failure: Failure) -> Failure:
        failure.trap(InvalidValue)  # type: ignore[no-untyped-call]  # (Twisted's Failure.trap is untyped)
        raise InvalidValue("not_writable", "a software trigger needs an acquisition running with TriggerMode "
                                           "Software (a burst started with trigger \"Software\")")

    @overload
    def next_frames(self, layout: Layout, first_number: int, max_count: int = 1, pack: None = None,
                    lend: bool = False, queued: int | None = None,
                    replace: int | None = None) -> defer.Deferred[list[Frame]]: ...

    @overload
    def next_frames(self, layout: Layout, first_number: int, max_count: int, pack: Callable[[Frame], P],
                    lend: bool = False, queued: int | None = None,
                    replace: int | None = None) -> defer.Deferred[list[P]]: ...

    @overload
    def next_frames(self, layout: Layout, first_number: int, max_count: int = 1, *, pack: Callable[[Frame], P],
                    lend: bool = False, queued: int | None = None,
                    replace: int | None = None) -> defer.Deferred[list[P]]: ...

    @defer.inlineCallbacks
    def next_frames(self, layout: Layout, first_number: int, max_count: int = 1,
                    pack: Callable[[Frame], P] | None = None, lend: bool = False, queued: int | None = None,
                    replace: int | None = None) -> Generator[defer.Deferred[Any], Any, list[Any]]:
        """The next frames of the running acquisition: waits for one (at most ``layout.timeout_s``, or
        ``layout.trigger_timeout_s`` for a trigger), then takes up to ``max_count`` in all of those
        already waiting, in one trip to the SDK thread of at most a wait slice and TRIP_S.

        ``pack(frame)`` runs in the SDK thread on a frame whose image is a view into ``frame.buffer``,
        an SDK buffer, and returns the frame to deliver. Without ``lend`` the buffer is queued again at
        once, so what pack returns must own its pixels (the default copies the image). With ``lend``,
        a returned frame that still has its ``buffer`` keeps it until ``give_back(buffer)``, and the
        camera gets another buffer meanwhile: the pixels then never need copying on the server. A
        caller that holds frames back from its reader may take them without giving the camera another
        buffer: only the first ``replace`` frames lent get one (None: all), and the trip first queues
        buffers until the camera has ``queued`` (None: as many as it has).
        """
        trigger = layout.waits_for_trigger(first_number)
        limit = layout.trigger_timeout_s if trigger and layout.trigger_timeout_s else layout.timeout_s
        deadline = self._clock.seconds() + limit
        frames: list[Any]  # what pack returns
        while True:
            frames, answer = yield self._call(self._take, layout, first_number, max_count, pack or _copy_image, lend,
                                              queued, replace)
            if frames:
                self.last_frame_at = self._clock.seconds()
                return frames
            if self.overflow_events:
                raise self._noted(CameraOverflow(
                    atcore.HARDWARE_OVERFLOW,
                    "the camera reported that its on-head memory overflowed (BufferOverflowEvent): "
                    "it stopped acquiring"))
            if self._clock.seconds() >= deadline:
                if trigger:
                    raise self._noted(TriggerTimeout(atcore.TIMEDOUT, f"no trigger within {limit:.1f} s "
                                                                      f"(TriggerMode {layout.trigger_mode})"))
                raise self._noted(CameraTimeout(atcore.TIMEDOUT, f"no frame from the camera within {limit:.1f} s"))
            if answer == atcore.NODATA:
                yield _later(self._clock, NODATA_RETRY_S)

    def _take(self, layout: Layout, first_number: int, max_count: int, pack: Callable[[Frame], P],
              lend: bool, queued: int | None = None, replace: int | None = None) -> tuple[list[P], int | None]:
        """In the SDK thread: wait one slice for a frame, then take those already there. Returns the
        frames and, if there were none, the SDK's answer (TIMEDOUT or NODATA). A failure after the
        first frame ends the batch; the next call meets it again."""
        while queued is not None and len(self._queued) < queued:
            self._queue(self._free_buffer(layout.size))
        self._replace = max_count if replace is None else replace
        try:
            frames = [self._take_one(layout, first_number, WAIT_SLICE_MS, pack, lend)]
        except self._error as e:
            code = atcore.error_code_of(e)
            if code in _NO_FRAME_YET:
                return [], code
            if code == atcore.HARDWARE_OVERFLOW:
                raise CameraOverflow(code, "the frame grabber's buffer overflowed (AT_ERR_HARDWARE_OVERFLOW): the "
                                           "host did not take frames fast enough") from e
            raise
        until = time.monotonic() + TRIP_S
        while len(frames) < max_count and time.monotonic() < until:
            try:
                frames.append(self._take_one(layout, first_number + len(frames), 0, pack, lend))
            except self._error:
                break
        return frames, None

    def _take_one(self, layout: Layout, frame_number: int, timeout_ms: int, pack: Callable[[Frame], P],
                  lend: bool) -> P:
        lib = self._lib
        pointer, _ = lib.wait_buffer(self._handle, timeout_ms)
        address = int(lib.ffi.cast("uintptr_t", pointer[0]))
        raw = self._queued.pop(address, None)
        if raw is None:
            raise SDKError(None, f"the SDK returned a buffer at {address:#x} that this driver did not queue")
        view = self._views.get(address)
        if view is not None and view[0] is raw:  # a buffer's pixels are the same view of it each time it comes
            image = view[1]
        else:
            image = buffers.decode(raw, layout.encoding, layout.width, layout.height, layout.stride, copy=False)
            if layout.encoding != "Mono12Packed":  # (unpacked into a new array each time)
                self._views[address] = (raw, image)
        ticks = utc_ns = None
        try:
            if layout.timestamps:
                ticks = buffers.read_ticks(raw, layout.size)
            if layout.irig:
                utc_ns = self._irig(raw, layout)
        except (ValueError, self._error, ArithmeticError):
            self.metadata_errors += 1  # delivered all the same, without a time
        if frame_number == 0 and ticks is not None and layout.timebase is not None and layout.tick_frequency:
            self.arm_s = (ticks - layout.timebase.start.ticks) / layout.tick_frequency
        frame = pack(Frame(image, frame_number, ticks, layout.tick_frequency, buffer=raw, utc_ns=utc_ns))
        if lend and frame.buffer is not None:
            if self._replace > 0:
                self._queue(self._free_buffer(layout.size))
            self._replace -= 1
        else:
            frame.buffer = None
            self._queue(raw)
        return frame

    def _irig(self, raw: NDArray[np.uint8], layout: Layout) -> int:
        """UTC nanoseconds of the frame's IRIG-B stamp, read with Andor's utility library."""
        if self.sdk.utility is None:
            raise ValueError("this SDK has no utility library to read IRIG stamps with")
        frequency = self._lib.get_int(self._handle, "IRIGClockFrequency") if "IRIGClockFrequency" in self.features \
            else 0
        ns, seconds, minutes, hours, day, year = self.sdk.utility().getExtendedIRIGDataFromMetadata(
            raw.ctypes.data, layout.size, frequency)
        start = datetime.datetime(2000 + year if year < 100 else year, 1, 1, tzinfo=datetime.timezone.utc)
        when = start + datetime.timedelta(days=day - 1, hours=hours, minutes=minutes, seconds=seconds)
        return int(when.timestamp()) * 10**9 + round(ns)

    def snap(self, exposure_time: float | None = None) -> defer.Deferred[Frame]:
        """Expose and read one frame (a ``Frame`` with its ``timebase``), optionally setting the
        exposure time first."""
        return defer.maybeDeferred(self._snap, exposure_time)

    @defer.inlineCallbacks
    def _snap(self, exposure_time: float | None) -> Generator[defer.Deferred[Any], Any, Frame]:
        if exposure_time is not None:
            exposure_time = features.coerce("ExposureTime", "float", exposure_time)
            self._check_idle("the exposure time")
            yield self._call(self._set_checked, "ExposureTime", "float", exposure_time)
        layout = yield self.start("snap", 1)
        try:
            frames: list[Frame] = yield self.next_frames(layout, 0)
        finally:
            timebase = yield self.stop()
        frame = frames[0]
        self.snaps += 1
        if frame.utc_ns is not None and frame.ticks is not None and frame.tick_frequency:
            timebase = irig_timebase(frame.ticks, frame.utc_ns, frame.ticks, frame.utc_ns, frame.tick_frequency)
        return replace(frame, timebase=timebase, settings=layout.settings)

    def close(self) -> defer.Deferred[None]:
        """Stop any acquisition, unregister the event callback, close the camera and the library."""

        def _close() -> None:
            lib, h = self._lib, self._handle
            if "CameraAcquiring" in self.features and lib.get_bool(h, "CameraAcquiring"):
                lib.command(h, "AcquisitionStop")
                self._flush()
            if self._callback is not None:
                lib.unregister_feature_callback(h, "BufferOverflowEvent", self._callback)
            lib.close(h)
            self._spare.clear()
            del self._lib  # the last reference: pyAndorSDK3 finalises the library, here in the SDK thread

        d = self._call(_close)
        self._closed = True
        return d


def irig_timebase(first_ticks: int, first_utc_ns: int, last_ticks: int, last_utc_ns: int,
                  tick_frequency: int) -> TimeBase:
    """The time base of frames stamped with IRIG-B time: the camera's ticks mapped through the stamps of
    the first and last frames (the time source, not the host clock, is the reference)."""
    clock = HostClock(True, estimated_error_s=0.0, source="MetadataIRIG")
    start = Anchor(first_ticks, first_utc_ns, IRIG_HALF_WIDTH_NS)
    end = Anchor(last_ticks, last_utc_ns, IRIG_HALF_WIDTH_NS) if last_ticks > first_ticks else None
    return TimeBase(start, end, tick_frequency, clock)


def aligned_buffer(size: int) -> NDArray[np.uint8]:
    """A buffer of ``size`` bytes at an 8-byte aligned address, as AT_QueueBuffer requires."""
    raw = np.empty(size + 8, np.uint8)
    offset = -raw.ctypes.data % 8
    return raw[offset : offset + size]


def _later(clock: Clock, seconds: float) -> defer.Deferred[None]:
    """Fires with None after ``seconds`` on ``clock``: ``task.deferLater``, for a clock typed as a Protocol."""
    d: defer.Deferred[None] = defer.Deferred(lambda _: delayed.cancel())
    delayed = clock.callLater(seconds, d.callback, None)
    return d


def _copy_image(frame: Frame) -> Frame:
    return replace(frame, image=frame.image.copy())


def _translate(failure: Failure, sdk_error: type[Exception]) -> Failure:
    """Errback: an SDK exception becomes an SDKError naming its AT_ERR_ code; the rest pass on."""
    exc = failure.value
    if not isinstance(exc, sdk_error):
        return failure
    code = atcore.error_code_of(exc)
    if code in _REFUSALS:
        raise InvalidValue(_REFUSALS[code], f"the camera refused: {exc}", sdk_error=atcore.error_name(code)) from exc
    cls = CameraTimeout if code in _NO_FRAME_YET else CameraOverflow if code == atcore.HARDWARE_OVERFLOW else SDKError
    raise cls(code, f"camera error {atcore.error_name(code)}: {exc}") from exc
