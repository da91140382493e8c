// The home screen: every flow the user may read over a chosen period, with the change against
// the period before, a sparkline, and what needs attention (firing alerts, significant version
// regressions, failure rate up sharply) marked with a symbol and a word, never colour alone.
import { enc, get, post, query } from "../api.js";
import { empty, h, mount } from "../dom.js";
import { count, counted, duration, inZone, money, percent, pointsChange, pointsTenths, pValue, pValueExact, shortVersion, timestamp } from "../format.js";
import { OPERATORS, measured, thresholdText } from "./alert_words.js";
import { signatureSearch } from "./search.js";

const PERIODS = { "24h": [86400, "hour", "24 hours"], "7d": [7 * 86400, "day", "7 days"], "30d": [30 * 86400, "day", "30 days"] };
// "Failure rate up sharply": at least this many percentage points more than the period before,
// with at least MIN_RUNS runs in both periods (one failed run out of two is not a trend).
export const SHARP_RISE = 0.1;
const MIN_RUNS = 5;
const MAX_FLOW_CALLS = 30; // per-flow insight calls (versions, failures) for the busiest flows only
const MAX_GROUPS = 100; // the metrics' most groups an answer

// The metrics keep the MAX_GROUPS busiest flows: past that, the others are asked for by id, a
// hundred at a time (they showed "No runs" beside their runs, and were left out of what needs
// attention).
async function allFlows(metrics, flows, measure) {
  if (!metrics.groups_truncated) return metrics;
  const seen = new Set(metrics.totals.map((t) => t.group));
  const rest = flows.map((f) => f.id).filter((id) => !seen.has(id));
  const parts = [];
  for (let i = 0; i < rest.length; i += MAX_GROUPS) parts.push(rest.slice(i, i + MAX_GROUPS));
  const more = await Promise.all(parts.map((ids) => measure({ flow_id: { any_: ids } })));
  return {
    ...metrics,
    totals: metrics.totals.concat(...more.map((m) => m.totals)),
    rows: metrics.rows.concat(...more.map((m) => m.rows)),
  };
}

const COLUMNS = [
  ["name", "Flow", false],
  ["problem", "Attention", false],
  ["runs", "Runs", true],
  ["failure_rate", "Failure rate", true],
  ["p95", "p95", true],
  ["cost", "Cost", true],
];

export async function render(root, _args, ctx) {
  const period = PERIODS[ctx.params.get("period")] ? ctx.params.get("period") : "7d";
  const sort = ctx.params.get("sort") || "problem";
  const dir = ctx.params.get("dir") === "asc" ? "asc" : "desc";
  const [seconds, bucket, label] = PERIODS[period];
  const end = new Date(Math.floor(Date.now() / 1000) * 1000); // whole seconds: links to Search carry the same span
  const start = new Date(end.getTime() - seconds * 1000);
  const measure = (filter) => post("/api/v1/metrics", {
    measures: ["runs", "error", "failure_rate", "p95_duration", "cost"],
    start: start.toISOString(),
    end: end.toISOString(),
    bucket,
    group_by: "flow",
    max_groups: MAX_GROUPS,
    previous: true,
    ...(filter ? { filter } : {}),
  });
  // The cost report by flow, for the same period: the metrics' cost is the sum of the known
  // costs, with no word of runs whose model has no price; the report counts them, so a cost that
  // leaves them out reads "≥" as on the Cost screen. Asked beside the others; extra: if it
  // fails the table stands without the mark. A reader gets their own flows only (the API's).
  const unpricedBy = get(`/api/v1/cost${query({ start: start.toISOString(), end: end.toISOString(), group_by: "flow" })}`)
    .then((rows) => new Map(rows.map((r) => [r.group, (r.unpriced_runs ?? 0) + (r.partly_unpriced_runs ?? 0)])))
    .catch(() => new Map());
  const [flows, busiest100, rules] = await Promise.all([
    get("/api/v1/flows/accessible"),
    measure(null),
    get("/api/v1/alerts/rules").catch(() => []), // alerts are extra: the table stands without them
  ]);
  if (ctx.stale()) return;
  const metrics = await allFlows(busiest100, flows, measure);
  if (ctx.stale()) return;
  const heading = h("h1", {}, "Flows");
  if (!flows.length) {
    mount(root, heading, empty("No flows yet", "Flows you own or may read appear here once they exist."));
    return;
  }
  const names = new Map(flows.map((f) => [f.id, f.name]));
  const totals = new Map(metrics.totals.map((t) => [t.group, t.measures]));
  const firing = [];
  for (const rule of rules) {
    for (const s of rule.states || []) {
      if (s.state === "FIRING" && names.has(s.flow_id)) firing.push({ rule, state: s });
    }
  }
  const busiest = flows
    .filter((f) => totals.get(f.id)?.runs.value)
    .sort((a, b) => totals.get(b.id).runs.value - totals.get(a.id).runs.value)
    .slice(0, MAX_FLOW_CALLS);
  const span = query({ start: start.toISOString(), end: end.toISOString() });
  const insights = await Promise.all(busiest.map(async (f) => {
    const [versions, failures] = await Promise.all([
      get(`/api/v1/flows/${enc(f.id)}/versions${span}`).catch(() => []),
      totals.get(f.id).error.value ? get(`/api/v1/flows/${enc(f.id)}/failures${span}&limit=10`).catch(() => []) : [],
    ]);
    return { flow: f, versions, failures };
  }));
  const unpriced = await unpricedBy;
  if (ctx.stale()) return;
  const regressions = insights.flatMap(({ flow, versions }) => versions
    .filter((v) => v.failure_rate_significant && v.failure_rate_change > 0)
    .map((v) => ({ flow, v })));
  const signatures = insights.flatMap(({ flow, failures }) => failures.map((s) => ({ flow, s })))
    .sort((a, b) => b.s.count - a.s.count || b.s.last_seen - a.s.last_seen)
    .slice(0, 10);

  const rows = flows.map((f) => {
    const m = totals.get(f.id);
    const problems = [];
    if (firing.some((x) => x.state.flow_id === f.id)) problems.push(["alert", "Alert firing"]);
    if (regressions.some((x) => x.flow.id === f.id)) problems.push(["regression", "Version regression"]);
    const fr = m?.failure_rate;
    if (m && m.runs.value >= MIN_RUNS && (m.runs.previous ?? 0) >= MIN_RUNS && fr.change !== null && fr.change >= SHARP_RISE) {
      problems.push(["failures-up", "Failures up"]);
    }
    return { flow: f, m, problems, unpriced: unpriced.get(f.id) ?? 0, spark: sparkValues(metrics, f.id, start, end, bucket) };
  });
  const key = {
    name: (r) => r.flow.name.toLowerCase(),
    problem: (r) => r.problems.length * 1e12 + (r.m?.runs.value ?? 0),
    runs: (r) => r.m?.runs.value ?? -1,
    failure_rate: (r) => (r.m?.runs.value ? r.m.failure_rate.value : -1),
    p95: (r) => (r.m?.runs.value ? r.m.p95_duration.value : -1),
    cost: (r) => (r.m?.runs.value ? (r.m.cost.value ?? -1) : -1), // unknown (no price) sorts with none
  }[sort] || ((r) => r.flow.name);
  rows.sort((a, b) => {
    const ka = key(a), kb = key(b);
    const c = ka < kb ? -1 : ka > kb ? 1 : a.flow.name.localeCompare(b.flow.name);
    return dir === "asc" ? c : -c;
  });

  const link = (params) => `#/${query({ period, sort, dir, ...params })}`;
  const periodPicker = h("nav", { class: "toolbar", "aria-label": "Period" },
    h("span", { class: "muted" }, "Period:"),
    Object.entries(PERIODS).map(([p, [, , text]]) => h("a", {
      class: "btn btn-small", href: link({ period: p }), "aria-current": p === period ? "true" : null,
    }, text)));
  const head = COLUMNS.map(([k, text, numeric]) => {
    const active = k === sort;
    const next = active && dir === "desc" ? "asc" : "desc";
    return h("th", { scope: "col", class: numeric ? "num" : null, "aria-sort": active ? (dir === "asc" ? "ascending" : "descending") : null },
      h("a", { class: "sort", href: link({ sort: k, dir: next }), "data-sort": k },
        text, active ? h("span", { "aria-hidden": "true" }, dir === "asc" ? " ▲" : " ▼") : null));
  });
  const problemCount = rows.filter((r) => r.problems.length).length;
  mount(root,
    heading,
    h("p", { class: "muted", id: "overview-summary" },
      `${flows.length} flow${flows.length === 1 ? "" : "s"} you may read; numbers cover the last ${label}, `
      + `changes compare with the ${label} before. `,
      problemCount ? h("strong", {}, `${problemCount} need${problemCount === 1 ? "s" : ""} attention.`) : "Nothing needs attention."),
    periodPicker,
    h("div", { class: "table-wrap" },
      h("table", { id: "flows-table", "data-period": period, "data-start": Math.floor(start.getTime() / 1000), "data-end": Math.floor(end.getTime() / 1000) },
        // on a phone the sparkline gives its width to the numbers (failure rate, p95, cost)
        h("thead", {}, h("tr", {}, head, h("th", { scope: "col", class: "hide-narrow" }, `Runs per ${bucket}`))),
        h("tbody", {}, rows.map((r) => flowRow(r, bucket, label))),
      ),
    ),
    h("h2", {}, "Firing alerts"),
    firing.length
      ? table("alerts-table", ["Rule", "Flow", "Value", inZone("Since")], firing.map(({ rule, state }) => h("tr", {},
        h("td", {}, h("a", { href: `#/flows/${enc(state.flow_id)}/alerts` }, rule.name)),
        h("td", {}, names.get(state.flow_id)),
        // the value as measured, the threshold as the Alerts tab writes it ("> 20 %", not "> 20.0 %")
        h("td", { class: "num" }, state.value === null ? "—" : `${measured(rule.metric, state.value)} (${OPERATORS[rule.operator] || rule.operator} ${thresholdText(rule.metric, rule.threshold)})`),
        h("td", {}, timestamp(state.since)))))
      : empty("No alert is firing", "Rules of your flows that fire appear here."),
    h("h2", {}, "Version regressions"),
    regressions.length
      ? table("regressions-table", ["Flow", "Version", "Failure rate", "Change", "p-value"], regressions.map(({ flow, v }) => h("tr", {},
        h("td", {}, flow.name),
        h("td", { class: "mono" }, h("a", { href: `#/flows/${enc(flow.id)}/analytics` }, `${shortVersion(v.flow_version)} vs ${shortVersion(v.previous_version)}`)),
        h("td", { class: "num" }, percent(v.failure_rate)),
        h("td", { class: "num" }, pointsChange(v.failure_rate_change)),
        h("td", { class: "num", title: pValueExact(v.failure_rate_p_value) || null }, pValue(v.failure_rate_p_value)))))
      : empty("No significant regression", `No version's failure rate rose significantly (two-proportion z-test) in the last ${label}.`),
    h("h2", {}, "Top failure signatures"),
    signatures.length
      ? table("signatures-table", ["Flow", "Node", "Signature", "Count", "Trend"], signatures.map(({ flow, s }) => h("tr", {},
        h("td", {}, flow.name),
        h("td", { class: "mono" }, s.node_id),
        h("td", {}, h("a", { href: signatureSearch(flow.id, s, start.getTime() / 1000, end.getTime() / 1000) }, s.signature)),
        h("td", { class: "num" }, count(s.count)),
        h("td", {}, s.trend))))
      : empty("No failures", `No run failed in the last ${label}.`),
  );
}

function flowRow(r, bucket, label) {
  const { flow, m, problems } = r;
  const runs = m ? m.runs.value : 0;
  // rates and costs against a period without runs would be changes from nothing: left out
  const compared = runs && (m.runs.previous ?? 0) > 0;
  const attention = problems.length
    ? problems.map(([kind, text]) => h("span", { class: `marker marker-${kind}` }, h("span", { "aria-hidden": "true" }, "▲ "), text))
    : h("span", { class: "marker marker-ok" }, h("span", { "aria-hidden": "true" }, "● "), runs ? "OK" : "No runs");
  return h("tr", { "data-flow": flow.id, "data-problem": problems.map((p) => p[0]).join(" ") || null, class: problems.length ? "row-problem" : null },
    h("td", {}, h("a", { href: `#/flows/${enc(flow.id)}` }, flow.name)),
    h("td", { class: "attention" }, attention),
    // data-label: on a phone each row is a card of labelled numbers (app.css)
    h("td", { class: "num", "data-col": "runs", "data-label": "Runs" }, count(runs), change(m?.runs, count, false)),
    h("td", { class: "num", "data-col": "failure_rate", "data-label": "Failure rate" }, runs ? percent(m.failure_rate.value) : "—", compared ? pointsDelta(m.failure_rate) : null),
    h("td", { class: "num", "data-col": "p95", "data-label": "p95" }, runs ? duration(m.p95_duration.value) : "—", compared ? change(m.p95_duration, (d) => duration(Math.abs(d)), true) : null),
    h("td", { class: "num", "data-col": "cost", "data-label": "Cost" }, runs ? costText(m.cost.value, r.unpriced) : "—", compared ? change(m.cost, (d) => money(Math.abs(d)), true) : null),
    h("td", { class: "hide-narrow" }, sparkline(r.spark, bucket, label)),
  );
}

// A flow's cost in the period as the Cost screen writes it: with runs whose model has no price
// (unknown cost, not free) the known cost is a lower bound, "≥ $0.79"; a flow whose every model
// run is unpriced has no known cost, "—". The tooltip says how many runs are left out.
function costText(usd, unpriced) {
  if (!unpriced) return money(usd);
  const title = `${counted(unpriced, "run")} with at least one model node whose cost is unknown (no price, or no token counts)`;
  return usd === null || usd === undefined
    ? h("span", { class: "unpriced", title: `Unknown: ${title}` }, money(usd))
    : h("span", { class: "unpriced", title: `At least: ${title} ${unpriced === 1 ? "is" : "are"} not counted` }, `≥ ${money(usd)}`);
}

// The change against the previous period, with its direction in words for screen readers.
function change(measure, fmt, upIsBad) {
  if (!measure || measure.previous === null || measure.change === null) return null;
  const d = measure.change;
  if (d === 0) return h("span", { class: "delta" }, "±0");
  const arrow = d > 0 ? "↑" : "↓";
  const bad = upIsBad ? d > 0 : false;
  return h("span", { class: `delta${bad ? " delta-bad" : ""}`, title: `previous: ${measure.previous}` },
    h("span", { "aria-hidden": "true" }, arrow), h("span", { class: "visually-hidden" }, d > 0 ? "up " : "down "),
    fmt(Math.abs(d)));
}

// A failure rate's change, in signed points as Analytics writes it ("+31.8 pts"); one that
// rounds to 0.0 points is no change: "0.0 pts", no arrow, not marked bad.
function pointsDelta(measure) {
  if (!measure || measure.previous === null || measure.change === null) return null;
  if (pointsTenths(measure.change) === 0) return h("span", { class: "delta", title: `previous: ${measure.previous}` }, pointsChange(0));
  return change(measure, () => pointsChange(measure.change), true);
}

// Runs per bucket across the period, zero where a bucket had none.
function sparkValues(metrics, flowId, start, end, bucket) {
  const step = bucket === "hour" ? 3600 : 86400;
  const first = Math.floor(start.getTime() / 1000 / step) * step;
  const last = Math.floor((end.getTime() / 1000 - 1) / step) * step;
  const byBucket = new Map(metrics.rows.filter((r) => r.group === flowId).map((r) => [r.bucket, r]));
  const out = [];
  for (let b = first; b <= last; b += step) {
    const row = byBucket.get(b);
    out.push([row ? row.runs : 0, row ? row.error : 0]);
  }
  return out;
}

// A small inline SVG: runs as a line, error runs as red ticks under it.
function sparkline(values, bucket, label) {
  const w = 120, hgt = 28;
  const max = Math.max(1, ...values.map((v) => v[0]));
  const x = (i) => (values.length < 2 ? w / 2 : (i * (w - 2)) / (values.length - 1) + 1);
  const y = (v) => hgt - 2 - (v / max) * (hgt - 4);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("role", "img");
  const total = values.reduce((s, v) => s + v[0], 0);
  const errors = values.reduce((s, v) => s + v[1], 0);
  // per bucket over the period, whose first and last buckets are partial: "over 25 hours" read
  // one bucket more than the 24 hours chosen
  svg.setAttribute("aria-label", `${total} runs, ${errors} failed, per ${bucket} over the last ${label}`);
  svg.dataset.points = String(values.length);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) => `${x(i).toFixed(1)},${y(v[0]).toFixed(1)}`).join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#0550ae");
  line.setAttribute("stroke-width", "1.5");
  svg.append(line);
  values.forEach((v, i) => {
    if (!v[1]) return;
    const tick = document.createElementNS(ns, "line");
    tick.setAttribute("x1", x(i)); tick.setAttribute("x2", x(i));
    tick.setAttribute("y1", hgt); tick.setAttribute("y2", hgt - 2 - (v[1] / max) * (hgt - 4));
    tick.setAttribute("stroke", "#a40e26");
    tick.setAttribute("stroke-width", "2");
    svg.append(tick);
  });
  return svg;
}

function table(id, headers, rows) {
  return h("div", { class: "table-wrap" },
    h("table", { id },
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}
