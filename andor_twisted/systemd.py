"""Telling systemd how the server is: READY=1 once the camera is open, then WATCHDOG=1 pings from the reactor.

The unit (systemd/andor.service) says ``Type=notify`` and ``WatchdogSec=``: systemd waits for READY=1
before it counts the server as started, and kills and restarts it if the pings stop, which they do when
the reactor stops turning (a call that blocks it, a deadlock). The pings come from a LoopingCall in the
reactor, so they prove exactly that. Whether the camera is well is /api/health's question: restarting
the server would not mend a camera, and a restart loop would hide it.

sd_notify is one datagram to the unix socket named by $NOTIFY_SOCKET (sd_notify(3)); outside systemd the
variable is unset and nothing is sent.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger


def sd_notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` ("READY=1", "WATCHDOG=1", ...) to systemd; False when not run by systemd or the
    message could not be sent at once (it never waits)."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between pings: half of WatchdogSec (sd_watchdog_enabled(3)), or None when systemd asks for
    none, or asks another process (WATCHDOG_PID)."""
    usec = environ.get("WATCHDOG_USEC")
    watched = environ.get("WATCHDOG_PID")
    if not usec or (watched and int(watched) != (os.getpid() if pid is None else pid)):
        return None
    return int(usec) / 2e6


class SystemdNotifier(service.Service):
    """READY=1 when ``ready()`` (a Deferred, or None when there is nothing to wait for) fires, and a
    WATCHDOG=1 ping every ``watchdog_interval()`` seconds while running; STOPPING=1 at shutdown."""

    log = Logger()

    def __init__(self, clock: Any, ready: Callable[[], defer.Deferred[Any] | None],
                 notify: Callable[[str], bool] = sd_notify, interval: float | None = None) -> None:
        self.clock = clock
        self.ready = ready
        self.notify = notify
        self.interval = interval if interval is not None else watchdog_interval()
        self._pings: task.LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        waiting = self.ready()
        if waiting is None:
            self._ready(None)
        else:
            # a camera that cannot be opened ends the process (tap), so only success says READY
            waiting.addCallback(self._ready)
        if self.interval:
            self._pings = task.LoopingCall(self.notify, "WATCHDOG=1")
            self._pings.clock = self.clock
            self._pings.start(self.interval, now=True)
            self.log.info("pinging systemd's watchdog every {s:g} s", s=self.interval)

    def _ready(self, result: Any) -> Any:
        if self.running:
            self.notify("READY=1")
        return result

    def stopService(self) -> None:
        super().stopService()
        if self._pings is not None and self._pings.running:
            self._pings.stop()
        self._pings = None
        self.notify("STOPPING=1")
