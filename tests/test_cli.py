"""The ``andor`` command line against a loopback server: snap, burst to a file, status, get and set."""

import contextlib
import io
import json
import os

import h5py
import numpy as np
from astropy.io import fits
from twisted.internet import defer, threads
from twisted.trial import unittest

from andor import cli

from tests.helpers import LoopbackServer


class CommandLineFixture(unittest.TestCase):
    server_args = ()

    @defer.inlineCallbacks
    def setUp(self):
        self.server = LoopbackServer()
        yield self.server.start(*self.server_args)
        yield threads.deferToThread(self.server.cam.aoi, {"width": 64, "height": 32})

    def tearDown(self):
        return self.server.stop()

    def andor(self, *argv):
        """(exit status, stdout, stderr) of ``andor --server ADDRESS ARGV``, run in a thread."""
        def run():
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = cli.main(["--server", self.server.address, *argv])
            return status, out.getvalue(), err.getvalue()
        return threads.deferToThread(run)


class CommandLineTests(CommandLineFixture):
    @defer.inlineCallbacks
    def test_snap(self):
        """andor snap writes a FITS file with the camera's metadata (and .npy for numpy)."""
        path = self.mktemp() + ".fits"
        status, out, _ = yield self.andor("snap", path, "--exposure", "2ms")
        self.assertEqual((status, out.strip()), (0, path))
        with fits.open(path) as hdus:
            self.assertEqual(hdus[0].data.shape, (32, 64))
            self.assertEqual(hdus[0].header["EXPTIME"], 0.002)
        path = self.mktemp() + ".npy"
        yield self.andor("snap", path)
        self.assertEqual(np.load(path).shape, (32, 64))

    @defer.inlineCallbacks
    def test_burst_to_a_file(self):
        """andor burst N --fps F --spool S -o run.h5 records the burst and says how it went."""
        path = self.mktemp() + ".h5"
        status, out, err = yield self.andor("burst", "20", "--fps", "100", "--spool", "5", "-o", path,
                                            "--no-progress")
        self.assertEqual(status, 0, err)
        self.assertIn("20 frames, 0 late, 0 lost", err)
        with h5py.File(path) as f:
            self.assertEqual(f["frames"].shape, (20, 32, 64))

    @defer.inlineCallbacks
    def test_status_get_set(self):
        status, out, _ = yield self.andor("set", "ExposureTime", "0.004")
        self.assertEqual((status, json.loads(out)), (0, 0.004))
        status, out, _ = yield self.andor("set", "PixelEncoding", "Mono32")
        self.assertEqual(json.loads(out), "Mono32")
        status, out, _ = yield self.andor("get", "SensorCooling")
        self.assertIs(json.loads(out), False)
        status, out, _ = yield self.andor("status")
        self.assertEqual(json.loads(out)["camera"]["CameraModel"], "DC-152Q-C00-FI")

    @defer.inlineCallbacks
    def test_errors_are_one_line(self):
        """A refused request is one line on stderr and exit status 1."""
        status, out, err = yield self.andor("set", "ExposureTime", "100")
        self.assertEqual(status, 1)
        self.assertEqual(len(err.strip().splitlines()), 1)
        self.assertIn("out of range", err)


class ServerRecordingCommandLineTests(CommandLineFixture):
    """A server with a data directory: a burst recorded there, listed and fetched."""

    def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.server_args = ("--data-dir", directory)
        return super().setUp()

    @defer.inlineCallbacks
    def test_record_list_fetch(self):
        status, out, err = yield self.andor("burst", "12", "--fps", "100", "--record", "r1")
        self.assertEqual((status, out.strip()), (0, "r1.h5"), err)
        self.assertIn("recorded on the server as r1.h5", err)
        self.assertIn("12 frames, 0 late, 0 lost", err)
        status, out, _ = yield self.andor("recordings")
        self.assertEqual(out.split("\t")[0], "r1.h5")
        path = self.mktemp() + ".fits"
        status, out, err = yield self.andor("fetch", "r1.h5", "-o", path, "--no-progress")
        self.assertEqual((status, out.strip()), (0, path), err)
        with fits.open(path) as hdus:
            self.assertEqual(hdus[0].data.shape, (12, 32, 64))
            self.assertEqual(hdus[0].header["FRATE"], 100.0)

    @defer.inlineCallbacks
    def test_a_burst_needs_a_destination(self):
        status, _, err = yield self.andor("burst", "12")
        self.assertEqual(status, 1)
        self.assertIn("-o FILE (here), --record NAME (on the server)", err)
