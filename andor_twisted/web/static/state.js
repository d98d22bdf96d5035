// What the page knows, shared by its modules: the camera's view of the frames, the frame on screen and
// how it is drawn. Each module changes only its own fields.

export const $ = (id) => document.getElementById(id);

export const state = {
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

// The display settings as the inputs have them.
export function levels() {
  return {
    black: Number($("black").value),
    white: Number($("white").value),
    colormap: $("colormap").value,
    bitDepth: state.bitDepth,
  };
}

// "2x2" -> [2, 2]
export function binFactors(binning) {
  const [h, v] = String(binning || "1x1").split("x").map(Number);
  return [h || 1, v || h || 1];
}
