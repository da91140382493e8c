// Line charts with uPlot (vendored, MIT). Each chart's <figure> says how many points it drew
// (data-points) once uPlot has drawn them, so tests and people can check the picture.
//
// Honest pictures: a null value (a bucket without runs) is a gap, never a zero (spanGaps
// false); an undefined value is "no point at this x" (a run's time that is not a bucket) and
// is joined across. Time ticks and the legend follow the chosen zone (format.js), so daily
// ticks fall on that zone's midnights. Vertical markers (version changes) are drawn on top and
// counted in data-markers.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";
import { LOCALE, timeZone } from "./format.js";

const COLOURS = ["#0550ae", "#a40e26", "#116329", "#8250df"];
const MARKER = "#9a6700";
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

const HOUR = 3600;
const DAY = 86400;
// Tick steps uPlot may pick from (seconds). A chart of day buckets starts at a day: uPlot's own
// list would put ticks 8 h apart between daily points, labelled with times of day.
const STEPS = [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR, 8 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 60 * DAY, 90 * DAY, 180 * DAY, 365 * DAY];
const AXIS_FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

// Tick labels in the chosen zone and locale: a time of day where ticks are less than a day
// apart, else the date (ticks a day or more apart fall on that zone's midnights).
function tickFormat(step, zone = timeZone()) {
  return step < DAY
    ? { hour: "2-digit", minute: "2-digit", timeZone: zone }
    : { month: "short", day: "numeric", timeZone: zone };
}

function tickLabels(ticks, step, zone = timeZone()) {
  const opts = tickFormat(step, zone);
  return ticks.map((t) => new Date(t * 1000).toLocaleString(LOCALE, opts));
}

// The widest label a format can give (every month, a two-digit day; every hour), measured in
// the axis font: ticks are at least that far apart plus a gap, so labels never overlap.
let measure = null;
function widestLabel(step) {
  measure = measure || document.createElement("canvas").getContext("2d");
  measure.font = AXIS_FONT;
  const samples = step < DAY
    ? Array.from({ length: 24 }, (_, hr) => Date.UTC(2026, 0, 1, hr, 0) / 1000)
    : Array.from({ length: 12 }, (_, mo) => Date.UTC(2026, mo, 28, 12) / 1000);
  return Math.max(...tickLabels(samples, step).map((t) => measure.measureText(t).width));
}

function tickSpace(minStep) {
  const widest = Math.max(...(minStep < DAY ? [HOUR, DAY] : [DAY]).map(widestLabel));
  return Math.ceil(widest * 1.15) + 12; // month ticks vary (28-31 days): keep a margin
}

function drawMarkers(u, markers) {
  const { ctx } = u;
  const { top, height } = u.bbox;
  ctx.save();
  ctx.strokeStyle = MARKER;
  ctx.fillStyle = MARKER;
  ctx.lineWidth = Math.max(1, devicePixelRatio);
  ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  for (const m of markers) {
    const x = Math.round(u.valToPos(m.x, "x", true));
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.fillText(m.label, x + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
  }
  ctx.restore();
}

// The bucket that holds `now` is still filling: its x when it is the last one drawn, else null.
export function partialBucket(xs, step, nowSeconds) {
  const last = xs[xs.length - 1];
  return last !== undefined && last <= nowSeconds && nowSeconds < last + step ? last : null;
}

// The bucket still filling (the last, holding now), shaded from halfway to the point before it to
// the right edge and labelled, so its low numbers do not read as a collapse.
function drawPartial(u, x, step) {
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const from = Math.max(left, Math.round(u.valToPos(x - step / 2, "x", true)));
  const right = left + width;
  if (from >= right) return;
  ctx.save();
  ctx.fillStyle = "rgba(87, 96, 106, 0.12)";
  ctx.fillRect(from, top, right - from, height);
  ctx.fillStyle = "#57606a";
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  ctx.textAlign = "right";
  ctx.fillText("partial", right - 3 * devicePixelRatio, top + height - 4 * devicePixelRatio);
  ctx.restore();
}

// series: [{label, values, axis: "left"|"right", format, points: true (points only, no line)}]
// markers: [{x (epoch seconds), label}]; minStep: the smallest tick step (seconds), the bucket's;
// partial: the x of a bucket not over yet (shaded, data-partial), or null; zone: the zone the
// buckets were cut in (the chosen one unless the data says otherwise: Cost's days are UTC days)
export function lineChart(key, title, xs, series, { leftFormat, rightFormat, markers = [], minStep = HOUR, partial = null, zone = timeZone() } = {}) {
  const figure = h("figure", { class: "chart", "data-chart": key, "data-points": "0" },
    h("figcaption", { id: `chart-${key}-title` }, title));
  const holder = h("div", { role: "img", "aria-labelledby": `chart-${key}-title`, "aria-describedby": `chart-${key}-desc` });
  const shown = markers.filter((m) => xs.length && m.x >= xs[0] && m.x <= xs[xs.length - 1]);
  const desc = h("p", { class: "visually-hidden", id: `chart-${key}-desc` },
    [...series.map((s) => `${s.label}: ${s.values.filter((v) => v != null).length} points`),
      ...shown.map((m) => `marker: ${m.label}`), partial !== null ? "the last point is partial: its bucket is not over" : null].filter(Boolean).join("; "));
  figure.append(holder, desc);
  figure.dataset.markers = String(shown.length);
  if (partial !== null) figure.dataset.partial = String(partial);
  figure.dataset.gaps = String(series.reduce((n, s) => n + s.values.filter((v) => v === null).length, 0));
  const hasRight = series.some((s) => s.axis === "right");
  let drawnTicks = []; // [epoch seconds, label] of the x axis, as last laid out
  const opts = {
    width: 600,
    height: 220,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
    legend: { show: true },
    cursor: { points: { size: 6 } },
    // the right (rate) axis spans at least 5 points: a flat 0 % gets ticks 0 %, 1 % ... 5 %,
    // not rounded repeats ("1% 1% 0%") of a hair-thin range
    scales: { x: { time: true }, y: { auto: true, range: (_u, min, max) => [Math.min(0, min ?? 0), max > 0 ? max * 1.1 : 1] }, r: { auto: true, range: (_u, _min, max) => [0, Math.max((max ?? 0) * 1.1, 0.05)] } },
    axes: [
      {
        stroke: "#57606a", grid: { stroke: "#eaeef2" }, font: AXIS_FONT,
        incrs: STEPS.filter((s) => s >= minStep), space: tickSpace(minStep),
        values: (_u, ticks, _space, _incr, foundIncr) => {
          const labels = tickLabels(ticks, foundIncr, zone);
          drawnTicks = ticks.map((t, i) => [t, labels[i]]);
          return labels;
        },
      },
      { stroke: "#57606a", grid: { stroke: "#eaeef2" }, values: leftFormat ? (_u, ticks) => ticks.map(leftFormat) : undefined, size: 84 },
      hasRight ? { scale: "r", side: 1, stroke: "#a40e26", grid: { show: false }, values: rightFormat ? (_u, ticks) => ticks.map(rightFormat) : undefined, size: 56 } : null,
    ].filter(Boolean),
    series: [
      // a day's point reads as its date, not as that midnight in another zone ("Nov 30, 4:00 PM")
      { value: (_u, t) => (t == null ? "—" : new Date(t * 1000).toLocaleString(LOCALE, minStep >= DAY ? { dateStyle: "medium", timeZone: zone } : { dateStyle: "medium", timeStyle: "short", timeZone: zone })) },
      ...series.map((s, i) => ({
        label: s.label,
        scale: s.axis === "right" ? "r" : "y",
        stroke: s.colour || COLOURS[i % COLOURS.length],
        width: s.points ? 0 : 2,
        spanGaps: false,
        paths: s.points ? () => null : undefined,
        points: s.points
          ? { show: true, size: 9, fill: s.colour || COLOURS[i % COLOURS.length], stroke: "#ffffff" }
          : { show: xs.length <= 60, size: 5 },
        value: s.format ? (_u, v) => (v == null ? "—" : s.format(v)) : undefined,
      })),
    ],
    hooks: {
      draw: [(u) => {
        if (partial !== null) drawPartial(u, partial, minStep);
        if (shown.length) drawMarkers(u, shown);
        figure.dataset.points = String(u.data[0].length);
        // the x ticks as drawn, [css px, label], for tests and people checking the axis
        figure.dataset.xTicks = JSON.stringify(drawnTicks.map(([t, label]) => [Math.round(u.valToPos(t, "x")), label]));
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
