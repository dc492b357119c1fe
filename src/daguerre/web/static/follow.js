// Following jobs over Server-Sent Events: each job's stream until the job ends, resumed
// after a dropped connection with a growing pause. The stream starts with the job as it
// is now, so a reload or a late start misses nothing. This module owns the open streams.
import { ApiError } from "./api.js";
import { api, explain } from "./session.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const follows = new Map(); // job id -> AbortController of its event stream

export function isTerminal(status) {
  return TERMINAL.has(status);
}

// Calls onJob(job, previewB64 or null) with each state of ``job`` until it ends. A job
// already followed is left to the stream that follows it.
export async function follow(job, onJob) {
  if (follows.has(job.id)) return;
  const controller = new AbortController();
  follows.set(job.id, controller);
  let delay = 500;
  try {
    while (!controller.signal.aborted) {
      try {
        for await (const { event, data } of api().events(job.events_url, controller.signal)) {
          delay = 500;
          onJob(data, data.preview_png_b64 || null);
          if (TERMINAL.has(data.status) || event === "completed") return;
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && [401, 403, 404].includes(error.status)) {
          explain(error);
          return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  } finally {
    if (follows.get(job.id) === controller) follows.delete(job.id);
  }
}

export function stopAll() {
  for (const controller of follows.values()) controller.abort();
  follows.clear();
}
