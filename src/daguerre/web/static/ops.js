// The operator page: signs in with the admin key (kept in this browser's localStorage,
// like the chat page's key), then reads GET /admin/overview and GET /admin/audit every
// few seconds and shows them. Every change goes through the same admin API, after the
// operator confirms it (ops_edit.js), and shows at the next refresh or sooner.
import { Api, ApiError } from "./api.js";
import { startEditor } from "./ops_edit.js";
import { renderAudit, renderOverview } from "./ops_view.js";
import { $, clearNotice, notice } from "./ui.js";

const KEY_STORAGE = "daguerre.admin-key";
const REFRESH_MS = 3000;
const AUDIT_ROWS = 20;

let client = null; // the Api of the signed-in admin key; null while signed out
let timer = null;

function showSignIn(message = "") {
  client = null;
  clearTimeout(timer);
  $("ops-view").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in-view").hidden = false;
  $("sign-in-error").textContent = message;
  $("refreshed").textContent = "";
  $("admin-key").focus();
}

function refusal(error) {
  if (error.status === 401) return "That key was not accepted. Check it and try again.";
  if (error.status === 403) return "That key is not an admin key: it has no 'admin' scope.";
  return error.message;
}

async function signIn(key) {
  const candidate = new Api(key);
  let overview;
  try {
    overview = await candidate.request("GET", "/admin/overview");
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      localStorage.removeItem(KEY_STORAGE);
    }
    showSignIn(refusal(error));
    return;
  }
  localStorage.setItem(KEY_STORAGE, key);
  client = candidate;
  $("sign-in-view").hidden = true;
  $("ops-view").hidden = false;
  $("sign-out").hidden = false;
  renderOverview(overview);
  await refresh();
}

// Reads both and shows them; then again in REFRESH_MS. A refused key goes back to
// sign-in; anything else (a gateway restarting) is shown and tried again.
export async function refresh() {
  clearTimeout(timer);
  if (!client) return;
  try {
    const [overview, audit] = await Promise.all([
      client.request("GET", "/admin/overview"),
      client.request("GET", `/admin/audit?limit=${AUDIT_ROWS}`),
    ]);
    renderOverview(overview);
    renderAudit(audit);
    $("refreshed").textContent =
      `Refreshed ${new Date(overview.at * 1000).toLocaleTimeString()}, every ${REFRESH_MS / 1000} s`;
    if ($("notice").dataset.kind === "warning") clearNotice();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      localStorage.removeItem(KEY_STORAGE);
      showSignIn(refusal(error));
      return;
    }
    notice(`Could not refresh: ${error.message} Trying again.`, "warning");
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("admin-key").value.trim();
    if (key) signIn(key);
  });
  $("sign-out").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    $("admin-key").value = "";
    clearNotice();
    showSignIn();
  });
  startEditor(() => client, refresh);
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) signIn(key);
  else showSignIn();
}

start();
