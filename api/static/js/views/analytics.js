// Analytics of one flow: runs and failure rate, p50/p95 duration and cost over time (range
// and bucket pickers), reliability, per-node breakdown, failure signatures, versions, anomalies.
import { enc, get, query } from "../api.js";
import { empty, errorPanel, h, loading, mount } from "../dom.js";
import { count, duration, money, percent, shortId, timestamp } from "../format.js";
import { lineChart } from "../charts.js";
import { flowHeader, loadFlow } from "./flow_header.js";

const HOUR = 3600;
const DAY = 86400;
const RANGES = { "24h": ["Last 24 hours", DAY], "7d": ["Last 7 days", 7 * DAY], "30d": ["Last 30 days", 30 * DAY], "90d": ["Last 90 days", 90 * DAY] };
const BUCKETS = { auto: "Automatic", hour: "Hour", day: "Day", week: "Week" };

// Buckets are calendar-aligned in UTC, so an aligned range gives exactly range / bucket points.
function floorTo(t, bucket) {
  if (bucket === "hour") return Math.floor(t / HOUR) * HOUR;
  if (bucket === "day") return Math.floor(t / DAY) * DAY;
  if (bucket === "week") {
    const day = Math.floor(t / DAY) * DAY;
    const weekday = (new Date(day * 1000).getUTCDay() + 6) % 7; // Monday = 0
    return day - weekday * DAY;
  }
  return t;
}

export function rangeFor(range, bucket, nowSeconds) {
  const span = RANGES[range][1];
  if (bucket === "auto") return [nowSeconds - span, nowSeconds];
  const step = { hour: HOUR, day: DAY, week: 7 * DAY }[bucket];
  const end = floorTo(nowSeconds, bucket) + step;
  return [floorTo(end - span, bucket), end];
}

function table(id, head, rows) {
  return h("div", { class: "table-wrap" },
    h("table", { id }, h("thead", {}, h("tr", {}, head.map(([label, num]) => h("th", { scope: "col", class: num ? "num" : null }, label)))),
      h("tbody", {}, rows)));
}

const td = (v, num) => h("td", { class: num ? "num" : null }, v);

export async function render(root, [flowId], ctx) {
  const range = RANGES[ctx.params.get("range")] ? ctx.params.get("range") : "7d";
  const bucket = BUCKETS[ctx.params.get("bucket")] ? ctx.params.get("bucket") : (range === "24h" ? "hour" : "day");
  const [start, end] = rangeFor(range, bucket, Math.floor(Date.now() / 1000));
  const flow = await loadFlow(flowId);
  if (ctx.stale()) return;
  const base = `/api/v1/flows/${enc(flowId)}`;
  const span = { start: String(start), end: String(end) };

  const pick = (id, label, options, value) => h("div", { class: "field" }, h("label", { for: id }, label),
    h("select", { id, name: id }, Object.entries(options).map(([k, v]) =>
      h("option", { value: k, selected: k === value }, Array.isArray(v) ? v[0] : v))));
  const form = h("form", { class: "panel form-row", id: "range-form", "aria-label": "Chart range and bucket" },
    pick("range", "Range", RANGES, range), pick("bucket", "Bucket", BUCKETS, bucket),
    h("div", { class: "field" }, h("button", { type: "submit", class: "btn btn-primary" }, "Show")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    ctx.navigate(`#/flows/${enc(flowId)}/analytics?range=${data.get("range")}&bucket=${data.get("bucket")}`);
  });

  const charts = h("section", { class: "charts", id: "charts", "data-start": String(start), "data-end": String(end), "data-bucket": bucket }, loading("Loading charts…"));
  const kpis = h("section", { class: "cards", id: "reliability" }, loading());
  const nodes = h("section", { id: "node-breakdown" }, loading());
  const failures = h("section", { id: "failures" }, loading());
  const versions = h("section", { id: "versions" }, loading());
  const anomalies = h("section", { id: "anomalies" }, loading());
  mount(root, ...flowHeader(flow, "analytics"), form,
    h("p", { class: "muted" }, `${timestamp(start)} – ${timestamp(end)} (bucket boundaries in UTC)`),
    charts,
    h("h2", {}, "Reliability"), kpis,
    h("h2", {}, "Per node"), nodes,
    h("h2", {}, "Failure signatures"), failures,
    h("h2", {}, "Version regressions"), versions,
    h("h2", {}, "Duration anomalies"), anomalies);

  const fill = (box, promise, draw) => promise.then((data) => { if (!ctx.stale()) mount(box, draw(data)); },
    (err) => { if (!ctx.stale()) mount(box, errorPanel(err)); });

  fill(charts, get(`${base}/trend${query({ ...span, bucket, measures: "runs,error,failure_rate,p50_duration,p95_duration,cost" })}`), (t) => {
    const xs = t.rows.map((r) => r.bucket);
    const total = t.totals[0].measures.runs.value;
    charts.dataset.totalRuns = String(total);
    const figures = [
      lineChart("runs", "Runs and failure rate", xs, [
        { label: "Runs", values: t.rows.map((r) => r.runs), format: count },
        { label: "Failure rate", values: t.rows.map((r) => r.failure_rate), axis: "right", format: (v) => percent(v) },
      ], { rightFormat: (v) => `${Math.round(v * 100)}%` }),
      lineChart("duration", "Duration p50 / p95", xs, [
        { label: "p50", values: t.rows.map((r) => r.p50_duration), format: duration },
        { label: "p95", values: t.rows.map((r) => r.p95_duration), format: duration },
      ], { leftFormat: duration }),
      lineChart("cost", "Cost (USD)", xs, [{ label: "Cost", values: t.rows.map((r) => r.cost), format: money }], { leftFormat: money }),
    ];
    const note = total === 0 ? empty("No runs in this range", "Pick a longer range to see this flow's history.") : null;
    return [note, h("p", { class: "muted" }, `${count(total)} runs, ${percent(t.totals[0].measures.failure_rate.value)} failed, bucket ${t.bucket}`), ...figures];
  });

  fill(kpis, get(`${base}/reliability${query(span)}`), (r) => [
    ["Runs", count(r.runs)],
    ["Last success", r.last_success_at ? timestamp(r.last_success_at) : "never"],
    ["Current failure streak", count(r.current_failure_streak)],
    ["Longest failure streak", count(r.longest_failure_streak)],
    ["Mean time to recovery", r.mttr_seconds == null ? "—" : duration(r.mttr_seconds * 1000)],
  ].map(([label, value]) => h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value))));

  fill(nodes, get(`${base}/nodes${query(span)}`), (rows) => rows.length
    ? table("nodes-table", [["Node"], ["Model"], ["Runs", 1], ["Failure rate", 1], ["p50", 1], ["p95", 1], ["Tokens in / out", 1], ["Cost / run", 1]],
      rows.map((n) => h("tr", { "data-node": n.node_id }, td(h("span", { class: "mono" }, n.node_id)), td(n.model || "—"), td(count(n.runs), 1),
        td(percent(n.failure_rate), 1), td(duration(n.p50_ms), 1), td(duration(n.p95_ms), 1),
        td(`${count(n.tokens_in)} / ${count(n.tokens_out)}${n.tokens_estimated ? " (est.)" : ""}`, 1), td(money(n.cost_per_run), 1))))
    : empty("No node results in this range", ""));

  fill(failures, get(`${base}/failures${query({ ...span, limit: 20 })}`), (rows) => rows.length
    ? table("failures-table", [["Node"], ["Signature"], ["Count", 1], ["Last seen"], ["Trend"]],
      rows.map((f) => h("tr", {}, td(h("span", { class: "mono" }, f.node_id)), td(h("span", { class: "mono", title: f.example }, f.signature)),
        td(count(f.count), 1), td(timestamp(f.last_seen)), td(f.trend))))
    : empty("No failures in this range", "Every run in this range succeeded or was aborted."));

  fill(versions, get(`${base}/versions${query(span)}`), (rows) => rows.length
    ? table("versions-table", [["Version"], ["Runs", 1], ["Failure rate", 1], ["Δ failure", 1], ["p95", 1], ["Δ p95", 1], ["Regression?"]],
      rows.map((v) => {
        const regression = (v.failure_rate_significant && v.failure_rate_change > 0) || (v.duration_significant && v.p95_change_ms > 0);
        return h("tr", { class: regression ? "row-error" : "" }, td(h("code", {}, shortId(v.flow_version))), td(count(v.runs), 1),
          td(percent(v.failure_rate), 1), td(v.failure_rate_change == null ? "—" : percent(v.failure_rate_change), 1),
          td(duration(v.p95_ms), 1), td(v.p95_change_ms == null ? "—" : duration(v.p95_change_ms), 1),
          td(v.enough_runs === false ? "too few runs" : regression ? "yes (significant)" : v.previous_version ? "no" : "first version"));
      }))
    : empty("No versions in this range", ""));

  fill(anomalies, get(`${base}/anomalies${query({ ...span, limit: 20 })}`), (rows) => rows.length
    ? table("anomalies-table", [["Run"], ["When"], ["Duration", 1], ["Baseline median", 1], ["Robust z", 1]],
      rows.map((a) => h("tr", {}, td(h("a", { href: `#/flows/${enc(flowId)}/runs/${enc(a.execution_id)}` }, shortId(a.execution_id))),
        td(timestamp(a.created_at)), td(duration(a.value), 1), td(duration(a.median), 1), td(a.robust_z.toFixed(1), 1))))
    : empty("No anomalies in this range", "No run's duration stood out from the runs before it."));
}
