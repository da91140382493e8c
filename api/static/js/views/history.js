// The history panel of one flow: statistics of the filtered runs, filters, the runs list with
// each run's first error, paging, deletes.
import { del, enc, get, post, query } from "../api.js";
import { confirmAction, empty, errorPanel, h, loading, mount } from "../dom.js";
import { badge, clip, count, counted, duration, fieldTime, inZone, linkZone, money, percent, sameZone, shortId, shortVersion, timeZone, timestamp, tokens, zoneParam } from "../format.js";
import { nodeLabel } from "../node_labels.js";
import { flowHeader, loadFlow, mayWrite } from "./flow_header.js";

const PAGE = 50;
// the cards' p95 and cost cover the runs the counts do: from 1970 (where the metrics begin) to a
// day ahead (a run may be sent that far ahead). From 2000 to a minute ahead, they left out runs
// the total counted (a backfilled 1995, a clock an hour ahead)
const SINCE = "1970-01-01T00:00:00Z";
const AHEAD_MS = 25 * 3600_000;
const ERROR_CHARS = 80; // the list shows this much of a message; its tooltip has all of it
// URL parameter -> the filter it sets; all are kept in the URL (#/flows/ID?status=error&model=gpt-4o)
const FILTER_KEYS = ["status", "version", "model", "user", "error", "tags", "from", "to"];

// Filters live in the URL, so a reload or a shared link keeps them.
function filtersFrom(params) {
  return Object.fromEntries(FILTER_KEYS.map((k) => [k, params.get(k) || ""]));
}

// From/Until are read in the zone the link names (`tz`, format.js linkZone), else in the one the
// list shows times in, not the browser's: a Started time copied from a row finds that run. A
// value that is no time ("2026-02-30T10:00") is refused, never rolled over to another day.
export function searchFilter(flowId, f, zone = timeZone()) {
  const filter = { flow_id: { any_: [flowId] } };
  if (f.status) filter.status = { any_: [f.status] };
  if (f.version) filter.flow_version = { any_: [f.version] };
  if (f.model) filter.model = { any_: [f.model] };
  if (f.user) filter.user_id = { any_: [f.user] };
  if (f.error.trim()) filter.error = { contains_: f.error.trim() };
  const tags = f.tags.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) filter.tags = { all_: tags };
  if (f.from || f.to) {
    filter.created_at = {};
    if (f.from) filter.created_at.after_ = fieldTime("From", f.from, zone);
    if (f.to) filter.created_at.before_ = fieldTime("Until", f.to, zone);
  }
  return filter;
}

// The stats endpoint's parameters for the same filter the table's search uses.
function statsQuery(filter) {
  return query({
    status: filter.status?.any_,
    flow_version: filter.flow_version?.any_,
    model: filter.model?.any_,
    user_id: filter.user_id?.any_,
    start: filter.created_at?.after_,
    end: filter.created_at?.before_,
    error: filter.error?.contains_,
    tag: filter.tags?.all_,
  });
}

// A run's first error as one short line: "<node label>: <message>"; the tooltip has it whole.
function errorCell(run, flow) {
  if (!run.error_message) return h("td", { class: "err-cell", "data-col": "error" });
  const where = run.error_node ? nodeLabel(flow, run.error_node) : "";
  const text = where ? `${where}: ${run.error_message}` : run.error_message;
  const full = run.error_node ? `${where} (${run.error_node}): ${run.error_message}` : run.error_message;
  return h("td", { class: "err-cell", "data-col": "error", title: full, "data-node-id": run.error_node || null }, clip(text, ERROR_CHARS));
}

// A select of the values the flow's runs have (facets), "Any" first; the URL's value stays
// selectable even when no run has it (any more).
function choiceSelect(id, name, current, facet, describe = (v) => v) {
  const values = (facet?.values || []).map((v) => [v.value, `${describe(v.value)} (${count(v.runs)})`]);
  if (current && !values.some(([v]) => v === current)) values.unshift([current, `${describe(current)} (0)`]);
  return h("select", { id, name, "data-choices": String(values.length) },
    h("option", { value: "", selected: !current }, "Any"),
    values.map(([v, label]) => h("option", { value: v, selected: v === current }, label)));
}

function statCard(label, value, key) {
  return h("div", { class: "card", "data-stat": key }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function statsCards(stats, metrics) {
  const total = stats.total_executions;
  const m = metrics ? metrics.totals[0].measures : null;
  return [
    statCard("Total runs", count(total), "total"),
    statCard("Success rate", total ? percent(stats.success_count / total) : "—", "success_rate"),
    statCard("Avg duration", total ? duration(stats.avg_execution_time) : "—", "avg"),
    statCard("p95 duration", m && total ? duration(m.p95_duration.value) : "—", "p95"),
    statCard("Cost", m ? money(m.cost.value) : "—", "cost"),
    statCard("Errors / aborted", `${count(stats.error_count)} / ${count(stats.aborted_count)}`, "errors"),
  ];
}

function filterForm(f, facets, zone, onApply, onClear) {
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const versionLabel = (v) => (v.length > 12 ? `${shortVersion(v)}…` : v);
  const form = h("form", { class: "panel form-row", id: "filters", role: "search", "aria-label": "Filter runs" },
    field("f-status", "Status",
      h("select", { id: "f-status", name: "status" },
        [["", "Any"], ["success", "✓ success"], ["error", "✗ error"], ["aborted", "⊘ aborted"]].map(([v, l]) =>
          h("option", { value: v, selected: v === f.status }, l)))),
    field("f-version", "Flow version", choiceSelect("f-version", "version", f.version, facets?.flow_version, versionLabel)),
    field("f-model", "Model", choiceSelect("f-model", "model", f.model, facets?.model)),
    field("f-user", "User", choiceSelect("f-user", "user", f.user, facets?.user_id)),
    field("f-error", "Text in errors", h("input", { id: "f-error", name: "error", type: "search", value: f.error, placeholder: "timeout" })),
    field("f-tags", "Tags (all of)", h("input", { id: "f-tags", name: "tags", value: f.tags, placeholder: "regression, slow" })),
    field("f-from", inZone("From", zone), h("input", { id: "f-from", name: "from", type: "datetime-local", step: 1, value: f.from })),
    field("f-to", inZone("Until", zone), h("input", { id: "f-to", name: "to", type: "datetime-local", step: 1, value: f.to })),
    h("div", { class: "field" },
      h("button", { type: "submit", class: "btn btn-primary" }, "Apply"), " ",
      h("button", { type: "button", class: "btn", onclick: onClear }, "Clear")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    onApply(Object.fromEntries(FILTER_KEYS.map((k) => [k, String(data.get(k) || "")])));
  });
  return form;
}

export async function render(root, [flowId], ctx) {
  const f = filtersFrom(ctx.params);
  const base = `/api/v1/flows/${enc(flowId)}/executions`;
  const filtered = Object.values(f).some(Boolean);
  let filter;
  let zone = timeZone(); // the link's zone; a tz that names none is said where the runs go
  try {
    zone = linkZone(ctx.params);
    filter = searchFilter(flowId, f, zone);
  } catch (err) {
    filter = null;
    f.error_message = err.message;
  }
  // the page's own refusal (a from/to that is no time, a tz that names no zone): said in the
  // same words as Search, with no status (no request was sent) and no "Try again" (the same
  // link is refused again)
  const refusal = filter ? null : new Error(f.error_message);
  // Start every request at once; each part of the screen fills in as its answer comes.
  const flowP = loadFlow(flowId);
  // the cards follow the filters: the same filter as the table's, as the stats' parameters
  const loadStats = () => {
    const stats = filter ? get(`${base}/stats${statsQuery(filter)}`) : Promise.reject(refusal);
    stats.catch(() => {}); // shown where the stats go; unhandled only if the flow itself failed
    const metrics = filter ? post("/api/v1/metrics", {
      measures: ["p95_duration", "cost"],
      start: SINCE,
      end: new Date(Date.now() + AHEAD_MS).toISOString(),
      bucket: "month",
      filter,
      previous: false,
    }).catch(() => null) : Promise.resolve(null);
    return [stats, metrics];
  };
  const [statsP, metricsP] = loadStats();
  const facetsP = get(`${base}/facets`).catch(() => null); // without them the choices list only "Any"
  const pageP = filter
    ? post("/api/v1/executions/search", { filter, limit: PAGE, include_errors: true })
    : Promise.reject(refusal);
  pageP.catch(() => {});

  const [flow, facets, canWrite] = await Promise.all([flowP, facetsP, mayWrite(flowId)]);
  if (ctx.stale()) return;
  const statsBox = h("section", { class: "cards", id: "stats", "aria-label": filtered ? "Statistics of the filtered runs" : "Statistics",
    "data-filtered": String(filtered) }, loading("Loading statistics…"));
  const listBox = h("section", { id: "runs", "aria-label": "Runs" }, loading("Loading runs…"));
  const applyFilters = (next) => {
    const q = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    // times say the zone they are in (the one their labels name), for whoever opens the link
    if (q.has("from") || q.has("to")) q.set("tz", zoneParam(zone));
    const s = q.toString();
    ctx.navigate(`#/flows/${enc(flowId)}${s ? `?${s}` : ""}`);
  };
  const deleteAll = h("button", { type: "button", class: "btn btn-danger", id: "delete-all", disabled: true }, "Delete all runs");
  mount(root,
    ...flowHeader(flow, "history"),
    filtered ? h("p", { class: "muted", id: "stats-scope" }, "Statistics of the runs matching the filters below.") : null,
    statsBox,
    !sameZone(zone, timeZone()) && (f.from || f.to)
      ? h("p", { class: "muted", id: "filters-zone" }, `From and Until are in ${zone}, the time zone this link was written in; the runs' times are in ${timeZone()}.`)
      : null,
    filterForm(f, facets, zone, applyFilters, () => applyFilters({})),
    listBox,
    canWrite ? h("div", { class: "toolbar" }, h("span", { class: "spacer" }), deleteAll) : null,
  );

  const showStats = (parts) => Promise.all(parts).then(([stats, metrics]) => {
    if (ctx.stale()) return;
    mount(statsBox, ...statsCards(stats, metrics));
    statsBox.dataset.total = String(stats.total_executions);
  }, (err) => {
    if (!ctx.stale()) mount(statsBox, errorPanel(err, filter ? () => showStats(loadStats()) : null));
  });
  showStats([statsP, metricsP]);
  // "Delete all" deletes every run of the flow, whatever the filters: it says how many from the
  // unfiltered stats
  (filtered ? get(`${base}/stats`) : statsP).then((all) => {
    if (ctx.stale()) return;
    deleteAll.disabled = all.total_executions === 0;
    deleteAll.onclick = async () => {
      const ok = await confirmAction(
        "Delete all runs?",
        `All ${count(all.total_executions)} runs of “${flow.name}” will be deleted. This cannot be undone.`,
        "Delete all",
      );
      if (!ok) return;
      try {
        await del(base);
        ctx.navigate(location.hash);
      } catch (err) {
        mount(listBox, errorPanel(err));
      }
    };
  }, () => {});

  let page;
  try {
    page = await pageP;
  } catch (err) {
    if (!ctx.stale()) mount(listBox, errorPanel(err, filter ? () => ctx.navigate(location.hash) : null));
    return;
  }
  if (ctx.stale()) return;
  if (page.total === 0) {
    mount(listBox, filtered
      ? empty("No runs match these filters", "Change or clear the filters to see more runs. ",
        h("button", { type: "button", class: "linklike", onclick: () => applyFilters({}) }, "Clear filters"))
      : empty("No runs yet", "Runs appear here once the flow has been executed and its history saved. "
        + "If you may only read this flow, you see the runs you saved yourself."));
    return;
  }
  renderList(listBox, page, { flowId, filter, base, ctx, flow, canWrite });
}

function renderList(listBox, first, { flowId, filter, base, ctx, flow, canWrite }) {
  const selected = new Set();
  const tbody = h("tbody", {});
  const summary = h("p", { class: "muted", id: "runs-summary", role: "status" });
  const compareBtn = h("button", { type: "button", class: "btn", id: "compare-selected", disabled: true }, "Compare selected");
  const more = h("button", { type: "button", class: "btn", id: "load-more" }, "Load more");
  let shown = 0;
  let cursor = first.next_cursor;

  const updateSummary = () => {
    summary.textContent = `Showing ${count(shown)} of ${counted(first.total, "run")}`;
    more.hidden = !cursor;
    compareBtn.disabled = selected.size !== 2;
    compareBtn.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  };
  compareBtn.addEventListener("click", () => {
    const [a, b] = [...selected];
    ctx.navigate(`#/compare/${enc(a)}/${enc(b)}`);
  });

  const addRows = (items) => {
    for (const run of items) {
      const when = timestamp(run.created_at);
      const pick = h("input", {
        type: "checkbox", "aria-label": `Select run of ${when} to compare`,
        onchange: (ev) => {
          if (ev.target.checked) selected.add(run.id);
          else selected.delete(run.id);
          updateSummary();
        },
      });
      const remove = h("button", {
        type: "button", class: "btn btn-danger btn-small", "aria-label": `Delete run of ${when}`, "data-action": "delete",
        onclick: async () => {
          const ok = await confirmAction("Delete this run?", `The run of ${when} (${shortId(run.id)}) will be deleted. This cannot be undone.`);
          if (!ok) return;
          try {
            await del(`${base}/${enc(run.id)}`);
            ctx.navigate(location.hash);
          } catch (err) {
            // gone already (deleted in another tab or by retention): as asked, and this list is
            // out of date, so it is read again (it kept the row and the old counts under a 404)
            if (err.status === 404) ctx.navigate(location.hash);
            else listBox.prepend(errorPanel(err));
          }
        },
      }, "Delete");
      tbody.append(h("tr", { "data-id": run.id, "data-status": run.status, class: run.status === "error" ? "row-error" : "" },
        h("td", {}, pick),
        h("td", {}, badge(run.status)),
        h("td", {}, h("a", { href: `#/flows/${enc(flowId)}/runs/${enc(run.id)}`, class: "run-link" }, when)),
        h("td", { class: "num", "data-ms": run.execution_time }, duration(run.execution_time)),
        errorCell(run, flow),
        h("td", { class: "num hide-narrow" }, tokens(run.tokens_in, run.tokens_out, run.tokens_estimated)),
        h("td", { class: "num hide-narrow" }, money(run.cost)),
        h("td", { class: "hide-narrow" }, run.user_id),
        h("td", { class: "col-actions" }, canWrite ? remove : null),
      ));
    }
    shown += items.length;
    updateSummary();
  };

  // a page that failed says why under the list, with "Try again" for that page
  const failure = h("div", { id: "load-more-error" });
  const loadMore = async () => {
    more.disabled = true;
    mount(failure);
    try {
      const next = await post("/api/v1/executions/search", { filter, limit: PAGE, cursor, include_errors: true });
      if (ctx.stale()) return;
      cursor = next.next_cursor;
      addRows(next.items);
    } catch (err) {
      if (!ctx.stale()) mount(failure, errorPanel(err, loadMore));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", loadMore);

  mount(listBox,
    h("div", { class: "toolbar" }, summary, h("span", { class: "spacer" }), compareBtn),
    h("div", { class: "table-wrap" },
      h("table", { id: "runs-table" },
        h("caption", { class: "visually-hidden" }, "Runs, newest first"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Select")),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, inZone("Started")),
          h("th", { scope: "col", class: "num" }, "Duration"),
          h("th", { scope: "col" }, "Error"),
          h("th", { scope: "col", class: "num hide-narrow" }, "Tokens"),
          h("th", { scope: "col", class: "num hide-narrow" }, "Cost"),
          h("th", { scope: "col", class: "hide-narrow" }, "User"),
          h("th", { scope: "col", class: "col-actions" }, h("span", { class: "visually-hidden" }, "Actions")),
        )),
        tbody,
      ),
    ),
    failure,
    h("div", { class: "toolbar" }, more),
  );
  addRows(first.items);
}
