// Line charts with uPlot (vendored, MIT). Each chart's <figure> says how many points it drew
// (data-points) once uPlot has drawn them, so tests and people can check the picture.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";

const COLOURS = ["#0550ae", "#a40e26", "#116329", "#8250df"];
const live = new Set();

function widthOf(el) {
  return Math.max(240, Math.floor(el.getBoundingClientRect().width) - 4);
}

window.addEventListener("resize", () => {
  for (const chart of live) {
    if (!chart.root.isConnected) {
      chart.destroy();
      live.delete(chart);
    } else {
      chart.setSize({ width: widthOf(chart.root.parentElement), height: chart.height });
    }
  }
});

// series: [{label, values, axis: "left"|"right", format}]
export function lineChart(key, title, xs, series, { leftFormat, rightFormat } = {}) {
  const figure = h("figure", { class: "chart", "data-chart": key, "data-points": "0" },
    h("figcaption", { id: `chart-${key}-title` }, title));
  const holder = h("div", { role: "img", "aria-labelledby": `chart-${key}-title`, "aria-describedby": `chart-${key}-desc` });
  const desc = h("p", { class: "visually-hidden", id: `chart-${key}-desc` },
    series.map((s) => `${s.label}: ${s.values.length} points`).join("; "));
  figure.append(holder, desc);
  const hasRight = series.some((s) => s.axis === "right");
  const opts = {
    width: 600,
    height: 220,
    legend: { show: true },
    cursor: { points: { size: 6 } },
    scales: { x: { time: true }, y: { auto: true, range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] }, r: { auto: true, range: (_u, min, max) => [0, Math.max(max * 1.1, 0.01)] } },
    axes: [
      { stroke: "#57606a", grid: { stroke: "#eaeef2" } },
      { stroke: "#57606a", grid: { stroke: "#eaeef2" }, values: leftFormat ? (_u, ticks) => ticks.map(leftFormat) : undefined, size: 84 },
      hasRight ? { scale: "r", side: 1, stroke: "#a40e26", grid: { show: false }, values: rightFormat ? (_u, ticks) => ticks.map(rightFormat) : undefined, size: 56 } : null,
    ].filter(Boolean),
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        scale: s.axis === "right" ? "r" : "y",
        stroke: COLOURS[i % COLOURS.length],
        width: 2,
        points: { show: xs.length <= 60, size: 5 },
        value: s.format ? (_u, v) => (v == null ? "—" : s.format(v)) : undefined,
      })),
    ],
    hooks: {
      draw: [(u) => {
        figure.dataset.points = String(u.data[0].length);
        figure.dataset.drawn = "true";
      }],
    },
  };
  const data = [xs, ...series.map((s) => s.values)];
  // uPlot measures its container: build it once the figure is in the page.
  requestAnimationFrame(() => {
    opts.width = widthOf(figure);
    const chart = new uPlot(opts, data, holder);
    chart.height = opts.height;
    live.add(chart);
  });
  return figure;
}
