// The scheduler's jobs (admins): last run, duration, result or error, next run, and "run now".
import { enc, get, post } from "../api.js";
import { empty, errorPanel, h, mount } from "../dom.js";
import { count, duration } from "../format.js";
import { jsonView } from "../json_view.js";

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

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
      h("thead", {}, h("tr", {}, ["Job", "Schedule", "Last run", "Took", "Result", "Next run", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, jobs.map((j) => h("tr", { "data-job": j.name, class: j.last_ok === false ? "row-error" : "" },
        h("td", {}, h("strong", {}, j.name), h("div", { class: "muted" }, `${count(j.runs)} runs, ${count(j.failures)} failed`)),
        h("td", {}, every(j.every_s)),
        h("td", {}, j.running ? "running now…" : when(j.last_finished || j.last_started)),
        h("td", { class: "num" }, j.last_duration_s == null ? "—" : duration(j.last_duration_s * 1000)),
        h("td", {}, j.last_error
          ? h("div", { class: "errors-box" }, h("pre", {}, j.last_error))
          : j.last_result == null ? h("span", { class: "muted" }, j.last_ok === null ? "not run yet" : "—") : jsonView(j.last_result, { open: false })),
        h("td", {}, when(j.next_run)),
        h("td", {}, onRun ? h("button", { type: "button", class: "btn btn-small", disabled: j.running, "aria-label": `Run ${j.name} now`,
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
