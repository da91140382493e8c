"""Node facts for many runs at once, in DuckDB SQL: the bulk twin of node_facts.py, same rules.

DuckDB walks the JSON text itself (the node object's keys and values, one multi-path extract
per node) and hands back Arrow columns. The rules are node_facts.py's; where they read a node's
fields the comments name the Python they mirror. tests/analytics/test_node_facts_columnar.py
compares every fact of generated and hostile runs with the Python function.

Not on the import or batch path today: measured side by side (BENCHMARKS.md, issue 12 part 3
follow-up) the Python function was faster on the benchmark's bodies, where the import has a core
of its own for it while the writer inserts. Kept for work that has only text to start from in
SQL (recomputing facts of stored runs) and as the base of a faster version.

Known differences, on bodies no JSON writer emits: a key repeated inside one object (Python keeps
the last value) and node ids whose prefix is a non-ASCII identifier other than letters and digits.

Input: a relation with `rn` (the run's row number), `node_results`, `errors`, `inputs` (JSON
text, or '' / 'null' / not JSON for none) and `day` (the run's UTC date, for prices).
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

import duckdb
import pyarrow as pa


class _Price(Protocol):
    input_per_million: float
    output_per_million: float


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
    CREATE OR REPLACE TEMP MACRO nf_type_from_id(node_id) AS CASE
        WHEN regexp_full_match(split_part(node_id, '_', 1), '[\\p{{L}}_][\\p{{L}}\\p{{N}}_]*')
             AND contains(node_id, '_')
            THEN split_part(node_id, '_', 1)
    END;
    CREATE OR REPLACE TEMP MACRO nf_estimate(n) AS CASE WHEN n > 0 THEN (n + 3) // 4 END;
"""

# one parse of each node for every field the rules read (the list's order is _FIELDS')
_FIELDS = (
    "type", "modelId", "model", "status", "usage", "usage_details", "tokens",
    "duration_ms", "execution_time", "elapsed_ms",
    "prompt", "systemPrompt", "system", "input",
    "content", "text", "output", "response",
)  # fmt: skip
_F = {name: i + 1 for i, name in enumerate(_FIELDS)}
_PATHS = ", ".join(f"'$.\"{k}\"'" for k in _FIELDS)


def _f(name: str) -> str:
    return f"f[{_F[name]}]"


_NODES = f"""
    CREATE OR REPLACE TEMP TABLE nf_nodes AS
    WITH src AS (
        SELECT rn, day,
            node_results,
            CASE WHEN json_valid(node_results) THEN CAST(node_results AS JSON) END AS nr,
            CASE WHEN json_valid(inputs) THEN CAST(inputs AS JSON) END AS inp
        FROM {{runs}}
    ),
    objects AS (
        SELECT rn, day, inp, json_keys(nr) AS keys, json_extract(nr, '$.*') AS vals
        FROM src WHERE left(ltrim(node_results), 1) = '{{' AND nr IS NOT NULL
    ),
    each AS (
        SELECT rn, day, inp, unnest(range(len(keys))) AS ord, unnest(keys) AS node_id, unnest(vals) AS value
        FROM objects
    ),
    raw AS (
        SELECT rn, day, ord, node_id, CASE WHEN nf_is_obj(value) THEN 'OBJECT' END AS t,
            CASE WHEN nf_is_obj(value) THEN value END AS v,
            CASE WHEN nf_is_obj(value) THEN json_extract(value, [{_PATHS}]) END AS f,
            inp
        FROM each
    ),
    typed AS (
        SELECT rn, day, ord, node_id, v, t,
            nf_str({_f("type")}) AS own_type,
            -- model = result.get("modelId") or result.get("model"), kept when a string
            CASE WHEN nf_truthy({_f("modelId")}) THEN nf_str({_f("modelId")}) ELSE nf_str({_f("model")}) END
                AS model,
            CASE WHEN nf_str({_f("status")}) IN {_STATUSES} THEN nf_str({_f("status")}) END AS own_status,
            -- _usage: the first of usage, usage_details, tokens that is an object; `tokens` may be a count
            CASE WHEN nf_is_obj({_f("usage")}) THEN 1
                 WHEN nf_is_obj({_f("usage_details")}) THEN 2
                 WHEN nf_is_obj({_f("tokens")}) THEN 3
                 WHEN nf_int({_f("tokens")}) IS NOT NULL THEN 4 ELSE 0 END AS ukind,
            f,
            coalesce(nf_int({_f("duration_ms")}), nf_int({_f("execution_time")}), nf_int({_f("elapsed_ms")}))
                AS duration_ms,
            -- _prompt_text: the node's first non-empty prompt field, else the run's prompt
            coalesce(
                nullif(nf_str({_f("prompt")}), ''), nullif(nf_str({_f("systemPrompt")}), ''),
                nullif(nf_str({_f("system")}), ''), nullif(nf_str({_f("input")}), ''),
                CASE WHEN nf_is_obj(inp) THEN nf_str(json_extract(inp, 'prompt')) END
            ) AS prompt_text,
            -- result_text's fallback: the first text field that is a string (even empty)
            coalesce(nf_str({_f("content")}), nf_str({_f("text")}), nf_str({_f("output")}),
                     nf_str({_f("response")})) AS text_field
        FROM raw
    )
    SELECT rn, day, ord, node_id, v, t, own_type, model, own_status, duration_ms, prompt_text, text_field,
        CASE ukind WHEN 1 THEN nf_first_in({_f("usage")}) WHEN 2 THEN nf_first_in({_f("usage_details")})
                   WHEN 3 THEN nf_first_in({_f("tokens")}) END AS usage_in,
        CASE ukind WHEN 1 THEN nf_first_out({_f("usage")}) WHEN 2 THEN nf_first_out({_f("usage_details")})
                   WHEN 3 THEN nf_first_out({_f("tokens")}) WHEN 4 THEN nf_int({_f("tokens")}) END AS usage_out
    FROM typed
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

# result_text's character spread, only for nodes that get an estimate: keys "0", "1", ... while
# each is present and a string; the text's length is what the estimate needs
_SPREAD = """
    CREATE OR REPLACE TEMP TABLE nf_spread AS
    WITH chars AS (
        SELECT n.rn, n.ord, CAST(e.key AS BIGINT) AS i, length(e.value ->> '$') AS len
        FROM (SELECT rn, ord, v FROM nf_nodes
              WHERE t = 'OBJECT' AND model IS NOT NULL AND usage_in IS NULL AND usage_out IS NULL) n,
             json_each(n.v) e
        WHERE e.type = 'VARCHAR' AND regexp_full_match(e.key, '0|[1-9][0-9]{0,17}')
    ),
    numbered AS (
        SELECT rn, ord, i, len, row_number() OVER (PARTITION BY rn, ord ORDER BY i) - 1 AS pos FROM chars
    )
    SELECT rn, ord, sum(len) AS spread_len FROM numbered WHERE i = pos GROUP BY rn, ord
"""

_FACTS = """
    CREATE OR REPLACE TEMP TABLE nf_facts AS
    WITH est AS (
        SELECT n.*, s.spread_len, er.error,
            n.model IS NOT NULL AND n.usage_in IS NULL AND n.usage_out IS NULL AS estimate
        FROM nf_nodes n
        LEFT JOIN nf_spread s USING (rn, ord)
        LEFT JOIN nf_errors er ON er.rn = n.rn AND er.node_id = n.node_id
    ),
    nodes AS (
        SELECT rn, day, ord, node_id,
            coalesce(nullif(own_type, ''), nf_type_from_id(node_id)) AS node_type,
            model,
            CASE WHEN error IS NOT NULL THEN 'error' ELSE coalesce(own_status, 'success') END AS status,
            duration_ms,
            CASE WHEN estimate THEN nf_estimate(length(prompt_text)) ELSE usage_in END AS tokens_in,
            CASE WHEN estimate THEN nf_estimate(
                CASE WHEN spread_len IS NOT NULL THEN spread_len ELSE length(text_field) END)
                ELSE usage_out END AS tokens_out,
            error, estimate
        FROM est
    ),
    error_only AS (
        SELECT e.rn, e.day, 1e12 + e.ord AS ord, e.node_id, nf_type_from_id(e.node_id) AS node_type,
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

_RUNS = """
    SELECT r.rn,
        CAST(count(f.rn) AS INTEGER) AS node_count,
        CAST(CASE WHEN sum(f.tokens_in) > 4611686018427387904 THEN 4611686018427387904 ELSE sum(f.tokens_in) END
            AS BIGINT) AS tokens_in,
        CAST(CASE WHEN sum(f.tokens_out) > 4611686018427387904 THEN 4611686018427387904 ELSE sum(f.tokens_out) END
            AS BIGINT) AS tokens_out,
        coalesce(bool_or(f.tokens_estimated), false) AS tokens_estimated,
        -- sum(known) as Python adds them: in node order, from the first
        list_reduce(list(f.cost ORDER BY f.ord) FILTER (WHERE f.cost IS NOT NULL), lambda a, b: a + b)
            AS cost,
        coalesce(list({node_id: f.node_id, node_type: f.node_type, model: f.model, status: f.status,
                       duration_ms: f.duration_ms, tokens_in: f.tokens_in, tokens_out: f.tokens_out,
                       tokens_estimated: f.tokens_estimated, cost: f.cost, error: f.error}
                      ORDER BY f.ord) FILTER (WHERE f.rn IS NOT NULL), []) AS nodes
    FROM (SELECT rn FROM {runs}) r
    LEFT JOIN (
        SELECT x.*, CASE WHEN x.model IS NULL OR (x.tokens_in IS NULL AND x.tokens_out IS NULL) THEN NULL
                         ELSE (coalesce(x.tokens_in, 0) * p.input_per_million
                               + coalesce(x.tokens_out, 0) * p.output_per_million) / 1e6 END AS cost
        FROM nf_facts x LEFT JOIN nf_prices p ON p.model = x.model AND p.day = x.day
    ) f ON f.rn = r.rn
    GROUP BY r.rn
    ORDER BY r.rn
"""


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


def columnar_facts(runs: pa.Table, prices: PriceLookup) -> pa.Table:
    """Per run (in `rn` order): node_count, tokens_in, tokens_out, tokens_estimated, cost, nodes.

    `runs` holds rn, node_results, errors, inputs (text) and day; it runs on a private in-memory
    DuckDB, so the store's writer is not held while the facts are computed.
    """
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        con.execute(_MACROS)
        con.register("nf_runs", runs)
        for sql in (_NODES, _ERRORS):
            con.execute(sql.replace("{runs}", "nf_runs"))
        con.execute(_SPREAD)
        con.execute(_FACTS)
        _prices(con, prices)
        table: pa.Table = con.sql(_RUNS.replace("{runs}", "nf_runs")).to_arrow_table()
        return table
    finally:
        con.close()
