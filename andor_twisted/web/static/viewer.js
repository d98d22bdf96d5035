// The viewer page: the live image, its readouts, and the camera's controls.

import { api, clearError, download, reported, showError } from "./controls.js";
import { timestamp } from "./frames.js";
import { LiveStream } from "./live.js";
import { autoLevels, colorize, drawHistogram, histogram, levelTable } from "./render.js";

const TEMPERATURE_POLL_MS = 2000;
const BURST_POLL_MS = 250;
const FPS_WINDOW_MS = 1000;

const $ = (id) => document.getElementById(id);

const state = {
  bitDepth: 16, // of the camera's pixels (BitDepth "16 Bit"); 2**bitDepth - 1 is saturated
  view: { step: 1, aoi: null, binning: "1x1" }, // how frames map to the sensor (the stream's view message)
  cameraFps: null, // the camera's FrameRate, from the stream's newest view message or the API, whichever is newer
  frame: null, // the frame on screen, its histogram and the colour table it was drawn with
  hist: null,
  table: null,
  tableKey: "",
  offscreen: document.createElement("canvas"), // the frame at its own size, scaled onto #image
  image: null, // the offscreen canvas's pixels, reused while the frame size stays
  placement: null, // where the frame is on #image: {x, y, scale} in device pixels
  pointer: null, // the mouse over #image, device pixels
  drawTimes: [],
  drawn: 0,
};

// ---- drawing ----

function levels() {
  return {
    black: Number($("black").value),
    white: Number($("white").value),
    colormap: $("colormap").value,
    bitDepth: state.bitDepth,
  };
}

// A new frame from the live stream.
function showFrame(frame) {
  state.frame = frame;
  state.hist = histogram(frame.pixels, state.bitDepth);
  if ($("auto-contrast").checked) {
    const { black, white } = autoLevels(state.hist);
    $("black").value = black;
    $("white").value = white;
  }
  render();
  const now = performance.now();
  state.drawTimes.push(now);
  state.drawn += 1;
  $("image").dataset.frames = state.drawn; // for tests and curious people: frames drawn so far
  $("frame-number").textContent = String(frame.frame_number);
  const seconds = timestamp(frame);
  $("timestamp").textContent = seconds === null ? "none" : `${seconds.toFixed(6)} s`;
  showDisplayFps(now);
  setLiveStatus("live");
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
  let scale;
  if ($("zoom").value === "fit") scale = Math.min(canvas.width / frame.width, canvas.height / frame.height);
  else scale = state.view.step; // a reduced frame (before the server applies our size) still spans the AOI
  const x = $("zoom").value === "fit" ? Math.floor((canvas.width - frame.width * scale) / 2) : 0;
  const y = $("zoom").value === "fit" ? Math.floor((canvas.height - frame.height * scale) / 2) : 0;
  ctx.imageSmoothingEnabled = false; // show pixels, not a blur, when enlarged
  ctx.drawImage(state.offscreen, x, y, frame.width * scale, frame.height * scale);
  state.placement = { x, y, scale };
}

// Size #image for the zoom mode and tell the server how many pixels to send.
function layout() {
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

function binFactors(binning) {
  const [h, v] = String(binning || "1x1").split("x").map(Number);
  return [h || 1, v || h || 1];
}

function showDisplayFps(now) {
  const times = state.drawTimes;
  while (times.length && times[0] < now - FPS_WINDOW_MS) times.shift();
  const fps = times.length >= 2 ? ((times.length - 1) * 1000) / (times[times.length - 1] - times[0]) : 0;
  $("display-fps").textContent = `${fps.toFixed(1)} fps`;
}

function showCameraFps() {
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

function setLiveStatus(text) {
  const status = $("live-status");
  if (status.textContent === text) return;
  status.textContent = text;
  status.classList.toggle("paused", text.startsWith("paused"));
  status.classList.toggle("down", text.startsWith("disconnected"));
}

// ---- the live stream ----

const live = new LiveStream("stream/live", {
  onFrame: showFrame,
  onView(view) {
    state.view = { ...state.view, ...view };
    if (view.frame_rate != null) state.cameraFps = view.frame_rate;
    showCameraFps();
    syncAoi(view.aoi, view.binning);
    if ($("zoom").value === "1:1") layout();
  },
  onPaused: (reason) => setLiveStatus(`paused: ${reason}`),
  onError: (message) => showError(`live view: ${message}`),
  onState: setLiveStatus,
});

// ---- controls ----

// Show the camera's AOI and binning in the inputs (unless the user is typing in them).
function syncAoi(aoi, binning) {
  if (aoi) {
    state.view.aoi = aoi;
    for (const key of ["left", "top", "width", "height"]) {
      const input = $(`aoi-${key}`);
      if (document.activeElement !== input) input.value = aoi[key];
    }
  }
  if (binning) {
    state.view.binning = binning;
    $("binning").value = String(binFactors(binning)[0]);
  }
}

// A user's change: run it, show its failure, and clear an old error when it works.
async function change(action) {
  try {
    await action();
    clearError();
  } catch (e) {
    showError(e);
  }
}

function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    change(action);
  });
}

function options(select, values, current) {
  select.replaceChildren(...values.map((v) => new Option(v, v)));
  select.value = current;
}

const refreshFrameRate = () => reported(async () => {
  state.cameraFps = await api("GET", "features/FrameRate");
  showCameraFps();
});

function bindControls() {
  for (const id of ["black", "white"]) {
    $(id).addEventListener("input", () => {
      $("auto-contrast").checked = false; // typing a level means "these levels, please"
      render();
    });
  }
  for (const id of ["auto-contrast", "colormap"]) {
    $(id).addEventListener("change", () => {
      if ($("auto-contrast").checked && state.hist) {
        const { black, white } = autoLevels(state.hist);
        $("black").value = black;
        $("white").value = white;
      }
      render();
    });
  }
  $("zoom").addEventListener("change", layout);

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
  $("error").addEventListener("click", clearError);

  onSubmit("exposure-form", async () => {
    $("exposure").value = await api("PUT", "exposure_time", Number($("exposure").value));
    refreshFrameRate(); // a longer exposure may lower the camera's frame rate
  });
  onSubmit("aoi-form", async () => {
    const aoi = {};
    for (const key of ["left", "top", "width", "height"]) aoi[key] = Math.round(Number($(`aoi-${key}`).value));
    syncAoi(await api("PUT", "aoi", aoi));
    refreshFrameRate();
  });
  $("aoi-full").addEventListener("click", () => change(async () => {
    const camera = await api("GET", "camera");
    syncAoi(await api("PUT", "aoi", { left: 1, top: 1, width: camera.SensorWidth, height: camera.SensorHeight }));
    refreshFrameRate();
  }));
  $("binning").addEventListener("change", () => change(async () => {
    try {
      syncAoi(null, await api("PUT", "binning", Number($("binning").value)));
    } finally {
      syncAoi(await api("GET", "aoi"), await api("GET", "binning")); // binning rounds the AOI's size
    }
    refreshFrameRate();
  }));
  $("cooling").addEventListener("change", () => change(async () => {
    try {
      $("cooling").checked = await api("PUT", "sensor_cooling", $("cooling").checked);
    } catch (e) {
      $("cooling").checked = await api("GET", "sensor_cooling").catch(() => !$("cooling").checked);
      throw e;
    }
  }));
  $("fan").addEventListener("change", () => change(async () => {
    try {
      $("fan").value = (await api("PUT", "fan", $("fan").value)).speed;
    } finally {
      $("fan").value = (await api("GET", "fan")).speed;
    }
  }));
  $("setpoint").addEventListener("change", () => change(async () => {
    try {
      $("setpoint").value = await api("PUT", "temperature_setpoint", $("setpoint").value);
    } finally {
      $("setpoint").value = await api("GET", "temperature_setpoint");
    }
  }));

  for (const format of ["tiff", "fits"]) {
    const link = $(`snap-${format}`);
    link.addEventListener("click", (event) => {
      event.preventDefault(); // fetch it ourselves, so an error answer is shown instead of saved
      if (link.getAttribute("aria-busy") === "true") return;
      link.setAttribute("aria-busy", "true");
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      change(() => download(link.href, `snap-${stamp}.${format}`))
        .finally(() => link.removeAttribute("aria-busy"));
    });
  }

  onSubmit("burst-form", async () => {
    const value = {
      frames: Math.round(Number($("burst-frames").value)),
      fps: Number($("burst-fps").value),
      spool: Math.round(Number($("burst-spool").value)),
    };
    showBurst(await api("POST", "burst", value));
  });
}

// Every setting as the camera has it now.
function loadSettings() {
  const load = (path, apply) => reported(async () => apply(await api("GET", path)));
  load("camera", (c) => {
    const name = c.CameraName || c.CameraModel || c.camera;
    $("camera-name").textContent = name;
    $("camera-name").title = `${c.camera}, serial ${c.SerialNumber}`;
    document.title = `${name} – andor-twisted`;
  });
  load("exposure_time", (v) => { $("exposure").value = v; });
  load("aoi", (aoi) => syncAoi(aoi, null));
  load("binning", (b) => syncAoi(null, b));
  load("sensor_cooling", (v) => { $("cooling").checked = v; });
  load("features/FanSpeed/info", async (info) => {
    options($("fan"), info.available_options || info.options, info.value);
  });
  reported(async () => {
    const [choices, current] = await Promise.all([api("GET", "temperature_setpoint/options"),
      api("GET", "temperature_setpoint")]);
    options($("setpoint"), choices, current);
  });
  refreshFrameRate();
}

// ---- polling ----

// Poll `action` every `ms`, the next call only after the previous one has finished.
function every(ms, action) {
  const run = async () => {
    try {
      await action();
    } catch (e) {
      showError(e);
    }
    setTimeout(run, ms);
  };
  run();
}

async function pollTemperature() {
  const [temperature, status, bitDepth, frameRate] = await Promise.all([
    api("GET", "temperature"), api("GET", "cooling_status"), api("GET", "features/BitDepth"),
    api("GET", "features/FrameRate")]);
  state.cameraFps = frameRate; // a script may have changed it
  showCameraFps();
  $("temperature").textContent = `${Number(temperature).toFixed(2)} °C`;
  $("cooling-status").textContent = status;
  // BitDepth is "16 Bit" (an SDK3 enum) on Andor cameras; accept a plain number too
  const bits = parseInt(bitDepth, 10);
  if (bits > 0 && bits <= 32 && bits !== state.bitDepth) {
    state.bitDepth = bits;
    if (state.frame) state.hist = histogram(state.frame.pixels, bits);
    render();
  }
  showDisplayFps(performance.now()); // decays to 0 when frames stop
}

async function pollBurst() {
  try {
    showBurst(await api("GET", "burst"));
  } catch (e) {
    if (e.status !== 404) throw e;
    showBurst(null); // no burst yet
  }
}

function showBurst(b) {
  const bar = $("burst-bar");
  const out = $("burst-progress");
  if (!b) {
    out.textContent = "no burst";
    bar.value = 0;
    return;
  }
  bar.max = Math.max(b.frames, 1);
  bar.value = b.state === "capturing" ? b.captured : b.acknowledged;
  const head = [`burst ${b.id}: ${b.state}, ${b.frames} frames at ${b.fps} fps`];
  if (b.fps_achieved) head.push(`${Number(b.fps_achieved).toFixed(1)} fps achieved`);
  if (b.waited_frames) head.push(`${b.waited_frames} late`);
  const counts = `captured ${b.captured}/${b.frames}, sent ${b.sent}, acknowledged ${b.acknowledged}, ` +
    `spool ${b.spool_frames}/${b.spool_capacity}`;
  out.textContent = [head.join(", "), counts, b.message].filter(Boolean).join("\n");
}

// ---- start ----

bindControls();
loadSettings();
new ResizeObserver(layout).observe($("viewport"));
layout(); // before start(): the first request already asks for frames of the canvas's size
live.start();
every(TEMPERATURE_POLL_MS, pollTemperature);
every(BURST_POLL_MS, pollBurst);
