// Placeholder until the alerts API lands: says so instead of failing.
import { h, mount } from "../dom.js";
import { flowHeader, loadFlow } from "./flow_header.js";

export async function render(root, [flowId], ctx) {
  const flow = await loadFlow(flowId);
  if (ctx.stale()) return;
  mount(root, ...flowHeader(flow, "alerts"), h("div", { class: "empty panel", "data-state": "unavailable" },
    h("strong", {}, "Not available yet"), "This server does not offer alerts yet."));
}
