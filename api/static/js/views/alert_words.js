// How alert rules read on screen: thresholds in the unit the screens use (a failure rate in
// percent, while the API keeps fractions), durations as "15m" in forms and "15 min" in text, and
// why a rule changed state, in words, from the transition's numbers rather than its reason code.
import { count, decimal, duration } from "../format.js";

export const METRICS = { failure_rate: "Failure rate", error_count: "Errors", run_count: "Runs", p95_duration: "p95 duration", cost: "Cost" };
export const UNITS = { failure_rate: "%", error_count: "errors", run_count: "runs", p95_duration: "ms", cost: "USD" };
const WORDS = { failure_rate: "failure rate", error_count: "errors", run_count: "runs", p95_duration: "p95 duration", cost: "cost" };
export const OPERATORS = { gt: ">", ge: "≥", lt: "<", le: "≤" };
const NEGATED = { gt: "≤", ge: "<", lt: "≥", le: ">" };
const UPWARD = new Set(["gt", "ge"]);

// 12 significant digits: 16.2 % is 0.162, not 0.16199999999999998
const tidy = (x) => Number(x.toPrecision(12));

// A threshold as the form shows it: a failure rate in percent, anything else as it is.
export function thresholdInput(metric, value) {
  if (value === null || value === undefined || value === "") return "";
  return String(metric === "failure_rate" ? tidy(value * 100) : value);
}

// A threshold as typed -> what the API takes; null for empty, NaN for nonsense.
export function thresholdValue(metric, text) {
  const raw = String(text ?? "").trim();
  // "1,000" is a thousand in one locale and one in another (it was read as 1): a comma with
  // three digits after it, or beside a point, is refused; "1,5" is one and a half
  if (/^[1-9]\d{0,2}(,\d{3})+$/.test(raw) || (raw.includes(",") && raw.includes("."))) return Number.NaN;
  const t = raw.replace(",", ".");
  if (t === "") return null;
  const n = Number(t);
  if (!Number.isFinite(n)) return Number.NaN;
  return metric === "failure_rate" ? tidy(n / 100) : n;
}

// A threshold in a sentence: "5 %", "1.2 s", "$0.5", "3".
export function thresholdText(metric, v) {
  if (v === null || v === undefined) return "—";
  if (metric === "failure_rate") return `${tidy(v * 100)} %`;
  if (metric === "p95_duration") return duration(v);
  if (metric === "cost") return `$${tidy(v)}`;
  return count(v);
}

// A measured value: a failure rate to one decimal.
export function measured(metric, v) {
  if (v === null || v === undefined) return "—";
  if (metric === "failure_rate") return `${decimal(v * 100, 1)} %`;
  if (metric === "p95_duration") return duration(v);
  if (metric === "cost") return `$${decimal(v, 4)}`;
  return count(v);
}

// Seconds as a form shows them: "15m", "1h", "2d" ("" for none).
export function durationInput(seconds) {
  if (seconds === null || seconds === undefined || seconds === 0) return "";
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

// Seconds in a sentence: "15 min", "1 h", "2 d".
export function span(seconds) {
  if (!seconds) return "0 s";
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export function condition(rule) {
  return `${METRICS[rule.metric] || rule.metric} ${OPERATORS[rule.operator]} ${thresholdText(rule.metric, rule.threshold)} over ${span(rule.window)}`;
}

// The options beyond the condition, in a line: "warning > 2 % · pending 5 min · …".
export function options(rule) {
  const op = OPERATORS[rule.operator];
  const parts = [];
  if (rule.warning_threshold !== null && rule.warning_threshold !== undefined) parts.push(`warning ${op} ${thresholdText(rule.metric, rule.warning_threshold)}`);
  if (rule.recovery_threshold !== null && rule.recovery_threshold !== undefined) parts.push(`recovers at ${NEGATED[rule.operator]} ${thresholdText(rule.metric, rule.recovery_threshold)}`);
  if (rule.pending_for) parts.push(`pending ${span(rule.pending_for)}`);
  if (rule.keep_firing_for) parts.push(`keeps firing ${span(rule.keep_firing_for)}`);
  if (rule.renotify_every) parts.push(`re-notifies every ${span(rule.renotify_every)}`);
  if (rule.min_runs > 1) parts.push(`at least ${count(rule.min_runs)} runs`);
  if (rule.no_data !== "no_data") parts.push(rule.no_data === "ok" ? "no runs is OK" : "no runs keeps the state");
  const scope = [rule.flow_version && `version ${rule.flow_version}`, rule.node_id && `node ${rule.node_id}`, rule.model && `model ${rule.model}`].filter(Boolean);
  if (rule.owned_by) scope.unshift(`every flow of ${rule.owned_by}`);
  return [...scope, ...parts].join(" · ");
}

// Why a transition happened, in words; the stored reason when the rule is unknown here.
export function why(rule, t) {
  if (t.to_state === "PAUSED") return "the rule was paused";
  if (t.from_state === "PAUSED") return "the rule was resumed";
  if (!rule) return t.reason;
  const last = `the last ${span(rule.window)}`;
  // no runs to judge: a count reads 0 then, so the state (or the stored reason) says it
  if (t.value === null || t.value === undefined || t.to_state === "NO_DATA" || String(t.reason).startsWith("no data")) {
    return t.runs ? `nothing to measure in ${last} (${count(t.runs)} runs)` : `no runs in ${last}`;
  }
  const runs = t.runs === null || t.runs === undefined ? "" : ` (${count(t.runs)} ${t.runs === 1 ? "run" : "runs"})`;
  const what = `${WORDS[rule.metric] || rule.metric} ${measured(rule.metric, t.value)}`;
  const op = OPERATORS[rule.operator];
  const th = thresholdText(rule.metric, t.threshold);
  const over = ` over ${last}${runs}`;
  switch (t.to_state) {
    case "FIRING": {
      const held = t.from_state === "PENDING" && rule.pending_for ? `, for ${span(rule.pending_for)}` : "";
      return `${what} ${op} ${th}${over}${held}`;
    }
    case "PENDING":
      return `${what} ${op} ${th}${over}; ${rule.pending_for ? `fires if it holds for ${span(rule.pending_for)}` : "fires if it holds"}`;
    case "WARNING":
      if (t.from_state === "FIRING") return `${what} ${NEGATED[rule.operator]} ${th}${over}: recovered, but past the warning threshold`;
      return `${what} ${op} the warning threshold ${th}${over}`;
    case "OK":
      return `${what} ${NEGATED[rule.operator]} ${th}${over}`;
    default:
      return t.reason;
  }
}

// The form's own checks, in the form's units, before the API's (which speak in fractions).
export function thresholdProblems(metric, operator, threshold, warning, recovery) {
  const problems = {};
  const name = { threshold: "the alert threshold", warning_threshold: "a warning threshold", recovery_threshold: "a recovery threshold" };
  for (const [field, v] of Object.entries({ threshold, warning_threshold: warning, recovery_threshold: recovery })) {
    if (Number.isNaN(v)) problems[field] = "enter a number, without a thousands separator (1000, 1.5)";
    else if (metric === "failure_rate" && v !== null && (v < 0 || v > 1)) problems[field] = `${name[field]} is a percentage from 0 to 100`;
    else if (v !== null && v < 0) problems[field] = `${name[field]} is never negative`;
  }
  if (Object.keys(problems).length || threshold === null) return problems;
  const up = UPWARD.has(operator);
  const at = thresholdText(metric, threshold);
  if (warning !== null && (up ? warning >= threshold : warning <= threshold)) {
    problems.warning_threshold = `must be ${up ? "below" : "above"} the alert threshold ${at}`;
  }
  if (recovery !== null && (up ? recovery > threshold : recovery < threshold)) {
    problems.recovery_threshold = `must be at or ${up ? "below" : "above"} the alert threshold ${at}`;
  }
  return problems;
}

// Flow-scoped rules and silences are managed by the flow's owner and admins only (a reader or a
// write-grantee is refused with 403): others are not offered the forms and buttons.
export function mayManageAlerts(user, flow) {
  return Boolean(user) && (user.role === "admin" || user.id === flow.user_id);
}

// What a refusal means here: the rights to manage alerts, not to read the flow (the 403's
// detail is the flow routes' generic wording).
export function alertErrorText(err) {
  return err && err.status === 403 ? "You may not manage alerts on this flow: only its owner and admins may." : err.message;
}
