"""The burst plan's predictions against measured bursts of the simulated Neo, in each regime.

    .venv/bin/python bench/plan.py

The seed note (../shared/reference/andor-http-bursts.md) saw a Neo with 11 MB frames at 50 fps, 4 GB of
on-head memory and a reader at about 60 MB/s. Here the same camera is simulated with its memory scaled
down to 400 MB (36 frames) and the bursts scaled with it, so that each of the note's regimes shows in
seconds: a burst that fits the spool, one that fits on-head memory read through a small spool, and one
that fills memory and makes the camera slow down. The reader takes frames at 60 MB/s. For each burst
the script asks for the plan (a dry run), runs the burst, and prints both: regime, capture time (the
server's "taking N frames took X s"), late frames.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client"))

import andor  # noqa: E402
from bursts import Server  # noqa: E402

FPS = 50.0
READER = 60e6  # bytes/s
CAMERA = ("--sim-model", "neo", "--sim-onboard-memory", "400MB", "--sim-link-rate", "2GB",
          "--sim-arm-latency", "0.05")
ROWS = [(30, 30), (30, 1), (30, 8), (30, 27), (150, 1), (150, 150)]  # (frames, spool): the note's, scaled


def read_at(frames, rate):
    """Read every frame, at ``rate`` bytes per second at most (the note's shared 100 Mbit/s network)."""
    start, taken = time.monotonic(), 0
    for image in frames:
        taken += image.nbytes
        time.sleep(max(0.0, taken / rate - (time.monotonic() - start)))


def measured_regime(summary, camera_paced_s):
    if summary["lost_frames"]:
        return "overflow"
    if summary["late_frames"]:
        return "throttled"
    return "reader-paced" if summary["took_s"] > 1.2 * camera_paced_s else "camera-paced"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "twistd.log"), CAMERA)
        try:
            cam = andor.Camera(f"127.0.0.1:{server.port}")
            cam.exposure_time(0.005)
            for _ in range(2):  # the simulated scene is drawn, then the arming time measured without it
                list(cam.burst(2, FPS))
            print(f"simulated Neo, full frame, {FPS:g} fps, 400 MB on-head memory, reader {READER / 1e6:g} MB/s")
            print(f"{'frames':>6} {'spool':>5}  {'predicted':>13} {'measured':>13}  {'plan s':>7} {'took s':>7}"
                  f"  {'plan late':>9} {'late':>5}")
            for frames, spool in ROWS:
                plan = cam.plan_burst(frames, FPS, spool, reader_rate=READER)
                burst = cam.burst(frames, FPS, spool, reader_rate=READER)
                read_at(burst, READER)
                summary = burst.summary
                camera_paced = 0.05 + (frames - 1) / FPS
                print(f"{frames:>6} {spool:>5}  {plan['regime']:>13} {measured_regime(summary, camera_paced):>13}  "
                      f"{plan['capture_s']:>7.2f} {summary['took_s']:>7.2f}  {plan['late_frames']:>9} "
                      f"{summary['late_frames']:>5}")
            cam.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
