// Node names as the flow's definition gives them (`data.label`, `data.name` ...) instead of the
// editor's ids (`model_1739905519876_k3j9x2abq`); the id stays in the tooltip. Nodes the
// definition lacks (removed since the run, or never named) show their id.
import { h } from "./dom.js";

export function nodeLabel(flow, id) {
  const n = ((flow && flow.nodes) || []).find((x) => x && String(x.id) === id);
  const label = n && (n.data?.label || n.data?.name || n.label || n.name);
  return typeof label === "string" && label.trim() ? label.trim() : id;
}

// The label as an element: its tooltip and `data-node-id` carry the id.
export function nodeName(flow, id, attrs = {}) {
  return h("span", { ...attrs, class: ["node-label", attrs.class].filter(Boolean).join(" "), title: id, "data-node-id": id }, nodeLabel(flow, id));
}

// The flow's nodes in graph order: a topological order of its edges (Kahn's; ties, and any
// nodes left in a cycle, in definition order), then nodes the run has but the definition lacks.
export function graphOrder(flow, runNodeIds) {
  const defined = (flow.nodes || []).map((n) => String(n.id));
  const known = new Set(defined);
  const indegree = new Map(defined.map((id) => [id, 0]));
  const next = new Map(defined.map((id) => [id, []]));
  for (const e of flow.edges || []) {
    const [a, b] = [String(e.source), String(e.target)];
    if (!known.has(a) || !known.has(b) || a === b) continue;
    next.get(a).push(b);
    indegree.set(b, indegree.get(b) + 1);
  }
  const order = [];
  const done = new Set();
  while (order.length < defined.length) {
    const ready = defined.find((id) => !done.has(id) && indegree.get(id) === 0)
      ?? defined.find((id) => !done.has(id)); // a cycle: take the first left
    done.add(ready);
    order.push(ready);
    for (const b of next.get(ready)) indegree.set(b, indegree.get(b) - 1);
  }
  return [...order, ...runNodeIds.filter((id) => !known.has(id))];
}

// The definition a run ran with, from its replay (`GET .../replay`): the flow as it is today
// when the replay could not be had or its definition *is* today's (the version that ran is
// unknown); else today's flow with the nodes and edges of the version that ran, so an old run
// is labelled and ordered as it ran, not as the flow reads now.
export function definitionThatRan(flow, replay) {
  if (!replay || replay.definition_is_current || !replay.definition) return flow;
  const { nodes, edges, version } = replay.definition;
  return { ...flow, nodes: nodes || [], edges: edges || [], ranVersion: version };
}
