// How numbers, times and statuses read on screen.
import { h } from "./dom.js";

const BADGES = {
  success: ["✓", "success"],
  error: ["✗", "error"],
  aborted: ["⊘", "aborted"],
};

export function badge(status) {
  const [icon, label] = BADGES[status] || ["•", status || "unknown"];
  const cls = BADGES[status] ? `badge badge-${status}` : "badge badge-other";
  return h("span", { class: cls, "data-status": status }, h("span", { "aria-hidden": "true" }, icon), label);
}

// Under a second in ms, then seconds with sensible precision, then minutes.
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    return `${m} min ${Math.round(s - m * 60)} s`;
  }
  const hours = Math.floor(s / 3600);
  if (hours < 48) return `${hours} h ${Math.round((s - hours * 3600) / 60)} min`;
  return `${(hours / 24).toFixed(1)} d`;
}

export function timestamp(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return "—";
  const d = new Date(epochSeconds * 1000);
  return d.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function isoTime(epochSeconds) {
  return new Date(epochSeconds * 1000).toISOString();
}

export function money(usd) {
  if (usd === null || usd === undefined) return "—";
  if (usd === 0) return "$0";
  if (Math.abs(usd) < 0.01) return `$${usd.toPrecision(2)}`;
  return `$${usd.toFixed(2)}`;
}

export function percent(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return "—";
  return `${(ratio * 100).toFixed(digits)} %`;
}

export function count(n) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString("en-US");
}

export function tokens(tin, tout, estimated) {
  if (tin == null && tout == null) return "—";
  const text = `${count(tin ?? 0)} in / ${count(tout ?? 0)} out`;
  return estimated ? `${text} (est.)` : text;
}

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}
