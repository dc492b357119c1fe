// The operator page's tables, drawn from GET /admin/overview and GET /admin/audit. A
// table is drawn again only when what it shows changed, so a refresh does not move the
// button under the operator's pointer.
import { editFlag, editPool, editTier } from "./ops_edit.js";
import { recentCounts } from "./ops_recent.js";
import { $, el } from "./ui.js";

const drawn = {}; // table id -> the JSON it was last drawn from

function draw(tableId, data, row) {
  const signature = JSON.stringify(data);
  if (drawn[tableId] === signature) return;
  drawn[tableId] = signature;
  $(tableId).querySelector("tbody").replaceChildren(...data.map(row));
}

const cell = (text, numeric = false) => el("td", { class: numeric ? "num" : null, text });
const changeButton = (label, onclick) =>
  el("td", {}, el("button", { type: "button", class: "secondary", "aria-label": label, onclick }, "Change"));
const overridden = (on) => (on ? el("span", { class: "badge override", text: "override" }) : null);

function backlog(pool) {
  const keys = Object.keys(pool.backlog_by_priority).sort();
  const parts = keys.map((key) => `P${key}: ${pool.backlog_by_priority[key]}`);
  return `${pool.backlog} waiting${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

function occupancy(pool) {
  if (pool.batch_occupancy == null) return el("td", { text: "no live worker" });
  const percent = Math.round(pool.batch_occupancy * 100);
  const meter = el("progress", { class: "meter", max: "100", value: String(percent) });
  const text = `${percent}% (${pool.batch_running}/${pool.batch_images}, ${pool.workers} worker${pool.workers === 1 ? "" : "s"})`;
  return el("td", {}, meter, text);
}

function degraded(pool) {
  const state = el("span", { class: `badge ${pool.degraded ? "on" : ""}`, text: pool.degraded ? "degraded" : "normal" });
  return el("td", {}, state, ` ${pool.degraded_mode}`);
}

function poolRow(pool) {
  const rate = pool.throughput_per_s == null ? "–" : `${pool.throughput_per_s}/s`;
  return el(
    "tr",
    { dataset: { pool: pool.pool } },
    el("th", { scope: "row", text: pool.pool }),
    cell(backlog(pool)),
    cell(String(pool.running), true),
    cell(rate, true),
    occupancy(pool),
    degraded(pool),
    cell(pool.admit_pace ? `${pool.admit_pace}× throughput` : "none"),
    changeButton(`Change pool ${pool.pool}`, () => editPool(pool)),
  );
}

function tierRow(tier) {
  const refused = Object.entries(tier.refused_429_recent).filter(([, n]) => n > 0);
  const total = refused.reduce((sum, [, n]) => sum + n, 0);
  const why = refused.map(([reason, n]) => `${reason}: ${n}`).join(", ");
  return el(
    "tr",
    { dataset: { tier: tier.name } },
    el("th", { scope: "row" }, tier.name, " ", overridden(tier.overridden)),
    cell(String(tier.priority), true),
    el("td", { class: "num", "data-field": "requests", text: tier.requests }),
    cell(tier.images, true),
    cell(`${tier.wait_budget_s} s`, true),
    cell(tier.over_budget),
    el("td", { class: "num", "data-field": "refused", title: why || null, text: String(total) }),
    cell(`${tier.deferred_recent} recent, ${tier.deferred_waiting} waiting`),
    changeButton(`Change tier ${tier.name}`, () => editTier(tier)),
  );
}

// "100%", or with tiers of their own share: "100% (free 10%)".
function rollout(flag) {
  const own = Object.entries(flag.tier_percent || {}).map(([tier, share]) => `${tier} ${share}%`);
  return own.length ? `${flag.percent}% (${own.join(", ")})` : `${flag.percent}%`;
}

function flagRow(flag) {
  const state = el("span", { class: `badge ${flag.enabled ? "" : "off"}`, text: flag.enabled ? "on" : "off" });
  return el(
    "tr",
    { dataset: { flag: flag.name } },
    el("th", { scope: "row" }, flag.name, " ", overridden(flag.overridden)),
    el("td", {}, state),
    cell(flag.tiers.join(", ")),
    el("td", { class: "num", "data-field": "percent", text: rollout(flag) }),
    changeButton(`Change flag ${flag.name}`, () => editFlag(flag)),
  );
}

// The 429s per tier over the last minute, from this gateway's running totals.
function withRecentRefusals(overview) {
  const totals = {};
  for (const tier of overview.tiers) {
    for (const [reason, n] of Object.entries(tier.refused_429)) totals[`${tier.name}\n${reason}`] = n;
  }
  const { recent, sinceMs } = recentCounts(overview.at, totals);
  const tiers = overview.tiers.map((tier) => {
    const mine = {};
    for (const reason of Object.keys(tier.refused_429)) mine[reason] = recent[`${tier.name}\n${reason}`];
    return { ...tier, refused_429_recent: mine };
  });
  return { tiers, sinceS: Math.round(sinceMs / 1000) };
}

export function renderOverview(overview) {
  draw("pools-table", overview.pools, poolRow);
  const { tiers, sinceS } = withRecentRefusals(overview);
  draw("tiers-table", tiers, tierRow);
  draw("flags-table", overview.features, flagRow);
  const window = sinceS < 60 ? `the last ${sinceS} s (since this page opened)` : "the last minute";
  $("tiers-note").textContent =
    `429s: answered by ${overview.refusals_counted_by} in ${window}. Deferred: jobs deferred in ` +
    `the last ${Math.round(overview.deferrals_window_s / 60)} minutes, and waiting now (every gateway).`;
}

function auditRow(entry) {
  const when = new Date(entry.created_at * 1000).toLocaleString();
  const change = entry.change == null ? "(reset to the configuration)" : JSON.stringify(entry.change);
  return el(
    "tr",
    { dataset: { id: entry.id } },
    cell(when),
    cell(entry.actor),
    cell(entry.action),
    el("td", { class: "change", text: change }),
  );
}

export function renderAudit(entries) {
  draw("audit-table", entries, auditRow);
  $("audit-empty").hidden = entries.length > 0;
}
