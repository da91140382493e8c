// One run: summary, errors highlighted, a timeline of its nodes in the flow's graph order,
// nodes with their results, annotation editor, replay payload, and "compare with…".
import { del, enc, get, post, put } from "../api.js";
import { confirmAction, h, mount } from "../dom.js";
import { clearFieldErrors, showFieldErrors } from "../field_errors.js";
import { badge, clip, count, duration, money, shortId, shortVersion, tokens, zoned } from "../format.js";
import { jsonView, spreadText } from "../json_view.js";
import { definitionThatRan, graphOrder, nodeName } from "../node_labels.js";
import { flowHeader, loadFlow, mayWrite } from "./flow_header.js";

// What the server recorded per node at ingest (status, duration, tokens, estimated or not,
// cost, error): the run's `nodes`. A node named only in `errors` may have none.
function factsOf(run, errors) {
  const byId = new Map((run.nodes || []).map((n) => [n.node_id, n]));
  return (id) => {
    const n = byId.get(id);
    if (n) return { status: n.status || "success", ms: n.duration_ms ?? undefined, tin: n.tokens_in, tout: n.tokens_out, estimated: n.tokens_estimated, model: n.model, cost: n.cost };
    return { status: errors[id] !== undefined ? "error" : "success", ms: undefined, tin: null, tout: null, estimated: false, model: null, cost: null };
  };
}

// A waterfall of the run's nodes in graph order: each bar starts where the one before ended
// (the run records durations, not start times, so bars are laid end to end) and is as long as
// the node's duration; nodes of the flow that never ran are listed as such.
function timeline(flow, run, ran, facts) {
  const order = graphOrder(flow, [...ran]);
  const ms = (id) => (ran.has(id) ? facts(id).ms ?? 0 : 0);
  const sum = order.reduce((t, id) => t + ms(id), 0);
  const scale = Math.max(sum, run.execution_time || 0, 1);
  let offset = 0;
  const items = order.map((id) => {
    const f = facts(id);
    const did = ran.has(id);
    const width = did ? (ms(id) / scale) * 100 : 0;
    const left = (offset / scale) * 100;
    offset += ms(id);
    const status = did ? f.status : "not run";
    const colour = !did ? "transparent" : f.status === "error" ? "#cf222e" : f.status === "success" ? "#2da44e" : "#8c959f";
    return h("li", { class: "tl-row", "data-node": id, "data-ran": String(did), "data-status": status,
      style: "display:grid;grid-template-columns:minmax(0,14rem) minmax(4rem,1fr) minmax(0,11rem);gap:.5rem;align-items:center;padding:.2rem 0;border-bottom:1px solid #eaeef2" },
      h("span", { style: "overflow-wrap:anywhere", title: id },
        did ? badge(f.status) : h("span", { class: "badge badge-other" }, "never ran"), " ", nodeName(flow, id)),
      h("span", { class: "tl-track", style: "display:block;position:relative;height:.9rem;background:#f6f8fa;border-radius:3px", "aria-hidden": "true" },
        did ? h("span", { class: "tl-bar", style: `position:absolute;top:0;bottom:0;left:${left.toFixed(2)}%;width:max(2px,${width.toFixed(2)}%);background:${colour};border-radius:3px` }) : null),
      h("span", { class: "muted num", style: "font-size:.85rem;text-align:right" },
        did
          ? [f.ms !== undefined ? duration(f.ms) : "no duration", f.tin !== null || f.tout !== null ? ` · ${tokens(f.tin, f.tout, f.estimated)}` : ""].join("")
          : "—"),
    );
  });
  const notRun = order.filter((id) => !ran.has(id)).length;
  return h("section", { class: "panel", id: "timeline", "aria-label": "Timeline" },
    h("h2", { style: "margin-top:0" }, "Timeline"),
    h("p", { class: "muted", id: "timeline-caption" }, flow.ranVersion
      ? `Nodes in the order of the flow version that ran (${shortVersion(flow.ranVersion)}), not today's`
      : "Nodes in the flow's order",
    `, laid end to end by duration (the run records durations, not start times)${notRun ? `; ${notRun} never ran` : ""}.`),
    h("ol", { style: "list-style:none;margin:0;padding:0" }, items));
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function errorText(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export async function render(root, [flowId, runId], ctx) {
  const base = `/api/v1/flows/${enc(flowId)}/executions`;
  const flowP = loadFlow(flowId);
  const runP = get(`${base}/${enc(runId)}`).catch(async (err) => {
    // the flow may still be readable though this run is not (deleted): offer its runs
    const readable = await flowP.catch(() => null);
    if (readable) err.back = [[`#/flows/${enc(flowId)}`, `Back to the runs of “${readable.name}”`]];
    throw err;
  });
  // the definition that ran labels and orders this run's nodes (the flow may have changed since)
  const replayP = get(`${base}/${enc(runId)}/replay`);
  const [current, run, replay, canWrite] = await Promise.all([flowP, runP, replayP.catch(() => null), mayWrite(flowId)]);
  if (ctx.stale()) return;
  const flow = definitionThatRan(current, replay);
  const errors = run.errors || {};
  const errorEntries = Object.entries(errors);
  const nodeResults = run.node_results || {};
  const nodeIds = [...new Set([...Object.keys(nodeResults), ...Object.keys(errors).filter((k) => k !== "global")])];

  const nodeFacts = factsOf(run, errors);
  const ran = new Set([...nodeIds, ...(run.nodes || []).map((n) => n.node_id)]);
  const nodes = nodeIds.map((id) => {
    const facts = nodeFacts(id);
    const text = spreadText(nodeResults[id]);
    return h("article", { class: `node${facts.status === "error" ? " node-error" : ""}`, "data-node": id },
      h("header", {},
        badge(facts.status),
        nodeName(flow, id, { class: "id" }),
        facts.model ? h("span", { class: "muted" }, facts.model) : null,
        facts.ms !== undefined ? h("span", { class: "muted" }, `· ${duration(facts.ms)}`) : null,
        facts.tin !== null || facts.tout !== null ? h("span", { class: "muted" }, `· ${tokens(facts.tin, facts.tout, facts.estimated)}`) : null,
        facts.cost !== null && facts.cost !== undefined ? h("span", { class: "muted", "data-node-cost": "" }, `· ${money(facts.cost)}`) : null,
      ),
      h("div", { class: "body" },
        errors[id] !== undefined ? h("div", { class: "errors-box" }, h("pre", {}, errorText(errors[id]))) : null,
        text ? h("p", {}, h("strong", {}, "Text: "), clip(text, 301)) : null,
        id in nodeResults ? jsonView(nodeResults[id], { open: false }) : h("p", { class: "muted" }, "No result recorded."),
      ),
    );
  });

  // offered to those who may delete (a reader's click answered 403 and showed nothing); a
  // failure says why beside the button
  const deleteError = h("span", { class: "field-error", id: "delete-run-error", role: "alert" });
  const deleteBtn = canWrite ? h("button", { type: "button", class: "btn btn-danger", id: "delete-run" }, "Delete run") : null;
  deleteBtn?.addEventListener("click", async () => {
    if (!(await confirmAction("Delete this run?", `The run of ${zoned(run.created_at)} will be deleted. This cannot be undone.`))) return;
    deleteError.textContent = "";
    try {
      await del(`${base}/${enc(run.id)}`);
    } catch (err) {
      deleteError.textContent = `Not deleted: ${err.message}`;
      return;
    }
    ctx.navigate(`#/flows/${enc(flowId)}`);
  });

  mount(root,
    ...flowHeader(current, "history", `Run ${shortId(run.id)}`),
    h("section", { class: "panel", id: "run-summary", "aria-label": "Summary" },
      h("div", { class: "toolbar" }, badge(run.status), h("strong", { id: "run-time" }, zoned(run.created_at)), h("span", { class: "spacer" }), deleteError, deleteBtn),
      kv([
        ["Duration", h("span", { id: "run-duration" }, duration(run.execution_time))],
        ["Tokens", h("span", { id: "run-tokens" }, tokens(run.tokens_in, run.tokens_out, run.tokens_estimated))],
        ["Cost", h("span", { id: "run-cost" }, money(run.cost))],
        ["User", run.user_id],
        ["Flow version", h("code", {}, run.flow_version || "—")],
        run.replay_of ? ["Replay of", h("a", { href: `#/flows/${enc(flowId)}/runs/${enc(run.replay_of)}` }, shortId(run.replay_of))] : null,
        ["Id", h("code", {}, run.id)],
      ]),
    ),
    errorEntries.length
      ? h("section", { class: "errors-box", id: "run-errors", role: "region", "aria-label": "Errors" },
        h("strong", {}, `${errorEntries.length} error${errorEntries.length === 1 ? "" : "s"}`),
        errorEntries.map(([k, v]) => h("div", { "data-error-key": k },
          k === "global" ? h("span", { class: "mono" }, "global: ") : [nodeName(flow, k, { class: "mono" }), ": "],
          h("pre", {}, errorText(v)))))
      : null,
    timeline(flow, run, ran, nodeFacts),
    annotationEditor(base, run, canWrite),
    h("h2", {}, `Nodes (${nodeIds.length})`),
    h("section", { id: "nodes" }, nodes.length ? nodes : h("p", { class: "muted" }, "This run recorded no node results.")),
    h("h2", {}, "Inputs"),
    h("div", { class: "panel" }, jsonView(run.inputs)),
    h("h2", {}, "Outputs"),
    h("div", { class: "panel" }, jsonView(run.outputs, { open: false })),
    compareWith(flowId, run, ctx),
    replayBox(run, replayP),
  );
}

// A reader sees the annotation, disabled, with why: saving it could only answer 403.
function annotationEditor(base, run, canWrite) {
  const a = run.annotation || { note: null, tags: [], rating: null };
  const note = h("textarea", { id: "a-note", name: "note" });
  note.value = a.note || "";
  const tags = h("input", { id: "a-tags", name: "tags", value: a.tags.join(", "), "aria-describedby": "a-tags-error" });
  const tagsError = h("div", { class: "field-error", id: "a-tags-error", role: "alert" });
  const noteError = h("div", { class: "field-error", id: "a-note-error", role: "alert" });
  const status = h("span", { id: "a-status", role: "status", class: "muted" },
    run.annotation ? `Saved by ${run.annotation.updated_by} on ${zoned(run.annotation.updated_at)}` : "");
  const radio = (value, label) => h("label", { style: "display:inline-flex;gap:.3rem;margin-right:1rem;font-weight:400" },
    h("input", { type: "radio", name: "rating", value: String(value), checked: a.rating === value }), label);
  const form = h("form", { class: "panel", id: "annotation", "aria-labelledby": "a-title" },
    h("h2", { id: "a-title", style: "margin-top:0" }, "Notes, tags and rating"),
    h("div", { class: "field" }, h("label", { for: "a-note" }, "Note"), note, noteError),
    h("div", { class: "field" }, h("label", { for: "a-tags" }, "Tags (comma-separated)"), tags, tagsError),
    h("fieldset", { class: "field", style: "border:none;padding:0;margin:0 0 .75rem" },
      h("legend", { style: "font-weight:600;font-size:.85rem" }, "Rating"),
      radio("", "None"), radio(1, "Good (+1)"), radio(-1, "Bad (−1)")),
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "btn btn-primary" }, "Save"), status),
  );
  form.querySelector('input[name=rating][value=""]').checked = a.rating === null;
  if (!canWrite) {
    for (const field of form.querySelectorAll("textarea, input, button")) field.disabled = true;
    status.textContent = "You may read this flow, not change it: notes, tags and ratings are its writers'.";
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const ratingValue = new FormData(form).get("rating");
    const body = {
      note: note.value,
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      rating: ratingValue ? Number(ratingValue) : null,
    };
    status.textContent = "Saving…";
    try {
      const saved = await put(`${base}/${enc(run.id)}/annotation`, body);
      status.textContent = `Saved ✓ (${zoned(saved.updated_at)})`;
      status.dataset.saved = "true";
    } catch (err) {
      status.textContent = showFieldErrors(form, err, "a-") ? "Not saved." : `Not saved: ${err.message}`;
    }
  });
  return form;
}

function compareWith(flowId, run, ctx) {
  const select = h("select", { id: "compare-with" }, h("option", { value: "" }, "Loading runs…"));
  const go = h("button", { type: "submit", class: "btn" }, "Compare");
  const form = h("form", { class: "panel form-row", id: "compare-form" },
    h("div", { class: "field", style: "flex:1" }, h("label", { for: "compare-with" }, "Compare with…"), select),
    h("div", { class: "field" }, go));
  post("/api/v1/executions/search", { filter: { flow_id: { any_: [flowId] } }, limit: 50 }).then((page) => {
    const others = page.items.filter((r) => r.id !== run.id);
    select.replaceChildren(h("option", { value: "" }, others.length ? "Choose a run" : "No other runs"),
      ...others.map((r) => h("option", { value: r.id }, `${r.status === "success" ? "✓" : r.status === "error" ? "✗" : "⊘"} ${zoned(r.created_at)} · ${duration(r.execution_time)}`)));
  }, () => select.replaceChildren(h("option", { value: "" }, "Runs could not be loaded")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (select.value) ctx.navigate(`#/compare/${enc(run.id)}/${enc(select.value)}`);
  });
  return form;
}

function replayBox(run, replayP) {
  const out = h("div", {});
  const copy = h("button", { type: "button", class: "btn", id: "copy-replay" }, "Copy replay payload");
  const status = h("span", { role: "status", class: "muted", id: "copy-status" });
  const runAgain = h("div", { id: "run-again" });
  const box = h("section", { class: "panel", id: "replay", "aria-labelledby": "replay-title" },
    h("h2", { id: "replay-title", style: "margin-top:0" }, "Replay: the payload to run this again"),
    h("p", { class: "muted", id: "replay-help" },
      "This gives you what is needed to run this execution again: the same inputs and the definition of the flow version that ran. "
      + "flowhistory does not run flows itself; Open WebUI runs them in the browser. Record the new run by POSTing the body below "
      + "(completed with its outcome): it is stored as a replay of this run and can be compared with it."),
    h("div", { class: "toolbar" }, copy, status), runAgain, out);
  let payload = null;
  const copyText = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = h("textarea", { style: "position:fixed;left:-9999px" });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
  };
  // The replay loads only for a viewer who may read the flow, and that is who may run it again
  // (the execute endpoint checks the same read access): the button is offered then and only then.
  const offerRunAgain = () => {
    const note = h("p", { class: "muted", id: "run-again-status", role: "status" });
    const btn = h("button", { type: "button", class: "btn", id: "run-again-btn", "aria-describedby": "run-again-help" }, "Run again in Open WebUI");
    btn.addEventListener("click", async () => {
      try {
        const answer = await post(`/api/v1/flows/${enc(run.flow_id)}/execute`);
        await copyText(JSON.stringify(payload.inputs ?? {}, null, 2));
        note.dataset.answer = answer.status;
        note.textContent = `${answer.message}: open this flow in Open WebUI and run it there; its inputs are copied to the clipboard.`;
      } catch (err) {
        btn.disabled = true;
        note.textContent = `Cannot run this flow again: ${err.message}`;
      }
    });
    mount(runAgain, h("div", { class: "toolbar" }, btn),
      h("p", { class: "muted", id: "run-again-help" }, "Checks that you may run this flow, copies this run's inputs and tells you to run the flow in Open WebUI (execution happens in the browser, not on this server)."),
      note);
  };
  replayP.then((p) => {
    payload = p;
    offerRunAgain();
    mount(out, h("p", {}, "POST to ", h("code", {}, p.post_to)), jsonView(p.body, { open: false }));
  }, (err) => mount(out, h("p", { class: "field-error" }, err.message)));
  copy.addEventListener("click", async () => {
    if (!payload) return;
    const text = JSON.stringify(payload.body, null, 2);
    await copyText(text);
    status.textContent = `Copied ${count(text.length)} characters.`;
  });
  return box;
}
