// Building DOM without innerHTML: every value from the API lands as text, never as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function mount(root, ...children) {
  root.replaceChildren();
  append(root, children);
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

export function empty(title, text, ...extra) {
  return h("div", { class: "empty panel", "data-state": "empty" }, h("strong", {}, title), text, ...extra);
}

// What happened, in words; the API's `detail` says why underneath.
function errorTitle(err) {
  const status = err && err.status;
  if (status === 0) return "The server could not be reached";
  if (status >= 500) return "The server could not answer";
  if (status === 404) return "Not found";
  if (status === 403) return "No access";
  return "This could not be loaded";
}

// Only failures that can pass (the server's, the network's) are worth another try: a 404 or a
// 403 gives the same answer again.
export function canRetry(err) {
  const status = err && err.status;
  return !status || status >= 500 || status === 408 || status === 429;
}

// Why, under the title: the API's detail with its status; for the network, what to check
// (the title already says the server could not be reached: not the same sentence twice).
function errorDetail(err) {
  if (err && err.status === 0) return "Check the connection; the server may be stopped or restarting.";
  const status = err && err.status ? `${err.status}: ` : "";
  return status + (err && err.message ? err.message : String(err));
}

// ways: [[href, text], ...] links out of a page that could not be shown.
export function errorPanel(err, retry, ways = []) {
  return h(
    "div",
    { class: "error-panel", role: "alert", "data-state": "error", "data-status": err && err.status != null ? String(err.status) : null },
    h("strong", {}, errorTitle(err)),
    h("span", { class: "error-detail" }, errorDetail(err)),
    retry && canRetry(err) ? h("div", {}, h("button", { type: "button", class: "btn btn-small", onclick: retry, style: "margin-top:.5rem" }, "Try again")) : null,
    ways.length ? h("p", { class: "toolbar", style: "margin:.5rem 0 0" }, ways.map(([href, text]) => h("a", { class: "btn btn-small", href }, text))) : null,
  );
}

const confirmDialog = () => document.getElementById("confirm");

// A modal confirmation (a real <dialog>: focus is trapped, Escape cancels).
export function confirmAction(title, text, okLabel = "Delete") {
  const dialog = confirmDialog();
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.querySelector("#confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector("#confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
