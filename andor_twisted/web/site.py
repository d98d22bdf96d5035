"""The one twisted.web Site: the viewer page at /, its files under /static, the control API under /api
(with /api/health), frame streams (WebSocket) under /stream, Prometheus' /metrics."""

from __future__ import annotations

import os

from typing import Any

from twisted.logger import Logger
from twisted.web import http, resource, server, static

from andor_twisted.acquisition.arbiter import Arbiter
from andor_twisted.acquisition.burst import Bursts
from andor_twisted.acquisition.contracts import CameraSource
from andor_twisted.acquisition.live import LiveView
from andor_twisted.stream.protocols import (PING_INTERVAL, PING_TIMEOUT, BurstStreamProtocol, LiveStreamProtocol,
                                           RecordingStreamProtocol, stream_resource)
from andor_twisted.web.api import CameraAPI
from andor_twisted.web.guard import Guard, peer
from andor_twisted.web.health import HealthCheck, HealthResource
from andor_twisted.web.limits import (HEADER_TIMEOUT, IDLE_TIMEOUT, ConnectionLimits, LimitedChannel, LimitedRequest,
                                      Refuser)
from andor_twisted.web.metrics import Metrics

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class Site(server.Site):
    """Every request passes the ``guard`` first (web/guard.py). Logs the requests that change something
    or fail, not every poll of an open viewer (several a second, for months, in the journal)."""

    guard = Guard()
    limits = ConnectionLimits()
    audit = Logger(namespace="andor_twisted.audit")
    protocol = LimitedChannel  # type: ignore[assignment]  # HTTP/1.1 only (twisted's default also offers HTTP/2 over TLS)
    requestFactory = LimitedRequest
    header_timeout = HEADER_TIMEOUT

    def buildProtocol(self, addr: Any) -> Any:
        """A channel, or a refusal (503) for a connection over the caps."""
        admitted = self.limits.admit(str(getattr(addr, "host", addr)))
        if isinstance(admitted, str):
            return Refuser(admitted)
        channel = super().buildProtocol(addr)
        channel.release = admitted
        channel.holds = admitted.holds  # type: ignore[attr-defined]
        channel.header_timeout = self.header_timeout
        return channel

    def getResourceFor(self, request: server.Request) -> Any:
        request.site = self
        refusal = self.guard.check(request)
        return refusal if refusal is not None else super().getResourceFor(request)

    def log(self, request: http.Request) -> None:
        if request.method not in (b"GET", b"HEAD"):
            # the audit trail: who (the token's name) changed what, from where, and the answer
            who = getattr(request, "principal", None)
            self.audit.info("audit: {name} ({role}) from {peer}: {method} {path} -> {code}",
                            name=getattr(who, "name", "-"), role=getattr(getattr(who, "role", None), "value", "-"),
                            peer=peer(request), method=(request.method or b"").decode("latin-1"),
                            path=(request.path or b"").decode("latin-1")[:200], code=request.code)
        if request.method != b"GET" or request.code >= 400:
            super().log(request)


def make_site(camera_service: CameraSource, bursts: Bursts, live: LiveView, arbiter: Arbiter,
              guard: Guard | None = None, ping_interval: float = PING_INTERVAL,
              ping_timeout: float = PING_TIMEOUT, limits: ConnectionLimits | None = None,
              idle_timeout: float = IDLE_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
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
    pings = {"ping_interval": ping_interval, "ping_timeout": ping_timeout}
    streams.putChild(b"burst", stream_resource(BurstStreamProtocol, **pings, bursts=bursts))
    streams.putChild(b"live", stream_resource(LiveStreamProtocol, **pings, live=live))
    streams.putChild(b"recording", stream_resource(RecordingStreamProtocol, **pings, recordings=bursts.recordings))
    root.putChild(b"stream", streams)
    site = Site(root, timeout=idle_timeout)
    site.guard = guard or Guard()
    site.limits = limits or ConnectionLimits()
    site.header_timeout = header_timeout
    site.displayTracebacks = False
    return site
