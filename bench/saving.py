"""Saving a burst while it streams (``frames.save(path)``) against reading the same burst without saving.

    .venv/bin/python bench/saving.py [--rounds 3] [--megabytes 2000] [--dir DIR]

A twistd server on loopback runs a simulated camera; the client reads bursts of full frames
(2560x2160) and of 512x512 frames, either into nothing (the frames are dropped as they come) or into a
file of each format, interleaved, best of ``--rounds`` (noise only slows a run down). Two cameras:

  ideal   as fast as the server can send (the ceiling: loopback, no camera limit)
  neo     the simulated Neo at its fastest (100 fps full frame, 1.1 GB/s; 420 fps at 512 rows) with a link
          that keeps up: a real camera's pace

The rate is pixel MB/s (10^6) from the burst request to the last frame; each burst is about
``--megabytes`` of pixels. The goal (issue 12): HDF5 and Zarr keep at least 0.8 of the unsaved rate.
``srv-h5`` and ``srv-zarr`` record on the server instead (``record=``, nobody reading): request to the
burst done, its last frame on the server's disk.
The files go to ``--dir`` (default: the temporary directory), one at a time, deleted after each run.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client"))

import andor  # noqa: E402
from bursts import Server  # noqa: E402

CAMERAS = {
    "ideal": ("--sim-model", "ideal", "--sim-arm-latency", "0.001"),
    "neo": ("--sim-model", "neo", "--sim-link-rate", "4GB", "--sim-arm-latency", "0.001"),
}
SIZES = [(2560, 2160), (512, 512)]
FORMATS = ["none", "h5", "zarr", "fits", "tif", "srv-h5", "srv-zarr"]


def run(cam, frames, fmt, directory):
    """MB/s of pixels from the request to the last frame, reading a burst into ``fmt`` (none: nowhere)."""
    start = time.perf_counter()
    if fmt.startswith("srv-"):
        burst = cam.burst(frames, None, 64, record=f"bench.{fmt[4:]}")
        while (status := cam.burst_status())["state"] in ("arming", "capturing", "captured"):
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        while any(r["recording"] for r in cam.recordings()):  # the file finished before it goes
            time.sleep(0.01)
        path = os.path.join(directory, burst.recording)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        return frames * status["settings"]["aoi_width"] * status["settings"]["aoi_height"] * 2 / 1e6 / elapsed
    burst = cam.burst(frames, None, 64)
    nbytes = 0
    if fmt == "none":
        for image in burst:
            nbytes += image.nbytes
    else:
        path = os.path.join(directory, f"bench.{fmt}")
        burst.save(path, progress=False, overwrite=True)
        nbytes = frames * burst.summary["settings"]["aoi_width"] * burst.summary["settings"]["aoi_height"] * 2
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return nbytes / 1e6 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=2000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(dir=args.dir, prefix="andor-saving-")
    print(f"best of {args.rounds} rounds, {args.megabytes:g} MB bursts, files in {directory}")
    print(f"{'camera':6s} {'frames':>9s} {'format':6s} {'MB/s':>7s} {'vs none':>8s}  goal (h5, zarr >= 0.8)")
    try:
        for camera, options in CAMERAS.items():
            with tempfile.TemporaryDirectory() as logs:
                server = Server(os.path.join(logs, "twistd.log"), (*options, "--data-dir", directory))
                try:
                    cam = andor.Camera(f"127.0.0.1:{server.port}")
                    cam.exposure_time(1e-5)
                    for width, height in SIZES:
                        cam.aoi({"left": 1, "top": 1, "width": width, "height": height})
                        fastest = cam.get_feature_info("FrameRate")["max"]
                        cam.set_feature("FrameRate", fastest)
                        frames = max(10, int(args.megabytes * 1e6 / (width * height * 2)))
                        run(cam, min(frames, 50), "none", directory)  # warm up: scene drawn, buffers made
                        best = dict.fromkeys(FORMATS, 0.0)
                        for _ in range(args.rounds):
                            for fmt in FORMATS:
                                best[fmt] = max(best[fmt], run(cam, frames, fmt, directory))
                        for fmt in FORMATS:
                            ratio = best[fmt] / best["none"]
                            goal = ("met" if ratio >= 0.8 else "MISSED") if fmt.endswith(("h5", "zarr")) else ""
                            size = f"{width}x{height}"
                            print(f"{camera:6s} {size:>9s} {fmt:6s} {best[fmt]:7.0f} {ratio:8.2f}  {goal}")
                    cam.close()
                finally:
                    server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
