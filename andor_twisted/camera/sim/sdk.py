"""The simulated SDK: ``AndorSDK3`` and its camera, with the surface of Andor's pyAndorSDK3.

What the driver uses of pyAndorSDK3 is here with the same shape: features as attributes
(``cam.ExposureTime = 0.01``), commands as methods (``cam.AcquisitionStart()``), the helpers
``min_X``/``max_X``/``options_X``/``available_options_X``/``is_available_X``/``type_X``, buffers through
``queue``/``wait_buffer``/``flush``, ``CameraException`` with ``err_code``, and an unimplemented feature
raising AttributeError. Behind it, ``Timeline`` decides when frames exist and ``Scene`` what they show.
"""

import collections
import math
import weakref

import numpy as np

from andor_twisted.camera import atcore, buffers
from andor_twisted.camera.sim.models import MODELS
from andor_twisted.camera.sim.scene import Scene
from andor_twisted.camera.sim.timeline import Timeline
from andor_twisted.camera.sim.timesource import SystemTime

PREAMP_BITS = {
    "11-bit (high well capacity)": 11,
    "12-bit (high well capacity)": 12,
    "11-bit (low noise)": 11,
    "16-bit (low noise & high well capacity)": 16,
}
BINNINGS = ("1x1", "2x2", "3x3", "4x4", "8x8")
TRIGGER_MODES = ("Internal", "Software", "External", "External Start", "External Exposure")
TEMPERATURE_STATUSES = ("Cooler Off", "Stabilised", "Cooling", "Drift", "Not Stabilised", "Fault")
FAN_SPEEDS = ("Off", "Low", "On")
# the coldest the sensor reaches with the fan at each speed, and the air it starts from
COOLING_FLOOR = {"Off": -10.0, "Low": -30.0, "On": -45.0}
AMBIENT = 22.0
COOLING_TIME_CONSTANT = 20.0  # seconds; the real sensors take minutes, tests and demos do not wait
STRIDE_ALIGNMENT = 8  # bytes; rows whose pixels end elsewhere are padded


class CameraException(Exception):
    """An SDK error, with its atcore code in ``err_code`` (as pyAndorSDK3 raises them)."""

    def __init__(self, err_code, detail=""):
        self.err_code = err_code
        super().__init__(f"{atcore.error_name(err_code)} ({err_code}) {detail}".rstrip())


class _Feature:
    def __init__(self, kind, get, set=None, min=None, max=None, options=None, available=None):
        self.kind = kind  # pyAndorSDK3's type names: int float bool enumerated_string string command
        self.get, self.set = get, set
        self.min, self.max = min or get, max or get  # a read-only number's limits are its value
        self.options = options
        self.available = available or (lambda option: True)


class AndorSDK3:
    """Stands in for ``pyAndorSDK3.AndorSDK3``: one simulated camera at index 0."""

    def __init__(self, model=None, time=None, seed=0):
        self._model = model or MODELS["neo"]
        self._time = time or SystemTime()
        self._seed = seed
        self._open = None

    @property
    def DeviceCount(self):
        return 1

    def GetCamera(self, index):
        if index != 0:
            raise CameraException(atcore.DEVICENOTFOUND, f"no simulated camera at index {index}")
        if self._open is not None and self._open.is_open:
            raise CameraException(atcore.DEVICEINUSE, "the simulated camera is already open")
        self._open = SimCamera(self._model, self._time, self._seed)
        return self._open


class SimAcquisition:
    """What ``wait_buffer`` returns: the filled buffer, as pyAndorSDK3's Acquisition holds it."""

    def __init__(self, np_data, config):
        self._np_data = np_data
        self._config = config

    @property
    def image(self):
        c = self._config
        return buffers.decode(self._np_data, c["PixelEncoding"], c["AOIWidth"], c["AOIHeight"], c["AOIStride"])


class SimCamera:
    def __init__(self, model, time, seed=0):
        self._model = model
        self._time = time
        self._scene = Scene(model.sensor_width, model.sensor_height, seed)
        self._serial = f"SIM-{model.name[:4]}-{seed:04d}"
        self._features = self._define_features()
        self._v = {
            "ExposureTime": 0.01, "FrameRate": 10.0, "CycleMode": "Fixed", "FrameCount": 1,
            "TriggerMode": "Internal", "AOIHBin": 1, "AOIVBin": 1, "AOILeft": 1, "AOITop": 1,
            "AOIWidth": model.sensor_width, "AOIHeight": model.sensor_height, "PixelEncoding": "Mono16",
            "SimplePreAmpGainControl": "16-bit (low noise & high well capacity)",
            "ElectronicShutteringMode": "Rolling", "SensorCooling": False,
            "TemperatureControl": model.setpoints[0], "FanSpeed": "On",
            "MetadataEnable": False, "MetadataTimestamp": False, "MetadataFrameInfo": False,
        }
        self._thermal = (AMBIENT, time.now())  # temperature at the last change of cooling, and when
        self._clock_zero = time.now()
        self._buffers = collections.deque()  # host buffers, in the order they were queued
        self._timeline = None  # the running acquisition
        self._stopped = None  # the last one, whose delivered frames can still be collected
        self._config = None
        self._returned = 0  # frames of this acquisition handed to the host
        self._painted = {}  # static scene: id(buffer) -> (weakref to it, the painter whose image, frame it holds)
        self.is_open = True

    # ---- the pyAndorSDK3 attribute surface ----

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        for prefix in ("available_options_", "is_available_", "options_", "min_", "max_", "type_"):
            if name.startswith(prefix):
                return self._helper(prefix, name[len(prefix):])
        feature = self._feature(name)
        if feature.kind == "command":
            return feature.get
        return feature.get()

    def __setattr__(self, name, value):
        if name.startswith("_") or name == "is_open":
            object.__setattr__(self, name, value)
            return
        feature = self._feature(name)
        if feature.set is None or feature.kind == "command":
            raise CameraException(atcore.NOTWRITABLE, f"{name} is read-only")
        if self._timeline is not None and name not in ("ExposureTime", "FrameRate"):
            raise CameraException(atcore.NOTWRITABLE, f"{name} cannot change during an acquisition")
        if feature.kind == "enumerated_string":
            if value not in feature.options():
                raise CameraException(atcore.STRINGNOTIMPLEMENTED, f"{name}: {value!r}")
            if not feature.available(value):
                raise CameraException(atcore.STRINGNOTAVAILABLE, f"{name}: {value!r}")
        elif feature.kind in ("int", "float"):
            numeric = (int, np.integer) if feature.kind == "int" else (int, float, np.integer, np.floating)
            if isinstance(value, bool) or not isinstance(value, numeric):
                raise TypeError(f"{name} takes a{'n' if feature.kind == 'int' else ''} {feature.kind}, not {value!r}")
            if not feature.min() <= value <= feature.max():
                raise CameraException(atcore.OUTOFRANGE, f"{name}: {value} not in [{feature.min()}, {feature.max()}]")
        elif feature.kind == "bool":
            value = bool(value)
        feature.set(value)

    def _feature(self, name):
        feature = self._features.get(name)
        if feature is None or not self.is_open:
            raise AttributeError(f"Camera has no Feature '{name}'")
        return feature

    def _helper(self, prefix, name):
        feature = self._feature(name)
        if prefix == "type_":
            return feature.kind
        if prefix in ("min_", "max_"):
            if feature.kind not in ("int", "float"):
                raise AttributeError(f"Cannot use the '{prefix}' function for feature '{name}'")
            return (feature.min if prefix == "min_" else feature.max)()
        if feature.kind != "enumerated_string":
            raise AttributeError(f"Cannot use the '{prefix}' function for feature '{name}'")
        if prefix == "options_":
            return list(feature.options())
        if prefix == "available_options_":
            return [o for o in feature.options() if feature.available(o)]
        return feature.available  # is_available_X(option)

    def close(self):
        if self._timeline is not None:
            self.AcquisitionStop()
        self._buffers.clear()
        self.is_open = False

    # ---- features ----

    def _define_features(self):
        m = self._model
        v = lambda name: (lambda: self._v[name])  # noqa: E731
        put = lambda name: (lambda value: self._v.__setitem__(name, value))  # noqa: E731
        const = lambda value: (lambda: value)  # noqa: E731
        F = _Feature
        return {
            "ExposureTime": F("float", v("ExposureTime"), self._set_exposure,
                              const(m.exposure_min_s), const(m.exposure_max_s)),
            "FrameRate": F("float", v("FrameRate"), put("FrameRate"), const(1e-3), self._max_frame_rate),
            "ReadoutTime": F("float", self._readout_time),
            "CycleMode": F("enumerated_string", v("CycleMode"), put("CycleMode"),
                           options=const(("Fixed", "Continuous"))),
            "FrameCount": F("int", v("FrameCount"), put("FrameCount"), const(1), const(2**31 - 1)),
            "TriggerMode": F("enumerated_string", v("TriggerMode"), put("TriggerMode"), options=const(TRIGGER_MODES)),
            "SoftwareTrigger": F("command", lambda: None),
            "AOIHBin": F("int", v("AOIHBin"), lambda b: self._set_binning(b, self._v["AOIVBin"]), const(1), const(8)),
            "AOIVBin": F("int", v("AOIVBin"), lambda b: self._set_binning(self._v["AOIHBin"], b), const(1), const(8)),
            "AOIBinning": F("enumerated_string", self._binning, lambda s: self._set_binning(*map(int, s.split("x"))),
                            options=const(BINNINGS)),
            "AOIWidth": F("int", v("AOIWidth"), put("AOIWidth"), const(4),
                          lambda: (m.sensor_width - self._v["AOILeft"] + 1) // self._v["AOIHBin"]),
            "AOIHeight": F("int", v("AOIHeight"), put("AOIHeight"), const(1),
                           lambda: (m.sensor_height - self._v["AOITop"] + 1) // self._v["AOIVBin"]),
            "AOILeft": F("int", v("AOILeft"), put("AOILeft"), const(1),
                         lambda: m.sensor_width - self._v["AOIWidth"] * self._v["AOIHBin"] + 1),
            "AOITop": F("int", v("AOITop"), put("AOITop"), const(1),
                        lambda: m.sensor_height - self._v["AOIHeight"] * self._v["AOIVBin"] + 1),
            "AOIStride": F("int", self._stride),
            "ImageSizeBytes": F("int", self._image_size),
            "SensorWidth": F("int", const(m.sensor_width)),
            "SensorHeight": F("int", const(m.sensor_height)),
            "PixelWidth": F("float", const(m.pixel_size_um)),
            "PixelHeight": F("float", const(m.pixel_size_um)),
            "PixelEncoding": F("enumerated_string", v("PixelEncoding"), put("PixelEncoding"),
                               options=const(buffers.ENCODINGS), available=self._encoding_available),
            "BytesPerPixel": F("float", lambda: buffers.row_bytes(self._v["PixelEncoding"], 2) / 2),
            "SimplePreAmpGainControl": F("enumerated_string", v("SimplePreAmpGainControl"), self._set_preamp,
                                         options=const(tuple(PREAMP_BITS))),
            "BitDepth": F("enumerated_string", lambda: f"{self._bits()} Bit",
                          options=const(("11 Bit", "12 Bit", "16 Bit"))),
            "ElectronicShutteringMode": F("enumerated_string", v("ElectronicShutteringMode"),
                                          put("ElectronicShutteringMode"), options=const(("Rolling", "Global"))),
            "SensorCooling": F("bool", v("SensorCooling"), lambda on: self._thermal_change("SensorCooling", on)),
            "TemperatureControl": F("enumerated_string", v("TemperatureControl"),
                                    lambda s: self._thermal_change("TemperatureControl", s),
                                    options=const(m.setpoints)),
            "FanSpeed": F("enumerated_string", v("FanSpeed"), lambda s: self._thermal_change("FanSpeed", s),
                          options=const(FAN_SPEEDS)),
            "SensorTemperature": F("float", self._temperature),
            "TemperatureStatus": F("enumerated_string", self._temperature_status, options=const(TEMPERATURE_STATUSES)),
            "MetadataEnable": F("bool", v("MetadataEnable"), put("MetadataEnable")),
            "MetadataTimestamp": F("bool", v("MetadataTimestamp"), put("MetadataTimestamp")),
            "MetadataFrameInfo": F("bool", v("MetadataFrameInfo"), put("MetadataFrameInfo")),
            "TimestampClock": F("int", lambda: self._ticks(self._time.now())),
            "TimestampClockFrequency": F("int", const(m.tick_frequency_hz)),
            "TimestampClockReset": F("command", self._reset_clock),
            "MaxInterfaceTransferRate": F("float", self._max_transfer_rate),
            "CameraAcquiring": F("bool", lambda: self._timeline is not None),
            "AcquisitionStart": F("command", self._acquisition_start),
            "AcquisitionStop": F("command", self._acquisition_stop),
            "CameraModel": F("string", const(m.name)),
            "CameraName": F("string", const(f"Simulated {m.name}")),
            "SerialNumber": F("string", const(self._serial)),
            "FirmwareVersion": F("string", const(m.firmware)),
            "InterfaceType": F("string", const(m.interface)),
        }

    def _set_exposure(self, seconds):
        self._v["ExposureTime"] = seconds
        self._v["FrameRate"] = min(self._v["FrameRate"], self._max_frame_rate())

    def _readout_time(self):
        rows = self._v["AOIHeight"] * self._v["AOIVBin"]
        factor = 2 if self._v["ElectronicShutteringMode"] == "Global" else 1
        return factor * self._model.full_frame_readout_s * rows / self._model.sensor_height

    def _max_frame_rate(self):
        """Overlapped rolling readout: the slower of exposing and reading out the AOI's rows."""
        return 1.0 / max(self._v["ExposureTime"], self._readout_time())

    def _binning(self):
        h, v = self._v["AOIHBin"], self._v["AOIVBin"]
        return f"{h}x{v}"

    def _set_binning(self, hbin, vbin):
        if f"{hbin}x{vbin}" not in BINNINGS:
            raise CameraException(atcore.OUTOFRANGE, f"binning {hbin}x{vbin}")
        m = self._model
        self._v["AOIHBin"], self._v["AOIVBin"] = hbin, vbin
        # the AOI keeps its size in super-pixels where the sensor allows, as the cameras do
        self._v["AOIWidth"] = max(4, min(self._v["AOIWidth"], (m.sensor_width - self._v["AOILeft"] + 1) // hbin))
        self._v["AOIHeight"] = max(1, min(self._v["AOIHeight"], (m.sensor_height - self._v["AOITop"] + 1) // vbin))

    def _stride(self):
        raw = buffers.row_bytes(self._v["PixelEncoding"], self._v["AOIWidth"])
        return -(-raw // STRIDE_ALIGNMENT) * STRIDE_ALIGNMENT

    def _image_size(self):
        metadata = buffers.METADATA_BYTES if self._v["MetadataEnable"] else 0
        return self._stride() * self._v["AOIHeight"] + metadata

    def _bits(self):
        return PREAMP_BITS[self._v["SimplePreAmpGainControl"]]

    def _encoding_available(self, encoding):
        """12-bit encodings only for the 11/12-bit gain modes, Mono32 only for the 16-bit one."""
        if encoding in ("Mono12", "Mono12Packed"):
            return self._bits() <= 12
        if encoding == "Mono32":
            return self._bits() == 16
        return True

    def _set_preamp(self, mode):
        self._v["SimplePreAmpGainControl"] = mode
        if not self._encoding_available(self._v["PixelEncoding"]):
            self._v["PixelEncoding"] = "Mono16"

    def _max_transfer_rate(self):
        rate = self._model.link_rate_bytes_per_s
        return rate / self._image_size() if rate else self._max_frame_rate()

    # ---- temperature: relaxes exponentially to the setpoint (or as cold as the fan allows) ----

    def _thermal_target(self):
        if not self._v["SensorCooling"]:
            return AMBIENT
        return max(float(self._v["TemperatureControl"]), COOLING_FLOOR[self._v["FanSpeed"]])

    def _temperature(self):
        start, since = self._thermal
        target = self._thermal_target()
        return target + (start - target) * math.exp(-(self._time.now() - since) / COOLING_TIME_CONSTANT)

    def _thermal_change(self, name, value):
        self._thermal = (self._temperature(), self._time.now())
        self._v[name] = value

    def _temperature_status(self):
        if not self._v["SensorCooling"]:
            return "Cooler Off"
        setpoint = float(self._v["TemperatureControl"])
        temperature = self._temperature()
        if abs(temperature - self._thermal_target()) > 0.5:
            return "Cooling"
        return "Stabilised" if abs(temperature - setpoint) <= 0.5 else "Not Stabilised"

    # ---- timestamps ----

    def _ticks(self, when):
        return round((when - self._clock_zero) * self._model.tick_frequency_hz)

    def _reset_clock(self):
        self._clock_zero = self._time.now()

    # ---- acquisition ----

    def _acquisition_start(self):
        if self._timeline is not None:
            raise CameraException(atcore.NOTWRITABLE, "AcquisitionStart: already acquiring")
        v = self._v
        # preparing the scene costs real time once per configuration: it counts as arming
        self._painter = self._scene.painter(v["AOILeft"], v["AOITop"], v["AOIWidth"], v["AOIHeight"],
                                            v["AOIHBin"], v["AOIVBin"], v["ExposureTime"], 2 ** self._bits() - 1)
        now = self._time.now()
        size = self._image_size()
        self._config = {
            "PixelEncoding": v["PixelEncoding"], "AOIWidth": v["AOIWidth"], "AOIHeight": v["AOIHeight"],
            "AOIStride": self._stride(), "ImageSizeBytes": size,
            "metadata": v["MetadataEnable"],
        }
        exposes = v["TriggerMode"] == "Internal"  # the simulator has no trigger input
        self._timeline = Timeline(
            start=now + self._model.arm_latency_s,
            period=1.0 / v["FrameRate"],
            exposure=v["ExposureTime"],
            readout=self._readout_time(),
            frame_bytes=size,
            memory_bytes=self._model.onboard_memory_bytes,
            link_rate=self._model.link_rate_bytes_per_s,
            frame_limit=(v["FrameCount"] if v["CycleMode"] == "Fixed" else None) if exposes else 0,
        )
        for _ in self._buffers:
            self._timeline.buffer_queued(now)
        self._stopped = None
        self._returned = 0

    def _acquisition_stop(self):
        if self._timeline is not None:
            self._timeline.stop(self._time.now())
        self._stopped, self._timeline = self._timeline, None

    def _check_open(self):
        if not self.is_open:
            raise CameraException(atcore.INVALIDHANDLE, "the camera is closed")

    def queue(self, buf, size):
        """Hand the camera a buffer (a uint8 numpy array of ``size`` bytes) for a coming frame."""
        self._check_open()
        expected = self._config["ImageSizeBytes"] if self._timeline is not None else self._image_size()
        if size != expected:
            raise CameraException(atcore.INVALIDSIZE, f"queued {size} bytes, ImageSizeBytes is {expected}")
        if len(buf) < size:
            raise CameraException(atcore.INVALIDSIZE, f"buffer of {len(buf)} bytes is smaller than {size}")
        self._buffers.append(buf)
        if self._timeline is not None:
            self._timeline.buffer_queued(self._time.now())

    def flush(self):
        """Drop every queued buffer, filled or not. Like the real cameras, only after AcquisitionStop."""
        if self._timeline is not None:
            raise CameraException(atcore.NOTWRITABLE, "flush during an acquisition; stop it first")
        self._buffers.clear()
        self._painted.clear()
        self._stopped = None

    def wait_buffer(self, timeout):
        """The next filled buffer, waiting up to ``timeout`` milliseconds (AT_ERR_TIMEDOUT after)."""
        self._check_open()
        deadline = self._time.now() + timeout / 1000.0
        while True:
            now = self._time.now()
            timeline = self._timeline or self._stopped
            ready = None
            if timeline is not None:
                ready = timeline.delivery_time(self._returned, now)
                if ready is not None and ready <= now:
                    if self._returned == self._model.fault_after_frames:
                        raise CameraException(atcore.COMM, f"lost the link to the camera (simulated fault "
                                                           f"after {self._returned} frames)")
                    return self._deliver(timeline, self._returned)
                timeline.exposed_by(now)
                if timeline.fault is not None and timeline.fault[1] <= now:
                    raise CameraException(atcore.HARDWARE_OVERFLOW,
                                          f"frame {timeline.fault[0]} found on-head memory full")
            if now >= deadline:
                raise CameraException(atcore.TIMEDOUT, f"no frame within {timeout} ms")
            self._time.sleep(min(deadline, ready if ready is not None else deadline) - now)

    def _deliver(self, timeline, k):
        buf = self._buffers.popleft()
        c = self._config
        exposed = timeline.exposed[k]
        height, width, stride, encoding = c["AOIHeight"], c["AOIWidth"], c["AOIStride"], c["PixelEncoding"]
        rows = buffers.rows_view(buf, height, stride)
        if encoding in ("Mono12", "Mono16"):  # paint straight into the buffer: no extra copy
            out = rows[:, : 2 * width].view("<u2")
            if not self._model.static_scene:
                self._painter.paint(k, exposed - timeline.start, out)
            else:
                painted = self._painted.get(id(buf))
                if painted is None or painted[0]() is not buf or painted[1] is not self._painter:
                    self._painter.paint(0, 0.0, out)
                    painted = (weakref.ref(buf), self._painter, 0)
                self._painter.restamp(k, out, painted[2])
                self._painted[id(buf)] = (*painted[:2], k)
        else:
            image = self._painter.paint(k, exposed - timeline.start, np.empty((height, width), np.uint16))
            buffers.encode_into(image, buf, encoding, stride)
        if c["metadata"]:
            buffers.write_metadata(buf, height * stride, self._ticks(exposed), encoding, width, height, stride)
        timeline.delivered_to_host(k)
        self._returned += 1
        return SimAcquisition(buf, c)
