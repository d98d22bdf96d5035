// Pixels to colours: histogram, percentile contrast, colour maps and drawing into ImageData.
// Everything per pixel is one pass over a typed array; everything per level setting is a lookup
// table with one entry per histogram bin (65536 at most), rebuilt only when the levels change.

const SATURATED = rgba(255, 0, 0); // pixels at the camera's maximum value are drawn red
const HISTOGRAM_BITS = 16; // at most 65536 bins; deeper pixels are binned by their top 16 bits

// Viridis (matplotlib's perceptually uniform map) as 17 control points, evenly spaced;
// interpolated linearly they stay within 6/255 of matplotlib's 256-entry table.
const VIRIDIS = "440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c " +
  "1f9f88 27ad81 3dbc74 5cc863 81d34d aadc32 d5e21a fde725";

// ImageData is RGBA bytes; through a Uint32Array on a little-endian machine that is 0xAABBGGRR.
function rgba(r, g, b) {
  return (0xff000000 | (b << 16) | (g << 8) | r) >>> 0;
}

function interpolated(controlPoints) {
  const points = controlPoints.split(" ").map((hex) => [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  const out = new Uint32Array(256);
  const segments = points.length - 1;
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * segments;
    const k = Math.min(Math.floor(x), segments - 1);
    const t = x - k;
    const [r, g, b] = [0, 1, 2].map((c) => Math.round(points[k][c] + t * (points[k + 1][c] - points[k][c])));
    out[i] = rgba(r, g, b);
  }
  return out;
}

export const COLORMAPS = {
  gray: Uint32Array.from({ length: 256 }, (_, i) => rgba(i, i, i)),
  viridis: interpolated(VIRIDIS),
};

// Histogram bins of a camera with `bitDepth`-bit pixels: values 0 .. 2**bitDepth - 1 in 2**min(bitDepth, 16)
// bins of 2**shift values each. Values above the range (which the camera should not produce) land in the last bin.
export function binning(bitDepth) {
  const shift = Math.max(bitDepth - HISTOGRAM_BITS, 0);
  return { shift, bins: 2 ** (bitDepth - shift), maxValue: 2 ** bitDepth - 1 };
}

// One pass: counts per bin, plus the frame's extremes and how many pixels are saturated.
export function histogram(pixels, bitDepth) {
  const { shift, bins, maxValue } = binning(bitDepth);
  const counts = new Uint32Array(bins);
  const last = bins - 1;
  for (let i = 0; i < pixels.length; i++) {
    const bin = pixels[i] >>> shift;
    counts[bin < last ? bin : last]++;
  }
  let min = 0;
  while (min < last && counts[min] === 0) min++;
  let max = last;
  while (max > 0 && counts[max] === 0) max--;
  // only an exact count when shift is 0; deeper pixels share the top bin with their neighbours
  const saturated = counts[maxValue >>> shift];
  const width = 2 ** shift; // values per bin (<< would overflow for 32-bit pixels)
  return { counts, shift, width, bins, maxValue, total: pixels.length, min: min * width, max: max * width, saturated };
}

// The pixel value below which `fraction` (0..1) of the pixels lie.
export function percentile(hist, fraction) {
  const target = fraction * hist.total;
  let seen = 0;
  for (let i = 0; i < hist.bins; i++) {
    seen += hist.counts[i];
    if (seen > target) return i * hist.width;
  }
  return (hist.bins - 1) * hist.width;
}

// Auto-contrast levels: 0.1% of the pixels below black, 0.1% above white.
export function autoLevels(hist, low = 0.001, high = 0.999) {
  const black = percentile(hist, low);
  const white = Math.max(percentile(hist, high), black + 1);
  return { black, white };
}

// Colour per histogram bin for levels black..white in `colormap`, saturated bins red.
export function levelTable({ black, white, colormap, bitDepth }) {
  const { shift, bins, maxValue } = binning(bitDepth);
  const cmap = COLORMAPS[colormap] || COLORMAPS.gray;
  const table = new Uint32Array(bins);
  const scale = 255 / Math.max(white - black, 1);
  const saturatedBin = maxValue >>> shift;
  for (let i = 0; i < bins; i++) {
    const level = Math.round((i * 2 ** shift - black) * scale);
    table[i] = cmap[level < 0 ? 0 : level > 255 ? 255 : level];
  }
  table[saturatedBin] = SATURATED;
  return table;
}

// Colour every pixel into `imageData` (of the frame's width and height) through a levelTable.
export function colorize(pixels, table, shift, imageData) {
  const out = new Uint32Array(imageData.data.buffer);
  const last = table.length - 1;
  for (let i = 0; i < pixels.length; i++) {
    const bin = pixels[i] >>> shift;
    out[i] = table[bin < last ? bin : last];
  }
}

// Draw the histogram on a small canvas: log counts over the value range that holds the data
// and the levels, with the black and white levels as vertical lines.
export function drawHistogram(canvas, hist, { black, white }) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, width, height);
  const lo = Math.min(hist.min, black);
  const hi = Math.max(hist.max, white, lo + 1);
  const columns = new Float64Array(width);
  const span = (hi - lo + 1) / width; // values per column
  for (let bin = hist.min / hist.width; bin <= hist.max / hist.width; bin++) {
    const column = Math.min(Math.floor((bin * hist.width - lo) / span), width - 1);
    columns[column] += hist.counts[bin];
  }
  const top = Math.log1p(Math.max(...columns));
  ctx.fillStyle = "#9ab";
  for (let x = 0; x < width; x++) {
    if (columns[x] === 0) continue;
    const h = Math.max(1, Math.round((Math.log1p(columns[x]) / top) * (height - 12)));
    ctx.fillRect(x, height - h, 1, h);
  }
  const marker = (value, colour) => {
    ctx.fillStyle = colour;
    ctx.fillRect(Math.round(((value - lo) / (hi - lo)) * (width - 1)), 0, 1, height);
  };
  marker(black, "#48f");
  marker(white, "#fd4");
  ctx.fillStyle = "#ccc";
  ctx.font = "10px sans-serif";
  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  ctx.fillText(String(lo), 2, 1);
  ctx.textAlign = "right";
  ctx.fillText(String(hi), width - 2, 1);
  if (hist.saturated > 0) {
    ctx.fillStyle = "#f44";
    ctx.textAlign = "center";
    ctx.fillText(`${hist.saturated} saturated`, width / 2, 1);
  }
}
