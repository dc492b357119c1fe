// The sidebar: the account's conversations, newest first, with the open one marked. This
// module owns the list; the gallery reads titles from it rather than asking again.
import { api, explain } from "./session.js";
import { $, el, titleOf } from "./ui.js";

let conversations = [];
let currentId = null; // the conversation marked as open; null for none
let open = () => {}; // what clicking a conversation does (the thread opens it)

export function onOpen(handler) {
  open = handler;
}

// The list as the server gave it (at sign-in); shown at the next mark().
export function set(list) {
  conversations = list;
}

export function find(id) {
  return conversations.find((c) => c.id === id) || null;
}

// Marks the open conversation (null: none) and shows the list.
export function mark(id) {
  currentId = id;
  render();
}

export async function refresh() {
  try {
    conversations = await api().listConversations();
  } catch (error) {
    explain(error);
    return;
  }
  render();
}

function render() {
  $("conversation-list").replaceChildren(...conversations.map(entry));
}

function entry(conversation) {
  const count = conversation.turn_count;
  return el(
    "li",
    {},
    el(
      "button",
      {
        type: "button",
        class: "conversation-link",
        "aria-current": conversation.id === currentId ? "page" : null,
        dataset: { id: conversation.id },
        onclick: () => open(conversation.id),
      },
      el("span", { class: "conversation-title", text: titleOf(conversation) }),
      el("span", { class: "meta", text: `${count} ${count === 1 ? "image" : "images"}` }),
    ),
  );
}
