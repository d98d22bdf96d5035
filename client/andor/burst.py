"""``BurstFrames``: the frames of one burst, read from the server's WebSocket stream as a generator.

websocket-client does the handshake and sends the acknowledgements; frames are then read straight from
its socket into a new array each (``recv_into``), because its own reader takes 16 KiB at a time and
joins the pieces. The server sends at most a small window of frames ahead of the acknowledgements, so
this side holds one frame beyond what the user keeps.
"""

from __future__ import annotations

import collections.abc
import json
import os
import queue
import socket
import threading
import struct
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import websocket

from andor import progress as _progress
from andor import wire
from andor.errors import AndorError, BurstDiscarded, CameraFailure, ServerUnreachable, error_for
from andor.timebase import TimeBase

LATE = 1.5  # a frame exposed more than this many frame periods after the one before was late (as the server)
READ_AHEAD = 256 * 1024  # bytes: what one recv() may take for the messages of small frames
WRITE_AHEAD = 2  # save(): frames read and waiting to be written, so that network and disk work at once


def _put(pending: queue.Queue[Any], item: Any, writer: threading.Thread) -> bool:
    """Hand ``item`` to the writer thread, waiting while it is busy; False if it has stopped."""
    while writer.is_alive():
        try:
            pending.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False

if TYPE_CHECKING:
    from andor.camera import Camera
    from andor.progress import BurstProgress


def _json_or_text(body: bytes | None) -> object:
    """A refused handshake's body: the server's JSON error, or its text."""
    try:
        return json.loads(body or b"")
    except ValueError:
        return (body or b"").decode("utf-8", "replace")[:500]

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x1, 0x2, 0x8, 0x9
RECONNECTS = 5  # a stream that breaks (the server dropped a reader that paused past its ping timeout, a
# network blip) is opened again this many times in all, reading on from the first frame not yet read


class StreamBroken(ServerUnreachable):
    """The stream's connection ended without a Close: worth opening again."""


class BurstFrames(collections.abc.Generator):
    """A generator of the burst's frames (2-D numpy arrays), in order.

    While it is iterated, ``frame_numbers`` (int64), ``timestamps`` (float64 seconds on the camera's
    clock, from its hardware ticks; NaN where a frame carried none), ``times`` (numpy datetime64[ns],
    UTC) and ``ledger`` grow with the frames read; ``plan`` is what the server predicted before it
    captured, ``summary`` its account of the burst once the last frame is in. An error on the server
    (the camera failed, the burst was replaced by a newer one) is raised as ``andor.AndorError`` after
    every frame captured before it. ``save(path)`` writes the frames to a file as they are read.
    """

    def __init__(self, camera: Camera, status: dict[str, Any], progress: bool | None = None,
                 stream: str | None = None) -> None:
        self.id = status["id"]
        self.recording: str | None = status.get("recording")  # the server's recording of it, if any
        self._stream = stream or f"/stream/burst?id={self.id}"
        self.frames = status["frames"]
        self.fps = status["fps"]
        self.plan = status.get("plan")
        self.status = status  # as the server answered the request
        self.summary: dict[str, Any] | None = None
        self._timebase: TimeBase | None = None
        self._set_timebase(status.get("timebase"))
        self._paced = status.get("trigger_mode", "Internal") in ("Internal", "External Start")
        self._lost = 0  # frames the server says never came (the camera failed before them)
        self._camera = camera
        self._ws: websocket.WebSocket | None = None
        self._sock: socket.socket | None = None
        self._numbers: list[int] = []
        self._ticks: list[int] = []
        self._tick_frequency: int | None = None
        self._finished = False
        self._header = bytearray(14 + wire.HEADER_SIZE)
        self._ahead = memoryview(bytearray(READ_AHEAD))  # bytes read from the socket, not yet used ...
        self._ahead_start = self._ahead_end = 0  # ... are self._ahead[start:end]
        self._window = 1  # frames the server sends ahead of acknowledgements (its "stream" message says)
        self._acknowledged = -1
        self._progress = progress  # a progress bar: True, False, or None (on a terminal)
        self._bar: BurstProgress | None = None
        self._desc: str | None = None  # the bar's label (the file, when saving)
        self._reconnects = 0

    def __repr__(self) -> str:
        return f"<BurstFrames of burst {self.id}: {len(self._numbers)} of {self.frames} frames read>"

    @property
    def frame_numbers(self) -> np.ndarray:
        return np.array(self._numbers, np.int64)

    @property
    def timestamps(self) -> np.ndarray:
        """Seconds on the camera's clock at each frame's exposure start (NaN where it carried none)."""
        ticks = np.array(self._ticks, np.int64)
        if self._tick_frequency is None:
            return np.full(len(ticks), np.nan)
        return np.where(ticks >= 0, ticks / self._tick_frequency, np.nan)

    @property
    def times(self) -> np.ndarray:
        """UTC at each frame's exposure start (numpy datetime64[ns]; NaT where unknown): from the start
        anchor while the burst runs, from both anchors once it has ended (docs/timing.md)."""
        ticks = np.array(self._ticks, np.int64)
        times = np.full(len(ticks), np.datetime64("NaT"), "datetime64[ns]")
        if self._timebase is not None and len(ticks):
            known = ticks >= 0
            times[known] = self._timebase.times(ticks[known])
        return times

    @property
    def time_uncertainty_s(self) -> float | None:
        """The largest uncertainty of any frame's UTC time so far, seconds (None: no times)."""
        ticks = np.array([t for t in self._ticks if t >= 0], np.int64)
        if self._timebase is None or not len(ticks):
            return None
        return float(self._timebase.uncertainty_s(ticks[[0, -1]]).max())

    @property
    def utc_trusted(self) -> bool | None:
        """Whether the times are UTC within their uncertainty (False: the server's clock was not
        synchronised, or the camera's time source not locked); None without times."""
        return None if self._timebase is None else self._timebase.utc_trusted

    @property
    def ledger(self) -> np.ndarray:
        """Frame by frame (``andor.LEDGER_DTYPE``): number, ticks, UTC time, whether it was late (exposed
        more than 1.5 frame periods after the one before) and by how much, and the frames that never
        came (lost) once the burst has failed."""
        from andor.recording import LEDGER_DTYPE

        n = len(self._numbers)
        rows = np.zeros(n + self._lost, LEDGER_DTYPE)
        rows["frame"] = np.arange(n + self._lost) + (self._numbers[0] if self._numbers else 0)
        rows["ticks"][:n] = self._ticks
        rows["ticks"][n:] = -1
        rows["time"][:n] = self.times
        rows["time"][n:] = np.datetime64("NaT")
        rows["lost"][n:] = True
        if self._paced and self._tick_frequency and self.fps and n > 1:
            late_by = self._late_by(rows["ticks"][:n])
            rows["late"][1:n] = late_by > 0
            rows["late_by_s"][1:n] = late_by
        return rows

    def _late_by(self, ticks: np.ndarray) -> np.ndarray:
        """For each frame after the first of ``ticks``: how much later than one frame period after the one
        before it came, if more than 1.5 periods (as the server counts it); else 0."""
        assert self._tick_frequency and self.fps
        interval = np.diff(ticks) / self._tick_frequency
        late = (ticks[1:] >= 0) & (ticks[:-1] >= 0) & (interval > LATE / self.fps)
        return np.where(late, interval - 1 / self.fps, 0.0)

    def _last_row(self) -> np.void:
        """The ledger row of the newest frame read (one row: a recording writes it per frame)."""
        from andor.recording import LEDGER_DTYPE

        row = np.zeros(1, LEDGER_DTYPE)
        ticks = self._ticks[-1]
        row["frame"], row["ticks"] = self._numbers[-1], ticks
        row["time"] = self._timebase.times([ticks])[0] if self._timebase is not None and ticks >= 0 else \
            np.datetime64("NaT")
        if self._paced and self._tick_frequency and self.fps and len(self._ticks) > 1:
            late_by = self._late_by(np.array(self._ticks[-2:], np.int64))[0]
            row["late"], row["late_by_s"] = late_by > 0, late_by
        return row[0]

    def _set_timebase(self, spec: dict[str, Any] | None) -> None:
        if spec is not None:
            self._timebase = TimeBase(spec)

    def save(self, path: str, progress: bool | None = None, overwrite: bool = False,
             metadata: dict[str, Any] | None = None) -> str:
        """Read the rest of the burst into a file as it comes: HDF5 (.h5), OME-Zarr (.zarr), FITS (.fits)
        or BigTIFF/OME-TIFF (.tif, .ome.tif), by the extension (docs/recording.md). A thread writes while
        the next frames are read, never more than WRITE_AHEAD frames behind. ``progress`` (True, False, or
        None: as the burst was asked, on a terminal by default) shows the burst's bar. An error mid-burst
        is raised after the file is finished with the frames that came; a failed write
        (andor.RecordingError) stops the reading."""
        from andor.recording import Recording, open_recording

        recording: Recording | None = None
        pending: queue.Queue[tuple[np.ndarray, np.void] | None] = queue.Queue(WRITE_AHEAD)
        failed: list[BaseException] = []

        def write() -> None:
            assert recording is not None
            while (item := pending.get()) is not None:
                try:
                    recording.append(*item)
                except BaseException as e:  # reported by the reading side, which stops
                    failed.append(e)
                    return

        writer = threading.Thread(target=write, name=f"andor-save-{self.id}", daemon=True)
        if progress is not None:
            self._progress = progress
        self._desc = os.path.basename(path.rstrip(os.sep))
        try:
            for image in self:
                if recording is None:
                    recording = open_recording(path, shape=image.shape, dtype=image.dtype,
                                               metadata={**self._metadata(), **(metadata or {})},
                                               expected_frames=self.frames, progress=False,  # the burst's bar
                                               overwrite=overwrite)
                    writer.start()
                if not _put(pending, (image, self._last_row()), writer):
                    break  # the writer failed: raised below
        finally:
            if writer.is_alive():
                _put(pending, None, writer)
                writer.join()
            if recording is not None:
                ledger = self.ledger[:recording.frames_written] if failed else self.ledger  # what it holds
                recording.close(ledger=ledger, metadata=self._metadata(final=True))
        if failed:
            self.close()
            raise failed[0]
        return path

    def _metadata(self, final: bool = False) -> dict[str, Any]:
        """What a recording says of the burst: the camera's settings as it armed, and its timing."""
        status = self.summary if final and self.summary else self.status
        meta: dict[str, Any] = dict(status.get("settings") or {})
        meta.update(burst_id=self.id, frames_requested=self.frames, fps_requested=status.get("fps_requested"),
                    frame_rate_hz=status.get("fps"), trigger_mode=status.get("trigger_mode"),
                    server=f"{self._camera.host}:{self._camera.port}", tick_frequency_hz=self._tick_frequency)
        times = self.times
        if len(times) and not np.isnat(times[0]):
            meta["date_obs"] = np.datetime_as_string(times[0], "ns") + "Z"
            meta["time_uncertainty_s"] = self.time_uncertainty_s
        if final and self.summary:
            meta["summary"] = {k: v for k, v in self.summary.items() if k not in ("timebase", "plan", "settings")}
        return {k: v for k, v in meta.items() if v is not None}

    # ---- the generator protocol ----

    def send(self, value: object) -> np.ndarray:
        if self._finished:
            raise StopIteration
        try:
            if self._ws is None:
                self._connect()
                if _progress.wanted(self._progress):
                    self._bar = _progress.BurstProgress(self.id, self.frames, self._camera.burst_status, self._desc)
            while True:
                try:
                    image = self._read_frame()
                    break
                except StreamBroken:
                    if self._reconnects >= RECONNECTS:
                        raise
                    self._reconnects += 1
                    self._drop_connection()
                    self._connect()  # the server sends again from the first frame not acknowledged
                    self._acknowledged = -1  # acknowledgements lost with the connection are sent again
            if self._bar is not None:
                self._bar.frame(image.nbytes)
            return image
        except BaseException:  # the end (StopIteration) or an error: either way the stream is done
            self.close()
            raise

    def throw(self, typ: Any = None, value: Any = None, traceback: TracebackType | None = None) -> NoReturn:
        self.close()
        if value is None:
            value = typ() if isinstance(typ, type) else typ
        raise value.with_traceback(traceback) if traceback is not None else value

    def close(self) -> None:
        """Stop reading. The server keeps the frames not yet acknowledged for the next reader."""
        self._finished = True
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close(self.summary)
        if self._ws is not None:
            ws, self._ws = self._ws, None
            try:
                if self._numbers and self._numbers[-1] > self._acknowledged:
                    ws.send(json.dumps({"ack": self._numbers[-1]}))  # what was read stays read
                ws.close(timeout=1)
            except Exception:  # closing a broken connection
                ws.shutdown()

    # ---- the stream ----

    def _drop_connection(self) -> None:
        ws, self._ws, self._sock = self._ws, None, None
        self._ahead_start = self._ahead_end = 0  # what was read ahead was of the broken connection
        if ws is not None:
            try:
                ws.shutdown()
            except Exception:  # it is broken already
                pass

    def _connect(self) -> None:
        cam = self._camera
        url = cam.stream_url(self._stream)
        # frames may be that far apart: two frame periods, or the time allowed for a trigger
        timeout = cam.timeout + (2.0 / self.fps if self.fps else 0.0) + (self.status.get("trigger_timeout") or 0.0)
        try:
            self._ws = websocket.create_connection(
                url, timeout=timeout, sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
                header=[f"{name}: {value}" for name, value in cam.auth_headers.items()],
                sslopt={"context": cam.ssl_context} if cam.ssl_context is not None else None)
        except websocket.WebSocketBadStatusException as e:
            raise error_for(e.status_code, _json_or_text(e.resp_body)) from None
        except (OSError, websocket.WebSocketException) as e:
            raise ServerUnreachable(f"cannot open the burst stream {url}: {e}") from None
        self._sock = self._ws.sock

    def _read_frame(self) -> np.ndarray:
        """Read messages until a frame arrives: returns it, or raises StopIteration or the server's error."""
        while True:
            opcode, length = self._read_frame_header()
            if opcode == OP_BINARY:
                image = self._read_image(length)
                if image is None:
                    continue
                return image
            payload = self._read_bytes(length)
            if opcode == OP_TEXT:
                self._handle_text(payload)
            elif opcode == OP_PING and self._ws is not None:
                try:
                    self._ws.pong(payload)
                except OSError as e:
                    raise StreamBroken(f"the burst stream broke: {e}") from None
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise ServerUnreachable(f"the server closed the burst stream ({code}: "
                                        f"{payload[2:].decode('utf-8', 'replace')})")

    def _read_frame_header(self) -> tuple[int, int]:
        head = memoryview(self._header)
        self._read_into(head[:2])
        first, second = head[0], head[1]
        if not first & 0x80 or second & 0x80:
            raise AndorError("the server sent a fragmented or masked WebSocket frame; this client reads "
                             "whole unmasked messages only")
        length = second & 0x7F
        if length == 126:
            self._read_into(head[2:4])
            length = struct.unpack_from("!H", head, 2)[0]
        elif length == 127:
            self._read_into(head[2:10])
            length = struct.unpack_from("!Q", head, 2)[0]
        return first & 0x0F, length

    def _read_image(self, length: int) -> np.ndarray | None:
        """The frame of a binary message; None for a frame read before the stream was opened again."""
        if length < wire.HEADER_SIZE:
            raise wire.WireError(f"a {length}-byte binary message is too short for a frame")
        header = memoryview(self._header)[14:]
        self._read_into(header)
        fields = wire.parse_header(header, length)
        if fields["header_size"] > wire.HEADER_SIZE:
            self._read_bytes(fields["header_size"] - wire.HEADER_SIZE)  # fields of a later version
        image = np.empty((fields["height"], fields["width"]), fields["dtype"])
        self._read_into(image.data.cast("B"))
        number = fields["frame_number"]
        expected = self._numbers[-1] + 1 if self._numbers else number
        again = bool(self._numbers) and number < expected  # sent again after a reconnect: read already
        if fields["burst_id"] != self.id or (number != expected and not again):
            raise AndorError(f"expected frame {expected} of burst {self.id}, got frame {number} of burst "
                             f"{fields['burst_id']}")
        # acknowledging every frame would cost the server more than the frame; half the window is enough
        if (number - self._acknowledged >= max(1, self._window // 2) or number == self.frames - 1) and self._ws:
            try:
                self._ws.send(json.dumps({"ack": number}))
            except OSError as e:
                raise StreamBroken(f"the burst stream broke: {e}") from None
            self._acknowledged = number
        if again:
            return None
        self._numbers.append(number)
        self._ticks.append(-1 if fields["ticks"] is None else fields["ticks"])
        if fields["ticks"] is not None:
            self._tick_frequency = fields["tick_frequency"]
        return image.astype(image.dtype.newbyteorder("="), copy=False)

    def _handle_text(self, payload: bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == "stream":
            self._window = message["window"]
        elif message.get("type") == "end":
            self.summary = message["summary"]
            self._set_timebase(self.summary.get("timebase"))
            raise StopIteration
        elif message.get("type") == "error":
            if message.get("error") in ("burst_discarded", "no_such_burst"):
                details = {k: v for k, v in message.items() if k not in ("type", "error", "message")}
                raise BurstDiscarded(message.get("message"), code=message["error"], details=details)
            refused = {"burst_has_reader": 409, "burst_refused": 403}.get(message.get("error"))
            error = error_for(refused or 500, message)
            self._ended_by(error)
            raise error

    def _ended_by(self, error: AndorError) -> None:
        """The burst failed: what the server still knows of it (its times, the frames that never came)."""
        if not isinstance(error, CameraFailure):
            return
        try:
            status = self._camera.burst_status()
        except AndorError:
            return
        if status.get("id") == self.id:
            self.summary = status
            self._set_timebase(status.get("timebase"))
            self._lost = status.get("lost_frames", 0)

    def _read_bytes(self, length: int) -> bytes:
        data = bytearray(length)
        self._read_into(memoryview(data))
        return bytes(data)

    def _read_into(self, view: memoryview) -> None:
        """Fill ``view`` from the stream: from what was read ahead first, then large reads straight from
        the socket, small ones through the read-ahead buffer (small frames arrive many to a recv())."""
        while len(view):
            ahead = self._ahead_end - self._ahead_start
            if ahead:
                n = min(ahead, len(view))
                view[:n] = self._ahead[self._ahead_start : self._ahead_start + n]
                self._ahead_start += n
                view = view[n:]
            elif len(view) >= READ_AHEAD // 2:
                view = view[self._recv_into(view):]
            else:
                self._ahead_start, self._ahead_end = 0, self._recv_into(self._ahead)

    def _recv_into(self, view: memoryview) -> int:
        """One recv() into ``view``: how many bytes came (at least one)."""
        if self._sock is None:
            raise ServerUnreachable(f"the stream of burst {self.id} is closed")
        try:
            n = self._sock.recv_into(view)
        except socket.timeout:
            raise ServerUnreachable(f"no data from the server for {self._sock.gettimeout():.0f} s "
                                    f"while reading burst {self.id}") from None
        except OSError as e:
            raise StreamBroken(f"the burst stream broke: {e}") from None
        if n == 0:
            raise StreamBroken(f"the server closed the stream of burst {self.id}")
        return n
