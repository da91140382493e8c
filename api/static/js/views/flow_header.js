// The header every flow page shares: breadcrumbs, the flow's name and its tabs.
import { enc, get } from "../api.js";
import { h } from "../dom.js";

const cache = new Map();

export async function loadFlow(flowId) {
  if (!cache.has(flowId)) {
    const flow = get(`/api/v1/flows/${enc(flowId)}`);
    cache.set(flowId, flow);
    flow.catch(() => cache.delete(flowId));
  }
  return cache.get(flowId);
}

const TABS = [
  ["history", "History", ""],
  ["analytics", "Analytics", "/analytics"],
  ["alerts", "Alerts", "/alerts"],
  ["retention", "Retention", "/retention"],
];

export function flowHeader(flow, active, ...extraCrumbs) {
  const base = `#/flows/${enc(flow.id)}`;
  return [
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/" }, "Flows"), " / ",
      extraCrumbs.length ? [h("a", { href: base }, flow.name), ...extraCrumbs.flatMap((c) => [" / ", c])] : flow.name,
    ),
    h("h1", {}, flow.name),
    flow.description ? h("p", { class: "muted" }, flow.description) : null,
    h("nav", { class: "tabs", "aria-label": "Flow sections" },
      TABS.map(([key, label, suffix]) =>
        h("a", { href: base + suffix, "aria-current": key === active ? "page" : null, "data-tab": key }, label)),
    ),
  ];
}
