// How numbers, times and statuses read on screen: one locale (the browser's) for dates and
// numbers on every screen, and one time zone, UTC or the browser's own, chosen on the Analytics
// screen and kept in localStorage (`flowhistory.tz`): dates and chart buckets follow it.
import { h } from "./dom.js";

export const LOCALE = (typeof navigator !== "undefined" && navigator.language) || "en-GB";
export const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const TZ_KEY = "flowhistory.tz";

// "utc" or "local"; UTC unless the user chose local.
export function zoneChoice() {
  try {
    return localStorage.getItem(TZ_KEY) === "local" ? "local" : "utc";
  } catch {
    return "utc";
  }
}

export function setZoneChoice(choice) {
  try {
    localStorage.setItem(TZ_KEY, choice === "local" ? "local" : "utc");
  } catch { /* private mode: the choice lasts this page */ }
}

// The IANA name of the chosen zone, as the API's `tz` takes it.
export function timeZone() {
  return zoneChoice() === "local" ? LOCAL_ZONE : "UTC";
}

const numberFormats = new Map();
function fixed(x, digits) {
  const key = `${digits}`;
  if (!numberFormats.has(key)) {
    numberFormats.set(key, new Intl.NumberFormat(LOCALE, { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  }
  return numberFormats.get(key).format(x);
}

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

// Under a second in ms, then seconds with sensible precision, then minutes and seconds, then
// hours and minutes. Rounded to the shown precision first, then split into units: 59.99 s reads
// "1 min 0 s", never "60.0 s" or "59 min 60 s".
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 0) return `-${duration(-ms)}`;
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  // rounded here, half up, then shown at the same digits: toFixed (binary: 9.995 is 9.99499...)
  // and Intl (decimal: 10.00) disagreed, and 9,995 ms read "10.00 s"
  const centis = Math.round(ms / 10) / 100;
  if (centis < 10) return `${fixed(centis, 2)} s`;
  const tenths = Math.round(ms / 100) / 10;
  if (tenths < 60) return `${fixed(tenths, 1)} s`;
  const seconds = Math.round(s);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  const minutes = Math.round(s / 60);
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  return `${fixed(s / 86400, 1)} d`;
}

export function timestamp(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return "—";
  const d = new Date(epochSeconds * 1000);
  return d.toLocaleString(LOCALE, {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZone: timeZone(),
  });
}

// The zone the screens show times in, as a suffix for a time or a column header that has none:
// "12 Mar 2026, 10:00:00 UTC", "Started (UTC)". Without it a UTC time reads as local.
export function zoned(epochSeconds) {
  return epochSeconds === null || epochSeconds === undefined ? "—" : `${timestamp(epochSeconds)} ${timeZone()}`;
}

export function inZone(label) {
  return `${label} (${timeZone()})`;
}

// A datetime-local field's value ("2026-03-01T12:00" or with seconds) read in the zone the
// screens show times in, so a time copied from a list finds that run. null when it is no time.
const FIELD_TIME = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?$/;
export function fieldToIso(value) {
  const m = FIELD_TIME.exec(String(value || "").trim());
  if (!m) return null;
  const [y, mo, d, hh, mm, ss] = m.slice(1).map((x) => Number(x || 0));
  const ms = zoneChoice() === "local"
    ? new Date(y, mo - 1, d, hh, mm, ss).getTime() // the browser's own zone: Date's local fields
    : Date.UTC(y, mo - 1, d, hh, mm, ss);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

// The other way: an instant as a datetime-local value (to the second) in the same zone.
export function fieldValue(epochSeconds) {
  const d = new Date(Math.floor(epochSeconds) * 1000);
  if (zoneChoice() !== "local") return d.toISOString().slice(0, 19);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// An ISO 8601 time from the API (`2026-03-01T12:00:00Z`), in the same one format.
export function isoTimestamp(iso) {
  if (!iso) return "—";
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? String(iso) : timestamp(ms / 1000);
}

// A date alone (chart ticks and range captions), in the chosen zone.
export function dateOnly(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return "—";
  return new Date(epochSeconds * 1000).toLocaleDateString(LOCALE, { month: "short", day: "2-digit", timeZone: timeZone() });
}

export function isoTime(epochSeconds) {
  return new Date(epochSeconds * 1000).toISOString();
}

// Dollars to the cent, except under $0.10, where cents would hide what a run costs ($0.0115
// and $0.0149 both "$0.01"): there 2 significant digits ("$0.012", "$0.0073", "$0.010").
const SIGNIFICANT = new Intl.NumberFormat(LOCALE, { minimumSignificantDigits: 2, maximumSignificantDigits: 2 });
export function money(usd) {
  if (usd === null || usd === undefined) return "—";
  if (usd === 0) return "$0";
  if (Math.abs(usd) < 0.0995) return `$${SIGNIFICANT.format(usd)}`;
  return `$${fixed(usd, 2)}`;
}

export function percent(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return "—";
  return `${fixed(ratio * 100, digits)} %`;
}

// "1 run", "2 runs": a count with its noun.
export function counted(n, noun) {
  return `${count(n)} ${n === 1 ? noun : `${noun}s`}`;
}

// A change between two rates, in percentage points, signed: "+25.0 pts" (a relative change
// would be "%": the overview and Analytics say the same thing the same way).
export function pointsChange(d) {
  if (d === null || d === undefined || Number.isNaN(d)) return "—";
  return `${d > 0 ? "+" : d < 0 ? "-" : ""}${fixed(Math.abs(d) * 100, 1)} pts`;
}

export function count(n) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString(LOCALE);
}

export function tokens(tin, tout, estimated) {
  if (tin == null && tout == null) return "—";
  const text = `${count(tin ?? 0)} in / ${count(tout ?? 0)} out`;
  return estimated ? `${text} (est.)` : text;
}

// A run's short id: its last 8 hex digits. A UUIDv7 starts with its time (the first 8 change
// only every ~65 s), so its end is what tells runs apart.
export function shortId(id) {
  return id ? String(id).replace(/-/g, "").slice(-8) : "";
}

// A flow version (a hash) in short: its first 12 characters.
export function shortVersion(version) {
  return version ? String(version).slice(0, 12) : "";
}

// The first `max` characters of a text, counted in code points: an emoji is never split.
export function cut(text, max) {
  return Array.from(String(text ?? "")).slice(0, max).join("");
}

// Text shortened to `max` characters, ending in "…" when cut.
export function clip(text, max) {
  const full = String(text ?? "");
  const short = cut(full, max);
  return short.length < full.length ? `${cut(short, max - 1)}…` : full;
}

export function decimal(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  return fixed(x, digits);
}
