"""The arbiter of the camera, with Deferreds only (no reactor, no camera): who gets it, who waits, who is
refused, and who steps aside."""

from twisted.internet import defer
from twisted.trial import unittest

from andor_twisted.acquisition.arbiter import Arbiter, Purpose
from andor_twisted.camera.errors import AcquisitionRunning


class LiveView:
    """Stands in for the live view: asks at the lowest priority and records when it is asked to step aside."""

    def __init__(self, arbiter):
        self.arbiter, self.asked = arbiter, []
        self.request = arbiter.request(Purpose.LIVE_VIEW, "live view", self.asked.append)


class ArbiterTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.arbiter = Arbiter()

    def test_priorities_are_declared(self):
        """A burst outranks a snap and a setting, which outrank the live view; only the live view steps aside."""
        self.assertEqual([p.priority for p in (Purpose.LIVE_VIEW, Purpose.SETTING, Purpose.SNAP, Purpose.BURST)],
                         [0, 1, 1, 2])
        self.assertEqual([p for p in Purpose if p.steps_aside], [Purpose.LIVE_VIEW])

    def test_free_camera_granted_at_once(self):
        """Nobody has the camera: any request is granted at once, and released it is free again."""
        for purpose in Purpose:
            grant = self.successResultOf(self.arbiter.request(purpose, purpose.value))
            self.assertEqual(self.arbiter.busy_with(), purpose.value)
            grant.release()
            grant.release()  # twice: nothing more
            self.assertIsNone(self.arbiter.busy_with())

    def test_burst_refuses_snaps_and_settings(self):
        """While a burst has the camera, snaps and settings are refused with AcquisitionRunning naming it."""
        burst = self.successResultOf(self.arbiter.request(Purpose.BURST, "burst 3"))
        for purpose in (Purpose.SNAP, Purpose.SETTING):
            error = self.failureResultOf(self.arbiter.request(purpose, "PUT /api/aoi"), AcquisitionRunning).value
            self.assertEqual((error.code, error.details), ("acquisition_running", {"busy_with": "burst 3"}))
            self.assertIn("busy with burst 3", error.message)
        burst.release()
        self.successResultOf(self.arbiter.request(Purpose.SNAP, "GET /api/snap"))

    def test_live_view_steps_aside_and_comes_back(self):
        """A snap asks the live view to step aside (saying why) and gets the camera once it has; the live
        view's next request waits, and is granted when the snap is done."""
        live = LiveView(self.arbiter)
        live_grant = self.successResultOf(live.request)
        snap = self.arbiter.request(Purpose.SNAP, "GET /api/snap")
        self.assertEqual(live.asked, ["GET /api/snap"])
        self.assertNoResult(snap)
        live_grant.release()
        snap_grant = self.successResultOf(snap)
        again = LiveView(self.arbiter)
        self.assertNoResult(again.request)
        self.assertEqual(self.arbiter.busiest().reason, "GET /api/snap")
        snap_grant.release()
        self.successResultOf(again.request)

    def test_snaps_and_settings_share(self):
        """Snaps and settings share the camera with each other (the driver refuses what the camera cannot
        do at once)."""
        setting = self.successResultOf(self.arbiter.request(Purpose.SETTING, "PUT /api/fan"))
        snap = self.successResultOf(self.arbiter.request(Purpose.SNAP, "GET /api/snap"))
        setting.release()
        snap.release()

    def test_burst_waits_for_a_snap_and_blocks_new_ones(self):
        """A burst waits for a snap that has the camera; meanwhile new snaps and settings are refused (it
        waits with a higher priority), and the live view waits behind it."""
        snap = self.successResultOf(self.arbiter.request(Purpose.SNAP, "GET /api/snap"))
        burst = self.arbiter.request(Purpose.BURST, "burst 1")
        self.assertNoResult(burst)
        self.failureResultOf(self.arbiter.request(Purpose.SETTING, "PUT /api/aoi"), AcquisitionRunning)
        live = LiveView(self.arbiter)
        snap.release()
        burst_grant = self.successResultOf(burst)
        self.assertNoResult(live.request)
        self.assertEqual(live.asked, [])  # it never had the camera
        burst_grant.release()
        self.successResultOf(live.request)

    def test_withdrawn_request(self):
        """Cancelling a waiting request withdraws it: it fails with CancelledError and blocks nobody."""
        snap = self.successResultOf(self.arbiter.request(Purpose.SNAP, "GET /api/snap"))
        burst = self.arbiter.request(Purpose.BURST, "burst 1")
        live = LiveView(self.arbiter)
        burst.cancel()
        self.failureResultOf(burst, defer.CancelledError)
        self.successResultOf(self.arbiter.request(Purpose.SETTING, "PUT /api/aoi")).release()
        snap.release()
        self.successResultOf(live.request)

    def test_run(self):
        """run() holds the camera for an operation and gives it back however the operation ends."""
        seen = []
        result = self.successResultOf(self.arbiter.run(Purpose.SETTING, "PUT /api/fan",
                                                       lambda: seen.append(self.arbiter.busy_with()) or 7))
        self.assertEqual((result, seen, self.arbiter.busy_with()), (7, ["PUT /api/fan"], None))
        self.failureResultOf(self.arbiter.run(Purpose.SNAP, "GET /api/snap", lambda: 1 / 0), ZeroDivisionError)
        self.assertIsNone(self.arbiter.busy_with())
