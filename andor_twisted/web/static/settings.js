// The camera's controls: exposure, AOI and binning, cooling, setpoint and fan, snap downloads; what the
// camera has now (loaded at start, temperature and cooling polled), shown in them.

import { api, clearError, download, reported, showError } from "./api.js";
import { setBitDepth, showCameraFps, showDisplayFps } from "./image.js";
import { $, binFactors, state } from "./state.js";

// Show the camera's AOI and binning in the inputs (unless the user is typing in them).
export function syncAoi(aoi, binning) {
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
export async function change(action) {
  try {
    await action();
    clearError();
  } catch (e) {
    showError(e);
  }
}

export function onSubmit(id, action) {
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

export function bindCameraControls() {
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
}

// Every setting as the camera has it now.
export function loadSettings() {
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

// The readouts that change by themselves: temperature, cooling status, bit depth and frame rate.
export async function pollTemperature() {
  const [temperature, status, bitDepth, frameRate] = await Promise.all([
    api("GET", "temperature"), api("GET", "cooling_status"), api("GET", "features/BitDepth"),
    api("GET", "features/FrameRate")]);
  state.cameraFps = frameRate; // a script may have changed it
  showCameraFps();
  $("temperature").textContent = `${Number(temperature).toFixed(2)} °C`;
  $("cooling-status").textContent = status;
  // BitDepth is "16 Bit" (an SDK3 enum) on Andor cameras; accept a plain number too
  const bits = parseInt(bitDepth, 10);
  if (bits > 0 && bits <= 32) setBitDepth(bits);
  showDisplayFps(performance.now()); // decays to 0 when frames stop
}
