// Frame messages of docs/streaming.md: a 48-byte little-endian header ("ANDF"), then the pixels.
// Field names are the spec's. Tested against docs/frame-vectors.json by tests/test_browser.py.

export const MAGIC = "ANDF";
export const HEADER_SIZE = 48;
export const HAS_TIMESTAMP = 1;
const TYPES = { u2: Uint16Array, u4: Uint32Array };
// Typed arrays use the machine's byte order; every browser platform today is little-endian, but
// fall back to DataView reads rather than show garbage if one is not.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class FrameError extends Error {}

// The fields and pixels of one binary WebSocket message (an ArrayBuffer).
// u64 fields (frame_number, ticks, tick_frequency) are BigInts, so they stay exact;
// ticks and tick_frequency are null when the frame has no timestamp (flags bit 0 clear).
export function parseFrame(buffer) {
  if (buffer.byteLength < HEADER_SIZE) {
    throw new FrameError(`a frame message is at least ${HEADER_SIZE} bytes, this one is ${buffer.byteLength}`);
  }
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  const version = view.getUint16(4, true);
  const header_size = view.getUint16(6, true);
  if (magic !== MAGIC || version < 1 || header_size < HEADER_SIZE) {
    throw new FrameError(
      `not a frame message (magic ${JSON.stringify(magic)}, version ${version}, header size ${header_size})`);
  }
  const dtype = String.fromCharCode(view.getUint8(12), view.getUint8(13));
  const Type = TYPES[dtype];
  if (!Type) throw new FrameError(`unknown pixel type ${JSON.stringify(dtype)}`);
  const flags = view.getUint16(14, true);
  const timed = (flags & HAS_TIMESTAMP) !== 0;
  const height = view.getUint32(40, true);
  const width = view.getUint32(44, true);
  const count = height * width;
  const expected = header_size + count * Type.BYTES_PER_ELEMENT;
  if (buffer.byteLength !== expected) {
    throw new FrameError(`a ${height}x${width} ${dtype} frame message has ${expected} bytes, not ${buffer.byteLength}`);
  }
  return {
    version, header_size, flags, dtype, height, width,
    burst_id: view.getUint32(8, true),
    frame_number: view.getBigUint64(16, true),
    ticks: timed ? view.getBigUint64(24, true) : null,
    tick_frequency: timed ? view.getBigUint64(32, true) : null,
    pixels: pixelArray(buffer, header_size, count, Type),
  };
}

// A typed array over the pixels: a view without copying when the offset is aligned to the pixel
// size (48 always is, a later header size might not be), otherwise a copy.
function pixelArray(buffer, offset, count, Type) {
  const size = Type.BYTES_PER_ELEMENT;
  if (!LITTLE_ENDIAN) {
    const view = new DataView(buffer, offset);
    const out = new Type(count);
    for (let i = 0; i < count; i++) out[i] = size === 2 ? view.getUint16(2 * i, true) : view.getUint32(4 * i, true);
    return out;
  }
  if (offset % size === 0) return new Type(buffer, offset, count);
  return new Type(buffer.slice(offset, offset + count * size));
}

// Seconds on the camera clock at the start of the exposure, or null without a timestamp.
// Splitting the BigInt division keeps microsecond precision even for ticks above 2**53.
export function timestamp(frame) {
  const { ticks, tick_frequency: f } = frame;
  if (ticks === null || !f) return null;
  return Number(ticks / f) + Number(ticks % f) / Number(f);
}

// The first frame number a malformed message may still carry, so it can be acknowledged anyway
// (an unacknowledged frame stops the live stream).
export function peekFrameNumber(buffer) {
  return buffer.byteLength >= 24 ? new DataView(buffer).getBigUint64(16, true) : null;
}
