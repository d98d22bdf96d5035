"""What the simulated sensor sees: something a person can look at, made cheaply enough for 100 fps.

A smooth illumination with a dark offset, a few bright spots drifting across the sensor, noise, and
the frame number in large digits. Signal scales with exposure time and binning and saturates at the
pixel depth. Everything that does not change from frame to frame is computed once per configuration,
and so are NOISY_FRAMES frames of illumination and noise; a frame then costs one copy (which numpy makes
without holding the GIL: the simulated camera must not slow the server the way a real camera's DMA
does not) plus a few small patches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

DARK_OFFSET = 100
BACKGROUND_RATE = 4.0e4  # counts per second per pixel, at the brightest
SPOT_RATE = 2.0e6  # counts per second at a spot's centre
SPOT_SIGMA = 4.0  # sensor pixels
NOISY_FRAMES = 2  # frames of noise a painter draws once and reuses: a frame is then a copy, spots and digits
PAINTERS_KEPT = 4  # configurations whose prepared scene is kept: a benchmark alternates between a few

# 3x5 bitmaps of the digits 0-9, one string of 15 bits each, row by row
_FONT = ["111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
         "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111"]
_GLYPHS = [np.array([int(c) for c in bits], bool).reshape(5, 3) for bits in _FONT]


class Scene:
    def __init__(self, sensor_width: int, sensor_height: int, seed: int = 0) -> None:
        self.sensor_width = sensor_width
        self.sensor_height = sensor_height
        self.seed = seed
        rng = np.random.default_rng(seed)
        n = 7
        self.spots = np.column_stack([
            rng.uniform(0, sensor_width, n), rng.uniform(0, sensor_height, n),  # position
            rng.uniform(-150, 150, n), rng.uniform(-150, 150, n),  # pixels per second
            rng.uniform(0.3, 1.0, n),  # brightness
        ])
        self._noise_cache: dict[tuple[int, float], NDArray[np.uint16]] = {}
        self._painters: dict[tuple[Any, ...], Painter] = {}  # the last PAINTERS_KEPT, oldest first

    def painter(self, left: int, top: int, width: int, height: int, hbin: int, vbin: int, exposure: float,
                max_value: int) -> Painter:
        """A Painter for frames of this AOI (1-based sensor coordinates, size in super-pixels); the last
        one is kept, since acquisitions usually repeat the settings of the one before."""
        key = (left, top, width, height, hbin, vbin, exposure, max_value)
        painter = self._painters.pop(key, None) or Painter(self, *key)
        self._painters[key] = painter  # the newest last
        while len(self._painters) > PAINTERS_KEPT:
            del self._painters[next(iter(self._painters))]
        return painter

    def noise(self, size: int, sigma: float) -> NDArray[np.uint16]:
        """A bank of noise values, drawn once per size and level and reused at shifting offsets."""
        key = (size, round(sigma, 1))
        if key not in self._noise_cache:
            while len(self._noise_cache) >= PAINTERS_KEPT:
                del self._noise_cache[next(iter(self._noise_cache))]
            rng = np.random.default_rng(self.seed + size)
            bank = rng.normal(3 * sigma, sigma, size + 65536)
            self._noise_cache[key] = np.clip(bank, 0, 6 * sigma).astype(np.uint16)
        return self._noise_cache[key]


class Painter:
    def __init__(self, scene: Scene, left: int, top: int, width: int, height: int, hbin: int, vbin: int,
                 exposure: float, max_value: int) -> None:
        self.scene = scene
        self.left, self.top, self.hbin, self.vbin = left - 1, top - 1, hbin, vbin
        self.shape = (height, width)
        self.max_value = max_value
        gain = exposure * hbin * vbin
        # illumination: a broad vignette with a gentle ripple, sampled at super-pixel centres
        x = (self.left + (np.arange(width) + 0.5) * hbin) / scene.sensor_width - 0.5
        y = (self.top + (np.arange(height) + 0.5) * vbin) / scene.sensor_height - 0.5
        r2 = x[None, :] ** 2 + y[:, None] ** 2
        light = BACKGROUND_RATE * (1.0 - 0.8 * r2) * (0.9 + 0.1 * np.cos(25 * x)[None, :])
        signal = DARK_OFFSET + gain * light
        sigma = 2.0 + float(np.sqrt(max(signal.mean() - DARK_OFFSET, 0)))
        self.noise = scene.noise(width * height, sigma)
        headroom = int(self.noise.max())
        self.base = np.clip(signal - 3 * sigma, 0, max(max_value - headroom, 0)).astype(np.uint16)
        self.spot_peak = SPOT_RATE * gain
        self.digit_value = min(int(DARK_OFFSET + 0.6 * (max_value - DARK_OFFSET)), max_value)
        self.digit_scale = max(1, min(height, width) // 160)  # small: auto-contrast should see the scene
        self._clean_digits: NDArray[np.uint16] | None = None
        self._static: NDArray[np.uint16] | None = None
        self._cells: dict[tuple[int, str | None], NDArray[np.uint16]] = {}
        self._noisy_frames: dict[int, NDArray[np.uint16]] = {}
        self._glyphs = [np.kron(glyph, np.ones((self.digit_scale,) * 2, bool)) for glyph in _GLYPHS]

    def paint(self, frame_number: int, t: float, out: NDArray[np.uint16]) -> NDArray[np.uint16]:
        """Write frame ``frame_number``, exposed ``t`` seconds into the acquisition, into ``out``
        (a uint16 array of this painter's shape, possibly a strided view into an SDK buffer)."""
        self._scene(frame_number, t, out)
        self._digits(out, frame_number)
        return out

    def static_frame(self) -> NDArray[np.uint16]:
        """Frame 0, rendered once: what a static scene's camera copies into a buffer it has not filled
        before (then ``restamp`` makes it any frame)."""
        if self._static is None:
            self._static = self.paint(0, 0.0, np.empty(self.shape, np.uint16))
        return self._static

    def restamp(self, frame_number: int, out: NDArray[np.uint16], shown: int) -> NDArray[np.uint16]:
        """Turn ``out``, which holds this painter's static frame ``shown``, into its frame
        ``frame_number`` by redrawing only the digits that differ (for the ideal camera: next to no
        per-frame cost)."""
        if self._clean_digits is None:
            region = (slice(0, 8 * self.digit_scale), slice(0, 2 * self.digit_scale + 4 * self.digit_scale * 20))
            self._clean_digits = self._scene(0, 0.0, np.empty(self.shape, np.uint16))[region].copy()
        new, old = str(frame_number), str(shown)
        s = self.digit_scale
        for i in range(max(len(new), len(old))):
            digit = new[i] if i < len(new) else None
            if i < len(old) and digit == old[i]:
                continue
            out[2 * s : 7 * s, (2 + 4 * i) * s : (5 + 4 * i) * s] = self._cell(i, digit)
        return out

    def _cell(self, position: int, digit: str | None) -> NDArray[np.uint16]:
        """The pixels of digit cell ``position`` showing ``digit`` (None: blank), drawn once: restamping
        a frame is then one small copy per digit that changed."""
        key = (position, digit)
        cell = self._cells.get(key)
        if cell is None:
            assert self._clean_digits is not None
            s = self.digit_scale
            cell = self._clean_digits[2 * s : 7 * s, (2 + 4 * position) * s : (5 + 4 * position) * s].copy()
            if digit is not None:
                glyph = self._glyphs[int(digit)][: cell.shape[0], : cell.shape[1]]
                cell[glyph] = self.digit_value
            self._cells[key] = cell
        return cell

    def _scene(self, frame_number: int, t: float, out: NDArray[np.uint16]) -> NDArray[np.uint16]:
        np.copyto(out, self._noisy(frame_number % NOISY_FRAMES))  # numpy copies without holding the GIL
        for x0, y0, vx, vy, brightness in self.scene.spots:
            x = (x0 + vx * t) % self.scene.sensor_width
            y = (y0 + vy * t) % self.scene.sensor_height
            self._spot(out, x, y, brightness * self.spot_peak)
        return out

    def _noisy(self, k: int) -> NDArray[np.uint16]:
        """The illumination plus noise drawn at offset ``k`` of the noise bank, computed once."""
        noisy = self._noisy_frames.get(k)
        if noisy is None:
            height, width = self.shape
            offset = (k * 7919) % 65536
            noisy = self.base + self.noise[offset : offset + height * width].reshape(height, width)
            self._noisy_frames[k] = noisy
        return noisy

    def _spot(self, out: NDArray[np.uint16], x: float, y: float, peak: float) -> None:
        height, width = self.shape
        reach = 3 * SPOT_SIGMA
        # spot centre in super-pixel coordinates of this AOI
        cx = (x - self.left) / self.hbin
        cy = (y - self.top) / self.vbin
        x0, x1 = max(int(cx - reach / self.hbin), 0), min(int(cx + reach / self.hbin) + 1, width)
        y0, y1 = max(int(cy - reach / self.vbin), 0), min(int(cy + reach / self.vbin) + 1, height)
        if x0 >= x1 or y0 >= y1:
            return
        dx = (np.arange(x0, x1) - cx) * self.hbin
        dy = (np.arange(y0, y1) - cy) * self.vbin
        blob = peak * np.exp(-(dx[None, :] ** 2 + dy[:, None] ** 2) / (2 * SPOT_SIGMA**2))
        window = out[y0:y1, x0:x1]
        window[...] = np.minimum(window + blob, self.max_value)

    def _digits(self, out: NDArray[np.uint16], number: int) -> None:
        for i, ch in enumerate(str(number)):
            self._stamp(out, int(ch), i)

    def _stamp(self, out: NDArray[np.uint16], digit: int, position: int) -> None:
        s = self.digit_scale
        x, y = (2 + 4 * position) * s, 2 * s
        glyph = self._glyphs[digit]
        window = out[y : y + glyph.shape[0], x : x + glyph.shape[1]]
        window[glyph[: window.shape[0], : window.shape[1]]] = self.digit_value
