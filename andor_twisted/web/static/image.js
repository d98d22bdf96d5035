// The image: drawing frames onto #image with the levels, colour map and zoom, the histogram, the frame's
// readouts and the pixel under the cursor, and the display controls that change how it is drawn.

import { timestamp } from "./frames.js";
import { autoLevels, colorize, drawHistogram, histogram, levelTable } from "./render.js";
import { $, binFactors, levels, state } from "./state.js";

const FPS_WINDOW_MS = 1000;

// A new frame from the live stream.
export function showFrame(frame) {
  state.frame = frame;
  state.hist = histogram(frame.pixels, state.bitDepth);
  if ($("auto-contrast").checked) setAutoLevels();
  render();
  const now = performance.now();
  state.drawTimes.push(now);
  state.drawn += 1;
  $("image").dataset.frames = state.drawn; // for tests and curious people: frames drawn so far
  $("frame-number").textContent = String(frame.frame_number);
  const seconds = timestamp(frame);
  $("timestamp").textContent = seconds === null ? "none" : `${seconds.toFixed(6)} s`;
  showDisplayFps(now);
  setLiveStatus(frame.burst_id ? `watching burst ${frame.burst_id} as it captures` : "live");
}

// The camera's bit depth changed: the histogram's bins and the saturated value with it.
export function setBitDepth(bits) {
  if (bits === state.bitDepth) return;
  state.bitDepth = bits;
  if (state.frame) state.hist = histogram(state.frame.pixels, bits);
  render();
}

function setAutoLevels() {
  const { black, white } = autoLevels(state.hist);
  $("black").value = black;
  $("white").value = white;
}

// Draw the current frame with the current levels, colour map and zoom.
function render() {
  const frame = state.frame;
  if (!frame) return;
  const settings = levels();
  const key = JSON.stringify(settings);
  if (key !== state.tableKey) {
    state.table = levelTable(settings);
    state.tableKey = key;
  }
  const off = state.offscreen;
  if (off.width !== frame.width || off.height !== frame.height) {
    off.width = frame.width;
    off.height = frame.height;
  }
  const ctx = off.getContext("2d");
  if (!state.image || state.image.width !== frame.width || state.image.height !== frame.height) {
    state.image = ctx.createImageData(frame.width, frame.height);
  }
  colorize(frame.pixels, state.table, state.hist.shift, state.image);
  ctx.putImageData(state.image, 0, 0);
  present();
  drawHistogram($("histogram"), state.hist, settings);
  showCursor();
}

// Scale the frame onto #image: to fit, or at one camera (super-)pixel per device pixel.
function present() {
  const canvas = $("image");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const frame = state.frame;
  if (!frame) return;
  const fit = $("zoom").value === "fit";
  // 1:1: a reduced frame (before the server applies our size) still spans the AOI
  const scale = fit ? Math.min(canvas.width / frame.width, canvas.height / frame.height) : state.view.step;
  const x = fit ? Math.floor((canvas.width - frame.width * scale) / 2) : 0;
  const y = fit ? Math.floor((canvas.height - frame.height * scale) / 2) : 0;
  ctx.imageSmoothingEnabled = false; // show pixels, not a blur, when enlarged
  ctx.drawImage(state.offscreen, x, y, frame.width * scale, frame.height * scale);
  state.placement = { x, y, scale };
}

// Size #image for the zoom mode and tell the live stream how many pixels to send.
export function layout(live) {
  const canvas = $("image");
  const viewport = $("viewport");
  const dpr = window.devicePixelRatio || 1;
  const oneToOne = $("zoom").value === "1:1";
  viewport.classList.toggle("one-to-one", oneToOne);
  let width, height;
  if (oneToOne) {
    [width, height] = fullFrameSize();
    canvas.style.width = `${width / dpr}px`;
    canvas.style.height = `${height / dpr}px`;
  } else {
    canvas.style.width = canvas.style.height = "";
    width = Math.max(1, Math.floor(viewport.clientWidth * dpr));
    height = Math.max(1, Math.floor(viewport.clientHeight * dpr));
  }
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  live.setDisplay(width, height);
  present();
}

// The AOI's size in camera (super-)pixels: the frame size the server sends without reducing.
function fullFrameSize() {
  const { aoi, binning, step } = state.view;
  if (aoi) {
    const [hbin, vbin] = binFactors(binning);
    return [Math.floor(aoi.width / hbin), Math.floor(aoi.height / vbin)];
  }
  if (state.frame) return [state.frame.width * step, state.frame.height * step];
  return [640, 480];
}

// The rate at which the page draws frames, over the last second (it decays to 0 when frames stop).
export function showDisplayFps(now) {
  const times = state.drawTimes;
  while (times.length && times[0] < now - FPS_WINDOW_MS) times.shift();
  const fps = times.length >= 2 ? ((times.length - 1) * 1000) / (times[times.length - 1] - times[0]) : 0;
  $("display-fps").textContent = `${fps.toFixed(1)} fps`;
}

export function showCameraFps() {
  const fps = state.cameraFps;
  $("camera-fps").textContent = fps == null ? "–" : `${Number(fps).toFixed(2)} fps`;
}

// The sensor pixel under the mouse and its raw value.
function showCursor() {
  const { frame, placement, pointer } = state;
  const out = $("cursor");
  if (!frame || !placement || !pointer) {
    out.textContent = "–";
    return;
  }
  const x = Math.floor((pointer[0] - placement.x) / placement.scale);
  const y = Math.floor((pointer[1] - placement.y) / placement.scale);
  if (x < 0 || y < 0 || x >= frame.width || y >= frame.height) {
    out.textContent = "–";
    return;
  }
  const { step, aoi, binning } = state.view;
  const [hbin, vbin] = binFactors(binning);
  const left = aoi ? aoi.left : 1;
  const top = aoi ? aoi.top : 1;
  const value = frame.pixels[y * frame.width + x];
  out.textContent = `x ${left + x * step * hbin}, y ${top + y * step * vbin}: ${value}`;
}

export function setLiveStatus(text) {
  const status = $("live-status");
  if (status.textContent === text) return;
  status.textContent = text;
  status.classList.toggle("paused", text.startsWith("paused"));
  status.classList.toggle("down", text.startsWith("disconnected"));
}

// Levels, colour map, zoom and the cursor readout.
export function bindDisplayControls(live) {
  for (const id of ["black", "white"]) {
    $(id).addEventListener("input", () => {
      $("auto-contrast").checked = false; // typing a level means "these levels, please"
      render();
    });
  }
  for (const id of ["auto-contrast", "colormap"]) {
    $(id).addEventListener("change", () => {
      if ($("auto-contrast").checked && state.hist) setAutoLevels();
      render();
    });
  }
  $("zoom").addEventListener("change", () => layout(live));

  const canvas = $("image");
  canvas.addEventListener("mousemove", (event) => {
    state.pointer = [event.offsetX * (canvas.width / canvas.clientWidth),
      event.offsetY * (canvas.height / canvas.clientHeight)];
    showCursor();
  });
  canvas.addEventListener("mouseleave", () => {
    state.pointer = null;
    showCursor();
  });
}
