// The viewer page's entry point: it wires the modules together and starts the live stream and the polls.
//   state.js     what the page knows, shared     image.js     drawing, readouts, display controls
//   live.js      the /stream/live WebSocket      settings.js  the camera's controls and readouts
//   burst.js     the burst panel                 api.js       the JSON API and the error area
//   frames.js    frame messages                  render.js    histogram, levels, colour maps

import { showError } from "./api.js";
import { bindBurstForm, pollBurst } from "./burst.js";
import { bindDisplayControls, layout, setLiveStatus, showCameraFps, showFrame } from "./image.js";
import { LiveStream } from "./live.js";
import { bindCameraControls, loadSettings, pollTemperature, syncAoi } from "./settings.js";
import { $, state } from "./state.js";

const TEMPERATURE_POLL_MS = 2000;
const BURST_POLL_MS = 250;

// For tests and for the curious: a promise of the first frame drawn, {frame_number, ms since the page
// started loading}.
let firstFrameDrawn;
window.andorViewer = { firstFrame: new Promise((resolve) => { firstFrameDrawn = resolve; }) };

const live = new LiveStream("stream/live", {
  onFrame(frame) {
    showFrame(frame);
    firstFrameDrawn({ frame_number: String(frame.frame_number), ms: performance.now() });
  },
  onView(view) {
    state.view = { ...state.view, ...view };
    if (view.frame_rate != null) state.cameraFps = view.frame_rate;
    showCameraFps();
    syncAoi(view.aoi, view.binning);
    if ($("zoom").value === "1:1") layout(live);
  },
  onPaused: (reason) => setLiveStatus(`paused: ${reason}`),
  onError: (message) => showError(`live view: ${message}`),
  onState: setLiveStatus,
});

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

bindDisplayControls(live);
bindCameraControls();
bindBurstForm();
loadSettings();
new ResizeObserver(() => layout(live)).observe($("viewport"));
layout(live); // before start(): the first request already asks for frames of the canvas's size
live.start();
every(TEMPERATURE_POLL_MS, pollTemperature);
every(BURST_POLL_MS, pollBurst);
