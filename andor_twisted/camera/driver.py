"""The camera driver: the one piece of code that talks to a pyAndorSDK3-shaped camera.

It runs unchanged on Andor's pyAndorSDK3 and on the simulated SDK. Every SDK call goes through
``call``, which runs it in the one thread that owns the SDK handle and returns a Deferred; the reactor
thread only checks requests and moves references. Waiting for a frame happens in short slices so that
other requests (a temperature reading, say) get their turn in the SDK thread during a long exposure.
"""

import collections
import difflib
from dataclasses import dataclass, replace

import numpy as np
from twisted.internet import defer

from andor_twisted.camera import atcore, buffers
from andor_twisted.camera.errors import (AcquisitionRunning, CameraNotReady, CameraTimeout, InvalidValue,
                                         SDKError, UnknownFeature)

# SDK3 feature names (Andor SDK3 manual). The camera is asked which of them it implements.
SDK3_FEATURES = (
    "AccumulateCount", "AcquisitionStart", "AcquisitionStop", "AlternatingReadoutDirection", "AOIBinning",
    "AOIHBin", "AOIHeight", "AOILayout", "AOILeft", "AOIStride", "AOITop", "AOIVBin", "AOIWidth",
    "AuxiliaryOutSource", "AuxOutSourceTwo", "BaselineLevel", "BitDepth", "BytesPerPixel", "CameraAcquiring",
    "CameraFamily", "CameraModel", "CameraName", "CameraPresent", "ControllerID", "CycleMode",
    "ElectronicShutteringMode", "ExposedPixelHeight", "ExposureTime", "ExternalTriggerDelay", "FanSpeed",
    "FastAOIFrameRateEnable", "FirmwareVersion", "FrameCount", "FrameRate", "FullAOIControl",
    "ImageSizeBytes", "InterfaceType", "IOInvert", "IOSelector", "LineScanSpeed", "MaxInterfaceTransferRate",
    "MetadataEnable", "MetadataFrame", "MetadataFrameInfo", "MetadataTimestamp", "Overlap", "PixelEncoding",
    "PixelHeight", "PixelReadoutRate", "PixelWidth", "PreAmpGainControl", "ReadoutTime",
    "RollingShutterGlobalClear", "RowReadTime", "ScanSpeedControlEnable", "SensorCooling", "SensorHeight",
    "SensorReadoutMode", "SensorTemperature", "SensorWidth", "SerialNumber", "ShutterMode",
    "SimplePreAmpGainControl", "SoftwareTrigger", "SoftwareVersion", "SpuriousNoiseFilter",
    "StaticBlemishCorrection", "TemperatureControl", "TemperatureStatus", "TimestampClock",
    "TimestampClockFrequency", "TimestampClockReset", "TriggerMode", "VerticallyCentreAOI",
)
TYPE_NAMES = {"int": "int", "float": "float", "bool": "bool", "enumerated_string": "enum", "string": "string",
              "command": "command"}
# SDK errors that mean the request was wrong, not that the camera failed
_REFUSALS = {atcore.OUTOFRANGE: "out_of_range", atcore.NOTWRITABLE: "not_writable", atcore.READONLY: "not_writable",
             atcore.STRINGNOTAVAILABLE: "option_not_available", atcore.STRINGNOTIMPLEMENTED: "invalid_option"}
WAIT_SLICE_MS = 200  # longest a single WaitBuffer holds the SDK thread
FIRST_FRAME_GRACE_S = 2.0  # arming and first-frame latency allowed on top of exposure and frame period


@dataclass
class Frame:
    """One decoded frame and exactly when it was exposed, in camera clock ticks."""

    image: np.ndarray
    frame_number: int
    ticks: int | None
    tick_frequency: int | None
    message: object = None  # the frame as a stream sends it, when one packed it
    buffer: np.ndarray | None = None  # the SDK buffer holding the pixels, while it is lent (see next_frames)

    @property
    def timestamp(self):
        """Seconds on the camera's clock, or None if the camera gave no timestamp."""
        if self.ticks is None or not self.tick_frequency:
            return None
        return self.ticks / self.tick_frequency


class AndorCamera:
    """An open camera. Public methods return Deferreds; errors are ``errors.CameraError``."""

    def __init__(self, sdk_camera, features, sdk_exception, call, clock):
        self._cam = sdk_camera
        self.features = features  # {name: type} of what this camera implements
        self._sdk_exception = sdk_exception
        self._submit = call
        self._clock = clock
        self.acquiring = None  # what holds the camera: "snap", a burst, ... or None
        self._queued = collections.deque()  # our buffers, in the order the SDK will fill them
        self._spare = collections.deque()  # buffers lent out and given back, for the running acquisition
        self._buffer_bytes = None  # their size, while an acquisition runs
        self._spare_max = 0
        self._closed = False

    @classmethod
    def open(cls, sdk, index, call, clock):
        """Open camera ``index`` of ``sdk`` (a pyAndorSDK3-shaped module) in the SDK thread."""

        def _open():
            cam = sdk.AndorSDK3().GetCamera(index)
            features = {}
            for name in SDK3_FEATURES:
                try:
                    features[name] = TYPE_NAMES[getattr(cam, "type_" + name)]
                except (AttributeError, sdk.CameraException, KeyError):
                    continue
            if features.get("CameraAcquiring") == "bool" and cam.CameraAcquiring:
                cam.AcquisitionStop()  # left running by a previous owner
                cam.flush()
            for name in ("MetadataEnable", "MetadataTimestamp"):
                if name in features:
                    setattr(cam, name, True)
            return cam, features

        d = call(_open)
        d.addErrback(_translate, sdk.CameraException)
        d.addCallback(lambda opened: cls(opened[0], opened[1], sdk.CameraException, call, clock))
        return d

    def _call(self, fn, *args):
        if self._closed:
            return defer.fail(CameraNotReady("the camera has been closed (the server is stopping)"))
        d = self._submit(fn, *args)
        d.addErrback(_translate, self._sdk_exception)
        return d

    # ---- features ----

    def _check_name(self, name):
        if name not in self.features:
            close = difflib.get_close_matches(name, self.features, n=1)
            hint = f"; did you mean {close[0]!r}? (names are case-sensitive)" if close else ""
            raise UnknownFeature(f"the camera has no feature {name!r}{hint}", feature=name)
        return self.features[name]

    def _check_idle(self, name):
        if self.acquiring is not None:
            raise AcquisitionRunning(f"cannot change {name} while the camera is busy with a {self.acquiring}",
                                     busy_with=self.acquiring)

    def get(self, name):
        """The value of feature ``name``."""
        return defer.maybeDeferred(self._get, name)

    def _get(self, name):
        if self._check_name(name) == "command":
            raise InvalidValue("not_readable", f"{name} is a command; it has no value", feature=name)
        return self._call(getattr, self._cam, name)

    def info(self, name):
        """Type, value and limits of feature ``name``: min/max for numbers, options for enums."""
        return defer.maybeDeferred(self._info, name)

    def _info(self, name):
        kind = self._check_name(name)

        def _read():
            info = {"name": name, "type": kind}
            if kind != "command":
                info["value"] = getattr(self._cam, name)
            if kind in ("int", "float"):
                info["min"], info["max"] = getattr(self._cam, "min_" + name), getattr(self._cam, "max_" + name)
            elif kind == "enum":
                info["options"] = list(getattr(self._cam, "options_" + name))
                info["available_options"] = list(getattr(self._cam, "available_options_" + name))
            return info

        return self._call(_read)

    def set(self, name, value):
        """Set feature ``name`` and return the value the camera now reports (it may round)."""
        return defer.maybeDeferred(self._set, name, value)

    def _set(self, name, value):
        kind = self._check_name(name)
        self._check_idle(name)
        value = _coerce(name, kind, value)
        return self._call(self._set_checked, name, kind, value)

    def _set_checked(self, name, kind, value):
        """In the SDK thread: set, and if the camera refuses, say what it would have taken."""
        cam = self._cam
        try:
            setattr(cam, name, value)
        except self._sdk_exception as e:
            code = atcore.error_code_of(e)
            if code == atcore.OUTOFRANGE and kind in ("int", "float"):
                low, high = getattr(cam, "min_" + name), getattr(cam, "max_" + name)
                raise InvalidValue("out_of_range", f"{name} = {value} is out of range [{low}, {high}]",
                                   feature=name, min=low, max=high) from e
            if code == atcore.STRINGNOTIMPLEMENTED and kind == "enum":
                options = list(getattr(cam, "options_" + name))
                raise InvalidValue("invalid_option", f"{value!r} is not an option of {name}; options: {options}",
                                   feature=name, options=options) from e
            if code == atcore.STRINGNOTAVAILABLE and kind == "enum":
                available = list(getattr(cam, "available_options_" + name))
                raise InvalidValue("option_not_available",
                                   f"{name} = {value!r} is not available in the camera's current mode; "
                                   f"available now: {available}", feature=name, available_options=available) from e
            raise
        return getattr(cam, name)

    # ---- area of interest and binning, in sensor pixels ----

    def get_aoi(self):
        """The AOI as 1-based sensor-pixel ``left``/``top`` and sensor-pixel ``width``/``height``."""
        return self._call(self._read_aoi)

    def _read_aoi(self):
        cam = self._cam
        return {"left": cam.AOILeft, "top": cam.AOITop,
                "width": cam.AOIWidth * cam.AOIHBin, "height": cam.AOIHeight * cam.AOIVBin}

    def set_aoi(self, changes):
        """Change any of left/top/width/height (sensor pixels); the others keep their values.

        Sizes round down to whole super-pixels of the current binning. Returns the AOI now set.
        """
        return defer.maybeDeferred(self._set_aoi, changes)

    def _set_aoi(self, changes):
        if not isinstance(changes, dict) or not changes:
            raise InvalidValue("wrong_type", "the AOI is an object with any of left, top, width, height")
        unknown = sorted(set(changes) - {"left", "top", "width", "height"})
        if unknown:
            raise InvalidValue("unknown_field",
                               f"the AOI has no field {unknown[0]!r}; fields: left, top, width, height")
        self._check_idle("the AOI")
        changes = {key: _coerce(f"AOI {key}", "int", value) for key, value in changes.items()}
        return self._call(self._apply_aoi, changes, None)

    def get_binning(self):
        return self._call(getattr, self._cam, "AOIBinning")

    def set_binning(self, binning):
        """Set square binning (2 or "2x2"), keeping the AOI's region of the sensor."""
        return defer.maybeDeferred(self._set_binning, binning)

    def _set_binning(self, binning):
        self._check_idle("the binning")
        if isinstance(binning, int) and not isinstance(binning, bool):
            binning = f"{binning}x{binning}"
        if not isinstance(binning, str):
            raise InvalidValue("wrong_type",
                               f"binning is a factor such as 2 or a string such as '2x2', not {binning!r}")
        return self._call(self._apply_aoi, {}, binning).addCallback(lambda aoi: self.get_binning())

    def _apply_aoi(self, changes, binning):
        """In the SDK thread: validate the whole AOI first, then set it in an order that never passes
        through an invalid state (binning, origin to 1,1, size, then origin)."""
        cam = self._cam
        aoi = self._read_aoi()
        aoi.update(changes)
        hbin, vbin = cam.AOIHBin, cam.AOIVBin
        if binning is not None:
            options = list(cam.available_options_AOIBinning)
            if binning not in options:
                raise InvalidValue("invalid_option", f"binning {binning!r} is not available; options: {options}",
                                   feature="AOIBinning", options=options)
            hbin, vbin = (int(n) for n in binning.split("x"))
        sensor = {"width": cam.SensorWidth, "height": cam.SensorHeight}
        for origin, size in (("left", "width"), ("top", "height")):
            if aoi[origin] < 1 or aoi[size] < 1 or aoi[origin] + aoi[size] - 1 > sensor[size]:
                raise InvalidValue(
                    "out_of_range",
                    f"AOI {origin}={aoi[origin]} {size}={aoi[size]} does not fit the sensor: {origin} >= 1 and "
                    f"{origin} + {size} - 1 <= {sensor[size]}", aoi=aoi, sensor=sensor)
        width, height = aoi["width"] // hbin, aoi["height"] // vbin
        for name, value in (("AOIWidth", width), ("AOIHeight", height)):
            low = max(getattr(cam, "min_" + name), 1)
            if value < low:
                raise InvalidValue("out_of_range", f"the AOI is {value} super-pixels of {hbin}x{vbin} in {name}; "
                                                   f"the camera's smallest is {low}", feature=name, min=low, aoi=aoi)
        if binning is not None:
            cam.AOIBinning = binning
        cam.AOILeft, cam.AOITop = 1, 1
        cam.AOIWidth, cam.AOIHeight = width, height
        cam.AOILeft, cam.AOITop = aoi["left"], aoi["top"]
        return self._read_aoi()

    # ---- acquisition ----

    def claim(self, purpose):
        """Mark the camera busy with ``purpose`` until ``release``; AcquisitionRunning if it already is."""
        if self.acquiring is not None:
            raise AcquisitionRunning(f"the camera is busy with a {self.acquiring}", busy_with=self.acquiring)
        self.acquiring = purpose

    def release(self):
        self.acquiring = None

    def start(self, purpose, n_buffers, frame_rate=None):
        """Claim the camera for ``purpose`` and start a continuous acquisition (at ``frame_rate`` if
        given) with ``n_buffers`` buffers queued. Returns the frame layout for ``next_frames``.

        Settings cannot change until ``stop``. The 'Fixed' cycle mode proved unreliable on real
        cameras; continuous with an explicit stop is not.
        """
        return defer.maybeDeferred(self._start, purpose, n_buffers, frame_rate)

    def _start(self, purpose, n_buffers, frame_rate):
        if frame_rate is not None:
            frame_rate = _coerce("FrameRate", "float", frame_rate)
        self.claim(purpose)
        d = self._call(self._arm, n_buffers, frame_rate)
        d.addErrback(lambda failure: (self.release(), failure)[1])
        return d

    def _arm(self, n_buffers, frame_rate):
        """In the SDK thread: configure, queue buffers, start. Returns the frame layout."""
        cam = self._cam
        if "TriggerMode" in self.features:
            cam.TriggerMode = "Internal"
        cam.CycleMode = "Continuous"
        if frame_rate is not None:
            self._set_checked("FrameRate", "float", frame_rate)
        layout = {
            "size": cam.ImageSizeBytes, "encoding": cam.PixelEncoding, "width": cam.AOIWidth,
            "height": cam.AOIHeight, "stride": cam.AOIStride, "frame_rate": cam.FrameRate,
            "tick_frequency": cam.TimestampClockFrequency if "TimestampClockFrequency" in self.features else None,
            "timestamps": "MetadataTimestamp" in self.features and cam.MetadataEnable and cam.MetadataTimestamp,
            "timeout_s": cam.ExposureTime + 1.0 / cam.FrameRate + FIRST_FRAME_GRACE_S,
        }
        self._spare.clear()
        self._buffer_bytes = layout["size"]
        self._spare_max = 2 * n_buffers
        for _ in range(n_buffers):
            self._queue(np.empty(layout["size"], np.uint8))
        cam.AcquisitionStart()
        return layout

    def stop(self):
        """Stop the acquisition and release the camera (even if stopping fails)."""
        d = self._call(self._stop)
        d.addBoth(lambda result: (self.release(), result)[1])
        return d

    def _stop(self):
        """In the SDK thread: stop, then flush (flushing a running camera froze some of them)."""
        self._cam.AcquisitionStop()
        self._cam.flush()
        self._queued.clear()
        self._buffer_bytes = None
        self._spare.clear()

    def _queue(self, buf):
        self._cam.queue(buf, buf.size)
        self._queued.append(buf)

    def give_back(self, buffer):
        """A buffer lent with a frame (``next_frames(lend=True)``) is free again. Any thread.

        The running acquisition keeps a few to queue again; the rest, and any given back after the
        acquisition ended, are simply dropped."""
        if buffer.size == self._buffer_bytes and len(self._spare) < self._spare_max:
            self._spare.append(buffer)

    @defer.inlineCallbacks
    def next_frames(self, layout, first_number, max_count=1, pack=None, lend=False):
        """The next frames of the running acquisition: waits (at most ``layout['timeout_s']``) for one,
        then takes up to ``max_count`` in all of those already waiting, in one trip to the SDK thread.

        ``pack(frame)`` runs in the SDK thread on a frame whose image is a view into ``frame.buffer``,
        an SDK buffer, and returns the frame to deliver. Without ``lend`` the buffer is queued again at
        once, so what pack returns must own its pixels (the default copies the image). With ``lend``,
        a returned frame that still has its ``buffer`` keeps it until ``give_back(buffer)``, and the
        camera gets another buffer meanwhile: the pixels then never need copying on the server.
        """
        deadline = self._clock.seconds() + layout["timeout_s"]
        while True:
            try:
                return (yield self._call(self._take, layout, first_number, max_count, pack or _copy_image, lend))
            except CameraTimeout as e:
                if self._clock.seconds() >= deadline:
                    raise CameraTimeout(atcore.TIMEDOUT, f"no frame from the camera within "
                                                         f"{layout['timeout_s']:.1f} s") from e

    def _take(self, layout, first_number, max_count, pack, lend):
        """In the SDK thread: wait one slice for a frame, then take those already there. A failure
        after the first frame ends the batch; the next call meets it again."""
        frames = [self._take_one(layout, first_number, WAIT_SLICE_MS, pack, lend)]
        while len(frames) < max_count:
            try:
                frames.append(self._take_one(layout, first_number + len(frames), 0, pack, lend))
            except self._sdk_exception:
                break
        return frames

    def _take_one(self, layout, frame_number, timeout_ms, pack, lend):
        self._cam.wait_buffer(timeout_ms)
        raw = self._queued.popleft()  # buffers come back in the order they were queued
        image = buffers.decode(raw, layout["encoding"], layout["width"], layout["height"], layout["stride"],
                               copy=False)
        ticks = buffers.read_ticks(raw, layout["size"]) if layout["timestamps"] else None
        frame = pack(Frame(image, frame_number, ticks, layout["tick_frequency"], buffer=raw))
        if lend and frame.buffer is not None:
            self._queue(self._spare.popleft() if self._spare else np.empty(layout["size"], np.uint8))
        else:
            frame.buffer = None
            self._queue(raw)
        return frame

    def snap(self, exposure_time=None):
        """Expose and read one frame (a ``Frame``), optionally setting the exposure time first."""
        return defer.maybeDeferred(self._snap, exposure_time)

    @defer.inlineCallbacks
    def _snap(self, exposure_time):
        if exposure_time is not None:
            exposure_time = _coerce("ExposureTime", "float", exposure_time)
            self._check_idle("the exposure time")
            yield self._call(self._set_checked, "ExposureTime", "float", exposure_time)
        layout = yield self.start("snap", 1)
        try:
            frames = yield self.next_frames(layout, 0)
        finally:
            yield self.stop()
        return frames[0]

    def close(self):
        """Stop any acquisition and close the camera."""

        def _close():
            if "CameraAcquiring" in self.features and self._cam.CameraAcquiring:
                self._stop()
            self._cam.close()

        d = self._call(_close)
        self._closed = True
        return d


def _copy_image(frame):
    return replace(frame, image=frame.image.copy())


def _coerce(name, kind, value):
    """Check a JSON value against a feature type; integral floats are fine for ints."""
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind in ("enum", "string") and isinstance(value, str):
        return value
    expected = {"float": "a number", "int": "an integer", "bool": "true or false", "enum": "a string option",
                "string": "a string", "command": "nothing (it is a command)"}[kind]
    raise InvalidValue("wrong_type", f"{name} takes {expected}, not {value!r}", expected=kind)


def _translate(failure, sdk_exception):
    """Errback: an SDK exception becomes an SDKError naming its AT_ERR_ code; the rest pass on."""
    exc = failure.value
    if not isinstance(exc, sdk_exception):
        return failure
    code = atcore.error_code_of(exc)
    if code in _REFUSALS:
        raise InvalidValue(_REFUSALS[code], f"the camera refused: {exc}", sdk_error=atcore.error_name(code)) from exc
    cls = CameraTimeout if code == atcore.TIMEDOUT else SDKError
    raise cls(code, f"camera error {atcore.error_name(code)}: {exc}") from exc
