"""Measure how fast burst frames move from one process to another on loopback, three ways.

    .venv/bin/python bench/bursts.py [--rounds 2] [--seconds 4] [--spool 32] [--scrape SECONDS] [--profile DIR]

For 2560x2160 and 512x512 Mono16 frames:

  full   the real path: a twistd server (simulated "ideal" camera at its maximum frame rate, minimum
         exposure) -> burst spool (--spool frames) -> WebSocket -> ``andor.Camera.burst()`` yielding
         a new numpy array per frame in a client process.
  raw    the ceiling: one process ``sendall``s a preallocated frame (8-byte length + the pixels) in a
         loop, another ``recv_into``s a preallocated buffer. TCP_NODELAY at both ends. No allocation.
  http   the design this server replaces: one HTTP GET per frame. ``http.server.ThreadingHTTPServer``
         (HTTP/1.1 keep-alive, Content-Length, TCP_NODELAY) answers each GET with the pixels; the client
         does ``requests.Session().get(url).content`` and ``np.frombuffer(...).reshape(H, W)``.

  scraped  with --scrape SECONDS: the full path while another thread of the parent GETs /metrics and
           /api/health every SECONDS (Prometheus scrapes every 15 s or so: 0.1 makes any cost show),
           run interleaved with the full path so both meet the same noise.

How to read the table:
  MB/s, frames/s   pixel bytes (10^6) and frames per second, from the first frame the receiver has
                   to the last, so arming, connecting and process start-up are not counted.
  CPU s/GB         CPU seconds (user + sys, all threads) of the sending AND the receiving process
                   over that same window, per 10^9 pixel bytes, shown as send + recv = total. Both are
                   read from /proc/<pid>/stat (10 ms ticks) by the receiver at its first and last frame.
                   For the full path "send" is the whole server: reactor, SDK thread, spool.
  total s          the full path only: from the burst request to the last frame (includes arming).
Each method sends about --seconds of frames: a count set from the rate of warm-up runs of the same
method (not reported), and raised for the next round if a round ran faster. The methods run
interleaved (raw, full, http; then again) because the machine is shared and noisy, and the table
reports the BEST of the rounds (highest MB/s; noise only ever slows a run down). The ratios compare
MB/s of those best runs against the targets.

With --profile DIR, only the full path runs, twice per size, under py-spy (pip install py-spy): once
sampling where server and client spend CPU, once sampling only the server thread holding the GIL
(what limits small frames, where reactor and SDK thread queue for it). DIR gets the collapsed
stacks; the script prints the busiest functions, on their own (self) and with all they call
(inclusive).

The server runs from this checkout (PYTHONPATH=the repo), not from the copy installed in .venv,
and so does the client (the repo's client/ first on its path): the numbers are those of the code
in the work tree.
"""

import argparse
import collections
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SIZES = [(2560, 2160), (512, 512)]  # width, height of Mono16 frames
METHODS = ["raw", "full", "http"]
WARM_UP_SECONDS = 0.5
TARGETS = {  # (width, height): (full/raw at least, full/http at least)
    (2560, 2160): (0.85, 2.5),
    (512, 512): (0.6, 2.5),
}


# ---- helpers for every process ----

def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far, all its threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


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
        result = {"frames": self.count - 1, "seconds": last[0] - first[0], "cpu_send": last[1] - first[1],
                  "cpu_recv": last[2] - first[2], "total_seconds": last[0] - self.started, **extra}
        print(json.dumps(result), flush=True)


def listen():
    """A loopback listening socket on a free port; prints the port for the parent."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    print(server.getsockname()[1], flush=True)
    return server


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
    with listen() as server:
        conn, _ = server.accept()
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


def http_serve(nbytes):
    """Answer every GET with the same ``nbytes`` bytes, one thread per connection, keep-alive."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    frame = np.arange(nbytes // 2, dtype="<u2").tobytes()

    class OneFrame(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(frame)))
            self.end_headers()
            self.wfile.write(frame)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), OneFrame)
    print(server.server_port, flush=True)
    server.serve_forever()


def http_get(port, width, height, count, sender_pid):
    import requests

    session = requests.Session()
    url = f"http://127.0.0.1:{port}/frame"
    window = Window(sender_pid, count)
    for _ in range(count):
        image = np.frombuffer(session.get(url).content, np.uint16).reshape(height, width)
        window.frame()
    window.report(shape=image.shape)


def burst_recv(port, width, height, count, spool, server_pid):
    """Set the AOI, the shortest exposure and the fastest frame rate, then read one burst."""
    import andor

    cam = andor.Camera(f"127.0.0.1:{port}")
    cam.aoi({"left": 1, "top": 1, "width": width, "height": height})
    cam.exposure_time(cam.get_feature_info("ExposureTime")["min"])
    fps = cam.get_feature_info("FrameRate")["max"]
    window = Window(server_pid, count)
    frames = cam.burst(count, fps, serverSpool=spool)
    for image in frames:  # noqa: B007 (the last image is checked below)
        window.frame()
    assert image.shape == (height, width), image.shape
    summary = frames.summary
    window.report(fps=fps, state=summary["state"], spool_capacity=summary["spool_capacity"],
                  late_frames=summary["late_frames"])


ROLES = {"raw-send": raw_send, "raw-recv": raw_recv, "http-serve": http_serve, "http-get": http_get,
         "burst-recv": burst_recv}


# ---- the parent: starting processes and running the methods ----

def child(role, *args, prefix=(), **popen):
    """This file, run as ``role`` in a new process, with the checkout's packages first on its path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "client")]))
    return subprocess.Popen([*prefix, sys.executable, os.path.abspath(__file__), role, *map(str, args)],
                            stdout=subprocess.PIPE, text=True, env=env, **popen)


def receive(proc):
    """The JSON result line of a receiver process, once it has exited."""
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(proc.args)} failed (exit status {proc.returncode})")
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])  # py-spy talks too


def run_pair(sender, receiver, *args):
    """Start ``sender`` (a role that prints its port), then ``receiver`` with that port, ``args`` and
    the sender's pid; returns the receiver's result."""
    sending = child(*sender)
    try:
        port = int(sending.stdout.readline())
        return receive(child(receiver, port, *args, sending.pid))
    finally:
        sending.terminate()
        sending.wait()


def run_raw(width, height, count, server):
    nbytes = width * height * 2
    return run_pair(("raw-send", nbytes, count), "raw-recv", nbytes, count)


def run_http(width, height, count, server):
    return run_pair(("http-serve", width * height * 2), "http-get", width, height, count)


def run_full(width, height, count, server, spool=32, prefix=()):
    return receive(child("burst-recv", server.port, width, height, count, spool, server.pid, prefix=prefix))


def run_scraped(width, height, count, server, spool=32, every=0.1):
    """The full path while /metrics and /api/health are fetched every ``every`` seconds."""
    import http.client
    import threading

    stop, scrapes = threading.Event(), []

    def scrape():
        while not stop.wait(every):
            for path in ("/metrics", "/api/health"):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                conn.close()
                scrapes.append(response.status)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        result = run_full(width, height, count, server, spool)
    finally:
        stop.set()
        scraper.join()
    assert set(scrapes) <= {200}, f"a scrape failed: {sorted(set(scrapes))}"
    return {**result, "scrapes": len(scrapes)}


IDEAL = ("--sim-model", "ideal", "--sim-arm-latency", "0.001")


class Server:
    """``twistd andor`` with a simulated camera (``args``: the ideal one) on a free loopback port, until
    ``stop()``."""

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


def runners(spool, scrape=None):
    """{method: run(width, height, frames, server) -> the receiver's result}."""
    methods = {"raw": run_raw, "full": lambda *args: run_full(*args, spool=spool), "http": run_http}
    if scrape:
        methods["scraped"] = lambda *args: run_scraped(*args, spool=spool, every=scrape)
    return methods


def frames_for(run, width, height, seconds, server):
    """Frames for ``seconds`` of ``run``, at the rate of warm-up runs of it, lengthened until one lasts
    WARM_UP_SECONDS (a shorter one says more about start-up than about the rate)."""
    count = max(8, int(1e8 / (width * height * 2)))  # 0.1 s at 1 GB/s
    while True:
        result = run(width, height, count, server)
        if result["seconds"] >= WARM_UP_SECONDS:
            return frames_at(result, seconds)
        count = math.ceil(count * min(10.0, 1.2 * WARM_UP_SECONDS / max(result["seconds"], 1e-3)))


def frames_at(result, seconds):
    """Frames for ``seconds`` at the rate of ``result``."""
    return math.ceil(result["frames"] / result["seconds"] * seconds)


def measure(rounds, seconds, spool, log, scrape=None):
    """{(size, method): [the result of each round]}, running the methods interleaved."""
    server = Server(log)
    run = runners(spool, scrape)
    results = collections.defaultdict(list)
    try:
        for width, height in SIZES:
            counts = {m: frames_for(run[m], width, height, seconds, server) for m in run if m != "scraped"}
            if "scraped" in run:
                counts["scraped"] = counts["full"]  # the same burst, so that the two compare
            for _ in range(rounds):
                for method in run:
                    result = run[method](width, height, counts[method], server)
                    results[(width, height), method].append(result)
                    counts[method] = max(counts[method], frames_at(result, seconds))  # if a round ran faster
                    print(f"  {width}x{height} {method:4s} {_rate(result, width, height):6.0f} MB/s "
                          f"in {result['seconds']:.2f} s", flush=True)
    finally:
        server.stop()
    return results


def _rate(result, width, height):
    return result["frames"] * width * height * 2 / result["seconds"] / 1e6


def report(results, rounds, scrape=None):
    print()
    print(f"best of {rounds} rounds (highest MB/s); CPU from /proc/<pid>/stat of sender and receiver")
    print(f"{'size':10s} {'method':6s} {'frames':>7s} {'window':>8s} {'MB/s':>7s} {'frames/s':>9s} "
          f"{'CPU s/GB send + recv = total':>30s} {'total s':>8s}")
    best = {}
    methods = [*METHODS, "scraped"] if scrape else METHODS
    for width, height in SIZES:
        size = f"{width}x{height}"
        for method in methods:
            r = best[size, method] = max(results[(width, height), method], key=lambda r: _rate(r, width, height))
            gb = r["frames"] * width * height * 2 / 1e9
            send, recv = r["cpu_send"] / gb, r["cpu_recv"] / gb
            total = f"{r['total_seconds']:8.2f}" if method in ("full", "scraped") else ""
            print(f"{size:10s} {method:6s} {r['frames'] + 1:7d} {r['seconds']:6.2f} s "
                  f"{_rate(r, width, height):7.0f} {r['frames'] / r['seconds']:9.0f} "
                  f"{send:11.2f} + {recv:5.2f} = {send + recv:5.2f}   {total}")
    print()
    print("ratios of MB/s (full path against the others):")
    for width, height in SIZES:
        size = f"{width}x{height}"
        rate = {m: _rate(best[size, m], width, height) for m in METHODS}
        want_raw, want_http = TARGETS[width, height]
        full_raw, full_http = rate["full"] / rate["raw"], rate["full"] / rate["http"]
        print(f"  {size:10s} full/raw {full_raw:5.2f} (target >= {want_raw:.2f}: {_verdict(full_raw, want_raw)})"
              f"   full/http {full_http:5.2f}x (target >= {want_http:.1f}x: {_verdict(full_http, want_http)})")
    if scrape:
        print(f"scraping /metrics and /api/health every {scrape:g} s during the full path (MB/s, best of each):")
        for width, height in SIZES:
            size = f"{width}x{height}"
            runs = results[(width, height), "scraped"]
            scraped = _rate(best[size, "scraped"], width, height)
            full = _rate(best[size, "full"], width, height)
            print(f"  {size:10s} scraped/full {scraped / full:5.3f} ({scraped:.0f} against {full:.0f} MB/s; "
                  f"{sum(r['scrapes'] for r in runs) // len(runs)} requests a run)")


def _verdict(value, target):
    return "meets" if value >= target else "MISSES"


# ---- --profile: where the full path spends its CPU ----

def profile(directory, seconds, spool, rate=250):
    """Run the full path per size under py-spy, twice: sampling the CPU of server and client, then
    sampling only the server thread that holds the GIL. Prints a summary of each."""
    if not os.path.exists(os.path.join(BIN, "py-spy")):
        sys.exit(f"--profile needs py-spy: {os.path.join(BIN, 'pip')} install py-spy")
    os.makedirs(directory, exist_ok=True)
    server = Server(os.path.join(directory, "twistd.log"))
    try:
        for width, height in SIZES:
            count = frames_for(runners(spool)["full"], width, height, seconds, server)
            for mode in ("cpu", "gil"):
                tag = f"{width}x{height}-{mode}"
                out = {who: os.path.join(directory, f"{who}-{tag}.txt") for who in ("server", "client")}
                spy = [os.path.join(BIN, "py-spy"), "record", "--threads", "-r", str(rate), "-f", "raw",
                       *(["--gil"] if mode == "gil" else ["--nonblocking"])]  # --gil needs the pauses to be right
                server_spy = subprocess.Popen([*spy, "-o", out["server"], "--pid", str(server.pid)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    client_spy = (*spy, "-o", out["client"], "--") if mode == "cpu" else ()
                    result = run_full(width, height, count, server, spool, prefix=client_spy)
                finally:
                    server_spy.send_signal(signal.SIGINT)  # py-spy writes its profile and exits
                    server_spy.wait()
                print(f"\n{width}x{height}, {PROFILE_MODES[mode]}: {_rate(result, width, height):.0f} MB/s "
                      f"under py-spy, {count} frames in {result['total_seconds']:.2f} s from the burst request")
                ticks = rate * result["total_seconds"]
                summarize(out["server"], "server", ticks)
                if mode == "cpu":
                    summarize(out["client"], "client", ticks, within="BurstFrames.send")
    finally:
        server.stop()


PROFILE_MODES = {
    "cpu": "where the CPU goes (a C call that releases the GIL counts for the line that made it)",
    "gil": "who holds the GIL (only the server thread holding it is sampled: time waiting for it is not)",
}
NOTES = {  # what a leaf frame spends its time in, where that is a C call made from that line
    "GatherWriter.doWrite (andor_twisted/gather.py": "sendmsg(): the kernel's copy into the socket",
    "untilConcludes (twisted/python/util.py": "socket send(): the kernel's copy into the socket",
    "BurstFrames._read_into (andor/burst.py": "recv_into(): the kernel's copy out of the socket",
    "EPollReactor.doPoll (twisted/internet/epollreactor.py": "epoll_wait()",
}
IDLE = ("Condition.wait (threading.py",)  # a pool thread waiting for work: py-spy counts it as busy
WATCHED = ("andor", "autobahn/twisted/websocket.py", "twisted/internet/abstract.py", "twisted/internet/tcp.py",
           "twisted/logger/_logger.py")


def summarize(path, who, ticks, within=None, top=10):
    """Print the busiest threads and functions of py-spy's collapsed stacks (``path``), as shares of
    the busy samples: each function on its own (self, with the C functions it calls), and those of
    WATCHED with all they call (inclusive). With ``within``, only stacks through that function.
    ``ticks`` is the number of sampling instants in the burst, to say how busy each thread was."""
    own, inclusive, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = skipped = idle = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            frames, n = stack.split(";"), int(n)
            if within and not any(within in frame for frame in frames):
                skipped += n
            elif frames[-1].startswith(IDLE):
                idle += n
            else:
                total += n
                threads[frames[0].split(": ")[-1]] += n
                own[frames[-1]] += n
                for frame in set(frames[1:]):
                    inclusive[frame] += n
    print(f"  {who}: {total} busy samples ({idle} idle in Condition.wait"
          + (f", {skipped} outside {within}: start-up, set-up" if within else "") + "); threads busy for ≈ "
          + ", ".join(f"{t} {n / ticks:.0%}" for t, n in threads.most_common(3)) + " of the burst")
    print("    self:")
    for frame, n in own.most_common(top):
        note = next((text for prefix, text in NOTES.items() if frame.startswith(prefix)), "")
        print(f"      {n / total:5.1%}  {frame}" + (f"  [{note}]" if note else ""))
    print("    inclusive:")
    watched = [(frame, n) for frame, n in inclusive.most_common() if any(w in frame for w in WATCHED)]
    for frame, n in watched[:top]:
        print(f"      {n / total:5.1%}  {frame}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        ROLES[sys.argv[1]](*(float(a) if "." in a else int(a) for a in sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each method and size")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measurement")
    parser.add_argument("--spool", type=int, default=32, help="server spool of the full path, frames")
    parser.add_argument("--profile", metavar="DIR", help="profile the full path with py-spy instead")
    parser.add_argument("--scrape", type=float, metavar="SECONDS",
                        help="also run the full path while /metrics and /api/health are fetched this often")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.seconds, args.spool)
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args.rounds, args.seconds, args.spool, os.path.join(tmp, "twistd.log"), args.scrape)
    report(results, args.rounds, args.scrape)


if __name__ == "__main__":
    main()
