// Silences on the alerts screen: which rules of this flow are muted, until when and why; a form
// to mute one rule or every rule on the flow for a while; "Expire" to end one now.
import { del, enc, post } from "../api.js";
import { h } from "../dom.js";
import { clearFieldErrors, showFieldErrors } from "../field_errors.js";
import { zoned } from "../format.js";
import { alertErrorText } from "./alert_words.js";

const STATUS_CLASS = { active: "badge-other", pending: "badge-other", expired: "badge-aborted" };

// The silence muting this rule on this flow now, if any.
export function silenceOf(silences, rule, flowId) {
  return silences.find((s) => s.status === "active" && (s.rule_id === rule.id || s.flow_id === flowId)) || null;
}

export function silencedBadge(silence) {
  return h("div", { "data-silenced": silence.id, title: silence.comment },
    h("span", { class: "badge badge-aborted" }, "silenced"), h("div", { class: "muted" }, `until ${zoned(silence.ends_at)}`));
}

// manage: whether the user may make and end silences here (else the table alone, no form).
export function silencesSection(flowId, rules, silences, reload, message, manage = true) {
  const target = h("select", { id: "s-target", name: "target", "aria-describedby": "s-target-error" },
    h("option", { value: "" }, "Every rule on this flow"),
    rules.map((r) => h("option", { value: r.id }, `Rule “${r.name}”`)));
  const length = h("input", { id: "s-duration", name: "duration", value: "2h", "aria-describedby": "s-duration-error" });
  const comment = h("input", { id: "s-comment", name: "comment", placeholder: "deploy, known incident…", "aria-describedby": "s-comment-error" });
  const err = (id) => h("div", { class: "field-error", id: `s-${id}-error`, role: "alert" });
  const form = h("form", { class: "panel", id: "silence-form", novalidate: true, "aria-labelledby": "silence-form-title" },
    h("h3", { id: "silence-form-title", style: "margin-top:0" }, "Silence notifications"),
    h("p", { class: "muted", style: "margin-top:0" }, "Rules are still judged and their changes recorded; only the notifications wait until the silence ends."),
    h("div", { class: "form-row" },
      h("div", { class: "field field-grow" }, h("label", { for: "s-target" }, "Mute"), target, err("target")),
      h("div", { class: "field" }, h("label", { for: "s-duration" }, "For ", h("span", { class: "muted" }, "(30m, 2h, 1d)")), length, err("duration"), err("ends_at")),
      h("div", { class: "field field-grow" }, h("label", { for: "s-comment" }, "Comment"), comment, err("comment")),
      h("div", { class: "field" }, h("button", { type: "submit", class: "btn" }, "Silence"))),
    h("p", { class: "field-error", id: "s-form-error", role: "alert" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const body = { duration: length.value.trim(), comment: comment.value.trim() };
    if (target.value) body.rule_id = target.value;
    else body.flow_id = flowId;
    if (!body.comment) {
      form.querySelector("#s-comment-error").textContent = "say why, for whoever sees the silence";
      return;
    }
    try {
      await post("/api/v1/alerts/silences", body);
      reload();
    } catch (e) {
      if (!showFieldErrors(form, e, "s-")) form.querySelector("#s-form-error").textContent = alertErrorText(e);
    }
  });

  const name = (s) => (s.rule_id ? `Rule “${(rules.find((r) => r.id === s.rule_id) || { name: s.rule_id }).name}”` : "Every rule on this flow");
  const order = { active: 0, pending: 1, expired: 2 };
  const rows = [...silences].sort((a, b) => order[a.status] - order[b.status] || b.starts_at - a.starts_at);
  const active = silences.filter((s) => s.status !== "expired").length;
  const section = h("section", { id: "silences" },
    h("h2", {}, `Silences (${active} active)`),
    rows.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "silences-table" },
        h("thead", {}, h("tr", {}, ["Mutes", "When", "Why", "Status", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows.map((s) => h("tr", { "data-silence": s.id, "data-status": s.status },
          h("td", {}, name(s)),
          h("td", {}, h("div", {}, `from ${zoned(s.starts_at)}`), h("div", {}, `until ${zoned(s.ends_at)}`)),
          h("td", { style: "overflow-wrap:break-word" }, s.comment, h("div", { class: "muted" }, `by ${s.created_by}`),
            s.expired_by ? h("div", { class: "muted" }, `ended by ${s.expired_by}`) : null),
          h("td", {}, h("span", { class: `badge ${STATUS_CLASS[s.status]}` }, s.status)),
          h("td", {}, s.status === "expired" || !manage ? null : h("button", {
            type: "button", class: "btn btn-small", "aria-label": `Expire silence of ${name(s)}`,
            onclick: async () => {
              try {
                await del(`/api/v1/alerts/silences/${enc(s.id)}`);
                reload();
              } catch (e) {
                message.textContent = alertErrorText(e);
              }
            },
          }, "Expire")))))))
      : h("p", { class: "muted" }, "No silences: every notification is sent."),
    manage ? form : null);
  // "Silence" on a rule's row: this form, that rule chosen
  section.silence = (rule) => {
    target.value = rule ? rule.id : "";
    form.scrollIntoView({ block: "nearest" });
    length.focus();
  };
  return section;
}
