"""The one twisted.web Site: the viewer page at /, its files under /static, the control API under /api
(with /api/health), frame streams (WebSocket) under /stream, Prometheus' /metrics."""

from __future__ import annotations

import os

from typing import Any

from twisted.web import http, resource, server, static

from andor_twisted.acquisition.arbiter import Arbiter
from andor_twisted.acquisition.burst import Bursts
from andor_twisted.acquisition.contracts import CameraSource
from andor_twisted.acquisition.live import LiveView
from andor_twisted.stream.protocols import (BurstStreamProtocol, LiveStreamProtocol, RecordingStreamProtocol,
                                           stream_resource)
from andor_twisted.web.api import CameraAPI
from andor_twisted.web.health import HealthCheck, HealthResource
from andor_twisted.web.metrics import Metrics

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class Site(server.Site):
    """Logs the requests that change something or fail, not every poll of an open viewer (several a second,
    for months, in the journal)."""

    def log(self, request: http.Request) -> None:
        if request.method != b"GET" or request.code >= 400:
            super().log(request)


def make_site(camera_service: CameraSource, bursts: Bursts, live: LiveView, arbiter: Arbiter,
              metrics: Metrics | None = None, health: HealthCheck | None = None) -> Site:
    # Any: twisted.web's signatures ask for zope's IResource, which mypy cannot see a Resource provides
    root: Any = resource.Resource()
    root.putChild(b"", static.File(os.path.join(STATIC, "index.html"), defaultType="text/html"))
    files = static.File(STATIC)
    files.contentTypes = {**files.contentTypes, ".js": "text/javascript", ".mjs": "text/javascript",
                          ".css": "text/css", ".json": "application/json"}
    root.putChild(b"static", files)
    api: Any = CameraAPI(camera_service, bursts, arbiter, metrics.observe_request if metrics else None)
    root.putChild(b"api", api)
    # the operations resources, next to the API: whatever guards /api should guard these too
    if health is not None:
        api.putChild(b"health", HealthResource(health))
    if metrics is not None:
        root.putChild(b"metrics", metrics.resource())
    streams: Any = resource.Resource()
    streams.putChild(b"burst", stream_resource(BurstStreamProtocol, bursts=bursts))
    streams.putChild(b"live", stream_resource(LiveStreamProtocol, live=live))
    streams.putChild(b"recording", stream_resource(RecordingStreamProtocol, recordings=bursts.recordings))
    root.putChild(b"stream", streams)
    site = Site(root)
    site.displayTracebacks = False
    return site
