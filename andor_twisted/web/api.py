"""The JSON control API under /api: camera features, exposure, AOI, binning, cooling, snaps.

Every response is JSON except snaps. Reads answer ``{"value": ...}``; writes take ``{"value": ...}``
and answer with the value the camera now has. Errors answer ``{"error": code, "message": text, ...}``
with a 4xx status for a bad request and a 5xx status (naming the SDK's AT_ERR_) for a camera failure;
never a traceback page.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.server import Request

from andor.recording import encode_image

from andor_twisted.acquisition.arbiter import Arbiter, Purpose
from andor_twisted.acquisition.burst import BurstRequest, BurstDiscarded, Bursts, NoSuchBurst
from andor_twisted.acquisition.contracts import CameraSource
from andor_twisted.acquisition.recorder import NoDataDirectory, NoSuchRecording, RecordingExists
from andor_twisted.camera.driver import AndorCamera, Frame
from andor_twisted.camera.errors import (AcquisitionRunning, CameraError, CameraNotReady, CameraTimeout,
                                         InvalidValue, SDKError, UnknownFeature)
from andor_twisted.protocol.access import ANONYMOUS
from andor_twisted.web import inputs
from andor_twisted.web.inputs import InputError
from andor_twisted.web.limits import MAX_BODY_BYTES

STATUS = [  # most specific first
    (UnknownFeature, 404),
    (NoSuchBurst, 404),
    (NoSuchRecording, 404),
    (NoDataDirectory, 409),
    (RecordingExists, 409),
    (BurstDiscarded, 409),
    (InvalidValue, 400),
    (AcquisitionRunning, 409),
    (CameraNotReady, 503),
    (CameraTimeout, 504),
    (SDKError, 500),
    (CameraError, 500),
]
# endpoints that are one camera feature under a friendlier name
FEATURE_ENDPOINTS = {
    "exposure_time": ("ExposureTime", True),
    "sensor_cooling": ("SensorCooling", True),
    "temperature": ("SensorTemperature", False),
    "temperature_setpoint": ("TemperatureControl", True),
    "cooling_status": ("TemperatureStatus", False),
}
SNAP_FORMATS = {"raw": "application/octet-stream", "tiff": "image/tiff", "fits": "application/fits"}
MAX_SNAP_EXPOSURE_S = 3600.0  # a snap's exposure_time parameter, before the camera checks its own range
ANY = object()  # a path segment that matches any name

Handler = Callable[[AndorCamera, Request, list[str]], Any]


@dataclass(frozen=True)
class Route:
    """One endpoint: a method, a path (ANY matches any segment, passed to the handler), the handler, and
    what it needs the camera for (``needs_camera``): the arbiter grants it before the handler runs, or
    refuses the request (409) while a burst has the camera. ``query``: the query parameters it takes
    (any other is refused)."""

    method: str
    path: tuple[object, ...]
    handler: Handler
    needs_camera: Purpose | None = None
    query: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The path pattern, as metrics label it: "/api/features/{name}"."""
        return "/api/" + "/".join("{name}" if part is ANY else str(part) for part in self.path)


class APIError(CameraError):
    """A request the API itself rejects (malformed JSON, unknown path, ...), with its status."""

    def __init__(self, status: int, code: str, message: str, **details: object) -> None:
        super().__init__(message, **details)
        self.status, self.code = status, code


class CameraAPI(resource.Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, camera_service: CameraSource, bursts: Bursts, arbiter: Arbiter,
                 on_request: Callable[[str, str, float], None] | None = None) -> None:
        """``on_request(method, route, seconds)`` is told how long each request took (for /metrics).
        Resources put as children (``putChild(b"health", ...)``) answer /api/NAME in the API's place."""
        super().__init__()
        self.service = camera_service
        self.bursts = bursts
        self.arbiter = arbiter
        self.on_request = on_request
        SETTING, SNAP = Purpose.SETTING, Purpose.SNAP
        self.routes = [
            Route("GET", ("camera",), self.describe_camera),
            Route("GET", ("features",), self.list_features),
            Route("GET", ("features", ANY), self.get_feature),
            Route("PUT", ("features", ANY), self.set_feature, needs_camera=SETTING),
            Route("GET", ("features", ANY, "info"), self.feature_info),
            Route("GET", ("aoi",), lambda cam, req, args: cam.get_aoi()),
            Route("PUT", ("aoi",), lambda cam, req, args: cam.set_aoi(_value(req)), needs_camera=SETTING),
            Route("GET", ("binning",), lambda cam, req, args: cam.get_binning()),
            Route("PUT", ("binning",), lambda cam, req, args: cam.set_binning(_value(req)), needs_camera=SETTING),
            Route("GET", ("fan",), self.get_fan),
            Route("PUT", ("fan",), self.set_fan, needs_camera=SETTING),
            Route("GET", ("temperature_setpoint", "options"),
                  lambda cam, req, args: cam.info("TemperatureControl").addCallback(lambda i: i["available_options"])),
            Route("GET", ("snap",), self.snap, needs_camera=SNAP, query=("format", "exposure_time")),
            # a burst asks the arbiter itself, and holds the camera for as long as it captures
            Route("POST", ("burst",), self.start_burst),
            Route("GET", ("burst",), self.burst_status, query=("ledger",)),
            # a software trigger for the running burst (TriggerMode Software): it does not take the camera
            Route("POST", ("trigger",), lambda cam, req, args: cam.software_trigger()),
            Route("DELETE", ("burst",),
                  lambda cam, req, args: self.bursts.discard().addCallback(lambda b: b.status().to_json())),
            # recordings in the data directory (--data-dir): the list, and one's burst status
            Route("GET", ("recordings",), lambda cam, req, args: self.bursts.recordings.list()),
            Route("GET", ("recordings", ANY),
                  lambda cam, req, args: self.bursts.recordings.open(args[0]).addCallback(_recording_status)),
        ]
        for path, (feature, writable) in FEATURE_ENDPOINTS.items():
            self.routes.append(Route("GET", (path,), _getter(feature)))
            if writable:
                self.routes.append(Route("PUT", (path,), _setter(feature), needs_camera=SETTING))

    # ---- dispatch ----

    def render(self, request: Request) -> Any:
        postpath = request.postpath or []
        if postpath and postpath[0] in self.children and not any(postpath[1:]):  # a leaf: route them here
            return self.children[postpath[0]].render(request)
        started = time.perf_counter()
        method = (request.method or b"").decode("ascii", "replace")
        route = ["(no route)"]  # the route's pattern once matched: a metrics label, so never the raw path
        finished: list[object] = []
        request.notifyFinish().addBoth(finished.append)
        d = defer.maybeDeferred(self._dispatch, request, route)
        d.addCallback(self._respond, request, finished, route)
        d.addErrback(self._fail, request, finished)
        if self.on_request is not None:
            on_request = self.on_request
            d.addBoth(lambda _: on_request(method, route[0], time.perf_counter() - started))
        return server.NOT_DONE_YET

    def _dispatch(self, request: Request, route_name: list[str]) -> Any:
        path = tuple(segment.decode("utf-8", "replace") for segment in request.postpath or () if segment)
        method = (request.method or b"").decode("ascii", "replace")
        inputs.check_content_type(request.getHeader("content-type"), _has_body(request))
        allowed = []
        for route in self.routes:
            args = _match(route.path, path)
            if args is None:
                continue
            if route.method == method:
                route_name[0] = route.name
                query = inputs.check_query(f"/api/{'/'.join(path)}", request.args, route.query)
                request.query = query  # type: ignore[attr-defined]
                camera = self.service.camera()
                call = functools.partial(route.handler, camera, request, args)
                if route.needs_camera is not None:
                    return self.arbiter.run(route.needs_camera, f"{method} /api/{'/'.join(path)}", call)
                return call()
            allowed.append(route.method)
        if not allowed:
            raise APIError(404, "not_found", f"no API endpoint /api/{'/'.join(path)}")
        request.setHeader("Allow", ", ".join(sorted(set(allowed))))
        raise APIError(405, "method_not_allowed", f"/api/{'/'.join(path)} takes {' or '.join(sorted(set(allowed)))}")

    def _respond(self, result: object, request: Request, finished: list[object], route: list[str]) -> None:
        method = request.method or b"GET"
        if method != b"GET":  # a change to the camera or the bursts: who made it
            text = json.dumps(result, default=str)
            self.log.info("{who}: {method} {route} -> {value}", who=who(request), method=method.decode(),
                          route=route[0], uri=(request.uri or b"").decode(), value=_shorten(text),
                          result=_jsonable(result))
        if finished:
            return
        if isinstance(result, Snap):
            result.write(request)
        else:
            _write_json(request, 200, {"value": result})

    def _fail(self, failure: Failure, request: Request, finished: list[object]) -> None:
        error = failure.value
        if isinstance(error, (APIError, InputError)):
            status = error.status
        else:
            status = next((code for cls, code in STATUS if isinstance(error, cls)), 500)
        if isinstance(error, (CameraError, InputError)):
            body = {"error": error.code, "message": error.message, **_jsonable(error.details)}
        else:
            self.log.failure("unexpected error serving {method} {uri}", failure, method=request.method, uri=request.uri)
            body = {"error": "internal_error", "message": f"{type(error).__name__}: {error}"}
        if status >= 500:  # the camera's failure, an error; a camera still opening (503), a warning
            log = self.log.warn if isinstance(error, CameraNotReady) else self.log.error
            log("{method} {uri} -> {status} {message}", method=(request.method or b"").decode(),
                uri=(request.uri or b"").decode(), status=status, message=body["message"])
        if not finished:
            _write_json(request, status, body)

    # ---- handlers ----

    def describe_camera(self, cam: AndorCamera, request: Request, args: list[str]) -> defer.Deferred[Any]:
        names = ("CameraModel", "CameraName", "SerialNumber", "FirmwareVersion", "InterfaceType",
                 "SensorWidth", "SensorHeight", "PixelWidth", "PixelHeight")
        present = [n for n in names if n in cam.features]
        d: defer.Deferred[Any] = defer.gatherResults([cam.get(n) for n in present], consumeErrors=True)
        d.addErrback(_first_failure)
        d.addCallback(lambda values: {**dict(zip(present, values, strict=True)), "camera": self.service.description,
                                      "busy_with": self.arbiter.busy_with()})
        return d

    def list_features(self, cam: AndorCamera, request: Request, args: list[str]) -> dict[str, str]:
        return dict(cam.features)

    def get_feature(self, cam: AndorCamera, request: Request, args: list[str]) -> Any:
        return cam.get(args[0])

    def set_feature(self, cam: AndorCamera, request: Request, args: list[str]) -> Any:
        return cam.set(args[0], _value(request))

    def feature_info(self, cam: AndorCamera, request: Request, args: list[str]) -> Any:
        return cam.info(args[0])

    def get_fan(self, cam: AndorCamera, request: Request, args: list[str]) -> Any:
        return cam.get("FanSpeed").addCallback(lambda speed: {"on": speed != "Off", "speed": speed})

    def set_fan(self, cam: AndorCamera, request: Request, args: list[str]) -> Any:
        """true/false switch the fan fully on or off; a string picks a speed ("Low")."""
        value = _value(request)
        speed = ("On" if value else "Off") if isinstance(value, bool) else value
        d = cam.set("FanSpeed", speed)
        return d.addCallback(lambda speed: {"on": speed != "Off", "speed": speed})

    @defer.inlineCallbacks
    def snap(self, cam: AndorCamera, request: Request, args: list[str]) -> Generator[defer.Deferred[Any], Any, Snap]:
        fmt = _query(request, "format", "raw") or "raw"
        if fmt not in SNAP_FORMATS:
            raise APIError(400, "invalid_option", f"format {fmt[:40]!r} is not one of {sorted(SNAP_FORMATS)}",
                           options=sorted(SNAP_FORMATS))
        asked = _query(request, "exposure_time", None)
        exposure_time = None if asked is None else inputs.seconds("exposure_time", asked, MAX_SNAP_EXPOSURE_S)
        frame = yield cam.snap(exposure_time)
        exposure = yield cam.get("ExposureTime")
        snap = Snap(frame, fmt, exposure)
        yield threads.deferToThread(snap.encode)  # copying or writing out a full frame takes a while
        return snap

    def start_burst(self, cam: AndorCamera, request: Request, args: list[str]) -> defer.Deferred[Any]:
        """Start a burst at once: {"frames": N, "fps": F, "spool": S, "trigger": MODE, "trigger_timeout": T,
        "reader_rate": BYTES_PER_S}; its frames are then read from /stream/burst?id=ID. With
        "dry_run": true, only the plan: what it would do, and nothing captured."""
        burst = BurstRequest.parse(_value(request))
        if burst.dry_run:
            return self.bursts.plan(burst).addCallback(lambda plan: {"plan": plan.to_json()})
        owner = getattr(request, "principal", ANONYMOUS)
        return self.bursts.start(burst, owner).addCallback(lambda started: started.status().to_json())

    def burst_status(self, cam: AndorCamera, request: Request, args: list[str]) -> dict[str, Any]:
        """The newest burst's status; with ?ledger=true, its frame ledger too."""
        burst = self.bursts.get()
        status = burst.status().to_json()
        if inputs.boolean("ledger", _query(request, "ledger", "false") or "false"):
            status["ledger"] = burst.ledger()
        return status


class Snap:
    """A snapped frame on its way out: raw pixels with headers, or a TIFF or FITS file with the same
    metadata a recording has (``andor.recording``): the camera, its settings, and when the exposure
    started, in UTC, with its uncertainty."""

    def __init__(self, frame: Frame, fmt: str, exposure: float) -> None:
        self.frame, self.fmt = frame, fmt
        self.body = b""
        self.metadata: dict[str, Any] = {**frame.settings, "exposure_time_s": exposure, "frame_number": 0}
        if frame.ticks is not None:
            self.metadata["ticks"] = frame.ticks
            self.metadata["tick_frequency_hz"] = frame.tick_frequency
        timebase = frame.timebase
        if timebase is not None and frame.ticks is not None:
            utc = timebase.to_datetime64([frame.ticks])[0]
            self.metadata["date_obs"] = np.datetime_as_string(utc, "ns") + "Z"
            self.metadata["time_uncertainty_s"] = float(timebase.uncertainty_s([frame.ticks])[0])
            self.metadata["utc_trusted"] = timebase.utc_trusted

    def headers(self) -> dict[str, str]:
        f, meta = self.frame, self.metadata
        headers = {"X-Andor-Dtype": f.image.dtype.newbyteorder("<").str,
                   "X-Andor-Shape": "{},{}".format(*f.image.shape),
                   "X-Andor-Exposure-Time": repr(meta["exposure_time_s"])}
        if f.ticks is not None:
            headers["X-Andor-Ticks"] = str(f.ticks)
            headers["X-Andor-Tick-Frequency"] = str(f.tick_frequency)
        if "date_obs" in meta:
            headers["X-Andor-Time"] = meta["date_obs"]
            headers["X-Andor-Time-Uncertainty"] = repr(meta["time_uncertainty_s"])
            headers["X-Andor-UTC-Trusted"] = "true" if meta["utc_trusted"] else "false"
        return headers

    def encode(self) -> None:
        image = self.frame.image
        if self.fmt == "raw":
            self.body = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<")).tobytes()
        else:
            self.body = encode_image(image, self.fmt, self.metadata)

    def write(self, request: Request) -> None:
        request.setResponseCode(200)
        request.setHeader("Content-Type", SNAP_FORMATS[self.fmt])
        for name, value in self.headers().items():
            request.setHeader(name, value)
        if self.fmt != "raw":
            request.setHeader("Content-Disposition", f'attachment; filename="snap.{self.fmt}"')
        request.setHeader("Content-Length", str(len(self.body)))
        request.write(self.body)
        request.finish()


def _recording_status(recording: Any) -> dict[str, Any]:
    status: dict[str, Any] = recording.status()
    recording.close()
    return status
def who(request: Request) -> str:
    """Who made a request, for the log: the client's address (an authenticated user, once there are any)."""
    address = request.getClientAddress()
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)


def _shorten(text: str, most: int = 200) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def _getter(feature: str) -> Handler:
    return lambda cam, request, args: cam.get(feature)


def _setter(feature: str) -> Handler:
    return lambda cam, request, args: cam.set(feature, _value(request))


def _first_failure(failure: Failure) -> Failure:
    """gatherResults' FirstError, as the failure it wraps."""
    error = failure.value
    return error.subFailure if isinstance(error, defer.FirstError) else failure


def _match(pattern: Sequence[object], path: Sequence[str]) -> list[str] | None:
    if len(pattern) != len(path):
        return None
    args = []
    for want, got in zip(pattern, path, strict=True):
        if want is ANY:
            args.append(got)
        elif want != got:
            return None
    return args


def _has_body(request: Request) -> bool:
    if request.getHeader("transfer-encoding") is not None:
        return True
    try:
        return int(request.getHeader("content-length") or 0) > 0
    except ValueError:
        return True


def _value(request: Request) -> Any:
    """The ``value`` of a JSON request body ``{"value": ...}``."""
    raw = request.content.read(MAX_BODY_BYTES + 1) if request.content is not None else b""
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, "body_too_large", f"request bodies are at most {MAX_BODY_BYTES} bytes")
    if not raw:
        raise APIError(400, "missing_value", 'this request takes a JSON body {"value": ...}')
    body = inputs.loads(raw)
    if not isinstance(body, dict) or "value" not in body:
        raise APIError(400, "missing_value", 'the request body is a JSON object {"value": ...}')
    unknown = sorted(set(body) - {"value"})
    if unknown:
        raise APIError(400, "unknown_field", f'the request body has only "value", not {unknown[0][:40]!r}')
    return body["value"]


def _query(request: Request, name: str, default: str | None) -> str | None:
    """A query parameter, as ``_dispatch`` checked them against the route."""
    query: dict[str, str] = getattr(request, "query", {})
    return query.get(name, default)


def _write_json(request: Request, status: int, body: object) -> None:
    data = json.dumps(body, allow_nan=False, default=str).encode()
    request.setResponseCode(status)
    request.setHeader("Content-Type", "application/json")
    request.setHeader("Content-Length", str(len(data)))
    request.write(data)
    request.finish()


def _jsonable(details: object) -> Any:
    return json.loads(json.dumps(details, default=str))
