"""``andor``: the everyday jobs from a shell, through the same client a script uses.

    andor snap out.fits [--exposure 10ms]        a snap into a FITS or TIFF file (or .npy)
    andor burst 1000 --fps 50 --spool 100 -o run.h5
                                                a burst into a file (HDF5, OME-Zarr, FITS, TIFF), as it comes
    andor burst 1000 --fps 50 --record run1.h5  a burst recorded on the server (its --data-dir), not read here
    andor recordings                            the recordings on the server
    andor fetch run1.h5 -o run1.h5              a recording on the server read into a local file
    andor status                                the camera, its temperature, the newest burst
    andor get FEATURE / andor set FEATURE VALUE  one SDK3 feature (VALUE read as JSON where it parses)

The server is ``--server HOST:PORT`` or $ANDOR_SERVER (default 127.0.0.1:8000). Errors are one line on
stderr and exit status 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from andor.burst import BurstFrames
from andor.camera import Camera, parse_seconds
from andor.errors import AndorError


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verify: bool | str = args.verify if args.verify not in (None, "") else True
    cam = Camera(args.server, token=args.token, verify=verify)
    try:
        return int(args.run(cam, args) or 0)
    except (AndorError, OSError, ValueError) as e:
        print(f"andor: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("andor: interrupted", file=sys.stderr)
        return 130
    finally:
        cam.close()


def _snap(cam: Camera, args: argparse.Namespace) -> None:
    if args.path.endswith(".npy"):
        np.save(args.path, cam.snap(args.exposure))
    else:
        cam.snap_file(args.path, args.exposure)
    print(args.path)


def _burst(cam: Camera, args: argparse.Namespace) -> None:
    if args.output is None and args.record is None:
        raise ValueError("say where the burst goes: -o FILE (here), --record NAME (on the server), or both")
    frames = cam.burst(args.frames, args.fps, args.spool, trigger=args.trigger, record=args.record)
    plan = frames.plan or {}
    print(f"burst {frames.id}: {args.frames} frames at {frames.fps} fps, {plan.get('regime', 'no plan')}"
          + (f", about {plan['capture_s']:.1f} s" if plan.get("capture_s") else "")
          + (f", recorded on the server as {frames.recording}" if frames.recording else ""), file=sys.stderr)
    if args.output is None:  # the server records it: wait for the burst to end, reading nothing
        while (status := cam.burst_status())["state"] in ("arming", "capturing", "captured"):
            time.sleep(0.5)
        _summarise(status)
        if status.get("error"):
            raise AndorError(status.get("message") or status["error"])
        print(frames.recording)
        return
    _save(frames, args)


def _fetch(cam: Camera, args: argparse.Namespace) -> None:
    _save(cam.recording(args.name), args)


def _save(frames: BurstFrames, args: argparse.Namespace) -> None:
    try:
        frames.save(args.output, progress=args.progress, overwrite=args.overwrite)
    finally:
        _summarise(frames.summary or {})
    print(args.output)


def _summarise(summary: dict[str, Any]) -> None:
    if summary:
        print(f"{summary.get('captured')} frames, {summary.get('late_frames')} late, "
              f"{summary.get('lost_frames')} lost, took {summary.get('took_s') or 0:.2f} s", file=sys.stderr)


def _recordings(cam: Camera, args: argparse.Namespace) -> None:
    for recording in cam.recordings():
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(recording["modified"]))
        state = "  (being written)" if recording["recording"] else ""
        print(f"{recording['name']}\t{recording['bytes'] / 1e6:,.1f} MB\t{when} UTC{state}")


def _status(cam: Camera, args: argparse.Namespace) -> None:
    status: dict[str, Any] = {"camera": cam._get("camera")}
    for name, read in (("temperature", lambda: cam.temperature), ("cooling_status", lambda: cam.cooling_status)):
        try:
            status[name] = read()
        except AndorError as e:
            status[name] = f"unavailable: {e}"
    try:
        status["burst"] = {k: v for k, v in cam.burst_status().items() if k not in ("timebase", "plan", "settings")}
    except AndorError:
        status["burst"] = None
    print(json.dumps(status, indent=2))


def _get(cam: Camera, args: argparse.Namespace) -> None:
    print(json.dumps(cam.get_feature(args.feature)))


def _set(cam: Camera, args: argparse.Namespace) -> None:
    try:
        value = json.loads(args.value)
    except ValueError:
        value = args.value  # an enum option such as Mono16 needs no quotes on a command line
    print(json.dumps(cam.set_feature(args.feature, value)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="andor", description="The andor-twisted camera server from a shell.")
    parser.add_argument("--server", default=os.environ.get("ANDOR_SERVER", "127.0.0.1:8000"),
                        help="HOST:PORT of the server [$ANDOR_SERVER, default 127.0.0.1:8000]")
    parser.add_argument("--token", default=os.environ.get("ANDOR_TOKEN"),
                        help="the server's token for you, when it needs one [$ANDOR_TOKEN]")
    parser.add_argument("--verify", default=os.environ.get("ANDOR_VERIFY"), metavar="CAFILE",
                        help="for an https:// server: the CA file to check its certificate against "
                             "[$ANDOR_VERIFY, default: the system's]")
    jobs = parser.add_subparsers(required=True, metavar="JOB")
    snap = jobs.add_parser("snap", help="a snap into a FITS, TIFF or .npy file")
    snap.add_argument("path")
    snap.add_argument("--exposure", type=parse_seconds, help="exposure time, such as 10ms [the camera's]")
    snap.set_defaults(run=_snap)
    burst = jobs.add_parser("burst", help="a burst into a file, written as it comes")
    burst.add_argument("frames", type=int)
    burst.add_argument("--fps", type=float, help="frame rate [the camera's]")
    burst.add_argument("--spool", type=int, default=0, help="server spool in frames [0: the whole burst]")
    burst.add_argument("--trigger", help="TriggerMode: Internal, External, External Start, ...")
    burst.add_argument("-o", "--output", help="file here: .h5, .zarr, .fits, .tif or .ome.tif")
    burst.add_argument("--record", metavar="NAME", help="record it on the server too: NAME.h5 or NAME.zarr")
    _file_options(burst)
    burst.set_defaults(run=_burst)
    jobs.add_parser("recordings", help="the recordings on the server").set_defaults(run=_recordings)
    fetch = jobs.add_parser("fetch", help="a recording on the server into a file here")
    fetch.add_argument("name")
    fetch.add_argument("-o", "--output", required=True, help="file: .h5, .zarr, .fits, .tif or .ome.tif")
    _file_options(fetch)
    fetch.set_defaults(run=_fetch)
    jobs.add_parser("status", help="the camera and the newest burst").set_defaults(run=_status)
    get = jobs.add_parser("get", help="a feature's value")
    get.add_argument("feature")
    get.set_defaults(run=_get)
    set_ = jobs.add_parser("set", help="set a feature (VALUE as JSON, or a plain string)")
    set_.add_argument("feature")
    set_.add_argument("value")
    set_.set_defaults(run=_set)
    return parser


def _file_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress bar [on a terminal]")


if __name__ == "__main__":
    sys.exit(main())
