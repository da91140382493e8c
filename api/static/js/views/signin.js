// Sign in with an API key (sk-...) or an Open WebUI token; the token stays in localStorage.
import { auth } from "../api.js";
import { h, mount } from "../dom.js";

export function renderSignIn(root, message, onSignedIn) {
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", required: true,
    placeholder: "sk-… or eyJ…", "aria-describedby": "token-help",
  });
  const error = h("p", { class: "field-error", id: "signin-error", role: "alert" });
  const button = h("button", { type: "submit", class: "btn btn-primary" }, "Sign in");
  const notice = message ? h("p", { class: "notice", id: "signin-message", role: "status" }, message) : null;
  const form = h(
    "form",
    { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to flowhistory"),
    notice,
    h("div", { class: "field" },
      h("label", { for: "token" }, "API key or Open WebUI token"),
      input,
      h("p", { class: "muted", id: "token-help" },
        "Paste an API key (sk-…) or the token Open WebUI keeps for you. It is kept in this browser until you sign out."),
    ),
    error,
    button,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    auth.set(token);
    button.disabled = true;
    error.textContent = "";
    notice?.remove(); // why the last session ended is not news once a new key is tried
    try {
      await onSignedIn();
    } catch (err) {
      auth.clear();
      error.textContent = err.status === 401 ? "This key or token was not accepted." : err.message;
      button.disabled = false;
      input.focus();
    }
  });
  mount(root, form);
  input.focus();
}
