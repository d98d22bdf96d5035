"""``Camera``: a blocking client of one andor-twisted server, over HTTP (and WebSocket for bursts).

Method names follow the client this server replaces, so existing lab scripts keep working.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import urllib.parse
from dataclasses import dataclass
from collections.abc import Callable
from email.message import Message
from typing import Any

import numpy as np

from andor.burst import BurstFrames
from andor.errors import ServerUnreachable, error_for

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(s|ms|us|µs|ns|min)?\s*$")
_SECONDS_PER = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0}


def parse_seconds(value: float | str) -> float:
    """Seconds from a number or a string such as "25ms", "1.5 s", "200us"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a duration: use seconds or a string like '25ms', '1.5s', '200us'")
    return float(match.group(1)) * _SECONDS_PER[match.group(2)]


@dataclass(frozen=True)
class SnapFrame:
    """A snapped frame and when its exposure started: ``time`` in UTC (numpy datetime64[ns]) give or take
    ``time_uncertainty_s`` (``utc_trusted`` False: the server's clock was not synchronised), ``timestamp``
    in seconds on the camera's clock. None where the camera gives no time."""

    image: np.ndarray
    time: np.datetime64 | None
    time_uncertainty_s: float | None
    utc_trusted: bool | None
    timestamp: float | None
    exposure_time: float


class Camera:
    """One camera server, at ``addr`` ("host:port", "http://host:port" or "https://host:port").

    ``token``: the server's token for this user (default: $ANDOR_TOKEN), needed when the server listens
    beyond loopback. ``verify`` (https only): True (the system's certificate authorities), the path of a
    CA file (a self-signed server's certificate, say), or False (no check: only for a trial)."""

    def __init__(self, addr: str, timeout: float = 60.0, token: str | None = None,
                 verify: bool | str = True) -> None:
        if "://" not in addr:
            addr = "http://" + addr
        url = urllib.parse.urlsplit(addr)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{addr!r} is not host:port, http://host:port or https://host:port")
        self.scheme = url.scheme
        self.host, self.port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
        self.timeout = timeout
        self.token = token if token is not None else os.environ.get("ANDOR_TOKEN") or None
        self.ssl_context = _ssl_context(verify) if url.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:
        scheme = "https://" if self.scheme == "https" else ""
        return f"Camera('{scheme}{self.host}:{self.port}')"

    @property
    def auth_headers(self) -> dict[str, str]:
        """What every request (and the streams' handshakes) carry: the token, if any."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def stream_url(self, path: str) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://{self.host}:{self.port}{path}"

    def _connect(self) -> http.client.HTTPConnection:
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    # ---- HTTP ----

    def _request(self, method: str, path: str, value: object = None, query: dict[str, str] | None = None,
                 into: Callable[[int], bytearray] | None = None) -> tuple[Message, bytes | bytearray]:
        """One request; returns (headers, body). Raises AndorError for error statuses.

        With ``into(length)`` returning a writable buffer, a successful body is read into that buffer.
        """
        url = "/api/" + path + ("?" + urllib.parse.urlencode(query) if query else "")
        body = None if value is None else json.dumps({"value": value}).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        headers.update(self.auth_headers)
        data: bytes | bytearray = b""
        for attempt in (1, 2):  # a kept-alive connection the server closed is retried once
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.request(method, url, body=body, headers=headers)
                response = self._conn.getresponse()
                length = response.getheader("Content-Length")
                if into is not None and response.status < 400 and length is not None:
                    data = into(int(length))
                    if response.readinto(data) != len(data):
                        self.close()
                        raise ServerUnreachable(f"the server at {self.host}:{self.port} closed the connection "
                                                f"in the middle of its answer")
                else:
                    data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt == 2:
                    raise ServerUnreachable(f"the server at {self.host}:{self.port} dropped the connection: {e}") from e
            except OSError as e:
                self.close()
                raise ServerUnreachable(f"cannot reach the camera server at {self.host}:{self.port}: {e}") from None
        if response.status >= 400:
            try:
                payload = json.loads(data)
            except ValueError:
                payload = {"message": data.decode("utf-8", "replace")[:500] or response.reason}
            raise error_for(response.status, payload)
        return response.headers, data

    def _get(self, path: str, **query: str) -> Any:
        return json.loads(self._request("GET", path, query=query or None)[1])["value"]

    def _put(self, path: str, value: object) -> Any:
        return json.loads(self._request("PUT", path, value)[1])["value"]

    def _post(self, path: str, value: object) -> Any:
        return json.loads(self._request("POST", path, {} if value is None else value)[1])["value"]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- features ----

    @property
    def features(self) -> dict[str, str]:
        """{name: type} of every feature the camera implements; types are float, int, bool, enum,
        string and command."""
        return self._get("features")

    def get_feature(self, name: str) -> Any:
        return self._get("features/" + urllib.parse.quote(name))

    def set_feature(self, name: str, value: object) -> Any:
        """Set a feature; returns the value the camera now reports."""
        return self._put("features/" + urllib.parse.quote(name), value)

    def get_feature_info(self, name: str) -> dict[str, Any]:
        """{"type", "value", and "min"/"max" for numbers or "options"/"available_options" for enums}."""
        info = self._get(f"features/{urllib.parse.quote(name)}/info")
        info.pop("name", None)
        return info

    # ---- the common settings ----

    def exposure_time(self, t: float | str | None = None) -> float:
        """The exposure time in seconds; with ``t`` (seconds, or a string like "25ms") set it first."""
        if t is None:
            return self._get("exposure_time")
        return self._put("exposure_time", parse_seconds(t))

    def aoi(self, dict_: dict[str, int] | None = None) -> dict[str, int]:
        """The area of interest in sensor pixels, {"left", "top", "width", "height"}, left/top from 1.
        With ``dict_``, change the keys it has; the others stay."""
        if dict_ is None:
            return self._get("aoi")
        return self._put("aoi", dict(dict_))

    def binning(self, fctr: int | str | None = None) -> int | str:
        """The binning factor (2 for 2x2); with ``fctr`` set it, keeping the AOI's region of the sensor."""
        value = self._get("binning") if fctr is None else self._put("binning", fctr)
        h, _, v = value.partition("x")
        return int(h) if h == v else value

    def fan(self, on: bool | str | None = None) -> bool:
        """Whether the fan runs; with ``on`` (True, False, or a speed such as "Low") set it."""
        value = self._get("fan") if on is None else self._put("fan", on)
        return value["on"]

    def sensor_cooling(self, on: bool | None = None) -> bool:
        """Whether sensor cooling is on; with ``on`` switch it."""
        if on is None:
            return self._get("sensor_cooling")
        return self._put("sensor_cooling", bool(on))

    @property
    def temperature(self) -> float:
        """The sensor temperature in degrees Celsius."""
        return self._get("temperature")

    def temperature_setpt(self, valueS: float | str | None = None) -> str:
        """The cooling setpoint, one of ``temperature_setpt_options`` (such as "-30.00"); numbers are
        accepted and formatted as the camera names them."""
        if valueS is None:
            return self._get("temperature_setpoint")
        if isinstance(valueS, (int, float)) and not isinstance(valueS, bool):
            valueS = f"{valueS:.2f}"
        return self._put("temperature_setpoint", valueS)

    @property
    def temperature_setpt_options(self) -> list[str]:
        return self._get("temperature_setpoint/options")

    @property
    def cooling_status(self) -> str:
        """The camera's TemperatureStatus: "Cooler Off", "Cooling", "Stabilised", ..."""
        return self._get("cooling_status")

    # ---- images ----

    def snap(self, exposure_time: float | str | None = None) -> np.ndarray:
        """Expose one frame and return it as a 2-D numpy array (uint16; uint32 for Mono32)."""
        return self.snap_frame(exposure_time).image

    def snap_frame(self, exposure_time: float | str | None = None) -> SnapFrame:
        """Expose one frame: its image, and when its exposure started (UTC, with the uncertainty, and on
        the camera's clock)."""
        headers, data = self._request("GET", "snap", query=_snap_query("raw", exposure_time), into=bytearray)
        shape = tuple(int(n) for n in headers["X-Andor-Shape"].split(","))
        image = np.frombuffer(data, dtype=np.dtype(headers["X-Andor-Dtype"])).reshape(shape)  # writable: a bytearray
        when, ticks, frequency = headers.get("X-Andor-Time"), headers.get("X-Andor-Ticks"), headers.get(
            "X-Andor-Tick-Frequency")
        uncertainty = headers.get("X-Andor-Time-Uncertainty")
        return SnapFrame(
            image=image.astype(image.dtype.newbyteorder("="), copy=False),
            time=None if when is None else np.datetime64(when.rstrip("Z"), "ns"),
            time_uncertainty_s=None if uncertainty is None else float(uncertainty),
            utc_trusted=None if when is None else headers.get("X-Andor-UTC-Trusted") == "true",
            timestamp=None if ticks is None or not frequency else int(ticks) / int(frequency),
            exposure_time=float(headers["X-Andor-Exposure-Time"]))

    def snap_file(self, path: str, exposure_time: float | str | None = None) -> str:
        """Snap one frame into a TIFF or FITS file, chosen by the extension of ``path``."""
        fmt = {"tif": "tiff", "tiff": "tiff", "fits": "fits", "fit": "fits"}.get(str(path).rsplit(".", 1)[-1].lower())
        if fmt is None:
            raise ValueError(f"{path!r}: the file name should end in .tiff, .tif, .fits or .fit")
        with open(path, "wb") as f:
            f.write(self._request("GET", "snap", query=_snap_query(fmt, exposure_time))[1])
        return path


    # ---- bursts ----

    def burst(self, frames: int, fps: float | None = None, serverSpool: int = 0, trigger: str | None = None,
              trigger_timeout: float | None = None, reader_rate: float | None = None,
              progress: bool | None = None, record: str | None = None,
              viewers: list[str] | None = None) -> BurstFrames:
        """Take a burst of images, returned as a generator of 2-D arrays.

        The server starts capturing as soon as it gets the request, before this returns, whether or
        not the generator is read yet; frames wait in its spool until they are.

        Parameters
        ----------
        frames : int
            number of frames to take
        fps : float
            frame rate; the camera refuses rates beyond its maximum for the current exposure and AOI.
            None: its FrameRate as it is. Leave it out with the triggered modes: the triggers set the pace
        serverSpool : int
            size of the spool on the server, in frames, that holds frames not yet sent to the client
            (frames on their way, at most 256 frames and 32 MiB, come on top). 0 means the whole
            burst, so the capture runs at ``fps`` whatever the reader's pace (the server takes memory
            frame by frame and is capped by its --spool-memory-limit). When the spool is full the
            server stops taking frames off the camera; once the camera's on-head memory fills too, a
            camera either slows down (its frames are late: the timestamps show it) or overflows and
            stops (the frames after it are lost, and iterating raises the error).
        trigger : str
            the camera's TriggerMode for the burst: "Internal" (the default), "Software" (a frame per
            ``trigger()``), "External", "External Start" or "External Exposure"
        trigger_timeout : float
            seconds to wait for each trigger before the burst ends with an error (default 60)
        reader_rate : float
            bytes per second this reader expects to take, for the server's plan (``frames.plan``)
        progress : bool
            a tqdm progress bar on stderr while the frames are read: frames, MB/s and the server's spool
            use. None (the default): only when stderr is a terminal
        record : str
            a name ("run1.h5", "run1.zarr"; ".h5" if it has neither): the server writes the burst into
            its data directory (its --data-dir) at the camera's pace, and this generator reads the frames
            back from that recording at its own pace; ``recording(name)`` reads it again later
        viewers : list of str
            names of viewer tokens that may read this burst too (on a server with tokens: the burst is
            otherwise read only by the token that started it and by controllers)

        Returns
        -------
        BurstFrames
            a generator yielding 2-D arrays (uint16; uint32 for Mono32), with ``frame_numbers``,
            ``timestamps`` (seconds, camera clock), ``times`` (UTC), ``ledger``, ``plan`` and, at the
            end, ``summary``; ``save(path)`` writes it to a file. Iterating it raises
            ``andor.AndorError`` if the server fails mid-burst, after the frames captured before that.
        """
        request = _burst_request(frames, fps, serverSpool, trigger, trigger_timeout, reader_rate)
        if record is not None:
            request["record"] = record
        if viewers is not None:
            request["viewers"] = list(viewers)
        return BurstFrames(self, json.loads(self._request("POST", "burst", request)[1])["value"], progress)

    def plan_burst(self, frames: int, fps: float | None = None, serverSpool: int = 0, trigger: str | None = None,
                   reader_rate: float | None = None) -> dict[str, Any]:
        """What ``burst`` with these arguments would do, capturing nothing: its regime (camera-paced,
        link-paced, reader-paced, throttled, overflow or stalls), capture time, late and lost frames, spool
        bytes, whether it fits the camera's on-head memory, and the slowest reader that keeps every frame
        on time."""
        request = _burst_request(frames, fps, serverSpool, trigger, None, reader_rate)
        return self._post("burst", {**request, "dry_run": True})["plan"]

    def trigger(self) -> None:
        """A software trigger for the running burst (one started with ``trigger="Software"``)."""
        self._post("trigger", None)

    def burst_status(self) -> dict[str, Any]:
        """The newest burst's status: state, captured, sent, acknowledged, spool occupancy, ..."""
        return self._get("burst")

    def resume_burst(self, progress: bool | None = None) -> BurstFrames:
        """A new generator for the newest burst, starting at its first frame not yet acknowledged
        (after a reader broke off or lost its connection); ``progress`` as for ``burst``."""
        return BurstFrames(self, self._get("burst"), progress)

    # ---- recordings on the server ----

    def recordings(self) -> list[dict[str, Any]]:
        """The recordings in the server's data directory, newest first: name, format, bytes, modified
        (seconds since 1970, UTC) and whether it is still being written."""
        return self._get("recordings")

    def recording(self, name: str, progress: bool | None = None) -> BurstFrames:
        """A recording in the server's data directory, read back as a burst's generator (its frames,
        times, ledger and summary); one still being written is followed as it grows."""
        status = self._get("recordings/" + urllib.parse.quote(name, safe=""))
        return BurstFrames(self, status, progress,
                           stream="/stream/recording?" + urllib.parse.urlencode({"name": name}))


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """How an https server's certificate is checked: the system's CAs, a CA file, or (False) not at all."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def _burst_request(frames: int, fps: float | None, spool: int, trigger: str | None, trigger_timeout: float | None,
                   reader_rate: float | None) -> dict[str, Any]:
    request: dict[str, Any] = {"frames": frames, "fps": fps, "spool": spool, "trigger": trigger,
                               "trigger_timeout": trigger_timeout, "reader_rate": reader_rate}
    return {name: value for name, value in request.items() if value is not None}


def _snap_query(fmt: str, exposure_time: float | str | None) -> dict[str, str]:
    query = {"format": fmt}
    if exposure_time is not None:
        query["exposure_time"] = repr(parse_seconds(exposure_time))
    return query
