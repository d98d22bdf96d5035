"""Bursts end to end against raw TCP, at every frame size and spool, with a viewer watching, with the
control API timed throughout: one table, with the targets of issue 13 and the ratio achieved.

    .venv/bin/python bench/bursts.py [--rounds 2] [--quick] [--save FILE] [--table FILE] [--profile DIR]

Each configuration first runs a 10-frame burst that is not measured (the simulated camera prepares its
scene once per configuration). Then the runs, interleaved, --rounds times (the machine is shared and
noise only slows a run down, so the table shows the best round):

  raw      the ceiling: one process ``sendall``s a preallocated frame (8-byte length + the pixels) in a
           loop, another ``recv_into``s a preallocated buffer. TCP_NODELAY at both ends. No allocation.
  burst    the real path: a twistd server (simulated ``ideal`` camera at its maximum frame rate, minimum
           exposure, or the simulated Neo at 100 fps full frame, link-paced) -> burst spool -> WebSocket ->
           ``andor.Camera.burst()`` yielding a new numpy array per frame in a client process. Spool 8,
           and spool 0 (the whole burst: the client's default).
  +viewer  the same burst while a viewer watches the live stream (``/stream/live``, 1024x1024 display,
           acknowledging each frame as the browser does): how many frames it saw during the capture.

Columns:
  first s    burst request to the first frame in the reader
  total s    burst request to the last frame in the reader
  req f/s    frames / total s: the rate from the request to the last frame
  frames/s, MB/s   from the first frame to the last (pixel bytes, 10^6): how fast the reader drained
  CPU s/GB   CPU seconds (user + sys, all threads) of sender and receiver over that window, per 10^9 pixel
             bytes (from /proc/<pid>/stat)
  over MB    the server's peak resident memory during the run, less its resident memory before the run
             and less what the spool held at its fullest and the camera's buffers (sampled every 10 ms)
  temp p99   99th percentile of GET /api/temperature, polled every 20 ms during the run, ms
  viewer     frames the watching viewer received while the burst ran

With --profile DIR, the 512x512 spool-0 and 64x64 bursts run under py-spy (pip install py-spy),
sampling the server's CPU; DIR gets the collapsed stacks and the script prints the busiest functions.

The server runs from this checkout (PYTHONPATH=the repo), and so does the client (the repo's client/ first
on its path): the numbers are those of the code in the work tree.
"""

import argparse
import collections
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's server package, for what it may hold beyond the spool
from andor_twisted.acquisition.burst import camera_buffers  # noqa: E402
from andor_twisted.protocol.frames import message_bytes  # noqa: E402
BIN = os.path.dirname(sys.executable)
IDEAL = ("--sim-model", "ideal", "--sim-arm-latency", "0")
NEO = ("--sim-model", "neo")
POLL_S = 0.02  # the control poller's pause between requests


# ---- helpers for every process ----

def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far, all its threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Window:
    """Wall time and both processes' CPU from the first of ``count`` frames received to the last."""

    def __init__(self, sender_pid, count):
        self.sender_pid = sender_pid
        self.count = count
        self.started = time.perf_counter()
        self.frames = 0

    def frame(self):
        """Call once a frame is in."""
        self.frames += 1
        if self.frames == 1:
            self.first = self._sample()
        if self.frames == self.count:
            self.last = self._sample()

    def _sample(self):
        return time.perf_counter(), cpu_seconds(self.sender_pid), cpu_seconds(os.getpid())

    def report(self, **extra):
        """Print the result as one JSON line (the receiver's only output)."""
        assert self.frames == self.count, f"{self.frames} frames of {self.count}"
        first, last = self.first, self.last
        result = {"frames": self.count, "seconds": last[0] - first[0], "cpu_send": last[1] - first[1],
                  "cpu_recv": last[2] - first[2], "first_seconds": first[0] - self.started,
                  "total_seconds": last[0] - self.started, **extra}
        print(json.dumps(result), flush=True)


def read_exactly(sock, view):
    while len(view):
        n = sock.recv_into(view)
        if n == 0:
            raise ConnectionError("the sender closed the connection early")
        view = view[n:]


# ---- the processes: each runs this file with a role as its first argument ----

def raw_send(nbytes, count):
    """Send ``count`` frames: an 8-byte length and ``nbytes`` bytes, from one preallocated buffer."""
    frame = bytearray(8 + nbytes)
    struct.pack_into("<Q", frame, 0, nbytes)
    frame[8:] = np.arange(nbytes // 2, dtype="<u2").tobytes()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    server.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    view = memoryview(frame)
    for _ in range(count):
        conn.sendall(view)
    conn.recv(1)  # the receiver closes once it has everything
    conn.close()


def raw_recv(port, nbytes, count, sender_pid):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head, body = bytearray(8), bytearray(nbytes)
    window = Window(sender_pid, count)
    for _ in range(count):
        read_exactly(sock, memoryview(head))
        read_exactly(sock, memoryview(body)[:struct.unpack("<Q", head)[0]])
        window.frame()
    window.report()
    sock.close()


def burst_recv(port, width, height, count, spool, fps, server_pid):
    """Set the AOI, the shortest exposure and the frame rate (0: the fastest), then read one burst."""
    import andor

    cam = andor.Camera(f"127.0.0.1:{port}")
    cam.aoi({"left": 1, "top": 1, "width": width, "height": height})
    cam.exposure_time(cam.get_feature_info("ExposureTime")["min"])
    fps = fps or cam.get_feature_info("FrameRate")["max"]
    window = Window(server_pid, count)
    frames = cam.burst(count, fps, serverSpool=spool)
    for image in frames:  # noqa: B007 (the last image is checked below)
        window.frame()
    assert image.shape == (height, width), image.shape
    summary = frames.summary
    window.report(fps=fps, state=summary["state"], spool_capacity=summary["spool_capacity"],
                  late_frames=summary["late_frames"], high_water_bytes=summary["high_water_bytes"],
                  took_s=summary["took_s"])


ROLES = {"raw-send": raw_send, "raw-recv": raw_recv, "burst-recv": burst_recv}


# ---- the parent: starting processes and running the methods ----

def child(role, *args, prefix=(), **popen):
    """This file, run as ``role`` in a new process, with the checkout's packages first on its path."""
    # numpy's OpenBLAS threads spin for about 0.1 s of CPU once started; a process that sends at once
    # (raw TCP's) would be measured against its own spinning thread on a 2-core machine
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "client")]), OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen([*prefix, sys.executable, os.path.abspath(__file__), role, *map(str, args)],
                            stdout=subprocess.PIPE, text=True, env=env, **popen)


def receive(proc):
    """The JSON result line of a receiver process, once it has exited."""
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(proc.args)} failed (exit status {proc.returncode})")
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])  # py-spy talks too


def run_raw(width, height, count):
    nbytes = width * height * 2
    sending = child("raw-send", nbytes, count)
    try:
        port = int(sending.stdout.readline())
        return receive(child("raw-recv", port, nbytes, count, sending.pid))
    finally:
        sending.terminate()
        sending.wait()


class Server:
    """``twistd andor`` with a simulated camera on a free loopback port, until ``stop()``."""

    def __init__(self, log, args=IDEAL):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=REPO)
        self.proc = subprocess.Popen([os.path.join(BIN, "twistd"), "-n", "--pidfile=", f"--logfile={log}",
                                      "andor", "--listen", f"tcp:{self.port}:interface=127.0.0.1", *args],
                                     env=env, stdout=subprocess.DEVNULL)
        self.log = log
        self.pid = self.proc.pid
        self._wait_ready()

    def _wait_ready(self, deadline_s=60):
        """Poll the API until the camera is open."""
        import andor

        cam = andor.Camera(f"127.0.0.1:{self.port}", timeout=5)
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                cam.get_feature_info("FrameRate")
                break
            except andor.AndorError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {deadline_s} s; see {self.log}") from None
            try:
                self.proc.wait(timeout=0.05)  # the pause between polls, or the news that it died
                raise RuntimeError(f"the server exited with status {self.proc.returncode}; see {self.log}")
            except subprocess.TimeoutExpired:
                pass
        cam.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


SCRAPE_S = None  # --scrape: also GET /metrics and /api/health this often during every run


class Poller(threading.Thread):
    """While a run lasts: GET /api/temperature every POLL_S (its latency) and the server's resident memory;
    with --scrape, /metrics and /api/health every SCRAPE_S as Prometheus and a monitor would."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.rss_before = rss_bytes(server.pid)
        self.peak_rss = self.rss_before
        self.latencies = []
        self._done = threading.Event()
        self._memory = threading.Thread(target=self._sample_memory, daemon=True)
        self._memory.start()
        self.start()

    def _sample_memory(self):
        while not self._done.wait(0.01):
            self.peak_rss = max(self.peak_rss, rss_bytes(self.server.pid))

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        next_scrape = time.perf_counter()
        while not self._done.wait(POLL_S):
            started = time.perf_counter()
            conn.request("GET", "/api/temperature")
            conn.getresponse().read()
            self.latencies.append(time.perf_counter() - started)
            if SCRAPE_S and started >= next_scrape:
                next_scrape = started + SCRAPE_S
                for path in ("/metrics", "/api/health"):
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, f"GET {path} answered {response.status}"
        conn.close()

    def finish(self):
        self._done.set()
        self.join()
        self._memory.join()
        return {"temp_p99_ms": 1e3 * float(np.percentile(self.latencies, 99)) if self.latencies else None,
                "temp_polls": len(self.latencies), "rss_over": self.peak_rss - self.rss_before}


class Watcher(threading.Thread):
    """A viewer of the live stream, acknowledging each frame as the browser does; counts its frames."""

    def __init__(self, server, display=(1024, 1024)):
        import websocket

        super().__init__(daemon=True)
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/stream/live?width={display[0]}&height={display[1]}", timeout=30)
        self.frames = 0  # frames of a burst (not of the live view's own acquisition)
        self._done = threading.Event()
        self.start()

    def run(self):
        import websocket

        self.ws.settimeout(0.1)
        while not self._done.is_set():
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_BINARY:
                self.frames += struct.unpack_from("<I", data, 8)[0] != 0  # the burst id: 0 is the live view
                self.ws.send(json.dumps({"ack": struct.unpack_from("<Q", data, 16)[0]}))

    def finish(self):
        self._done.set()
        self.join()
        self.ws.close()


# ---- the runs ----

Run = collections.namedtuple("Run", "key label camera width height frames spool fps viewer")


def runs(quick):
    """What the table shows: (key, label, camera, width, height, frames, spool, fps, viewer)."""
    scale = 0.5 if quick else 1.0
    n = lambda frames: max(10, int(frames * scale))  # noqa: E731
    out = []
    for width, height, frames in ((2560, 2160, 300), (512, 512, 3000), (64, 64, 20000)):
        size = f"{width}x{height}"
        out.append(Run(f"raw {size}", f"{size} raw TCP", "raw", width, height, n(frames), None, 0, False))
        for spool in (8, 0):
            out.append(Run(f"{size} s{spool}", f"{size} x{n(frames)} spool {spool}", "ideal", width, height,
                           n(frames), spool, 0, False))
    out.append(Run("512x512 s0 viewer", f"512x512 x{n(3000)} spool 0 +viewer", "ideal", 512, 512, n(3000), 0, 0,
                   True))
    for spool in (8, 0):
        out.append(Run(f"neo s{spool}", f"Neo 100fps full x{n(60)} spool {spool}", "neo", 2560, 2160, n(60),
                       spool, 100.0, False))
    return out


def measure(rounds, quick, log_dir, only=None):
    """{run key: (run, [result of each round])}: the runs interleaved, round after round (only the runs
    whose keys ``only`` lists, if it is given)."""
    plan = [run for run in runs(quick) if only is None or run.key in only]
    results = {run.key: (run, []) for run in plan}
    servers = {"ideal": Server(os.path.join(log_dir, "ideal.log"), IDEAL),
               "neo": Server(os.path.join(log_dir, "neo.log"), NEO)}
    try:
        for run in plan:  # the simulator prepares its scene once per configuration: not what is measured
            if run.camera != "raw":
                one(run._replace(frames=10, viewer=False), servers)
        for _ in range(rounds):
            for run in plan:
                result = one(run, servers)
                results[run.key][1].append(result)
                print(f"  {run.label:34s} {result['frames'] / result['seconds']:9.0f} frames/s  first "
                      f"{result['first_seconds']:.3f} s  total {result['total_seconds']:.2f} s", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return results


def one(run, servers):
    if run.camera == "raw":
        return run_raw(run.width, run.height, run.frames)
    server = servers[run.camera]
    poller = Poller(server)
    watcher = Watcher(server) if run.viewer else None
    try:
        result = receive(child("burst-recv", server.port, run.width, run.height, run.frames, run.spool, run.fps,
                               server.pid))
        if watcher:
            result["viewer_frames"] = watcher.frames
    finally:
        if watcher:
            watcher.finish()
        result_poll = poller.finish()
    result.update(result_poll)
    frame = run.width * run.height * 2
    held_by_camera = camera_buffers(message_bytes("u2", run.height, run.width)) * frame
    result["over_bytes"] = result["rss_over"] - result["high_water_bytes"] - held_by_camera
    return result


# ---- the table ----

def best(results):
    """Per run, its best round: the fastest request to last frame (raw: the highest frames/s); the
    control latency and memory are the worst of the rounds."""
    out = {}
    for key, (run, rounds) in results.items():
        if run.camera == "raw":
            r = dict(max(rounds, key=lambda r: r["frames"] / r["seconds"]))
        else:
            r = dict(min(rounds, key=lambda r: r["total_seconds"]))
            r["temp_p99_ms"] = max(x["temp_p99_ms"] or 0 for x in rounds)
            r["over_bytes"] = max(x["over_bytes"] for x in rounds)
        out[key] = (run, r)
    return out


def report(results, rounds):
    table = best(results)
    print()
    print(f"best of {rounds} rounds (fastest request to last frame; raw: highest rate); temp p99 and over MB: "
          f"the worst round")
    print(f"{'run':36s} {'first s':>7s} {'total s':>7s} {'req f/s':>8s} {'frames/s':>9s} {'MB/s':>6s} "
          f"{'CPU s/GB':>8s} {'over MB':>7s} {'temp p99 ms':>11s} {'viewer':>6s}")
    for run, r in table.values():
        gb = r["frames"] * run.width * run.height * 2 / 1e9
        cells = [f"{run.label:36s}",
                 f"{r['first_seconds']:7.3f}" if run.camera != "raw" else f"{'':7s}",
                 f"{r['total_seconds']:7.2f}" if run.camera != "raw" else f"{'':7s}",
                 f"{r['frames'] / r['total_seconds']:8.0f}" if run.camera != "raw" else f"{'':8s}",
                 f"{r['frames'] / r['seconds']:9.0f}", f"{gb * 1e3 / r['seconds']:6.0f}",
                 f"{(r['cpu_send'] + r['cpu_recv']) / gb:8.2f}"]
        if run.camera != "raw":
            cells += [f"{r['over_bytes'] / 1e6:7.0f}", f"{r['temp_p99_ms']:11.1f}",
                      f"{r['viewer_frames']:6d}" if run.viewer else ""]
        print(" ".join(cells))
    print()
    if len(table) < len(runs(False)):
        return  # --only: some targets lack their runs
    print(f"{'targets (issue 13)':60s} {'achieved':>9s}   {'target':10s}  verdict")
    for name, value, target, ok in targets(table):
        print(f"  {name:58s} {value:9.2f}   {target:10s}  {'meets' if ok else 'MISSES'}")


def targets(table):
    """(what, achieved, target, met) for each goal of issue 13."""
    r = {key: r for key, (run, r) in table.items()}
    rate = lambda key: r[key]["frames"] / r[key]["seconds"]  # noqa: E731
    size = {key: run.width * run.height * 2 for key, (run, _) in table.items()}
    cpu = lambda key: (r[key]["cpu_send"] + r[key]["cpu_recv"]) / (r[key]["frames"] * size[key] / 1e9)  # noqa: E731
    out = []
    for name, s8, s0 in (("2560x2160", "2560x2160 s8", "2560x2160 s0"), ("512x512", "512x512 s8", "512x512 s0"),
                         ("Neo 100fps full", "neo s8", "neo s0")):
        first = max(r[s8]["first_seconds"], r[s0]["first_seconds"])
        out.append((f"pipelining {name}: first frame s (spool 8, 0)", first, "<= 0.25", first <= 0.25))
        ratio = r[s0]["total_seconds"] / r[s8]["total_seconds"]
        out.append((f"pipelining {name}: total spool 0 / spool 8", ratio, "<= 1.25", ratio <= 1.25))
    for key in ("64x64 s8", "64x64 s0"):
        fps = r[key]["frames"] / r[key]["total_seconds"]
        out.append((f"tiny frames {key}: frames/s, request to last frame", fps, ">= 20000", fps >= 20000))
    small = rate("512x512 s8") / rate("raw 512x512")
    out.append(("small frames 512x512 spool 8: MB/s / raw TCP", small, ">= 0.75", small >= 0.75))
    full = rate("2560x2160 s8") / rate("raw 2560x2160")
    out.append(("full frames spool 8: MB/s / raw TCP", full, ">= 0.90", full >= 0.9))
    full_cpu = cpu("2560x2160 s8") / cpu("raw 2560x2160")
    out.append(("full frames spool 8: CPU per GB / raw TCP", full_cpu, "<= 1.30", full_cpu <= 1.3))
    over = max(x["over_bytes"] for key, x in r.items() if "over_bytes" in x) / 1e6
    out.append(("server memory beyond spool + camera buffers, MB", over, "< 100", over < 100))
    watched = r["512x512 s0 viewer"]
    slowed = watched["total_seconds"] / r["512x512 s0"]["total_seconds"]
    out.append(("watching: total with viewer / without (512x512 spool 0)", slowed, "<= 1.10", slowed <= 1.1))
    out.append(("watching: frames the viewer saw during the burst", watched["viewer_frames"], ">= 1",
                watched["viewer_frames"] >= 1))
    p99 = max(x["temp_p99_ms"] for x in r.values() if "temp_p99_ms" in x)
    out.append(("control: p99 of GET /api/temperature, ms (worst run)", p99, "< 20", p99 < 20))
    return out


# ---- --profile: where the server spends its CPU ----

def profile(directory, rate=250):
    """Run the 512x512 and 64x64 spool-0 bursts under py-spy, sampling the server; print a summary."""
    if not os.path.exists(os.path.join(BIN, "py-spy")):
        sys.exit(f"--profile needs py-spy: {os.path.join(BIN, 'pip')} install py-spy")
    os.makedirs(directory, exist_ok=True)
    server = Server(os.path.join(directory, "twistd.log"))
    try:
        for run in runs(quick=False):
            if run.key not in PROFILED:
                continue
            out = os.path.join(directory, f"server-{run.key.replace(' ', '-')}.txt")
            spy = subprocess.Popen([os.path.join(BIN, "py-spy"), "record", "--threads", "-r", str(rate), "-f", "raw",
                                    "--nonblocking", "-o", out, "--pid", str(server.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                result = one(run, {"ideal": server})
            finally:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile and exits
                spy.wait()
            print(f"\n{run.label}: {result['frames'] / result['seconds']:.0f} frames/s under py-spy, "
                  f"{result['total_seconds']:.2f} s from the burst request")
            summarize(out)
    finally:
        server.stop()


PROFILED = tuple(os.environ.get("PROFILED", "512x512 s0,64x64 s8,64x64 s0").split(","))
IDLE = ("Condition.wait (threading.py", "EPollReactor.doPoll")


def summarize(path, top=15):
    """The busiest threads and functions (self time) of py-spy's collapsed stacks at ``path``."""
    own, threads = collections.Counter(), collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            frames, n = stack.split(";"), int(n)
            if frames[-1].startswith(IDLE):
                continue
            total += n
            threads[frames[0]] += n
            own[frames[-1]] += n
    print(f"  {total} busy samples; threads: " + ", ".join(f"{t} {n / total:.0%}" for t, n in threads.most_common(3)))
    for frame, n in own.most_common(top):
        print(f"    {n / total:5.1%}  {frame}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        ROLES[sys.argv[1]](*(float(a) if "." in a else int(a) for a in sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each run")
    parser.add_argument("--quick", action="store_true", help="half the frames")
    parser.add_argument("--only", metavar="KEYS", type=lambda text: text.split(","),
                        help="only these runs, by key, comma separated (e.g. 'raw 64x64,64x64 s8'): no targets")
    parser.add_argument("--profile", metavar="DIR", help="profile the server with py-spy instead")
    parser.add_argument("--save", metavar="FILE", help="also write the measurements to FILE (JSON)")
    parser.add_argument("--table", metavar="FILE", help="print the table of measurements saved earlier")
    parser.add_argument("--scrape", type=float, metavar="SECONDS",
                        help="fetch /metrics and /api/health this often during every run (compare with a run without)")
    args = parser.parse_args()
    global SCRAPE_S
    SCRAPE_S = args.scrape
    if args.profile:
        profile(args.profile)
        return
    if args.table:
        with open(args.table) as f:
            saved = json.load(f)
        results = {key: (Run(*run), rounds) for key, (run, rounds) in saved["results"].items()}
        report(results, saved["rounds"])
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args.rounds, args.quick, tmp, args.only)
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"rounds": args.rounds, "results": results}, f)
    report(results, args.rounds)


if __name__ == "__main__":
    main()
