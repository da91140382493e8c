"""Node facts for many runs at once, in DuckDB SQL: the bulk twin of node_facts.py, same rules.

No Python object per run: DuckDB parses each node_results text once into a map of structs that
holds only the fields every node's facts read (`json_transform`), and goes back to the text
only for the nodes whose tokens are estimated (a model, no usage), for their prompt and text
fields and the character spread. The rules are node_facts.py's; where they read a node's fields
the comments name the Python they mirror. tests/analytics/history/test_node_facts_columnar.py
compares every fact of generated, hostile and raw-text runs with the Python function.

The import (`import openwebui`) computes its facts here (`facts_into`, on its own DuckDB).
Entry points: `columnar_facts(runs, prices)` for an Arrow table, on a private in-memory DuckDB;
`facts_into(con, relation, prices)` on a connection the caller already holds (no copy of the
rows in or out).

Known differences, on bodies no JSON writer emits: a key repeated inside one node object (the
first value is read; Python keeps the last). A key repeated at the top level is handled as a
dict does.

Input: a relation with `rn` (the run's row number), `node_results`, `errors`, `inputs` (JSON
text, or '' / 'null' / not JSON for none) and `day` (the run's UTC date, for prices).
"""

from __future__ import annotations

import threading
import weakref
from datetime import date
from typing import Protocol

import duckdb
import pyarrow as pa


class _Price(Protocol):
    @property
    def input_per_million(self) -> float: ...
    @property
    def output_per_million(self) -> float: ...


class PriceLookup(Protocol):
    """The price table's lookup (cost/prices.py, a room above): its glob rules, used as they are."""

    def price_for(self, model: str, on: date) -> _Price | None: ...


_MAX = 2**53
_STATUSES = "('success', 'error', 'aborted', 'skipped', 'running')"

# DuckDB writes extracted JSON minified, so a value's first character is its type: the
# macros read that instead of parsing each small value again with json_type
# _int: a non-bool integer or float in [0, 2**53], floats rounded half to even as round() does
_MACROS = f"""
    CREATE OR REPLACE TEMP MACRO nf_int(x) AS CASE
        WHEN regexp_full_match(CAST(x AS VARCHAR), '[0-9]+')
            THEN CASE WHEN TRY_CAST(CAST(x AS VARCHAR) AS HUGEINT) <= {_MAX} THEN CAST(CAST(x AS VARCHAR) AS BIGINT) END
        WHEN left(CAST(x AS VARCHAR), 1) IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
             AND TRY_CAST(CAST(x AS VARCHAR) AS DOUBLE) BETWEEN 0 AND {_MAX}
            THEN CAST(round_even(TRY_CAST(CAST(x AS VARCHAR) AS DOUBLE), 0) AS BIGINT)
    END;
    CREATE OR REPLACE TEMP MACRO nf_str(x) AS CASE WHEN left(CAST(x AS VARCHAR), 1) = '"' THEN x ->> '$' END;
    CREATE OR REPLACE TEMP MACRO nf_is_obj(x) AS left(CAST(x AS VARCHAR), 1) = '{{';
    CREATE OR REPLACE TEMP MACRO nf_truthy(x) AS CASE
        WHEN x IS NULL OR CAST(x AS VARCHAR) IN ('null', 'false', '""', '[]', '{{}}') THEN false
        WHEN left(CAST(x AS VARCHAR), 1) IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
            THEN coalesce(TRY_CAST(CAST(x AS VARCHAR) AS DOUBLE) <> 0, true)
        ELSE true
    END;
    CREATE OR REPLACE TEMP MACRO nf_first_in(u) AS
        coalesce(nf_int(json_extract(u, 'prompt_tokens')), nf_int(json_extract(u, 'input_tokens')), nf_int(json_extract(u, 'prompt_eval_count')));
    CREATE OR REPLACE TEMP MACRO nf_first_out(u) AS
        coalesce(nf_int(json_extract(u, 'completion_tokens')), nf_int(json_extract(u, 'output_tokens')), nf_int(json_extract(u, 'eval_count')));
    -- the text before a node id's first '_' (NULL without one): its type when an identifier
    CREATE OR REPLACE TEMP MACRO nf_prefix(node_id) AS CASE WHEN contains(node_id, '_') THEN split_part(node_id, '_', 1) END;
    CREATE OR REPLACE TEMP MACRO nf_type(node_id, identifiers) AS
        CASE WHEN list_contains(identifiers, nf_prefix(node_id)) THEN nf_prefix(node_id) END;
    CREATE OR REPLACE TEMP MACRO nf_str_len(x) AS CASE WHEN contains(CAST(x AS VARCHAR), '\\')
        THEN length(x ->> '$') ELSE length(CAST(x AS VARCHAR)) - 2 END;
    -- the spread by the general rule: the string-valued index keys, sorted, as long as the i-th is i
    CREATE OR REPLACE TEMP MACRO nf_sorted_chars(keys, vals) AS list_sort(list_transform(
        list_filter(list_zip(keys, vals), lambda kv: regexp_full_match(kv[1], '0|[1-9][0-9]{{0,17}}')
                                                     AND left(CAST(kv[2] AS VARCHAR), 1) = '"'),
        lambda kv: struct_pack(i := CAST(kv[1] AS BIGINT), len := nf_str_len(kv[2]))));
    CREATE OR REPLACE TEMP MACRO nf_spread_sorted(keys, vals) AS CASE
        WHEN len(nf_sorted_chars(keys, vals)) > 0 AND nf_sorted_chars(keys, vals)[1].i = 0 THEN
            list_sum(list_transform(list_filter(list_zip(nf_sorted_chars(keys, vals), range(len(keys))),
                                                lambda x: x[1].i = x[2]), lambda x: x[1].len))
    END;
    CREATE OR REPLACE TEMP MACRO nf_estimate(n) AS CASE WHEN n > 0 THEN (n + 3) // 4 END;
"""

# Pass 1, one parse of each document: its nodes as a MAP of structs holding only the fields
# every node's facts read (JSON values, so a string and a number stay apart). A node that is not
# an object becomes a struct of NULLs, which yields the same facts as `{}`; a document whose
# top-level keys repeat (the MAP refuses them) takes the slower list path.
_CORE = (
    "type", "modelId", "model", "status", "usage", "usage_details", "tokens",
    "duration_ms", "execution_time", "elapsed_ms",
)  # fmt: skip
_STRUCT = "STRUCT(" + ", ".join(f"{k} JSON" for k in _CORE) + ")"

_SRC = f"""
    CREATE OR REPLACE TEMP TABLE nf_src AS
    SELECT rn, day, left(ltrim(node_results), 1) = '{{' AS is_object,
        CASE WHEN is_object THEN TRY(json_transform(node_results, '"MAP(VARCHAR, {_STRUCT})"')) END AS m
    FROM {{runs}}
"""
# documents whose top-level keys repeat (rare): their nodes as a dict holds them. Only put in the
# statement when the chunk has one: its filter's json_valid, pushed below the join, parsed every
# run's node_results again (~13 ms a 2,500-run chunk)
_REPEATED = f"""
    repeated AS (
        SELECT rn, day, keys, list_filter(range(1, len(keys) + 1), lambda j: list_position(keys, keys[j]) = j) AS firsts,
            list_transform(json_extract(nr, '$.*'), lambda x: json_transform(x, '"{_STRUCT}"')) AS vals
        FROM (SELECT s.rn, s.day, r.node_results AS nr, json_keys(r.node_results) AS keys
              FROM nf_src s JOIN {{runs}} r USING (rn)
              WHERE s.m IS NULL AND s.is_object AND json_valid(r.node_results))
    ),"""
_REPEATED_LISTED = """
        UNION ALL
        -- as a dict keeps a repeated key: at its first place, with its last value (`pos`: the value's place)
        SELECT rn, day, list_transform(firsts, lambda j: keys[j]),
            list_transform(firsts, lambda j: vals[len(keys) + 1 - list_position(list_reverse(keys), keys[j])]),
            list_transform(firsts, lambda j: len(keys) - list_position(list_reverse(keys), keys[j]))
        FROM repeated"""
_NODES = f"""
    CREATE OR REPLACE TEMP TABLE nf_nodes AS
    WITH {{repeated}}
    listed AS (
        SELECT rn, day, map_keys(m) AS keys, map_values(m) AS vals, range(len(map_keys(m))) AS pos
        FROM nf_src WHERE m IS NOT NULL{{repeated_listed}}
    ),
    each AS (
        SELECT rn, day, unnest(range(len(keys))) AS ord, unnest(keys) AS node_id, unnest(vals) AS s,
            unnest(pos) AS pos
        FROM listed
    ),
    typed AS (
        SELECT rn, day, ord, pos, node_id,
            nf_str(s.type) AS own_type,
            -- model: modelId when a non-empty string, else model, kept when a string
            CASE WHEN nf_str(s.modelId) <> '' THEN nf_str(s.modelId) ELSE nf_str(s.model) END AS model,
            CASE WHEN nf_str(s.status) IN {_STATUSES} THEN nf_str(s.status) END AS own_status,
            -- _usage: the first of usage, usage_details, tokens that is an object; `tokens` may be a count
            CASE WHEN nf_is_obj(s.usage) THEN s.usage WHEN nf_is_obj(s.usage_details) THEN s.usage_details
                 WHEN nf_is_obj(s.tokens) THEN s.tokens END AS u,
            nf_int(s.tokens) AS token_count,  -- read when none of the three is an object
            coalesce(nf_int(s.duration_ms), nf_int(s.execution_time), nf_int(s.elapsed_ms)) AS duration_ms
        FROM each
    )
    SELECT rn, day, ord, pos, node_id, own_type, model, own_status, duration_ms,
        CASE WHEN u IS NOT NULL THEN nf_first_in(u) END AS usage_in,
        CASE WHEN u IS NOT NULL THEN nf_first_out(u) ELSE token_count END AS usage_out
    FROM typed
"""

# Pass 2, only for the nodes whose tokens are estimated (a model, no usage): their keys and values,
# for the prompt and text fields and the character spread ("0", "1", ... while each is present and
# a string). A string's length is read off its JSON text unless it holds an escape.
_TEXT_FIELDS = ("prompt", "systemPrompt", "system", "input", "content", "text", "output", "response")


def _field(name: str) -> str:
    """The node's value at `name` as a string (NULL unless a JSON string); the first if repeated."""
    return f"nf_str(vals[list_position(keys, '{name}')])"


_ESTIMATED = "model IS NOT NULL AND usage_in IS NULL AND usage_out IS NULL"
_ESTIMATES = f"""
    CREATE OR REPLACE TEMP TABLE nf_estimates AS
    WITH wanted AS (SELECT DISTINCT rn FROM nf_nodes WHERE {_ESTIMATED}),
    each AS (
        SELECT s.rn, s.inputs, unnest(range(len(v))) AS pos, unnest(v) AS value
        FROM (SELECT rn, inputs, json_extract(node_results, '$.*') AS v FROM {{runs}} SEMI JOIN wanted USING (rn)) s
    ),
    picked AS (
        SELECT e.rn, n.ord, e.inputs, json_keys(e.value) AS keys, json_extract(e.value, '$.*') AS vals
        FROM each e JOIN (SELECT rn, ord, pos FROM nf_nodes WHERE {_ESTIMATED}) n ON n.rn = e.rn AND n.pos = e.pos
    ),
    -- the editor writes the spread first and in order: c keys "0" .. "c-1" holding strings, then
    -- a key that is not the next index or not a string; when that next index is nowhere later
    -- among the keys, the spread is exactly those c (else the general rule below, by sorting)
    prefixed AS (
        SELECT *, coalesce(list_position(
            list_transform(list_zip(keys, vals, range(len(keys))),
                           lambda x: x[1] = CAST(x[3] AS VARCHAR) AND left(CAST(x[2] AS VARCHAR), 1) = '"'),
            false) - 1, len(keys)) AS c
        FROM picked
    ),
    spread AS (
        SELECT rn, ord, inputs, keys, vals,
            CASE WHEN NOT list_contains(list_slice(keys, c + 2, len(keys)), CAST(c AS VARCHAR)) THEN
                CASE WHEN c > 0 THEN list_sum(list_transform(list_slice(vals, 1, c), lambda v: nf_str_len(v))) END
            ELSE nf_spread_sorted(keys, vals)
            END AS spread_len
        FROM prefixed
    )
    SELECT rn, ord, spread_len,
        coalesce(
            nullif({_field("prompt")}, ''), nullif({_field("systemPrompt")}, ''),
            nullif({_field("system")}, ''), nullif({_field("input")}, ''),
            CASE WHEN left(ltrim(inputs), 1) = '{{' AND json_valid(inputs) THEN nf_str(json_extract(inputs, 'prompt')) END
        ) AS prompt_text,
        coalesce({_field("content")}, {_field("text")}, {_field("output")}, {_field("response")}) AS text_field
    FROM spread
"""

_ERRORS = """
    CREATE OR REPLACE TEMP TABLE nf_errors AS
    WITH src AS (
        SELECT rn, day, CASE WHEN json_valid(errors) THEN CAST(errors AS JSON) END AS er FROM {runs}
    )
    SELECT s.rn, s.day, e.id AS ord, e.key AS node_id,
        CASE WHEN e.type = 'NULL' THEN NULL WHEN e.type = 'VARCHAR' THEN e.value ->> '$'
             ELSE CAST(e.value AS VARCHAR) END AS error
    FROM (SELECT * FROM src WHERE json_type(er) = 'OBJECT') s, json_each(s.er) e
    QUALIFY row_number() OVER (PARTITION BY s.rn, e.key ORDER BY e.id DESC) = 1
"""

_FACTS = """
    CREATE OR REPLACE TEMP TABLE nf_facts AS
    WITH est AS (
        SELECT n.*, s.spread_len, s.prompt_text, s.text_field, er.error, er.node_id IS NOT NULL AS named,
            n.model IS NOT NULL AND n.usage_in IS NULL AND n.usage_out IS NULL AS estimate
        FROM nf_nodes n
        LEFT JOIN nf_estimates s USING (rn, ord)
        LEFT JOIN nf_errors er ON er.rn = n.rn AND er.node_id = n.node_id
    ),
    nodes AS (
        SELECT rn, day, ord, node_id,
            coalesce(nullif(own_type, ''), nf_type(node_id, $identifiers)) AS node_type,
            model,
            CASE WHEN named THEN 'error' ELSE coalesce(own_status, 'success') END AS status,
            duration_ms,
            CASE WHEN estimate THEN nf_estimate(length(prompt_text)) ELSE usage_in END AS tokens_in,
            CASE WHEN estimate THEN nf_estimate(
                CASE WHEN spread_len IS NOT NULL THEN spread_len ELSE length(text_field) END)
                ELSE usage_out END AS tokens_out,
            error, estimate
        FROM est
    ),
    error_only AS (
        SELECT e.rn, e.day, 1e12 + e.ord AS ord, e.node_id, nf_type(e.node_id, $identifiers) AS node_type,
            NULL AS model, 'error' AS status, NULL AS duration_ms, NULL AS tokens_in, NULL AS tokens_out,
            e.error, false AS estimate
        FROM nf_errors e ANTI JOIN nf_nodes n ON n.rn = e.rn AND n.node_id = e.node_id
        WHERE e.node_id <> 'global'
    )
    SELECT rn, day, ord, node_id, node_type, model, status, CAST(duration_ms AS BIGINT) AS duration_ms,
        CAST(tokens_in AS BIGINT) AS tokens_in, CAST(tokens_out AS BIGINT) AS tokens_out,
        estimate AND (tokens_in IS NOT NULL OR tokens_out IS NOT NULL) AS tokens_estimated,
        CAST(error AS VARCHAR) AS error
    FROM (SELECT * FROM nodes UNION ALL BY NAME SELECT * FROM error_only)
"""

# per run: the node structs in node order (sorted by `ord` in the list, cheaper than an ordered
# aggregate), the totals capped as ingest caps them, the cost summed as Python adds it
_RUNS = """
    WITH priced AS (
        SELECT x.rn, x.ord, x.tokens_in, x.tokens_out, x.tokens_estimated,
            {node_id: x.node_id, node_type: x.node_type, model: x.model, status: x.status,
             duration_ms: x.duration_ms, tokens_in: x.tokens_in, tokens_out: x.tokens_out,
             tokens_estimated: x.tokens_estimated,
             cost: CASE WHEN x.model IS NULL OR (x.tokens_in IS NULL AND x.tokens_out IS NULL) THEN NULL
                        ELSE (coalesce(x.tokens_in, 0) * p.input_per_million
                              + coalesce(x.tokens_out, 0) * p.output_per_million) / 1e6 END,
             error: x.error} AS node
        FROM nf_facts x LEFT JOIN nf_prices p ON p.model = x.model AND p.day = x.day
    ),
    per_run AS (
        SELECT rn, CAST(count(*) AS INTEGER) AS node_count, sum(tokens_in) AS tokens_in,
            sum(tokens_out) AS tokens_out, bool_or(tokens_estimated) AS tokens_estimated,
            count(node.cost) AS costs, count(node.model) AS models, list_transform(list_sort(list({o: ord, n: node})), lambda x: x.n) AS nodes
        FROM priced GROUP BY rn
    )
    SELECT r.rn, coalesce(a.node_count, 0) AS node_count,
        CAST(CASE WHEN a.tokens_in > 4611686018427387904 THEN 4611686018427387904 ELSE a.tokens_in END
            AS BIGINT) AS tokens_in,
        CAST(CASE WHEN a.tokens_out > 4611686018427387904 THEN 4611686018427387904 ELSE a.tokens_out END
            AS BIGINT) AS tokens_out,
        coalesce(a.tokens_estimated, false) AS tokens_estimated,
        -- sum(known) as Python adds them: in node order, from the first; 0 without a model node
        -- (it owes nothing), unknown with model nodes none of which is priced (node_facts.run_cost)
        CASE WHEN a.costs > 0 THEN list_reduce(list_filter(list_transform(a.nodes, lambda n: n.cost),
            lambda c: c IS NOT NULL), lambda x, y: x + y)
            WHEN coalesce(a.models, 0) = 0 THEN 0.0 END AS cost,
        coalesce(a.nodes, []) AS nodes
    FROM (SELECT rn FROM {runs}) r LEFT JOIN per_run a USING (rn)
"""


def _identifiers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The chunk's distinct id prefixes that are identifiers by node_facts' own rule
    (`str.isidentifier`): a handful of names, where a Unicode identifier regex in the SQL cost
    3.5 ms to compile per statement."""
    prefixes = con.execute(
        "SELECT DISTINCT nf_prefix(node_id) AS p FROM (SELECT node_id FROM nf_nodes UNION ALL"
        " SELECT node_id FROM nf_errors) WHERE p IS NOT NULL"
    ).fetchall()
    return [p for (p,) in prefixes if p.isidentifier()]


def _prices(con: duckdb.DuckDBPyConnection, prices: PriceLookup) -> None:
    """Each (model, day) of the chunk priced by the price table's own lookup (its glob rules)."""
    pairs = con.execute("SELECT DISTINCT model, day FROM nf_facts WHERE model IS NOT NULL").fetchall()
    models: list[str] = []
    days: list[date] = []
    ins: list[float | None] = []
    outs: list[float | None] = []
    for model, day in pairs:
        price = prices.price_for(model, day)
        models.append(model)
        days.append(day)
        ins.append(price.input_per_million if price else None)
        outs.append(price.output_per_million if price else None)
    table = pa.table(
        {
            "model": pa.array(models, pa.string()),
            "day": pa.array(days, pa.date32()),
            "input_per_million": pa.array(ins, pa.float64()),
            "output_per_million": pa.array(outs, pa.float64()),
        }
    )
    con.register("nf_prices_arrow", table)
    con.execute("CREATE OR REPLACE TEMP TABLE nf_prices AS SELECT * FROM nf_prices_arrow")
    con.unregister("nf_prices_arrow")


# every temp table facts_into creates (drop_facts removes them)
_TABLES = ("nf_src", "nf_nodes", "nf_estimates", "nf_errors", "nf_facts", "nf_prices", "nf_result")


_with_macros: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
_with_macros_lock = threading.Lock()


def _macros(con: duckdb.DuckDBPyConnection) -> None:
    """The macros, once a connection (4.5 ms each time: a kept connection's chunks skip it)."""
    with _with_macros_lock:
        if con in _with_macros:
            return
        con.execute(_MACROS)
        _with_macros.add(con)


def facts_into(con: duckdb.DuckDBPyConnection, runs: str, prices: PriceLookup) -> str:
    """Compute the facts of the relation `runs` (rn, node_results, errors, inputs as text, day) on
    `con` into the temp table returned (rn, node_count, tokens_in, tokens_out, tokens_estimated,
    cost, nodes), one row a run. Also left there: `nf_src` with `m`, the node map, NULL when
    node_results is not a JSON object without repeated keys (a caller's validity shortcut)."""
    _macros(con)
    con.execute(_SRC.replace("{runs}", runs))
    row = con.execute("SELECT count(*) FROM nf_src WHERE m IS NULL AND is_object").fetchall()[0]
    repeated = bool(row and row[0])
    nodes = _NODES.replace("{repeated}", _REPEATED if repeated else "")
    nodes = nodes.replace("{repeated_listed}", _REPEATED_LISTED if repeated else "")
    con.execute(nodes.replace("{runs}", runs))
    con.execute(_ERRORS.replace("{runs}", runs))
    con.execute(_ESTIMATES.replace("{runs}", runs))
    con.execute(_FACTS, {"identifiers": _identifiers(con)})
    _prices(con, prices)
    con.execute("CREATE OR REPLACE TEMP TABLE nf_result AS " + _RUNS.replace("{runs}", runs))
    return "nf_result"


def drop_facts(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what facts_into left on `con`, for a connection kept for the next chunks."""
    for table in _TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def columnar_facts(runs: pa.Table, prices: PriceLookup) -> pa.Table:
    """Per run (in `rn` order): node_count, tokens_in, tokens_out, tokens_estimated, cost, nodes.

    `runs` holds rn, node_results, errors, inputs (text) and day; it runs on a private in-memory
    DuckDB, so the store's writer is not held while the facts are computed.
    """
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        con.register("nf_runs", runs)
        table: pa.Table = con.sql(
            f"SELECT * FROM {facts_into(con, 'nf_runs', prices)} ORDER BY rn"
        ).to_arrow_table()
        return table
    finally:
        con.close()
