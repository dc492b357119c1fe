// The page's small DOM helpers, and its two live regions: the notice (what just happened,
// or what to do next) and the screen-reader announcer. The notice's fade timer is its own.
export const $ = (id) => document.getElementById(id);

let noticeTimer = null;

// An element with its properties, listeners ("onclick") and children in one call.
export function el(tag, props = {}, ...children) {
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

export function notice(message, kind = "info") {
  const box = $("notice");
  box.className = `notice ${kind}`;
  box.textContent = message;
  box.dataset.kind = kind;
  // Information fades after a while; warnings and errors stay until the next notice.
  clearTimeout(noticeTimer);
  if (kind === "info" && message) noticeTimer = setTimeout(clearNotice, 8000);
}

export function clearNotice() {
  notice("", "info");
}

export function announce(message) {
  $("announcer").textContent = message;
}

export function seconds(value) {
  if (value < 1) return "less than a second";
  if (value < 90) return `${Math.round(value)} s`;
  return `${Math.round(value / 60)} min`;
}

export function titleOf(conversation) {
  return conversation.title || "Untitled conversation";
}
