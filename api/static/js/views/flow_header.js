// The header every flow page shares: breadcrumbs, the flow's name and its tabs.
import { auth, enc, get } from "../api.js";
import { h } from "../dom.js";

// A flow read once for a screen's header and its body, for a few seconds and for the signed-in
// user only: kept for good, a flow renamed (or its nodes changed) showed its old name until a reload
const FLOW_FRESH_MS = 5_000;
const cache = new Map();

export async function loadFlow(flowId) {
  const hit = cache.get(flowId);
  if (!hit || hit.token !== auth.token || Date.now() - hit.at > FLOW_FRESH_MS) {
    const flow = get(`/api/v1/flows/${enc(flowId)}`);
    cache.set(flowId, { flow, token: auth.token, at: Date.now() });
    flow.catch(() => cache.delete(flowId));
    return flow;
  }
  return hit.flow;
}

// The flows the user may change (GET /api/v1/flows/: owned or granted write, every flow for an
// admin), asked again after a minute or when another user signs in (an admin's list stayed for
// the reader who signed in next in the same tab, who was offered deletes that answer 403): a
// reader is not offered buttons that can only answer 403.
let writable = null;
let writableAt = 0;
let writableFor = null;

export async function mayWrite(flowId) {
  if (!writable || writableFor !== auth.token || Date.now() - writableAt > 60_000) {
    writableAt = Date.now();
    writableFor = auth.token;
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
