"""One simulated camera: its features, as its model implements them, and its physics.

``SimDevice`` is what a camera handle of the simulated ATCore (``atcore.py``) reaches: a table of
``Feature`` objects built from a ``CameraModel``, each with its type, whether it is readable and
writable now, its limits or enum options (implemented and available), and the camera's state behind
them. ``Timeline`` decides when frames exist, ``Scene`` what they show; frames are painted straight
into the memory of the buffers the host queued, as a camera's DMA writes them.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import math
import os
import random
import sys
import threading
from collections.abc import Callable
from typing import Any, cast

import cffi
import numpy as np
from numpy.typing import NDArray

from andor_twisted.camera import atcore, buffers
from andor_twisted.camera.sim.exceptions import fail
from andor_twisted.camera.sim.models import ENCODING_OPTIONS, EVENTS, TEMPERATURE_STATUSES, TRIGGER_MODES, CameraModel
from andor_twisted.camera.sim.scene import Scene
from andor_twisted.camera.sim.timeline import Periodic, Software, Timeline
from andor_twisted.camera.sim.timesource import TimeSource

AMBIENT = 22.0
COOLING_TIME_CONSTANT = 20.0  # seconds; the real sensors take minutes, tests and demos do not wait
STRIDE_ALIGNMENT = 8  # bytes; rows whose pixels end elsewhere are padded
CLOCK_READ_S = 200e-6  # a TimestampClock read crosses the link: it takes this long, latched somewhere inside
IRIG_CID = 0x7F01  # the simulator's own metadata block for IRIG time (read only by its utility library)
IRIG_BLOCK = np.dtype([("ns", "<f8"), ("s", "<i8"), ("min", "<i8"), ("h", "<i8"), ("day", "<i8"), ("year", "<i8")])


FFI = cffi.FFI()  # the simulated library's C types, as pyAndorSDK3 declares them
FFI.cdef("typedef int AT_H; typedef wchar_t AT_WC;")


def _always() -> bool:
    return True


def _no_value() -> Any:
    raise TypeError("a command has no value")


class Feature:
    """A feature as SDK3 presents it: ``kind`` is int, float, bool, enum, string or command."""

    def __init__(self, kind: str, get: Callable[[], Any] | None = None, set: Callable[[Any], None] | None = None,
                 *, min: Callable[[], Any] | None = None, max: Callable[[], Any] | None = None,
                 options: tuple[str, ...] = (), implemented: Callable[[str], bool] | None = None,
                 available: Callable[[str], bool] | None = None, readable: Callable[[], bool] = _always,
                 writable: Callable[[], bool] = _always):
        self.kind = kind
        self.get: Callable[[], Any] = get or _no_value  # only a command has none
        self.set = set
        self.min, self.max = min or self.get, max or self.get  # a read-only number's limits are its value
        self.options = options
        self.implemented = implemented or (lambda option: True)
        self.available = available or (lambda option: True)
        self.readable = readable
        self.writable = writable  # for a command: whether it can be executed now

    @property
    def readonly(self) -> bool:
        return self.set is None and self.kind != "command"


class SimDevice:
    def __init__(self, model: CameraModel, time: TimeSource, index: int, seed: int = 0):
        self.model = model
        self.time = time
        self.index = index
        self.serial = f"{model.serial_prefix}-{10000 + 7 * index + seed:05d}"
        self.is_open = False
        self._rng = random.Random(seed + index)
        self._scene = Scene(model.sensor_width, model.sensor_height, seed)
        gain = model.gains[-1][0]  # the highest bit depth
        self._v: dict[str, Any] = {
            "ExposureTime": 0.01, "FrameRate": 10.0, "CycleMode": "Fixed", "FrameCount": 1,
            "TriggerMode": "Internal", "AOIHBin": 1, "AOIVBin": 1, "AOILeft": 1, "AOITop": 1,
            "AOIWidth": model.sensor_width, "AOIHeight": model.sensor_height,
            "PixelEncoding": "Mono16" if "Mono16" in model.encodings else "Mono32", "Gain": gain,
            "PixelReadoutRate": min(model.readout_rates, key=lambda r: r[1])[0],
            "ElectronicShutteringMode": model.shutter_modes[0], "Overlap": 1, "SensorCooling": 0,
            "TemperatureControl": model.setpoints[0] if model.setpoints else None,
            "FanSpeed": model.fan_speeds[-1], "MetadataEnable": 0, "MetadataTimestamp": 0, "MetadataIRIG": 0,
            "EventSelector": "BufferOverflowEvent", "EventEnable": {},
        }
        self._v.update({name: (cast("tuple[str, ...]", default)[0] if kind == "enum" else default)
                        for name, kind, default in model.extras})  # an enum's default: its options
        self._thermal = (AMBIENT, time.now())  # temperature at the last change of cooling, and when
        self._clock_zero = time.now()
        self._queue: collections.deque[tuple[int, int]] = collections.deque()  # (address, size) queued
        self._timeline: Timeline | None = None  # the running acquisition
        self._stopped: Timeline | None = None  # the last one, whose delivered frames can still be collected
        self._config: dict[str, Any] = {}
        self._returned = 0  # frames of this acquisition handed to the host
        self._waits = 0
        # static scene: address -> (painter, frame it holds, its pixels in the buffer)
        self._painted: dict[int, tuple[Any, int, NDArray[np.uint16]]] = {}
        # ... and buffers queued while it acquires, being filled in the camera's own thread: address -> (the
        # copy, its pixels in the buffer)
        self._filling: dict[int, tuple[concurrent.futures.Future[None], NDArray[np.uint16]]] = {}
        self._dma: concurrent.futures.ThreadPoolExecutor | None = None
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._overflow_reported = False
        self._software: Software | None = None
        self.features = self._define_features()

    def value(self, name: str) -> Any:
        """A feature's value as the camera holds it (for tests: no SDK call)."""
        return self.features[name].get()

    # ---- features ----

    def _define_features(self) -> dict[str, Feature]:
        m = self.model
        v: Callable[[str], Callable[[], Any]] = lambda name: (lambda: self._v[name])  # noqa: E731
        put: Callable[[str], Callable[[Any], None]] = (  # noqa: E731
            lambda name: (lambda value: self._v.__setitem__(name, value)))
        const: Callable[[object], Callable[[], Any]] = lambda value: (lambda: value)  # noqa: E731
        idle: Callable[[], bool] = lambda: not self.acquiring()  # noqa: E731
        internal: Callable[[], bool] = (  # noqa: E731
            lambda: idle() and self._v["TriggerMode"] in ("Internal", "External Start"))
        F = Feature
        f: dict[str, Feature] = {
            "ExposureTime": F("float", v("ExposureTime"), self._set_exposure, min=const(m.exposure_min_s),
                              max=const(m.exposure_max_s), writable=idle),
            "FrameRate": F("float", v("FrameRate"), put("FrameRate"), min=const(1e-3), max=self._max_frame_rate,
                           writable=internal),
            "ReadoutTime": F("float", self._readout_time),
            "CycleMode": F("enum", v("CycleMode"), put("CycleMode"), options=("Fixed", "Continuous"), writable=idle),
            "FrameCount": F("int", v("FrameCount"), put("FrameCount"), min=const(1), max=const(2**31 - 1),
                            writable=idle),
            "TriggerMode": F("enum", v("TriggerMode"), put("TriggerMode"), options=TRIGGER_MODES,
                             implemented=m.trigger_modes.__contains__,
                             available=lambda mode: mode != "Advanced", writable=idle),
            "AOIWidth": F("int", v("AOIWidth"), put("AOIWidth"), min=const(m.aoi_min_width),
                          max=lambda: (m.sensor_width - self._v["AOILeft"] + 1) // self._v["AOIHBin"],
                          writable=lambda: idle() and m.aoi_writable),
            "AOIHeight": F("int", v("AOIHeight"), self._set_height, min=const(m.aoi_min_height),
                           max=lambda: (m.sensor_height - self._v["AOITop"] + 1) // self._v["AOIVBin"],
                           writable=lambda: idle() and m.aoi_writable),
            "AOILeft": F("int", v("AOILeft"), put("AOILeft"), min=const(1),
                         max=lambda: m.sensor_width - self._v["AOIWidth"] * self._v["AOIHBin"] + 1,
                         writable=lambda: idle() and m.aoi_writable),
            "AOITop": F("int", v("AOITop"), put("AOITop"), min=const(1),
                        max=lambda: m.sensor_height - self._v["AOIHeight"] * self._v["AOIVBin"] + 1,
                        writable=lambda: idle() and m.aoi_writable and not self._v.get("VerticallyCentreAOI")),
            "ImageSizeBytes": F("int", self._image_size),
            "SensorWidth": F("int", const(m.sensor_width)),
            "SensorHeight": F("int", const(m.sensor_height)),
            "PixelWidth": F("float", const(m.pixel_size_um)),
            "PixelHeight": F("float", const(m.pixel_size_um)),
            "PixelEncoding": F("enum", v("PixelEncoding"), put("PixelEncoding"), options=ENCODING_OPTIONS,
                               implemented=m.encodings.__contains__, available=self._encoding_available,
                               writable=idle),
            "BytesPerPixel": F("float", lambda: buffers.row_bytes(self._v["PixelEncoding"], 2) / 2),
            "PixelReadoutRate": F("enum", v("PixelReadoutRate"),
                                  put("PixelReadoutRate") if len(m.readout_rates) > 1 else None,
                                  options=tuple(rate for rate, _ in m.readout_rates), writable=idle),
            "ElectronicShutteringMode": F("enum", v("ElectronicShutteringMode"),
                                          put("ElectronicShutteringMode") if len(m.shutter_modes) > 1 else None,
                                          options=m.shutter_modes, writable=idle),
            "SensorCooling": F("bool", v("SensorCooling"), lambda on: self._thermal_change("SensorCooling", on)),
            "FanSpeed": F("enum", v("FanSpeed"), lambda s: self._thermal_change("FanSpeed", s),
                          options=m.fan_speeds),
            "SensorTemperature": F("float", self._temperature),
            "CameraAcquiring": F("bool", lambda: int(self.acquiring())),
            "AcquisitionStart": F("command", set=lambda _: self._acquisition_start(), writable=idle),
            "AcquisitionStop": F("command", set=lambda _: self._acquisition_stop(), writable=self.acquiring),
            "CameraModel": F("string", const(m.name)),
            "SerialNumber": F("string", const(self.serial)),
        }
        if m.gain_feature:
            f[m.gain_feature] = F("enum", v("Gain"), self._set_gain, options=tuple(g for g, _ in m.gains),
                                  writable=idle)
            bit_options = ("11 Bit", "12 Bit", "16 Bit")
            f["BitDepth"] = F("enum", lambda: f"{self._bits()} Bit", options=bit_options,
                              implemented=lambda o: o in {f"{bits} Bit" for _, bits in m.gains})
        if m.binnings:
            f["AOIBinning"] = F("enum", self._binning, lambda s: self._set_binning(*map(int, s.split("x"))),
                                options=m.binnings, writable=lambda: idle() and m.aoi_writable)
        if m.hv_binning:
            f["AOIHBin"] = F("int", v("AOIHBin"), lambda b: self._set_binning(b, self._v["AOIVBin"]),
                             min=const(1), max=const(8), writable=idle)
            f["AOIVBin"] = F("int", v("AOIVBin"), lambda b: self._set_binning(self._v["AOIHBin"], b),
                             min=const(1), max=const(8), writable=idle)
        if m.stride:
            f["AOIStride"] = F("int", self._stride)
        if m.full_aoi_control is not None:
            f["FullAOIControl"] = F("bool", const(int(m.full_aoi_control)))
        if m.overlap:
            f["Overlap"] = F("bool", v("Overlap"), put("Overlap"), writable=idle)
        if m.setpoints:
            f["TemperatureControl"] = F("enum", v("TemperatureControl"),
                                        (lambda s: self._thermal_change("TemperatureControl", s))
                                        if m.setpoint_writable else None, options=m.setpoints)
            f["TemperatureStatus"] = F("enum", self._temperature_status, options=TEMPERATURE_STATUSES)
        if "Software" in m.trigger_modes:
            f["SoftwareTrigger"] = F("command", set=lambda _: self._software_trigger(),
                                     writable=lambda: self._software is not None and self.acquiring())
        if m.metadata:
            f["MetadataEnable"] = F("bool", v("MetadataEnable"), put("MetadataEnable"), writable=idle)
            f["MetadataTimestamp"] = F("bool", v("MetadataTimestamp"), put("MetadataTimestamp"), writable=idle)
            f["MetadataFrame"] = F("bool", v("MetadataEnable"))
            f["TimestampClock"] = F("int", self._read_clock)
            f["TimestampClockFrequency"] = F("int", const(m.tick_frequency_hz))
            f["TimestampClockReset"] = F("command", set=lambda _: self._reset_clock())
        if m.irig:
            f["MetadataIRIG"] = F("bool", v("MetadataIRIG"), put("MetadataIRIG"), writable=idle)
        if m.link_rate_bytes_per_s or m.interface:
            f["MaxInterfaceTransferRate"] = F("float", self._max_transfer_rate)
        if m.events:
            f["EventSelector"] = F("enum", v("EventSelector"), put("EventSelector"), options=EVENTS)
            for event in EVENTS:
                f[event] = F("int", const(0))
            if m.event_enable:
                f["EventEnable"] = F("bool", lambda: int(self._v["EventEnable"].get(self._v["EventSelector"], 0)),
                                     lambda on: self._v["EventEnable"].__setitem__(self._v["EventSelector"], on))
        for name, value in (("CameraName", m.camera_name), ("CameraFamily", m.family),
                            ("FirmwareVersion", m.firmware), ("InterfaceType", m.interface)):
            if value is not None:
                f[name] = F("string", const(value))
        for name, kind, default in m.extras:
            if kind == "enum":
                f[name] = F("enum", v(name), put(name), options=cast("tuple[str, ...]", default), writable=idle)
            else:
                f[name] = F(kind, v(name), put(name), min=const(-1e6 if kind == "float" else 0),
                            max=const(1e6 if kind == "float" else 2**31 - 1), writable=idle)
        return f

    def _set_exposure(self, seconds: float) -> None:
        self._v["ExposureTime"] = seconds
        self._v["FrameRate"] = min(self._v["FrameRate"], self._max_frame_rate())

    def _set_height(self, rows: int) -> None:
        if self.model.aoi_even_height and rows % 2:
            raise fail(atcore.OUTOFRANGE)  # the Zyla reads out in pairs of rows
        self._v["AOIHeight"] = rows

    def _readout_time(self) -> float:
        full = dict(self.model.readout_rates)[self._v["PixelReadoutRate"]]
        rows: int = self._v["AOIHeight"] * self._v["AOIVBin"]
        factor = 2 if self._v["ElectronicShutteringMode"] == "Global" else 1  # a reference frame is read too
        return factor * full * rows / self.model.sensor_height

    def _max_frame_rate(self) -> float:
        """Overlapped readout: the slower of exposing and reading out; without overlap, both in turn."""
        exposure, readout = self._v["ExposureTime"], self._readout_time()
        cycle: float = max(exposure, readout) if self._v["Overlap"] or not self.model.overlap else exposure + readout
        return 1.0 / cycle

    def _binning(self) -> str:
        return f"{self._v['AOIHBin']}x{self._v['AOIVBin']}"

    def _set_binning(self, hbin: int, vbin: int) -> None:
        if self.model.binnings and not self.model.hv_binning and f"{hbin}x{vbin}" not in self.model.binnings:
            raise fail(atcore.OUTOFRANGE)
        m = self.model
        self._v["AOIHBin"], self._v["AOIVBin"] = hbin, vbin
        # the AOI keeps its size in super-pixels where the sensor allows, as the cameras do
        self._v["AOIWidth"] = max(m.aoi_min_width, min(self._v["AOIWidth"], (m.sensor_width - self._v["AOILeft"] + 1)
                                                       // hbin))
        self._v["AOIHeight"] = max(m.aoi_min_height, min(self._v["AOIHeight"],
                                                         (m.sensor_height - self._v["AOITop"] + 1) // vbin))

    def _stride(self) -> int:
        raw = buffers.row_bytes(self._v["PixelEncoding"], self._v["AOIWidth"])
        if not self.model.stride:
            return raw
        return -(-raw // STRIDE_ALIGNMENT) * STRIDE_ALIGNMENT

    def _metadata_bytes(self) -> int:
        v = self._v
        if not v["MetadataEnable"]:
            return 0
        timestamps: int = v["MetadataTimestamp"]  # 0/1
        irig: int = v["MetadataIRIG"]
        return (buffers.BLOCK_TAIL.size + (buffers.METADATA_BYTES - buffers.BLOCK_TAIL.size) * timestamps
                + (IRIG_BLOCK.itemsize + buffers.BLOCK_TAIL.size) * irig)

    def _image_size(self) -> int:
        height: int = self._v["AOIHeight"]
        return self._stride() * height + self._metadata_bytes()

    def _bits(self) -> int:
        return dict(self.model.gains)[self._v["Gain"]]

    def _encoding_available(self, encoding: str) -> bool:
        """12-bit encodings only in the 11/12-bit gain modes, Mono32 only in the 16-bit one."""
        if encoding in ("Mono12", "Mono12Packed"):
            return self._bits() <= 12
        if encoding == "Mono32":
            return self._bits() == 16
        return True

    def _set_gain(self, mode: str) -> None:
        self._v["Gain"] = mode
        if not self._encoding_available(self._v["PixelEncoding"]):
            self._v["PixelEncoding"] = "Mono16"

    def _max_transfer_rate(self) -> float:
        """MaxInterfaceTransferRate: frames per second the interface sustains at this frame size."""
        rate = self.model.link_rate_bytes_per_s
        return rate / self._image_size() if rate else self._max_frame_rate()

    # ---- temperature: relaxes exponentially to the setpoint (or as cold as the fan allows) ----

    def _thermal_target(self) -> float:
        if not self._v["SensorCooling"]:
            return AMBIENT
        setpoint = float(self._v["TemperatureControl"]) if self._v["TemperatureControl"] is not None else 0.0
        return max(setpoint, self.model.cooling_floor.get(self._v["FanSpeed"], 0.0))

    def _temperature(self) -> float:
        start, since = self._thermal
        target = self._thermal_target()
        return float(target + (start - target) * math.exp(-(self.time.now() - since) / COOLING_TIME_CONSTANT))

    def _thermal_change(self, name: str, value: Any) -> None:
        self._thermal = (self._temperature(), self.time.now())
        self._v[name] = value

    def _temperature_status(self) -> str:
        if not self._v["SensorCooling"]:
            return "Cooler Off"
        setpoint = float(self._v["TemperatureControl"])
        temperature = self._temperature()
        if abs(temperature - self._thermal_target()) > 0.5:
            return "Cooling"
        return "Stabilised" if abs(temperature - setpoint) <= 0.5 else "Not Stabilised"

    # ---- the camera's clock ----

    def ticks_at(self, when: float) -> int:
        rate = self.model.tick_frequency_hz * (1 + self.model.clock_drift_ppm * 1e-6)
        return round((when - self._clock_zero) * rate)

    def _read_clock(self) -> int:
        """A TimestampClock read takes CLOCK_READ_S over the link and latches somewhere inside it."""
        latch = self._rng.uniform(0, CLOCK_READ_S)
        self.time.sleep(latch)
        ticks = self.ticks_at(self.time.now())
        self.time.sleep(CLOCK_READ_S - latch)
        return ticks

    def _reset_clock(self) -> None:
        self._clock_zero = self.time.now()

    # ---- events ----

    def register(self, feature: str, callback: Callable[[str], None]) -> None:
        self._callbacks.setdefault(feature, []).append(callback)
        callback(feature)  # SDK3 calls a callback once as it is registered

    def unregister(self, feature: str, callback: Callable[[str], None]) -> None:
        if callback in self._callbacks.get(feature, []):
            self._callbacks[feature].remove(callback)

    def _fire(self, event: str) -> None:
        if self.model.event_enable and self._v["EventEnable"].get(event):
            for callback in list(self._callbacks.get(event, ())):
                callback(event)

    def acquiring(self) -> bool:
        """An acquisition runs: started, not stopped, and not ended by the camera itself."""
        return self._timeline is not None and not self._aborted()

    def _aborted(self) -> bool:
        """An acquisition the camera itself ended because its memory overflowed (abort or hang)."""
        timeline = self._timeline
        return (timeline is not None and timeline.fault is not None and self.model.when_full in ("abort", "hang")
                and timeline.fault[1] <= self.time.now())

    def _check_fault(self, timeline: Timeline, now: float) -> None:
        if timeline.fault is None or timeline.fault[1] > now:
            return
        if self.model.when_full == "error":
            raise fail(atcore.HARDWARE_OVERFLOW)
        if not self._overflow_reported:
            self._overflow_reported = True
            if self.model.when_full == "abort":
                self._fire("BufferOverflowEvent")

    # ---- acquisition ----

    def _software_trigger(self) -> None:
        assert self._software is not None
        self._software.fire(self.time.now())

    def _acquisition_start(self) -> None:
        v, m = self._v, self.model
        # preparing the scene costs real time once per configuration: it counts as arming
        self._painter = self._scene.painter(v["AOILeft"], v["AOITop"], v["AOIWidth"], v["AOIHeight"],
                                            v["AOIHBin"], v["AOIVBin"], v["ExposureTime"], 2 ** self._bits() - 1)
        now = self.time.now()
        size = self._image_size()
        self._config = {
            "PixelEncoding": v["PixelEncoding"], "AOIWidth": v["AOIWidth"], "AOIHeight": v["AOIHeight"],
            "AOIStride": self._stride(), "ImageSizeBytes": size, "metadata": bool(v["MetadataEnable"]),
            "timestamps": bool(v["MetadataEnable"] and v["MetadataTimestamp"]),
            "irig": bool(v["MetadataEnable"] and v["MetadataIRIG"]),
        }
        mode = v["TriggerMode"]
        self._software = Software() if mode == "Software" else None
        triggers = None if mode == "Internal" else self._software or Periodic(m.trigger_rate_hz)
        readout = self._readout_time()
        self._timeline = Timeline(
            start=now + m.arm_latency_s,
            period=1.0 / v["FrameRate"],
            exposure=v["ExposureTime"],
            readout=readout,
            frame_bytes=size,
            memory_bytes=m.onboard_memory_bytes,
            link_rate=m.link_rate_bytes_per_s,
            when_full=m.when_full,
            frame_limit=v["FrameCount"] if v["CycleMode"] == "Fixed" else None,
            triggers=triggers,
            triggered_frames="first" if mode == "External Start" else "all",
            cycle=None if mode in ("Internal", "External Start") else 1.0 / self._max_frame_rate(),
        )
        for _ in self._queue:
            self._timeline.buffer_queued(now)
        self._stopped = None
        self._returned = 0
        self._overflow_reported = False

    def _acquisition_stop(self) -> None:
        if self._timeline is not None:
            self._timeline.stop(self.time.now())
        self._stopped, self._timeline = self._timeline, None
        self._software = None

    # ---- buffers ----

    def queue(self, address: int, size: int) -> None:
        if address % 8:
            raise fail(atcore.INVALIDALIGNMENT)
        expected = self._config["ImageSizeBytes"] if self._timeline is not None else self._image_size()
        if size != expected:
            raise fail(atcore.INVALIDSIZE)
        self._queue.append((address, size))
        if self._timeline is not None:
            self._timeline.buffer_queued(self.time.now())
            self._fill_ahead(address, size)

    def _fill_ahead(self, address: int, size: int) -> None:
        """A static scene's camera fills a buffer it has not filled before in its own thread, as a real
        camera's DMA does: not in the thread that queues or waits (numpy copies without the GIL), and at
        the lowest CPU priority, as the host's threads come first for a real camera's DMA too."""
        c = self._config
        if not self.model.static_scene or c["PixelEncoding"] not in ("Mono12", "Mono16") or size < FILL_AHEAD_BYTES:
            return  # (a small frame costs less to copy than to hand to another thread)
        if self._holds_scene(address) or address in self._filling:
            return
        pixels = self._pixels(memory_at(address, size))
        if self._dma is None:
            self._dma = concurrent.futures.ThreadPoolExecutor(1, "simulated-camera-dma", initializer=_lowest_priority)
        self._filling[address] = (self._dma.submit(np.copyto, pixels, self._painter.static_frame()), pixels)

    def flush(self) -> None:
        """Drop every queued buffer, filled or not. Like the real cameras, only after AcquisitionStop (or
        after the camera ended the acquisition itself)."""
        if self.acquiring():
            raise fail(atcore.NOTWRITABLE)
        if self._timeline is not None:  # ended by the camera itself
            self._stopped, self._timeline = self._timeline, None
        self._queue.clear()
        self._painted.clear()
        # the host may free its buffers now: nothing may write to them. A fill not begun is dropped, as a
        # flush drops what is queued (waiting held the SDK thread about 25 ms per new full frame behind it)
        concurrent.futures.wait([copy for copy, _ in self._filling.values() if not copy.cancel()])
        self._filling.clear()

    def wait(self, timeout_ms: int) -> tuple[int, int]:
        """The next filled buffer as (address, size), waiting up to ``timeout_ms``."""
        m = self.model
        self._waits += 1
        if m.nodata_every and self._waits % m.nodata_every == 0:
            raise fail(atcore.NODATA)  # real installs answer this now and then, at once
        if not self._queue:
            raise fail(atcore.NODATA)  # nothing queued: nothing to wait for
        deadline = self.time.now() + timeout_ms / 1000.0
        while True:
            now = self.time.now()
            timeline = self._timeline or self._stopped
            ready = None
            if timeline is not None:
                if timeline.when_full != "throttle":  # a throttling camera never faults: nothing to find
                    timeline.exposed_by(now)  # finds an overflow that happened by now, before any delivery
                ready = timeline.delivery_time(self._returned, now)
                if ready is not None and ready <= now:
                    if self._returned == m.fault_after_frames:
                        raise fail(atcore.COMM)  # the link to the camera is lost
                    if self._filling and not self._filled(self._queue[0][0], deadline - now):
                        raise fail(atcore.TIMEDOUT)  # still being written into its buffer
                    return self._deliver(timeline, self._returned)
                self._check_fault(timeline, now)
            if now >= deadline:
                raise fail(atcore.TIMEDOUT)
            self.time.sleep(min(deadline, ready if ready is not None else deadline) - now)

    def _holds_scene(self, address: int) -> bool:
        """Whether the buffer at ``address`` still holds the static scene painted into it: a buffer the host
        freed may come back as new memory at the same address (the corners of its last row, which no digit
        touches and the scene's bias keeps above zero, say)."""
        painted = self._painted.get(address)
        if painted is None or painted[0] is not self._painter:
            return False
        scene, held = self._painter.static_frame(), painted[2]
        return bool(held[-1, 0] == scene[-1, 0] and held[-1, -1] == scene[-1, -1])

    def _filled(self, address: int, within_s: float) -> bool:
        """Whether the camera's thread has filled the buffer at ``address`` (if it was filling it), waiting
        up to ``within_s`` real seconds for it."""
        filling = self._filling.get(address)
        try:
            return filling is None or filling[0].result(max(0.0, within_s)) is None
        except concurrent.futures.TimeoutError:
            return False

    def _pixels(self, buf: NDArray[np.uint8]) -> NDArray[np.uint16]:
        """A Mono12/Mono16 buffer's pixels, as the acquisition lays them out: rows of its stride."""
        c = self._config
        return buffers.rows_view(buf, c["AOIHeight"], c["AOIStride"])[:, : 2 * c["AOIWidth"]].view("<u2")

    def _deliver(self, timeline: Timeline, k: int) -> tuple[int, int]:
        address, size = self._queue.popleft()
        buf = memory_at(address, size)
        c = self._config
        exposed = timeline.exposed[k]
        height, width, stride, encoding = c["AOIHeight"], c["AOIWidth"], c["AOIStride"], c["PixelEncoding"]
        if encoding in ("Mono12", "Mono16") and self.model.static_scene:
            painted = self._painted.get(address) if self._holds_scene(address) else None
            filling = self._filling.pop(address, None) if self._filling else None
            if filling is not None:  # filled in the camera's thread (``_fill_ahead``): done by now, as a rule
                filling[0].result()
                painted = (self._painter, 0, filling[1])
            elif painted is None:
                # a buffer the camera has not filled before: one copy of the pre-rendered frame 0,
                # which numpy makes without holding the GIL (a real camera's DMA costs no host CPU)
                out = self._pixels(buf)
                np.copyto(out, self._painter.static_frame())
                painted = (self._painter, 0, out)
            out = painted[2]
            self._painter.restamp(k, out, painted[1])
            self._painted[address] = (self._painter, k, out)
        elif encoding in ("Mono12", "Mono16"):  # paint straight into the buffer: no extra copy
            out = self._pixels(buf)
            self._painter.paint(k, exposed - timeline.start, out)
        else:
            image = self._painter.paint(k, exposed - timeline.start, np.empty((height, width), np.uint16))
            buffers.encode_into(image, buf, encoding, stride)
        if c["metadata"]:
            end = buffers.write_metadata(buf, height * stride, self.ticks_at(exposed) if c["timestamps"] else None)
            if c["irig"]:
                self._write_irig(buf, end, exposed)
            if k == self.model.corrupt_metadata_at:
                buf[height * stride:] = 0xFF
        timeline.delivered_to_host(k)
        self._returned += 1
        return address, size

    def _write_irig(self, buf: np.ndarray, offset: int, exposed: float) -> None:
        """An IRIG-B time stamp of the exposure start, in UTC, as the simulator's own block."""
        utc_ns = self.time.utc_ns(exposed)
        seconds, ns = divmod(utc_ns, 10**9)
        day = np.datetime64(seconds, "s")
        year = day.astype("datetime64[Y]")
        day_of_year = int((day.astype("datetime64[D]") - year.astype("datetime64[D]")).astype(int)) + 1
        in_day = int((day - day.astype("datetime64[D]")).astype(int))
        block = np.array([(float(ns), in_day % 60, in_day // 60 % 60, in_day // 3600, day_of_year,
                           int(year.astype(int)) + 1970 - 2000)], IRIG_BLOCK)
        end = offset + IRIG_BLOCK.itemsize
        buf[offset:end] = block.view(np.uint8)
        buffers.BLOCK_TAIL.pack_into(buffers.byte_view(buf), end, IRIG_CID, IRIG_BLOCK.itemsize + 4)


FILL_AHEAD_BYTES = 1024 * 1024  # new buffers this large are filled in the camera's own thread (``_fill_ahead``)


def _lowest_priority() -> None:
    """The calling thread at the lowest CPU priority: nice 19 (on Linux, where a thread has its own; raising
    one's niceness needs no rights)."""
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


@functools.lru_cache(maxsize=4096)  # the host queues the same few buffers again and again
def memory_at(address: int, size: int) -> NDArray[np.uint8]:
    """The ``size`` bytes of host memory at ``address`` as a uint8 array: where the camera writes."""
    return np.frombuffer(memoryview(FFI.buffer(FFI.cast("unsigned char *", address), size)), np.uint8)
