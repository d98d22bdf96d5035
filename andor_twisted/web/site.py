"""The one twisted.web Site: the control API under /api and a landing page at /."""

from html import escape

from twisted.web import resource, server

from andor_twisted.web.api import CameraAPI


class LandingPage(resource.Resource):
    isLeaf = True

    def __init__(self, camera_service):
        super().__init__()
        self.service = camera_service

    def render_GET(self, request):
        request.setHeader("Content-Type", "text/html; charset=utf-8")
        camera = escape(self.service.description)
        return (
            "<!doctype html><meta charset=utf-8><title>andor-twisted</title>"
            f"<h1>andor-twisted</h1><p>Camera: {camera}</p>"
            "<p>Control API: <a href=api/camera>/api/camera</a>, <a href=api/features>/api/features</a>, "
            "<a href=api/snap?format=tiff>/api/snap?format=tiff</a>. See the README for the rest.</p>"
        ).encode()


def make_site(camera_service):
    root = resource.Resource()
    root.putChild(b"", LandingPage(camera_service))
    root.putChild(b"api", CameraAPI(camera_service))
    site = server.Site(root)
    site.displayTracebacks = False
    return site
