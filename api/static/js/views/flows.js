// The flows the user may read, with runs, success rate, p95 duration and cost over 7 days.
import { enc, get, post } from "../api.js";
import { empty, h, mount } from "../dom.js";
import { count, duration, money, percent } from "../format.js";

export async function render(root, _args, ctx) {
  const end = new Date();
  const start = new Date(end.getTime() - 7 * 86400_000);
  const [flows, metrics] = await Promise.all([
    get("/api/v1/flows/accessible"),
    post("/api/v1/metrics", {
      measures: ["runs", "success", "p95_duration", "cost"],
      start: start.toISOString(),
      end: end.toISOString(),
      bucket: "day",
      group_by: "flow",
      max_groups: 100,
      previous: false,
    }),
  ]);
  if (ctx.stale()) return;
  const byFlow = new Map(metrics.totals.map((t) => [t.group, t.measures]));
  const heading = h("h1", {}, "Flows");
  if (!flows.length) {
    mount(root, heading, empty("No flows yet", "Flows you own or may read appear here once they exist."));
    return;
  }
  flows.sort((a, b) => (byFlow.get(b.id)?.runs.value ?? 0) - (byFlow.get(a.id)?.runs.value ?? 0) || a.name.localeCompare(b.name));
  const rows = flows.map((f) => {
    const m = byFlow.get(f.id);
    const runs = m ? m.runs.value : 0;
    return h("tr", { "data-flow": f.id },
      h("td", {}, h("a", { href: `#/flows/${enc(f.id)}` }, f.name)),
      h("td", { class: "num" }, count(runs)),
      h("td", { class: "num" }, runs ? percent(m.success.value / runs) : "—"),
      h("td", { class: "num" }, runs ? duration(m.p95_duration.value) : "—"),
      h("td", { class: "num" }, runs ? money(m.cost.value) : "—"),
      h("td", { class: "hide-narrow" }, h("a", { href: `#/flows/${enc(f.id)}/analytics` }, "Analytics")),
    );
  });
  mount(root,
    heading,
    h("p", { class: "muted" }, `${flows.length} flow${flows.length === 1 ? "" : "s"} you may read; numbers cover the last 7 days.`),
    h("div", { class: "table-wrap" },
      h("table", { id: "flows-table" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Flow"),
          h("th", { scope: "col", class: "num" }, "Runs (7 d)"),
          h("th", { scope: "col", class: "num" }, "Success"),
          h("th", { scope: "col", class: "num" }, "p95"),
          h("th", { scope: "col", class: "num" }, "Cost"),
          h("th", { scope: "col", class: "hide-narrow" }, h("span", { class: "visually-hidden" }, "Links")),
        )),
        h("tbody", {}, rows),
      ),
    ),
  );
}
