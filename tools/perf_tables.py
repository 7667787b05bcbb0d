"""Markdown tables for docs/PERF.md from the benchmark's JSON output.

    python tools/perf_tables.py ops BENCH.json          # `bench --json`: per-layer graph-mode table
    python tools/perf_tables.py train TRAIN.json        # `bench --train --json`: training steps
    python tools/perf_tables.py isa LEVEL=FILE.json ... # `bench --quick --json` per ISA level

Prints to stdout; docs/PERF.md carries the output with the command and commit that made it.
"""

from __future__ import annotations

import json
import math
import sys


def _geo(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def ops_table(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m.get('cpu', 'see the header')}, {m['cpus']} CPUs, measured SGEMM "
        f"{m['sgemm_gflops']:.0f} GFLOP/s, bandwidth {m['bandwidth_gbs']:.1f} GB/s; "
        f"date {report['date']}.",
        "",
        "| op | layer | dtype | ours ms | oneDNN ms | native ms | ratio (graph) | 1-call | eager "
        "| % roofline | ceil | fgn |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['op']} | {r['name']} | {r['dtype']} | {r['ours_ms']:.2f} | "
            f"{r['tf_onednn_ms']:.2f} | {r['tf_native_ms']:.2f} | **{r['ratio']:.2f}** | "
            f"{r.get('ratio_single', float('nan')):.2f} | {r.get('ratio_eager', float('nan')):.2f} "
            f"| {r['pct_roofline']:.0f} | {r['ceiling']:.2f} | {r['fgn']:.1f} |"
        )
    lines += [
        "",
        "| op | float32 geomean: graph (lowest) | 1-call | eager | layers |",
        "|---|---|---|---|---|",
    ]
    for op, s in report["summary"].items():
        if "geomean_ratio_f32" not in s:
            continue
        lines.append(
            f"| {op} | {s['geomean_ratio_f32']:.2f} ({s['min_ratio_f32']:.2f}) | "
            f"{s.get('geomean_ratio_f32_single', float('nan')):.2f} | "
            f"{s.get('geomean_ratio_f32_eager', float('nan')):.2f} | {s['cases_f32']} |"
        )
    bf16 = [r for r in report["rows"] if r["op"] == "CBF" and r["dtype"] == "bfloat16"]
    if bf16:
        lines += ["", f"CBF bfloat16 geomean (graph): {_geo([r['ratio'] for r in bf16]):.2f} over "
                  f"{len(bf16)} layers, lowest {min(r['ratio'] for r in bf16):.2f}."]  # fmt: skip
    return "\n".join(lines)


def train_table(report: dict) -> str:
    # The bench's own formatter, so that the page and the command print the same table.
    from tf_convgrad.tools.train_bench import format_train_table

    return format_train_table(report)


def isa_table(pairs: list[str]) -> str:
    lines = [
        "| level | DBF geomean | DBI geomean | CBF geomean | ours geomean ms (all rows) |",
        "|---|---|---|---|---|",
    ]
    for pair in pairs:
        level, path = pair.split("=", 1)
        with open(path) as f:
            report = json.load(f)
        s = report["summary"]
        cells = [
            f"{s[op]['geomean_ratio_f32']:.2f}" if op in s else "-" for op in ("DBF", "DBI", "CBF")
        ]
        ours = _geo([r["ours_ms"] for r in report["rows"]])
        lines.append(f"| {level} | " + " | ".join(cells) + f" | {ours:.3f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("ops", "train", "isa"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "isa":
        print(isa_table(argv[1:]))
        return 0
    with open(argv[1]) as f:
        report = json.load(f)
    print(ops_table(report) if argv[0] == "ops" else train_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
