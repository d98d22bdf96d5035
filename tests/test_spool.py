"""The spool and the frame sender: a bounded FIFO driven by Deferreds, and the acknowledgement window."""

import numpy as np
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from andor import wire
from andor_twisted.acquisition.frames import BurstFrame
from andor_twisted.acquisition.spool import Spool
from andor_twisted.camera.driver import Frame
from andor_twisted.protocol.messages import ProtocolViolation
from andor_twisted.protocol.window import WINDOW_FRAMES, AckWindow
from andor_twisted.stream import sender as sender_module
from andor_twisted.stream.sender import FrameSender


def frame(n, size=16, buffer=None):
    """Burst frame ``n`` with ``size`` bytes of pixels; with ``buffer``, as if lent from the camera."""
    image = np.full((1, size // 2), n, np.uint16)
    packed = BurstFrame.pack(1, Frame(image, n, None, None, buffer=image.view(np.uint8)))
    packed.buffer = buffer
    return packed


class SpoolTests(unittest.SynchronousTestCase):
    def test_room_for_several(self):
        """room(n) waits until n frames fit."""
        spool = Spool(3)
        for n in range(3):
            spool.put(frame(n))
        room = spool.room(2)
        spool.next()
        self.assertNoResult(room)
        spool.next()
        self.successResultOf(room)

    def test_room_until_full(self):
        """room() fires at once below capacity; at capacity it waits until a frame leaves for the reader:
        frames in flight are the reader's window's, not the spool's (acknowledging them frees no room)."""
        spool = Spool(2)
        self.successResultOf(spool.room())
        spool.put(frame(0))
        spool.put(frame(1))
        room = spool.room()
        self.assertNoResult(room)
        self.assertEqual(self.successResultOf(spool.next()).frame_number, 0)
        self.successResultOf(room)
        self.assertEqual((spool.waiting, spool.in_flight, spool.frames), (1, 1, 2))
        spool.put(frame(2))
        self.assertTrue(spool.full)
        spool.acknowledge(0)
        self.assertTrue(spool.full)  # the acknowledgement frees the frame's memory, not room

    def test_memory_follows_frames(self):
        """Bytes are taken as frames arrive and given back as they are acknowledged; high-water marks stay."""
        spool = Spool(10)
        for n in range(3):
            spool.put(frame(n))
        size = frame(0).nbytes
        self.assertEqual((spool.frames, spool.bytes), (3, 3 * size))
        for _ in range(3):
            spool.next()
        spool.acknowledge(1)  # acknowledges frames 0 and 1
        self.assertEqual((spool.frames, spool.bytes, spool.acknowledged), (1, size, 2))
        self.assertEqual((spool.high_water_frames, spool.high_water_bytes), (3, 3 * size))

    def test_acknowledgement_gives_back_camera_buffers(self):
        """A frame still in the camera's buffer gives that buffer back when acknowledged, not before,
        and not when discarded (it may be half-way out to a reader)."""
        given_back = []
        spool = Spool(10, given_back.append)
        buffers = [np.zeros(4, np.uint8) for _ in range(3)]
        for n, buffer in enumerate(buffers):
            spool.put(frame(n, buffer=buffer))
        spool.put(frame(3))  # copied out of the camera's buffer: nothing to give back
        for _ in range(4):
            spool.next()
        self.assertEqual(given_back, [])
        spool.acknowledge(0)
        self.assertEqual([id(b) for b in given_back], [id(buffers[0])])
        spool.discard(RuntimeError("replaced"))
        self.assertEqual(len(given_back), 1)

    def test_reader_waits_for_frames(self):
        """next() waits for the next put; the frames come in order."""
        spool = Spool(5)
        d = spool.next()
        self.assertNoResult(d)
        spool.put(frame(0))
        self.assertEqual(self.successResultOf(d).frame_number, 0)

    def test_end_after_last_acknowledgement(self):
        """After a finished capture, next() gives None only once every frame is acknowledged, and the
        spool's owner hears of the acknowledgement first (so the end's summary says the burst is done)."""
        heard = []
        spool = Spool(5, on_acknowledged=lambda n: heard.append((n, end.called)))
        spool.put(frame(0))
        spool.finish()
        self.successResultOf(spool.next())
        end = spool.next()
        self.assertNoResult(end)
        spool.acknowledge(0)
        self.assertIsNone(self.successResultOf(end))
        self.assertEqual(heard, [(1, False)])

    def test_error_after_frames(self):
        """A failed capture's frames are still read, then the error."""
        spool = Spool(5)
        spool.put(frame(0))
        spool.finish(ValueError("camera fell off"))
        self.assertEqual(self.successResultOf(spool.next()).frame_number, 0)
        self.failureResultOf(spool.next(), ValueError)

    def test_reader_goes_away(self):
        """Frames in flight when the reader leaves go back to the front, in order, for the next reader."""
        spool = Spool(5)
        for n in range(4):
            spool.put(frame(n))
        for _ in range(3):
            spool.next()
        spool.acknowledge(0)
        spool.return_unacknowledged()
        self.assertEqual([self.successResultOf(spool.next()).frame_number for _ in range(3)], [1, 2, 3])
        self.assertEqual(spool.sent, 4)

    def test_discard_frees_and_fails_waiters(self):
        """Discarding drops every frame and fails both the capture's and the reader's waits."""
        full, empty = Spool(1), Spool(1)
        full.put(frame(0))
        room, reader = full.room(), empty.next()
        for spool in (full, empty):
            spool.discard(RuntimeError("replaced"))
        self.failureResultOf(room, RuntimeError)
        self.failureResultOf(reader, RuntimeError)
        self.failureResultOf(full.next(), RuntimeError)
        self.assertEqual((full.frames, full.bytes), (0, 0))


    def test_frames_held_back_until_room(self):
        """Frames put beyond the capacity are held back: the reader cannot have them, room counts them,
        and each frame that leaves for the reader lets one in, in order, at once; a discard drops them too."""
        spool = Spool(2, hold=3)
        self.assertEqual(spool.free, 5)
        spool.put_all([frame(n) for n in range(5)])
        self.assertEqual((spool.waiting, spool.held, spool.free, spool.captured), (2, 3, 0, 5))
        self.assertEqual(spool.newest().frame_number, 4)  # a viewer may look at a frame held back
        room = spool.room(2)
        self.assertEqual([f.frame_number for f in spool.take(1, 10**6)], [0])
        self.assertEqual((spool.waiting, spool.held, spool.free), (2, 2, 1))  # frame 2 let in
        self.assertNoResult(room)
        self.assertEqual([f.frame_number for f in spool.take(10, 10**6)], [1, 2, 3, 4])  # in as they leave
        self.successResultOf(room)
        self.assertEqual((spool.waiting, spool.held, spool.in_flight, spool.free), (0, 0, 5, 5))
        reader = spool.next()
        self.assertNoResult(reader)
        self.assertRaises(ValueError, spool.put_all, [frame(n) for n in range(5, 11)])  # more than free
        spool.put_all([frame(n) for n in range(5, 10)])
        self.assertEqual(self.successResultOf(reader).frame_number, 5)
        self.assertEqual((spool.waiting, spool.held), (2, 2))
        spool.discard(RuntimeError("replaced"))
        self.assertEqual((spool.frames, spool.held), (0, 0))

    def test_held_back_frames_read_once_in_order(self):
        """Through a small spool with frames held back, a reader with a window of 5 acknowledging as it
        goes gets every frame exactly once, in order; the spool never has more than its capacity waiting,
        nor more than the capacity and the window in memory."""
        spool = Spool(3, hold=4)
        window = AckWindow(5)
        got, put = [], 0
        while len(got) < 50:
            fits = min(spool.free, 50 - put)
            spool.put_all([frame(n) for n in range(put, put + fits)])
            put += fits
            self.assertLessEqual(spool.waiting, spool.capacity)
            batch = spool.take(window.room, 10**6)
            if batch:
                window.sent_through(batch[-1].frame_number)
            self.assertLessEqual(spool.frames, spool.capacity + window.size)
            got += [f.frame_number for f in batch]
            if window.in_flight and (window.room == 0 or len(got) % 3 == 0):  # now and then, and when it must
                spool.acknowledge(window.sent - 1)
                window.acknowledge(window.sent - 1)
        self.assertEqual(got, list(range(50)))
        self.assertEqual(spool.captured, 50)


class FrameSenderTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.spool = Spool(1000)
        self.transport = StringTransport()
        self.ended = []
        self.sender = FrameSender(self.transport, self.spool, self.ended.append, AckWindow(WINDOW_FRAMES),
                                  self.spool.acknowledge)
        self.sender.start()
        self.assertIs(self.transport.producer, self.sender)
        self.assertFalse(self.transport.streaming)  # a pull producer

    def sent(self):
        data, _ = self.transport.value(), self.transport.clear()
        numbers = []
        while data:
            length = data[1] & 0x7F
            start = 2
            if length == 126:
                length, start = int.from_bytes(data[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(data[2:10], "big"), 10
            fields, _ = wire.parse(data[start : start + length])
            numbers.append(fields["frame_number"])
            data = data[start + length :]
        return numbers

    def test_spooled_frames_go_together(self):
        """When the transport asks (resumeProducing), it gets every frame spooled, in one write; then
        nothing more until it asks again, whatever acknowledgements arrive meanwhile."""
        for n in range(3):
            self.spool.put(frame(n))
        self.assertEqual(self.sent(), [])
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [0, 1, 2])
        for n in range(3, 5):
            self.spool.put(frame(n))
        self.sender.acknowledge(2)
        self.assertEqual(self.sent(), [])
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [3, 4])

    def test_frames_that_come_together_go_together(self):
        """Frames put together while the sender waits for one go out in one write, in order, within the
        window; the rest follow as acknowledgements open it, each frame once."""
        self.sender.window = AckWindow(4)
        writes = []
        write = self.sender.write
        self.sender.write = lambda parts, at_once: (writes.append(len(parts)), write(parts, at_once))[1]
        self.sender.resumeProducing()  # nothing spooled: it waits for a frame
        self.spool.put_all([frame(n) for n in range(6)])
        self.assertEqual(self.sent(), [0, 1, 2, 3])
        self.assertEqual(writes, [8])  # one write: a header part and a pixels part per frame
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [])  # the window is full
        self.sender.acknowledge(3)
        self.assertEqual(self.sent(), [4, 5])
        self.assertEqual((self.spool.captured, self.spool.sent, self.spool.acknowledged), (6, 6, 4))

    def test_next_batch_at_once_when_the_socket_took_the_last(self):
        """A write the socket took whole (the writer says so) leaves the transport free: the next batch
        goes out at once, within the window; a write it did not take waits for resumeProducing. Small
        frames are asked to go at once, large ones not."""
        size = sender_module.BATCH_BYTES // 2 - 1024  # two frames to a batch
        writes = []
        for took_all in (False, True):
            writes.clear()
            self.setUp()
            self.sender.window = AckWindow(4)
            self.sender.write = lambda parts, at_once, took_all=took_all: (writes.append((len(parts) // 2, at_once)),
                                                                           took_all)[1]
            self.spool.put_all([frame(n, size) for n in range(6)])
            self.sender.resumeProducing()
            self.assertEqual(writes, [(2, False), (2, False)] if took_all else [(2, False)])
        self.setUp()
        self.sender.write = lambda parts, at_once: (writes.append((len(parts) // 2, at_once)), False)[1]
        writes.clear()
        self.spool.put(frame(0, 1024))
        self.sender.resumeProducing()
        self.assertEqual(writes, [(1, True)])

    def test_batch_in_bytes(self):
        """One write holds at most BATCH_BYTES of frames, but always one frame."""
        size = sender_module.BATCH_BYTES // 4
        for n in range(3):
            self.spool.put(frame(n, size))
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [0, 1, 2])  # 3/4 of BATCH_BYTES and their headers
        for n in range(3, 9):
            self.spool.put(frame(n, size))
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [3, 4, 5])  # a fourth frame's header would pass BATCH_BYTES
        self.spool.put(frame(9, 2 * sender_module.BATCH_BYTES))
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [6, 7, 8])
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [9])

    def test_window(self):
        """No more than the window of frames is ever unacknowledged; acknowledgements open it again."""
        window = WINDOW_FRAMES
        for n in range(window + 3):
            self.spool.put(frame(n))
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), list(range(window)))
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [])
        self.sender.acknowledge(1)
        self.assertEqual(self.sent(), [window, window + 1])
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [])
        self.sender.acknowledge(2)
        self.assertEqual(self.sent(), [window + 2])

    def test_ack_of_a_frame_not_sent(self):
        """An acknowledgement of a frame not sent yet is a protocol violation; it frees nothing."""
        for n in range(3):
            self.spool.put(frame(n))
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [0, 1, 2])
        self.spool.put(frame(3))
        self.assertRaises(ProtocolViolation, self.sender.acknowledge, 3)
        self.assertEqual((self.spool.acknowledged, self.spool.in_flight), (0, 3))

    def test_waits_for_a_frame(self):
        """An idle transport with an empty spool sends the frame as soon as it is put."""
        self.sender.resumeProducing()
        self.spool.put(frame(0))
        self.assertEqual(self.sent(), [0])

    def test_end(self):
        """The end is reported once the last frame is acknowledged; an error after the frames before it."""
        self.spool.put(frame(0))
        self.spool.finish()
        self.sender.resumeProducing()
        self.sent()
        self.sender.resumeProducing()
        self.assertEqual(self.ended, [])
        self.sender.acknowledge(0)
        self.assertEqual(self.ended, [None])

    def test_error(self):
        """A failed burst's error is reported after the frames captured before it, without waiting for acks."""
        error = RuntimeError("link lost")
        self.spool.put(frame(0))
        self.spool.finish(error)
        self.sender.resumeProducing()
        self.sender.resumeProducing()
        self.assertEqual(self.sent(), [0])
        self.assertEqual(self.ended, [error])

    def test_stop_abandons_the_wait(self):
        """A sender stopped (the connection closed) while waiting for a frame takes none and reports nothing."""
        self.sender.resumeProducing()
        self.sender.stopProducing()
        self.spool.put(frame(0))
        self.assertEqual((self.spool.in_flight, self.ended), (0, []))
        self.assertEqual(self.successResultOf(self.spool.next()).frame_number, 0)
