"""Measure the foundation: snap round-trip time through the server, and how fast the simulated camera
produces full frames on one core.

    .venv/bin/python bench/foundation.py [--snaps 50]

Starts its own server (simulated Neo, arming latency 0 so the round trip is the server's and the
network's) on a free loopback port. Numbers depend on the machine; compare within one run.
"""

import argparse
import os
import socket
import subprocess
import sys
import time

import numpy as np


import andor
from andor_twisted.camera import sim
from andor_twisted.camera.driver import aligned_buffer
from andor_twisted.camera.sim.models import MODELS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snap_round_trips(cam, n, exposure):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        cam.snap()
        times.append(time.perf_counter() - start)
    times = np.array(times) - exposure
    return np.median(times), np.percentile(times, 90)


def simulated_rate(model, frames=200, link=True):
    """Frames per second and CPU seconds per frame of the simulator alone, taking full frames through its
    ATCore as the driver does.

    On-head memory is cut to 3 frames, so frames the host was too slow for cannot pile up and
    arrive later in a rush: the rate is what the simulator sustains on this core."""
    model = model.with_overrides(onboard_memory_bytes=3 * 2560 * 2160 * 2, arm_latency_s=0.0,
                                 link_rate_bytes_per_s=None if link else 0.0)
    lib = sim.sdk(model).make_core()
    h = lib.open(0)
    lib.set_float(h, "ExposureTime", 1e-5)
    lib.set_enumerated_string(h, "CycleMode", "Continuous")
    lib.set_float(h, "FrameRate", lib.get_float_max(h, "FrameRate"))
    size = lib.get_int(h, "ImageSizeBytes")
    held = {}
    for _ in range(4):
        buf = aligned_buffer(size)
        held[buf.ctypes.data] = buf
        lib.queue_buffer(h, buf.ctypes.data, size)
    lib.command(h, "AcquisitionStart")
    warm_up = 10  # frames the camera made while the host was busy starting up arrive in a rush: skip them
    for i in range(warm_up + frames):
        pointer, _ = lib.wait_buffer(h, 5000)
        lib.queue_buffer(h, int(lib.ffi.cast("uintptr_t", pointer[0])), size)
        if i == warm_up - 1:
            wall, cpu = time.perf_counter(), time.process_time()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    lib.command(h, "AcquisitionStop")
    lib.close(h)
    return frames / wall, cpu / frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snaps", type=int, default=50)
    args = parser.parse_args()

    port = free_port()
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    server = subprocess.Popen([twistd, "--nodaemon", "--pidfile=", "--logfile=/dev/null", "andor",
                               "--listen", f"tcp:{port}:interface=127.0.0.1", "--sim-arm-latency", "0"])
    try:
        cam = andor.Camera(f"127.0.0.1:{port}")
        for _ in range(100):
            try:
                cam.exposure_time(0.001)
                break
            except andor.AndorError:
                time.sleep(0.1)
        neo = MODELS["neo"]
        print("snap round trip, less the 1 ms exposure (median / 90th percentile; then the part that is the")
        print("modelled camera's readout and Camera Link transfer, the rest is server, HTTP and client):")
        for label, rows, cols in [("512x512", 512, 512), ("2560x2160 full frame", 2160, 2560)]:
            cam.aoi({"left": 1, "top": 1, "width": cols, "height": rows})
            cam.snap()
            median, p90 = snap_round_trips(cam, args.snaps, 0.001)
            modelled = neo.readout_s * rows / neo.sensor_height + rows * cols * 2 / neo.link_rate_bytes_per_s
            print(f"  {label:22s} {median * 1e3:6.1f} ms / {p90 * 1e3:6.1f} ms; camera {modelled * 1e3:5.1f} ms")
        cam.close()
    finally:
        server.terminate()
        server.wait()

    print("simulated Neo, full frame (2560x2160 Mono16), one core:")
    fps, cpu = simulated_rate(MODELS["neo"], link=False)
    print(f"  sensor alone (no link limit): {fps:6.1f} frames/s, {cpu * 1e3:5.1f} ms CPU a frame "
          f"(the modelled sensor's ceiling is 100 frames/s)")
    fps, cpu = simulated_rate(MODELS["neo"], frames=60)
    print(f"  through the 255 MB/s Camera Link: {fps:6.1f} frames/s (the model says {255e6 / 11059240:.1f})")


if __name__ == "__main__":
    main()
