"""Deterministic, realistic flow runs shaped as PEER_CONTRACT.md says they really arrive.

- Node ids as the editor makes them (`model_1739905519876_k3j9x2abq`); each flow owns its
  node ids, so every run of a flow carries the same ones.
- Editor runs: each node's string result is spread into its config object, one key per
  character (`{"0": "H", "1": "i", "label": ..., "modelId": ...}`), integer-like keys first
  as JavaScript orders them; `outputs` is an exact copy of `node_results`; no `inputs`.
- Chat runs (~12 %): `inputs: {prompt, files}`, `outputs: {content, files}`, raw per-node strings.
- `errors` is `{"<node id>": msg}` or `{"global": msg}` on failed runs, absent on success.
- Status ~85 % success / 12 % error / 3 % aborted; `execution_time` in ms, log-normal.
- Body sizes 1-60 KB, median ~3 KB (`small=True`: ~0.3 KB, for the 10M case).
- 1,000 flows, Zipf-like: the biggest holds ~10 % of all runs; 100 users; `created_at` spread
  over 90 days, increasing (runs arrive in time order, as a store would see them).
- Some nodes (the OpenAI-style models) report `usage: {prompt_tokens, completion_tokens}`
  and `duration_ms` beside their result.

Speed: a pool of a few hundred payload templates is built once per (seed, small); a run picks
one for its flow's shape and only re-keys it with the flow's node ids and draws ids, time,
status and duration. Template objects are shared between runs: consumers must not mutate them.

    python -m bench.generate --runs 100000 [--small]      # prints the size/shape summary
"""

from __future__ import annotations

import argparse
import bisect
import functools
import itertools
import math
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

N_FLOWS = 1000
N_USERS = 100
DAYS = 90
BIGGEST_SHARE = 0.10
SMALL_RANK = 900  # the "small flow": ~0.02 % of runs (~190 at 1M)
STATUS_CUTS = (0.85, 0.97)  # success below the first, error below the second, else aborted
CHAT_SHARE = 0.12
TEMPLATES_PER_GROUP = 20
_FIXED_END = datetime(2026, 11, 1, tzinfo=UTC).timestamp()

MODELS_WITH_USAGE = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "gpt-4.1-nano")
MODELS_PLAIN = ("llama3.1:8b", "mistral:7b", "qwen2.5:14b", "gemma2:9b")
COMBOS = (  # model ids per model node, by position; combos 0-2 report usage, 3-4 do not
    ("gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"),
    ("gpt-4o", "claude-3-5-sonnet", "gpt-4.1-nano", "gpt-4o"),
    ("gpt-4o-mini", "llama3.1:8b", "gpt-4o", "mistral:7b"),
    ("llama3.1:8b", "qwen2.5:14b", "mistral:7b", "gemma2:9b"),
    ("qwen2.5:14b", "gemma2:9b", "llama3.1:8b", "qwen2.5:14b"),
)
NODE_ERRORS = (
    "Model '{model}' returned 429: Rate limit reached for requests",
    "Request to '{model}' timed out after 60000ms",
    "Network error: Failed to fetch",
    "OpenAI: 401 Incorrect API key provided",
    "This model's maximum context length is 8192 tokens; the messages resulted in 9127 tokens",
    "Ollama: model '{model}' not found, try pulling it first",
    "Upstream returned 502 Bad Gateway",
)
GLOBAL_ERRORS = (
    "Flow execution failed: no path from input to output",
    "Execution cancelled: the browser tab was closed",
    "Unexpected token '<' in JSON at position 0",
)
_WORDS = (  # noqa: SIM905 (a word list reads better as text)
    "the a of to and in is for on that with as this be are by from it at or an was which "
    "model flow result summary input output data user request response context prompt "
    "token analysis report customer ticket invoice email draft translate classify "
    "extract entity sentiment positive negative neutral score reason answer question "
    "step plan review code function error retry policy document section table value "
    "field date amount total order product support priority high low medium category "
    "label tag note follow-up action item meeting agenda decision owner deadline risk "
    "issue status update weekly monthly quarterly revenue cost margin growth churn "
    "retention cohort segment region market team project caf\xe9 na\xefve r\xe9sum\xe9 "
    "\u2014 \u201cquoted\u201d it\u2019s "
).split()


def data_end() -> float:
    """The newest run's time: a fixed date, or a day ago if the clock says that date is ahead
    (flowhistory refuses `created_at` more than a day in the future)."""
    return min(_FIXED_END, (time.time() // 86400 - 1) * 86400)


def users() -> list[str]:
    return [f"u{i:03d}" for i in range(1, N_USERS + 1)]


def _zipf_exponent(n: int, share: float) -> float:
    """The s for which rank 1 of a Zipf(s) over n ranks holds `share` of the mass."""
    lo, hi = 0.01, 3.0
    for _ in range(60):
        mid = (lo + hi) / 2
        first = 1.0 / sum(r**-mid for r in range(1, n + 1))
        lo, hi = (mid, hi) if first < share else (lo, mid)
    return (lo + hi) / 2


@functools.cache
def _flow_cum_weights() -> tuple[float, ...]:
    s = _zipf_exponent(N_FLOWS, BIGGEST_SHARE)
    cum, total = [], 0.0
    for r in range(1, N_FLOWS + 1):
        total += r**-s
        cum.append(total)
    return tuple(c / total for c in cum)


def flow_share(rank: int) -> float:
    """Expected share of all runs held by the flow at `rank` (1 = biggest)."""
    cum = _flow_cum_weights()
    return cum[rank - 1] - (cum[rank - 2] if rank > 1 else 0.0)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _node_id(rng: random.Random, kind: str, ms: int) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return f"{kind}_{ms}_{''.join(rng.choice(alphabet) for _ in range(9))}"


# -- templates --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Group:
    """A flow shape: k model nodes with fixed models, and the configs the editor keeps."""

    k: int
    combo: int
    first_model: int  # position of the first model node (0 when there is no input node)
    kinds: tuple[str, ...]
    configs: tuple[dict[str, Any], ...]  # node.data as the flow stores it


@dataclass(frozen=True, slots=True)
class _Template:
    values: tuple[dict[str, Any], ...]  # spread node results, one per node of the group
    bare: tuple[dict[str, Any], ...]  # the node configs without a result (a failing node)
    texts: tuple[str, ...]  # raw per-node strings (chat runs)
    prompt: str
    content: str


def _group_count(small: bool) -> list[tuple[int, int]]:
    ks = (1,) if small else (1, 2, 3, 4)
    return [(k, m) for k in ks for m in range(len(COMBOS))]


def _make_group(rng: random.Random, k: int, combo: int, small: bool) -> _Group:
    # small (the 10M case): one model node and nothing else, to reach ~0.3 KB bodies
    kinds = ("model",) * k if small else ("input", *("model",) * k, "output")
    configs: list[dict[str, Any]] = []
    for pos, kind in enumerate(kinds):
        if kind == "input":
            cfg: dict[str, Any] = {"label": "Input"} if small else {"label": "Input", "inputType": "text"}
        elif kind == "output":
            cfg = {"label": "Output", "format": "text"}
        else:
            model = COMBOS[combo][pos - kinds.index("model")]
            cfg = {"label": f"Model {pos}" if not small else "Model", "modelId": model}
            if not small:
                cfg["systemPrompt"] = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 16)))
                cfg["temperature"] = rng.choice((0, 0.2, 0.7, 1))
        configs.append(cfg)
    return _Group(k, combo, kinds.index("model"), kinds, tuple(configs))


def _text(rng: random.Random, n: int) -> str:
    out: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(_WORDS)
        if rng.random() < 0.08:
            w = w.capitalize() + rng.choice((".", ",", ":", "\n"))
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[: max(n, 1)]


def _spread(text: str, cfg: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = {str(i): ch for i, ch in enumerate(text)}
    value.update(cfg)
    return value


def _build(rng: random.Random, g: _Group, lengths: list[int], seed_texts: int) -> _Template:
    trng = random.Random(seed_texts)
    prompt = _text(trng, lengths[0])
    texts: list[str] = []
    values: list[dict[str, Any]] = []
    if g.first_model:
        texts.append(prompt)
        values.append(_spread(prompt, g.configs[0]))
    for pos in range(g.first_model, g.first_model + g.k):
        text = _text(trng, lengths[pos])
        texts.append(text)
        value = _spread(text, g.configs[pos])
        if g.configs[pos]["modelId"] in MODELS_WITH_USAGE:
            value["usage"] = {
                "prompt_tokens": max(1, (len(prompt) + 400) // 4 + trng.randint(0, 50)),
                "completion_tokens": max(1, len(text) // 4),
            }
            value["duration_ms"] = 200 + len(text) * trng.randint(8, 25)
        values.append(value)
    if g.kinds[-1] == "output":  # the output node repeats the last model's text
        values.append(_spread(texts[-1], g.configs[-1]))
        texts.append(texts[-1])
    return _Template(tuple(values), tuple(dict(c) for c in g.configs), tuple(texts), prompt, texts[-1])


def _body_size(t: _Template, node_ids: list[str]) -> int:
    nr = dict(zip(node_ids, t.values, strict=True))
    body = {
        "flow_id": "0" * 36,
        "status": "success",
        "outputs": nr,
        "node_results": nr,
        "errors": None,
        "execution_time": 12345,
    }
    return len(orjson.dumps(body))


def _sample_size(rng: random.Random, small: bool) -> int:
    if small:
        return int(min(1000, max(150, rng.lognormvariate(math.log(230), 0.3))))
    return int(min(60_000, max(1_000, rng.lognormvariate(math.log(3_800), 0.8))))


@functools.cache
def _pool(seed: int, small: bool) -> dict[tuple[int, int], tuple[_Template, ...]]:
    """A few hundred templates, grouped by flow shape, each calibrated to a sampled size."""
    rng = random.Random(f"templates/{seed}/{small}")
    pool: dict[tuple[int, int], tuple[_Template, ...]] = {}
    for k, combo in _group_count(small):
        g = _groups(seed, small)[(k, combo)]
        fake_ids = [_node_id(rng, kind, 1739905519876) for kind in g.kinds]
        templates = []
        for j in range(TEMPLATES_PER_GROUP):
            target = _sample_size(rng, small)
            if not small and j == 0 and k >= 3:
                target = rng.randint(40_000, 60_000)  # make sure the tail is there
            weights = [rng.uniform(0.2, 0.6)] + [rng.uniform(0.5, 1.5) for _ in range(k)]
            tseed = rng.getrandbits(64)

            def lengths(scale: float, weights: list[float] = weights) -> list[int]:
                return [max(1, round(w * scale)) for w in weights]

            s1 = _body_size(_build(rng, g, lengths(10), tseed), fake_ids)
            s2 = _body_size(_build(rng, g, lengths(110), tseed), fake_ids)
            per = (s2 - s1) / 100
            scale = max(2.0, 10 + (target - s1) / per)
            templates.append(_build(rng, g, lengths(scale), tseed))
        pool[(k, combo)] = tuple(templates)
    return pool


@functools.cache
def _groups(seed: int, small: bool) -> dict[tuple[int, int], _Group]:
    rng = random.Random(f"groups/{seed}/{small}")
    return {(k, m): _make_group(rng, k, m, small) for k, m in _group_count(small)}


# -- flows ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FlowInfo:
    id: str
    owner: str
    public: bool
    group: tuple[int, int]
    node_ids: tuple[str, ...]


@functools.cache
def _flow_infos(seed: int, small: bool) -> tuple[tuple[_FlowInfo, ...], tuple[dict[str, Any], ...]]:
    rng = random.Random(f"flows/{seed}")
    us = users()
    owner_cum = []
    total = 0.0
    for r in range(1, len(us) + 1):
        total += 1 / r
        owner_cum.append(total)
    shuffled = us[:]
    rng.shuffle(shuffled)
    groups = _group_count(small)
    t0 = data_end() - DAYS * 86400
    infos, records = [], []
    for rank in range(1, N_FLOWS + 1):
        fid = _uuid(rng)
        owner = shuffled[bisect.bisect_left(owner_cum, rng.random() * total)]
        public = rng.random() < 0.3
        group = groups[rng.randrange(len(groups))]
        g = _groups(seed, small)[group]
        created = t0 - rng.uniform(1, 180) * 86400
        ms = int(created * 1000)
        node_ids = []
        for kind in g.kinds:
            ms += rng.randint(1500, 40_000)
            node_ids.append(_node_id(rng, kind, ms))
        nodes = [
            {
                "id": nid,
                "type": kind,
                "position": {"x": 100 + 280 * i, "y": 200 + rng.randint(-60, 60)},
                "data": dict(cfg),
            }
            for i, (nid, kind, cfg) in enumerate(zip(node_ids, g.kinds, g.configs, strict=True))
        ]
        edges = [
            {"id": f"xy-edge__{a}-{b}", "source": a, "target": b} for a, b in itertools.pairwise(node_ids)
        ]
        name = (
            f"{rng.choice(('Support', 'Sales', 'Ops', 'Research', 'Billing', 'HR', 'Legal'))} "
            f"{rng.choice(('triage', 'summariser', 'translator', 'classifier', 'drafter', 'extractor'))} {rank}"
        )
        infos.append(_FlowInfo(fid, owner, public, group, tuple(node_ids)))
        records.append(
            {
                "id": fid,
                "user_id": owner,
                "name": name,
                "nodes": nodes,
                "edges": edges,
                "access_control": None if public else {},
                "created_at": int(created),
                "updated_at": int(created + rng.uniform(0, 30) * 86400),
            }
        )
    return tuple(infos), tuple(records)


def flows(seed: int, small: bool = False) -> list[dict[str, Any]]:
    """The 1,000 flows, biggest first: id, user_id (owner), name, nodes, edges, access_control
    (None = public read, {} = private), created_at, updated_at (epoch s)."""
    return [dict(r) for r in _flow_infos(seed, small)[1]]


def biggest_flow_id(seed: int, small: bool = False) -> str:
    """The flow holding ~10 % of all runs."""
    return _flow_infos(seed, small)[0][0].id


def small_flow_id(seed: int, small: bool = False) -> str:
    """A flow holding ~0.02 % of all runs (~190 at 1M, a few pages)."""
    return _flow_infos(seed, small)[0][SMALL_RANK - 1].id


def flow_owner(seed: int, flow_id: str, small: bool = False) -> str:
    return _owners(seed, small)[flow_id]


@functools.cache
def _owners(seed: int, small: bool) -> dict[str, str]:
    return {f.id: f.owner for f in _flow_infos(seed, small)[0]}


# -- runs -------------------------------------------------------------------------------


def generate_runs(
    n: int,
    *,
    seed: int,
    small: bool = False,
    stream: int = 0,
    start: float | None = None,
    span: float | None = None,
) -> Iterator[dict[str, Any]]:
    """`n` runs in increasing `created_at` order over the 90 days before `data_end()` (or over
    [start, start + span]). Each: id, flow_id, user_id, status, execution_time (ms),
    created_at (epoch s, float, UTC), inputs, outputs, node_results, errors.

    `seed` fixes the flows, users and templates; `stream` draws other runs of the same flows
    (the harness's POST bodies). The same arguments always give the same runs."""
    infos, _ = _flow_infos(seed, small)
    pool = _pool(seed, small)
    first_model = {key: g.first_model for key, g in _groups(seed, small).items()}
    cum = _flow_cum_weights()
    us = users()
    rng = random.Random(f"runs/{seed}/{small}/{n}/{start}" + (f"/{stream}" if stream else ""))
    span = DAYS * 86400 if span is None else span
    t0 = data_end() - span if start is None else start
    step = span / max(n, 1)
    rnd = rng.random
    succ_cut, err_cut = STATUS_CUTS
    bl = bisect.bisect_left
    lognorm = rng.lognormvariate
    for i in range(n):
        f = infos[bl(cum, rnd())]
        templates = pool[f.group]
        t = templates[int(rnd() * len(templates))]
        ids = f.node_ids
        r = rnd()
        errors: dict[str, str] | None = None
        k = f.group[0]
        m0 = first_model[f.group]
        if r < succ_cut:
            status = "success"
            nr = dict(zip(ids, t.values, strict=False))
            ms = lognorm(7.3 + 0.35 * k, 0.7)
        elif r < err_cut:
            status = "error"
            if rnd() < 0.8:  # a model node failed: the nodes before it, then its bare config
                fail = m0 + int(rnd() * k)
                nr = dict(zip(ids[:fail], t.values[:fail], strict=False))
                nr[ids[fail]] = t.bare[fail]
                model = t.bare[fail].get("modelId", "model")
                errors = {ids[fail]: NODE_ERRORS[int(rnd() * len(NODE_ERRORS))].format(model=model)}
            else:
                nr = dict(zip(ids[:m0], t.values[:m0], strict=False))
                errors = {"global": GLOBAL_ERRORS[int(rnd() * len(GLOBAL_ERRORS))]}
            ms = lognorm(6.6 + 0.3 * k, 1.0)
        else:
            status = "aborted"
            stop = m0 + int(rnd() * k)
            nr = dict(zip(ids[:stop], t.values[:stop], strict=False))
            ms = lognorm(7.0 + 0.3 * k, 0.9)
        if rnd() < CHAT_SHARE:
            inputs: dict[str, Any] | None = {"prompt": t.prompt, "files": []}
            nr = {nid: t.texts[pos] if v is t.values[pos] else "" for pos, (nid, v) in enumerate(nr.items())}
            outputs: dict[str, Any] | None = {
                "content": t.content if status == "success" else "",
                "files": [],
            }
        else:
            inputs = None
            outputs = nr
        user = f.owner if not f.public or rnd() < 0.8 else us[int(rnd() * len(us))]
        yield {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "flow_id": f.id,
            "user_id": user,
            "status": status,
            "execution_time": max(5, int(ms)),
            "created_at": t0 + (i + rnd()) * step,
            "inputs": inputs,
            "outputs": outputs,
            "node_results": nr,
            "errors": errors,
        }


def request_body(run: dict[str, Any], *, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The E1 form the client sends (no id, time or user: the server assigns them), plus any
    fields named in `keep` (the batch import takes created_at and user_id)."""
    body: dict[str, Any] = {
        "flow_id": run["flow_id"],
        "status": run["status"],
        "outputs": run["outputs"],
        "node_results": run["node_results"],
        "execution_time": run["execution_time"],
    }
    if run["inputs"] is not None:
        body["inputs"] = run["inputs"]
    if run["errors"] is not None:
        body["errors"] = run["errors"]
    for key in keep:
        body[key] = run[key]
    return body


def _summary(n: int, seed: int, small: bool) -> None:
    t = time.perf_counter()
    runs = list(generate_runs(n, seed=seed, small=small))
    gen_s = time.perf_counter() - t
    sizes = sorted(len(orjson.dumps(request_body(r))) for r in runs)
    statuses: dict[str, int] = {}
    per_flow: dict[str, int] = {}
    for r in runs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        per_flow[r["flow_id"]] = per_flow.get(r["flow_id"], 0) + 1
    q = statistics.quantiles(sizes, n=100)
    print(f"{n} runs in {gen_s:.2f} s ({n / gen_s:,.0f} runs/s)")
    print(
        f"body bytes: min {sizes[0]} p50 {q[49]:.0f} mean {statistics.fmean(sizes):.0f} "
        f"p90 {q[89]:.0f} p99 {q[98]:.0f} max {sizes[-1]}"
    )
    print("status:", {k: f"{v / n:.1%}" for k, v in sorted(statuses.items())})
    print(f"chat runs: {sum(1 for r in runs if r['inputs']) / n:.1%}")
    top = sorted(per_flow.values(), reverse=True)
    print(
        f"flows with runs: {len(per_flow)}; biggest {top[0] / n:.1%} ({top[0]}); "
        f"biggest id {biggest_flow_id(seed, small)} has {per_flow.get(biggest_flow_id(seed, small), 0)}; "
        f"small flow has {per_flow.get(small_flow_id(seed, small), 0)}"
    )
    print("example:", orjson.dumps(request_body(runs[1]))[:600].decode())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--small", action="store_true")
    a = p.parse_args()
    _summary(a.runs, a.seed, a.small)
