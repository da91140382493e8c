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
