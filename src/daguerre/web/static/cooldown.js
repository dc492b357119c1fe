// A rate limit's wait: the Send button counts down the server's Retry-After, then
// comes back. Whatever answered 429 (a send, a read), the wait shows here.
import { $, notice, seconds } from "./ui.js";

let timer = null;

// True while the countdown runs: Send stays disabled until it ends.
export function cooling() {
  return timer !== null;
}

export function rateLimited(error) {
  const wait = Number.isFinite(error.retryAfterS) ? Math.max(1, error.retryAfterS) : 10;
  const what =
    error.code === "queue_full" || error.code === "capacity_exceeded"
      ? "the service is busy for your plan right now"
      : "you have reached your plan's limit for now";
  notice(`Rate limited: ${what}. You can try again in ${seconds(wait)}.`, "warning");
  const send = $("send");
  let left = wait;
  clearInterval(timer);
  send.disabled = true;
  send.textContent = `Wait ${left} s`;
  timer = setInterval(() => {
    left -= 1;
    if (left > 0) {
      send.textContent = `Wait ${left} s`;
      return;
    }
    clearInterval(timer);
    timer = null;
    send.disabled = false;
    send.textContent = "Send";
    notice("You can send again.", "info");
  }, 1000);
}
