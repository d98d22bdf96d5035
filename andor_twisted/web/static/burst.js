// The burst panel: starting a burst, and the newest burst's progress, whoever started it (polled from
// GET /api/burst). The page does not read burst frames; scripts do (docs/streaming.md).

import { api } from "./api.js";
import { onSubmit } from "./settings.js";
import { $ } from "./state.js";

export function bindBurstForm() {
  onSubmit("burst-form", async () => {
    const value = {
      frames: Math.round(Number($("burst-frames").value)),
      fps: Number($("burst-fps").value),
      spool: Math.round(Number($("burst-spool").value)),
    };
    showBurst(await api("POST", "burst", value));
  });
}

export async function pollBurst() {
  try {
    showBurst(await api("GET", "burst"));
  } catch (e) {
    if (e.status !== 404) throw e;
    showBurst(null); // no burst yet
  }
}

let previous = null; // the last status shown, with when: MB/s is the change in bytes_sent between two

function sendRate(b) {
  const now = performance.now();
  const last = previous;
  previous = { id: b.id, sent: b.bytes_sent || 0, at: now, rate: last && last.id === b.id ? last.rate : null };
  if (last && last.id === b.id && now > last.at) {
    previous.rate = (previous.sent - last.sent) / ((now - last.at) / 1000) / 1e6;
  }
  return previous.rate;
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
  if (b.late_frames) head.push(`${b.late_frames} late`);
  if (b.lost_frames) head.push(`${b.lost_frames} lost`);
  if (b.waiting_for_trigger) head.push("waiting for a trigger");
  const rate = sendRate(b);
  const counts = `captured ${b.captured}/${b.frames}, sent ${b.sent}, acknowledged ${b.acknowledged}` +
    (rate !== null && b.state !== "done" ? `, ${rate.toFixed(1)} MB/s` : "") +
    `, spool ${b.spool_frames}/${b.spool_capacity} (${(b.spool_bytes / 1e6).toFixed(0)} MB, ` +
    `high water ${b.high_water_frames})`;
  out.textContent = [head.join(", "), counts, b.message].filter(Boolean).join("\n");
}
