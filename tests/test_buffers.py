"""The SDK3 buffer layout, pinned by hand-built byte vectors: encodings, stride padding, metadata."""

import struct

import numpy as np
from twisted.trial import unittest

from andor_twisted.camera import buffers


class EncodingVectorTests(unittest.TestCase):
    def test_mono12packed_vector(self):
        """Mono12Packed: 0xABC, 0x123 pack as AB, 3C, 12 (high bits of A, low nibbles B|A, high bits of B)."""
        raw = np.array([0xAB, 0x3C, 0x12, 0, 0, 0, 0, 0], np.uint8)  # one row, stride 8
        image = buffers.decode(raw, "Mono12Packed", width=2, height=1, stride=8)
        self.assertEqual(image.tolist(), [[0xABC, 0x123]])
        again = np.zeros(8, np.uint8)
        buffers.encode_into(image, again, "Mono12Packed", stride=8)
        self.assertEqual(again.tolist(), raw.tolist())

    def test_mono12packed_odd_width(self):
        """An odd width ends on half a pair: (3*3+1)//2 = 5 bytes, even when the stride cuts the pair."""
        self.assertEqual(buffers.row_bytes("Mono12Packed", 3), 5)
        raw = np.array([0x10, 0x32, 0x20, 0x30, 0x04], np.uint8)
        image = buffers.decode(raw, "Mono12Packed", width=3, height=1, stride=5)
        self.assertEqual(image.tolist(), [[0x102, 0x203, 0x304]])

    def test_mono16_padding_stripped(self):
        """Mono16 rows are little-endian and the stride padding is dropped."""
        row0 = struct.pack("<3H", 1, 2, 0xFFFF) + b"\xee\xee"
        row1 = struct.pack("<3H", 4, 5, 6) + b"\xee\xee"
        image = buffers.decode(np.frombuffer(row0 + row1, np.uint8), "Mono16", width=3, height=2, stride=8)
        self.assertEqual(image.dtype, np.uint16)
        self.assertEqual(image.tolist(), [[1, 2, 0xFFFF], [4, 5, 6]])

    def test_mono32(self):
        """Mono32 decodes to uint32."""
        raw = np.frombuffer(struct.pack("<2I", 70000, 3), np.uint8)
        image = buffers.decode(raw, "Mono32", width=2, height=1, stride=8)
        self.assertEqual(image.dtype, np.uint32)
        self.assertEqual(image.tolist(), [[70000, 3]])

    def test_round_trip_every_encoding(self):
        """encode_into then decode gives the image back in every encoding, with padded rows."""
        rng = np.random.default_rng(1)
        image = rng.integers(0, 4096, (5, 7)).astype(np.uint16)
        for encoding in buffers.ENCODINGS:
            stride = buffers.row_bytes(encoding, 7) + 3
            raw = np.full(stride * 5, 0xEE, np.uint8)
            buffers.encode_into(image, raw, encoding, stride)
            self.assertEqual(buffers.decode(raw, encoding, 7, 5, stride).tolist(), image.tolist(), encoding)

    def test_decode_copies(self):
        """The decoded image does not share memory with the buffer, which goes back to the SDK."""
        raw = np.zeros(8, np.uint8)
        image = buffers.decode(raw, "Mono16", 4, 1, 8)
        raw[:] = 0xFF
        self.assertEqual(image.tolist(), [[0, 0, 0, 0]])

    def test_unknown_encoding(self):
        self.assertRaises(ValueError, buffers.pixel_dtype, "RGB8Packed")


class MetadataVectorTests(unittest.TestCase):
    def vector(self):
        """Two rows of 4 bytes, then [image CID 0, LEN 12], [ticks, CID 1, LEN 12], [info, CID 7, LEN 12]."""
        image = bytes(range(8))
        return (image + struct.pack("<II", 0, 12) + struct.pack("<qII", 123456789012, 1, 12)
                + struct.pack("<HBxHHII", 4, 2, 2, 2, 7, 12))

    def test_read_ticks(self):
        """The ticks block is found reading backwards from the end of the buffer."""
        raw = self.vector()
        self.assertEqual(len(raw), 8 + buffers.METADATA_BYTES + buffers.FRAME_INFO_BYTES)
        self.assertEqual(buffers.read_ticks(raw, len(raw)), 123456789012)

    def test_frame_info(self):
        info = buffers.read_metadata(self.vector(), 48)[buffers.CID_FRAME_INFO]
        self.assertEqual(buffers.FRAME_INFO.unpack(info), (4, 2, 2, 2))

    def test_write_matches_vector(self):
        """write_metadata lays out exactly the hand-built vector."""
        raw = bytearray(48)
        raw[:8] = bytes(range(8))
        end = buffers.write_metadata(raw, 8, 123456789012, ("Mono16", 2, 2, 4))
        self.assertEqual(end, 48)
        self.assertEqual(bytes(raw), self.vector())

    def test_no_ticks_block(self):
        """A buffer whose metadata has only the image block has no timestamp."""
        raw = bytes(8) + struct.pack("<II", 0, 12)
        self.assertIsNone(buffers.read_ticks(raw, len(raw)))

    def test_corrupt(self):
        """A length running off the front of the buffer is an error, not a wild read."""
        raw = bytes(8) + struct.pack("<II", 1, 4000)
        self.assertRaises(ValueError, buffers.read_metadata, raw, len(raw))
