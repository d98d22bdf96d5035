"""The camera models the simulator can be: what each real model implements, its limits, and what it
does when the host is too slow.

Sources (see docs/cameras.md): Andor's hardware manuals for the Neo, Zyla and Sona, the SDK3 feature
availability tables as other drivers record them (Micro-Manager, pyLabLib, LIMA, areaDetector, PYME,
odemis), and pyAndorSDK3 1.22.6. Where no source gives a value (a model string, the size of a Zyla's
on-head memory, a clock frequency) the value here is a stand-in, marked as such, and the server must
not depend on it: it reads everything from the camera at run time.

What a model does when its on-head memory is full (``when_full``) is not settled (../shared/ANDOR.md):

- ``throttle``: the camera exposes the next frame only when a slot frees; frames are late, none lost
  (what the lab's own note saw on a Neo);
- ``abort``: it fires ``BufferOverflowEvent``, ends the acquisition and drops what its memory held;
  later WaitBuffers time out (Micro-Manager, pyLabLib; Zyla USB3);
- ``hang``: the same without the event (areaDetector on a Neo; pyAndorSDK3's framerate_max example);
- ``error``: the frame grabber overflows and WaitBuffer returns AT_ERR_HARDWARE_OVERFLOW (Camera Link
  and CoaXPress cameras without on-head memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

GIB = 1024**3
WHEN_FULL = ("throttle", "abort", "hang", "error")
# every PixelEncoding option SDK3 lists, implemented or not, in its index order
ENCODING_OPTIONS = ("Mono12", "Mono12Packed", "Mono16", "RGB8Packed", "Mono12Coded", "Mono12CodedPacked",
                    "Mono22Parallel", "Mono22PackedParallel", "Mono8", "Mono32")
TRIGGER_MODES = ("Internal", "Software", "External", "External Start", "External Exposure", "Advanced")
TEMPERATURE_STATUSES = ("Cooler Off", "Stabilised", "Cooling", "Drift", "Not Stabilised", "Fault",
                        "Sensor Over Temperature")
EVENTS = ("ExposureEndEvent", "ExposureStartEvent", "RowNExposureEndEvent", "RowNExposureStartEvent",
          "EventsMissedEvent", "BufferOverflowEvent")
ZYLA_GAINS = (("12-bit (high well capacity)", 12), ("12-bit (low noise)", 12),
              ("16-bit (low noise & high well capacity)", 16))


@dataclass(frozen=True)
class CameraModel:
    key: str  # the --sim-model name
    name: str  # CameraModel
    serial_prefix: str
    sensor_width: int
    sensor_height: int
    pixel_size_um: float
    interface: str | None  # InterfaceType; None: not implemented
    link_rate_bytes_per_s: float  # sustained rate to the host; 0: no limit
    onboard_memory_bytes: int  # 0: none
    when_full: str  # see WHEN_FULL
    arm_latency_s: float  # AcquisitionStart to the first exposure
    # PixelReadoutRate options and the full-sensor rolling readout time at each (rows scale it)
    readout_rates: tuple[tuple[str, float], ...]
    gain_feature: str | None  # "SimplePreAmpGainControl", "GainMode" or None
    gains: tuple[tuple[str, int], ...]  # gain options and the bit depth each gives
    encodings: frozenset[str]  # PixelEncoding options this model implements
    binnings: tuple[str, ...] = ("1x1", "2x2", "3x3", "4x4", "8x8")  # AOIBinning; () not implemented
    hv_binning: bool = True  # AOIHBin/AOIVBin implemented
    shutter_modes: tuple[str, ...] = ("Rolling",)
    setpoints: tuple[str, ...] = ()  # TemperatureControl options; () not implemented
    setpoint_writable: bool = True
    fan_speeds: tuple[str, ...] = ("Off", "On")
    trigger_modes: frozenset[str] = frozenset(TRIGGER_MODES[:5])  # implemented of TRIGGER_MODES
    events: bool = True  # EventSelector and the event features
    event_enable: bool = True  # EventEnable (CoaXPress cameras lack it)
    metadata: bool = True  # MetadataEnable, MetadataTimestamp, TimestampClock*
    irig: bool = False  # MetadataIRIG
    stride: bool = True  # AOIStride implemented
    aoi_writable: bool = True
    aoi_min_width: int = 4
    aoi_min_height: int = 1
    aoi_even_height: bool = False
    full_aoi_control: bool | None = True  # FullAOIControl's value; None: not implemented
    overlap: bool = True  # Overlap implemented
    exposure_min_s: float = 9.7e-6
    exposure_max_s: float = 30.0
    tick_frequency_hz: int = 100_000_000  # stand-in: no source gives it; drivers read it
    firmware: str | None = "V3.0.1"  # stand-in
    camera_name: str | None = None
    family: str | None = "Andor sCMOS"
    cooling_floor: dict[str, float] = field(default_factory=lambda: {"Off": -10.0, "Low": -30.0, "On": -45.0})
    extras: tuple[tuple[str, str, object], ...] = ()  # (feature, kind, default) present without modelled effect
    # ---- simulation only ----
    static_scene: bool = False  # the same image every frame but its number: a benchmark camera
    fault_after_frames: int | None = None  # the link fails (AT_ERR_COMM) after this many frames
    nodata_every: int = 0  # every Nth WaitBuffer answers AT_ERR_NODATA at once (as real installs do)
    corrupt_metadata_at: int | None = None  # this frame's metadata blocks are garbage
    clock_drift_ppm: float = 0.0  # the camera clock's rate error against the host's
    trigger_rate_hz: float = 0.0  # the simulated external trigger source; 0: no triggers come

    def with_overrides(self, **changes: object) -> CameraModel:
        """This model with the command line's --sim-* values where given (None: keep the model's)."""
        kept: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}  # replace() checks the names
        return replace(self, **kept)

    @property
    def readout_s(self) -> float:
        """Full-sensor rolling readout at the fastest rate."""
        return min(seconds for _, seconds in self.readout_rates)


_COMMON_EXTRAS = (("SpuriousNoiseFilter", "bool", 1), ("StaticBlemishCorrection", "bool", 1),
                  ("AccumulateCount", "int", 1), ("VerticallyCentreAOI", "bool", 0), ("CameraPresent", "bool", 1))

# Neo 5.5: 100 fps full frame into 4 GB of on-head memory, behind a Camera Link 3-tap link.
NEO = CameraModel(
    key="neo", name="DC-152Q-C00-FI", serial_prefix="SCC", camera_name="Neo",
    sensor_width=2560, sensor_height=2160, pixel_size_um=6.5,
    interface="CL 3 Tap", link_rate_bytes_per_s=255e6, onboard_memory_bytes=4 * GIB, when_full="throttle",
    arm_latency_s=0.05,
    readout_rates=(("100 MHz", 0.028), ("200 MHz", 0.014), ("280 MHz", 0.010)),
    gain_feature="SimplePreAmpGainControl",
    gains=(("11-bit (high well capacity)", 11), ("11-bit (low noise)", 11),
           ("16-bit (low noise & high well capacity)", 16)),
    encodings=frozenset({"Mono12", "Mono12Packed", "Mono16", "Mono32"}),
    hv_binning=False, shutter_modes=("Rolling", "Global"),
    setpoints=("-15.00", "-20.00", "-25.00", "-30.00", "-35.00", "-40.00"),
    fan_speeds=("Off", "Low", "On"), trigger_modes=frozenset(TRIGGER_MODES),
    extras=_COMMON_EXTRAS,
)

_ZYLA_EXTRAS = _COMMON_EXTRAS + (
    ("RollingShutterGlobalClear", "bool", 0), ("FastAOIFrameRateEnable", "bool", 0),
    ("ExternalTriggerDelay", "float", 0.0), ("ScanSpeedControlEnable", "bool", 0),
    ("AlternatingReadoutDirection", "bool", 0),
    ("SensorReadoutMode", "enum", ("Bottom Up Sequential", "Bottom Up Simultaneous", "Centre Out Simultaneous",
                                   "Outside In Simultaneous", "Top Down Sequential", "Top Down Simultaneous")),
    ("AOILayout", "enum", ("Image", "Multitrack")),
)

# Zyla 4.2 PLUS on Camera Link 10-tap: the link carries the sensor's 100 fps; no on-head memory to speak
# of, so a host that falls behind overflows the frame grabber. The model string is a stand-in.
ZYLA = CameraModel(
    key="zyla", name="ZYLA-4.2P-CL10", serial_prefix="VSC", camera_name="Zyla",
    sensor_width=2048, sensor_height=2048, pixel_size_um=6.5,
    interface="CL 10 Tap", link_rate_bytes_per_s=850e6, onboard_memory_bytes=0, when_full="error",
    arm_latency_s=0.03,
    readout_rates=(("100 MHz", 0.0253), ("270 MHz", 0.0100)),
    gain_feature="SimplePreAmpGainControl", gains=ZYLA_GAINS,
    encodings=frozenset({"Mono12", "Mono12Packed", "Mono16", "Mono32"}),
    setpoints=("0.00",), setpoint_writable=False, aoi_even_height=True,
    cooling_floor={"Off": 5.0, "On": 0.0}, extras=_ZYLA_EXTRAS,
)

MODELS = {
    "neo": NEO,
    "zyla": ZYLA,
    # Zyla 4.2 PLUS over USB 3: about 40 fps of 16-bit full frames reach the host; pyLabLib puts its
    # on-head memory "on the order of 1 GB" (a stand-in); when it fills the acquisition aborts.
    "zyla-usb3": replace(ZYLA, key="zyla-usb3", name="ZYLA-4.2P-USB3", interface="USB3",
                         link_rate_bytes_per_s=335e6, onboard_memory_bytes=1 * GIB, when_full="abort"),
    # Zyla 5.5 over USB 3: the Neo's sensor, rolling and global shutter, about 30 fps of 16-bit full
    # frames to the host, about 146 full frames of on-head memory (a lab's measurement).
    "zyla5.5": replace(ZYLA, key="zyla5.5", name="ZYLA-5.5-USB3", sensor_width=2560, sensor_height=2160,
                       interface="USB3", link_rate_bytes_per_s=335e6, onboard_memory_bytes=146 * 11_059_200,
                       when_full="abort", readout_rates=(("100 MHz", 0.028), ("280 MHz", 0.010)),
                       shutter_modes=("Rolling", "Global"), aoi_even_height=False),
    # Sona 4.2B-11 (back-illuminated, USB 3): GainMode instead of SimplePreAmpGainControl, readout rate
    # and shutter fixed by the gain mode, AOIs from 25 pixels wide; about 40 fps sustained over USB 3.
    # Its on-head memory is not documented: 1 GiB is a stand-in.
    "sona": CameraModel(
        key="sona", name="SONA-4BV11", serial_prefix="CSC", camera_name="Sona",
        sensor_width=2048, sensor_height=2048, pixel_size_um=11.0,
        interface="USB3", link_rate_bytes_per_s=335e6, onboard_memory_bytes=1 * GIB, when_full="abort",
        arm_latency_s=0.03, readout_rates=(("100 MHz", 0.0135),),
        gain_feature="GainMode",
        gains=(("16-bit (high dynamic range)", 16), ("12-bit (low noise)", 12), ("11-bit (high speed)", 11)),
        encodings=frozenset({"Mono12", "Mono12Packed", "Mono16", "Mono32"}),
        setpoints=("-25.00",), setpoint_writable=False, aoi_min_width=25, extras=_COMMON_EXTRAS,
    ),
    # Balor 17F-12 (CoaXPress): 54 fps at 4128 x 4104, IRIG-B time stamps; the frame grabber overflows
    # when the host falls behind; EventEnable is missing on CoaXPress cameras. The model string is a stand-in.
    "balor": CameraModel(
        key="balor", name="BALOR-17F-12", serial_prefix="BSC", camera_name="Balor",
        sensor_width=4128, sensor_height=4104, pixel_size_um=12.0,
        interface="CoaXPress", link_rate_bytes_per_s=2.0e9, onboard_memory_bytes=0, when_full="error",
        arm_latency_s=0.03, readout_rates=(("310 MHz", 0.0185),),
        gain_feature="SimplePreAmpGainControl", gains=ZYLA_GAINS,
        encodings=frozenset({"Mono12", "Mono12Packed", "Mono16", "Mono32"}),
        setpoints=("-25.00",), setpoint_writable=False, event_enable=False, irig=True, extras=_COMMON_EXTRAS,
    ),
    # The benchmark camera: a Neo whose sensor reads out instantly over a link without limit, painting a
    # static scene, so a benchmark measures the server and not the camera.
    "ideal": replace(NEO, key="ideal", name="DC-152Q-C00-FI (ideal)", readout_rates=(("280 MHz", 0.0),),
                     link_rate_bytes_per_s=0.0, arm_latency_s=0.001, interface="ideal", static_scene=True),
}

# The SDK's own software camera, two of which follow the real cameras in DeviceCount. It has no
# metadata, no AOIStride, no TemperatureControl and a fixed AOI; no Mono16.
SIMCAM = CameraModel(
    key="simcam", name="SIMCAM CMOS", serial_prefix="SIMCAM", sensor_width=2560, sensor_height=2160,
    pixel_size_um=6.5, interface=None, link_rate_bytes_per_s=0.0, onboard_memory_bytes=0, when_full="hang",
    arm_latency_s=0.0, readout_rates=(("550 MHz", 0.01),), gain_feature=None, gains=(("", 16),),
    encodings=frozenset({"Mono12", "Mono32"}), binnings=(), shutter_modes=("Rolling",),
    trigger_modes=frozenset({"Internal", "Advanced"}), events=False, metadata=False, stride=False,
    aoi_writable=False, full_aoi_control=None, overlap=False, firmware=None, family=None,
    fan_speeds=("Off", "Low", "On"), extras=(("TargetSensorTemperature", "float", 0.0),
                                             ("SynchronousTriggering", "bool", 0)),
)
