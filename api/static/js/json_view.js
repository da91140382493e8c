// JSON shown folded: objects and arrays are <details> (open at the top level only), long
// strings and long arrays are cut with a "show all" button, so a huge result cannot swamp the page.
import { h } from "./dom.js";

export const MAX_STRING = 160;
const MAX_ITEMS = 30;

function scalar(value) {
  if (value === null) return h("span", { class: "b" }, "null");
  if (typeof value === "boolean") return h("span", { class: "b" }, String(value));
  if (typeof value === "number") return h("span", { class: "n" }, String(value));
  const text = String(value);
  if (text.length <= MAX_STRING) return h("span", { class: "s" }, JSON.stringify(text));
  const span = h("span", { class: "s", "data-truncated": "true" }, JSON.stringify(text.slice(0, MAX_STRING)).slice(0, -1) + "…\"");
  const btn = h("button", { type: "button", class: "linklike show-all" }, `show all ${text.length.toLocaleString("en-US")} characters`);
  btn.addEventListener("click", () => {
    span.textContent = JSON.stringify(text);
    span.dataset.truncated = "false";
    btn.remove();
  });
  return h("span", {}, span, " ", btn);
}

function entries(value) {
  return Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
}

export function jsonView(value, { open = true, depth = 0 } = {}) {
  if (value === null || typeof value !== "object") return h("div", { class: "json" }, scalar(value));
  return h("div", { class: "json" }, node(null, value, depth, open));
}

function node(key, value, depth, open) {
  const label = key === null ? null : h("span", { class: "k" }, typeof key === "number" ? `${key}: ` : `${JSON.stringify(key)}: `);
  if (value === null || typeof value !== "object") return h("div", { class: "row" }, label, scalar(value));
  const items = entries(value);
  const isArray = Array.isArray(value);
  const brief = isArray ? `[${items.length} item${items.length === 1 ? "" : "s"}]` : `{${items.length} key${items.length === 1 ? "" : "s"}}`;
  if (!items.length) return h("div", { class: "row" }, label, isArray ? "[]" : "{}");
  const details = h("details", { open: open && depth === 0 }, h("summary", {}, label, h("span", { class: "muted" }, brief)));
  const body = h("div", {});
  const show = (list) => list.forEach(([k, v]) => body.append(node(k, v, depth + 1, open)));
  show(items.slice(0, MAX_ITEMS));
  if (items.length > MAX_ITEMS) {
    const btn = h("button", { type: "button", class: "linklike show-all" }, `show all ${items.length} ${isArray ? "items" : "keys"}`);
    btn.addEventListener("click", () => {
      btn.remove();
      show(items.slice(MAX_ITEMS));
    });
    body.append(btn);
  }
  details.append(body);
  return details;
}

// The editor spreads a model's text over keys "0", "1", ...: read it back as text.
export function spreadText(result) {
  if (!result || typeof result !== "object" || Array.isArray(result)) return null;
  let text = "";
  for (let i = 0; typeof result[String(i)] === "string"; i++) text += result[String(i)];
  return text || null;
}
