"""The one twisted.web Site: the viewer page at /, its files under /static, the control API under /api,
frame streams (WebSocket) under /stream."""

import os

from twisted.web import resource, server, static

from andor_twisted.web import stream
from andor_twisted.web.api import CameraAPI

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class Site(server.Site):
    """Logs the requests that change something or fail, not every poll of an open viewer (several a second,
    for months, in the journal)."""

    def log(self, request):
        if request.method != b"GET" or request.code >= 400:
            super().log(request)


def make_site(camera_service, bursts, live):
    root = resource.Resource()
    root.putChild(b"", static.File(os.path.join(STATIC, "index.html"), defaultType="text/html"))
    files = static.File(STATIC)
    files.contentTypes = {**files.contentTypes, ".js": "text/javascript", ".mjs": "text/javascript",
                          ".css": "text/css", ".json": "application/json"}
    root.putChild(b"static", files)
    root.putChild(b"api", CameraAPI(camera_service, bursts, live))
    streams = resource.Resource()
    streams.putChild(b"burst", stream.stream_resource(stream.BurstStreamProtocol, bursts=bursts))
    streams.putChild(b"live", stream.stream_resource(stream.LiveStreamProtocol, live=live))
    root.putChild(b"stream", streams)
    site = Site(root)
    site.displayTracebacks = False
    return site
