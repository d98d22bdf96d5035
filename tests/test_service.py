"""The camera service's lifecycle: open at start, stop acquisition and close at stop."""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from andor_twisted import tap
from andor_twisted.camera.devices import Choice
from andor_twisted.camera.errors import CameraNotReady
from andor_twisted.service import CameraService

from tests.helpers import SIM_OPTIONS, sdk_with_camera_in_use



class ServiceTests(unittest.TestCase):
    def service(self, sdk=None, on_open_failure=None):
        service = CameraService(sdk or tap.simulated_sdk(SIM_OPTIONS), Choice(), reactor, "simulated neo",
                                on_open_failure)
        self.addCleanup(lambda: service.running and service.stopService())  # never leave the SDK thread behind
        return service

    def device(self, service):
        """The simulated device the service's camera is."""
        return service.sdk.simulated.devices[service.camera().device.index]

    @defer.inlineCallbacks
    def test_start_opens_stop_closes(self):
        """startService opens the camera; stopService closes it and ends the SDK thread."""
        service = self.service()
        self.assertRaises(CameraNotReady, service.camera)
        service.startService()
        yield service.opened
        sdk_cam = self.device(service)
        self.assertTrue(sdk_cam.is_open)
        yield service.stopService()
        self.assertFalse(sdk_cam.is_open)
        self.assertTrue(service._pool.joined)
        self.assertFalse(any(thread.is_alive() for thread in service._pool.threads))
        self.assertRaises(CameraNotReady, service.camera)

    @defer.inlineCallbacks
    def test_stop_during_exposure(self):
        """Stopping mid-snap stops the acquisition, closes the camera, and fails the snap cleanly: with
        CameraNotReady (HTTP 503) saying the camera was closed, not a hang, a success or an SDK error."""
        service = self.service()
        service.startService()
        yield service.opened
        camera = service.camera()
        yield camera.set("ExposureTime", 20.0)
        snap = camera.snap()
        sdk_cam = self.device(service)
        yield service.stopService()
        self.assertFalse(sdk_cam.is_open)
        self.assertFalse(sdk_cam._timeline)
        error = yield self.assertFailure(snap, CameraNotReady)
        self.assertIn("closed", str(error))
        self.assertIsNone(camera.acquiring)

    @defer.inlineCallbacks
    def test_open_failure_reported(self):
        """A camera that cannot be opened is reported once, with the SDK's reason."""
        failures = []
        service = self.service(sdk_with_camera_in_use(), failures.append)
        service.startService()
        yield service.opened
        self.assertEqual(len(failures), 1)
        self.assertIn("AT_ERR_DEVICEINUSE", failures[0].getErrorMessage())
        with self.assertRaises(CameraNotReady) as caught:
            service.camera()
        self.assertIn("AT_ERR_DEVICEINUSE", str(caught.exception))
        yield service.stopService()
