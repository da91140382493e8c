"""The results table: operation | baseline | flowhistory | ratio | target | met.

The ratio is always flowhistory / baseline. For throughput (marked ↑) above 1 means
flowhistory is better; for latency, size and memory (marked ↓) below 1 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def fmt_ms(v: float) -> str:
    if v != v:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def _times(x: float) -> str:
    return f"{x:,.0f}x" if x >= 10 else f"{x:.1f}x"


def fmt_ratio(r: float, lower_better: bool, unit: str) -> str:
    if r != r or r == float("inf"):
        return "-"
    s = f"{r:.3f}" if r < 0.1 else f"{r:.2f}"
    if lower_better and r > 0:
        better, worse = ("faster", "slower") if unit == "ms" else ("smaller", "larger")
        s += f" ({_times(1 / r)} {better})" if r < 1 else f" ({_times(r)} {worse})" if r > 1 else ""
    return s


@dataclass
class Row:
    op: str
    base: float
    fh: float
    unit: str  # "ms", "/s", "MB"
    lower_better: bool
    target: str = ""
    met: bool | None = None
    note: str = ""  # appended to the met cell: a 10M target checked at a smaller size, for information

    @property
    def ratio(self) -> float:
        return self.fh / self.base if self.base else float("inf")

    def cells(self) -> list[str]:
        def val(v: float) -> str:
            if self.unit == "ms":
                return fmt_ms(v)
            if self.unit == "/s":
                return f"{v:,.0f}/s"
            return f"{v:,.0f} MB"

        met = "" if self.met is None else ("yes" if self.met else "**no**")
        if self.note:
            met = f"{met} {self.note}".strip()
        return [
            self.op,
            val(self.base),
            val(self.fh),
            fmt_ratio(self.ratio, self.lower_better, self.unit),
            self.target,
            met,
        ]


TEN_M = 10_000_000


def _absolute(row: Row, limit_ms: float, res: dict[str, Any]) -> None:
    """Issue 3's absolute targets hold at 10M runs: checked there, shown in parentheses below."""
    ok = row.fh <= limit_ms
    row.target = f"{row.target}; " if row.target else ""
    if res["params"]["runs"] >= TEN_M:
        row.target += f"≤ {limit_ms:g} ms"
        row.met = ok if row.met is None else row.met and ok
    else:
        row.target += f"10M target: ≤ {limit_ms:g} ms"
        row.note = f"(≤ {limit_ms:g} ms here: {'yes' if ok else 'no'})"


def analytics_rows(res: dict[str, Any]) -> list[Row]:
    """Issue 3's reads: trends, node breakdown, search; stats too when the reads phase was not run."""
    an = res.get("analytics")
    if not an:
        return []
    big_runs = res.get("flows", {}).get("biggest_runs")
    big = f"biggest flow ({big_runs:,} runs)" if big_runs else "biggest flow"
    prm = an.get("params", {})
    three = (
        f"status=error, last 30 days, execution_time ≥ {prm.get('search_min_ms', '?'):,} ms; first 50 + total"
    )
    specs: list[tuple[str, str, str, float | None, float | None]] = [
        # key, label, ratio target, ratio limit, absolute limit (ms, at 10M)
        (
            "trend_biggest",
            f"90-day daily trend (runs, failure rate, p50, p95), {big}",
            "≤ 0.05 (≥ 20x faster)",
            0.05,
            30,
        ),
        ("trend_small", "90-day daily trend, small flow", "≤ 1.0", 1.0, 30),
        ("nodes_biggest", f"per-node breakdown, {big}", "", None, None),
        ("search_all", f"search ({three}), all flows, as admin", "", None, 20),
        ("search_biggest", f"search (same filters), {big}", "", None, 20),
        ("stats_biggest", "stats, biggest flow", "≤ 0.033 (≥ 30x faster)", 1 / 30, 5),
        ("stats_small", "stats, small flow", "≤ 1.0", 1.0, 5),
    ]
    rows: list[Row] = []
    for key, label, target, limit, absolute in specs:
        if key not in an:
            continue
        b, f = an[key]["baseline"], an[key]["flowhistory"]
        for q in ("p50", "p99"):
            row = Row(f"{label}: {q} (ms) ↓", b[f"{q}_ms"], f[f"{q}_ms"], "ms", True, target)
            if limit is not None:
                row.met = row.ratio <= limit
            if absolute is not None:
                _absolute(row, absolute, res)
            rows.append(row)
    return rows


def build_rows(res: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    reads = res.get("reads")
    if (ing := res.get("ingest")) is not None:
        b, f = ing["baseline"], ing["flowhistory"]
        r = f["per_s"] / b["per_s"] if b["per_s"] else float("inf")
        rows.append(
            Row(
                f"single-run POST, {res['params']['clients']} clients: acked runs/s ↑",
                b["per_s"],
                f["per_s"],
                "/s",
                False,
                "≥ 3x and ≥ 2,500/s",
                r >= 3 and f["per_s"] >= 2500,
            )
        )
        rows.append(Row("single-run POST latency p50 (ms) ↓", b["p50_ms"], f["p50_ms"], "ms", True))
        rows.append(Row("single-run POST latency p99 (ms) ↓", b["p99_ms"], f["p99_ms"], "ms", True))
        rows.append(
            Row(
                "single-run POST: server CPU per run (ms) ↓",
                b["server_cpu_ms_per_req"],
                f["server_cpu_ms_per_req"],
                "ms",
                True,
            )
        )
    if (mix := res.get("mixed")) is not None:
        b, f = mix["baseline"], mix["flowhistory"]
        c = res["params"]["mixed_clients"]
        rows.append(
            Row(
                f"mixed reads (page 1, small stats, detail), {c} clients: req/s ↑",
                b["per_s"],
                f["per_s"],
                "/s",
                False,
            )
        )
        rows.append(Row(f"mixed reads, {c} clients: p99 (ms) ↓", b["p99_ms"], f["p99_ms"], "ms", True))
    if (bat := res.get("batch")) is not None:
        base = ing["baseline"]["per_s"] if ing else float("nan")
        rows.append(
            Row(
                f"batch ingest ({bat['batch_size']:,}/request; baseline: single POSTs): runs/s ↑",
                base,
                bat["units_per_s"],
                "/s",
                False,
                "≥ 50,000/s",
                bat["units_per_s"] >= 50_000,
            )
        )
    if reads:
        far = reads["page_far"]
        for key, label, target, limit in (
            ("list_page_1", "list page 1, biggest flow", "≤ 1.0", 1.0),
            (f"list_page_{far}", f"list page {far}, biggest flow", "≤ 1.0", 1.0),
            ("detail", "detail by id", "≤ 1.0", 1.0),
            ("stats_biggest", "stats, biggest flow", "≤ 0.033 (≥ 30x faster)", 1 / 30),
            ("stats_small", "stats, small flow", "≤ 1.0", 1.0),
        ):
            b, f = reads[key]["baseline"], reads[key]["flowhistory"]
            for q in ("p50", "p99"):
                row = Row(f"{label}: {q} (ms) ↓", b[f"{q}_ms"], f[f"{q}_ms"], "ms", True, target)
                row.met = row.ratio <= limit
                if key.startswith("stats"):
                    _absolute(row, 5, res)
                rows.append(row)
    rows += analytics_rows(res)
    sz = res["store_bytes_after_load"]
    row = Row(
        "store size on disk after load (MB) ↓",
        sz["baseline"] / 1e6,
        sz["flowhistory"] / 1e6,
        "MB",
        True,
        "≤ 1.0",
    )
    row.met = row.ratio <= 1.0
    rows.append(row)
    mem = res.get("server_memory", {})
    for when, label in (
        ("after_reads", "after the reads"),
        ("after_analytics", "after the analytics reads"),
        ("after_ingest", "after single-run ingest"),
        ("end", "at the end (after batch)"),
    ):
        if when in mem:
            rows.append(
                Row(
                    f"server RSS {label} (MB) ↓",
                    mem[when]["baseline"]["VmRSS"] / 1e6,
                    mem[when]["flowhistory"]["VmRSS"] / 1e6,
                    "MB",
                    True,
                )
            )
    if "end" in mem:
        rows.append(
            Row(
                "server peak RSS over the run, VmHWM (MB) ↓",
                mem["end"]["baseline"]["VmHWM"] / 1e6,
                mem["end"]["flowhistory"]["VmHWM"] / 1e6,
                "MB",
                True,
            )
        )
    return rows


def cpu_rows(res: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None, dict[str, Any]]]:
    """Server CPU per request (or per run) by operation: robust to a busy machine, unlike latency."""
    out: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
    for key, value in (res.get("reads") or {}).items():
        if isinstance(value, dict):
            out.append((key.replace("_", " "), value["baseline"], value["flowhistory"]))
    for key, value in (res.get("analytics") or {}).items():
        if isinstance(value, dict) and "baseline" in value:
            out.append((key.replace("_", " "), value["baseline"], value["flowhistory"]))
    if (mix := res.get("mixed")) is not None:
        out.append(("mixed reads", mix["baseline"], mix["flowhistory"]))
    if (ing := res.get("ingest")) is not None:
        out.append(("single-run POST (per run)", ing["baseline"], ing["flowhistory"]))
    if (bat := res.get("batch")) is not None:
        out.append(("batch ingest (per run)", None, bat))
    return out


def _measured(v: Any) -> bool:
    return isinstance(v, dict) and "baseline" in v and "flowhistory" in v


def markdown(res: dict[str, Any], rows: list[Row]) -> str:
    p = res["params"]
    m = res["machine"]
    head = ["operation", "baseline", "flowhistory", "ratio (flowhistory / baseline)", "target", "met"]
    lines = [
        f"### {p['label']}: {res['started_at'][:16].replace('T', ' ')} UTC, {m['cpus']} cores, "
        f"load avg {m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end, "
        f"code {res.get('git_at_server_start', m['versions'].get('git', '?'))}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * 3 + ["---", "---"]) + "|",
    ]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    lines += [
        "",
        "↑ higher is better (ratio > 1: flowhistory is better); ↓ lower is better (ratio < 1: "
        "flowhistory is better). Latency targets are checked on both p50 and p99.",
    ]
    reads = res.get("reads")
    if reads:
        n = {k: (v["baseline"]["n"], v["flowhistory"]["n"]) for k, v in reads.items() if isinstance(v, dict)}
        lines.append(
            "Sequential requests per read operation (baseline/flowhistory): "
            + ", ".join(f"{k} {a}/{b}" for k, (a, b) in n.items())
            + "."
        )
    an = res.get("analytics")
    if an:
        n = {k: (v["baseline"]["n"], v["flowhistory"]["n"]) for k, v in an.items() if _measured(v)}
        lines.append(
            "Analytics (issue 3): sequential requests per operation (baseline/flowhistory) "
            + ", ".join(f"{k} {a}/{b}" for k, (a, b) in n.items())
            + "; a slow operation stops at the time budget"
            + f" ({res['params']['read_budget']:g} s per server), so its p99 is over few requests. "
            "Absolute targets are issue 3's, at 10M runs over HTTP; below 10M they are shown in "
            "parentheses for information, and only the ratio targets count. Checked before measuring: "
            + "; ".join(an.get("checks", []))
            + "."
        )
        if an.get("consistency"):
            lines.append("Analytics consistency differences: " + "; ".join(an["consistency"]))
    if res.get("consistency"):
        lines.append("Consistency differences: " + "; ".join(res["consistency"]))
    lines += [
        "",
        "Server CPU time per request (ms; `/proc/<pid>/stat`, all threads) and the share of the "
        "machine's CPU used by anything else while it ran (other work on this shared host):",
        "",
        "| operation | baseline CPU ms | flowhistory CPU ms | ratio | background CPU (baseline / flowhistory phase) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, b, f in cpu_rows(res):
        per = "server_cpu_ms_per_unit" if "per run" in label else "server_cpu_ms_per_req"
        fv = f[per]
        bv = b[per] if b is not None else float("nan")
        ratio = fmt_ratio(fv / bv, True, "ms") if b is not None and bv else "-"
        bg_b = f"{b['background_cpu_share']:.0%}" if b is not None else "-"
        lines.append(
            f"| {label} | {fmt_ms(bv)} | {fmt_ms(fv)} | {ratio} | {bg_b} / {f['background_cpu_share']:.0%} |"
        )
    return "\n".join(lines) + "\n"
