"""The frame message format: server and client against the byte vectors of docs/frame-vectors.json."""

import json
import os

import numpy as np
from twisted.trial import unittest

from andor import wire as client_wire
from andor_twisted.web import wire

VECTORS = json.load(open(os.path.join(os.path.dirname(__file__), "..", "docs", "frame-vectors.json")))["vectors"]


class WireTests(unittest.TestCase):
    def test_server_writes_the_vectors(self):
        """The server's message for each vector's fields and pixels is the vector, byte for byte,
        WebSocket framing included, whether in one piece or in two parts."""
        for v in VECTORS:
            f = v["fields"]
            image = np.array(v["pixels"], dtype="<" + f["dtype"])
            args = f["burst_id"], f["frame_number"], image, f["ticks"], f["tick_frequency"]
            self.assertEqual(wire.frame_message(*args).hex(), v["websocket_frame_hex"], v["description"])
            parts, _ = wire.frame_parts(*args)
            self.assertEqual(b"".join(parts).hex(), v["websocket_frame_hex"], v["description"])

    def test_parts_hold_the_pixels_in_place(self):
        """A contiguous little-endian image is sent from where it is; a strided or big-endian one
        is copied into a contiguous little-endian array first."""
        rows = np.arange(24, dtype="<u2").reshape(4, 6)
        for image, in_place in ((rows, True), (rows[:, :4], False), (rows.astype(">u2"), False)):
            (prefix, pixels), sent = wire.frame_parts(1, 0, image)
            self.assertEqual(np.shares_memory(sent, rows), in_place)
            self.assertEqual(np.frombuffer(pixels, "<u2").reshape(image.shape).tolist(), image.tolist())

    def test_both_read_the_vectors(self):
        """Server and client parse each vector's message into its fields."""
        for v in VECTORS:
            message = bytes.fromhex(v["message_hex"])
            fields, image = wire.parse(message)
            client_fields = client_wire.parse_header(message[: client_wire.HEADER_SIZE], len(message))
            for parsed in (fields, client_fields):
                for name, value in v["fields"].items():
                    got = parsed[name].str[1:] if name == "dtype" else parsed[name]
                    self.assertEqual(got, value, f"{v['description']}: {name}")
            self.assertEqual(image.tolist(), v["pixels"])

    def test_websocket_length_forms(self):
        """Payloads under 126 bytes, under 64 KiB and larger take the three RFC 6455 length forms."""
        self.assertEqual(wire.websocket_header(125), b"\x82\x7d")
        self.assertEqual(wire.websocket_header(126), b"\x82\x7e\x00\x7e")
        self.assertEqual(wire.websocket_header(65536), b"\x82\x7f" + (65536).to_bytes(8, "big"))

    def test_malformed(self):
        """Wrong magic, an unknown pixel type and a length that does not match the shape are refused."""
        good = bytes.fromhex(VECTORS[0]["message_hex"])
        for bad, why in ((b"XXXX" + good[4:], "magic"), (good[:12] + b"f8" + good[14:], "pixel type"),
                         (good[:-2], "bytes")):
            with self.assertRaises(wire.WireError) as caught:
                wire.parse(bad)
            self.assertIn(why, str(caught.exception))
            with self.assertRaises(client_wire.WireError):
                client_wire.parse_header(bad[:48], len(bad))

    def test_only_16_and_32_bit_frames(self):
        """Other pixel types are refused before anything is sent."""
        self.assertRaises(wire.WireError, wire.frame_message, 1, 0, np.zeros((2, 2), np.float32))
