"""The bad-input table: malformed, oversized, deeply nested, wrongly typed and hostile HTTP requests and
WebSocket messages thrown at a running server, one line per case: what was sent, what came back, and
whether the server still answers. At the end, what the server logged (warnings are expected; errors and
tracebacks are not).

    .venv/bin/python bench/hostile.py                  # starts its own server (simulated Neo) on loopback
    .venv/bin/python bench/hostile.py --server 127.0.0.1:8000 [--token TOKEN]   # a running one

Its own server runs with --header-timeout 2 and --max-connections-per-peer 16, so the slow-header and
connection-flood cases are quick. Exit status 1 if any case got a 5xx, no answer at all, or left the
server not answering, or if the server logged an error.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import websocket

DEEP = b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    def __init__(self, address: str, token: str | None) -> None:
        self.address = address
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.ws_headers = [f"Authorization: Bearer {token}"] if token else []

    def raw(self, data: bytes, timeout: float = 15.0) -> str:
        """Send bytes as they are; the answer's status and its JSON error code (or the reason)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except (TimeoutError, ConnectionResetError):
                pass
        return describe(b"".join(chunks))

    def http(self, method: str, path: str, body: bytes | None = None, headers: str = "",
             content_type: str | None = "application/json") -> str:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.address}\r\nConnection: close\r\n{self.auth}{headers}"
        if body is not None:
            if content_type:
                head += f"Content-Type: {content_type}\r\n"
            head += f"Content-Length: {len(body)}\r\n"
        return self.raw(head.encode("latin-1") + b"\r\n" + (body or b""))

    def alive(self) -> bool:
        try:
            return self.http("GET", "/api/temperature").startswith("200")
        except OSError:
            return False

    def ws(self, path: str, *sends: bytes | str, binary: bool = False, first: bool = True,
           origin: str | None = None) -> str:
        """Open a stream, send messages; how it ended: the close code and reason, or the refused handshake."""
        options: dict[str, object] = {"timeout": 15, "header": self.ws_headers}
        if origin is not None:
            options["origin"] = origin
        try:
            ws = websocket.create_connection(f"ws://{self.address}{path}", **options)
        except websocket.WebSocketBadStatusException as e:
            reason = str(e).split("-+-+-")[0].split(str(e.status_code), 1)[-1].strip()
            return f"{e.status_code} at the handshake: {_error_code(e.resp_body) or reason}"
        try:
            if first:
                ws.recv()
            for message in sends:
                if binary:
                    ws.send_binary(message.encode() if isinstance(message, str) else message)
                else:
                    ws.send(message.decode() if isinstance(message, bytes) else message)
            while True:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data).get("type") == "error":
                    error = json.loads(data)["error"]
                    opcode, data = ws.recv_data(control_frame=True)
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        return f"error {error}, close {_close(data)}"
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return f"close {_close(data)}"
        except (websocket.WebSocketConnectionClosedException, ConnectionResetError) as e:
            return f"dropped ({e})"
        finally:
            ws.close()


def _close(data: bytes) -> str:
    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    return f"{code} {data[2:].decode('utf-8', 'replace')[:60]!r}"


def _error_code(body: bytes | None) -> str:
    try:
        return str(json.loads(body or b"")["error"])
    except (ValueError, KeyError, TypeError):
        return ""


def describe(response: bytes) -> str:
    """'STATUS code' of a raw HTTP response."""
    if not response:
        return "no answer"
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].split(b" ", 2)
    code = status[1].decode() if len(status) > 1 else "?"
    try:
        return f"{code} {json.loads(body)['error']}"
    except (ValueError, KeyError, TypeError):
        return f"{code} {status[2].decode('latin-1') if len(status) > 2 else ''}".strip()


def flood(target: Target, n: int) -> str:
    """Open ``n`` idle connections from here; how many were refused (503)."""
    socks, refused = [], 0
    try:
        for _ in range(n):
            sock = socket.create_connection((target.host, target.port), timeout=5)
            socks.append(sock)
            sock.setblocking(False)
        time.sleep(0.5)
        for sock in socks:
            try:
                if sock.recv(4096).startswith(b"HTTP/1.1 503"):
                    refused += 1
            except BlockingIOError:
                pass
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.5)  # let the server see them go
    return f"{refused} of {n} answered 503 too_many_connections"


def second_reader(target: Target) -> str:
    status = target.http("POST", "/api/burst", json.dumps({"value": {"frames": 20, "fps": 10}}).encode())
    if not status.startswith("200"):
        return f"burst not started: {status}"
    burst = burst_id(target)
    first = websocket.create_connection(f"ws://{target.address}/stream/burst?id={burst}", timeout=15,
                                        header=target.ws_headers)
    try:
        first.recv()
        return target.ws(f"/stream/burst?id={burst}", first=False)
    finally:
        first.close()
        target.http("DELETE", "/api/burst")


def burst_id(target: Target) -> int:
    with socket.create_connection((target.host, target.port), timeout=15) as sock:
        sock.sendall(f"GET /api/burst HTTP/1.1\r\nHost: {target.address}\r\nConnection: close\r\n{target.auth}\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])["value"]["id"]


def cases(t: Target) -> list[tuple[str, Callable[[], str]]]:
    j = "application/json"
    burst = "/api/burst"

    def started_burst() -> int:
        t.http("POST", burst, json.dumps({"value": {"frames": 40, "fps": 100}}).encode())
        return burst_id(t)

    return [
        ("JSON nested 5000 deep", lambda: t.http("PUT", "/api/exposure_time", DEEP)),
        ("integer of 400 digits", lambda: t.http("PUT", "/api/exposure_time", b'{"value": 1' + b"0" * 400 + b"}")),
        ("float 1e999", lambda: t.http("PUT", "/api/exposure_time", b'{"value": 1e999}')),
        ("NaN", lambda: t.http("PUT", "/api/exposure_time", b'{"value": NaN}')),
        ("not JSON", lambda: t.http("PUT", "/api/exposure_time", b"{value: 1")),
        ("invalid UTF-8 body", lambda: t.http("PUT", "/api/exposure_time", b'{"value": "\xff\xfe"}')),
        ("a list for a number", lambda: t.http("PUT", "/api/exposure_time", b'{"value": [1, 2]}')),
        ("an object for a feature", lambda: t.http("PUT", "/api/features/ExposureTime", b'{"value": {"a": 1}}')),
        ("string number '1e400'", lambda: t.http("PUT", "/api/features/ExposureTime", b'{"value": "1e400"}')),
        ("bool for an int feature", lambda: t.http("PUT", "/api/features/FrameCount", b'{"value": true}')),
        ("AOI left 10**17", lambda: t.http("PUT", "/api/aoi", b'{"value": {"left": 100000000000000000}}')),
        ("AOI width -5", lambda: t.http("PUT", "/api/aoi", b'{"value": {"width": -5}}')),
        ("binning 10**17", lambda: t.http("PUT", "/api/binning", b'{"value": 100000000000000000}')),
        ("extra field in the body", lambda: t.http("PUT", "/api/exposure_time", b'{"value": 0.01, "x": 1}')),
        ("feature name with NUL", lambda: t.http("GET", "/api/features/Exposure%00Time")),
        ("feature name of 10 kB", lambda: t.http("GET", "/api/features/" + "A" * 10000)),
        ("text/plain burst (CSRF form)", lambda: t.http("POST", burst, b'{"value": {"frames": 5}}',
                                                        content_type="text/plain")),
        ("body without Content-Type", lambda: t.http("PUT", "/api/exposure_time", b'{"value": 0.01}',
                                                     content_type=None)),
        ("burst of 10**12 frames", lambda: t.http("POST", burst, b'{"value": {"frames": 1000000000000}}')),
        ("burst of 2**70 frames", lambda: t.http("POST", burst, b'{"value": {"frames": 1180591620717411303424}}')),
        ("burst fps Infinity", lambda: t.http("POST", burst, b'{"value": {"frames": 5, "fps": Infinity}}')),
        ("burst viewers not a list", lambda: t.http("POST", burst, b'{"value": {"frames": 5, "viewers": 7}}')),
        ("unknown query ?exposure=0.5", lambda: t.http("GET", "/api/snap?exposure=0.5")),
        ("repeated query parameter", lambda: t.http("GET", "/api/snap?format=raw&format=fits")),
        ("snap exposure_time=inf", lambda: t.http("GET", "/api/snap?exposure_time=inf")),
        ("snap exposure_time=1e999", lambda: t.http("GET", "/api/snap?exposure_time=1e999")),
        ("ledger=maybe", lambda: t.http("GET", "/api/burst?ledger=maybe")),
        ("static path with NUL", lambda: t.http("GET", "/static/%00")),
        ("static ../ traversal", lambda: t.http("GET", "/static/../../../etc/passwd")),
        ("static ..%2f traversal", lambda: t.http("GET", "/static/..%2f..%2f..%2fetc%2fpasswd")),
        ("static %2e%2e traversal", lambda: t.http("GET", "/static/%2e%2e/%2e%2e/etc/passwd")),
        ("static ..%5c traversal", lambda: t.http("GET", "/static/..%5c..%5cetc%5cpasswd")),
        ("DNS rebinding Host", lambda: t.raw(f"GET /api/temperature HTTP/1.1\r\nHost: attacker.example:{t.port}\r\n"
                                             f"Connection: close\r\n{t.auth}\r\n".encode())),
        ("no Host header (HTTP/1.0)", lambda: t.raw(f"GET /api/temperature HTTP/1.0\r\n{t.auth}\r\n".encode())),
        ("foreign Origin POST burst", lambda: t.http("POST", burst, b'{"value": {"frames": 5}}',
                                                     "Origin: http://evil.example\r\n")),
        ("Origin: null PUT", lambda: t.http("PUT", "/api/exposure_time", b'{"value": 0.01}', "Origin: null\r\n")),
        ("cross-site GET snap (<img>)", lambda: t.http("GET", "/api/snap", headers="Sec-Fetch-Site: cross-site\r\n")),
        ("CORS preflight from evil", lambda: t.http("OPTIONS", "/api/burst", headers="Origin: http://evil.example\r\n"
                                                    "Access-Control-Request-Method: POST\r\n")),
        ("Content-Length 10 GB", lambda: t.raw(f"PUT /api/exposure_time HTTP/1.1\r\nHost: {t.address}\r\n{t.auth}"
                                               f"Content-Type: {j}\r\nContent-Length: 10000000000\r\n\r\n".encode())),
        ("chunked body of 200 kB", lambda: t.raw(
            f"PUT /api/exposure_time HTTP/1.1\r\nHost: {t.address}\r\n{t.auth}Content-Type: {j}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n".encode() + (b"9c40\r\n" + b"x" * 40000 + b"\r\n") * 5)),
        ("Content-Length: abc", lambda: t.raw(f"PUT /api/exposure_time HTTP/1.1\r\nHost: {t.address}\r\n"
                                              f"Content-Length: abc\r\n\r\n".encode())),
        ("600 headers", lambda: t.raw(f"GET /api/temperature HTTP/1.1\r\nHost: {t.address}\r\n".encode() +
                                      b"".join(b"X-%d: 1\r\n" % i for i in range(600)) + b"\r\n")),
        ("header line of 64 kB", lambda: t.raw(f"GET /api/temperature HTTP/1.1\r\nHost: {t.address}\r\nX: ".encode()
                                               + b"a" * 65536 + b"\r\n\r\n")),
        ("headers never finished", lambda: t.raw(b"GET /api/temperature HTTP/1.1\r\nHost: x\r\n", timeout=30)),
        ("method BREW", lambda: t.http("BREW", "/api/temperature")),
        ("DELETE /api/aoi", lambda: t.http("DELETE", "/api/aoi")),
        ("stream: ack as binary", lambda: t.ws(f"/stream/burst?id={started_burst()}", '{"ack": 0}', binary=True)),
        ("stream: ack 2**40 (not sent)", lambda: t.ws(f"/stream/burst?id={burst_id(t)}", '{"ack": 1099511627776}')),
        ("stream: ack Infinity", lambda: t.ws(f"/stream/burst?id={burst_id(t)}", '{"ack": Infinity}')),
        ("stream: ack of 30 digits", lambda: t.ws(f"/stream/burst?id={burst_id(t)}", '{"ack": 1' + "0" * 30 + "}")),
        ("stream: JSON 10000 deep", lambda: t.ws(f"/stream/burst?id={burst_id(t)}", "[" * 10000 + "]" * 10000)),
        ("stream: message of 100 kB", lambda: t.ws(f"/stream/burst?id={burst_id(t)}", "x" * 100000)),
        ("stream: id=abc", lambda: t.ws("/stream/burst?id=abc")),
        ("stream: id=99999999999", lambda: t.ws("/stream/burst?id=99999999999")),
        ("stream: unknown parameter", lambda: t.ws(f"/stream/burst?id={burst_id(t)}&x=1")),
        ("stream: burst not there", lambda: t.ws(f"/stream/burst?id={burst_id(t) + 100}", first=False)),
        ("stream: foreign Origin", lambda: t.ws(f"/stream/burst?id={burst_id(t)}", origin="http://evil.example")),
        ("stream: second reader", lambda: second_reader(t)),
        ("live: display [Infinity, 1]", lambda: t.ws("/stream/live", '{"display": [Infinity, 1]}', first=False)),
        ("live: display [0, 1]", lambda: t.ws("/stream/live", '{"display": [0, 1]}', first=False)),
        ("live: display 'big'", lambda: t.ws("/stream/live", '{"display": "big"}', first=False)),
        ("live: ack of a frame not sent", lambda: t.ws("/stream/live", '{"ack": 123456789}', first=False)),
        ("live: binary message", lambda: t.ws("/stream/live", b"\x00\x01", binary=True, first=False)),
        ("live: width=Infinity", lambda: t.ws("/stream/live?width=Infinity&height=1")),
        ("live: plain GET, no upgrade", lambda: t.http("GET", "/stream/live")),
        ("flood: 40 connections", lambda: flood(t, 40)),
    ]


def start_server(log_path: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    server = subprocess.Popen([twistd, "--nodaemon", "--pidfile=", f"--logfile={log_path}", "andor",
                               "--listen", f"tcp:{port}:interface=127.0.0.1", "--sim-arm-latency", "0.005",
                               "--header-timeout", "2", "--max-connections-per-peer", "16"])
    address = f"127.0.0.1:{port}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    target = Target(address, None)
    for _ in range(200):
        if target.alive():
            break
        time.sleep(0.05)
    return server, address


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="HOST:PORT of a running server (default: start one)")
    parser.add_argument("--token", default=os.environ.get("ANDOR_TOKEN"), help="a controller token [$ANDOR_TOKEN]")
    args = parser.parse_args()
    server = None
    log_path = os.path.join(tempfile.mkdtemp(prefix="andor-hostile-"), "server.log")
    address = args.server
    if address is None:
        server, address = start_server(log_path)
    target = Target(address, args.token)
    bad = 0
    try:
        target.http("PUT", "/api/aoi", b'{"value": {"left": 1, "top": 1, "width": 64, "height": 64}}')
        target.http("PUT", "/api/exposure_time", b'{"value": 0.001}')
        print(f"{'case':<32} {'answer':<64} server OK")
        for name, case in cases(target):
            try:
                answer = case()
            except Exception as e:  # the table says what happened rather than stopping
                answer = f"client error: {type(e).__name__}: {e}"
            alive = target.alive()
            failed = (not alive or answer.startswith(("5", "no answer", "client error"))
                      or "5xx" in answer) and "503 too_many" not in answer
            bad += failed
            print(f"{name:<32} {answer[:64]:<64} {'yes' if alive else 'NO'}{'   <-- !' if failed else ''}")
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    if server is not None:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            log = f.read().splitlines()
        levels = {level: sum(f"#{level}]" in line for line in log) for level in ("warn", "error", "critical")}
        tracebacks = sum("Traceback" in line for line in log)
        print(f"\nserver log ({log_path}): {levels['warn']} warnings, {levels['error']} errors, "
              f"{levels['critical']} critical, {tracebacks} tracebacks")
        bad += levels["error"] + levels["critical"] + tracebacks
    print(f"{bad} cases not answered cleanly" if bad else "every case answered with a 4xx or a clean close")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
