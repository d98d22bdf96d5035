"""The physical parameters of the camera models the simulator can be."""

from dataclasses import dataclass, replace

GB = 1024**3


@dataclass(frozen=True)
class CameraModel:
    name: str
    sensor_width: int
    sensor_height: int
    pixel_size_um: float
    full_frame_readout_s: float  # rolling readout of all rows; fewer rows read faster
    onboard_memory_bytes: int  # 0: no on-head memory; frames the host cannot take overflow
    link_rate_bytes_per_s: float  # the interface; 0 means no limit (the "ideal" benchmark camera)
    arm_latency_s: float  # AcquisitionStart to the first exposure
    interface: str
    tick_frequency_hz: int = 100_000_000
    exposure_min_s: float = 9.7e-6
    exposure_max_s: float = 30.0
    setpoints: tuple = ("-40.00", "-35.00", "-30.00", "-25.00", "-20.00", "-15.00", "-10.00", "-5.00", "0.00")
    firmware: str = "V3.0.1"
    static_scene: bool = False  # the same image every frame, only the frame number changes: costs nothing
    fault_after_frames: int | None = None  # the link fails (AT_ERR_COMM) after this many frames

    def with_overrides(self, onboard_memory=None, link_rate=None, arm_latency=None, fault_after_frames=None):
        """This model with the command line's --sim-* values where given."""
        changes = {}
        if fault_after_frames is not None:
            changes["fault_after_frames"] = fault_after_frames
        if onboard_memory is not None:
            changes["onboard_memory_bytes"] = onboard_memory
        if link_rate is not None:
            changes["link_rate_bytes_per_s"] = link_rate
        if arm_latency is not None:
            changes["arm_latency_s"] = arm_latency
        return replace(self, **changes)


NEO = CameraModel(
    name="DC-152Q-C00-FI",
    sensor_width=2560,
    sensor_height=2160,
    pixel_size_um=6.5,
    full_frame_readout_s=0.01,
    onboard_memory_bytes=4 * GB,
    link_rate_bytes_per_s=255e6,
    arm_latency_s=0.05,
    interface="CL 3 Tap",
)

MODELS = {
    # Neo 5.5: 100 fps full frame, 4 GB on-head memory behind a Camera Link link of about 255 MB/s.
    "neo": NEO,
    # The benchmark camera: a Neo whose sensor reads out instantly (FrameRate up to 1/ExposureTime) over a
    # link without limit, painting a static scene, so a benchmark measures the server and not the camera.
    "ideal": replace(NEO, name="DC-152Q-C00-FI (ideal)", full_frame_readout_s=0.0, link_rate_bytes_per_s=0.0,
                     arm_latency_s=0.001, interface="ideal", static_scene=True),
    # Zyla 4.2 on Camera Link 10-tap: 100 fps full frame, no on-head memory (a slow host overflows it).
    "zyla": CameraModel(
        name="ZYLA-4.2P-CL10",
        sensor_width=2048,
        sensor_height=2048,
        pixel_size_um=6.5,
        full_frame_readout_s=0.01,
        onboard_memory_bytes=0,
        link_rate_bytes_per_s=850e6,
        arm_latency_s=0.03,
        interface="CL 10 Tap",
        setpoints=("0.00",),
    ),
}
