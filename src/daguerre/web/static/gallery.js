// The gallery: every image of the account, newest first, a page at a time from
// GET /v1/images (one request a page, however many conversations and jobs made them).
// An image a conversation made leads back to it. This module owns the paging cursor.
import { sameOrigin } from "./api.js";
import { api, explain } from "./session.js";
import * as sidebar from "./sidebar.js";
import { leave, openConversation } from "./thread.js";
import { $, el, titleOf } from "./ui.js";

const PAGE_SIZE = 50;

let after = null; // the last image shown, while the server has more
let showing = 0; // counts gallery openings, so a slow page from an earlier one is dropped

export function init() {
  $("show-gallery").addEventListener("click", show);
  $("gallery-more").addEventListener("click", () => loadPage(showing));
}

async function show() {
  leave();
  $("gallery-view").hidden = false;
  $("gallery-grid").replaceChildren();
  $("gallery-empty").hidden = true;
  after = null;
  showing += 1;
  await loadPage(showing);
  $("gallery-empty").hidden = $("gallery-grid").children.length > 0;
  $("gallery-title").focus();
}

async function loadPage(opening) {
  const grid = $("gallery-grid");
  const more = $("gallery-more");
  grid.setAttribute("aria-busy", "true");
  more.hidden = true;
  let page = { data: [], has_more: false, last_id: null };
  try {
    page = await api().listImages(PAGE_SIZE, after);
    // A conversation made since the sidebar last listed them (in another tab): list again.
    if (page.data.some((image) => image.conversation_id && !sidebar.find(image.conversation_id))) {
      await sidebar.refresh();
    }
  } catch (error) {
    explain(error);
  }
  if (opening !== showing) return; // the gallery was opened again meanwhile
  grid.append(...page.data.map(galleryItem));
  grid.removeAttribute("aria-busy");
  after = page.has_more ? page.last_id : null;
  more.hidden = after === null;
}

function galleryItem(image) {
  const caption = image.prompt || "";
  const conversation = image.conversation_id ? sidebar.find(image.conversation_id) : null;
  return el(
    "li",
    { class: "gallery-item", dataset: { id: image.id } },
    el(
      "figure",
      {},
      el("img", {
        src: sameOrigin(image.url),
        alt: caption || "An image made through the API",
        width: image.width,
        height: image.height,
        loading: "lazy",
        // What the model understood the prompt as, on hover (the caption is the prompt).
        title: image.revised_prompt ? `Understood as: ${image.revised_prompt}` : null,
      }),
      el("figcaption", { text: caption }),
    ),
    conversation
      ? el("button", {
          type: "button",
          class: "link",
          text: `Open “${titleOf(conversation)}”`,
          onclick: () => openConversation(conversation.id),
        })
      : null,
  );
}
