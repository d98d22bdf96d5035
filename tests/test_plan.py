"""The burst plan: a fluid model of the frame path, checked against the regimes the seed note saw on a
real Neo and against cases worked out by hand."""

from twisted.trial import unittest

from andor_twisted.protocol.plan import Camera, plan

FRAME = 11_059_200  # a Neo's full frame, Mono16
MESSAGE = FRAME + 48
READER = 60e6  # the note's reader: about 60 MB/s over a shared 100 Mbit/s network
NOTE_NEO = Camera(frame_bytes=FRAME, frame_rate=50.0, link_frame_rate=None, onhead_bytes=4 * 10**9,
                  when_full="throttle", arm_s=2.4)


class NoteRegimeTests(unittest.TestCase):
    """The rows of ../shared/reference/andor-http-bursts.md: 11 MB frames at 50 fps, 4 GB on-head
    memory, about 60 MB/s to the reader, and the server's 'taking N frames took X s'."""

    def check(self, frames, spool, regime, took_s, late=0):
        p = plan(NOTE_NEO, frames, spool, MESSAGE, READER, window_frames=3)  # 32 MiB of these frames in flight
        self.assertEqual(p.regime, regime)
        self.assertEqual(p.lost_frames, 0)
        if late:
            self.assertGreater(p.late_frames, late)
        else:
            self.assertEqual(p.late_frames, 0)
        # within 20% of what the note's server logged (its reader was 'about' 60 MB/s)
        self.assertLess(abs(p.capture_s - took_s), 0.2 * took_s, p)
        return p

    def test_whole_burst_in_the_spool(self):
        """burst(100, 50): the spool holds the burst; 4.4 s, the camera's pace."""
        self.check(100, 100, "camera-paced", 4.447)

    def test_spool_of_one(self):
        """burst(100, 50, 1): 18 s, the reader's pace; the 100 frames fit on-head, none is late."""
        p = self.check(100, 1, "reader-paced", 18.08)
        self.assertTrue(p.fits_on_head)

    def test_spool_of_25(self):
        """burst(100, 50, 25): 13.6 s: 25 frames go to the spool at once, the rest at the reader's pace."""
        self.check(100, 25, "reader-paced", 13.6)

    def test_spool_of_90(self):
        """burst(100, 50, 90): back to the camera's pace, 4.45 s."""
        self.check(100, 90, "camera-paced", 4.448)

    def test_long_burst_spool_of_one(self):
        """burst(10000, 50, 1): 33 minutes; on-head memory fills and the camera slows to the reader."""
        p = self.check(10000, 1, "throttled", 33.4 * 60, late=9000)
        self.assertFalse(p.fits_on_head)

    def test_long_burst_whole_spool(self):
        """burst(10000, 50): 3.4 minutes, close to the nominal 50 fps."""
        self.check(10000, 10000, "camera-paced", 3.4 * 60)


class PlanTests(unittest.TestCase):
    def test_nobody_reads_a_burst_longer_than_spool_and_memory(self):
        """Without a reader, a burst longer than spool plus on-head memory cannot finish: it stalls,
        and the plan says a reader is needed."""
        p = plan(NOTE_NEO, 10000, 100, MESSAGE, None)
        self.assertEqual(p.regime, "stalls")
        self.assertIsNone(p.capture_s)
        self.assertGreater(p.reader_needed_bytes_per_s, 0)

    def test_reader_needed_is_the_threshold(self):
        """A reader just above the needed rate keeps every frame on time; just below, frames are late."""
        p = plan(NOTE_NEO, 1000, 100, MESSAGE, READER)
        needed = p.reader_needed_bytes_per_s
        self.assertEqual(plan(NOTE_NEO, 1000, 100, MESSAGE, needed * 1.01).late_frames, 0)
        self.assertGreater(plan(NOTE_NEO, 1000, 100, MESSAGE, needed * 0.95).late_frames, 0)

    def test_frames_in_flight_are_held_too(self):
        """A reader's frames in flight (its window) are frames the camera need not hold: with a reader, a
        window of 50 frames on a spool of 50 plans as a spool of 100; without one, the window is nothing."""
        with_window = plan(NOTE_NEO, 1000, 50, MESSAGE, READER, window_frames=50)
        larger_spool = plan(NOTE_NEO, 1000, 100, MESSAGE, READER)
        self.assertEqual((with_window.late_frames, with_window.capture_s, with_window.reader_needed_bytes_per_s),
                         (larger_spool.late_frames, larger_spool.capture_s, larger_spool.reader_needed_bytes_per_s))
        self.assertLess(with_window.capture_s, plan(NOTE_NEO, 1000, 50, MESSAGE, READER).capture_s)
        unread = [plan(NOTE_NEO, 1000, 50, MESSAGE, window_frames=w) for w in (50, 0)]
        self.assertEqual({(p.regime, p.capture_s, p.late_frames) for p in unread}, {("stalls", None, 0)})

    def test_overflowing_camera_loses_frames(self):
        """A camera that overflows (no slowing down) loses the frames after memory fills; frames
        before it are delivered."""
        zyla = Camera(frame_bytes=8_388_608, frame_rate=100.0, link_frame_rate=None, onhead_bytes=0,
                      when_full="overflow")
        p = plan(zyla, 1000, 10, 8_388_656, None)
        self.assertEqual(p.regime, "overflow")
        self.assertEqual(p.lost_frames, 990)
        self.assertIsNone(p.capture_s)

    def test_slow_link_buffers_on_head(self):
        """A sensor faster than its link: exposures on time while on-head memory absorbs the difference,
        the capture ends at the link's pace."""
        neo = Camera(frame_bytes=FRAME, frame_rate=50.0, link_frame_rate=25.0, onhead_bytes=4 * 10**9,
                     when_full="throttle")
        p = plan(neo, 200, 200, MESSAGE, None)
        self.assertEqual(p.regime, "link-paced")
        self.assertAlmostEqual(p.exposures_s, 199 / 50.0, places=6)
        self.assertAlmostEqual(p.capture_s, 200 / 25.0 - 1 / 50.0, places=6)

    def test_unknown_policy_is_said(self):
        """When the camera's behaviour on a full memory is unknown, the plan says both can happen."""
        camera = Camera(frame_bytes=FRAME, frame_rate=50.0, link_frame_rate=None, onhead_bytes=4 * 10**9,
                        when_full="unknown")
        p = plan(camera, 10000, 1, MESSAGE, READER)
        self.assertTrue(any("overflow" in note for note in p.notes), p.notes)

    def test_refuses_nonsense(self):
        self.assertRaises(ValueError, plan, NOTE_NEO, 0, 1, MESSAGE)
        self.assertRaises(ValueError, plan, NOTE_NEO, 10, 0, MESSAGE)
