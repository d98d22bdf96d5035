"""sd_notify and the watchdog: the datagram systemd reads, and pings from the reactor on a task.Clock."""

import os
import socket
import tempfile

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from andor_twisted.systemd import SystemdNotifier, sd_notify, watchdog_interval


class NotifyTests(unittest.TestCase):
    def listen(self, abstract=False):
        """A datagram socket standing in for systemd's; returns (it, $NOTIFY_SOCKET's value)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        if abstract:
            name = f"andor-test-{os.getpid()}-{id(self)}"
            sock.bind("\0" + name)
            return sock, "@" + name
        path = os.path.join(tempfile.mkdtemp(), "notify")
        sock.bind(path)
        return sock, path

    def test_sends_one_datagram(self):
        """The state goes as one datagram to the socket $NOTIFY_SOCKET names, a path or abstract (@)."""
        for abstract in (False, True):
            sock, address = self.listen(abstract)
            self.assertTrue(sd_notify("READY=1\nSTATUS=camera open", {"NOTIFY_SOCKET": address}))
            self.assertEqual(sock.recv(4096), b"READY=1\nSTATUS=camera open")

    def test_not_under_systemd(self):
        """Without $NOTIFY_SOCKET nothing is sent; a socket that is gone is not an error."""
        self.assertFalse(sd_notify("READY=1", {}))
        self.assertFalse(sd_notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"}))

    def test_watchdog_interval(self):
        """Half of WatchdogSec, only for the process systemd watches."""
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=7), 15.0)
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7), 15.0)
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, pid=7))
        self.assertIsNone(watchdog_interval({}, pid=7))


class NotifierTests(unittest.TestCase):
    def test_ready_then_pings(self):
        """READY=1 only once the camera is open; WATCHDOG=1 every interval from the reactor; STOPPING=1 at
        the end, and no pings after it."""
        clock, sent, opened = Clock(), [], defer.Deferred()
        notifier = SystemdNotifier(clock, lambda: opened, notify=lambda state: sent.append(state) or True,
                                   interval=15)
        notifier.startService()
        self.assertEqual(sent, ["WATCHDOG=1"])
        clock.advance(15)
        self.assertEqual(sent, ["WATCHDOG=1"] * 2)
        opened.callback("camera")
        self.assertEqual(sent[-1], "READY=1")
        self.assertEqual(self.successResultOf(opened), "camera")  # the camera service's result passes on
        clock.advance(15)
        self.assertEqual(sent, ["WATCHDOG=1", "WATCHDOG=1", "READY=1", "WATCHDOG=1"])
        notifier.stopService()
        clock.advance(60)
        self.assertEqual(sent[-1], "STOPPING=1")
        self.assertEqual(sent.count("WATCHDOG=1"), 3)

    def test_no_watchdog(self):
        """Without WatchdogSec: READY=1 and no pings."""
        clock, sent = Clock(), []
        notifier = SystemdNotifier(clock, lambda: None, notify=lambda state: sent.append(state) or True, interval=0)
        notifier.startService()
        clock.advance(100)
        self.assertEqual(sent, ["READY=1"])
        self.assertEqual(clock.getDelayedCalls(), [])
