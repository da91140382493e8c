// Spend across the flows the user may read: over time, and by flow, model, node and user (each
// table one /api/v1/cost call), with
// cost per successful run and the money burned by failed (status error) and aborted runs apart.
import { get, post, query } from "../api.js";
import { lineChart, partialBucket } from "../charts.js";
import { empty, h, loading, mount } from "../dom.js";
import { clip, count, money } from "../format.js";
import { fillSection } from "../sections.js";


const RANGES = { "7d": [7, "7 days"], "30d": [30, "30 days"], "90d": [90, "90 days"] };
const GROUPS = [["flow", "By flow"], ["model", "By model"], ["node", "By node"], ["user", "By user"]];

const LEGEND_CHARS = 40; // a flow's name in the chart's legend; the tables have it whole

export async function render(root, _args, ctx) {
  const range = RANGES[ctx.params.get("range")] ? ctx.params.get("range") : "30d";
  const [days, label] = RANGES[range];
  // whole UTC days, so the chart has exactly `days` points; the last (today) is not over yet
  const end = new Date(Math.ceil(Date.now() / 86400_000) * 86400_000);
  const start = new Date(end.getTime() - days * 86400_000);
  const span = { start: start.toISOString(), end: end.toISOString() };
  const flows = await get("/api/v1/flows/accessible");
  if (ctx.stale()) return;
  const names = new Map(flows.map((f) => [f.id, f.name]));
  const sections = Object.fromEntries([...GROUPS.map(([g]) => g), "time"].map((g) => [g, h("div", { id: `cost-${g}` }, loading())]));
  mount(root,
    h("h1", {}, "Cost"),
    h("p", { class: "muted" }, `Spend over the last ${label} (whole UTC days; today's is not over yet) in the flows you may read. `
      + "“Failed” means runs with status error; aborted runs are counted apart. "
      + "Costs marked “est.” come from token counts estimated from text length. "
      + "Per run and per successful run count only runs with a known cost: a model with no price, or without token counts, is not free; a run without a model costs nothing."),
    h("nav", { class: "toolbar", "aria-label": "Range" }, h("span", { class: "muted" }, "Range:"),
      Object.entries(RANGES).map(([r, [, text]]) => h("a", { class: "btn btn-small", href: `#/cost?range=${r}`, "aria-current": r === range ? "true" : null }, text))),
    h("h2", {}, "Spend per day"), sections.time,
    ...GROUPS.flatMap(([g, title]) => [h("h2", {}, title), sections[g]]),
  );
  const fill = (g, load, draw) => fillSection(ctx, sections[g], load, draw);
  const cost = (group) => get(`/api/v1/cost${query({ ...span, group_by: group })}`);
  const metrics = (body) => post("/api/v1/metrics", { ...span, bucket: "day", previous: false, ...body });
  await Promise.all([
    fill("time", () => metrics({ measures: ["cost", "runs"], group_by: "flow", max_groups: 4 }), (m) => spendChart(m, start, end, names)),
    fill("flow", () => cost("flow"), (rows) => costTable("flow", rows, (r) => names.get(r.group) || r.group)),
    fill("model", () => cost("model"), (rows) => costTable("model", rows, groupLabel)),
    // node ids are per flow (model_1 of one flow is not model_1 of another)
    fill("node", () => cost("flow_node"), (rows) => costTable("node", rows, (r) => `${names.get(r.flow_id) || r.flow_id} · ${groupLabel(r)}`)),
    fill("user", () => cost("user"), (rows) => costTable("user", rows, groupLabel)),
  ]);
}

const groupLabel = (r) => (r.group === null || r.group === "" ? "(none)" : r.group);

function spendChart(m, start, end, names) {
  if (!m.rows.length) return empty("No spend in this range", "No run with a known cost.");
  const xs = [];
  for (let t = start.getTime() / 1000; t < end.getTime() / 1000; t += 86400) xs.push(t);
  const groups = [...new Set(m.rows.map((r) => r.group))];
  const series = groups.map((g) => {
    // a day without runs spent 0; a day whose runs' cost is unknown (an unpriced model) is a gap,
    // never a $0 (it drew an unpriced flow as free)
    const by = new Map(m.rows.filter((r) => r.group === g).map((r) => [r.bucket, r.runs ? r.cost : 0]));
    return { label: clip(names.get(g) || g, LEGEND_CHARS), values: xs.map((x) => (by.has(x) ? by.get(x) : 0)), format: money };
  });
  const note = m.groups_truncated ? h("p", { class: "muted" }, "The 4 flows with most runs are drawn.") : null;
  const partial = partialBucket(xs, 86400, Date.now() / 1000);
  return [lineChart("cost-by-flow", "Spend per day (UTC days) by flow (USD)", xs, series, { leftFormat: money, minStep: 86400, partial, zone: "UTC" }), note];
}

function costTable(group, rows, label) {
  if (!rows.length) return empty("No runs in this range", "Nothing ran in the flows you may read.");
  rows.sort((a, b) => (b.cost ?? 0) - (a.cost ?? 0));
  const est = (r, text) => (r.tokens_estimated ? h("span", { class: "estimated", title: "from estimated token counts" }, `${text} (est.)`) : text);
  const perRun = group === "flow" || group === "user";  // partly_unpriced_runs: by flow and by user
  // a flow (or user) with runs whose cost is unknown, or leaves out an unpriced model, cost at
  // least its known cost: "≥", as the overview marks it (an unpriced model never shows as free)
  const atLeast = (r) => (perRun && r.cost !== null && r.cost !== undefined && (r.partly_unpriced_runs || r.unpriced_runs) ? "≥ " : "");
  return h("div", { class: "table-wrap" },
    h("table", { id: `cost-${group}-table`, class: "cost-table" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, group === "node" ? "Flow · node" : group[0].toUpperCase() + group.slice(1)),
        h("th", { scope: "col", class: "num" }, group === "node" || group === "model" ? "Node runs" : "Runs"),
        h("th", { scope: "col", class: "num" }, "Cost"),
        h("th", { scope: "col", class: "num" }, "Per run"),
        h("th", { scope: "col", class: "num" }, "Per successful run"),
        h("th", { scope: "col", class: "num" }, "On failed runs"),
        h("th", { scope: "col", class: "num" }, "On aborted runs"),
        h("th", { scope: "col", class: "num" }, "Tokens in / out"),
        h("th", { scope: "col", class: "num", title: perRun ? "runs with at least one model node whose cost is unknown (no price, or no token counts)" : "rows with a model whose cost is unknown (no price, or no token counts)" },
          perRun ? "Runs with an unpriced model" : "Unpriced"),
      )),
      h("tbody", {}, rows.map((r) => h("tr", { "data-group": r.group, "data-flow": r.flow_id ?? null },
        h("th", { scope: "row" }, label(r)),
        h("td", { class: "num", "data-col": "runs" }, count(r.runs)),
        h("td", { class: "num", "data-col": "cost" }, est(r, atLeast(r) + money(r.cost))),
        h("td", { class: "num", "data-col": "cost_per_run" }, money(r.cost_per_run)),
        h("td", { class: "num", "data-col": "cost_per_success" }, money(r.cost_per_success)),
        h("td", { class: "num", "data-col": "error_cost" }, money(r.error_cost), h("span", { class: "delta" }, `${count(r.error_runs)} failed`)),
        h("td", { class: "num", "data-col": "aborted_cost" }, money(r.aborted_cost), h("span", { class: "delta" }, `${count(r.aborted_runs)} aborted`)),
        h("td", { class: "num", "data-col": "tokens" }, est(r, `${count(r.tokens_in)} / ${count(r.tokens_out)}`)),
        h("td", { class: "num", "data-col": "unpriced" }, count(perRun ? r.unpriced_runs + r.partly_unpriced_runs : r.unpriced_runs)),
      )))));
}
