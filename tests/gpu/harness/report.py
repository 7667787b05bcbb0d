"""The markdown the harness prints and leaves under ``--out``: tables, sections and files.

Tables: the grid summary (:func:`summarize_grid`), the benchmark's layer rows
(:data:`BENCH_HEADER`, :func:`bench_line`) and geomean speedups against :data:`TARGETS`
(:func:`geomeans`). Files:

* ``gpu_correctness_<date>_<gpu>.md``: the grid and the large cases (a GPU run with
  ``--skip-bench``).
* ``gpu_benchmark_<date>_<gpu>.md`` and ``.json``: the correctness sections, the geomean
  speedups and the layer table (a GPU run with the benchmark).
* ``gpu_check_<date>_<gpu>.md`` and ``.json``: the hardware check (:mod:`.hardware_check`).
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import os
import re
from pathlib import Path

from .package import METRICS, PROVENANCE


def gpu_name(torch) -> str:
    """The GPU's name as a file-name part, e.g. ``NVIDIA-H100-80GB-HBM3``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(0)).strip("-")


def output_path(out_dir: str | Path, kind: str, device: str) -> Path:
    """``<out_dir>/gpu_<kind>_<date>_<device>.md``, its folder created."""
    date = datetime.date.today().isoformat()
    path = Path(out_dir) / f"gpu_{kind}_{date}_{device}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


#: Speedup targets (torch ms / ours ms) of the geomeans.
TARGETS = {"dbf": 1.5, "dbi": 1.0, "cbf": 0.8}
#: Head of the benchmark's layer table.
BENCH_HEADER = (
    "| suite | op | layer | dtype | format | ours ms | torch ms | speedup | torch backend | "
    "ours GB/s (of copy bw) | ours TFLOP/s (of matmul rate) | bitwise repeat | our kernels | "
    "errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _by_op_dtype_format(rows: list[dict]):
    """``((op, dtype, format), rows)`` groups, sorted."""
    key = lambda r: (r["op"], r["dtype"], r["format"])  # noqa: E731
    for k, group in itertools.groupby(sorted(rows, key=key), key=key):
        yield k, list(group)


def summarize_grid(rows: list[dict]) -> str:
    """Markdown table: per op, dtype and format, the cases, failures and worst errors."""
    lines = [
        "| op | dtype | format | cases | failed | worst err (ours) | tol | worst err (torch) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (op, dtype, fmt), group in _by_op_dtype_format(rows):
        errs = [r.get("err", float("nan")) for r in group]
        terrs = [r["torch_err"] for r in group if not math.isnan(r.get("torch_err", math.nan))]
        worst_t = f"{max(terrs):.2e}" if terrs else "-"
        lines.append(
            f"| {op} | {dtype} | {fmt} | {len(group)} | {sum(not r['ok'] for r in group)} | "
            f"{max(errs):.2e} | {METRICS.TOLERANCES[dtype]:.0e} | {worst_t} |"
        )
    return "\n".join(lines)


def bench_line(r: dict) -> str:
    """One row of the layer table (markdown)."""

    def f(key, fmt):
        return format(r[key], fmt) if key in r else "-"

    return (
        f"| {r['suite']} | {r['op']} | {r['layer']} | {r['dtype']} | {r['format']} | "
        f"{f('ours_ms', '.4f')} | {f('torch_ms', '.4f')} | {f('speedup', '.2f')} | "
        f"{r.get('torch_backend', '-')} | {f('gbps', '.0f')} ({f('bw_frac', '.0%')}) | "
        f"{f('tflops', '.1f')} ({f('flop_frac', '.0%')}) | "
        f"{'yes' if r.get('deterministic') else 'NO' if 'deterministic' in r else '-'} | "
        f"{r['kernel']} | {r.get('error', '')} |"
    )


def geomeans(rows: list[dict]) -> str:
    """Markdown table: the geomean speedup per op, dtype and format against the targets."""
    lines = [
        "| op | dtype | format | layers | geomean speedup (torch ms / ours ms) | target |",
        "|---|---|---|---|---|---|",
    ]
    for (op, dtype, fmt), group in _by_op_dtype_format(rows):
        speedups = [r["speedup"] for r in group if "speedup" in r]
        if not speedups:
            continue
        gm = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        lines.append(f"| {op} | {dtype} | {fmt} | {len(speedups)} | {gm:.2f} | >= {TARGETS[op]} |")
    return "\n".join(lines)


def grid_section(rows: list[dict]) -> list[str]:
    """The grid's report section."""
    failed = len(rows) - sum(r["ok"] for r in rows)
    return [
        "## Correctness grid",
        "",
        f"{len(rows)} problems, {failed} failed.",
        "",
        summarize_grid(rows),
        "",
    ]


def large_section(rows: list[dict]) -> list[str]:
    """The large cases' report section."""
    lines = [
        f"* {r['id']} ({r['elements']:,} elements, {r['kernel']}): "
        f"{'ok' if r.get('ok') else 'FAILED ' + r.get('why', '')}, "
        f"error {r.get('err', float('nan')):.2e}"
        for r in rows
    ]
    return ["## Over 2^31 elements", "", *lines, ""]


def ceilings_line(ceilings: dict) -> str:
    """The ceilings as a report sentence."""
    return ", ".join(
        f"copy {v / 1e12:.2f} TB/s" if k == "bandwidth" else f"{k} matmul {v / 1e12:.0f} TFLOP/s"
        for k, v in ceilings.items()
    )


def benchmark_preamble(torch, ceilings: dict) -> list[str]:
    """How the benchmark measured, for the head of a report."""
    return [
        f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()} "
        "(benchmark=True, TF32 off). Medians of CUDA-graph replays, inputs rotated.",
        f"Ceilings measured on this GPU: {ceilings_line(ceilings)}.",
        "",
        "Speedup = torch ms / ours ms (> 1: ours faster).",
        "",
    ]


def benchmark_sections(rows: list[dict]) -> list[str]:
    """The geomean table and the layer table."""
    return [
        "## Geomean speedups",
        "",
        geomeans(rows),
        "",
        "## Layers",
        "",
        BENCH_HEADER,
        *[bench_line(r) for r in rows],
        "",
    ]


def _head(title: str, torch, command: str) -> list[str]:
    """A report's title (with the GPU and the date), command and commit."""
    date = datetime.date.today().isoformat()
    device = torch.cuda.get_device_name(0)
    return [f"# GPU {title}: {device}, {date}", "", f"`{command}` at commit {revision()}.", ""]


def write_correctness(out_dir, torch, command: str, sections: list[str]) -> Path:
    """Writes the correctness report; returns its path."""
    out = output_path(out_dir, "correctness", gpu_name(torch))
    text = [*_head("correctness", torch, command), f"torch {torch.__version__}", "", *sections]
    out.write_text("\n".join(text) + "\n")
    return out


def write_benchmark(out_dir, torch, command: str, ceilings: dict, sections, rows) -> Path:
    """Writes the benchmark report and its raw numbers (``.json``); returns the report's path."""
    out = output_path(out_dir, "benchmark", gpu_name(torch))
    text = [*_head("benchmark", torch, command), *benchmark_preamble(torch, ceilings), *sections]
    out.write_text("\n".join([*text, *benchmark_sections(rows)]))
    raw = {"device": torch.cuda.get_device_name(0), "ceilings": ceilings, "rows": rows}
    write_json(out.with_suffix(".json"), raw)
    return out


def write_json(path: Path, raw: dict) -> None:
    """The raw numbers behind a report."""
    path.write_text(json.dumps(raw, indent=1, default=str))


def revision() -> str:
    """The commit of the tree: ``$GPU_CHECK_COMMIT`` where set (a copy of the tree without git,
    as on the device tool), else ``git describe --always --dirty`` as every generated document
    states it (``scripts/provenance.py``)."""
    return os.environ.get("GPU_CHECK_COMMIT") or PROVENANCE.git_head()
