// The scheduler's jobs (admins): last run, duration, result or error, next run, and "run now".
import { enc, get, post } from "../api.js";
import { empty, errorPanel, h, mount } from "../dom.js";
import { count, duration, inZone, isoTimestamp } from "../format.js";
import { jsonView } from "../json_view.js";
import { numberText } from "./sql.js";

// The API gives ISO times; every screen shows them through format.js's one date format.
export const when = isoTimestamp;

// a time inside a result ("2026-12-06T04:00:00+00:00", "...Z"): shown in the one date format
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/;

// One field of a job's result: numbers rounded with separators, `*_s` / `*_ms` as durations,
// times in the date format, flat lists joined, two levels as nested lists, a third level as one line.
function valueText(key, v, depth) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "—");
  if (typeof v === "number") {
    if (key.endsWith("_ms")) return duration(v);
    if (key.endsWith("_s")) return duration(v * 1000);
    return numberText(v);
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "string") return ISO_TIME.test(v) ? isoTimestamp(v) : v;
  if (Array.isArray(v)) {
    if (!v.length) return h("span", { class: "muted" }, "none");
    return v.every((x) => x === null || typeof x !== "object") ? v.map((x) => (typeof x === "number" ? numberText(x) : String(x))).join(", ") : jsonView(v, { open: false });
  }
  if (depth < 1) return resultList(v, depth + 1);
  // a third level reads as one wrapping line: "partitions 5 · files 5 · bytes 36,261"
  return Object.entries(v).map(([k, x]) => {
    const text = x !== null && typeof x === "object" ? JSON.stringify(x) : valueText(k, x, depth + 1);
    return `${label(k, x)} ${typeof text === "string" ? text : text.textContent}`;
  }).join(" · ");
}

// "duration_s" reads "duration": its value already says "378 ms".
const label = (k, v) => (typeof v === "number" ? k.replace(/_m?s$/, "") : k).replaceAll("_", " ");

// A job's result as a small key/value list instead of a folded "{5 keys}".
export function resultList(result, depth = 0) {
  if (result === null || typeof result !== "object" || Array.isArray(result)) return valueText("", result, depth);
  const entries = Object.entries(result);
  if (!entries.length) return h("span", { class: "muted" }, "nothing to report");
  return h("dl", { class: "kv result-kv" }, entries.flatMap(([k, v]) => [h("dt", {}, label(k, v)), h("dd", { "data-key": k }, valueText(k, v, depth))]));
}

function every(seconds) {
  if (!seconds) return "disabled";
  if (seconds % 86400 === 0) return `every ${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `every ${seconds / 3600} h`;
  if (seconds % 60 === 0) return `every ${seconds / 60} min`;
  return `every ${seconds} s`;
}

export function jobsTable(jobs, onRun) {
  return h("div", { class: "table-wrap" },
    h("table", { id: "jobs-table" },
      h("thead", {}, h("tr", {}, ["Job", "Schedule", inZone("Last run"), "Took", "Result", inZone("Next run"), ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, jobs.map((j) => h("tr", { "data-job": j.name, class: j.last_ok === false ? "row-error" : "" },
        h("td", { "data-label": "Job" }, h("strong", {}, j.name), h("div", { class: "muted" }, `${count(j.runs)} ${j.runs === 1 ? "run" : "runs"}, ${count(j.failures)} failed`)),
        h("td", { "data-label": "Schedule" }, every(j.every_s)),
        h("td", { "data-label": inZone("Last run"), "data-col": "last-run" }, j.running ? "running now…" : when(j.last_finished || j.last_started)),
        h("td", { class: "num", "data-label": "Took" }, j.last_duration_s == null ? "—" : duration(j.last_duration_s * 1000)),
        h("td", { "data-label": "Result", "data-col": "result" }, j.last_error
          ? h("div", { class: "errors-box" }, h("pre", {}, j.last_error))
          : j.last_result == null ? h("span", { class: "muted" }, j.last_ok === null ? "not run yet" : "—") : resultList(j.last_result)),
        h("td", { "data-label": inZone("Next run"), "data-col": "next-run" }, when(j.next_run)),
        h("td", { "data-label": "" }, onRun ? h("button", { type: "button", class: "btn btn-small", disabled: j.running, "aria-label": `Run ${j.name} now`,
          onclick: () => onRun(j.name) }, "Run now") : null),
      ))),
    ));
}

export async function render(root, _args, ctx) {
  const heading = h("h1", {}, "Scheduled jobs");
  if (ctx.user.role !== "admin") {
    mount(root, heading, empty("Admins only", "The scheduler's jobs are shown to admins."));
    return;
  }
  const box = h("section", {});
  const message = h("p", { role: "status", class: "muted", id: "jobs-status" });
  const load = async () => {
    const jobs = await get("/api/v1/jobs");
    if (ctx.stale()) return;
    mount(box, jobs.length ? jobsTable(jobs, run) : empty("No jobs", "This server schedules no jobs."));
    if (jobs.some((j) => j.running)) setTimeout(() => { if (!ctx.stale()) load().catch(() => {}); }, 1000);
  };
  const run = async (name) => {
    try {
      await post(`/api/v1/jobs/${enc(name)}/run`);
      message.textContent = `${name} started.`;
    } catch (err) {
      message.textContent = err.status === 409 ? `${name} is already running.` : err.message;
    }
    await load().catch((err) => mount(box, errorPanel(err)));
  };
  mount(root, heading, h("p", { class: "muted" }, "Exports, compaction, retention and alert checks run on these schedules."), message, box);
  await load();
}
