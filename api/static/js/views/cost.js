// Spend across the flows the user may read: over time, and by flow, model, node and user (each
// table one /api/v1/cost call), with
// cost per successful run and the money burned by failed (status error) and aborted runs apart.
import { get, post, query } from "../api.js";
import { lineChart } from "../charts.js";
import { empty, errorPanel, h, loading, mount } from "../dom.js";
import { count, money } from "../format.js";

const RANGES = { "7d": [7, "7 days"], "30d": [30, "30 days"], "90d": [90, "90 days"] };
const GROUPS = [["flow", "By flow"], ["model", "By model"], ["node", "By node"], ["user", "By user"]];

export async function render(root, _args, ctx) {
  const range = RANGES[ctx.params.get("range")] ? ctx.params.get("range") : "30d";
  const [days, label] = RANGES[range];
  // whole UTC days, so the chart has exactly `days` points
  const end = new Date(Math.ceil(Date.now() / 86400_000) * 86400_000);
  const start = new Date(end.getTime() - days * 86400_000);
  const span = { start: start.toISOString(), end: end.toISOString() };
  const flows = await get("/api/v1/flows/accessible");
  if (ctx.stale()) return;
  const names = new Map(flows.map((f) => [f.id, f.name]));
  const sections = Object.fromEntries([...GROUPS.map(([g]) => g), "time"].map((g) => [g, h("div", { id: `cost-${g}` }, loading())]));
  mount(root,
    h("h1", {}, "Cost"),
    h("p", { class: "muted" }, `Spend over the last ${label} (whole UTC days) in the flows you may read. `
      + "“Failed” means runs with status error; aborted runs are counted apart. "
      + "Costs marked “est.” come from token counts estimated from text length. "
      + "Per run and per successful run count only runs with a known cost (a model with no price is not free)."),
    h("nav", { class: "toolbar", "aria-label": "Range" }, h("span", { class: "muted" }, "Range:"),
      Object.entries(RANGES).map(([r, [, text]]) => h("a", { class: "btn btn-small", href: `#/cost?range=${r}`, "aria-current": r === range ? "true" : null }, text))),
    h("h2", {}, "Spend per day"), sections.time,
    ...GROUPS.flatMap(([g, title]) => [h("h2", {}, title), sections[g]]),
  );
  const fill = async (el, promise, build) => {
    try {
      const data = await promise;
      if (!ctx.stale()) mount(el, build(data));
    } catch (err) {
      if (!ctx.stale()) mount(el, errorPanel(err));
    }
  };
  const metrics = (body) => post("/api/v1/metrics", { ...span, bucket: "day", previous: false, ...body });
  await Promise.all([
    fill(sections.time, metrics({ measures: ["cost"], group_by: "flow", max_groups: 4 }), (m) => {
      if (!m.rows.length) return empty("No spend in this range", "No run with a known cost.");
      const xs = [];
      for (let t = start.getTime() / 1000; t < end.getTime() / 1000; t += 86400) xs.push(t);
      const groups = [...new Set(m.rows.map((r) => r.group))];
      const series = groups.map((g) => {
        const by = new Map(m.rows.filter((r) => r.group === g).map((r) => [r.bucket, r.cost]));
        return { label: names.get(g) || g, values: xs.map((x) => by.get(x) ?? 0), format: money };
      });
      const note = m.groups_truncated ? h("p", { class: "muted" }, "The 4 flows with most runs are drawn.") : null;
      return [lineChart("cost-by-flow", "Spend per day by flow (USD)", xs, series, { leftFormat: money }), note];
    }),
    ...GROUPS.map(([g]) => fill(sections[g], get(`/api/v1/cost${query({ ...span, group_by: g })}`), (rows) => costTable(g, rows, names))),
  ]);
}

function costTable(group, rows, names) {
  if (!rows.length) return empty("No runs in this range", "Nothing ran in the flows you may read.");
  rows.sort((a, b) => (b.cost ?? 0) - (a.cost ?? 0));
  const est = (r, text) => (r.tokens_estimated ? h("span", { class: "estimated", title: "from estimated token counts" }, `${text} (est.)`) : text);
  const label = (g) => (group === "flow" ? names.get(g) || g : g === null || g === "" ? "(none)" : g);
  return h("div", { class: "table-wrap" },
    h("table", { id: `cost-${group}-table`, class: "cost-table" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, group[0].toUpperCase() + group.slice(1)),
        h("th", { scope: "col", class: "num" }, "Runs"),
        h("th", { scope: "col", class: "num" }, "Cost"),
        h("th", { scope: "col", class: "num" }, "Per run"),
        h("th", { scope: "col", class: "num" }, "Per successful run"),
        h("th", { scope: "col", class: "num" }, "On failed runs"),
        h("th", { scope: "col", class: "num" }, "On aborted runs"),
        "tokens_in" in rows[0] ? h("th", { scope: "col", class: "num" }, "Tokens in / out") : null,
        "unpriced_runs" in rows[0] ? h("th", { scope: "col", class: "num" }, "Unpriced runs") : null,
      )),
      h("tbody", {}, rows.map((r) => h("tr", { "data-group": r.group },
        h("th", { scope: "row" }, label(r.group)),
        h("td", { class: "num", "data-col": "runs" }, count(r.runs)),
        h("td", { class: "num", "data-col": "cost" }, est(r, money(r.cost))),
        h("td", { class: "num", "data-col": "cost_per_run" }, money(r.cost_per_run)),
        h("td", { class: "num", "data-col": "cost_per_success" }, money(r.cost_per_success)),
        h("td", { class: "num", "data-col": "error_cost" }, money(r.error_cost), h("span", { class: "delta" }, `${count(r.error_runs)} failed`)),
        h("td", { class: "num", "data-col": "aborted_cost" }, money(r.aborted_cost), h("span", { class: "delta" }, `${count(r.aborted_runs)} aborted`)),
        "tokens_in" in r ? h("td", { class: "num", "data-col": "tokens" }, est(r, `${count(r.tokens_in)} / ${count(r.tokens_out)}`)) : null,
        "unpriced_runs" in r ? h("td", { class: "num" }, count(r.unpriced_runs)) : null,
      )))));
}
