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

// The flows the user may change (GET /api/v1/flows/: owned or granted write, every flow for an
// admin), asked again after a minute: a reader is not offered buttons that can only answer 403.
let writable = null;
let writableAt = 0;

export async function mayWrite(flowId) {
  if (!writable || Date.now() - writableAt > 60_000) {
    writableAt = Date.now();
    writable = get("/api/v1/flows/").then((flows) => new Set(flows.map((f) => f.id)));
    writable.catch(() => { writable = null; });
  }
  try {
    return (await writable).has(flowId);
  } catch {
    return true; // unknown: offer the action, whose answer then says why
  }
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
