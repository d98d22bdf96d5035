"""Recording on the server (``--data-dir``, ``POST /api/burst`` with ``"record"``): end to end on a
loopback server with the simulated camera, read by the real client and by the files' own libraries.

The camera is the one of ``test_burst_stream`` (64x64 pixels at 200 frames/s, four frames of on-head
memory), so a reader 20 ms a frame is four times slower than the camera: a recording burst must still
be captured at the camera's pace, with no frame late, because the disk and not the reader drains it.
"""

import errno
import os

import h5py
import numpy as np
import zarr
from twisted.internet import defer

import andor
from andor.recording import Hdf5Recording, RecordingReader

from tests.test_burst_stream import FPS, SLOW, StreamFixture, read_slowly


class RecordingFixture(StreamFixture):
    """The burst streams' server and camera, with a data directory (unless ``data_dir`` is False)."""

    data_dir = True

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.sim = ("--data-dir", self.directory) if self.data_dir else ()
        return super().setUp()


class ServerRecordingTests(RecordingFixture):
    @defer.inlineCallbacks
    def test_a_slow_reader_reads_a_recording_burst_captured_at_the_camera_pace(self):
        """With a spool of 2 frames and a reader four times slower than the camera, the burst is still
        captured on time (the disk drains the spool), and the reader gets every frame, exactly as the
        file holds it, with its ticks."""
        frames = yield self.client(self.cam.burst, 40, FPS, 2, record="run1")
        self.assertEqual(frames.recording, "run1.h5")
        images = yield self.client(read_slowly, frames)
        self.assertEqual(len(images), 40)
        summary = frames.summary
        self.assertEqual((summary["state"], summary["lost_frames"]), ("done", 0))
        # read from the spool at the reader's pace, nearly every frame would be late; a disk that stalls
        # for 16 frame periods (80 ms) on a loaded machine may make one or two late
        self.assertLessEqual(summary["late_frames"], 2)
        self.assertLess(summary["took_s"], 0.5 * 40 * SLOW)
        self.assertEqual(summary["recording"], "run1.h5")
        self.assertEqual(frames.frame_numbers.tolist(), list(range(40)))
        yield self.server.bursts.get(frames.id).recorder.done
        with h5py.File(os.path.join(self.directory, "run1.h5"), "r") as f:
            stored = f["frames"][()]
            self.assertEqual(stored.shape, (40, 64, 64))
            np.testing.assert_array_equal(stored, np.array(images))
            self.assertEqual(f.attrs["burst_id"], frames.id)
            self.assertEqual(f.attrs["summary.state"], "done")
        with RecordingReader(os.path.join(self.directory, "run1.h5")) as reader:
            self.assertEqual(reader.ledger["frame"].tolist(), list(range(40)))
            self.assertEqual(reader.ledger["ticks"].tolist(), frames.ledger["ticks"].tolist())
            self.assertEqual(reader.ledger["late"].sum(), summary["late_frames"])
            np.testing.assert_array_equal(reader.ledger["time"], frames.times)

    @defer.inlineCallbacks
    def test_a_reader_of_a_recording_burst_resumes_where_it_left(self):
        frames = yield self.client(self.cam.burst, 30, FPS, 2, record="resumed")
        first = yield self.client(lambda: [next(frames) for _ in range(12)])
        yield self.client(frames.close)
        rest = yield self.client(lambda: list(self.cam.resume_burst()))
        self.assertEqual(len(first) + len(rest), 30)
        yield self.server.bursts.get(frames.id).recorder.done
        with RecordingReader(os.path.join(self.directory, "resumed.h5")) as reader:
            np.testing.assert_array_equal(np.array(first + rest), np.array(list(reader)))

    @defer.inlineCallbacks
    def test_a_recording_burst_nobody_reads_completes_and_streams_back(self):
        """Nobody reads: the burst still ends done (the recorder is its reader), GET /api/recordings lists
        the file, and ``recording(name)`` streams it back with the same generator, times and summary."""
        started = yield self.client(self.cam.burst, 25, FPS, 4, record="quiet.zarr")
        yield self.server.bursts.get(started.id).recorder.done
        status = yield self.client(self.cam.burst_status)
        self.assertEqual((status["state"], status["captured"]), ("done", 25))
        self.assertLessEqual(status["late_frames"], 2)
        listed = yield self.client(self.cam.recordings)
        self.assertEqual([(r["name"], r["format"], r["recording"]) for r in listed], [("quiet.zarr", "zarr", False)])
        self.assertGreater(listed[0]["bytes"], 25 * 64 * 64 * 2)
        frames = yield self.client(self.cam.recording, "quiet.zarr")
        images = yield self.client(list, frames)
        stored = zarr.open_group(os.path.join(self.directory, "quiet.zarr"), mode="r")["0"][:]
        np.testing.assert_array_equal(np.array(images), stored)
        self.assertEqual(frames.frame_numbers.tolist(), list(range(25)))
        self.assertEqual(frames.summary["state"], "done")
        self.assertEqual(frames.summary["captured"], 25)
        self.assertFalse(np.isnat(frames.times).any())
        with RecordingReader(os.path.join(self.directory, "quiet.zarr")) as reader:
            self.assertEqual(frames.ledger["ticks"].tolist(), reader.ledger["ticks"].tolist())
            np.testing.assert_array_equal(frames.times, reader.ledger["time"])

    @defer.inlineCallbacks
    def test_names_are_checked_before_anything_is_discarded(self):
        """A name that is not a plain file name, or taken, is refused (4xx naming why) and the running
        burst goes on."""
        running = yield self.client(self.cam.burst, 5, FPS, 0, record="taken")
        yield self.client(list, running)
        for name, status, code in (("../escape", 400, "wrong_value"), ("a/b", 400, "wrong_value"),
                                   (".hidden", 400, "wrong_value"), ("taken", 409, "recording_exists"),
                                   ("taken.h5", 409, "recording_exists"), (7, 400, "wrong_type")):
            answer = yield self.client(self.server.raw, "POST", "/api/burst",
                                       {"value": {"frames": 3, "record": name}})
            self.assertEqual((answer[0], answer[2]["error"]), (status, code), name)
        status = yield self.client(self.cam.burst_status)
        self.assertEqual((status["id"], status["state"]), (running.id, "done"))

    @defer.inlineCallbacks
    def test_an_unknown_recording_is_404(self):
        answer = yield self.client(self.server.raw, "GET", "/api/recordings/nothing.h5")
        self.assertEqual((answer[0], answer[2]["error"]), (404, "no_such_recording"))
        with self.assertRaises(andor.AndorError):
            yield self.client(self.cam.recording, "../etc.h5")

    @defer.inlineCallbacks
    def test_a_recording_discarded_mid_burst_keeps_what_was_written(self):
        """A recording burst replaced by a newer one leaves a readable file with the frames written before,
        each with its ledger row, and a reader of it is told the burst was discarded."""
        frames = yield self.client(self.cam.burst, 400, FPS, 2, record="cut.h5")
        first = yield self.client(next, frames)
        self.assertEqual(first.shape, (64, 64))
        yield self.client(self.cam.burst, 2, FPS)
        with self.assertRaises(andor.BurstDiscarded):
            yield self.client(list, frames)
        yield self.server.bursts.get().when_captured()
        with RecordingReader(os.path.join(self.directory, "cut.h5")) as reader:
            self.assertGreaterEqual(reader.frames, 1)
            self.assertLess(reader.frames, 400)
            self.assertEqual(reader.ledger["frame"].tolist(), list(range(reader.frames)))
            np.testing.assert_array_equal(reader.frame(0), first)
            self.assertEqual(reader.metadata["summary.state"], "discarded")

    @defer.inlineCallbacks
    def test_a_failed_write_ends_the_burst_with_the_reason_and_a_readable_file(self):
        """The disk fills after 10 frames: the burst is discarded saying so, its reader gets the recording's
        error after the frames written, and the file keeps them with their ledger rows."""
        write = Hdf5Recording._write

        def write_until_full(recording, image):
            if recording.frames_written == 10:
                raise OSError(errno.ENOSPC, "No space left on device")
            write(recording, image)

        self.patch(Hdf5Recording, "_write", write_until_full)
        frames = yield self.client(self.cam.burst, 50, FPS, 4, record="full.h5")
        with self.assertRaises(andor.AndorError) as raised:
            yield self.client(list, frames)
        self.assertIn("writing frame 10 failed after 10 frames: No space left on device", str(raised.exception))
        self.assertEqual(frames.frame_numbers.tolist(), list(range(10)))
        yield self.server.bursts.get(frames.id).recorder.done
        with RecordingReader(os.path.join(self.directory, "full.h5")) as reader:
            self.assertEqual((reader.frames, reader.ledger["frame"].tolist()), (10, list(range(10))))
        status = yield self.client(self.cam.burst_status)
        self.assertEqual(status["state"], "discarded")
        self.assertIn("recording it failed", status["message"])

    @defer.inlineCallbacks
    def test_stopping_the_server_finishes_the_file(self):
        frames = yield self.client(self.cam.burst, 4000, FPS, 4, record="stopped.zarr")
        yield self.client(next, frames)
        yield self.client(frames.close)
        yield self.server.stop()
        self.server.stop = lambda: None
        with RecordingReader(os.path.join(self.directory, "stopped.zarr")) as reader:
            self.assertGreaterEqual(reader.frames, 1)
            self.assertEqual(reader.ledger["frame"].tolist(), list(range(reader.frames)))
            self.assertEqual(reader.metadata["summary.state"], "discarded")


class NoDataDirectoryTests(RecordingFixture):
    data_dir = False

    @defer.inlineCallbacks
    def test_recording_is_refused_without_a_data_directory(self):
        answer = yield self.client(self.server.raw, "POST", "/api/burst", {"value": {"frames": 3, "record": "x"}})
        self.assertEqual((answer[0], answer[2]["error"]), (409, "no_data_dir"))
        self.assertIn("--data-dir", answer[2]["message"])
        answer = yield self.client(self.server.raw, "GET", "/api/recordings")
        self.assertEqual(answer[0], 409)

