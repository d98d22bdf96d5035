"""The twistd plugin and its command line."""

import importlib.metadata
from unittest import mock

from twisted.application.service import IServiceMaker, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

from andor_twisted import tap
from andor_twisted.camera.devices import Choice
from andor_twisted.camera import sdk3


class PluginTests(unittest.TestCase):
    def test_listed(self):
        """twistd finds the 'andor' service maker, pointing at andor_twisted.tap."""
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("andor", makers)
        self.assertEqual(makers["andor"].module, "andor_twisted.tap")

    def test_installed_distribution_ships_the_plugin(self):
        """A regular install of andor-twisted puts the plugin file under twisted/plugins.

        (Run from a checkout, getPlugins also sees the source tree, so this checks the package.)
        """
        files = {str(f) for f in importlib.metadata.distribution("andor-twisted").files}
        self.assertIn("twisted/plugins/andor_twisted_plugin.py", files)
        self.assertNotIn("twisted/plugins/__init__.py", files)


class OptionsTests(unittest.TestCase):
    def parse(self, *argv):
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self):
        """No arguments: the simulated Neo on 127.0.0.1:8000, model values for the simulation."""
        options = self.parse()
        self.assertEqual(options["listen"], ["tcp:8000:interface=127.0.0.1"])
        self.assertEqual(options["camera"], "sim")
        self.assertEqual(options["sim-model"], "neo")
        self.assertIsNone(options["sim-onboard-memory"])
        self.assertGreater(options["spool-memory-limit"], 0)

    def test_all_options(self):
        """Every option of the command-line contract parses, sizes with their suffixes."""
        options = self.parse("--listen", "tcp:0:interface=127.0.0.1", "--listen", "unix:/tmp/x.sock",
                             "--sim-model", "zyla",
                             "--sim-onboard-memory", "64MiB", "--sim-link-rate", "100MB",
                             "--sim-arm-latency", "0.5", "--spool-memory-limit", "2GiB")
        self.assertEqual(options["listen"], ["tcp:0:interface=127.0.0.1", "unix:/tmp/x.sock"])
        self.assertEqual(options["sim-onboard-memory"], 64 * 2**20)
        self.assertEqual(options["sim-link-rate"], 100_000_000)
        self.assertEqual(options["sim-arm-latency"], 0.5)
        self.assertEqual(options["spool-memory-limit"], 2 * 2**30)

    def test_sizes(self):
        """Sizes take plain bytes and decimal or binary suffixes."""
        for text, value in [("1024", 1024), ("4GB", 4_000_000_000), ("4 GiB", 4 * 2**30), ("1.5MB", 1_500_000),
                            ("512KiB", 512 * 1024), ("10B", 10)]:
            self.assertEqual(tap.parse_size(text), value, text)
        for bad in ["", "-1", "4XB", "GB", "1e3"]:
            self.assertRaises(ValueError, tap.parse_size, bad)

    def test_bad_options(self):
        """Bad options end in a one-line UsageError saying what is wrong."""
        cases = [
            (["--camera", "usb"], "sdk3[:INDEX|:serial=SERIAL|:simcam]"),
            (["--camera", "sdk3:serial="], ":serial=SERIAL"),
            (["--sim-overflow", "explode"], "throttle, abort, hang, error"),
            (["--sim-model", "ixon"], "neo, zyla, zyla-usb3, zyla5.5, sona, balor, ideal"),
            (["--sim-onboard-memory", "lots"], "not a size"),
            (["--sim-arm-latency", "-1"], "negative"),
            (["--frobnicate"], "frobnicate"),
        ]
        for argv, message in cases:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(*argv)
            self.assertIn(message, str(caught.exception), argv)
            self.assertNotIn("\n", str(caught.exception).strip(), argv)

    def test_real_camera_without_sdk(self):
        """--camera sdk3:N without pyAndorSDK3 refuses to start, saying how to install Andor SDK3."""
        with mock.patch.dict("sys.modules", {"pyAndorSDK3": None}):
            with self.assertRaises(usage.UsageError) as caught:
                self.parse("--camera", "sdk3:0")
        self.assertIn("Andor SDK3", str(caught.exception))
        self.assertIn("pip install", str(caught.exception))

    def test_real_camera_with_sdk(self):
        """With pyAndorSDK3 importable, the provider is its low-level ATCore and ATCoreException; sdk3:N,
        sdk3:serial=S and sdk3:simcam choose a camera."""
        fake = mock.Mock(__version__="1.22.6")
        with mock.patch.dict("sys.modules", {"pyAndorSDK3": fake, "pyAndorSDK3.andor_sdk3_internals":
                                             fake.andor_sdk3_internals}):
            for argv, choice in [("sdk3:2", Choice(index=2)), ("sdk3:serial=VSC-01234", Choice(serial="VSC-01234")),
                                 ("sdk3:simcam", Choice(simcam=True)), ("sdk3", Choice())]:
                self.assertEqual(self.parse("--camera", argv)["camera-choice"], choice, argv)
            provider = sdk3.load()
        self.assertIs(provider.make_core, fake.andor_sdk3_internals.ATCore)
        self.assertIs(provider.error, fake.andor_sdk3_internals.ATCoreException)
        self.assertEqual(provider.name, "pyAndorSDK3 1.22.6")

    def test_make_service(self):
        """makeService builds the camera service, the live view and the bursts (stopped in reverse, so the
        camera closes last), then one server per --listen, then the systemd notifier (stopped first)."""
        options = self.parse("--listen", "tcp:0:interface=127.0.0.1", "--listen", "tcp:0:interface=127.0.0.2")
        top = tap.makeService(options, reactor=MemoryReactorClock())
        self.assertIsInstance(top, MultiService)
        children = list(top)
        self.assertEqual([type(c).__name__ for c in children][:3], ["CameraService", "LiveView", "Bursts"])
        self.assertEqual(len(children), 6)
        self.assertEqual([c.name for c in children],
                         ["camera", "live", "bursts", "listen 0", "listen 1", "systemd"])
        self.assertIn("simulated neo", children[0].description)
        live, bursts = top.getServiceNamed("live"), top.getServiceNamed("bursts")
        self.assertIs(live.arbiter, bursts.arbiter)  # one arbiter of the camera

    def test_camera_open_failure_stops_with_an_error_status(self):
        """A camera that cannot be opened stops the reactor, and the process exits 1 after shutdown,
        so systemd's Restart=on-failure tries again."""
        import os

        from twisted.python.failure import Failure

        reactor = MemoryReactorClock()
        top = tap.makeService(self.parse("--listen", "tcp:0:interface=127.0.0.1"), reactor=reactor)
        camera_service = list(top)[0]
        camera_service.on_open_failure(Failure(RuntimeError("AT_ERR_DEVICENOTFOUND")))
        self.assertIn((os._exit, (1,), {}), reactor.triggers["after"]["shutdown"])
        reactor.advance(0)
        self.assertFalse(reactor.running)
        self.assertTrue(reactor.hasStopped)


class JournalTests(unittest.TestCase):
    def test_lines_carry_priority_not_time(self):
        """Journal lines start with a syslog priority and carry no timestamp of their own."""
        import io

        from twisted.logger import Logger, LogPublisher

        from andor_twisted import journal

        out = io.StringIO()
        publisher = LogPublisher(journal.observer(out))
        log = Logger(namespace="andor", observer=publisher)
        log.info("camera {name} open", name="neo")
        log.error("link lost")
        self.assertEqual(out.getvalue(), "<6>[andor#info] camera neo open\n<3>[andor#error] link lost\n")

    def test_json_lines_carry_priority(self):
        """The journal's JSON observer: each line a priority, then the JSON of --log-format json."""
        import io
        import json

        from twisted.logger import Logger, LogPublisher

        from andor_twisted import journal

        out = io.StringIO()
        log = Logger(namespace="andor", observer=LogPublisher(journal.json_observer(out)))
        log.info("camera {name} open", name="neo")
        log.error("link lost")
        first, second = out.getvalue().splitlines()
        self.assertEqual((first[:3], second[:3]), ("<6>", "<3>"))
        self.assertEqual(json.loads(first[3:])["message"], "camera neo open")
        self.assertEqual(json.loads(second[3:])["level"], "error")
