// The live view WebSocket (/stream/live): frames in, one acknowledgement out per frame drawn.
//
// The server sends the newest frame only after the previous one is acknowledged, so the page
// must ack every frame, even one it could not parse, or the stream stops. Frames are drawn in
// requestAnimationFrame: the page never draws faster than the screen refreshes, and a hidden tab
// (no animation frames) stops acknowledging, which pauses the stream instead of wasting the link.

import { parseFrame, peekFrameNumber } from "./frames.js";

const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 10000;

export class LiveStream {
  // handlers: onFrame(frame) draws, onView(view), onPaused(reason), onError(message), onState(text)
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    this.display = [640, 480];
    this.socket = null;
    this.pending = null; // the newest undrawn message (there is at most one in flight)
    this.scheduled = false;
    this.retryMs = FIRST_RETRY_MS;
  }

  start() {
    const [width, height] = this.display;
    const url = new URL(this.path, location.href); // relative to the page, like the API calls
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = `?width=${width}&height=${height}`;
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.handlers.onState("connecting");
    socket.onopen = () => this.handlers.onState("live");
    socket.onmessage = (event) => {
      this.retryMs = FIRST_RETRY_MS; // the server answers: back off from scratch next time
      if (typeof event.data === "string") this.control(event.data);
      else this.frameArrived(event.data);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.pending = null;
      const seconds = (this.retryMs / 1000).toFixed(1);
      this.handlers.onState(`disconnected; reconnecting in ${seconds} s`);
      setTimeout(() => this.start(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, LAST_RETRY_MS);
    };
  }

  // The canvas now shows width x height device pixels: ask for frames of about that size.
  setDisplay(width, height) {
    width = Math.max(1, Math.round(width));
    height = Math.max(1, Math.round(height));
    if (width === this.display[0] && height === this.display[1]) return;
    this.display = [width, height];
    this.send(`{"display": [${width}, ${height}]}`);
  }

  send(text) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
  }

  control(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (e) {
      this.handlers.onError(`the live stream sent something that is not JSON: ${text.slice(0, 80)}`);
      return;
    }
    if (message.type === "view") this.handlers.onView(message);
    else if (message.type === "paused") this.handlers.onPaused(message.reason || "paused");
    else if (message.type === "error") this.handlers.onError(message.message || message.error);
  }

  frameArrived(buffer) {
    this.pending = buffer;
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.drawPending());
    }
  }

  drawPending() {
    this.scheduled = false;
    const buffer = this.pending;
    this.pending = null;
    if (!buffer) return;
    let number = peekFrameNumber(buffer);
    try {
      const frame = parseFrame(buffer);
      number = frame.frame_number;
      this.handlers.onFrame(frame);
    } catch (e) {
      this.handlers.onError(`live view: ${e.message}`);
    } finally {
      // frame numbers are u64: write the BigInt's digits, JSON.stringify cannot
      if (number !== null) this.send(`{"ack": ${number}}`);
    }
  }
}
