// The SQL console (admins): one SELECT over the Parquet exports, results as a table (numbers right-aligned
// and rounded; the exact value in the cell's title and in the downloads), CSV/JSON download.
import { ApiError, post } from "../api.js";
import { empty, errorPanel, h, mount } from "../dom.js";
import { count, decimal, LOCALE } from "../format.js";

// the browser's locale, as every other number and date here (it was en-US beside German dates)
const INT = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const FLOAT = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 3 });
const SMALL = new Intl.NumberFormat(LOCALE, { maximumSignificantDigits: 3 });
const INT_TYPE = /^U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)$/;
const FLOAT_TYPE = /^(FLOAT|DOUBLE|REAL|DECIMAL(\(.*\))?)$/;

// A number as the SQL console and the jobs screen show it: integers with thousands separators,
// floats to 3 decimals (3 significant digits below 1, so 0.000123 is not shown as 0). A string
// (a HUGEINT or DECIMAL the JSON carried as text) is formatted exactly, not through a double.
export function numberText(v, float = typeof v === "number" && !Number.isInteger(v)) {
  if (typeof v === "string" ? v.trim() === "" || Number.isNaN(Number(v)) : typeof v !== "number" || !Number.isFinite(v)) return String(v);
  if (!float) return INT.format(v);
  const n = Number(v);
  return n !== 0 && Math.abs(n) < 1 ? SMALL.format(v) : FLOAT.format(v);
}

function cell(v, type) {
  if (v === null) return h("td", {}, h("span", { class: "muted" }, "null"));
  const kind = INT_TYPE.test(type) ? "int" : FLOAT_TYPE.test(type) ? "float" : null;
  if (kind && (typeof v === "number" || typeof v === "string")) {
    const text = numberText(v, kind === "float");
    return h("td", { class: "num", title: text === String(v) ? null : String(v) }, text);
  }
  return h("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v));
}

const EXAMPLE = "SELECT status, count(*) AS runs\nFROM executions\nGROUP BY status\nORDER BY runs DESC";

function csvCell(v) {
  if (v === null || v === undefined) return "";
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function resultView(r) {
  const csv = () => [r.columns.map((c) => csvCell(c.name)).join(","), ...r.rows.map((row) => row.map(csvCell).join(","))].join("\n");
  return [
    h("div", { class: "toolbar" },
      h("span", { id: "sql-summary", role: "status" },
        `${count(r.row_count)} row${r.row_count === 1 ? "" : "s"}${r.truncated ? " (truncated at the limit)" : ""} in ${decimal(r.elapsed_ms, 1)} ms`),
      h("span", { class: "spacer" }),
      h("button", { type: "button", class: "btn", id: "sql-csv", onclick: () => download("result.csv", "text/csv", csv()) }, "Download CSV"),
      h("button", { type: "button", class: "btn", id: "sql-json", onclick: () => download("result.json", "application/json", JSON.stringify(r)) }, "Download JSON")),
    r.rows.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "sql-result" },
        h("thead", {}, h("tr", {}, r.columns.map((c) => h("th", { scope: "col", title: c.type, class: INT_TYPE.test(c.type) || FLOAT_TYPE.test(c.type) ? "num" : null }, c.name)))),
        h("tbody", {}, r.rows.map((row) => h("tr", {}, row.map((v, i) => cell(v, r.columns[i].type)))))))
      : empty("No rows", "The query ran and returned nothing."),
  ];
}

export async function render(root, _args, ctx) {
  const heading = h("h1", {}, "SQL console");
  if (ctx.user.role !== "admin") {
    mount(root, heading, empty("Admins only", "The SQL console over the exports is for admins."));
    return;
  }
  const editor = h("textarea", { id: "sql", class: "sql-editor", spellcheck: "false", "aria-describedby": "sql-help sql-error" });
  editor.value = sessionStorage.getItem("flowhistory.sql") || EXAMPLE;
  const limit = h("input", { id: "sql-limit", type: "number", min: "1", value: "1000", style: "width:7rem" });
  const error = h("div", { class: "field-error", id: "sql-error", role: "alert" });
  const out = h("section", { id: "sql-output", "aria-label": "Result" });
  const runBtn = h("button", { type: "submit", class: "btn btn-primary", id: "sql-run" }, "Run");
  const form = h("form", { class: "panel" },
    h("div", { class: "field" }, h("label", { for: "sql" }, "Query"), editor,
      h("p", { class: "muted", id: "sql-help" }, "One SELECT over the Parquet exports (tables such as executions). Ctrl+Enter runs it."), error),
    h("div", { class: "form-row" }, h("div", { class: "field" }, h("label", { for: "sql-limit" }, "Row limit"), limit), h("div", { class: "field" }, runBtn)));
  const run = async () => {
    error.textContent = "";
    sessionStorage.setItem("flowhistory.sql", editor.value);
    runBtn.disabled = true;
    mount(out, h("p", { class: "loading", role: "status" }, "Running…"));
    try {
      const r = await post("/api/v1/sql", { sql: editor.value, limit: Number(limit.value) || 1000, format: "json" });
      if (!ctx.stale()) mount(out, ...resultView(r));
    } catch (err) {
      if (ctx.stale()) return;
      if (err instanceof ApiError && (err.status === 400 || err.status === 422)) {
        error.textContent = err.message;
        mount(out);
      } else {
        mount(out, errorPanel(err));
      }
    } finally {
      runBtn.disabled = false;
    }
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
  editor.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); }
  });
  mount(root, heading, form, out);
}
