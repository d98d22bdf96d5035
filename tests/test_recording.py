"""Recording frames to disk (client/andor/recording.py): each format written, then read back with its own
library (h5py, zarr, astropy.io.fits, tifffile) to the pixel, ledger row and metadata value; a save cut
short by an exception or a failing disk leaves a readable file of exactly the frames written; the writer
keeps no frames in memory."""

import contextlib
import errno
import io
import json
import os
import shutil
import sys
import tempfile
import tracemalloc
import xml.etree.ElementTree as ET

import numpy as np
from twisted.trial import unittest

from andor import AndorError, RecordingError
from andor import recording
from andor.recording import LEDGER_DTYPE, RecordingReader, ledger_row, open_recording

SHAPE = (5, 7)
FORMATS = {"hdf5": "rec.h5", "zarr": "rec.ome.zarr", "fits": "rec.fits", "tiff": "rec.tif", "ome-tiff": "rec.ome.tif"}
METADATA = {
    "camera_model": "Neo 5.5", "serial_number": "VSC-01234", "firmware": "11.7.30.0", "interface": "CL 3 Tap",
    "exposure_time_s": 0.01, "frame_rate_hz": 50.0, "aoi_left": 1, "aoi_top": 9, "aoi_width": 14,
    "aoi_height": 10, "binning": "2x2", "pixel_encoding": "Mono16", "bit_depth": 16,
    "sensor_temperature_c": -29.5, "cooling_status": "Stabilised", "trigger_mode": "Internal",
    "time_uncertainty_s": 0.002, "date_obs": "2024-05-01T12:00:00.123456789Z", "tick_frequency_hz": 100000000,
    "burst_id": 7, "frames_requested": 5, "fps_requested": 50.0,
    "server": "andor-twisted at 127.0.0.1:8000, a long value that takes more than one FITS card to hold",
}
T0 = np.datetime64("2024-05-01T12:00:00.123456789", "ns")


def frames(n, dtype="u2"):
    """n distinct frames, using the whole range of the type (FITS offsets unsigned integers)."""
    top = np.iinfo(dtype).max
    return [((np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint64).reshape(SHAPE) * 977 + i * 131) % top)
            .astype(dtype) for i in range(n)]


def rows(n):
    """Ledger rows for frames 0..n-1: frame 1 late with unknown ticks, frame 2 of unknown time."""
    out = [ledger_row(i, ticks=1000 + 2_000_000 * i, time=T0 + np.timedelta64(20_000_000 * i, "ns"))
           for i in range(n)]
    if n > 2:
        out[1] = ledger_row(1, ticks=-1, time=T0 + np.timedelta64(25_000_000, "ns"), late=True, late_by_s=0.005)
        out[2] = ledger_row(2, ticks=1000 + 4_000_000, time=None)
    return out


def plain(value):
    return value.item() if isinstance(value, np.generic) else value


def typed(metadata):
    """Metadata as {key: (type, value)}: a bool read back as 1 is not the same value."""
    return {k: (type(v).__name__, v) for k, v in metadata.items()}


# ---- each format read back with its own library ----

def read_hdf5(path):
    import h5py

    with h5py.File(path, "r") as f:
        stored = f["ledger"][()].astype(recording.STORED_LEDGER_DTYPE)
        return f["frames"][()], stored.view(LEDGER_DTYPE), {k: plain(v) for k, v in f.attrs.items()}


def read_zarr(path):
    import zarr

    root = zarr.open_group(path, mode="r")
    ledger = np.zeros(root["ledger/frame"].shape[0], LEDGER_DTYPE)
    for name in LEDGER_DTYPE.names:
        ledger[name] = root["ledger/" + name][:]
    return root["0"][:], ledger, dict(root.attrs["andor"])


def read_fits(path):
    from astropy.io import fits

    keys = {keyword: key for key, (keyword, _) in recording.METADATA_CARDS.items()}
    with fits.open(path) as hdul:
        data = np.array(hdul[0].data)
        header = hdul[0].header
        metadata = {}
        for card in header.cards:
            if card.keyword in keys:
                metadata[keys[card.keyword]] = card.value
            elif card.keyword.startswith("ANDOR "):
                metadata[card.keyword[len("ANDOR "):]] = card.value
        if "date_obs" in metadata:
            metadata["date_obs"] += "Z"  # FITS dates have no zone: TIMESYS says UTC
        ledger = np.zeros(0, LEDGER_DTYPE)
        if len(hdul) > 1:
            table = hdul["LEDGER"].data
            ledger = np.zeros(len(table), LEDGER_DTYPE)
            for name in LEDGER_DTYPE.names:
                column = np.asarray(table[name])
                ledger[name] = column.astype("<i8").view("M8[ns]") if name == "time" else column
    return data, ledger, metadata


def json_ledger(document):
    columns = document["ledger"]
    ledger = np.zeros(len(columns["frame"]), LEDGER_DTYPE)
    for name in LEDGER_DTYPE.names:
        values = columns[name]
        if name == "time":
            values = [np.datetime64(t.rstrip("Z"), "ns") if t else np.datetime64("NaT", "ns") for t in values]
        ledger[name] = values
    return ledger


def read_tiff(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        document = json.loads(tif.pages[0].description)
        pixels = tif.series[0].asarray().reshape((-1,) + tif.pages[0].shape)  # one page reads as 2-D
        return pixels, json_ledger(document), document["metadata"]


def tiff_chain(path):
    """The offsets of the IFDs (pages) of a little-endian BigTIFF, following its chain as any reader
    would; every link must lead inside the file, and the last must be 0."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"II+\x00", data[:4]
    pages, at = [], int.from_bytes(data[8:16], "little")
    while at:
        assert at + 8 <= len(data), f"page {len(pages)} at {at} is past the end ({len(data)} bytes)"
        pages.append(at)
        tags = int.from_bytes(data[at:at + 8], "little")
        at = int.from_bytes(data[at + 8 + 20 * tags:at + 16 + 20 * tags], "little")
    return pages


def ome_root(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return ET.fromstring(tif.pages[0].description)


OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


def read_ome_tiff(path):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        pixels = tif.series[0].asarray().reshape((-1,) + tif.pages[0].shape)
    comment = ome_root(path).find(f"{OME}StructuredAnnotations/{OME}CommentAnnotation/{OME}Value")
    document = json.loads(comment.text)
    return pixels, json_ledger(document), document["metadata"]


READERS = {"hdf5": read_hdf5, "zarr": read_zarr, "fits": read_fits, "tiff": read_tiff, "ome-tiff": read_ome_tiff}


def file_bytes(path):
    """Bytes of the file, or of every file under the directory."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


@contextlib.contextmanager
def unprivileged():
    """Run as nobody when root (who ignores permissions), so a read-only directory refuses writes."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


class RecordingFixture:
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="test_recording.")  # absolute: nobody cannot enter _trial_temp
        os.chmod(self.dir, 0o777)  # nobody writes here in the permission tests
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, fmt):
        return os.path.join(self.dir, FORMATS[fmt])

    def record(self, fmt, images, ledger_rows, metadata=METADATA, **kwargs):
        rec = open_recording(self.path(fmt), shape=SHAPE, dtype=images[0].dtype, metadata=metadata,
                             progress=False, **kwargs)
        for image, row in zip(images, ledger_rows, strict=True):
            rec.append(image, row)
        return rec

    def assertReadsBack(self, fmt, images, ledger, metadata):
        pixels, got_ledger, got_metadata = READERS[fmt](self.path(fmt))
        self.assertEqual(pixels.dtype, images[0].dtype if images else pixels.dtype, fmt)
        self.assertEqual(pixels.shape, (len(images),) + SHAPE, fmt)
        self.assertTrue(np.array_equal(pixels, np.array(images).reshape(pixels.shape)), fmt)
        self.assertEqual(got_ledger.dtype, LEDGER_DTYPE)
        self.assertEqual(got_ledger.tolist(), np.array(ledger, LEDGER_DTYPE).tolist(), fmt)
        self.assertEqual(typed(got_metadata), typed(metadata), fmt)
        if fmt in ("tiff", "ome-tiff"):
            self.assertEqual(len(tiff_chain(self.path(fmt))), len(images), fmt)


class FormatTests(RecordingFixture, unittest.TestCase):
    def test_each_format_reads_back_exactly(self):
        """Pixels, every ledger field (NaT, unknown ticks, late frames) and every metadata value, with its
        type, come back from each format through that format's own library."""
        images, ledger = frames(4), rows(4)
        for fmt in FORMATS:
            with self.record(fmt, images, ledger) as rec:
                self.assertEqual(rec.frames_written, 4)
            self.assertReadsBack(fmt, images, ledger, METADATA)

    def test_final_ledger_and_metadata_at_close(self):
        """close(ledger=...) replaces the appended rows (adding a lost frame and a better time), and
        close(metadata=...) adds the burst summary (flattened, None left out) and replaces a value."""
        images = frames(3)
        appended = [ledger_row(0), ledger_row(1), ledger_row(3)]
        final = [ledger_row(0, ticks=5, time="2024-05-01T12:00:00.5Z"), ledger_row(1, ticks=6),
                 ledger_row(2, lost=True), ledger_row(3, ticks=8)]
        extra = {"summary": {"frames": 4, "fps_achieved": 49.5, "error": None}, "sensor_temperature_c": -30.0}
        expected = dict(METADATA, sensor_temperature_c=-30.0, **{"summary.frames": 4, "summary.fps_achieved": 49.5})
        for fmt in FORMATS:
            rec = self.record(fmt, images, appended)
            rec.close(ledger=final, metadata=extra)
            self.assertReadsBack(fmt, images, final, expected)
        # OME-XML: a Plane per frame in the file (the lost one has none), timed from DATE-OBS
        planes = ome_root(self.path("ome-tiff")).findall(f"{OME}Image/{OME}Pixels/{OME}Plane")
        self.assertEqual([p.get("TheT") for p in planes], ["0", "1", "2"])
        self.assertEqual(planes[0].get("DeltaT"), repr(0.5 - 0.123456789))

    def test_unsigned_32_bit_frames(self):
        """Mono32 frames (uint32, to the top of their range) survive every format, FITS's BZERO included."""
        images = frames(2, "u4")
        images[0][0, 0] = np.iinfo("u4").max
        for fmt in FORMATS:
            self.record(fmt, images, rows(2)).close()
            self.assertReadsBack(fmt, images, rows(2), METADATA)

    def test_no_metadata_invented(self):
        """With no metadata the files hold none: no FITS card beyond the structure, TIMESYS and the
        date the file was written, no Detector or AcquisitionDate in OME-XML, and no Plane times."""
        images = frames(2)
        for fmt in FORMATS:
            self.record(fmt, images, rows(2), metadata={}).close()
            self.assertReadsBack(fmt, images, rows(2), {})
        from astropy.io import fits

        keywords = list(fits.getheader(self.path("fits")).keys())
        self.assertEqual([k for k in keywords if k], ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3",
                                                      "EXTEND", "BZERO", "BSCALE", "TIMESYS"])
        root = ome_root(self.path("ome-tiff"))
        self.assertIsNone(root.find(f"{OME}Instrument"))
        self.assertIsNone(root.find(f"{OME}Image/{OME}AcquisitionDate"))
        plane = root.find(f"{OME}Image/{OME}Pixels/{OME}Plane")
        self.assertEqual(sorted(plane.keys()), ["TheC", "TheT", "TheZ"])

    def test_fits_cards(self):
        """The FITS header names things as astronomers' tools expect: DATE-OBS without a zone, TIMESYS
        UTC, EXPTIME, INSTRUME, CCD-TEMP, TIMSYER, a long SERVER over CONTINUE cards; the ledger is a
        BINTABLE whose time column is nanoseconds from MJDREF 1970-01-01, unknown as TNULL."""
        from astropy.io import fits

        self.record("fits", frames(3), rows(3)).close()
        with fits.open(self.path("fits")) as hdul:
            header = hdul[0].header
            self.assertEqual(header["DATE-OBS"], "2024-05-01T12:00:00.123456789")
            self.assertEqual(header["TIMESYS"], "UTC")
            self.assertEqual((header["EXPTIME"], header["INSTRUME"], header["CCD-TEMP"], header["TIMSYER"]),
                             (0.01, "Neo 5.5", -29.5, 0.002))
            self.assertEqual(header["SERVER"], METADATA["server"])
            self.assertEqual(header.comments["EXPTIME"], "[s] exposure time")
            table = hdul["LEDGER"].header
            self.assertEqual((table["TUNIT3"], table["TNULL3"], table["MJDREF"]), ("ns", np.iinfo("i8").min, 40587.0))

    def test_zarr_is_ome_ngff_for_dask_and_ome_zarr(self):
        """The Zarr store is OME-NGFF 0.4: multiscales with axes t, y, x and one dataset "0" whose t scale
        is the frame period; dask reads the array, and so does ome-zarr-py's reader when installed."""
        import dask.array

        images = frames(3)
        self.record("zarr", images, rows(3)).close()
        path = self.path("zarr")
        with open(os.path.join(path, ".zattrs")) as f:
            multiscales = json.load(f)["multiscales"]
        self.assertEqual(multiscales[0]["version"], "0.4")
        self.assertEqual([a["name"] for a in multiscales[0]["axes"]], ["t", "y", "x"])
        self.assertEqual(multiscales[0]["datasets"],
                         [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.02, 1.0, 1.0]}]}])
        with open(os.path.join(path, "0", ".zarray")) as f:
            self.assertEqual(json.load(f)["dimension_separator"], "/")
        self.assertTrue(np.array_equal(dask.array.from_zarr(path, component="0").compute(), np.array(images)))
        try:
            from ome_zarr.io import parse_url
            from ome_zarr.reader import Reader
        except ImportError:
            raise unittest.SkipTest("ome-zarr is not installed") from None
        node = next(iter(Reader(parse_url(path))()))
        self.assertTrue(np.array_equal(np.asarray(node.data[0]), np.array(images)))

    def test_ome_tiff_detector_and_pixels(self):
        """OME-XML names the detector, the pixel type and size, one TiffData for all planes, the binning
        and the significant bits, and carries the metadata as a map annotation too."""
        self.record("ome-tiff", frames(3), rows(3)).close()
        root = ome_root(self.path("ome-tiff"))
        detector = root.find(f"{OME}Instrument/{OME}Detector")
        self.assertEqual((detector.get("Model"), detector.get("SerialNumber")), ("Neo 5.5", "VSC-01234"))
        pixels = root.find(f"{OME}Image/{OME}Pixels")
        self.assertEqual({k: pixels.get(k) for k in ("Type", "SizeX", "SizeY", "SizeT", "SignificantBits")},
                         {"Type": "uint16", "SizeX": "7", "SizeY": "5", "SizeT": "3", "SignificantBits": "16"})
        self.assertEqual(pixels.find(f"{OME}TiffData").attrib, {"IFD": "0", "PlaneCount": "3"})
        self.assertEqual(pixels.find(f"{OME}Channel/{OME}DetectorSettings").get("Binning"), "2x2")
        self.assertEqual(root.find(f"{OME}Image/{OME}AcquisitionDate").text, METADATA["date_obs"])
        pairs = {m.get("K"): m.text for m in root.iter(f"{OME}M")}
        self.assertEqual((pairs["camera_model"], pairs["bit_depth"]), ("Neo 5.5", "16"))

    def test_tiff_is_one_bigtiff_series(self):
        """A TIFF recording is BigTIFF, one page per frame, read as one series (not tifffile's "shaped"
        kind, whatever the JSON holds)."""
        import tifffile

        self.record("tiff", frames(3), rows(3)).close()
        with tifffile.TiffFile(self.path("tiff")) as tif:
            self.assertTrue(tif.is_bigtiff)
            self.assertEqual((len(tif.pages), len(tif.series), tif.series[0].shape), (3, 1, (3,) + SHAPE))


class ApiTests(RecordingFixture, unittest.TestCase):
    def test_format_from_extension(self):
        """The extension picks the format (.ome.tif before .tif); format= overrides it; an unknown
        extension is refused with the supported ones named."""
        for name, kind in (("a.h5", "hdf5"), ("a.HDF5", "hdf5"), ("a.zarr", "zarr"), ("a.ome.zarr", "zarr"),
                           ("a.fit", "fits"), ("a.tiff", "tiff"), ("a.ome.tiff", "ome-tiff"),
                           ("a.ome.tif", "ome-tiff")):
            self.assertEqual(recording._format_for(name, None), kind, name)
        self.assertEqual(recording._format_for("a.dat", "HDF5"), "hdf5")
        with self.assertRaises(ValueError) as caught:
            open_recording(os.path.join(self.dir, "a.dat"), shape=SHAPE, dtype="u2", metadata={})
        self.assertIn(".h5, .hdf5, .zarr, .ome.zarr, .fits, .fit, .tif, .tiff, .ome.tif, .ome.tiff",
                      str(caught.exception))
        with self.assertRaises(ValueError):
            open_recording(self.path("fits"), shape=SHAPE, dtype="u2", metadata={}, format="png")
        self.record("hdf5", frames(1), rows(1)).close()
        os.rename(self.path("hdf5"), os.path.join(self.dir, "frames.dat"))
        self.record("hdf5", frames(1), rows(1), format="fits").close()
        self.assertEqual(open(self.path("hdf5"), "rb").read(6), b"SIMPLE")

    def test_refuses_to_overwrite(self):
        """An existing file or store is kept unless overwrite=True; a directory that is not a Zarr store
        is never removed."""
        for fmt in FORMATS:
            self.record(fmt, frames(2), rows(2)).close()
            with self.assertRaises(FileExistsError):
                self.record(fmt, frames(1), rows(1))
            self.record(fmt, frames(1), rows(1), overwrite=True).close()
            self.assertEqual(READERS[fmt](self.path(fmt))[0].shape[0], 1)
        other = os.path.join(self.dir, "data.zarr")
        os.makedirs(other)
        with self.assertRaises(FileExistsError):
            open_recording(other, shape=SHAPE, dtype="u2", metadata={}, overwrite=True)
        self.assertTrue(os.path.isdir(other))

    def test_refuses_wrong_frames_and_rows(self):
        """A frame of another shape or type, a row marked lost, a row with unknown fields and an append
        after close are refused with a ValueError saying what was expected."""
        rec = self.record("hdf5", frames(1), rows(1))
        with self.assertRaisesRegex(ValueError, r"takes \(5, 7\) frames"):
            rec.append(np.zeros((7, 5), "u2"), ledger_row(1))
        with self.assertRaisesRegex(ValueError, "takes uint16 frames"):
            rec.append(np.zeros(SHAPE, "u4"), ledger_row(1))
        with self.assertRaisesRegex(ValueError, "lost"):
            rec.append(frames(1)[0], ledger_row(1, lost=True))
        with self.assertRaisesRegex(ValueError, "fields"):
            rec.append(frames(1)[0], {"frame": 1, "color": "red"})
        rec.append(frames(1)[0].astype(">u2"), {"frame": 1})  # big-endian is the same type
        with self.assertRaisesRegex(ValueError, "OME-TIFF has no pixel type"):  # refused before any file exists
            open_recording(self.mktemp() + ".ome.tif", shape=SHAPE, dtype="u8", metadata={})
        rec.close()
        with self.assertRaisesRegex(ValueError, "closed"):
            rec.append(frames(1)[0], ledger_row(2))
        self.assertEqual(READERS["hdf5"](self.path("hdf5"))[0].shape[0], 2)

    def test_final_ledger_must_match_the_frames(self):
        """A final ledger whose present frames are not the frames written raises ValueError, after the
        file is finished with the appended rows."""
        for fmt in FORMATS:
            rec = self.record(fmt, frames(2), rows(2))
            with self.assertRaisesRegex(ValueError, "final ledger"):
                rec.close(ledger=[ledger_row(0), ledger_row(1, lost=True), ledger_row(2)])
            self.assertReadsBack(fmt, frames(2), rows(2), METADATA)

    def test_metadata_is_checked(self):
        """Nested dicts are flattened, None and NaN are absent, numpy scalars become plain values;
        lists and dates that are not UTC are refused."""
        self.assertEqual(recording.clean_metadata({"a": {"b": np.int64(3), "c": None}, "d": float("nan"),
                                                   "e": np.float32(0.5)}), {"a.b": 3, "e": 0.5})
        for bad in ({"a": [1, 2]}, {"date_obs": "2024-05-01T12:00:00+02:00"}, {"date_obs": "yesterday"}, {1: 2}):
            with self.assertRaises(ValueError, msg=bad):
                recording.clean_metadata(bad)

    def test_missing_library_names_the_extra(self):
        """Without the format's library, open_recording says which extra installs it."""
        self.patch(sys, "modules", dict(sys.modules, h5py=None))
        with self.assertRaisesRegex(ImportError, r"andor-client\[record\]"):
            open_recording(self.path("hdf5"), shape=SHAPE, dtype="u2", metadata={})
        self.assertFalse(os.path.exists(self.path("hdf5")))

    def test_progress(self):
        """progress=True shows a bar counting frames and MB; progress=None shows one only when stderr
        is a terminal."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        rec = open_recording(self.path("fits"), shape=SHAPE, dtype="u2", metadata={}, progress=None)
        self.assertIsNone(rec._bar)
        rec.close()
        self.assertEqual(err.getvalue(), "")
        rec = open_recording(self.path("hdf5"), shape=SHAPE, dtype="u2", metadata={}, expected_frames=2,
                             progress=True)
        for image, row in zip(frames(2), rows(2), strict=True):
            rec.append(image, row)
        rec.close()
        self.assertRegex(err.getvalue(), r"rec\.h5: 100%.*2/2.*frame.*0 MB")

    def test_empty_recordings(self):
        """Closed with no frame, HDF5, Zarr and FITS hold zero frames; a TIFF cannot, so none is left."""
        for fmt in FORMATS:
            open_recording(self.path(fmt), shape=SHAPE, dtype="u2", metadata=METADATA, progress=False).close()
            if fmt in ("tiff", "ome-tiff"):
                self.assertFalse(os.path.exists(self.path(fmt)))
            else:
                self.assertReadsBack(fmt, [], [], METADATA)


class InterruptionTests(RecordingFixture, unittest.TestCase):
    def test_exception_mid_save(self):
        """An exception while saving leaves each format readable with exactly the frames written, their
        ledger rows and the metadata; the exception goes on."""
        images = frames(5)
        for fmt in FORMATS:
            with self.assertRaises(KeyboardInterrupt):
                with self.record(fmt, images[:3], rows(3)):
                    raise KeyboardInterrupt
            self.assertReadsBack(fmt, images[:3], rows(3), METADATA)

    def test_readable_while_writing(self):
        """FITS, TIFF and Zarr are readable before close, as if the writer had died there: FITS and TIFF
        with every frame written, Zarr with every complete chunk."""
        self.patch(recording, "ZARR_CHUNK_BYTES", 2 * SHAPE[0] * SHAPE[1] * 2)  # two frames a chunk
        images = frames(5)
        for fmt in ("fits", "tiff", "zarr"):
            rec = self.record(fmt, images, rows(5))
            pixels = READERS[fmt](self.path(fmt))[0] if fmt != "tiff" else __import__("tifffile").imread(self.path(fmt))
            expected = 4 if fmt == "zarr" else 5
            self.assertTrue(np.array_equal(pixels, np.array(images[:expected])), fmt)
            rec.close()
            self.assertReadsBack(fmt, images, rows(5), METADATA)

    def fail_after(self, fmt, rec, frames_ok, error):
        """Make the writer's low-level write of a frame fail (half of it written first) after
        ``frames_ok`` frames."""
        calls = {"frames": 0}
        frame_bytes = rec.frame_bytes

        def failing(real, count, write_half):
            def write(*args):
                if count(args):
                    calls["frames"] += 1
                    if calls["frames"] > frames_ok:
                        write_half(args)
                        raise OSError(error, os.strerror(error))
                return real(*args)
            return write

        if fmt in ("fits", "zarr"):
            real = os.pwrite
            return self.patch(os, "pwrite", failing(real, lambda a: len(a[1]) == frame_bytes,
                                                    lambda a: real(a[0], a[1][:frame_bytes // 2], a[2])))
        if fmt == "hdf5":
            rec._write_chunk = failing(rec._write_chunk, lambda a: True, lambda a: None)
            return None
        import tifffile

        real = tifffile.FileHandle.write_array
        return self.patch(tifffile.FileHandle, "write_array", failing(
            real, lambda a: a[1].nbytes == frame_bytes, lambda a: a[0].write(a[1].tobytes()[:frame_bytes // 2])))

    def test_disk_full(self):
        """A write failing with ENOSPC raises RecordingError naming the path, the frames written and the
        cause; the file is left readable with exactly those frames, and later appends raise it again."""
        images = frames(5)
        for fmt in FORMATS:
            rec = self.record(fmt, images[:1], rows(1))
            patched = self.fail_after(fmt, rec, 2, errno.ENOSPC)
            with self.assertRaises(RecordingError) as caught:
                for image, row in zip(images[1:], rows(5)[1:], strict=True):
                    rec.append(image, row)
            e = caught.exception
            self.assertIsInstance(e, AndorError)
            self.assertEqual((e.path, e.frames_written, e.errno), (self.path(fmt), 3, errno.ENOSPC))
            message = str(e)
            for part in (self.path(fmt), "writing frame 3 failed after 3 frames", "No space left on device",
                         "ENOSPC", "keeps the 3 frames written so far"):
                self.assertIn(part, message, fmt)
            self.assertIsInstance(e.__cause__, OSError)
            with self.assertRaises(RecordingError):
                rec.append(images[4], rows(5)[4])
            rec.close()
            if patched is not None:
                patched.restore()  # the disk has room again for the next format
            self.assertReadsBack(fmt, images[:3], rows(3), METADATA)

    def test_permission_denied(self):
        """A recording in a read-only directory fails at once with RecordingError (EACCES) and leaves
        nothing; a Zarr store whose array folder turns read-only mid-way keeps its complete chunks."""
        import zarr  # noqa: F401 (nobody cannot read root's Python)

        readonly = os.path.join(self.dir, "readonly")
        os.makedirs(readonly)
        os.chmod(readonly, 0o555)
        with unprivileged():
            open(os.path.join(self.dir, "writable"), "w").close()  # the read-only directory refuses, not another
            for fmt, name in FORMATS.items():
                path = os.path.join(readonly, name)
                with self.assertRaises(RecordingError) as caught:
                    open_recording(path, shape=SHAPE, dtype="u2", metadata=METADATA, progress=False)
                self.assertEqual(caught.exception.errno, errno.EACCES, fmt)
                self.assertIn("Permission denied", str(caught.exception))
                self.assertFalse(os.path.exists(path), fmt)
            self.patch(recording, "ZARR_CHUNK_BYTES", 1)  # one frame a chunk
            with self.assertRaises(RecordingError) as caught:
                with self.record("zarr", frames(2), rows(2)) as rec:
                    os.chmod(os.path.join(self.path("zarr"), "0"), 0o555)
                    rec.append(frames(3)[2], rows(3)[2])
            self.assertEqual(caught.exception.errno, errno.EACCES)
            os.chmod(os.path.join(self.path("zarr"), "0"), 0o755)
        self.assertReadsBack("zarr", frames(2), rows(2), METADATA)


class MemoryTests(RecordingFixture, unittest.TestCase):
    def test_each_frame_is_on_disk_when_append_returns(self):
        """After each append the file has grown by at least that frame: nothing waits in a buffer."""
        self.patch(recording, "ZARR_CHUNK_BYTES", 4 * SHAPE[0] * SHAPE[1] * 2)
        images = frames(6)
        for fmt in FORMATS:
            rec = open_recording(self.path(fmt), shape=SHAPE, dtype="u2", metadata={}, progress=False)
            start = file_bytes(self.path(fmt))
            for n, (image, row) in enumerate(zip(images, rows(6), strict=False), 1):
                rec.append(image, row)
                self.assertGreaterEqual(file_bytes(self.path(fmt)) - start, n * rec.frame_bytes, (fmt, n))
            rec.close()

    def test_memory_stays_bounded(self):
        """Recording 40 frames of 256x256 allocates (numpy and Python, traced) less than 4 frames' worth
        at any time, in every format: the writer keeps no frames."""
        image = np.arange(256 * 256, dtype="u2").reshape(256, 256)
        for fmt in FORMATS:
            rec = open_recording(self.path(fmt), shape=image.shape, dtype="u2", metadata=METADATA, progress=False)
            rec.append(image, ledger_row(0))  # the first frame brings the libraries' one-time allocations
            tracemalloc.start()
            try:
                for i in range(1, 40):
                    rec.append(image, ledger_row(i))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            rec.close()
            self.assertLess(peak, 4 * image.nbytes, fmt)


class ReaderTests(unittest.TestCase):
    def test_read_back_hdf5_and_zarr(self):
        """RecordingReader reads a recording's frames, ledger and metadata back, as they were written."""
        for fmt in ("h5", "zarr"):
            path = self.mktemp() + "." + fmt
            images, ledger = frames(3), rows(3)
            with open_recording(path, shape=SHAPE, dtype="u2", metadata={"camera_model": "X", "burst_id": 4}) as rec:
                for image, row in zip(images, ledger, strict=True):
                    rec.append(image, row)
            with RecordingReader(path) as reader:
                self.assertEqual((reader.frames, reader.shape, reader.dtype), (3, SHAPE, np.dtype("<u2")))
                self.assertTrue(all(np.array_equal(a, b) for a, b in zip(reader, images, strict=True)))
                self.assertEqual(reader.ledger["frame"].tolist(), [0, 1, 2])
                self.assertTrue(np.array_equal(reader.ledger["time"], np.array([row["time"] for row in ledger]),
                                               equal_nan=True))
                self.assertEqual((reader.metadata["camera_model"], reader.metadata["burst_id"]), ("X", 4))
        self.assertRaises(ValueError, RecordingReader, self.mktemp() + ".fits")
