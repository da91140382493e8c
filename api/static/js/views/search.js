// Search across every flow the user may read. The form's fields are the search API's filters and
// live in the URL (#/search?status=error&error=timeout...): a reload or a shared link gives the
// same results. From/Until come with the zone they were written in (`tz`, format.js linkZone).
import { enc, get, post } from "../api.js";
import { empty, errorPanel, h, loading, mount } from "../dom.js";
import { badge, clip, count, counted, duration, fieldTime, fieldValue, inZone, linkZone, money, sameZone, shortId, shortVersion, timeZone, timestamp, tokens, zoneParam } from "../format.js";

const PAGE = 50;
const ERROR_CHARS = 80; // the list shows this much of a message; its tooltip has all of it
// URL parameter -> [label, input type]
const FIELDS = [
  ["flow", "Flow"],
  ["node", "Node id (runs that have it)", "text"],
  ["failed_node", "Failed at node (id)", "text"],
  ["status", "Status"],
  ["after", "From", "datetime-local"],
  ["before", "Until", "datetime-local"],
  ["min_ms", "Min duration (ms)", "number"],
  ["max_ms", "Max duration (ms)", "number"],
  ["error", "Error text contains", "search"],
  ["signature", "Failure signature", "text"],
  ["signature_node", "Signature's node (empty: the run's own error)", "text"],
  ["version", "Flow version", "text"],
  ["model", "Model", "text"],
  ["user", "User", "text"],
  ["tags", "Tags (all of, comma-separated)", "text"],
  ["rating", "Rating"],
  ["meta", "Meta (key=value, comma-separated)", "text"],
  ["sort", "Sort"],
];

const list = (v) => v.split(",").map((s) => s.trim()).filter(Boolean);
// fields sent as typed (a signature may end in a space, a node id hold one)
const EXACT = new Set(["signature", "signature_node"]);
// From/Until are read in the zone the link names (`tz`), else in the one the results show
// times in (UTC unless the user chose local).
const TIME_FIELDS = new Set(["after", "before"]);

const LABELS = new Map(FIELDS.map(([key, label]) => [key, label]));

// A number of the link (durations, rating): one that is no number ("abc") throws, naming the
// field; Number() read it as NaN, sent as null, and every run was shown. Whether it is whole, at
// least 0 or a rating the API says, as it does for -5 and 1.5.
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
function numberField(key, text) {
  if (!text) return null;
  const n = Number(text);
  if (!NUMBER.test(text) || !Number.isFinite(n)) throw new Error(`${LABELS.get(key)}: "${text}" is not a number`);
  return n;
}

// The API filter for the URL's parameters; throws a message naming the field that is wrong.
export function filterFrom(params) {
  const f = {};
  const zone = linkZone(params);
  const p = (k) => (params.get(k) || "").trim();
  if (p("flow")) f.flow_id = { any_: [p("flow")] };
  if (p("node")) f.node_id = { any_: list(p("node")) };
  if (p("failed_node")) f.error_node = { any_: list(p("failed_node")) };
  if (p("status")) f.status = { any_: [p("status")] };
  if (p("after") || p("before")) f.created_at = { after_: fieldTime("From", p("after"), zone), before_: fieldTime("Until", p("before"), zone) };
  if (p("min_ms") || p("max_ms")) {
    f.execution_time = { ge_: numberField("min_ms", p("min_ms")), le_: numberField("max_ms", p("max_ms")) };
  }
  if (p("error")) f.error = { contains_: p("error") };
  // a signature and its node are matched exactly as /failures wrote them: not trimmed, and ""
  // is a value (an empty message, a node whose id is ""); no node given is the run's own error
  if (params.has("signature")) {
    f.error_signature = { node_id: params.has("signature_node") ? params.get("signature_node") : "global", equals_: params.get("signature") };
  } else if (p("signature_node")) throw new Error("Signature's node: give the failure signature too");
  if (p("version")) f.flow_version = { any_: list(p("version")) };
  if (p("model")) f.model = { any_: list(p("model")) };
  if (p("user")) f.user_id = { any_: list(p("user")) };
  if (p("tags")) f.tags = { all_: list(p("tags")) };
  if (p("rating")) f.rating = numberField("rating", p("rating"));
  if (p("meta")) {
    f.meta = {};
    for (const pair of list(p("meta"))) {
      const at = pair.indexOf("=");
      if (at < 1) throw new Error(`Meta: "${pair}" is not key=value`);
      f.meta[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
  }
  return f;
}

// The runs behind a failure signature's count (a row of /failures): same flow, node, signature
// and period (Search's From/Until). Epoch seconds, written in UTC (`tz=utc`) whatever the
// viewer's zone: an instant in the hour a zone has twice (clocks going back) has no wall time
// of that zone that names it alone, and read as the first such hour the link found more runs
// than its row counted.
export function signatureSearch(flowId, s, start, end) {
  const q = new URLSearchParams({ flow: flowId, signature: s.signature }); // "" kept, unlike query()
  if (s.node_id !== "global") q.set("signature_node", s.node_id);
  q.set("after", fieldValue(start, "UTC"));
  q.set("before", fieldValue(end, "UTC"));
  q.set("tz", zoneParam("UTC"));
  return `#/search?${q}`;
}

// A run's first error, "node: message", shortened; the whole text in the tooltip.
function errorCell(run) {
  if (!run.error_message) return h("td", { class: "err-cell", "data-col": "error" });
  const text = run.error_node ? `${run.error_node}: ${run.error_message}` : run.error_message;
  return h("td", { class: "err-cell", "data-col": "error", title: text, "data-node-id": run.error_node || null }, clip(text, ERROR_CHARS));
}

export async function render(root, _args, ctx) {
  const params = ctx.params;
  const flows = await get("/api/v1/flows/accessible");
  if (ctx.stale()) return;
  const names = new Map(flows.map((f) => [f.id, f.name]));
  const value = (k) => params.get(k) || "";
  // the zone the link's From/Until are in (a tz that names none: the viewer's, and the error
  // below says the link's times could not be read)
  let zone = timeZone();
  try {
    zone = linkZone(params);
  } catch { /* filterFrom throws it again, shown as the results' error */ }
  const control = ([key, text, type]) => {
    const id = `search-${key}`;
    let input;
    if (key === "flow") {
      // a flow of the link that is not in the list (deleted, or not readable) stays chosen, by
      // its id only: "All flows" read as what was searched, and Search unchanged found every run
      const unknown = value(key) && !names.has(value(key)) ? [h("option", { value: value(key), selected: true }, `${value(key)} (0)`)] : [];
      input = h("select", { id, name: key }, h("option", { value: "" }, "All flows"), unknown,
        [...flows].sort((a, b) => a.name.localeCompare(b.name)).map((f) => h("option", { value: f.id, selected: f.id === value(key) }, f.name)));
    } else if (key === "status") {
      input = h("select", { id, name: key }, [["", "Any"], ["success", "✓ success"], ["error", "✗ error (failed)"], ["aborted", "⊘ aborted"]]
        .map(([v, t]) => h("option", { value: v, selected: v === value(key) }, t)));
    } else if (key === "rating") {
      input = h("select", { id, name: key }, [["", "Any"], ["1", "👍 good"], ["-1", "👎 bad"]]
        .map(([v, t]) => h("option", { value: v, selected: v === value(key) }, t)));
    } else if (key === "sort") {
      input = h("select", { id, name: key }, [["-created_at", "Newest first"], ["created_at", "Oldest first"], ["-execution_time", "Slowest first"], ["execution_time", "Fastest first"]]
        .map(([v, t]) => h("option", { value: v, selected: v === (value(key) || "-created_at") }, t)));
    } else {
      input = h("input", { id, name: key, type, value: value(key), min: type === "number" ? 0 : null, step: TIME_FIELDS.has(key) ? 1 : null });
    }
    return h("div", { class: "field" }, h("label", { for: id }, TIME_FIELDS.has(key) ? inZone(text, zone) : text), input);
  };
  const form = h("form", { class: "panel search-form", id: "search-form", role: "search" },
    h("div", { class: "form-row" }, FIELDS.map(control)),
    h("div", { class: "toolbar" },
      h("button", { type: "submit", class: "btn btn-primary" }, "Search"),
      h("a", { class: "btn", href: "#/search" }, "Clear")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      const value = EXACT.has(k) ? String(v) : String(v).trim();
      if (value.trim() && !(k === "sort" && v === "-created_at")) q.set(k, value);
    }
    // times say the zone they are in (the one their labels name), for whoever opens the link
    if (q.has("after") || q.has("before")) q.set("tz", zoneParam(zone));
    const s = q.toString();
    ctx.navigate(`#/search${s ? `?${s}` : ""}`);
  });
  const results = h("section", { id: "search-results", "aria-label": "Results" }, loading());
  const otherZone = !sameZone(zone, timeZone()) && (value("after") || value("before"))
    ? h("p", { class: "muted", id: "search-zone" }, `From and Until are in ${zone}, the time zone this link was written in; the results' times are in ${timeZone()}.`)
    : null;
  mount(root, h("h1", {}, "Search runs"),
    h("p", { class: "muted" }, "Across every flow you may read. The filters are kept in the address: reload or share it for the same results."),
    otherZone, form, results);

  let filter;
  try {
    filter = filterFrom(params);
  } catch (err) {
    mount(results, errorPanel(err));
    return;
  }
  const rows = h("tbody", {});
  const summary = h("p", { id: "search-summary", class: "muted", role: "status" });
  const more = h("div", { class: "toolbar" });
  let shown = 0;
  const load = async (cursor) => {
    const page = await post("/api/v1/executions/search", { filter, sort: value("sort") || "-created_at", limit: PAGE, cursor, include_errors: true });
    if (ctx.stale()) return;
    shown += page.items.length;
    rows.append(...page.items.map((r) => h("tr", { "data-run": r.id, class: r.status === "error" ? "row-error" : null },
      h("td", {}, h("a", { href: `#/flows/${enc(r.flow_id)}/runs/${enc(r.id)}`, "aria-label": `Run ${shortId(r.id)}` }, shortId(r.id))),
      h("td", {}, h("a", { href: `#/flows/${enc(r.flow_id)}` }, names.get(r.flow_id) || r.flow_id)),
      h("td", {}, badge(r.status)),
      h("td", { class: "nowrap" }, timestamp(r.created_at)),
      h("td", { class: "num" }, duration(r.execution_time)),
      errorCell(r),
      h("td", { class: "num" }, tokens(r.tokens_in, r.tokens_out, r.tokens_estimated)),
      h("td", { class: "num" }, money(r.cost)),
      h("td", { class: "mono" }, r.flow_version ? shortVersion(r.flow_version) : "—"),
      h("td", {}, r.user_id))));
    summary.textContent = `Showing ${count(shown)} of ${counted(page.total, "run")}`;
    mount(more, page.next_cursor
      ? h("button", { type: "button", class: "btn", onclick: () => loadMore(page.next_cursor) }, "Load more")
      : null);
    if (!page.total) mount(results, summary, empty("No runs match these filters", "Change or clear the filters.", h("div", {}, h("a", { href: "#/search" }, "Clear the filters"))));
  };
  // a page that failed says why where its button was, with "Try again" for that page
  const loadMore = (cursor) => load(cursor).catch((err) => {
    if (!ctx.stale()) mount(more, errorPanel(err, () => loadMore(cursor)));
  });
  const headers = [["Run"], ["Flow"], ["Status"], [inZone("Time")], ["Duration", true], ["Error"], ["Tokens", true], ["Cost", true], ["Version"], ["User"]];
  mount(results, summary,
    h("div", { class: "table-wrap" }, h("table", { id: "search-table" },
      h("thead", {}, h("tr", {}, headers.map(([t, num]) => h("th", { scope: "col", class: num ? "num" : null }, t)))),
      rows)),
    more);
  try {
    await load(null);
  } catch (err) {
    if (!ctx.stale()) mount(results, errorPanel(err));
  }
}
