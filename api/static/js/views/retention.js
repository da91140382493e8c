// Retention of a flow: the policy in force, a dry run of what it would remove (with the
// stored or an edited policy), and for admins the scheduler's jobs and the recent passes.
import { del, enc, get, post, put } from "../api.js";
import { confirmAction, empty, errorPanel, h, mount } from "../dom.js";
import { clearFieldErrors, showFieldErrors } from "../field_errors.js";
import { count, inZone, isoTimestamp, shortId } from "../format.js";
import { flowHeader, loadFlow, mayWrite } from "./flow_header.js";
import { jobsTable } from "./jobs.js";

// A pass deletes success runs by max_age_days, and error and aborted runs by failed_max_age_days,
// or by max_age_days when that is empty: the labels say so.
const FIELDS = [
  ["max_age_days", "Delete runs older than (days): successful runs, and failed/aborted runs too when the next field is empty"],
  ["failed_max_age_days", "Delete failed (error) and aborted runs older than (days; empty = as above)"],
  ["keep_last", "Keep at most the newest (runs)"],
  ["payload_ttl_days", "Drop payloads older than (days)"],
];

// A field's text as the policy's value: "" is no limit (null); anything that is not a number
// is refused next to the field, never sent (Number("thirty") is NaN, which JSON turns into
// null: "keep everything"). Days may be fractional (0.5) and take a decimal comma; keep_last
// is a count. Negative values go to the API, which says why they are refused.
const DAYS = /^-?\d+(?:[.,]\d+)?$/;
const WHOLE = /^-?\d+$/;
function fieldValue(key, text) {
  const v = text.trim();
  if (v === "") return { value: null };
  if (key === "keep_last") return WHOLE.test(v) ? { value: Number(v) } : { problem: "enter a whole number" };
  return DAYS.test(v) ? { value: Number(v.replace(",", ".")) } : { problem: "enter a number of days, like 30" };
}

const LIMITS = FIELDS.map(([k]) => k);
const noLimits = (body) => LIMITS.every((k) => body[k] === null);

function describe(p) {
  const parts = [];
  if (p.max_age_days != null) {
    parts.push(p.failed_max_age_days != null
      ? `successful runs kept ${p.max_age_days} days`
      : `every run (successful, failed and aborted) kept ${p.max_age_days} days`);
  }
  if (p.failed_max_age_days != null) parts.push(`failed (error) and aborted runs kept ${p.failed_max_age_days} days`);
  if (p.keep_last != null) parts.push(`at most the newest ${count(p.keep_last)} runs`);
  if (p.payload_ttl_days != null) parts.push(`payloads dropped after ${p.payload_ttl_days} days`);
  if (!parts.length) return "No limits: every run is kept.";
  return `${parts.join("; ")}${p.archive ? " (archived to Parquet before removal)" : ""}.`;
}

// What the fields hold, when that is not this flow's own policy: empty fields would otherwise
// read as "no limits" where the hidden global policy applies.
function fieldsNote(own, global) {
  if (!own.inherited) return null;
  return h("p", { class: "notice", id: "policy-fields-note" }, global
    ? "The fields below show the global policy. Saving makes them this flow's own policy, which no longer follows the global one."
    : "The fields below are empty because the global policy is not shown to you: they are not the policy in force. "
      + "Saving gives this flow its own policy, which no longer follows the global one.");
}

export async function render(root, [flowId], ctx) {
  const base = `/api/v1/flows/${enc(flowId)}/retention`;
  const admin = ctx.user.role === "admin";
  const [flow, own, global, canWrite] = await Promise.all([
    loadFlow(flowId),
    get(`${base}/policy`),
    admin ? get("/api/v1/retention/policy").catch(() => null) : Promise.resolve(null),
    mayWrite(flowId),
  ]);
  if (ctx.stale()) return;
  const inForce = own.inherited && global ? global : own;
  const reload = () => ctx.navigate(location.hash);
  const planBox = h("section", { id: "dry-run", "aria-live": "polite" });
  const status = h("p", { role: "status", class: "muted", id: "retention-status" });

  const inputs = Object.fromEntries(FIELDS.map(([k]) => [k, h("input", {
    id: `p-${k}`, name: k, inputmode: "decimal", value: inForce[k] ?? "", "aria-describedby": `p-${k}-error`,
  })]));
  const archive = h("input", { type: "checkbox", id: "p-archive", checked: inForce.archive !== false });
  // The edited policy, or null when a field is refused (its message is shown next to it).
  const policyBody = () => {
    clearErrors();
    const body = { archive: archive.checked };
    let ok = true;
    for (const [k] of FIELDS) {
      const { value, problem } = fieldValue(k, inputs[k].value);
      if (problem) {
        root.querySelector(`#p-${k}-error`).textContent = problem;
        ok = false;
      }
      body[k] = value ?? null;
    }
    if (!ok) status.textContent = "Nothing was sent: correct the marked fields.";
    return ok ? body : null;
  };
  const showErrors = (err) => {
    if (!showFieldErrors(root, err, "p-")) status.textContent = err.message;
  };
  const clearErrors = () => { clearFieldErrors(root); status.textContent = ""; };

  const dryRun = async (policy) => {
    mount(planBox, h("p", { class: "loading" }, "Planning…"));
    try {
      const plan = await post(`${base}/dry-run`, policy ? { policy, ids_limit: 50 } : { ids_limit: 50 });
      const mine = plan.flows.find((f) => f.flow_id === flowId) || { delete: 0, trim: 0, delete_ids: [], trim_ids: [] };
      mount(planBox, h("div", { class: "panel", "data-delete": String(mine.delete), "data-trim": String(mine.trim) },
        h("h3", { style: "margin-top:0" }, policy ? "Dry run with the values above" : "Dry run with the policy in force"),
        h("p", { id: "dry-run-summary" }, `Would delete ${count(mine.delete)} run${mine.delete === 1 ? "" : "s"} and drop the payloads of ${count(mine.trim)}. Nothing was changed.`),
        mine.delete ? h("ul", { id: "dry-run-by-status" }, ["success", "error", "aborted"].map((st) => h("li", { "data-status": st },
          `${count((mine.delete_by_status || {})[st] || 0)} ${st === "success" ? "successful" : st === "error" ? "failed (error)" : "aborted"}`))) : null,
        mine.delete_ids.length ? h("p", {}, "To delete: ", mine.delete_ids.slice(0, 20).flatMap((id, i) => [i ? ", " : "",
          h("a", { href: `#/flows/${enc(flowId)}/runs/${enc(id)}` }, shortId(id))]), mine.delete > 20 ? " …" : "") : null));
    } catch (err) {
      mount(planBox);
      showErrors(err);
    }
  };

  const form = h("form", { class: "panel", id: "policy-form", novalidate: true, "aria-labelledby": "policy-title" },
    h("h2", { id: "policy-title", style: "margin-top:0" }, "Policy"),
    h("p", { id: "policy-in-force" }, own.inherited ? h("strong", {}, "Follows the global policy: ") : h("strong", {}, "This flow's own policy: "),
      own.inherited && !global ? "only admins can see the global policy." : describe(inForce)),
    fieldsNote(own, global),
    h("div", { class: "form-row" }, FIELDS.map(([k, label]) => h("div", { class: "field" },
      h("label", { for: `p-${k}` }, label), inputs[k], h("div", { class: "field-error", id: `p-${k}-error`, role: "alert" })))),
    h("label", { style: "font-weight:400;display:inline-flex;gap:.4rem;margin:.5rem 0" }, archive, "Archive removed runs to Parquet first"),
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "btn", id: "dry-run-stored", onclick: () => { clearErrors(); dryRun(null); } }, "Dry run (policy in force)"),
      h("button", { type: "button", class: "btn", id: "dry-run-edited", onclick: () => { const body = policyBody(); if (body) dryRun(body); } }, "Dry run these values"),
      h("button", { type: "submit", class: "btn btn-primary" }, "Save as this flow's policy"),
      own.inherited ? null : h("button", { type: "button", class: "btn", onclick: async () => { await del(`${base}/policy`); reload(); } }, "Use the global policy")),
    status);
  if (!canWrite) { // a reader sees the policy; its dry run and saving could only answer 403
    for (const field of form.querySelectorAll("input, button")) field.disabled = true;
    status.textContent = "You may read this flow, not change it: its writers set and try its retention policy.";
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = policyBody();
    if (!body) return;
    // Every limit empty is a policy too: "keep everything", which exempts the flow from the
    // global one. Only on purpose.
    if (noLimits(body) && !(await confirmAction("Keep every run of this flow?",
      "Every limit is empty: this flow will keep every run, forever, and no longer follow the global policy. "
      + (own.inherited ? "Cancel to keep following the global policy." : "Cancel, then “Use the global policy”, to follow it instead."),
      "Keep every run"))) {
      status.textContent = "Not saved.";
      return;
    }
    try {
      await put(`${base}/policy`, body);
      reload();
    } catch (err) {
      showErrors(err);
    }
  });

  const jobsBox = h("section", { id: "retention-jobs" });
  mount(root, ...flowHeader(flow, "retention"), form, planBox, jobsBox);
  if (!admin) return;
  try {
    const [jobs, passes] = await Promise.all([get("/api/v1/jobs"), get("/api/v1/retention/runs?limit=10")]);
    if (ctx.stale()) return;
    mount(jobsBox,
      h("h2", {}, "Scheduled jobs"), jobs.length ? jobsTable(jobs, null) : empty("No jobs", "This server schedules no jobs."),
      h("h2", {}, "Recent passes"),
      passes.length
        ? h("div", { class: "table-wrap" }, h("table", { id: "passes-table" },
          h("thead", {}, h("tr", {}, [inZone("When"), "Kind", "Trigger", "Result"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, passes.map((p) => h("tr", { class: p.ok ? "" : "row-error" },
            h("td", { "data-started": p.started_at }, isoTimestamp(p.started_at)), h("td", {}, p.kind), h("td", {}, p.trigger),
            h("td", { class: "mono", style: "overflow-wrap:anywhere" }, p.ok ? JSON.stringify(p.summary) : p.error))))))
        : empty("No passes yet", "Retention passes, compactions and restores appear here."));
  } catch (err) {
    if (!ctx.stale()) mount(jobsBox, errorPanel(err));
  }
}
