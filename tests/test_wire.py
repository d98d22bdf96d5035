"""The frame message format: the server's writer, the client's reader and the stream's WebSocket framing
against the byte vectors of docs/frame-vectors.json."""

import json
import os

import numpy as np
from twisted.trial import unittest

from andor import wire as client_wire
from andor_twisted.acquisition.frames import BurstFrame, LiveFrame
from andor_twisted.camera.driver import Frame
from andor_twisted.protocol.frames import FrameFormatError
from andor_twisted.stream import framing

with open(os.path.join(os.path.dirname(__file__), "..", "docs", "frame-vectors.json")) as _f:
    VECTORS = json.load(_f)["vectors"]


def vector_frame(v):
    f = v["fields"]
    return f["burst_id"], Frame(np.array(v["pixels"], dtype="<" + f["dtype"]), f["frame_number"], f["ticks"],
                                f["tick_frequency"])


class WireTests(unittest.TestCase):
    def test_server_writes_the_vectors(self):
        """The server's frames for each vector's fields and pixels are the vector, byte for byte, WebSocket
        framing included: a burst frame in its parts, a live frame in one piece."""
        for v in VECTORS:
            burst_id, frame = vector_frame(v)
            burst_frame = BurstFrame.pack(burst_id, frame)
            self.assertEqual((burst_frame.header + bytes(burst_frame.pixels)).hex(), v["message_hex"])
            self.assertEqual(burst_frame.nbytes, len(v["message_hex"]) // 2)
            self.assertEqual(b"".join(framing.burst_parts([burst_frame])).hex(), v["websocket_frame_hex"],
                             v["description"])
            if burst_id == 0:
                live = LiveFrame.pack(frame, [1])
                self.assertEqual(b"".join(framing.message_parts(live.messages[1])).hex(), v["websocket_frame_hex"])

    def test_parts_hold_the_pixels_in_place(self):
        """A contiguous little-endian image is sent from where it is; a strided or big-endian one
        is copied into a contiguous little-endian array first, and its camera buffer is not kept."""
        rows = np.arange(24, dtype="<u2").reshape(4, 6)
        buffer = rows.view(np.uint8).reshape(-1)
        for image, in_place in ((rows, True), (rows[:, :4], False), (rows.astype(">u2"), False)):
            frame = BurstFrame.pack(1, Frame(image, 0, None, None, buffer=buffer))
            self.assertEqual(np.shares_memory(frame.image, rows), in_place)
            self.assertEqual(frame.buffer is buffer, in_place)
            self.assertEqual(np.frombuffer(frame.pixels, "<u2").reshape(image.shape).tolist(), image.tolist())

    def test_client_reads_the_vectors(self):
        """The client parses each vector's message into its fields and pixels."""
        for v in VECTORS:
            message = bytes.fromhex(v["message_hex"])
            fields, image = client_wire.parse(message)
            header_fields = client_wire.parse_header(message[: client_wire.HEADER_SIZE], len(message))
            for parsed in (fields, header_fields):
                for name, value in v["fields"].items():
                    got = parsed[name].str[1:] if name == "dtype" else parsed[name]
                    self.assertEqual(got, value, f"{v['description']}: {name}")
            self.assertEqual(image.tolist(), v["pixels"])

    def test_live_frames_reduced(self):
        """A live frame holds one message per decimation step: every step-th pixel of every step-th row."""
        image = np.arange(4 * 6, dtype=np.uint16).reshape(4, 6)
        live = LiveFrame.pack(Frame(image, 9, 5, 10), [1, 2, 4])
        for step, message in live.messages.items():
            fields, pixels = client_wire.parse(message)
            self.assertEqual((fields["burst_id"], fields["frame_number"], fields["ticks"]), (0, 9, 5))
            self.assertEqual(pixels.tolist(), image[::step, ::step].tolist())

    def test_websocket_length_forms(self):
        """Payloads under 126 bytes, under 64 KiB and larger take the three RFC 6455 length forms."""
        self.assertEqual(framing.websocket_header(125), b"\x82\x7d")
        self.assertEqual(framing.websocket_header(126), b"\x82\x7e\x00\x7e")
        self.assertEqual(framing.websocket_header(65536), b"\x82\x7f" + (65536).to_bytes(8, "big"))

    def test_malformed(self):
        """Wrong magic, an unknown pixel type, a length that does not match the shape and a short
        message are refused by the client, saying which."""
        good = bytes.fromhex(VECTORS[0]["message_hex"])
        for bad, why in ((b"XXXX" + good[4:], "magic"), (good[:12] + b"f8" + good[14:], "pixel type"),
                         (good[:-2], "bytes"), (good[:20], "at least 48 bytes")):
            with self.assertRaises(client_wire.WireError) as caught:
                client_wire.parse(bad)
            self.assertIn(why, str(caught.exception))

    def test_only_16_and_32_bit_frames(self):
        """Other pixel types are refused before anything is sent."""
        self.assertRaises(FrameFormatError, BurstFrame.pack, 1, Frame(np.zeros((2, 2), np.float32), 0, None, None))
