"""``twistd andor``: command-line options and the service tree. The only module that wires things."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from typing import Any

from twisted.application import service, strports
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from andor_twisted import logs
from andor_twisted.acquisition.arbiter import Arbiter
from andor_twisted.acquisition.burst import Bursts
from andor_twisted.acquisition.live import LiveView
from andor_twisted.acquisition.recorder import Recordings
from andor_twisted.acquisition.probe import CameraProbe
from andor_twisted.camera import sdk3
from andor_twisted.camera.devices import Choice
from andor_twisted.camera.contract import SDK
from andor_twisted.camera.sim.models import MODELS, WHEN_FULL, CameraModel
from andor_twisted.service import CameraService
from andor_twisted.systemd import SystemdNotifier
from andor_twisted.web.health import HealthCheck
from andor_twisted.web.metrics import Metrics
from andor_twisted.protocol.access import TokenFileError
from andor_twisted.web.guard import LOOPBACK_NAMES, Guard, TokenFile, host_name, read_tokens
from andor_twisted.web.limits import ConnectionLimits
from andor_twisted.web.site import make_site

DEFAULT_LISTEN = "tcp:8000:interface=127.0.0.1"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?\s*$")
_UNITS = {None: 1, "B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KiB": 2**10, "kiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def parse_size(text: str) -> int:
    """Bytes from '4GB', '512 MiB' or '1048576' (decimal kB/MB/GB, binary KiB/MiB/GiB)."""
    match = _SIZE.match(text)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a size: use bytes or a number with kB, MB, GB, KiB, MiB or GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_rate(text: str) -> int:
    """Bytes per second: a size, optionally followed by '/s'."""
    return parse_size(text[:-2] if text.endswith("/s") else text)


def parse_seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def endpoint_fields(endpoint: str) -> tuple[str, dict[str, str]]:
    """(kind, {name: value}) of a server endpoint string: "tcp:8000:interface=127.0.0.1" ->
    ("tcp", {"interface": "127.0.0.1"}); "\\:" is a colon inside a value (an IPv6 address)."""
    parts = [part.replace("\\:", ":") for part in re.split(r"(?<!\\):", endpoint)]
    named = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
    return parts[0].lower(), named


def is_loopback(endpoint: str) -> bool:
    """Whether only this machine can reach ``endpoint``: TCP or TLS on a loopback interface, or a Unix
    socket. Everything else (all interfaces, a systemd socket) may be reachable from other machines."""
    kind, named = endpoint_fields(endpoint)
    if kind == "unix":
        return True
    if kind not in ("tcp", "tcp6", "ssl"):
        return False
    interface = named.get("interface", "")
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def parse_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


class Options(usage.Options):
    synopsis = "[--listen ENDPOINT ...] [--camera sim|sdk3[:INDEX|:serial=SERIAL|:simcam]] [options]"
    longdesc = ("Serve one Andor SDK3 camera over HTTP. Without a camera or SDK, a simulated Neo stands in. "
                "Sizes take plain bytes or MB, MiB, GB, GiB suffixes.")
    optParameters = [
        ["camera", None, "sim", "sim (the simulated camera), or sdk3 for the one camera Andor's SDK3 finds; "
         "sdk3:serial=SERIAL or sdk3:INDEX for one of several; sdk3:simcam for the SDK's own simulated camera"],
        ["sim-model", None, "neo", f"simulated camera model: {', '.join(MODELS)}"],
        ["sim-overflow", None, None, "what the simulated camera does when its on-head memory is full: "
         f"{', '.join(WHEN_FULL)} [default: the model's]"],
        ["sim-trigger-rate", None, None, "the simulated external trigger source, triggers per second "
         "(0: none come) [default: 0]", float],
        ["sim-onboard-memory", None, None, "simulated on-head memory, bytes [default: the model's]", parse_size],
        ["sim-link-rate", None, None, "simulated interface bandwidth, bytes/s [default: the model's]", parse_rate],
        ["sim-arm-latency", None, None, "simulated AcquisitionStart latency, seconds [default: the model's]",
         parse_seconds],
        ["sim-fault-after", None, None, "simulate a lost camera link (AT_ERR_COMM) after this many frames of "
         "an acquisition", int],
        ["spool-memory-limit", None, None, "most bytes the burst spool may hold [default: half the RAM]",
         parse_size],
        ["data-dir", None, None, "the directory bursts are recorded into on the server (POST /api/burst with "
         "\"record\"); none: the server records nothing"],
        ["burst-idle-timeout", None, 600.0, "discard a burst nobody has read for this long, seconds", parse_seconds],
        ["log-format", None, "text", "text, or json: one JSON object a line on stdout, with every field of each "
         "event (unless twistd's --logger names another observer)"],
        ["tokens", None, None, "a file of tokens, one 'name role token' a line (role: controller or viewer), "
         "mode 0600: every request to the API and the streams then needs one. Required to listen beyond "
         "loopback (docs/security.md)"],
        ["allowed-hosts", None, [], "comma-separated names the server answers to in the Host header, beyond "
         "the loopback names, the listening addresses, and this machine's name when it listens beyond "
         "loopback", parse_names],
        ["allowed-origins", None, [], "comma-separated origins (scheme://host:port) of other sites' pages that "
         "may use the API and the streams (CORS); none by default", parse_names],
        ["ping-interval", None, 5.0, "seconds between WebSocket pings to stream readers (0: none)", parse_seconds],
        ["ping-timeout", None, 30.0, "drop a stream reader that answers no ping within this, seconds",
         parse_seconds],
        ["max-connections", None, 512, "most connections open at once; more are answered 503", int],
        ["max-connections-per-peer", None, 64, "most connections open at once from one address", int],
        ["idle-timeout", None, 60.0, "close an HTTP connection without a request for this long, seconds",
         parse_seconds],
        ["header-timeout", None, 10.0, "close a connection whose request headers take longer, seconds",
         parse_seconds],
        ["max-burst-bytes", None, parse_size("10TB"), "refuse a burst that would capture more than this "
         "(frames and their headers)", parse_size],
        ["max-burst-seconds", None, 86400.0, "refuse a burst planned to take longer than this, seconds",
         parse_seconds],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """A server endpoint to serve on (repeatable) [default: tcp:8000:interface=127.0.0.1]"""
        self["listen"].append(endpoint)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        if self["sim-model"] not in MODELS:
            raise usage.UsageError(f"--sim-model must be one of {', '.join(MODELS)}, not {self['sim-model']!r}")
        if self["log-format"] not in logs.FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(logs.FORMATS)}, not {self['log-format']!r}")
        if self["sim-overflow"] not in (None, *WHEN_FULL):
            raise usage.UsageError(f"--sim-overflow must be one of {', '.join(WHEN_FULL)}, "
                                   f"not {self['sim-overflow']!r}")
        camera = self["camera"]
        kind, _, rest = camera.partition(":")
        if kind not in ("sim", "sdk3"):
            raise usage.UsageError(f"--camera is sim or sdk3[:INDEX|:serial=SERIAL|:simcam], not {camera!r}")
        try:
            self["camera-choice"] = Choice.parse(":" + rest if rest else "")
        except ValueError as e:
            raise usage.UsageError(f"--camera {camera!r}: {e}") from None
        if kind == "sdk3":
            try:
                sdk3.load()
            except ImportError as e:
                raise usage.UsageError(str(e)) from None
        directory = self["data-dir"]
        if directory is not None and not (os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)):
            raise usage.UsageError(f"--data-dir {directory!r} is not a directory this server can write to")
        if self["tokens"] is not None:
            try:
                read_tokens(self["tokens"])
            except (OSError, TokenFileError) as e:
                raise usage.UsageError(f"--tokens: {e}") from None
        else:
            exposed = [endpoint for endpoint in self["listen"] if not is_loopback(endpoint)]
            if exposed:
                raise usage.UsageError(f"--listen {exposed[0]} may be reachable from other machines: give "
                                       "--tokens FILE so that only the lab drives the camera (docs/security.md)")
        for origin in self["allowed-origins"]:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise usage.UsageError(f"--allowed-origins takes scheme://host[:port], not {origin!r}")
        if self["spool-memory-limit"] is None:
            self["spool-memory-limit"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def simulated_model(options: usage.Options | dict[str, Any]) -> CameraModel:
    """The simulated camera model the options ask for, with their --sim-* changes."""
    return MODELS[options["sim-model"]].with_overrides(
        onboard_memory_bytes=options["sim-onboard-memory"], link_rate_bytes_per_s=options["sim-link-rate"],
        arm_latency_s=options["sim-arm-latency"], fault_after_frames=options.get("sim-fault-after"),
        when_full=options.get("sim-overflow"), trigger_rate_hz=options.get("sim-trigger-rate"))


def simulated_sdk(options: usage.Options | dict[str, Any], time: Any = None) -> SDK:
    """The simulated SDK3 install (ATCore-shaped) with the camera model the options ask for."""
    from andor_twisted.camera import sim

    return sim.sdk(simulated_model(options), time)


class ServerService(service.MultiService):
    """The top of the service tree. With ``log_observer``, it gives twistd's application that observer as
    its ILogObserver component, which twistd then logs to (unless its --logger names another)."""

    def __init__(self, log_observer: Any = None) -> None:  # Any: an ILogObserver, which mypy cannot see
        super().__init__()
        self.log_observer = log_observer

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)
def allowed_hosts(options: usage.Options | dict[str, Any]) -> frozenset[str]:
    """The names the server answers to: the loopback names, each --listen interface, --allowed-hosts, and
    this machine's names if it listens beyond loopback (the address a connection came in on is always
    accepted as well: web/guard.py)."""
    names = set(LOOPBACK_NAMES) | {host_name(name) for name in options["allowed-hosts"]}
    for endpoint in options["listen"]:
        interface = endpoint_fields(endpoint)[1].get("interface")
        if interface:
            names.add(interface.lower())
        if not is_loopback(endpoint):
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


def makeService(options: usage.Options, reactor: Any = None) -> service.MultiService:
    """The service tree, each child named: "camera" (CameraService), "live" (LiveView), "bursts"
    (Bursts), then one server per --listen ("listen 0", ...), then "systemd" (SystemdNotifier). The arbiter
    of the camera is shared by the live view, the bursts and the API."""
    if reactor is None:
        from twisted.internet import reactor
    if options["camera"].startswith("sim"):
        sdk = simulated_sdk(options)
        description = f"simulated {options['sim-model']}"
    else:
        sdk = sdk3.load()
        description = options["camera"]

    def stop_on_failure(failure: Failure) -> None:
        """A server without its camera is no use: exit non-zero so systemd restarts and reports it."""
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        reactor.callLater(0, reactor.stop)

    top = ServerService(logs.json_observer() if options["log-format"] == "json" else None)
    arbiter = Arbiter()
    camera = CameraService(sdk, options["camera-choice"], reactor, description, on_open_failure=stop_on_failure)
    bursts = Bursts(camera, arbiter, reactor, options["spool-memory-limit"], options["burst-idle-timeout"],
                    Recordings(options["data-dir"], reactor), options["max-burst-bytes"], options["max-burst-seconds"])
    live = LiveView(camera, arbiter, reactor, bursts)  # viewers watch a capturing burst
    # stopped in reverse: the listening ports, the burst, then the live view, then the camera
    children: list[tuple[str, Any]] = [("camera", camera), ("live", live), ("bursts", bursts)]
    probe = CameraProbe(camera, reactor)
    metrics = Metrics(camera, bursts, live, probe, reactor, lambda f: reactor.callFromThread(f))
    health = HealthCheck(camera, probe, reactor, data_dir=options["data-dir"])
    tokens = None if options["tokens"] is None else TokenFile(options["tokens"], reactor.seconds)
    guard = Guard(hosts=allowed_hosts(options), origins=frozenset(options["allowed-origins"]), tokens=tokens)
    limits = ConnectionLimits(options["max-connections"], options["max-connections-per-peer"])
    # Any: an IProtocolFactory, which mypy cannot see
    site: Any = make_site(camera, bursts, live, arbiter, guard, options["ping-interval"], options["ping-timeout"],
                          limits, options["idle-timeout"], options["header-timeout"], metrics=metrics, health=health)
    for n, endpoint in enumerate(options["listen"]):
        children.append((f"listen {n}", strports.service(endpoint, site, reactor=reactor)))
    # last: READY=1 once listening and the camera is open; the watchdog's pings (Type=notify, WatchdogSec=)
    children.append(("systemd", SystemdNotifier(reactor, lambda: camera.opened)))
    for name, child in children:
        child.setName(name)
        child.setServiceParent(top)
    return top
