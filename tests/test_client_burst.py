"""The client's burst reader on a socket that hands out bytes in arbitrary pieces: small frames come
through its read-ahead buffer, large ones straight into their arrays, and either way every frame arrives
once, in order, intact."""

import json
import random

import numpy as np
from twisted.trial import unittest

from andor.burst import READ_AHEAD, BurstFrames
from andor_twisted.protocol.frames import pack_header
from andor_twisted.stream.framing import websocket_header


class PieceSocket:
    """A socket whose recv_into gives at most a random number of bytes of ``data`` at a time."""

    def __init__(self, data, seed=0):
        self.data = memoryview(data)
        self.rng = random.Random(seed)

    def recv_into(self, view):
        n = min(len(view), len(self.data), self.rng.choice([1, 7, 100, 5000, 70000, 1 << 20]))
        view[:n] = self.data[:n]
        self.data = self.data[n:]
        return n

    def gettimeout(self):
        return 1.0


def message(number, height, width):
    image = (np.arange(height * width, dtype="<u2") + number).reshape(height, width)
    payload = pack_header(1, number, "u2", height, width, 100 * number, 1000) + image.tobytes()
    return websocket_header(len(payload)) + payload, image


class ReadAheadTests(unittest.SynchronousTestCase):
    def test_frames_in_order_whatever_the_pieces(self):
        """Small and large frames mixed, then the end: each frame once, in order, with its pixels."""
        sizes = [(64, 64)] * 30 + [(512, 512)] * 3 + [(8, 8)] * 40 + [(1024, 600)] + [(64, 64)] * 5
        self.assertGreater(512 * 512 * 2, READ_AHEAD // 2)  # the large ones take the direct path
        stream, expected = b"", []
        for number, (height, width) in enumerate(sizes):
            data, image = message(number, height, width)
            stream += data
            expected.append(image)
        end = json.dumps({"type": "end", "summary": {"state": "done"}}).encode()
        stream += bytes([0x81, len(end)]) + end
        for seed in range(3):
            frames = BurstFrames(None, {"id": 1, "frames": len(sizes), "fps": 10.0})
            frames._sock = PieceSocket(stream, seed)
            got = []
            with self.assertRaises(StopIteration):
                while True:
                    got.append(frames._read_frame())
            self.assertEqual(frames.frame_numbers.tolist(), list(range(len(sizes))))
            self.assertEqual(len(got), len(expected))
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)
            self.assertEqual(frames.summary, {"state": "done"})
