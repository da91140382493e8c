// Analytics of one flow: runs and failure rate, p50/p95 duration and cost over time (range,
// bucket and time-zone pickers) with version changes marked on every chart, reliability,
// per-node breakdown, failure signatures, versions, and duration anomalies as a chart.
import { enc, get, query } from "../api.js";
import { empty, h, loading, mount } from "../dom.js";
import { LOCAL_ZONE, count, counted, decimal, duration, durationChange, money, percent, pointsChange, setZoneChoice, shortId, shortVersion, timestamp, timeZone, zoneChoice } from "../format.js";
import { lineChart, partialBucket } from "../charts.js";
import { fillSection, shared } from "../sections.js";
import { flowHeader, loadFlow } from "./flow_header.js";
import { nodeLabel, nodeName } from "../node_labels.js";
import { signatureSearch } from "./search.js";

const HOUR = 3600;
const DAY = 86400;
const RANGES = { "24h": ["Last 24 hours", DAY], "7d": ["Last 7 days", 7 * DAY], "30d": ["Last 30 days", 30 * DAY], "90d": ["Last 90 days", 90 * DAY] };
const BUCKETS = { auto: "Automatic", hour: "Hour", day: "Day", week: "Week" };

// Buckets are calendar-aligned in the chosen zone (the API's `tz`), so an aligned range gives
// exactly range / bucket buckets. Local means the browser's own zone: Date's local methods.
function floorLocal(t, bucket) {
  const d = new Date(t * 1000);
  if (bucket === "hour") d.setMinutes(0, 0, 0);
  else {
    d.setHours(0, 0, 0, 0);
    if (bucket === "week") d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
  }
  return Math.floor(d.getTime() / 1000);
}

function addLocal(t, bucket, n) {
  if (bucket === "hour") return t + n * HOUR;
  const d = new Date(t * 1000);
  d.setDate(d.getDate() + n * (bucket === "week" ? 7 : 1));
  return Math.floor(d.getTime() / 1000);
}

function floorTo(t, bucket, local = false) {
  if (local) return floorLocal(t, bucket);
  if (bucket === "hour") return Math.floor(t / HOUR) * HOUR;
  if (bucket === "day") return Math.floor(t / DAY) * DAY;
  if (bucket === "week") {
    const day = Math.floor(t / DAY) * DAY;
    const weekday = (new Date(day * 1000).getUTCDay() + 6) % 7; // Monday = 0
    return day - weekday * DAY;
  }
  return t;
}

const STEP = { hour: HOUR, day: DAY, week: 7 * DAY };

function addBucket(t, bucket, n, local) {
  return local ? addLocal(t, bucket, n) : t + n * STEP[bucket];
}

// The range for a fixed bucket ends with the bucket now is in (partial: the charts mark it).
// Hour buckets stay on the UTC grid in every zone, as the API keeps them (in a half-hour zone a
// range of local whole hours would start mid-bucket); day and week buckets follow the zone.
// Days and hours: exactly range / bucket buckets (7 days by day is 7). Weeks: the whole weeks
// that hold the last N days, so none of them is left out.
export function rangeFor(range, bucket, nowSeconds, local = false) {
  const span = RANGES[range][1];
  if (bucket === "auto") return [nowSeconds - span, nowSeconds];
  const zoned = local && bucket !== "hour";
  const end = addBucket(floorTo(nowSeconds, bucket, zoned), bucket, 1, zoned);
  if (bucket === "week") return [floorTo(nowSeconds - span, bucket, zoned), end];
  return [addBucket(end, bucket, -Math.round(span / STEP[bucket]), zoned), end];
}

// The API draws at most this many buckets ("more than 2000 hour buckets from start to end"): a
// range and bucket over it could only show that refusal, so the picker never offers the pair
// (90 days by hour is 2,160) and a link asking for it is shown by a bucket that loads.
export const MAX_BUCKETS = 2000;

// How many buckets a range holds at a fixed bucket width (auto: the API picks about 50).
export function bucketCount(range, bucket, nowSeconds = Math.floor(Date.now() / 1000)) {
  if (bucket === "auto") return 0;
  const [start, end] = rangeFor(range, bucket, nowSeconds);
  return Math.ceil((end - start) / STEP[bucket]);
}

const fits = (range, bucket) => bucketCount(range, bucket) <= MAX_BUCKETS;
const defaultBucket = (range) => (range === "24h" ? "hour" : "day");

// The bucket to show: the one asked for if the range holds few enough of it, else the range's
// default or the next wider one that fits. A bucket that is no bucket reads as the default, as
// a range that is no range does.
export function bucketFor(range, asked) {
  if (!BUCKETS[asked]) return defaultBucket(range);
  return [asked, defaultBucket(range), "day", "week", "auto"].find((b) => fits(range, b));
}

// Leading buckets without runs are not drawn: weeks of nothing before a flow's first run
// would read as weeks of zeros. Later empty buckets stay, as gaps (their measures are null).
export function fromFirstRun(rows) {
  const first = rows.findIndex((r) => r.runs > 0);
  return first <= 0 ? rows : rows.slice(first);
}

// A version change is marked where the new version was first seen (its predecessor named).
function versionMarkers(versions) {
  return (versions || []).filter((v) => v.previous_version).map((v) => ({
    x: v.first_seen, label: `${shortVersion(v.flow_version)}${v.regressed ? " ▲" : ""}`,
  }));
}

function table(id, head, rows) {
  return h("div", { class: "table-wrap" },
    h("table", { id }, h("thead", {}, h("tr", {}, head.map(([label, num]) => h("th", { scope: "col", class: num ? "num" : null }, label)))),
      h("tbody", {}, rows)));
}

const td = (v, num) => h("td", { class: num ? "num" : null }, v);

// A table whose columns sort on a click (again: the other way), numbers biggest first: with
// hundreds of nodes the one that fails was row 203 of a table in the API's order (total time).
// `columns`: [label, numeric, value(item) to sort by, cell(item)]; `row(item, cells)` the <tr>.
function sortableTable(id, columns, items, row) {
  const tbody = h("tbody", {});
  let by = -1;
  let dir = 1;
  const marks = columns.map(() => h("span", { "aria-hidden": "true" }));
  const heads = columns.map(([label, num], i) => h("th", { scope: "col", class: num ? "num" : null },
    h("button", { type: "button", class: "sort", "data-sort": String(i), onclick: () => sortBy(i) }, label, marks[i])));
  const render = () => {
    // nulls last either way
    const key = (item) => columns[by][2](item);
    const order = (a, b) => (key(a) == null ? 1 : key(b) == null ? -1 : dir * compare(key(a), key(b)));
    const shown = by < 0 ? items : [...items].sort(order);
    mount(tbody, ...shown.map((item) => row(item, columns.map((c) => c[3](item)))));
    heads.forEach((th, i) => (i === by ? th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending") : th.removeAttribute("aria-sort")));
    marks.forEach((m, i) => { m.textContent = i === by ? (dir === 1 ? " ▲" : " ▼") : ""; });
  };
  const sortBy = (i) => {
    dir = i === by ? -dir : columns[i][1] ? -1 : 1; // a number first biggest, a name first A-Z
    by = i;
    render();
  };
  render();
  return h("div", { class: "table-wrap" }, h("table", { id }, h("thead", {}, h("tr", {}, heads)), tbody));
}

function compare(a, b) {
  if (a === b) return 0;
  return typeof a === "string" ? a.localeCompare(b) : a - b;
}

// The trend's bucket width ("day", "6 hours", "1 week") in seconds: the charts' smallest tick
// step, so day buckets get date ticks, never times of day between them.
const UNIT = { minute: 60, hour: HOUR, day: DAY, week: 7 * DAY, month: 28 * DAY, year: 365 * DAY };
export function bucketSeconds(name) {
  const m = /^\s*(\d+)?\s*(minute|hour|day|week|month|year)s?\b/i.exec(String(name || ""));
  return m ? Number(m[1] || 1) * UNIT[m[2].toLowerCase()] : HOUR;
}

export async function render(root, [flowId], ctx) {
  const range = RANGES[ctx.params.get("range")] ? ctx.params.get("range") : "7d";
  const asks = ctx.params.get("bucket");
  const bucket = bucketFor(range, asks);
  const asked = ctx.params.get("tz");
  if (asked === "utc" || asked === "local") setZoneChoice(asked);
  const zone = zoneChoice();
  const [start, end] = rangeFor(range, bucket, Math.floor(Date.now() / 1000), zone === "local");
  const flow = await loadFlow(flowId);
  if (ctx.stale()) return;
  const base = `/api/v1/flows/${enc(flowId)}`;
  const span = { start: String(start), end: String(end) };

  const pick = (id, label, options, value) => h("div", { class: "field" }, h("label", { for: id }, label),
    h("select", { id, name: id }, Object.entries(options).map(([k, v]) =>
      h("option", { value: k, selected: k === value }, Array.isArray(v) ? v[0] : v))));
  const form = h("form", { class: "panel form-row", id: "range-form", "aria-label": "Chart range and bucket" },
    pick("range", "Range", RANGES, range), pick("bucket", "Bucket", BUCKETS, bucket),
    pick("tz", "Times in", { utc: "UTC", local: `Local (${LOCAL_ZONE})` }, zone),
    h("div", { class: "field" }, h("button", { type: "submit", class: "btn btn-primary" }, "Show")));
  offerBuckets(form);
  form.querySelector("#range").addEventListener("change", () => offerBuckets(form));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    ctx.navigate(`#/flows/${enc(flowId)}/analytics?range=${data.get("range")}&bucket=${data.get("bucket")}&tz=${data.get("tz")}`);
  });

  const charts = h("section", { class: "charts", id: "charts", "data-start": String(start), "data-end": String(end), "data-bucket": bucket, "data-tz": timeZone() }, loading("Loading charts…"));
  const kpis = h("section", { class: "cards", id: "reliability" }, loading());
  const nodes = h("section", { id: "node-breakdown" }, loading());
  const failures = h("section", { id: "failures" }, loading());
  const versions = h("section", { id: "versions" }, loading());
  const anomalies = h("section", { id: "anomalies" }, loading());
  mount(root, ...flowHeader(flow, "analytics"), form,
    asks !== bucket && BUCKETS[asks] ? h("p", { class: "muted", id: "bucket-note", role: "status" }, tooMany(range, asks, bucket)) : null,
    h("p", { class: "muted", id: "range-caption" }, `${timestamp(start)} – ${timestamp(end)} (times and day boundaries in ${timeZone()})`),
    charts,
    h("h2", {}, "Reliability"), kpis,
    h("h2", {}, "Per node"), nodes,
    h("h2", {}, "Failure signatures"), failures,
    h("h2", {}, "Version regressions"), versions,
    h("h2", {}, "Duration anomalies"), anomalies);

  // Versions over their whole lives (the API compares each with its predecessor whatever the
  // range); charts wait for them to mark version changes, and draw without markers if they fail.
  const versionsP = shared(() => get(`${base}/versions${query(span)}`));
  const trendP = shared(() => get(`${base}/trend${query({ ...span, bucket, tz: timeZone(), measures: "runs,error,failure_rate,p50_duration,p95_duration,cost" })}`));
  const markersP = () => versionsP().then(versionMarkers, () => []);
  const fill = (box, load, draw) => fillSection(ctx, box, load, draw);
  const now = Math.floor(Date.now() / 1000);

  fill(charts, () => Promise.all([trendP(), markersP()]), ([t, markers]) => {
    const rows = fromFirstRun(t.rows);
    const xs = rows.map((r) => r.bucket);
    const total = t.totals[0].measures.runs.value;
    charts.dataset.totalRuns = String(total);
    charts.dataset.firstBucket = String(xs[0] ?? "");
    // no runs: charts of nothing would only draw made-up axes ("1% 1% 0%") and "— failed"
    if (!total) return empty("No runs in this range", "Pick a longer range to see this flow's history.");
    const partial = partialBucket(xs, bucketSeconds(t.bucket), now);
    charts.dataset.partial = partial === null ? "" : String(partial);
    const marks = { markers, minStep: bucketSeconds(t.bucket), partial };
    const figures = [
      lineChart("runs", "Runs and failure rate", xs, [
        { label: "Runs", values: rows.map((r) => r.runs), format: count },
        { label: "Failure rate", values: rows.map((r) => r.failure_rate), axis: "right", format: (v) => percent(v) },
      ], { rightFormat: (v) => `${Math.round(v * 100)}%`, ...marks }),
      lineChart("duration", "Duration p50 / p95", xs, [
        { label: "p50", values: rows.map((r) => r.p50_duration), format: duration },
        { label: "p95", values: rows.map((r) => r.p95_duration), format: duration },
      ], { leftFormat: duration, ...marks }),
      lineChart("cost", "Cost (USD)", xs, [{ label: "Cost", values: rows.map((r) => r.cost), format: money }], { leftFormat: money, ...marks }),
    ];
    const skipped = rows.length < t.rows.length ? `; drawn from the first bucket with runs (${timestamp(xs[0])})` : "";
    const legend = markers.some((m) => xs.length && m.x >= xs[0] && m.x <= xs[xs.length - 1]) ? "; dashed lines mark version changes (▲ a significant regression)" : "";
    const still = partial === null ? "" : `; the last bucket (from ${timestamp(partial)}) is not over yet: its numbers are partial (shaded)`;
    return [h("p", { class: "muted" }, `${counted(total, "run")}, ${percent(t.totals[0].measures.failure_rate.value)} failed, bucket ${t.bucket}; empty buckets are gaps${skipped}${legend}${still}`), ...figures];
  });

  fill(kpis, () => get(`${base}/reliability${query(span)}`), (r) => [
    ["Runs", count(r.runs)],
    ["Last success", r.last_success_at ? timestamp(r.last_success_at) : "never"],
    ["Current failure streak", count(r.current_failure_streak)],
    ["Longest failure streak", count(r.longest_failure_streak)],
    ["Mean time to recovery", r.mttr_seconds == null ? "—" : duration(r.mttr_seconds * 1000)],
  ].map(([label, value]) => h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value))));

  fill(nodes, () => get(`${base}/nodes${query(span)}`), (rows) => rows.length
    ? sortableTable("nodes-table", [
      ["Node", 0, (n) => nodeLabel(flow, n.node_id), (n) => td(nodeName(flow, n.node_id))],
      ["Model", 0, (n) => n.model, (n) => td(n.model || "—")],
      ["Runs", 1, (n) => n.runs, (n) => td(count(n.runs), 1)],
      ["Failure rate", 1, (n) => n.failure_rate, (n) => td(percent(n.failure_rate), 1)],
      ["p50", 1, (n) => n.p50_ms, (n) => td(duration(n.p50_ms), 1)],
      ["p95", 1, (n) => n.p95_ms, (n) => td(duration(n.p95_ms), 1)],
      ["Tokens in / out", 1, (n) => (n.tokens_in ?? 0) + (n.tokens_out ?? 0),
        (n) => td(`${count(n.tokens_in)} / ${count(n.tokens_out)}${n.tokens_estimated ? " (est.)" : ""}`, 1)],
      ["Cost / run", 1, (n) => n.cost_per_run, (n) => td(money(n.cost_per_run), 1)],
    ], rows, (n, cells) => h("tr", { "data-node": n.node_id }, ...cells))
    : empty("No node results in this range", ""));

  fill(failures, () => get(`${base}/failures${query({ ...span, limit: 20 })}`), (rows) => rows.length
    ? table("failures-table", [["Node"], ["Signature"], ["Count", 1], ["Last seen"], ["Trend"]],
      rows.map((f) => h("tr", { "data-node": f.node_id }, td(nodeName(flow, f.node_id)), td(h("a", { class: "mono", title: f.example, href: signatureSearch(flowId, f, start, end) }, f.signature)),
        td(count(f.count), 1), td(timestamp(f.last_seen)), td(f.trend))))
    : empty("No failures in this range", "Every run in this range succeeded or was aborted."));

  fill(versions, versionsP, (rows) => rows.length
    ? table("versions-table", [["Version"], ["First seen"], ["Runs", 1], ["Failure rate", 1], ["Δ failure", 1], ["p95", 1], ["Δ p95", 1], ["Regression?"]],
      rows.map((v) => {
        const regression = v.regressed;
        return h("tr", { class: regression ? "row-error" : "", "data-version": v.flow_version }, td(h("code", {}, shortVersion(v.flow_version))), td(timestamp(v.first_seen)), td(count(v.runs), 1),
          td(percent(v.failure_rate), 1), td(pointsChange(v.failure_rate_change), 1),
          td(duration(v.p95_ms), 1), td(durationChange(v.p95_change_ms), 1),
          td(v.enough_runs === false ? "too few runs" : regression ? "yes (significant)" : v.previous_version ? "no" : "first version"));
      }))
    : empty("No versions in this range", ""));
  versions.after(h("p", { class: "muted" }, "Each version against the one before it, over all their runs (not only this range)."));

  const anomaliesP = () => get(`${base}/anomalies${query({ ...span, limit: 100 })}`);
  fill(anomalies, () => Promise.all([anomaliesP(), trendP(), markersP()]), ([rows, t, markers]) => {
    const buckets = fromFirstRun(t.rows);
    const runs = t.totals[0].measures.runs.value;
    const step = bucketSeconds(t.bucket);
    const partial = partialBucket(buckets.map((b) => b.bucket), step, now);
    const chart = runs || rows.length ? anomalyChart(buckets, rows, markers, step, partial) : null;
    const list = rows.length
      ? table("anomalies-table", [["Run"], ["When"], ["Duration", 1], ["Baseline median", 1], ["Robust z", 1]],
        rows.slice(0, 20).map((a) => h("tr", {}, td(h("a", { href: `#/flows/${enc(flowId)}/runs/${enc(a.execution_id)}` }, shortId(a.execution_id))),
          td(timestamp(a.created_at)), td(duration(a.value), 1), td(duration(a.median), 1), td(decimal(a.robust_z, 1), 1))))
      : empty("No anomalies in this range", "No run's duration stood out from the runs before it.");
    return [chart, list];
  });
}

// The bucket options of the range picked: a bucket the range holds too many of is disabled (its
// label says why) and, if it was chosen, the one that loads is chosen in its place.
function offerBuckets(form) {
  const range = form.querySelector("#range").value;
  const select = form.querySelector("#bucket");
  for (const option of select.options) {
    option.disabled = !fits(range, option.value);
    option.textContent = option.disabled ? `${BUCKETS[option.value]} (over ${count(MAX_BUCKETS)} buckets)` : BUCKETS[option.value];
  }
  if (select.selectedOptions[0]?.disabled) select.value = bucketFor(range, select.value);
}

// Why a link's bucket is not the one shown: "2,160 hour buckets in the last 90 days are more
// than the 2,000 a chart draws: shown by day."
function tooMany(range, asked, shown) {
  return `${count(bucketCount(range, asked))} ${asked} buckets in the ${RANGES[range][0].toLowerCase()} are more than the ${count(MAX_BUCKETS)} a chart draws: shown by ${BUCKETS[shown].toLowerCase()}.`;
}

// Duration over time (p50 and p95 per bucket) with each flagged run as a red point at its own
// time and duration. Bucket times and run times are merged on one x axis: a line has no value
// at a run's time (undefined: joined across), a point none at a bucket's.
function anomalyChart(buckets, flagged, markers, minStep, partial) {
  const xs = [...new Set([...buckets.map((r) => r.bucket), ...flagged.map((a) => a.created_at)])].sort((a, b) => a - b);
  const byBucket = new Map(buckets.map((r) => [r.bucket, r]));
  const byRun = new Map(flagged.map((a) => [a.created_at, a.value]));
  const line = (key) => xs.map((x) => (byBucket.has(x) ? byBucket.get(x)[key] : undefined));
  const figure = lineChart("anomalies", "Duration, with anomalous runs marked", xs, [
    { label: "p50", values: line("p50_duration"), format: duration },
    { label: "p95", values: line("p95_duration"), format: duration },
    { label: "Anomalous run", values: xs.map((x) => byRun.get(x)), format: duration, points: true, colour: "#cf222e" },
  ], { leftFormat: duration, markers, minStep, partial });
  figure.dataset.flagged = String(flagged.length);
  return figure;
}
