// Who is signed in: the API key (kept in this browser's localStorage, or taken once from
// the #key= link that `daguerre up` prints), the API client made from it, and the sign-in
// view. Other modules reach the server through api() and hand its errors to explain(),
// which puts them in plain words (and goes back to sign-in when the key is refused).
import { Api, ApiError } from "./api.js";
import { rateLimited } from "./cooldown.js";
import { $, clearNotice, notice } from "./ui.js";

const KEY_STORAGE = "daguerre.key";

let client = null; // the Api of the signed-in key; null while signed out
// What the rest of the page does when a key is accepted, and when the page signs out.
let hooks = { signedIn: async () => {}, signedOut: () => {} };

export function api() {
  return client;
}

// Wires the sign-in form and the sign-out button, then signs in with the key of the
// link or of the last visit, if there is one. ``given``: {signedIn(conversations),
// signedOut(forget)}; ``forget`` is true when the person signed out themselves.
export function start(given) {
  hooks = given;
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) signIn(key);
  });
  $("sign-out").addEventListener("click", signOut);
  const key = keyFromFragment() || localStorage.getItem(KEY_STORAGE);
  if (key) signIn(key);
  else showSignIn();
}

function keyFromFragment() {
  const match = /^#key=([^&]+)/.exec(window.location.hash);
  if (!match) return null;
  // Forget the fragment at once: it must not stay in the address bar or the history.
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  return decodeURIComponent(match[1]);
}

function showSignIn(message = "", forget = false) {
  hooks.signedOut(forget);
  client = null;
  $("app-view").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in-view").hidden = false;
  $("sign-in-error").textContent = message;
  $("api-key").focus();
}

// The key is checked by listing its conversations, which the page shows next anyway.
async function signIn(key) {
  const candidate = new Api(key);
  let conversations;
  try {
    conversations = await candidate.listConversations();
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
  client = candidate;
  $("sign-in-view").hidden = true;
  $("app-view").hidden = false;
  $("sign-out").hidden = false;
  await hooks.signedIn(conversations);
}

function signOut() {
  localStorage.removeItem(KEY_STORAGE);
  $("api-key").value = "";
  clearNotice();
  showSignIn("", true);
}

// An API error in plain words; true when it was the key (the page went back to sign-in).
export function explain(error) {
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
