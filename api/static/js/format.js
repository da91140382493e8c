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

export function inZone(label, zone = timeZone()) {
  return `${label} (${zone})`;
}

// The IANA name Intl knows a zone by ("europe/paris" -> "Europe/Paris"), or null if none.
function knownZone(name) {
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

// A Search or History link's times say in which zone they were written: `tz=utc` or an IANA
// name (`tz=Europe/Paris`), so a shared link finds the same runs whoever opens it. The forms
// write the zone their fields are in (the viewer's own zone when the setting is "local"); the
// links the app writes from instants it has (signature links) write UTC, `tz=utc`: a wall time
// and a zone cannot name the second of an hour that happens twice. zoneParam is what a link
// carries for a zone; linkZone the zone a link's times are read in: its `tz`, else (a link from
// before they carried one) the viewer's choice. A `tz` is kept as the link gave it
// (`Asia/Kolkata`, `EST`), not renamed to the alias Intl resolves it to (`Asia/Calcutta`,
// `America/Panama`); only its case is corrected where Intl names the same zone in other case
// ("europe/paris" -> "Europe/Paris"). A space reads as "+" (`Etc/GMT+5` in a hand-written URL
// decodes to "Etc/GMT 5"; no zone name has a space). A `tz` that names no zone throws: read in
// another zone, its times would find other runs without a word.
export function zoneParam(zone = timeZone()) {
  return zone === "UTC" ? "utc" : zone;
}

// The given name when Intl knows it, with the case of Intl's own name for it where they differ
// only in case (the resolved name itself, or one of Intl's listed names).
function givenZone(raw) {
  const resolved = knownZone(raw);
  if (!resolved) return null;
  const same = (name) => name.toLowerCase() === raw.toLowerCase();
  if (raw === resolved || same(resolved)) return resolved;
  let listed = [];
  try {
    listed = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  } catch { /* an older browser: the name as given */ }
  return listed.find(same) || raw;
}

// Two zone names for the same zone ("Asia/Kolkata" and Chromium's "Asia/Calcutta").
export function sameZone(a, b) {
  return a === b || (knownZone(a) !== null && knownZone(a) === knownZone(b));
}

export function linkZone(params) {
  const raw = (params.get("tz") || "").trim().replace(/ /g, "+");
  if (!raw) return timeZone();
  if (/^utc$/i.test(raw)) return "UTC";
  const zone = raw.toLowerCase() === "local" ? null : givenZone(raw); // "local" is the viewer's, not the writer's
  if (!zone) throw new Error(`Time zone: "${raw}" is not a time zone (the link's times cannot be read; give utc or an IANA name such as Europe/Paris)`);
  return zone;
}

// An instant's wall-clock fields [year, month, day, hour, minute, second] in a zone.
const wallFormats = new Map();
function wallFields(ms, zone) {
  if (!wallFormats.has(zone)) {
    wallFormats.set(zone, new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric",
    }));
  }
  const parts = Object.fromEntries(wallFormats.get(zone).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return ["year", "month", "day", "hour", "minute", "second"].map((k) => Number(parts[k]));
}

// Wall-clock fields read as UTC, with no rollover of their own (Date.UTC reads year 50 as 1950).
function utcMs(y, mo, d, hh, mm, ss, ms = 0) {
  const t = new Date(0);
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(hh, mm, ss, ms);
  return t.getTime();
}

const daysIn = (y, mo) => new Date(utcMs(y, mo + 1, 0, 0, 0, 0)).getUTCDate();

// A datetime-local field's value ("2026-03-01T12:00", with seconds, with milliseconds; a space
// for the T, as a hand-written link may have it) read in a zone (the one the screens show times
// in unless a link says its own), so a time copied from a list finds that run. Milliseconds are
// kept (digits past the third dropped: JavaScript's precision), as the field shows them. Empty:
// null. A value that is no time (`2026-02-30`, hour 24: Date would roll them over to 2 March,
// the next day, and the field, which cannot show them, read empty while the results were
// filtered) throws `<label>: "<value>" is not a date and time`; a wall time the zone skips (the
// hour clocks go forward) throws too. An hour a zone has twice (clocks go back) reads as its
// first: a link that means the second writes UTC.
const FIELD_TIME = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?$/;
export function fieldTime(label, value, zone = timeZone()) {
  const text = String(value ?? "").trim();
  if (!text) return null;
  const m = FIELD_TIME.exec(text);
  const f = m ? m.slice(1, 7).map((x) => Number(x || 0)) : null;
  if (!f || f[0] < 1 || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > daysIn(f[0], f[1]) || f[3] > 23 || f[4] > 59 || f[5] > 59) {
    throw new Error(`${label}: "${text}" is not a date and time`);
  }
  const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, "0")) : 0;
  const wall = utcMs(...f);
  if (zone === "UTC") return new Date(wall + millis).toISOString();
  // the instants whose offset is the zone's a day before or after: the one (or, in an hour
  // that happens twice, the first) that reads back as the same wall time
  const offset = (ms) => utcMs(...wallFields(ms, zone)) - ms;
  const found = [...new Set([wall - offset(wall - 86400_000), wall - offset(wall + 86400_000)])]
    .filter((ms) => utcMs(...wallFields(ms, zone)) === wall)
    .sort((a, b) => a - b);
  if (!found.length) throw new Error(`${label}: "${text}" does not exist in ${zone} (the clocks skip that hour)`);
  return new Date(found[0] + millis).toISOString();
}

// The same, null for a value that is no time (in place of the reason).
export function fieldToIso(value, zone = timeZone()) {
  try {
    return fieldTime("", value, zone);
  } catch {
    return null;
  }
}

// The other way: an instant as a datetime-local value (to the second) in the same zone.
export function fieldValue(epochSeconds, zone = timeZone()) {
  const ms = Math.floor(epochSeconds) * 1000;
  if (zone === "UTC") return new Date(ms).toISOString().slice(0, 19);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  const [y, mo, d, hh, mm, ss] = wallFields(ms, zone);
  return `${p(y, 4)}-${p(mo)}-${p(d)}T${p(hh)}:${p(mm)}:${p(ss)}`;
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

// A change between two rates, in percentage points, signed: "+25.0 pts", "−4.0 pts" (a
// relative change would be "%": the overview and Analytics say the same thing the same way). A
// change that rounds to 0.0 points is none: "0.0 pts", no sign (pointsTenths(d) is 0).
export function pointsTenths(d) {
  return Math.sign(d) * Math.round(Math.abs(d) * 1000);
}

export function pointsChange(d) {
  if (d === null || d === undefined || Number.isNaN(d)) return "—";
  const tenths = pointsTenths(d);
  return signed(tenths, `${fixed(Math.abs(tenths) / 10, 1)} pts`);
}

// A change's text with its sign: "+" up, a true minus "−" down (not a hyphen), none when the
// change as shown (`shown`, at the shown precision) is 0: a change that rounds away is no change.
function signed(shown, text) {
  return `${shown > 0 ? "+" : shown < 0 ? "\u2212" : ""}${text}`;
}

// A change in duration, signed as pointsChange: "+272 ms", "−3 ms", "+1.20 s". One that rounds to
// 0 ms is none, "0 ms": two equal p95s differ by float noise (-2.27e-13 read "-0 ms").
export function durationChange(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  const shown = Math.round(Math.abs(ms)) === 0 ? 0 : Math.sign(ms);
  return signed(shown, duration(shown === 0 ? 0 : Math.abs(ms)));
}

// A test's p-value: 2 significant digits in the locale ("0.032", de-DE "0,032"); under 0.001
// "< 0.001" ("< 0,001"), as results are usually reported (6.6e-6 read as a run of zeros); the
// exact value, in the locale's scientific notation ("6.6E-6"), is the tooltip (pValueExact).
const P_DIGITS = new Intl.NumberFormat(LOCALE, { maximumSignificantDigits: 2 });
const P_EXACT = new Intl.NumberFormat(LOCALE, { notation: "scientific", maximumSignificantDigits: 2 });
export const P_FLOOR = 0.001;
export function pValue(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "—";
  return p < P_FLOOR ? `< ${P_DIGITS.format(P_FLOOR)}` : P_DIGITS.format(p);
}

export function pValueExact(p) {
  return p === null || p === undefined || Number.isNaN(p) ? "" : P_EXACT.format(p);
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
