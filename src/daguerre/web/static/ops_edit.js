// Changing things from the operator page, in two steps: an edit dialog (the fields of a
// pool, a tier or a flag, filled with their values now), then a confirmation that lists
// exactly what changes. Only "Apply" there calls the admin API, which records the change
// in the audit log. A refused change (a 400 that says what to fix) stays on screen.
import { $, el, notice } from "./ui.js";

let client = () => null; // the signed-in Api
let applied = async () => {}; // refreshes the page after a change
let planned = null; // {describe: [text], calls: [{method, path, body}]} awaiting "Apply"
let current = null; // the editor open now: {fields, plan(values)}

export function startEditor(getClient, onApplied) {
  client = getClient;
  applied = onApplied;
  $("edit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    review();
  });
  $("edit-cancel").addEventListener("click", () => $("edit-dialog").close());
  $("confirm-cancel").addEventListener("click", () => $("confirm-dialog").close());
  $("confirm-apply").addEventListener("click", apply);
}

function field(spec) {
  const id = `edit-${spec.name}`;
  let input;
  if (spec.options) {
    input = el("select", { id, name: spec.name }, ...spec.options.map((o) => el("option", { value: o, selected: o === spec.value }, o)));
  } else if (spec.type === "checkbox") {
    input = el("input", { id, name: spec.name, type: "checkbox", checked: spec.value });
    return el("label", { class: "check", for: id }, input, spec.label);
  } else {
    const value = spec.value == null ? "" : String(spec.value);
    input = el("input", { id, name: spec.name, type: "text", value, autocomplete: "off", spellcheck: "false" });
  }
  return el("label", { for: id }, spec.label, input, spec.hint ? el("span", { class: "hint", text: spec.hint }) : null);
}

function open(title, fields, plan) {
  current = { fields, plan };
  $("edit-title").textContent = title;
  $("edit-fields").replaceChildren(...fields.map(field));
  $("edit-error").textContent = "";
  $("edit-dialog").showModal();
}

function values() {
  const out = {};
  for (const spec of current.fields) {
    const input = $(`edit-${spec.name}`);
    out[spec.name] = spec.type === "checkbox" ? input.checked : input.value.trim();
  }
  return out;
}

function review() {
  let plan;
  try {
    plan = current.plan(values());
  } catch (error) {
    $("edit-error").textContent = error.message;
    return;
  }
  if (!plan.calls.length) {
    $("edit-error").textContent = "Nothing changed: edit a value first, or cancel.";
    return;
  }
  planned = plan;
  $("edit-dialog").close();
  $("confirm-what").replaceChildren(...plan.describe.map((line) => el("li", { text: line })));
  $("confirm-error").textContent = "";
  $("confirm-apply").disabled = false;
  $("confirm-dialog").showModal();
}

async function apply() {
  const plan = planned;
  if (!plan) return;
  $("confirm-apply").disabled = true;
  try {
    for (const call of plan.calls) await client().request(call.method, call.path, call.body);
  } catch (error) {
    $("confirm-error").textContent = `Not applied: ${error.message}`;
    $("confirm-apply").disabled = false;
    return;
  }
  planned = null;
  $("confirm-dialog").close();
  notice(`Applied: ${plan.describe.join("; ")}.`);
  await applied();
}

// What to send for the fields that changed, and a line for each.
function diff(subject, fields, given, parse = {}) {
  const body = {};
  const describe = [];
  for (const spec of fields) {
    const value = parse[spec.name] ? parse[spec.name](given[spec.name]) : given[spec.name];
    if (value === spec.value) continue;
    body[spec.name] = value;
    describe.push(`${subject}: ${spec.label.toLowerCase()} ${shown(spec.value)} → ${shown(value)}`);
  }
  return { body, describe };
}

function shown(value) {
  return value === "" ? "(none)" : value;
}

function number(label, min, max) {
  return (text) => {
    const value = Number(text);
    if (text === "" || !Number.isFinite(value) || value < min || value > max) {
      throw new Error(`${label} must be a number from ${min} to ${max}.`);
    }
    return value;
  };
}

function sharesText(shares) {
  return Object.entries(shares || {}).map(([tier, share]) => `${tier}=${share}`).join(", ");
}

function parseShares(text) {
  const shares = {};
  const share = number("A tier's percent", 0, 100);
  for (const item of text.split(",").map((t) => t.trim()).filter(Boolean)) {
    const [tier, value, extra] = item.split("=").map((t) => t.trim());
    if (!tier || value === undefined || extra !== undefined) {
      throw new Error(`"${item}": write tier=percent, e.g. free=10.`);
    }
    shares[tier] = share(value);
  }
  return shares;
}

export function editTier(tier) {
  const fields = [
    { name: "requests", label: "Requests", value: tier.requests, hint: "Per account, e.g. 10/minute." },
    { name: "images", label: "Images", value: tier.images, hint: "Per account, e.g. 20/minute." },
    { name: "wait_budget_s", label: "Wait budget (s)", value: tier.wait_budget_s },
    { name: "over_budget", label: "Over budget", value: tier.over_budget, options: ["defer", "reject"] },
  ];
  open(`Tier ${tier.name}`, fields, (given) => {
    const parse = { wait_budget_s: number("The wait budget", 0, 86400) };
    const { body, describe } = diff(`Tier ${tier.name}`, fields, given, parse);
    const path = `/admin/tiers/${encodeURIComponent(tier.name)}`;
    return { describe, calls: describe.length ? [{ method: "PATCH", path, body }] : [] };
  });
}

export function editFlag(flag) {
  const fields = [
    { name: "enabled", label: "Enabled", value: flag.enabled, type: "checkbox" },
    { name: "percent", label: "Rollout percent", value: flag.percent, hint: "0 to 100: the share of the tiers' accounts." },
    { name: "tiers", label: "Tiers", value: flag.tiers.join(", "), hint: "Comma-separated." },
    {
      name: "tier_percent",
      label: "Per-tier percent",
      value: sharesText(flag.tier_percent),
      hint: "In place of the rollout percent for the tiers named, e.g. free=10 (empty: none).",
    },
  ];
  open(`Flag ${flag.name}`, fields, (given) => {
    const parse = { percent: number("The rollout percent", 0, 100) };
    const { body, describe } = diff(`Flag ${flag.name}`, fields, given, parse);
    if ("tiers" in body) body.tiers = body.tiers.split(",").map((t) => t.trim()).filter(Boolean);
    if ("tier_percent" in body) body.tier_percent = parseShares(body.tier_percent);
    const path = `/admin/features/${encodeURIComponent(flag.name)}`;
    return { describe, calls: describe.length ? [{ method: "PATCH", path, body }] : [] };
  });
}

export function editPool(pool) {
  const fields = [
    { name: "mode", label: "Degraded mode", value: pool.degraded_mode, options: ["auto", "on", "off"] },
    { name: "pace", label: "Admission pace", value: pool.admit_pace, hint: "Times the throughput; 0: no pace." },
  ];
  open(`Pool ${pool.pool}`, fields, (given) => {
    const parse = { pace: number("The pace", 0, 1000) };
    const { body, describe } = diff(`Pool ${pool.pool}`, fields, given, parse);
    const base = `/admin/pools/${encodeURIComponent(pool.pool)}`;
    const calls = [];
    if ("mode" in body) calls.push({ method: "PUT", path: `${base}/degraded`, body: { mode: body.mode } });
    if ("pace" in body) calls.push({ method: "PUT", path: `${base}/pace`, body: { pace: body.pace } });
    return { describe, calls };
  });
}
