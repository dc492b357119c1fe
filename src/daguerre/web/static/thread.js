// The open conversation: its turns as they render, the composer that adds one (a new
// picture, a follow-up that edits the latest image, or a branch from an earlier one), and
// its rename. This module owns the open conversation and the pending branch.
import { ApiError } from "./api.js";
import { cooling } from "./cooldown.js";
import { follow, isTerminal, stopAll } from "./follow.js";
import { api, explain } from "./session.js";
import * as sidebar from "./sidebar.js";
import { statusText, turnView, updateTurn } from "./turn.js";
import { $, announce, clearNotice, notice, titleOf } from "./ui.js";

const CONVERSATION_STORAGE = "daguerre.conversation";

let current = null; // the open conversation, with its turns; null for a new one
let branchFrom = null; // the turn number a branch edits, or null

// Wires the composer and the rename form.
export function init() {
  sidebar.onOpen(openConversation);
  $("new-conversation").addEventListener("click", startNewConversation);
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

// Signed in: reopen the conversation of the last visit, else start a new one.
export async function resume(conversations) {
  sidebar.set(conversations);
  const last = localStorage.getItem(CONVERSATION_STORAGE);
  const open = conversations.find((c) => c.id === last);
  if (open) await openConversation(open.id);
  else startNewConversation();
}

// Signing out stops every stream; signing out on purpose also forgets the conversation.
export function close(forget) {
  if (forget) localStorage.removeItem(CONVERSATION_STORAGE);
  stopAll();
}

// Another view takes the page (the gallery): nothing is open, the last one reopens on reload.
export function leave() {
  stopAll();
  current = null;
  sidebar.mark(null);
  $("thread-view").hidden = true;
}

function showThread() {
  $("gallery-view").hidden = true;
  $("thread-view").hidden = false;
}

function startNewConversation() {
  stopAll();
  current = null;
  localStorage.removeItem(CONVERSATION_STORAGE);
  showThread();
  clearBranch();
  renderThread();
  sidebar.mark(null);
  $("composer-prompt").focus();
}

export async function openConversation(id) {
  let conversation;
  try {
    conversation = await api().getConversation(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      localStorage.removeItem(CONVERSATION_STORAGE);
      startNewConversation();
      return;
    }
    explain(error);
    return;
  }
  stopAll();
  current = conversation;
  localStorage.setItem(CONVERSATION_STORAGE, id);
  showThread();
  clearBranch();
  renderThread();
  sidebar.mark(id);
  for (const turn of conversation.turns) {
    if (!isTerminal(turn.job.status)) followTurn(turn);
  }
}

function renderThread() {
  const turns = current ? current.turns : [];
  $("thread-title").textContent = current ? titleOf(current) : "New conversation";
  $("rename").hidden = !current;
  $("rename-form").hidden = true;
  $("empty-thread").hidden = turns.length > 0;
  $("turns").replaceChildren(...turns.map((turn) => turnView(turn, setBranch)));
  updateComposerLabel();
  const last = $("turns").lastElementChild;
  if (last) last.scrollIntoView({ block: "end" });
}

function followTurn(turn) {
  follow(turn.job, (job, previewB64) => applyJob(turn, job, previewB64));
}

function applyJob(turn, job, previewB64) {
  const before = turn.job.status;
  turn.job = job;
  if (job.status === "succeeded" && job.images && job.images.length) {
    const image = job.images[0];
    turn.image = {
      id: image.id,
      url: image.url,
      width: image.width,
      height: image.height,
      revised_prompt: image.revised_prompt,
    };
  }
  const item = document.getElementById(`turn-${turn.id}`);
  if (item) updateTurn(item, turn, previewB64, setBranch);
  if (before !== job.status) {
    if (job.status === "succeeded") {
      announce(`Image ${turn.index} is ready.`);
      sidebar.refresh();
    } else if (job.status === "failed") announce(`Image ${turn.index} failed.`);
    else announce(`Image ${turn.index}: ${statusText(job)}`);
    updateComposerLabel();
  }
}

// --- composer -----------------------------------------------------------------------------
function latestImageTurn() {
  const turns = current ? current.turns : [];
  return turns.length ? turns[turns.length - 1] : null;
}

function updateComposerLabel() {
  const label = $("composer-label");
  const fresh = $("fresh").checked;
  if (branchFrom != null) label.textContent = `Describe a change to image #${branchFrom}`;
  else if (latestImageTurn() && !fresh) label.textContent = "Describe a change to the latest image";
  else label.textContent = "Describe an image";
}

function setBranch(index) {
  branchFrom = index;
  $("fresh").checked = false;
  $("branch-text").textContent = `Branching from image #${index}: your next message edits it.`;
  $("branch-chip").hidden = false;
  updateComposerLabel();
  $("composer-prompt").focus();
}

function clearBranch() {
  branchFrom = null;
  $("branch-chip").hidden = true;
  updateComposerLabel();
}

async function send(event) {
  event.preventDefault();
  const input = $("composer-prompt");
  const prompt = input.value.trim();
  if (!prompt || $("send").disabled) return;
  const turnBody = { prompt };
  if (branchFrom != null) Object.assign(turnBody, { mode: "edit", from_turn: branchFrom });
  else if ($("fresh").checked) turnBody.mode = "new";
  $("send").disabled = true;
  let sent = false;
  try {
    if (!current) await createConversation(prompt);
    const turn = await api().addTurn(current.id, turnBody);
    sent = true;
    clearNotice();
    input.value = "";
    $("fresh").checked = false;
    current.turns.push(turn);
    clearBranch();
    renderThread();
    sidebar.refresh();
    if (!isTerminal(turn.job.status)) followTurn(turn);
    else applyJob(turn, turn.job, null);
  } catch (error) {
    if (explain(error)) return;
  } finally {
    if (!cooling()) $("send").disabled = false;
    if (sent) input.focus();
  }
}

// The first message of a new conversation makes it, titled with the message's start.
async function createConversation(prompt) {
  const created = await api().createConversation(prompt.slice(0, 60));
  current = { ...created, turns: [] };
  localStorage.setItem(CONVERSATION_STORAGE, created.id);
  renderThread();
  sidebar.mark(created.id);
  sidebar.refresh();
}

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
}

// --- rename -------------------------------------------------------------------------------
function startRename() {
  $("rename-input").value = current.title || "";
  $("rename").hidden = true;
  $("rename-form").hidden = false;
  $("rename-input").focus();
}

function endRename() {
  $("rename-form").hidden = true;
  $("rename").hidden = !current;
  $("rename").focus();
}

async function rename(event) {
  event.preventDefault();
  const title = $("rename-input").value.trim();
  if (!title) return;
  try {
    const updated = await api().renameConversation(current.id, title);
    current.title = updated.title;
    $("thread-title").textContent = titleOf(updated);
    notice("Conversation renamed.", "info");
    await sidebar.refresh();
  } catch (error) {
    if (explain(error)) return;
  }
  endRename();
}
