// The chat page: sign in, conversations, turns that sharpen as they render, follow-ups,
// branches and a gallery. Plain ES modules, no build step; the DOM is the only framework.
import { Api, ApiError, sameOrigin } from "./api.js";

const KEY_STORAGE = "daguerre.key";
const CONVERSATION_STORAGE = "daguerre.conversation";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  conversations: [],
  current: null, // the open conversation, with its turns; null for a new one
  branchFrom: null, // turn index a branch edits, or null
  follows: new Map(), // job id -> AbortController of its event stream
  retryTimer: null,
  noticeTimer: null,
};

// --- small helpers ------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

function notice(message, kind = "info") {
  const box = $("notice");
  box.className = `notice ${kind}`;
  box.textContent = message;
  box.dataset.kind = kind;
  // Information fades after a while; warnings and errors stay until the next notice.
  clearTimeout(state.noticeTimer);
  if (kind === "info" && message) state.noticeTimer = setTimeout(clearNotice, 8000);
}

function clearNotice() {
  notice("", "info");
}

function seconds(value) {
  if (value < 1) return "less than a second";
  if (value < 90) return `${Math.round(value)} s`;
  return `${Math.round(value / 60)} min`;
}

function titleOf(conversation) {
  return conversation.title || "Untitled conversation";
}

// --- sign-in ------------------------------------------------------------------------------
function keyFromFragment() {
  const match = /^#key=([^&]+)/.exec(window.location.hash);
  if (!match) return null;
  // Forget the fragment at once: it must not stay in the address bar or the history.
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  return decodeURIComponent(match[1]);
}

function showSignIn(message = "") {
  stopAllFollows();
  state.api = null;
  $("app-view").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in-view").hidden = false;
  $("sign-in-error").textContent = message;
  $("api-key").focus();
}

async function signIn(key) {
  const api = new Api(key);
  let conversations;
  try {
    conversations = await api.listConversations();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      localStorage.removeItem(KEY_STORAGE);
      showSignIn("That key was not accepted. Check it and try again.");
    } else {
      showSignIn(error.message);
    }
    return;
  }
  localStorage.setItem(KEY_STORAGE, key);
  state.api = api;
  state.conversations = conversations;
  $("sign-in-view").hidden = true;
  $("app-view").hidden = false;
  $("sign-out").hidden = false;
  const last = localStorage.getItem(CONVERSATION_STORAGE);
  const open = conversations.find((c) => c.id === last);
  if (open) await openConversation(open.id);
  else startNewConversation();
}

function signOut() {
  localStorage.removeItem(KEY_STORAGE);
  localStorage.removeItem(CONVERSATION_STORAGE);
  $("api-key").value = "";
  clearNotice();
  showSignIn();
}

// An API error in plain words; true when it was the key (the page went back to sign-in).
function explain(error) {
  if (!(error instanceof ApiError)) {
    notice(String(error.message || error), "error");
    return false;
  }
  if (error.status === 401) {
    localStorage.removeItem(KEY_STORAGE);
    showSignIn("Your key is no longer accepted. Sign in again.");
    return true;
  }
  if (error.status === 429) {
    rateLimited(error);
  } else if (error.code === "feature_disabled") {
    notice(`Switched off for now: ${error.message}`, "error");
  } else if (error.status === 403) {
    notice(`Not available on your plan: ${error.message}`, "error");
  } else if (error.code === "source_not_ready") {
    notice("That image is still rendering. Send the change when it is done.", "error");
  } else {
    notice(error.message, "error");
  }
  return false;
}

function rateLimited(error) {
  const wait = Number.isFinite(error.retryAfterS) ? Math.max(1, error.retryAfterS) : 10;
  const what =
    error.code === "queue_full" || error.code === "capacity_exceeded"
      ? "the service is busy for your plan right now"
      : "you have reached your plan's limit for now";
  notice(`Rate limited: ${what}. You can try again in ${seconds(wait)}.`, "warning");
  const send = $("send");
  let left = wait;
  clearInterval(state.retryTimer);
  send.disabled = true;
  send.textContent = `Wait ${left} s`;
  state.retryTimer = setInterval(() => {
    left -= 1;
    if (left > 0) {
      send.textContent = `Wait ${left} s`;
      return;
    }
    clearInterval(state.retryTimer);
    state.retryTimer = null;
    send.disabled = false;
    send.textContent = "Send";
    notice("You can send again.", "info");
  }, 1000);
}

// --- conversation list --------------------------------------------------------------------
async function refreshConversations() {
  try {
    state.conversations = await state.api.listConversations();
  } catch (error) {
    explain(error);
    return;
  }
  renderConversationList();
}

function renderConversationList() {
  const list = $("conversation-list");
  list.replaceChildren(
    ...state.conversations.map((conversation) => {
      const current = state.current && state.current.id === conversation.id;
      const count = conversation.turn_count;
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "conversation-link",
            "aria-current": current ? "page" : null,
            dataset: { id: conversation.id },
            onclick: () => openConversation(conversation.id),
          },
          el("span", { class: "conversation-title", text: titleOf(conversation) }),
          el("span", { class: "meta", text: `${count} ${count === 1 ? "image" : "images"}` }),
        ),
      );
    }),
  );
}

// --- thread -------------------------------------------------------------------------------
function showThread() {
  $("gallery-view").hidden = true;
  $("thread-view").hidden = false;
}

function startNewConversation() {
  stopAllFollows();
  state.current = null;
  localStorage.removeItem(CONVERSATION_STORAGE);
  showThread();
  clearBranch();
  renderThread();
  renderConversationList();
  $("composer-prompt").focus();
}

async function openConversation(id) {
  let conversation;
  try {
    conversation = await state.api.getConversation(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      localStorage.removeItem(CONVERSATION_STORAGE);
      startNewConversation();
      return;
    }
    explain(error);
    return;
  }
  stopAllFollows();
  state.current = conversation;
  localStorage.setItem(CONVERSATION_STORAGE, id);
  showThread();
  clearBranch();
  renderThread();
  renderConversationList();
  for (const turn of conversation.turns) {
    if (!TERMINAL.has(turn.job.status)) follow(turn);
  }
}

function renderThread() {
  const conversation = state.current;
  const turns = conversation ? conversation.turns : [];
  $("thread-title").textContent = conversation ? titleOf(conversation) : "New conversation";
  $("rename").hidden = !conversation;
  $("rename-form").hidden = true;
  $("empty-thread").hidden = turns.length > 0;
  $("turns").replaceChildren(...turns.map(turnView));
  updateComposerLabel();
  const last = $("turns").lastElementChild;
  if (last) last.scrollIntoView({ block: "end" });
}

function turnView(turn) {
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
    el("p", { class: "turn-status" }),
    el("div", { class: "turn-actions" }),
  );
  updateTurn(item, turn);
  return item;
}

function statusText(job) {
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

function updateTurn(item, turn, previewB64 = null) {
  const job = turn.job;
  item.dataset.status = job.status;
  const status = item.querySelector(".turn-status");
  status.textContent = statusText(job);
  status.hidden = status.textContent === "";
  status.className = `turn-status ${job.status}`;
  const img = item.querySelector("img");
  if (turn.image) {
    showFinal(img, turn.image);
  } else if (previewB64 && img.dataset.state !== "final") {
    img.src = `data:image/png;base64,${previewB64}`;
    img.dataset.state = "partial";
    img.dataset.previews = String(Number(img.dataset.previews || 0) + 1);
  }
  renderActions(item, turn);
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

function renderActions(item, turn) {
  const actions = item.querySelector(".turn-actions");
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
        onclick: () => setBranch(turn.index),
      }),
    );
  }
  actions.replaceChildren(...buttons);
}

async function copyPrompt(prompt) {
  try {
    await navigator.clipboard.writeText(prompt);
    notice("Prompt copied.", "info");
  } catch {
    notice("Could not copy: select the prompt text and copy it instead.", "error");
  }
}

// Follows a turn's job until it ends, resuming after a dropped connection. The stream
// starts with the job as it is now, so a reload or a late start misses nothing.
async function follow(turn) {
  if (state.follows.has(turn.job.id)) return;
  const controller = new AbortController();
  state.follows.set(turn.job.id, controller);
  const eventsUrl = turn.job.events_url;
  let delay = 500;
  try {
    while (!controller.signal.aborted) {
      try {
        for await (const { event, data } of state.api.events(eventsUrl, controller.signal)) {
          delay = 500;
          applyJob(turn, data, data.preview_png_b64 || null);
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
    if (state.follows.get(turn.job.id) === controller) state.follows.delete(turn.job.id);
  }
}

function applyJob(turn, job, previewB64) {
  const before = turn.job.status;
  turn.job = job;
  if (job.status === "succeeded" && job.images && job.images.length) {
    const image = job.images[0];
    turn.image = { id: image.id, url: image.url, width: image.width, height: image.height };
  }
  const item = document.getElementById(`turn-${turn.id}`);
  if (item) updateTurn(item, turn, previewB64);
  if (before !== job.status) {
    if (job.status === "succeeded") {
      announce(`Image ${turn.index} is ready.`);
      refreshConversations();
    } else if (job.status === "failed") announce(`Image ${turn.index} failed.`);
    else announce(`Image ${turn.index}: ${statusText(job)}`);
    updateComposerLabel();
  }
}

function announce(message) {
  $("announcer").textContent = message;
}

function stopAllFollows() {
  for (const controller of state.follows.values()) controller.abort();
  state.follows.clear();
}

// --- composer -----------------------------------------------------------------------------
function latestImageTurn() {
  const turns = state.current ? state.current.turns : [];
  return turns.length ? turns[turns.length - 1] : null;
}

function updateComposerLabel() {
  const label = $("composer-label");
  const fresh = $("fresh").checked;
  if (state.branchFrom != null) label.textContent = `Describe a change to image #${state.branchFrom}`;
  else if (latestImageTurn() && !fresh) label.textContent = "Describe a change to the latest image";
  else label.textContent = "Describe an image";
}

function setBranch(index) {
  state.branchFrom = index;
  $("fresh").checked = false;
  $("branch-text").textContent = `Branching from image #${index}: your next message edits it.`;
  $("branch-chip").hidden = false;
  updateComposerLabel();
  $("composer-prompt").focus();
}

function clearBranch() {
  state.branchFrom = null;
  $("branch-chip").hidden = true;
  updateComposerLabel();
}

async function send(event) {
  event.preventDefault();
  const input = $("composer-prompt");
  const prompt = input.value.trim();
  if (!prompt || $("send").disabled) return;
  const turnBody = { prompt };
  if (state.branchFrom != null) Object.assign(turnBody, { mode: "edit", from_turn: state.branchFrom });
  else if ($("fresh").checked) turnBody.mode = "new";
  $("send").disabled = true;
  let sent = false;
  try {
    if (!state.current) {
      const created = await state.api.createConversation(prompt.slice(0, 60));
      state.current = { ...created, turns: [] };
      localStorage.setItem(CONVERSATION_STORAGE, created.id);
      renderThread();
      refreshConversations();
    }
    const turn = await state.api.addTurn(state.current.id, turnBody);
    sent = true;
    clearNotice();
    input.value = "";
    $("fresh").checked = false;
    state.current.turns.push(turn);
    clearBranch();
    renderThread();
    refreshConversations();
    if (!TERMINAL.has(turn.job.status)) follow(turn);
    else applyJob(turn, turn.job, null);
  } catch (error) {
    if (explain(error)) return;
  } finally {
    if (!state.retryTimer) $("send").disabled = false;
    if (sent) input.focus();
  }
}

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
}

// --- rename -------------------------------------------------------------------------------
function startRename() {
  $("rename-input").value = state.current.title || "";
  $("rename").hidden = true;
  $("rename-form").hidden = false;
  $("rename-input").focus();
}

function endRename() {
  $("rename-form").hidden = true;
  $("rename").hidden = !state.current;
  $("rename").focus();
}

async function rename(event) {
  event.preventDefault();
  const title = $("rename-input").value.trim();
  if (!title) return;
  try {
    const updated = await state.api.renameConversation(state.current.id, title);
    state.current.title = updated.title;
    $("thread-title").textContent = titleOf(updated);
    notice("Conversation renamed.", "info");
    await refreshConversations();
  } catch (error) {
    if (explain(error)) return;
  }
  endRename();
}

// --- gallery ------------------------------------------------------------------------------
async function showGallery() {
  stopAllFollows();
  state.current = null; // the sidebar marks no conversation; the last one reopens on reload
  renderConversationList();
  $("thread-view").hidden = true;
  $("gallery-view").hidden = false;
  const grid = $("gallery-grid");
  grid.replaceChildren();
  grid.setAttribute("aria-busy", "true");
  const images = [];
  try {
    const conversations = await state.api.listConversations();
    for (const summary of conversations.slice(0, 50)) {
      if (!summary.turn_count) continue;
      const conversation = await state.api.getConversation(summary.id);
      for (const turn of conversation.turns) {
        if (turn.image) images.push({ conversation, turn });
      }
    }
  } catch (error) {
    explain(error);
  }
  images.sort((a, b) => b.turn.created_at - a.turn.created_at);
  grid.replaceChildren(
    ...images.map(({ conversation, turn }) =>
      el(
        "li",
        { class: "gallery-item" },
        el(
          "figure",
          {},
          el("img", {
            src: sameOrigin(turn.image.url),
            alt: turn.prompt,
            width: turn.image.width,
            height: turn.image.height,
            loading: "lazy",
          }),
          el("figcaption", { text: turn.prompt }),
        ),
        el("button", {
          type: "button",
          class: "link",
          text: `Open “${titleOf(conversation)}”`,
          onclick: () => openConversation(conversation.id),
        }),
      ),
    ),
  );
  grid.removeAttribute("aria-busy");
  $("gallery-empty").hidden = images.length > 0;
  $("gallery-title").focus();
}

// --- start --------------------------------------------------------------------------------
function wire() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) signIn(key);
  });
  $("sign-out").addEventListener("click", signOut);
  $("new-conversation").addEventListener("click", startNewConversation);
  $("show-gallery").addEventListener("click", showGallery);
  $("composer").addEventListener("submit", send);
  $("composer-prompt").addEventListener("keydown", onComposerKey);
  $("fresh").addEventListener("change", updateComposerLabel);
  $("branch-cancel").addEventListener("click", () => {
    clearBranch();
    $("composer-prompt").focus();
  });
  $("rename").addEventListener("click", startRename);
  $("rename-form").addEventListener("submit", rename);
  $("rename-cancel").addEventListener("click", endRename);
  $("rename-input").addEventListener("keydown", (event) => {
    if (event.key === "Escape") endRename();
  });
}

wire();
const key = keyFromFragment() || localStorage.getItem(KEY_STORAGE);
if (key) signIn(key);
else showSignIn();
