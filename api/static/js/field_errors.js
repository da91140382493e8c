// Validation messages next to their fields, the same way on every form.
//
// A form gives each field a message box `<div class="field-error" id="{prefix}{name}-error">`.
// A 422's `detail` list names the field in `loc`; its message goes to the box of the first name
// along that path that has one, so `policy.max_age_days` lands at `max_age_days` and `tags.2` at
// `tags`. Messages for one box are joined. A check made beyond the request's shape answers a
// string `detail` that starts with its field ("url: ..."): that goes to the field's box too.
// What finds no box is the caller's to show whole.

import { ApiError } from "./api.js";

// pydantic prefixes a validator's own message with this; the field already says where it is
const VALUE_ERROR = /^Value error, /;

export function clearFieldErrors(root) {
  root.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
}

// Place `err`'s field messages inside `root`; true when at least one found its box.
export function showFieldErrors(root, err, prefix) {
  if (!(err instanceof ApiError)) return false;
  const messages = new Map();
  for (const { path, msg } of err.fieldErrors()) {
    const box = path.map((name) => root.querySelector(`#${CSS.escape(`${prefix}${name}-error`)}`)).find(Boolean);
    if (!box) continue;
    messages.set(box, [...(messages.get(box) || []), String(msg).replace(VALUE_ERROR, "")]);
  }
  const named = typeof err.detail === "string" ? /^(\w+): (.*)$/s.exec(err.detail) : null;
  const box = named && root.querySelector(`#${CSS.escape(`${prefix}${named[1]}-error`)}`);
  if (box) messages.set(box, [named[2]]);
  for (const [box, texts] of messages) box.textContent = [...new Set(texts)].join("; ");
  return messages.size > 0;
}
