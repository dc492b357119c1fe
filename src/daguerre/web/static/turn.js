// One turn of a conversation on screen: its prompt, its image (a partial preview while it
// renders, swapped for the final image once that is decoded), its status in plain words
// and its actions. Rendering only: the thread owns the turns and says when one changed.
import { sameOrigin } from "./api.js";
import { el, notice, seconds } from "./ui.js";

// ``onBranch(index)``: what "Branch from here" does.
export function turnView(turn, onBranch) {
  const img = el("img", {
    alt: `Image ${turn.index}: ${turn.prompt}`,
    width: turn.image ? turn.image.width : null,
    height: turn.image ? turn.image.height : null,
    dataset: { state: "empty" },
  });
  const item = el(
    "li",
    { class: "turn", id: `turn-${turn.id}`, dataset: { index: turn.index, turnId: turn.id } },
    el(
      "div",
      { class: "turn-head" },
      el("span", { class: "turn-number", text: `#${turn.index}` }),
      turn.mode === "edit" && turn.parent_turn != null
        ? el("span", { class: "badge", text: `edit of #${turn.parent_turn}` })
        : el("span", { class: "badge new", text: "new picture" }),
      el("p", { class: "prompt-text", text: turn.prompt }),
    ),
    el("figure", { class: "frame" }, img),
    el("p", { class: "understood", hidden: true }),
    el("p", { class: "turn-status" }),
    el("div", { class: "turn-actions" }),
  );
  updateTurn(item, turn, null, onBranch);
  return item;
}

export function statusText(job) {
  switch (job.status) {
    case "queued": {
      const ahead = job.queue_position;
      const where =
        ahead == null ? "In the queue" : ahead === 0 ? "Next in the queue" : `In the queue: ${ahead} ahead of you`;
      const wait = job.estimated_wait_s == null ? "" : `, about ${seconds(job.estimated_wait_s)} to wait`;
      // A render that paused for priority work keeps its progress.
      const paused = job.step > 0 && job.total_steps ? `Paused at step ${job.step} of ${job.total_steps}. ` : "";
      return `${paused}${where}${wait}.`;
    }
    case "deferred":
      return "Deferred: we will finish this when capacity frees. You can leave; it will be here when you come back.";
    case "running":
      return job.total_steps ? `Rendering: step ${job.step} of ${job.total_steps}.` : "Rendering…";
    case "succeeded":
      return "";
    case "failed":
      return `This image failed: ${job.error || "the render did not finish"}.`;
    case "cancelled":
      return "Cancelled.";
    default:
      return job.status;
  }
}

export function updateTurn(item, turn, previewB64, onBranch) {
  const job = turn.job;
  item.dataset.status = job.status;
  const status = item.querySelector(".turn-status");
  status.textContent = statusText(job);
  status.hidden = status.textContent === "";
  status.className = `turn-status ${job.status}`;
  const img = item.querySelector("img");
  showUnderstood(item.querySelector(".understood"), turn.image);
  if (turn.image) {
    showFinal(img, turn.image);
  } else if (previewB64 && img.dataset.state !== "final") {
    img.src = `data:image/png;base64,${previewB64}`;
    img.dataset.state = "partial";
    img.dataset.previews = String(Number(img.dataset.previews || 0) + 1);
  }
  renderActions(item, turn, onBranch);
}

// What the model understood the prompt as (the image's revised_prompt), under the image;
// only when the model said, so that a model without a reading shows nothing.
function showUnderstood(caption, image) {
  const text = image && image.revised_prompt;
  caption.textContent = text ? `Understood as: ${text}` : "";
  caption.hidden = !text;
}

function showFinal(img, image) {
  const url = sameOrigin(image.url);
  if (img.dataset.src === url) return;
  img.dataset.src = url;
  // Swap in the final image once it is decoded, so the preview never blinks out.
  const next = new Image();
  next.src = url;
  next
    .decode()
    .catch(() => undefined)
    .then(() => {
      img.src = url;
      img.width = image.width;
      img.height = image.height;
      img.dataset.state = "final";
    });
}

function renderActions(item, turn, onBranch) {
  const buttons = [
    el("button", {
      type: "button",
      class: "link",
      text: "Copy prompt",
      onclick: () => copyPrompt(turn.prompt),
    }),
  ];
  if (turn.image) {
    buttons.unshift(
      el("a", {
        class: "link",
        href: sameOrigin(turn.image.url),
        download: `daguerre-${turn.conversation_id}-${turn.index}.png`,
        text: "Download",
      }),
    );
    buttons.push(
      el("button", {
        type: "button",
        class: "link",
        text: "Branch from here",
        "aria-label": `Branch from image ${turn.index}`,
        onclick: () => onBranch(turn.index),
      }),
    );
  }
  item.querySelector(".turn-actions").replaceChildren(...buttons);
}

async function copyPrompt(prompt) {
  try {
    await navigator.clipboard.writeText(prompt);
    notice("Prompt copied.", "info");
  } catch {
    notice("Could not copy: select the prompt text and copy it instead.", "error");
  }
}
