// Alert rules of a flow with their state and history (why each change happened, in words);
// create and edit with every option of a rule and the API's validation messages next to each
// field; silences; channels (signed webhook, Slack, email) with their delivery log and "send test".
import { api, del, enc, get, post, query } from "../api.js";
import { confirmAction, empty, errorPanel, h, mount } from "../dom.js";
import { clearFieldErrors, showFieldErrors } from "../field_errors.js";
import { count, duration, inZone, timestamp } from "../format.js";
import { silenceOf, silencedBadge, silencesSection } from "./alert_silences.js";
import {
  alertErrorText, condition, durationInput, mayManageAlerts, measured, METRICS, OPERATORS, options, thresholdInput, thresholdProblems, thresholdValue, UNITS, why,
} from "./alert_words.js";
import { flowHeader, loadFlow } from "./flow_header.js";

const STATE_CLASS = { OK: "badge-success", FIRING: "badge-error", WARNING: "badge-other", PENDING: "badge-other", NO_DATA: "badge-aborted", PAUSED: "badge-aborted" };
const GROUP = "border:1px solid var(--border);border-radius:6px;padding:.25rem .75rem .75rem;margin:0 0 .75rem;min-width:0";
const NO_DATA = { no_data: "Say so: state NO DATA (notified)", ok: "Healthy: state OK", keep_last: "Keep the last state" };

function stateBadge(state) {
  return h("span", { class: `badge ${STATE_CLASS[state] || "badge-other"}`, "data-state": state }, state);
}

// A rule not evaluated yet has no state (the API lists none): NO_DATA would say its window had
// no runs, which nobody has looked at. Neutral, in words, until the first evaluation.
function notEvaluatedBadge() {
  return h("span", { class: "badge badge-other", "data-state": "none" }, "not evaluated yet");
}

export async function render(root, [flowId], ctx) {
  const [flow, rules, channels, transitions, silences] = await Promise.all([
    loadFlow(flowId),
    get(`/api/v1/alerts/rules${query({ flow_id: flowId })}`),
    get("/api/v1/alerts/channels"),
    get(`/api/v1/alerts/transitions${query({ flow_id: flowId, limit: 20 })}`),
    get(`/api/v1/alerts/silences${query({ flow_id: flowId })}`),
  ]);
  if (ctx.stale()) return;
  const reload = () => ctx.navigate(location.hash);
  const manage = mayManageAlerts(ctx.user, flow);
  const message = h("p", { role: "status", id: "alerts-status", class: "muted" });
  const formBox = h("section", { id: "rule-form-box" });
  const act = async (fn, done) => {
    try {
      await fn();
      reload();
    } catch (err) {
      message.textContent = alertErrorText(err);
      if (done) done(err);
    }
  };
  const silencing = silencesSection(flowId, rules, silences, reload, message, manage);

  const ruleRows = rules.map((r) => {
    const current = r.states.find((s) => s.flow_id === flowId);
    const state = r.paused ? "PAUSED" : current ? current.state : null;
    const muted = silenceOf(silences, r, flowId);
    const extra = options(r);
    return h("tr", { "data-rule": r.id, class: state === "FIRING" ? "row-error" : "" },
      h("td", {}, h("strong", {}, r.name)),
      h("td", {}, condition(r), extra ? h("div", { class: "muted rule-options" }, extra) : null),
      h("td", {}, state ? stateBadge(state) : notEvaluatedBadge(),
        current && current.value !== null ? h("div", { class: "muted" }, `now ${measured(r.metric, current.value)}${current.runs === null ? "" : ` (${count(current.runs)} runs)`}`) : null,
        muted ? silencedBadge(muted) : null),
      h("td", {}, manage ? h("div", { class: "toolbar" },
          h("button", { type: "button", class: "btn btn-small", onclick: () => showForm(r) }, "Edit"),
          h("button", { type: "button", class: "btn btn-small", onclick: () => act(() => post(`/api/v1/alerts/rules/${enc(r.id)}/evaluate`)) }, "Evaluate now"),
          h("button", { type: "button", class: "btn btn-small", onclick: () => act(() => post(`/api/v1/alerts/rules/${enc(r.id)}/${r.paused ? "resume" : "pause"}`)) }, r.paused ? "Resume" : "Pause"),
          h("button", { type: "button", class: "btn btn-small", "aria-label": `Silence rule ${r.name}`, onclick: () => silencing.silence(r) }, "Silence"),
          h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `Delete rule ${r.name}`,
            onclick: async () => { if (await confirmAction("Delete this rule?", `“${r.name}” and its history will be deleted.`)) act(() => del(`/api/v1/alerts/rules/${enc(r.id)}`)); } }, "Delete")) : null));
  });

  function showForm(rule) {
    mount(formBox, ruleForm(flow, rule, channels, () => reload(), () => mount(formBox)));
    formBox.querySelector("input")?.focus();
  }

  mount(root, ...flowHeader(flow, "alerts"), message,
    h("div", { class: "toolbar" }, h("h2", { style: "margin:0" }, `Rules (${rules.length})`), h("span", { class: "spacer" }),
      manage ? h("button", { type: "button", class: "btn btn-primary", id: "new-rule", onclick: () => showForm(null) }, "New rule") : null),
    manage ? null : h("p", { class: "muted", id: "alerts-readonly" },
      `Only the flow's owner (${flow.user_id}) and admins may create, change or silence its alert rules.`),
    formBox,
    rules.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "rules-table" },
        h("thead", {}, h("tr", {}, ["Rule", "Condition", "State", ""].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, ruleRows)))
      : manage
        ? empty("No alert rules", "Add a rule to be told when this flow fails, slows down or costs more than it should.")
        // the API shows a flow's rules to its owner, admins and those granted write only: a reader
        // was told the flow had none and invited to add one
        : empty("No alert rules shown", "A flow's alert rules are shown to its owner, admins and those who may change the flow."),
    h("h2", {}, "History"),
    transitions.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "transitions-table" },
        h("thead", {}, h("tr", {}, [inZone("When"), "Rule", "Change", "Why"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, transitions.map((t) => {
          const rule = rules.find((r) => r.id === t.rule_id);
          return h("tr", { "data-transition": t.id },
            h("td", {}, timestamp(t.at)),
            h("td", {}, (rule || { name: t.rule_id }).name),
            h("td", {}, stateBadge(t.from_state), " → ", stateBadge(t.to_state)),
            h("td", { class: "why", title: t.reason }, why(rule, t),
              t.silenced_by ? h("div", { class: "muted", "data-silenced": t.silenced_by }, "not notified: silenced") : null));
        }))))
      : empty("No changes yet", "State changes of this flow's rules appear here."),
    silencing,
    channelsSection(channels, reload, message));
}

function field(id, label, input, hint) {
  return h("div", { class: "field", "data-field": id },
    h("label", { for: `r-${id}` }, label), input, hint ? h("div", { class: "muted" }, hint) : null,
    h("div", { class: "field-error", id: `r-${id}-error`, role: "alert" }));
}

function ruleForm(flow, rule, channels, saved, cancel) {
  const flowId = flow.id;
  const r = rule || {
    name: "", metric: "failure_rate", operator: "gt", threshold: null, warning_threshold: null, recovery_threshold: null,
    window: 3600, min_runs: 1, pending_for: 0, keep_firing_for: 0, renotify_every: null, no_data: "no_data",
    flow_version: null, node_id: null, model: null, owned_by: null, channel_ids: [],
  };
  const input = (id, attrs) => h("input", { id: `r-${id}`, name: id, "aria-describedby": `r-${id}-error`, ...attrs });
  const select = (id, choices, value) => h("select", { id: `r-${id}`, name: id }, Object.entries(choices).map(([k, v]) => h("option", { value: k, selected: k === value }, v)));
  const unit = () => h("span", { class: "unit muted" }, ` (${UNITS[r.metric]})`);
  const withUnit = (text) => [text, unit()];
  const nodes = (flow.nodes || []).map((n) => n && n.id).filter(Boolean);
  const scopes = { flow: "This flow", owner: `Every flow of ${flow.user_id}` };
  const form = h("form", { class: "panel", id: "rule-form", "aria-labelledby": "rule-form-title", novalidate: true },
    h("h3", { id: "rule-form-title", style: "margin-top:0" }, rule ? `Edit “${rule.name}”` : "New rule"),
    h("fieldset", { class: "rule-group", style: GROUP }, h("legend", { style: "font-weight:600;font-size:.85rem" }, "What is measured"),
      h("div", { class: "form-row", style: "align-items:flex-start" },
        field("name", "Name", input("name", { value: r.name })),
        field("metric", "Metric", select("metric", METRICS, r.metric)),
        field("owned_by", "Scope", select("owned_by", scopes, r.owned_by ? "owner" : "flow")),
        field("window", "Window", input("window", { value: durationInput(r.window) }), "e.g. 15m, 1h, 1d"),
        field("flow_version", "Flow version", input("flow_version", { value: r.flow_version ?? "", placeholder: "any" })),
        field("node_id", "Node", input("node_id", { value: r.node_id ?? "", placeholder: "whole runs", list: "r-nodes" })),
        field("model", "Model", input("model", { value: r.model ?? "", placeholder: "any" })),
        h("datalist", { id: "r-nodes" }, nodes.map((n) => h("option", { value: n }))))),
    h("fieldset", { class: "rule-group", style: GROUP }, h("legend", { style: "font-weight:600;font-size:.85rem" }, "When it alerts"),
      h("div", { class: "form-row", style: "align-items:flex-start" },
        field("operator", "Operator", select("operator", OPERATORS, r.operator)),
        field("threshold", withUnit("Alert threshold"), input("threshold", { value: thresholdInput(r.metric, r.threshold), inputmode: "decimal" })),
        field("warning_threshold", withUnit("Warning threshold"), input("warning_threshold", { value: thresholdInput(r.metric, r.warning_threshold), inputmode: "decimal", placeholder: "none" })),
        field("recovery_threshold", withUnit("Recovery threshold"), input("recovery_threshold", { value: thresholdInput(r.metric, r.recovery_threshold), inputmode: "decimal", placeholder: "the alert threshold" }), "resolves only past this"),
        field("min_runs", "Min runs", input("min_runs", { value: r.min_runs, inputmode: "numeric" }), "fewer: not judged"))),
    h("fieldset", { class: "rule-group", style: GROUP }, h("legend", { style: "font-weight:600;font-size:.85rem" }, "Timing and notifications"),
      h("div", { class: "form-row", style: "align-items:flex-start" },
        field("pending_for", "Pending period", input("pending_for", { value: durationInput(r.pending_for), placeholder: "none" }), "fires only if it holds this long"),
        field("keep_firing_for", "Keep firing for", input("keep_firing_for", { value: durationInput(r.keep_firing_for), placeholder: "none" }), "after it last held"),
        field("renotify_every", "Re-notify every", input("renotify_every", { value: durationInput(r.renotify_every), placeholder: "never" }), "while firing, warning or no data"),
        field("no_data", "When there are no runs", select("no_data", NO_DATA, r.no_data)))),
    channels.length
      ? h("fieldset", { class: "field", style: "border:none;padding:0" }, h("legend", { style: "font-weight:600;font-size:.85rem" }, "Notify"),
        channels.map((c) => h("label", { style: "font-weight:400;display:inline-flex;gap:.3rem;margin-right:1rem" },
          h("input", { type: "checkbox", name: "channel_ids", value: c.id, checked: r.channel_ids.includes(c.id) }), c.name)))
      : null,
    h("p", { class: "field-error", id: "r-form-error", role: "alert" }),
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "btn btn-primary" }, rule ? "Save rule" : "Create rule"),
      h("button", { type: "button", class: "btn", onclick: cancel }, "Cancel")));
  // the unit follows the metric: a failure rate is entered in percent
  form.querySelector("#r-metric").addEventListener("change", (ev) => {
    form.querySelectorAll(".unit").forEach((u) => { u.textContent = ` (${UNITS[ev.target.value]})`; });
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const data = new FormData(form);
    const text = (k) => String(data.get(k) ?? "").trim();
    const metric = text("metric");
    const threshold = thresholdValue(metric, text("threshold"));
    const warning = thresholdValue(metric, text("warning_threshold"));
    const recovery = thresholdValue(metric, text("recovery_threshold"));
    const problems = thresholdProblems(metric, text("operator"), threshold, warning, recovery);
    // said here, in the form's words: the API's were "Field required" or, on an edit, "cannot be
    // null: leave it out to keep it", and Number() took "0x10" for 16 and "abc" for null
    if (threshold === null) problems.threshold = "enter the alert threshold";
    const minRuns = text("min_runs");
    if (minRuns !== "" && !(/^\d{1,15}$/.test(minRuns))) problems.min_runs = "enter a whole number of runs (0 or more)";
    if (Object.keys(problems).length) {
      for (const [k, msg] of Object.entries(problems)) form.querySelector(`#r-${k}-error`).textContent = msg;
      return;
    }
    const owner = text("owned_by") === "owner";
    const body = {
      name: text("name"),
      metric,
      operator: text("operator"),
      threshold,
      warning_threshold: warning,
      recovery_threshold: recovery,
      window: text("window"),
      flow_id: owner ? null : flowId,
      owned_by: owner ? flow.user_id : null,
      flow_version: owner ? null : text("flow_version") || null,
      node_id: text("node_id") || null,
      model: text("model") || null,
      min_runs: minRuns === "" ? 1 : Number(minRuns),
      pending_for: text("pending_for") || 0,
      keep_firing_for: text("keep_firing_for") || 0,
      renotify_every: text("renotify_every") || null,
      no_data: text("no_data"),
      // the boxes are the editor's own channels (admins see all): a rule's channels made by
      // others are kept, not dropped by a save that never showed them
      channel_ids: [...data.getAll("channel_ids"), ...r.channel_ids.filter((id) => !channels.some((c) => c.id === id))],
    };
    if (!rule) for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
    try {
      if (rule) await api("PATCH", `/api/v1/alerts/rules/${enc(rule.id)}`, body);
      else await post("/api/v1/alerts/rules", body);
      saved();
    } catch (err) {
      if (!showFieldErrors(form, err, "r-")) form.querySelector("#r-form-error").textContent = alertErrorText(err);
    }
  });
  return form;
}

const KINDS = { webhook: "Webhook (signed)", slack: "Slack", email: "Email" };

function channelsSection(channels, reload, message) {
  const log = h("div", { id: "delivery-log" });
  const showLog = async (c) => {
    try {
      const rows = await get(`/api/v1/alerts/channels/${enc(c.id)}/deliveries${query({ limit: 20 })}`);
      mount(log, h("h3", {}, `Delivery log of ${c.name}`), rows.length
        ? h("div", { class: "table-wrap" }, h("table", { id: "deliveries-table" },
          h("thead", {}, h("tr", {}, [inZone("When"), "Event", "Attempt", "Result", "Took"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows.map((d) => h("tr", { class: d.ok ? "" : "row-error" },
            h("td", {}, timestamp(d.at)), h("td", {}, d.event), h("td", { class: "num" }, String(d.attempt)),
            h("td", {}, d.ok ? h("span", { class: "badge badge-success" }, `✓ ${d.status_code}`) : h("span", { class: "badge badge-error" }, `✗ ${d.status_code ?? ""} ${d.error ?? ""}`)),
            h("td", { class: "num" }, d.duration_ms == null ? "—" : duration(d.duration_ms)))))))
        : empty("Nothing sent yet", "Send a test to check the channel."));
    } catch (err) {
      mount(log, errorPanel(err));
    }
  };
  const name = h("input", { id: "c-name", name: "name", "aria-describedby": "c-name-error" });
  const kind = h("select", { id: "c-kind", name: "kind", "aria-describedby": "c-kind-error" },
    Object.entries(KINDS).map(([k, v]) => h("option", { value: k }, v)));
  const url = h("input", { id: "c-url", name: "url", type: "url", placeholder: "https://…", "aria-describedby": "c-url-error" });
  const secret = h("input", { id: "c-secret", name: "secret", type: "password", autocomplete: "off", "aria-describedby": "c-secret-error" });
  const recipients = h("input", { id: "c-recipients", name: "recipients", type: "text", inputmode: "email", autocomplete: "off",
    placeholder: "ops@example.com, oncall@example.com", "aria-describedby": "c-recipients-error" });
  const err = (id) => h("div", { class: "field-error", id: `c-${id}-error`, role: "alert" });
  const urlLabel = h("label", { for: "c-url" }, "URL");
  const urlField = h("div", { class: "field field-grow", "data-kinds": "webhook slack" }, urlLabel, url, err("url"));
  const secretField = h("div", { class: "field", "data-kinds": "webhook" }, h("label", { for: "c-secret" }, "Signing secret"), secret, err("secret"));
  const recipientsField = h("div", { class: "field field-grow", "data-kinds": "email" },
    h("label", { for: "c-recipients" }, "Recipients"), recipients, err("recipients"));
  // only the chosen kind's fields are shown (and sent): URL + secret, a Slack URL, or recipients
  const showKind = () => {
    for (const f of [urlField, secretField, recipientsField]) f.hidden = !f.dataset.kinds.split(" ").includes(kind.value);
    urlLabel.textContent = kind.value === "slack" ? "Slack webhook URL" : "URL";
    url.placeholder = kind.value === "slack" ? "https://hooks.slack.com/services/…" : "https://…";
  };
  kind.addEventListener("change", () => { clearFieldErrors(form); showKind(); });
  const form = h("form", { class: "panel", id: "channel-form", novalidate: true },
    h("h3", { style: "margin-top:0" }, "New channel"),
    h("div", { class: "form-row" },
      h("div", { class: "field" }, h("label", { for: "c-kind" }, "Kind"), kind, err("kind")),
      h("div", { class: "field" }, h("label", { for: "c-name" }, "Channel name"), name, err("name")),
      urlField, secretField, recipientsField,
      h("div", { class: "field" }, h("button", { type: "submit", class: "btn" }, "Add channel"))));
  showKind();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const body = { kind: kind.value, name: name.value.trim() };
    if (kind.value === "email") body.recipients = recipients.value.split(/[\s,;]+/).filter(Boolean);
    else body.url = url.value.trim();
    if (kind.value === "webhook") body.secret = secret.value;
    try {
      await post("/api/v1/alerts/channels", body);
      reload();
    } catch (e) {
      if (!showFieldErrors(form, e, "c-")) message.textContent = e.message;
    }
  });
  return h("section", { id: "channels" },
    h("h2", {}, `Channels (${channels.length})`),
    channels.length
      ? h("div", { class: "table-wrap" }, h("table", { id: "channels-table" },
        h("thead", {}, h("tr", {}, ["Channel", "Sends to", "State", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, channels.map((c) => h("tr", { "data-channel": c.id, "data-kind": c.kind },
          // the kind under the name, not a column of its own: on a phone "Sends to" needs the room
          h("td", {}, h("strong", {}, c.name), h("div", {}, h("span", { class: "badge badge-other channel-kind" }, KINDS[c.kind] || c.kind))),
          h("td", { class: "mono", style: "overflow-wrap:anywhere" }, c.kind === "email" ? (c.recipients || []).join(", ") : c.url),
          h("td", {}, c.enabled ? h("span", { class: "badge badge-success" }, "enabled") : h("span", { class: "badge badge-error", title: c.disabled_reason || "" }, "disabled"),
            c.consecutive_failures ? h("div", { class: "muted" }, `${c.consecutive_failures} failures in a row`) : null),
          h("td", {}, h("div", { class: "toolbar" },
            h("button", { type: "button", class: "btn btn-small", "aria-label": `Send test to ${c.name}`, onclick: async () => {
              try {
                const d = await post(`/api/v1/alerts/channels/${enc(c.id)}/test`);
                const proto = c.kind === "email" ? "SMTP" : "HTTP";
                message.textContent = d.ok ? `Test sent to ${c.name}: ${proto} ${d.status_code}.` : `Test to ${c.name} failed: ${d.error || `${proto} ${d.status_code}`}.`;
              } catch (e) {
                message.textContent = e.message;
              }
              showLog(c);
            } }, "Send test"),
            h("button", { type: "button", class: "btn btn-small", "aria-label": `Delivery log of ${c.name}`, onclick: () => showLog(c) }, "Delivery log"))))))))
      : empty("No channels", "Add a webhook, a Slack channel or email recipients to be notified when a rule fires."),
    log, form);
}
