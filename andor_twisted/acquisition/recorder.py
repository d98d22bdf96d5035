"""Recording on the server: a burst written into the data directory as it is captured, for labs whose
network is slower than the camera.

A recording burst's spool is read by its ``Recorder`` instead of a network reader: frames go from the
camera through the spool to the disk, in a thread of the recorder's own (HDF5 and Zarr through
``andor.recording``, as the client saves), and the disk, not the network, sets the pace. Network
readers read the recording (``RecordedFrames``), from the disk, at their own pace, while it is written
and after: they never slow the capture, and the burst's frames are never held for them.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from andor.errors import RecordingError
from andor.recording import LEDGER_DTYPE, Recording, RecordingReader, ledger_row, open_recording

from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.camera.errors import CameraError, InvalidValue
from andor_twisted.protocol.frames import message_bytes, pack_header

if TYPE_CHECKING:
    from andor_twisted.acquisition.burst import Burst

T = TypeVar("T")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
FORMATS = {".h5": "hdf5", ".hdf5": "hdf5", ".zarr": "zarr"}
WRITE_BATCH = 64  # frames already spooled go to the writer thread together, up to this many
WINDOW = 8  # frames a reader of a recording may have unacknowledged


class NoDataDirectory(CameraError):
    code = "no_data_dir"


class RecordingExists(CameraError):
    code = "recording_exists"


class NoSuchRecording(CameraError):
    code = "no_such_recording"


class RecordingFailed(CameraError):
    code = "recording_failed"


class Recordings:
    """The data directory (``--data-dir``): the recordings in it, and the one being written."""

    log = Logger()

    def __init__(self, directory: str | None, reactor: Any) -> None:
        self.directory = None if directory is None else os.path.abspath(directory)
        self.reactor = reactor
        self.active: dict[str, Recorder] = {}  # name: its recorder, while it writes
        if directory is not None:  # now, not as a burst starts: importing zarr alone takes a second
            for library in ("h5py", "zarr"):
                importlib.import_module(library)

    def _data_dir(self) -> str:
        if self.directory is None:
            raise NoDataDirectory("this server records nothing: start it with --data-dir DIRECTORY")
        return self.directory

    def path_for(self, name: str) -> str:
        """Where recording ``name`` goes (".h5" added to a name without .h5, .hdf5 or .zarr), checked: a
        plain file name, no such recording yet."""
        directory = self._data_dir()
        if not _plain_name(name):
            raise InvalidValue("wrong_value", f"a recording's name is letters, digits, '.', '_' and '-' (at most "
                                              f"100, not starting with '.' or '-'), not {name!r}")
        if os.path.splitext(name)[1].lower() not in FORMATS:
            name += ".h5"
        path = os.path.join(directory, name)
        if name in self.active or os.path.lexists(path):
            raise RecordingExists(f"there is a recording {name!r} already; choose another name", name=name)
        return path

    def create(self, path: str, shape: tuple[int, int], dtype: str, frames: int) -> defer.Deferred[Recorder]:
        """Create the file for a burst of ``frames`` frames of ``shape`` and ``dtype`` at ``path`` (from
        ``path_for``), before the burst starts: the capture must not wait for it."""
        name = os.path.basename(path)
        recorder = Recorder(path, self.reactor)
        self.active[name] = recorder

        def finished(_: None) -> None:
            del self.active[name]

        recorder.done.addCallback(finished)
        return recorder.create(shape, dtype, frames)

    def list(self) -> defer.Deferred[list[dict[str, Any]]]:
        """The recordings in the data directory, newest first: name, format, bytes, modified (UTC seconds),
        whether one is being written."""
        try:
            directory, active = self._data_dir(), set(self.active)
        except NoDataDirectory:
            return defer.fail()

        def scan() -> list[dict[str, Any]]:
            found = []
            for entry in os.scandir(directory):
                kind = FORMATS.get(os.path.splitext(entry.name)[1].lower())
                if kind is None or entry.name.startswith("."):
                    continue
                found.append({"name": entry.name, "format": kind, "bytes": _size(entry.path),
                              "modified": entry.stat().st_mtime, "recording": entry.name in active})
            return sorted(found, key=lambda r: -r["modified"])

        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), scan)

    def open(self, name: str) -> defer.Deferred[RecordingSource]:
        """Recording ``name`` to read: the one being written, or a finished one from the disk."""
        if name in self.active:
            if self.active[name].burst is None:
                return defer.fail(NoSuchRecording(f"{name} is being created: its burst is arming", name=name))
            return defer.succeed(self.active[name])
        try:
            directory = self._data_dir()
        except NoDataDirectory:
            return defer.fail()
        path = os.path.join(directory, name)
        if not _plain_name(name) or os.path.splitext(name)[1].lower() not in FORMATS or not os.path.exists(path):
            return defer.fail(NoSuchRecording(f"there is no recording {name!r}; GET /api/recordings lists them",
                                              name=name))
        return FinishedRecording.open(path, self.reactor)


class RecordingSource:
    """What a reader of a recording needs, from a recording being written or a finished one."""

    name: str
    burst_id: int
    frames: int  # frames the burst asked for
    written: int  # frames on the disk, which may be read
    message_bytes: int  # a frame's message: header and pixels
    ended: bool  # no more frames will be written
    error: BaseException | None  # why the burst ended early, once ended
    tick_frequency: int | None
    ticks: Callable[[int], int]  # frame k's ticks (-1: none)

    def read(self, k: int) -> defer.Deferred[np.ndarray]:
        raise NotImplementedError

    def progress(self) -> defer.Deferred[None]:
        """Fires once more frames are written or the recording has ended."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """The burst's status as ``POST /api/burst`` answers it, for a reader (``andor.BurstFrames``)."""
        raise NotImplementedError

    def close(self) -> None:
        """The reader is done with it."""


class Recorder(RecordingSource):
    """Writes one burst to ``path`` as the frames come through its spool, in a thread of its own: the file
    is created first (``create``), then the burst's frames written (``attach``)."""

    log = Logger()

    def __init__(self, path: str, reactor: Any) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.reactor = reactor
        self.burst: Burst | None = None
        self.burst_id = self.frames = self.written = self.message_bytes = 0
        self.tick_frequency: int | None = None
        self.ended = False
        self.error: BaseException | None = None
        self.recording: Recording | None = None
        self.done: defer.Deferred[None] = defer.Deferred()  # fires once the file is finished (never fails)
        self._waiters: list[defer.Deferred[None]] = []
        self._reader: RecordingReader | None = None  # the finished file, opened once, for readers after it
        # one thread: the file's libraries are not shared between threads, and frames are written in order
        self._pool = ThreadPool(1, 1, f"andor-record-{self.name}")
        self._pool.start()

    def _in_thread(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(self.reactor, self._pool, f, *args, **kwargs)

    def create(self, shape: tuple[int, int], dtype: str, frames: int) -> defer.Deferred[Recorder]:
        def created(recording: Recording) -> Recorder:
            self.recording = recording
            return self

        def failed(failure: Failure) -> Failure:
            self._end()
            raise RecordingFailed(f"cannot create the recording {self.name}: {failure.value}", name=self.name)

        return self._in_thread(open_recording, self.path, shape=shape, dtype="<" + dtype, metadata={},
                               expected_frames=frames, progress=False).addCallbacks(created, failed)

    def attach(self, burst: Burst) -> None:
        """Write ``burst``'s frames (it is capturing) as its spool hands them on."""
        assert burst.layout is not None and self.recording is not None
        self.burst = burst
        self.burst_id, self.frames, self.message_bytes = burst.id, burst.frames, burst.message_bytes
        self.tick_frequency = burst.layout.tick_frequency
        self._run(burst).addBoth(self._finished)

    def abandon(self) -> defer.Deferred[None]:
        """The burst never started: remove the file, which holds nothing."""
        def remove() -> None:
            assert self.recording is not None
            self.recording.close()
            _remove(self.path)

        return self._in_thread(remove).addBoth(lambda _: self._end())

    def ticks(self, k: int) -> int:
        assert self.burst is not None
        return int(self.burst.timing.ticks[k])

    @defer.inlineCallbacks
    def _run(self, burst: Burst) -> Generator[defer.Deferred[Any], Any, None]:
        assert burst.layout is not None and self.recording is not None
        spool = burst.spool
        if (burst.layout.height, burst.layout.width) != self.recording.shape:
            raise RecordingFailed(f"the camera armed for {burst.layout.height}x{burst.layout.width} frames, not the "
                                  f"{self.recording.shape[0]}x{self.recording.shape[1]} of a moment before: "
                                  f"its AOI or binning changed", name=self.name)
        started = self.reactor.seconds()
        try:
            while True:
                frames = spool.take(WRITE_BATCH, 1 << 62)
                if not frames:
                    frame = yield spool.next()
                    if frame is None:
                        break
                    frames = [frame]
                rows = [self._row(burst, frame) for frame in frames]
                yield self._in_thread(self._write, frames, rows)
                self.written += len(frames)
                spool.acknowledge(frames[-1].frame_number)
                self._wake()
        except RecordingError:  # a write failed: ``_finished`` ends the burst
            raise
        except Exception as e:  # the burst failed or was discarded: the file keeps what came before
            self.error = e
        self.log.info("recording {name}: {n} frames written in {took:.3f}s", name=self.name, n=self.written,
                      took=self.reactor.seconds() - started)

    @staticmethod
    def _row(burst: Burst, frame: BurstFrame) -> np.void:
        """Frame ``frame``'s ledger row as the spool hands it on (its time from the start anchor; the
        final ledger, from both anchors, replaces it at close)."""
        k = frame.frame_number
        ticks = -1 if frame.ticks is None else frame.ticks
        utc = None
        if burst.timebase is not None and ticks >= 0:
            utc = np.datetime64(int(burst.timebase.to_utc_ns([ticks])[0]), "ns")
        late_by = burst.timing.late_by(k, frame.ticks)
        return ledger_row(k, ticks, utc, late_by > 0, late_by)

    def _write(self, frames: list[BurstFrame], rows: list[np.void]) -> None:
        assert self.recording is not None
        for frame, row in zip(frames, rows, strict=True):
            self.recording.append(frame.image, row)

    @defer.inlineCallbacks
    def _finished(self, result: object) -> Generator[defer.Deferred[Any], Any, None]:
        burst = self.burst
        assert burst is not None and self.recording is not None
        if isinstance(result, Failure):  # a write failed
            self.error = result.value
            self.log.error("recording {name} failed: {why}", name=self.name, why=result.value)
            burst.discard(f"recording it failed: {result.value}")
        ledger = ledger_array(burst.ledger())
        present = ledger[~ledger["lost"]]
        if len(present) != self.written:  # discarded, or a write failed: the rest is in no file
            ledger = present[:self.written]
        try:
            yield self._in_thread(self._close, ledger, metadata(burst, final=True))
        except Exception as e:
            self.log.error("recording {name}: finishing the file failed: {why}", name=self.name, why=e)
        self._end()

    def _end(self) -> None:
        self._pool.stop()
        self.ended = True
        self._wake()
        self.done.callback(None)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _close(self, ledger: np.ndarray, meta: dict[str, Any]) -> None:
        """Finish the file, and open it once for the readers still to come (opening it reads its ledger)."""
        assert self.recording is not None
        self.recording.close(ledger=ledger, metadata=meta)
        self._reader = RecordingReader(self.path)

    def read(self, k: int) -> defer.Deferred[np.ndarray]:
        if self.ended:  # the recorder's thread has stopped
            return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._read, k)
        return self._in_thread(self._read, k)

    def _read(self, k: int) -> np.ndarray:
        """In the recorder's thread, in order with the writes (or in another once it has stopped)."""
        if self._reader is not None:
            return self._reader.frame(k)
        assert self.recording is not None
        return self.recording.read(k)

    def release(self) -> None:
        """Its burst is gone: close the finished file."""
        reader, self._reader = self._reader, None
        if reader is not None:
            threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), reader.close)

    def progress(self) -> defer.Deferred[None]:
        if self.ended:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(d)
        return d

    def status(self) -> dict[str, Any]:
        assert self.burst is not None
        return self.burst.status().to_json()


class FinishedRecording(RecordingSource):
    """A recording on the disk, read with ``andor.RecordingReader`` in the reactor's thread pool."""

    def __init__(self, reader: RecordingReader, reactor: Any) -> None:
        self.reader = reader
        self.reactor = reactor
        self.name = os.path.basename(reader.path)
        meta = reader.metadata
        self._status: dict[str, Any] = json.loads(str(meta.get("status_json", "{}")))
        self.burst_id = int(meta.get("burst_id", 0))
        self.frames = self.written = reader.frames
        self.message_bytes = message_bytes(reader.dtype.str[1:], *reader.shape)
        self.ended = True
        self.error = None
        frequency = meta.get("tick_frequency_hz")
        self.tick_frequency = int(frequency) if isinstance(frequency, (int, float)) else None
        self._ticks = reader.ledger["ticks"][~reader.ledger["lost"]]

    @classmethod
    def open(cls, path: str, reactor: Any) -> defer.Deferred[RecordingSource]:
        def opened() -> RecordingSource:
            try:
                return cls(RecordingReader(path), reactor)
            except (OSError, KeyError, ValueError) as e:
                raise NoSuchRecording(f"{os.path.basename(path)} cannot be read as a recording: {e}") from None

        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), opened)

    def ticks(self, k: int) -> int:
        return int(self._ticks[k]) if k < len(self._ticks) else -1

    def read(self, k: int) -> defer.Deferred[np.ndarray]:
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.reader.frame, k)

    def progress(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def status(self) -> dict[str, Any]:
        return {**self._status, "id": self.burst_id, "frames": self.frames, "recording": self.name,
                "trigger_mode": self._status.get("trigger_mode", "Internal")}

    def close(self) -> None:
        threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.reader.close)


class RecordedFrames:
    """A reader's frames of a recording, read back from the disk as they are written, in the shape of the
    spool that ``stream.sender.FrameSender`` reads: frames leave it one at a time, and acknowledgements
    free nothing (the file keeps them)."""

    max_window = WINDOW

    def __init__(self, source: RecordingSource) -> None:
        self.source = source
        self.acknowledged = 0  # frames 0 .. acknowledged - 1 are the reader's
        self._next = 0  # the next frame to send
        self._waiting: defer.Deferred[Any] | None = None

    def take(self, max_frames: int, max_bytes: int) -> list[BurstFrame]:
        return []  # every frame is read from the disk first: ``next``

    def next(self) -> defer.Deferred[BurstFrame | None]:
        """The next frame once it is on the disk; None after the last; the burst's error after the frames
        written before it."""
        source, k = self.source, self._next
        if k < source.written:
            self._next += 1
            return source.read(k).addCallback(self._frame, k)
        if source.ended:
            return defer.fail(source.error) if source.error is not None else defer.succeed(None)
        return source.progress().addCallback(lambda _: self.next())

    def _frame(self, image: np.ndarray, k: int) -> BurstFrame:
        image = np.ascontiguousarray(image, image.dtype.newbyteorder("<"))
        height, width = image.shape
        ticks = self.source.ticks(k)
        header = pack_header(self.source.burst_id, k, image.dtype.str[1:], height, width,
                             None if ticks < 0 else ticks, self.source.tick_frequency)
        pixels = image.data.cast("B")
        return BurstFrame(k, None if ticks < 0 else ticks, header, pixels, image, None, len(header) + pixels.nbytes)

    def acknowledge(self, frame_number: int) -> None:
        self.acknowledged = max(self.acknowledged, frame_number + 1)

    def return_unacknowledged(self) -> None:
        self._next = self.acknowledged


def metadata(burst: Burst, final: bool = False) -> dict[str, Any]:
    """What a recording says of its burst (as the client's ``save``): the camera's settings as it armed,
    the timing, and at the end the burst's status (``status_json``, for readers of the recording)."""
    status = burst.status().to_json()
    meta: dict[str, Any] = dict(burst.layout.settings if burst.layout is not None else {})
    meta.update(burst_id=burst.id, frames_requested=burst.frames, fps_requested=burst.fps_requested,
                frame_rate_hz=burst.fps, trigger_mode=burst.trigger_mode,
                tick_frequency_hz=None if burst.layout is None else burst.layout.tick_frequency)
    first = burst.timing.first_ticks
    if burst.timebase is not None and first is not None:
        utc_ns = int(burst.timebase.to_utc_ns([first])[0])
        meta["date_obs"] = np.datetime_as_string(np.datetime64(utc_ns, "ns"), "ns") + "Z"
        meta["time_uncertainty_s"] = burst.time_uncertainty_s()
    if final:
        meta["summary"] = {k: v for k, v in status.items() if k not in ("timebase", "plan", "settings")}
        meta["status_json"] = json.dumps(status)
    return {k: v for k, v in meta.items() if v is not None}


def ledger_array(ledger: dict[str, list[Any]]) -> np.ndarray:
    """``Burst.ledger()`` (JSON columns) as a LEDGER_DTYPE array."""
    rows = np.zeros(len(ledger["frame"]), LEDGER_DTYPE)
    rows["frame"] = ledger["frame"]
    rows["ticks"] = [int(t) if t else -1 for t in ledger["ticks"]]
    rows["time"] = [np.datetime64(int(t), "ns") if t else np.datetime64("NaT") for t in ledger["utc_ns"]]
    rows["late_by_s"] = ledger["late_by_s"]
    rows["late"] = rows["late_by_s"] > 0
    rows["lost"] = ledger["lost"]
    return rows


def _plain_name(name: object) -> bool:
    """A file name in the data directory, no path: what a recording's name may be."""
    return isinstance(name, str) and NAME.match(name) is not None and ".." not in name


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def _size(path: str) -> int:
    """Bytes in a file or a folder (a Zarr recording, whose files may come and go as it is written)."""
    if not os.path.isdir(path):
        return _file_size(path)
    return sum(_file_size(os.path.join(folder, f)) for folder, _, files in os.walk(path) for f in files)


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
