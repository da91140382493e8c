// Two runs side by side, node by node against the first; nodes that differ come first, named
// by their labels in the flow's definition.
import { enc, get, post } from "../api.js";
import { h, mount } from "../dom.js";
import { badge, clip, duration, money, shortId, tokens, zoned } from "../format.js";
import { definitionThatRan, graphOrder, nodeName } from "../node_labels.js";
import { loadFlow } from "./flow_header.js";

function preview(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text === undefined) return "—";
  return clip(text, 121);
}

function diffList(diff) {
  if (!diff) return h("p", { class: "muted" }, "Baseline");
  if (!diff.changes.length) return h("p", { class: "muted" }, "Same result");
  return h("ul", { class: "diff" },
    diff.changes.map((c) => h("li", { class: `diff-${c.kind}`, "data-kind": c.kind },
      h("code", {}, c.path || "(whole result)"), ` ${c.kind}: `,
      c.kind !== "added" ? h("span", { class: "diff-removed" }, preview(c.old)) : null,
      c.kind === "changed" ? " → " : null,
      c.kind !== "removed" ? h("span", { class: "diff-added" }, preview(c.new)) : null)),
    diff.truncated ? h("li", { class: "muted" }, "…more changes not shown") : null);
}

function nodeCell(r, i) {
  const label = i === 0 ? "Baseline" : "Compared";
  if (!r.present) return h("td", { class: "muted", "data-label": label }, "not in this run");
  return h("td", { "data-label": label },
    h("div", { class: "toolbar" }, badge(r.status), r.duration_ms != null ? h("span", {}, duration(r.duration_ms)) : null),
    r.tokens_in != null || r.tokens_out != null || r.cost != null
      ? h("div", { class: "muted" }, tokens(r.tokens_in, r.tokens_out, r.tokens_estimated), " · ", money(r.cost)) : null,
    r.error ? h("pre", { class: "errors-box" }, r.error) : null,
    diffList(r.diff));
}

// Each run's definition that ran (its replay), else today's flow, else null (ids are shown).
async function definitions(runs) {
  return Promise.all(runs.map(async (r) => {
    const [flow, replay] = await Promise.all([
      loadFlow(r.flow_id).catch(() => null),
      get(`/api/v1/flows/${enc(r.flow_id)}/executions/${enc(r.id)}/replay`).catch(() => null),
    ]);
    return flow ? definitionThatRan(flow, replay) : null;
  }));
}

// Labels from the baseline's definition, then the compared run's (a node only it has); the
// API's order (differing nodes first) kept, each group in the baseline's graph order.
function byDefinitions(nodes, defs) {
  const label = (id) => defs.find((d) => d && d.nodes.some((n) => n && String(n.id) === id)) || defs.find(Boolean) || null;
  const ids = nodes.map((n) => n.node_id);
  const order = defs.reduceRight((o, d) => (d ? graphOrder(d, o) : o), ids);
  const rank = new Map(order.map((id, i) => [id, i]));
  const sorted = [...nodes].sort((x, y) => Number(y.differs) - Number(x.differs) || rank.get(x.node_id) - rank.get(y.node_id));
  return { sorted, label };
}

export async function render(root, [a, b], ctx) {
  const result = await post("/api/v1/executions/compare", { ids: [a, b] });
  if (ctx.stale()) return;
  const runs = result.executions;
  const flowId = runs[0].flow_id;
  const defs = await definitions(runs);
  if (ctx.stale()) return;
  const { sorted, label } = byDefinitions(result.nodes, defs);
  const differing = result.nodes.filter((n) => n.differs).length;
  mount(root,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/" }, "Flows"), " / ", h("a", { href: `#/flows/${enc(flowId)}` }, "History"), " / Compare"),
    h("h1", {}, "Compare runs"),
    h("div", { class: "compare-grid", id: "compare-runs" },
      runs.map((r, i) => h("section", { class: "panel", "data-run": r.id },
        h("h2", { style: "margin-top:0" }, i === 0 ? "Baseline " : "Compared ",
          h("a", { href: `#/flows/${enc(r.flow_id)}/runs/${enc(r.id)}` }, shortId(r.id))),
        h("div", { class: "toolbar" }, badge(r.status), zoned(r.created_at)),
        h("p", {}, `${duration(r.execution_time)} · ${tokens(r.tokens_in, r.tokens_out, r.tokens_estimated)} · ${money(r.cost)}`),
        r.flow_id !== flowId ? h("p", { class: "notice" }, "From another flow") : null,
        runs[0].flow_version !== r.flow_version ? h("p", { class: "notice" }, "Another flow version") : null))),
    h("h2", {}, `Nodes (${differing} of ${result.nodes.length} differ)`),
    h("div", { class: "table-wrap" },
      h("table", { id: "compare-nodes" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Node"),
          runs.map((r, i) => h("th", { scope: "col" }, i === 0 ? "Baseline" : "Compared", " ", shortId(r.id))))),
        h("tbody", {}, sorted.map((n) =>
          h("tr", { class: n.differs ? "differs" : "", "data-node": n.node_id, "data-differs": String(n.differs) },
            h("th", { scope: "row" }, nodeName(label(n.node_id), n.node_id), n.differs ? h("div", {}, h("span", { class: "badge badge-other" }, "differs")) : null),
            n.runs.map((r, i) => nodeCell(r, i))))))),
  );
}
