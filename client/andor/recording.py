"""Recording frames to disk as they are read: ``open_recording(path, ...)`` returns a ``Recording``.

A burst can be longer than memory, so a recording writes each frame when it is appended and keeps none:
the writer holds at most one frame of its own (FITS: the big-endian copy it writes), and the libraries it
uses hold none beyond the call that writes it. The format is the one the extension names:

  .h5 .hdf5                 HDF5 (h5py): dataset ``frames`` (t, y, x), one frame per chunk, no compression;
                            dataset ``ledger`` beside it; the metadata as attributes of the root group.
  .zarr .ome.zarr           OME-Zarr (OME-NGFF 0.4, Zarr format 2): the root group's ``multiscales`` names
                            one dataset, the 3-D array ``0`` (t, y, x), one frame per chunk, no compression,
                            growing as frames arrive; the ledger as one array per field in group ``ledger``;
                            the metadata in the root group's attribute ``andor``.
  .fits .fit                a FITS cube (NAXIS3 = frames) written frame by frame, the metadata as header
                            cards, the ledger as a BINTABLE extension ``LEDGER`` added at close.
  .tif .tiff                BigTIFF (tifffile), one page per frame; the metadata and ledger as JSON in the
                            first page's ImageDescription.
  .ome.tif .ome.tiff        the same pages with OME-XML in the first page's ImageDescription.

``format=`` ("hdf5", "zarr", "fits", "tiff", "ome-tiff") overrides the extension. docs/recording.md
describes each layout, what a reader finds after an interruption, and the JSON of TIFF files.

The ledger has one row per frame of the burst (``LEDGER_DTYPE``): frame number, camera clock ticks at
exposure start (-1 when unknown), UTC exposure start (NaT when unknown), whether the frame was exposed
later than 1/FrameRate after the previous one and by how much, and whether it was lost (a lost frame has
a row and no image). ``append`` takes one row per frame written; ``close(ledger=...)`` may replace them
with the burst's final ledger, which can add lost rows and better times.

Metadata is a flat dict (nested dicts are flattened to "outer.inner" keys). A key that is absent, None or
NaN is not written: nothing is guessed. The keys the camera server gives and where they go:

  key                    HDF5/Zarr attribute   FITS card       OME-XML (besides the JSON annotation)
  camera_model           camera_model          INSTRUME        Detector Model
  serial_number          serial_number         SERIALNO        Detector SerialNumber
  firmware               firmware              FIRMWARE
  interface              interface             INTERFAC
  exposure_time_s        exposure_time_s       EXPTIME         Plane ExposureTime
  frame_rate_hz          frame_rate_hz         FRATE           (Zarr: the t scale of multiscales)
  aoi_left, aoi_top      aoi_left, aoi_top     AOILEFT, AOITOP
  aoi_width, aoi_height  aoi_width, ...        AOIWIDTH, AOIHEIGH
  binning                binning               BINNING         DetectorSettings Binning
  pixel_encoding         pixel_encoding        PIXENCOD
  bit_depth              bit_depth             BITDEPTH        Pixels SignificantBits
  sensor_temperature_c   sensor_temperature_c  CCD-TEMP
  cooling_status         cooling_status        COOLSTAT
  trigger_mode           trigger_mode          TRIGMODE
  time_uncertainty_s     time_uncertainty_s    TIMSYER
  date_obs               date_obs              DATE-OBS        Image AcquisitionDate, Plane DeltaT
  tick_frequency_hz      tick_frequency_hz     TICKFREQ
  burst_id               burst_id              BURSTID
  frames_requested       frames_requested      FRAMEREQ
  fps_requested          fps_requested         FPSREQ
  server                 server                SERVER
  any other key          the key               HIERARCH ANDOR <key>

Every FITS file also has TIMESYS = 'UTC' (the time scale of DATE-OBS and of the ledger's times).
The libraries are imported only for the format used: ``pip install 'andor-client[record]'`` brings them.
"""

from __future__ import annotations

import errno as errno_codes
import importlib
import io
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import ModuleType, TracebackType
from typing import Any, Literal, SupportsInt, TypeVar, Union, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from andor.errors import RecordingError

LEDGER_DTYPE = np.dtype([("frame", "<i8"), ("ticks", "<i8"), ("time", "<M8[ns]"), ("late", "?"),
                         ("late_by_s", "<f8"), ("lost", "?")])
_LEDGER_FIELDS: tuple[str, ...] = LEDGER_DTYPE.names or ()  # its field names (never None: numpy's types say maybe)
# HDF5 has no datetime type: there ``time`` is int64 nanoseconds since 1970-01-01T00:00:00 UTC (NaT is
# -2**63, as in numpy), the same bytes viewed as integers.
STORED_LEDGER_DTYPE = np.dtype([(name, "<i8" if name == "time" else LEDGER_DTYPE[name])
                                for name in _LEDGER_FIELDS])
TIME_NOTE = "time: UTC exposure start, int64 ns since 1970-01-01T00:00:00 UTC; -9223372036854775808 = unknown"
# type aliases, evaluated at run time: Union, as the client runs on Python 3.9 too
# a ledger row as ``append`` takes it: a LEDGER_DTYPE record, a dict of its fields or a tuple in their order
LedgerRow = Union[np.void, dict[str, Any], Sequence[Any]]  # noqa: UP007
# metadata as a recording keeps it (``clean_metadata``)
MetadataValue = Union[str, int, float, bool]  # noqa: UP007
Metadata = dict[str, MetadataValue]
_R = TypeVar("_R", bound="Recording")

EXTENSIONS = {".h5": "hdf5", ".hdf5": "hdf5", ".zarr": "zarr", ".ome.zarr": "zarr", ".fits": "fits",
              ".fit": "fits", ".tif": "tiff", ".tiff": "tiff", ".ome.tif": "ome-tiff", ".ome.tiff": "ome-tiff"}
FORMAT_NAMES = {"hdf5": "hdf5", "h5": "hdf5", "zarr": "zarr", "ome-zarr": "zarr", "ome.zarr": "zarr",
                "fits": "fits", "fit": "fits", "tiff": "tiff", "tif": "tiff", "ome-tiff": "ome-tiff",
                "ome.tiff": "ome-tiff", "ome.tif": "ome-tiff"}
INSTALL = "pip install 'andor-client[record]'"
FLUSH_INTERVAL_S = 1.0  # HDF5 and Zarr: the ledger rows (and HDF5's own metadata) reach the disk this often
HDF5_GROW_BYTES = 64 << 20  # HDF5: the frames dataset grows by whole frames filling this, at least one
ZARR_CHUNK_BYTES = 64 << 20  # Zarr: frames per chunk are as many whole frames as fill this, at least one
LEDGER_CHUNK = 4096  # ledger rows per chunk in HDF5 and Zarr: 168 KiB, a few chunks for a long burst

# key: (FITS keyword, FITS comment)
METADATA_CARDS = {
    "camera_model": ("INSTRUME", "camera model"),
    "serial_number": ("SERIALNO", "camera serial number"),
    "firmware": ("FIRMWARE", "camera firmware version"),
    "interface": ("INTERFAC", "camera interface"),
    "exposure_time_s": ("EXPTIME", "[s] exposure time"),
    "frame_rate_hz": ("FRATE", "[Hz] frame rate set on the camera"),
    "aoi_left": ("AOILEFT", "AOI first column on the sensor, from 1"),
    "aoi_top": ("AOITOP", "AOI first row on the sensor, from 1"),
    "aoi_width": ("AOIWIDTH", "[pixel] AOI width in sensor pixels"),
    "aoi_height": ("AOIHEIGH", "[pixel] AOI height in sensor pixels"),
    "binning": ("BINNING", "binning, horizontal x vertical"),
    "pixel_encoding": ("PIXENCOD", "camera pixel encoding"),
    "bit_depth": ("BITDEPTH", "bits per pixel from the sensor"),
    "sensor_temperature_c": ("CCD-TEMP", "[C] sensor temperature"),
    "cooling_status": ("COOLSTAT", "sensor cooling status"),
    "trigger_mode": ("TRIGMODE", "camera trigger mode"),
    "time_uncertainty_s": ("TIMSYER", "[s] uncertainty of the UTC times"),
    "date_obs": ("DATE-OBS", "UTC start of the first exposure"),
    "tick_frequency_hz": ("TICKFREQ", "[Hz] camera clock ticks per second"),
    "burst_id": ("BURSTID", "burst number on the camera server"),
    "frames_requested": ("FRAMEREQ", "frames requested for the burst"),
    "fps_requested": ("FPSREQ", "[Hz] frame rate requested for the burst"),
    "server": ("SERVER", "camera server"),
}
_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)?$")


def open_recording(path: str | os.PathLike[str], *, shape: Iterable[SupportsInt], dtype: DTypeLike,
                   metadata: Mapping[str, object] | None, expected_frames: int | None = None,
                   format: str | None = None, progress: bool | None = None, overwrite: bool = False) -> Recording:
    """Create a recording of frames of ``shape`` (height, width) and ``dtype`` at ``path``.

    ``metadata`` is the flat dict of the module docstring; ``expected_frames`` sizes the progress bar;
    ``format`` overrides the extension; ``progress`` None shows a tqdm bar when stderr is a terminal, True
    always, False never. An existing ``path`` is replaced only with ``overwrite=True``. Raises ValueError
    for an unknown format, ImportError naming the extra when the format's library is missing,
    FileExistsError, and RecordingError when the file cannot be created.
    """
    kind = _format_for(path, format)
    cls = {"hdf5": Hdf5Recording, "zarr": ZarrRecording, "fits": FitsRecording, "tiff": TiffRecording,
           "ome-tiff": OmeTiffRecording}[kind]
    return cls(path, shape, dtype, metadata, expected_frames, progress, overwrite)


def encode_image(image: NDArray[Any], fmt: str, metadata: Mapping[str, object] | None) -> bytes:
    """One frame (a snap) as a FITS or TIFF file in memory, its metadata as a recording's (the table
    above; TIFF: JSON ``{"andor_snap": 1, "metadata": ...}`` in its ImageDescription)."""
    clean = clean_metadata(metadata)
    out = io.BytesIO()
    if fmt == "fits":
        fits = _need("astropy.io.fits", "FITS files")
        hdu = fits.PrimaryHDU(image)
        hdu.header["TIMESYS"] = ("UTC", "time scale of DATE-OBS")
        for key, value in clean.items():
            _set_card(hdu.header, key, value)
        hdu.writeto(out)
    elif fmt == "tiff":
        tifffile = _need("tifffile", "TIFF files")
        tifffile.imwrite(out, image, description=json.dumps({"andor_snap": 1, "metadata": clean}), metadata=None)
    else:
        raise ValueError(f"a snap is written as fits or tiff, not {fmt!r}")
    return out.getvalue()


def ledger_row(frame: int, ticks: int = -1, time: np.datetime64 | str | None = None, late: bool = False,
               late_by_s: float = 0.0, lost: bool = False) -> np.void:
    """One ledger row (a numpy record of LEDGER_DTYPE); ``time`` is a numpy datetime64, an ISO 8601 UTC
    string or None (unknown)."""
    return _as_row({"frame": frame, "ticks": ticks, "time": time, "late": late, "late_by_s": late_by_s,
                    "lost": lost})


class Recording:
    """A recording being written: ``append`` a frame at a time, then ``close``; or use it as a context
    manager, which closes it on the way out, after an exception too (then re-raised).

    ``path`` is the file (a directory for Zarr), ``frames_written`` the frames in it so far.
    """

    format: str | None = None

    def __init__(self, path: str | os.PathLike[str], shape: Iterable[SupportsInt], dtype: DTypeLike,
                 metadata: Mapping[str, object] | None, expected_frames: int | None, progress: bool | None,
                 overwrite: bool) -> None:
        self.path = os.fspath(path)
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"a frame's shape is (height, width), not {shape!r}")
        self.dtype = np.dtype(dtype).newbyteorder("<")
        if self.dtype.kind not in "uif":
            raise ValueError(f"frames of {np.dtype(dtype)} cannot be recorded: integers or floats only")
        self.metadata = clean_metadata(metadata)
        self.expected_frames = expected_frames
        self.frames_written = 0
        self.frame_bytes = self.shape[0] * self.shape[1] * self.dtype.itemsize
        self._rows = np.empty(16, LEDGER_DTYPE)
        self._flushed_rows = 0
        self._last_flush = time.monotonic()
        self._failed: RecordingError | None = None
        self._closed = False
        self._load()
        self._bar = _progress_bar(progress, expected_frames, self.path)  # before the file: tqdm may be missing
        _make_room(self.path, overwrite)
        self._warn_if_no_room()
        try:
            self._open()
        except OSError as e:
            self._closed = True
            raise self._error("cannot create the recording", e, created=False) from e

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}: {self.frames_written} frames written>"

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if typ is None:
            self.close()
            return False
        try:
            self.close()
        except Exception as e:  # the exception on its way out says more; keep it
            warnings.warn(f"{self.path}: finalising the recording after {typ.__name__} failed too: {e}",
                          RuntimeWarning, stacklevel=2)
        return False

    @property
    def ledger(self) -> NDArray[np.void]:
        """The ledger rows appended so far (a copy)."""
        return self._rows[:self.frames_written].copy()

    def append(self, image: ArrayLike, ledger_row: LedgerRow) -> None:
        """Write one frame now, with its ledger row (a LEDGER_DTYPE record, a dict of its fields or a
        tuple in their order). Raises ValueError for a frame of another shape or type, RecordingError
        when the write fails (the file keeps the frames written before)."""
        if self._closed:
            raise ValueError(f"the recording {self.path} is closed")
        if self._failed is not None:
            raise self._failed
        image = np.asarray(image)
        if image.shape != self.shape:
            raise ValueError(f"frame of shape {image.shape}: this recording takes {self.shape} frames")
        if image.dtype.newbyteorder("<") != self.dtype:
            raise ValueError(f"frame of {image.dtype}: this recording takes {self.dtype} frames")
        row = _as_row(ledger_row)
        if row["lost"]:
            raise ValueError(f"frame {row['frame']} is marked lost but has an image: lost frames have only "
                             f"a ledger row, given at close")
        image = np.ascontiguousarray(image, self.dtype)
        try:
            self._write(image)
        except OSError as e:
            self._failed = self._error(f"writing frame {row['frame']} failed", e)
            raise self._failed from e
        n = self.frames_written
        if n == len(self._rows):
            self._rows = np.concatenate([self._rows, np.empty(n, LEDGER_DTYPE)])
        self._rows[n] = row
        self.frames_written = n + 1
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.frames_written * self.frame_bytes / 1e6:,.0f} MB", refresh=False)
            self._bar.update(1)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self._last_flush = time.monotonic()
            try:
                self._flush(self._rows[self._flushed_rows:self.frames_written])
            except OSError as e:
                self._failed = self._error("writing the ledger failed", e)
                raise self._failed from e
            self._flushed_rows = self.frames_written

    def close(self, ledger: NDArray[np.void] | list[LedgerRow] | None = None,
              metadata: Mapping[str, object] | None = None) -> None:
        """Finish the file: the final ``ledger`` (default: the rows appended) and the metadata updated with
        ``metadata`` (such as the burst's summary). Raises RecordingError if the disk refuses, after
        leaving the file readable with the frames written; ValueError (after finishing the file with the
        appended rows) if ``ledger`` does not list exactly the frames written."""
        if self._closed:
            return
        self._closed = True
        written = self._rows[:self.frames_written]
        final, mismatch = written, None
        if ledger is not None:
            final = _as_ledger(ledger)
            present = final["frame"][~final["lost"]]
            if not np.array_equal(present, written["frame"]):
                mismatch = (f"the final ledger lists frames {_span(present)} as present but the recording "
                            f"holds frames {_span(written['frame'])}; the appended rows were kept")
                final = written
        meta = dict(self.metadata)
        meta.update(clean_metadata(metadata))
        try:
            self._finish(final, meta)
        except OSError as e:
            raise self._error("finishing the file failed", e) from e
        finally:
            if self._bar is not None:
                self._bar.close()
        self.metadata = meta
        if mismatch:
            raise ValueError(mismatch)

    # ---- what each format does ----

    def _load(self) -> None:
        """Import the format's library (ImportError naming the extra that brings it)."""

    def _open(self) -> None:
        raise NotImplementedError

    def _write(self, image: NDArray[Any]) -> None:
        """Write ``image`` as frame number ``self.frames_written`` (counting from 0) before returning."""
        raise NotImplementedError

    def _flush(self, rows: NDArray[np.void]) -> None:
        """Make the ledger ``rows`` appended since the last flush durable (HDF5 and Zarr)."""

    def _finish(self, ledger: NDArray[np.void], metadata: Metadata) -> None:
        """Write the final ledger and metadata, repair a failed write, close every file."""
        raise NotImplementedError

    def read(self, k: int) -> NDArray[Any]:
        """Frame ``k`` as written, while the recording is still being written (HDF5 and Zarr; from the
        thread that writes, as the file's library is not shared between threads)."""
        if not 0 <= k < self.frames_written:
            raise IndexError(f"{self.path} holds frames 0 to {self.frames_written - 1}, not {k}")
        return self._read(k)

    def _read(self, k: int) -> NDArray[Any]:
        raise ValueError(f"{self.format} recordings are read back once finished, with their own library")

    # ---- helpers ----

    def _error(self, action: str, e: OSError, created: bool = True) -> RecordingError:
        n = self.frames_written
        name = errno_codes.errorcode.get(e.errno, "") if e.errno else ""
        cause = f"{e.strerror or e}" + (f" [{name}]" if name else "")
        kept = f"; it keeps the {n} frame{'s' * (n != 1)} written so far" if created else ""
        return RecordingError(f"recording {self.path}: {action} after {n} frame{'s' * (n != 1)}: {cause}{kept}",
                              path=self.path, frames_written=n, errno=e.errno)

    def _warn_if_no_room(self) -> None:
        if not self.expected_frames:
            return
        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
        except OSError:
            return
        need = self.expected_frames * self.frame_bytes
        if need > free:
            warnings.warn(f"recording {self.path}: {self.expected_frames} frames need {need / 1e9:.2f} GB, "
                          f"the disk has {free / 1e9:.2f} GB free", RuntimeWarning, stacklevel=3)


# ---- reading back ----

class RecordingReader:
    """A finished (or interrupted) HDF5 or OME-Zarr recording, read a frame at a time: ``frames`` of
    ``shape`` and ``dtype``, ``frame(k)``, its ``ledger`` (LEDGER_DTYPE) and its ``metadata``. FITS and
    TIFF files are read with astropy and tifffile themselves."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        fmt = _format_for(self.path, None)
        if fmt == "hdf5":
            self._file: Any = _need("h5py", "reading HDF5").File(self.path, "r")
            self._frames: Any = self._file["frames"]
            stored = self._file["ledger"][()]
            self.ledger: NDArray[np.void] = stored.view(LEDGER_DTYPE) if len(stored) else np.zeros(0, LEDGER_DTYPE)
            self.metadata: Metadata = {k: _plain(v) for k, v in self._file.attrs.items()}
        elif fmt == "zarr":
            zarr = _need("zarr", "reading OME-Zarr")
            root = zarr.open_group(self.path, mode="r")
            self._file = None
            self._frames = root["0"]
            columns = root["ledger"]
            self.ledger = np.zeros(columns["frame"].shape[0], LEDGER_DTYPE)
            for name in _LEDGER_FIELDS:
                self.ledger[name] = columns[name][:]
            self.metadata = dict(root.attrs.get("andor", {}))
        else:
            raise ValueError(f"{self.path}: read {fmt} files with their own library (astropy, tifffile)")
        self.frames = int(self._frames.shape[0])
        self.shape: tuple[int, int] = tuple(self._frames.shape[1:])
        self.dtype = np.dtype(self._frames.dtype)

    def frame(self, k: int) -> NDArray[Any]:
        return np.asarray(self._frames[k])

    def __iter__(self) -> Iterator[NDArray[Any]]:
        return (self.frame(k) for k in range(self.frames))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(value: Any) -> MetadataValue:
    """An HDF5 attribute as the plain value it was written from."""
    return value.item() if isinstance(value, np.generic) else value


# ---- HDF5 ----

class Hdf5Recording(Recording):
    """``frames`` (n, height, width), one chunk a frame written whole with H5Dwrite_chunk (no filter
    pipeline, no chunk cache), and ``ledger`` beside it; metadata as root attributes. ``frames`` grows by
    HDF5_GROW_BYTES of frames at a time, as resizing it costs about half of writing a 512x512 frame, and
    takes its exact length at close."""

    format = "hdf5"

    def _load(self) -> None:
        self._h5py = _need("h5py", "recording to HDF5")

    def _open(self) -> None:
        h5py = self._h5py
        height, width = self.shape
        self._file = f = h5py.File(self.path, "w-")
        try:
            self._frames = f.create_dataset("frames", shape=(0, height, width), maxshape=(None, height, width),
                                            chunks=(1, height, width), dtype=self.dtype)
            for axis, label in enumerate(("t", "y", "x")):
                self._frames.dims[axis].label = label
            self._ledger = f.create_dataset("ledger", shape=(0,), maxshape=(None,), chunks=(LEDGER_CHUNK,),
                                            dtype=STORED_LEDGER_DTYPE)
            self._ledger.attrs["time"] = TIME_NOTE
            f.attrs.update(self.metadata)
            self._write_chunk = self._frames.id.write_direct_chunk
            self._grow = max(1, HDF5_GROW_BYTES // self.frame_bytes)
            self._length = 0  # the dataset's length: frames written and room for more
            f.flush()
        except BaseException:
            f.close()
            raise

    def _write(self, image: NDArray[Any]) -> None:
        n = self.frames_written
        if n == self._length:
            self._length = n + self._grow
            self._frames.resize(self._length, axis=0)
        self._write_chunk((n, 0, 0), image)

    def _flush(self, rows: NDArray[np.void]) -> None:
        self._write_ledger(rows, start=self._ledger.shape[0])
        self._file.flush()

    def _read(self, k: int) -> NDArray[Any]:
        return np.asarray(self._frames[k])

    def _write_ledger(self, rows: NDArray[np.void], start: int) -> None:
        self._ledger.resize(start + len(rows), axis=0)
        if len(rows):
            self._ledger[start:] = rows.view(STORED_LEDGER_DTYPE)

    def _finish(self, ledger: NDArray[np.void], metadata: Metadata) -> None:
        def set_attrs() -> None:
            for key in set(self._file.attrs) - set(metadata):
                del self._file.attrs[key]
            self._file.attrs.update(metadata)

        try:
            all_of(lambda: self._frames.resize(self.frames_written, axis=0),  # the room, a frame whose write failed
                   lambda: self._write_ledger(ledger, start=0), set_attrs)
        finally:
            self._file.close()


# ---- OME-Zarr ----

class ZarrRecording(Recording):
    """OME-NGFF 0.4 in Zarr format 2. zarr creates the group, the arrays and their metadata; the frames
    are then written here directly into the chunk files, as zarr would (no compressor, no filters: a
    chunk is its frames' bytes in C order), because zarr's own path costs several times the write itself.

    A chunk holds as many whole frames as fill ZARR_CHUNK_BYTES (five 2560x2160 frames, 128 of 512x512):
    a chunk's file and its two folders cost 0.3 to 5 ms to create here, more than writing a 512x512 frame. Frames are
    written into the chunk's file as they come, and when a chunk is complete ``0/.zarray`` is rewritten
    with the array's new length, so readers see whole chunks only. ``close`` pads the last
    chunk with zeros to its full size and sets the exact length.
    """

    format = "zarr"

    def _load(self) -> None:
        self._zarr = _need("zarr", "recording to OME-Zarr")

    def _open(self) -> None:
        height, width = self.shape
        self.frames_per_chunk = k = max(1, ZARR_CHUNK_BYTES // self.frame_bytes)
        self._root = root = self._zarr.open_group(self.path, mode="w-", zarr_format=2)
        root.create_array("0", shape=(0, height, width), chunks=(k, height, width), dtype=self.dtype,
                          compressors=None, filters=None, fill_value=0,
                          chunk_key_encoding={"name": "v2", "separator": "/"})
        group = root.create_group("ledger")
        self._columns = {name: group.create_array(name, shape=(0,), chunks=(LEDGER_CHUNK,), compressors=None,
                                                  dtype=LEDGER_DTYPE[name])
                         for name in _LEDGER_FIELDS}
        group.attrs["time"] = "UTC exposure start; NaT = unknown"
        self._set_attrs(self.metadata)
        self._array_dir = os.path.join(self.path, "0")
        self._zarray_path = os.path.join(self._array_dir, ".zarray")
        with open(self._zarray_path) as f:
            self._zarray = json.load(f)
        layout = {k: self._zarray.get(k) for k in ("compressor", "filters", "order", "dimension_separator")}
        if layout != {"compressor": None, "filters": None, "order": "C", "dimension_separator": "/"}:
            raise RuntimeError(f"zarr wrote an array layout this recorder does not write: {layout}")
        self._chunk: tuple[int, str] | None = None  # (file descriptor, path) of the chunk being filled
        self._zarray_fd: int | None = None

    def _set_attrs(self, metadata: Metadata) -> None:
        rate = metadata.get("frame_rate_hz")
        t_axis, t_scale = {"name": "t", "type": "time"}, 1.0
        if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
            t_axis["unit"], t_scale = "second", 1.0 / rate
        multiscales = [{
            "version": "0.4", "name": os.path.basename(self.path.rstrip(os.sep)),
            "axes": [t_axis, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [t_scale, 1.0, 1.0]}]}],
        }]
        self._root.attrs.put({"multiscales": multiscales, "andor": metadata})

    def _write(self, image: NDArray[Any]) -> None:
        chunk, index = divmod(self.frames_written, self.frames_per_chunk)
        if index == 0:
            folder = os.path.join(self._array_dir, str(chunk))
            os.mkdir(folder)
            os.mkdir(os.path.join(folder, "0"))
            path = os.path.join(folder, "0", "0")
            self._chunk = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        assert self._chunk is not None  # opened above at the chunk's first frame, closed after its last
        pwrite_all(self._chunk[0], image, index * self.frame_bytes)
        if index == self.frames_per_chunk - 1:
            self._close_chunk(self.frames_per_chunk)
            self._set_length(self.frames_written + 1)

    def _close_chunk(self, frames: int) -> None:
        """Close the chunk being filled, holding ``frames`` frames (the rest of it zeros); none: remove it."""
        assert self._chunk is not None
        fd, path = self._chunk
        self._chunk = None
        try:
            if 0 < frames < self.frames_per_chunk:  # a full chunk is its size already
                os.ftruncate(fd, frames * self.frame_bytes)  # a frame whose write failed
                os.ftruncate(fd, self.frames_per_chunk * self.frame_bytes)  # zeros, as a chunk is whole
        finally:
            os.close(fd)
        if not frames:
            _remove_quietly(path)

    def _set_length(self, n: int) -> None:
        """Rewrite ``0/.zarray`` in place with length ``n``: one write of the same size (padded with
        spaces, which JSON allows), so it needs no room on the disk and no write to the folder, and a
        reader sees the old or the new text. Replacing the file instead makes ext4 flush the new one,
        which costs more than writing a 2560x2160 frame."""
        self._zarray["shape"][0] = n
        text = json.dumps(self._zarray, indent=4).encode()
        if self._zarray_fd is None:
            self._zarray_fd = os.open(self._zarray_path, os.O_WRONLY)
            self._zarray_size = max(os.fstat(self._zarray_fd).st_size, len(text)) + 24  # 20 more digits
        pwrite_all(self._zarray_fd, text.ljust(self._zarray_size), 0)

    def _flush(self, rows: NDArray[np.void]) -> None:
        self._write_ledger(rows, start=self._columns["frame"].shape[0])

    def _read(self, k: int) -> NDArray[Any]:
        chunk, index = divmod(k, self.frames_per_chunk)
        image = np.empty(self.shape, self.dtype)
        with open(os.path.join(self._array_dir, str(chunk), "0", "0"), "rb", buffering=0) as f:
            f.seek(index * self.frame_bytes)
            if f.readinto(image.data.cast("B")) != self.frame_bytes:
                raise OSError(f"{self.path}: frame {k} is not whole on the disk")
        return image

    def _write_ledger(self, rows: NDArray[np.void], start: int) -> None:
        for name, column in self._columns.items():
            column.resize((start + len(rows),))
            if len(rows):
                column[start:] = rows[name]

    def _finish(self, ledger: NDArray[np.void], metadata: Metadata) -> None:
        if self._chunk is not None:
            self._close_chunk(self.frames_written % self.frames_per_chunk)
        try:
            all_of(lambda: self._set_length(self.frames_written), lambda: self._write_ledger(ledger, start=0),
                   lambda: self._set_attrs(metadata))
        finally:
            if self._zarray_fd is not None:
                os.close(self._zarray_fd)


# ---- FITS ----

FITS_BLOCK = 2880
FITS_TYPES = {"u1": (8, 0), "i2": (16, 0), "u2": (16, 1 << 15), "i4": (32, 0), "u4": (32, 1 << 31),
              "i8": (64, 0), "u8": (64, 1 << 63), "f4": (-32, 0), "f8": (-64, 0)}
FITS_SPARE_CARDS = 108  # room in the primary header for the metadata given at close (a burst summary: ~20)


class FitsRecording(Recording):
    """A FITS cube written frame by frame, its primary header always saying how many frames follow.

    The header has room (blank cards) for the metadata given at close. Each frame is written big-endian
    (unsigned integers offset by BZERO, as FITS wants), then the zeros that pad the data to a 2880-byte
    block (the next frame overwrites them), then the NAXIS3 card is rewritten in place: at any moment the
    file is a valid FITS file holding the frames written. ``close`` rewrites the header with the final
    metadata and appends the ledger as a BINTABLE extension named LEDGER.
    """

    format = "fits"

    def _load(self) -> None:
        self._fits = _need("astropy.io.fits", "recording to FITS")

    def _open(self) -> None:
        code = self.dtype.str[1:]
        if code not in FITS_TYPES:
            raise ValueError(f"FITS cannot hold {self.dtype} pixels")
        self._bitpix, self._bzero = FITS_TYPES[code]
        self._stored = np.empty(self.shape, self.dtype.newbyteorder(">") if not self._bzero
                                else np.dtype(f">i{self.dtype.itemsize}"))
        cards = self._card_images(self.metadata)
        self._header_size = _round_up(len(cards) + (FITS_SPARE_CARDS + 1) * 80, FITS_BLOCK)
        header = self._header(cards)
        assert header is not None  # the header is sized for these cards
        self._file = open(self.path, "xb", buffering=0)
        try:
            pwrite_all(self._file.fileno(), header, 0)
        except BaseException:
            self._file.close()
            raise

    def _cards(self, frames: int, metadata: Metadata) -> Any:
        """The primary header's cards (astropy Cards), NAXIS3 the sixth (the one ``_write`` rewrites)."""
        fits = self._fits
        height, width = self.shape
        header = fits.Header()
        header["SIMPLE"] = (True, "conforms to FITS standard")
        header["BITPIX"] = (self._bitpix, "array data type")
        header["NAXIS"] = (3, "number of array dimensions")
        header["NAXIS1"] = (width, "[pixel] frame width")
        header["NAXIS2"] = (height, "[pixel] frame height")
        header["NAXIS3"] = (frames, "frames written")
        header["EXTEND"] = (True, "the ledger follows, as extension LEDGER")
        if self._bzero:
            header["BZERO"] = (self._bzero, "offset of unsigned integers")
            header["BSCALE"] = (1, "")
        header["TIMESYS"] = ("UTC", "time scale of DATE-OBS and the ledger times")
        for key, value in metadata.items():
            if key == "date_obs":
                value = re.sub(r"(Z|\+00:00)$", "", str(value))  # a str (clean_metadata)
            _set_card(header, key, value)
        return header.cards

    def _header(self, text: str) -> bytes | None:
        """The primary header of the card images ``text``, blank cards making it the size reserved at
        open; None if they do not fit."""
        room = self._header_size - 80 - len(text)
        if room < 0:
            return None
        return (text + " " * room + "END".ljust(80)).encode("ascii")

    def _write(self, image: NDArray[Any]) -> None:
        n = self.frames_written
        if self._bzero:
            np.subtract(image, self.dtype.type(self._bzero), out=self._stored, casting="unsafe")
        else:
            self._stored[...] = image
        start = self._header_size + n * self.frame_bytes
        fd = self._file.fileno()
        pwrite_all(fd, self._stored, start)
        end = start + self.frame_bytes
        pwrite_all(fd, bytes(_round_up(end, FITS_BLOCK) - end), end)
        pwrite_all(fd, self._cards_naxis3(n + 1), 5 * 80)

    def _card_images(self, metadata: Metadata) -> str:
        return "".join(card.image for card in self._cards(self.frames_written, metadata))

    def _cards_naxis3(self, frames: int) -> bytes:
        return f"NAXIS3  = {frames:20d} / frames written".ljust(80).encode("ascii")

    def _finish(self, ledger: NDArray[np.void], metadata: Metadata) -> None:
        try:
            end = self._header_size + self.frames_written * self.frame_bytes
            self._file.truncate(end)  # a frame whose write failed
            self._file.truncate(_round_up(end, FITS_BLOCK))  # zeros
            header = self._header(self._card_images(metadata))
            overflow: Metadata = {}
            if header is None:  # the final metadata does not fit: what came at close goes to LEDGER
                overflow = {k: v for k, v in metadata.items() if self.metadata.get(k) != v}
                header = self._header(self._card_images(self.metadata))
                assert header is not None  # it fitted at open
            pwrite_all(self._file.fileno(), header, 0)
            table = self._ledger_hdu(ledger, overflow)
            data_end = _round_up(end, FITS_BLOCK)
            try:
                pwrite_all(self._file.fileno(), table, data_end)
            except OSError:
                self._file.truncate(data_end)  # no ledger, but a valid file
                raise
        finally:
            self._file.close()

    def _ledger_hdu(self, ledger: NDArray[np.void], overflow: Metadata) -> memoryview:
        fits = self._fits
        columns = [
            fits.Column("frame", "K", array=ledger["frame"]),
            fits.Column("ticks", "K", array=ledger["ticks"], null=-1),
            fits.Column("time", "K", unit="ns", array=ledger["time"].view("i8"), null=np.iinfo("i8").min),
            fits.Column("late", "L", array=ledger["late"]),
            fits.Column("late_by_s", "D", unit="s", array=ledger["late_by_s"]),
            fits.Column("lost", "L", array=ledger["lost"]),
        ]
        table = fits.BinTableHDU.from_columns(columns, name="LEDGER")
        header = table.header
        header.comments["TTYPE1"] = "frame number in the burst"
        header.comments["TTYPE2"] = "camera clock at exposure start, -1 unknown"
        header.comments["TTYPE3"] = "[ns] UTC exposure start since 1970-01-01"
        header.comments["TTYPE4"] = "exposed later than 1/FRATE after the last"
        header.comments["TTYPE5"] = "how much later than scheduled"
        header.comments["TTYPE6"] = "never arrived: no image in the cube"
        header["TIMESYS"] = ("UTC", "time scale of column time")
        header["MJDREF"] = (40587.0, "[d] 1970-01-01 UTC, the zero of column time")
        for key, value in overflow.items():
            _set_card(header, key, value)
        out = io.BytesIO()
        primary = fits.PrimaryHDU()
        fits.HDUList([primary, table]).writeto(out)
        return out.getbuffer()[len(primary.header.tostring()):]


def _set_card(header: Any, key: str, value: MetadataValue) -> None:
    """The card of metadata ``key``: its keyword and comment, or HIERARCH ANDOR <key>. A string too long
    for one card is continued (CONTINUE cards) without the comment, which would not fit."""
    keyword, comment = METADATA_CARDS.get(key, ("HIERARCH ANDOR " + key, ""))
    if isinstance(value, str) and len(value) > 60:
        comment = ""
    header[keyword] = (value, comment) if comment else value


# ---- TIFF ----

class TiffRecording(Recording):
    """BigTIFF pages written by tifffile one at a time, each linked into the file's chain of pages as it
    is written; readers see one series (n, height, width). The first page's ImageDescription has the JSON
    of docs/recording.md: at first the metadata, at close the metadata and the ledger.

    tifffile links a page into the chain before writing its pixels; when a write fails, ``close`` cuts
    the file back to the pages written and ends the chain at the last of them.
    """

    format = "tiff"

    def _load(self) -> None:
        self._tifffile = _need("tifffile", "recording to TIFF")

    def _open(self) -> None:
        self._file = open(self.path, "xb+", buffering=0)  # read too: a repair reads the last page's IFD
        try:
            self._writer = self._tifffile.TiffWriter(self._file, bigtiff=True)
        except BaseException:
            self._file.close()
            raise
        self._last_page_at: int | None = None  # file offset of the newest page's IFD
        self._failed_at: int | None = None

    def _write(self, image: NDArray[Any]) -> None:
        start = self._file.tell()
        first = self.frames_written == 0
        try:
            self._writer.write(image, contiguous=False, metadata=None, photometric="minisblack",
                               description=_tiff_json(self, None, self.metadata) if first else None)
        except OSError:
            self._failed_at = start
            raise
        self._last_page_at = start + start % 2  # tifffile puts the IFD first, on a word boundary

    def _finish(self, ledger: NDArray[np.void], metadata: Metadata) -> None:
        try:
            try:
                self._writer.close()  # it leaves our file open
            except OSError:
                if self._failed_at is None:
                    raise
            if self._failed_at is not None:
                self._cut_after_last_page()
        finally:
            self._file.close()
        if self.frames_written == 0:  # a TIFF has at least one page: no frame, no file
            _remove_quietly(self.path)
            return
        self._tifffile.tiffcomment(self.path, self._description(ledger, metadata))

    def _cut_after_last_page(self) -> None:
        fd = self._file.fileno()
        assert self._failed_at is not None  # called after a failed write only
        os.ftruncate(fd, self._failed_at)
        if self._last_page_at is None:
            link = 8  # the header's pointer to the first IFD
        else:
            tags = int.from_bytes(os.pread(fd, 8, self._last_page_at), "little")
            link = self._last_page_at + 8 + 20 * tags
        os.pwrite(fd, bytes(8), link)

    def _description(self, ledger: NDArray[np.void], metadata: Metadata) -> str:
        return _tiff_json(self, ledger, metadata)


class OmeTiffRecording(TiffRecording):
    """The TIFF pages with OME-XML (OME 2016-06) in the first page's ImageDescription at close: Pixels
    (XYZCT, SizeT = frames), a Plane per frame, the Detector, and the same JSON as a TIFF recording in a
    CommentAnnotation (namespace andor-twisted/recording). Until close, the first page has the JSON only,
    so a file cut short reads as a plain TIFF of the frames written."""

    format = "ome-tiff"

    def _load(self) -> None:
        if self.dtype.str[1:] not in OME_TYPES:
            raise ValueError(f"OME-TIFF has no pixel type for {self.dtype}; record it as .tif, .h5, .zarr or .fits")
        super()._load()

    def _description(self, ledger: NDArray[np.void], metadata: Metadata) -> str:
        return ome_xml(self, ledger, metadata)


OME = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
OME_TYPES = {"u1": "uint8", "u2": "uint16", "u4": "uint32", "i1": "int8", "i2": "int16", "i4": "int32",
             "f4": "float", "f8": "double"}
OME_BINNINGS = {"1x1", "2x2", "4x4", "8x8"}
NAMESPACE = "andor-twisted/recording"


def _tiff_json(recording: Recording, ledger: NDArray[np.void] | None, metadata: Metadata) -> str:
    """The JSON document of TIFF recordings (docs/recording.md). No key may be "shape": tifffile would
    take the file for one of its own "shaped" files."""
    height, width = recording.shape
    document = {"andor_recording": 1, "axes": "TYX", "frame_height": height, "frame_width": width,
                "dtype": recording.dtype.str, "metadata": metadata}
    if ledger is not None:
        document["frames"] = recording.frames_written
        document["ledger"] = {name: ledger[name].tolist() for name in _LEDGER_FIELDS if name != "time"}
        document["ledger"]["time"] = [None if np.isnat(t) else np.datetime_as_string(t, unit="ns") + "Z"
                                      for t in ledger["time"]]
    return json.dumps(document)


def ome_xml(recording: Recording, ledger: NDArray[np.void], metadata: Metadata) -> str:
    """The OME-XML of an OME-TIFF recording of ``recording.frames_written`` frames."""
    height, width = recording.shape
    n = recording.frames_written
    ET.register_namespace("", OME)

    def q(tag: str) -> str:
        return f"{{{OME}}}{tag}"

    root = ET.Element(f"{{{OME}}}OME", {"Creator": "andor-twisted client"})
    detector = {k: str(metadata[key]) for k, key in (("Model", "camera_model"), ("SerialNumber", "serial_number"))
                if key in metadata}
    if detector:
        instrument = ET.SubElement(root, q("Instrument"), ID="Instrument:0")
        ET.SubElement(instrument, q("Detector"), {"ID": "Detector:0", **detector})
    image = ET.SubElement(root, q("Image"), ID="Image:0", Name=os.path.basename(recording.path))
    if "date_obs" in metadata:
        ET.SubElement(image, q("AcquisitionDate")).text = str(metadata["date_obs"])
    if detector:
        ET.SubElement(image, q("InstrumentRef"), ID="Instrument:0")
    pixel_attrs = {"ID": "Pixels:0", "DimensionOrder": "XYZCT", "Type": OME_TYPES[recording.dtype.str[1:]],
                   "SizeX": str(width), "SizeY": str(height), "SizeZ": "1", "SizeC": "1", "SizeT": str(n),
                   "BigEndian": "false", "Interleaved": "false"}
    if isinstance(metadata.get("bit_depth"), int):
        pixel_attrs["SignificantBits"] = str(metadata["bit_depth"])
    pixels = ET.SubElement(image, q("Pixels"), pixel_attrs)
    channel = ET.SubElement(pixels, q("Channel"), ID="Channel:0:0", SamplesPerPixel="1")
    if detector:
        settings = {"ID": "Detector:0"}
        if metadata.get("binning") in OME_BINNINGS:
            settings["Binning"] = str(metadata["binning"])
        ET.SubElement(channel, q("DetectorSettings"), settings)
    ET.SubElement(pixels, q("TiffData"), IFD="0", PlaneCount=str(n))
    start = (np.datetime64(re.sub(r"(Z|\+00:00)$", "", str(metadata["date_obs"])), "ns") if "date_obs" in metadata
             else None)
    exposure = metadata.get("exposure_time_s")
    for t, row in enumerate(ledger[~ledger["lost"]]):
        plane = {"TheZ": "0", "TheC": "0", "TheT": str(t)}
        if start is not None and not np.isnat(row["time"]):
            plane.update(DeltaT=repr(float((row["time"] - start) / np.timedelta64(1, "ns")) / 1e9), DeltaTUnit="s")
        if isinstance(exposure, (int, float)) and not isinstance(exposure, bool):
            plane.update(ExposureTime=repr(float(exposure)), ExposureTimeUnit="s")
        ET.SubElement(pixels, q("Plane"), plane)
    ET.SubElement(image, q("AnnotationRef"), ID="Annotation:0")
    ET.SubElement(image, q("AnnotationRef"), ID="Annotation:1")
    annotations = ET.SubElement(root, q("StructuredAnnotations"))
    values = ET.SubElement(ET.SubElement(annotations, q("MapAnnotation"), ID="Annotation:0",
                                         Namespace=NAMESPACE + "/metadata"), q("Value"))
    for key, value in metadata.items():
        ET.SubElement(values, q("M"), K=key).text = json.dumps(value) if not isinstance(value, str) else value
    comment = ET.SubElement(annotations, q("CommentAnnotation"), ID="Annotation:1", Namespace=NAMESPACE)
    ET.SubElement(comment, q("Value")).text = _tiff_json(recording, ledger, metadata)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


# ---- shared helpers ----

def clean_metadata(metadata: Mapping[str, object] | None, prefix: str = "") -> Metadata:
    """``metadata`` flattened ("outer.inner"), numpy scalars made plain, absent values (None, NaN)
    dropped, ``date_obs`` checked to be ISO 8601 UTC. Other values than str, int, float and bool are
    refused (ValueError)."""
    out: Metadata = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"metadata keys are non-empty strings, not {key!r}")
        name = prefix + key
        if isinstance(value, dict):
            out.update(clean_metadata(value, name + "."))
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if not isinstance(value, (str, bool, int, float)):
            raise ValueError(f"metadata {name!r}: a {type(value).__name__} is not a str, int, float or bool")
        if name == "date_obs" and not (isinstance(value, str) and _DATE.match(value)):
            raise ValueError(f"date_obs {value!r} is not an ISO 8601 UTC time such as 2024-05-01T12:00:00.123456Z")
        out[name] = value
    return out


def all_of(*steps: Callable[[], object]) -> None:
    """Run every step even if one fails (a file that cannot take its length may still take its ledger);
    then raise the first OSError."""
    first: OSError | None = None
    for step in steps:
        try:
            step()
        except OSError as e:
            first = first or e
    if first is not None:
        raise first


def pwrite_all(fd: int, data: NDArray[Any] | bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` (an array or bytes) at ``offset`` of file descriptor ``fd``, however many
    calls it takes."""
    view = np.ascontiguousarray(data).reshape(-1).view(np.uint8).data if isinstance(data, np.ndarray) \
        else memoryview(data).cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        if not n:
            raise OSError(errno_codes.ENOSPC, os.strerror(errno_codes.ENOSPC))
        view = view[n:]
        offset += n


def _as_row(row: LedgerRow) -> np.void:
    if isinstance(row, np.void) and row.dtype == LEDGER_DTYPE:
        return row
    if isinstance(row, dict):
        unknown = set(row) - set(_LEDGER_FIELDS)
        if unknown or "frame" not in row:
            raise ValueError(f"a ledger row has the fields {_LEDGER_FIELDS} (frame required), not {sorted(row)}")
        row = (row["frame"], row.get("ticks", -1), row.get("time"), row.get("late", False),
               row.get("late_by_s", 0.0), row.get("lost", False))
    row = tuple(cast("Iterable[Any]", row))  # a record of another dtype is a sequence too (not in numpy's types)
    if len(row) != len(_LEDGER_FIELDS):
        raise ValueError(f"a ledger row has {len(_LEDGER_FIELDS)} fields {_LEDGER_FIELDS}, not {row!r}")
    when = row[2]
    if when is None:
        when = np.datetime64("NaT", "ns")
    elif isinstance(when, str):
        when = np.datetime64(re.sub(r"(Z|\+00:00)$", "", when), "ns")
    out = np.zeros((), LEDGER_DTYPE)
    out[()] = (row[0], row[1], when, row[3], row[4], row[5])
    return cast(np.void, out[()])  # a record (numpy's types say an array)


def _as_ledger(ledger: NDArray[np.void] | list[LedgerRow]) -> NDArray[np.void]:
    ledger = np.asarray(ledger) if not isinstance(ledger, list) else np.array([_as_row(r) for r in ledger],
                                                                               LEDGER_DTYPE)
    if ledger.dtype != LEDGER_DTYPE or ledger.ndim != 1:
        raise ValueError(f"a ledger is a 1-D array of LEDGER_DTYPE, not {ledger.dtype} {ledger.shape}")
    return ledger


def _span(frames: NDArray[Any]) -> str:
    if not len(frames):
        return "none"
    return f"{frames[0]}..{frames[-1]} ({len(frames)})"


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _format_for(path: str | os.PathLike[str], fmt: str | None) -> str:
    if fmt is not None:
        kind = FORMAT_NAMES.get(str(fmt).lower().lstrip("."))
        if kind is None:
            raise ValueError(f"unknown recording format {fmt!r}: use one of hdf5, zarr, fits, tiff, ome-tiff")
        return kind
    name = os.path.basename(os.fspath(path).rstrip("/" + os.sep)).lower()
    for extension in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(extension):
            return EXTENSIONS[extension]
    raise ValueError(f"{os.fspath(path)!r}: the extension names no recording format; use one of "
                     f"{', '.join(EXTENSIONS)} (or format=...)")


def _make_room(path: str, overwrite: bool) -> None:
    """Refuse an existing ``path`` unless ``overwrite``; then remove it (a directory only if it is a Zarr
    store)."""
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(errno_codes.EEXIST, f"{path} exists; pass overwrite=True to replace it", path)
    if os.path.isdir(path) and not os.path.islink(path):
        if not any(os.path.exists(os.path.join(path, name)) for name in (".zgroup", ".zarray", "zarr.json")):
            raise FileExistsError(errno_codes.EEXIST, f"{path} is a directory that is not a Zarr store; "
                                                      f"not replacing it", path)
        shutil.rmtree(path)
    else:
        os.remove(path)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _need(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{purpose} needs {module.split('.')[0]}: {INSTALL}") from e


def _progress_bar(progress: bool | None, total: int | None, path: str) -> Any:
    if progress is None:
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not progress:
        return None
    tqdm = _need("tqdm", "a progress bar")
    return tqdm.tqdm(total=total, unit="frame", desc=os.path.basename(path.rstrip(os.sep)), file=sys.stderr)
