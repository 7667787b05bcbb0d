"""``crosscheck``'s report: the per-case table, the summary, the legend and the JSON form.

Works on the rows of :func:`.crosscheck_run.run_grid`; no TensorFlow.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._optable import BY_TF_NAME
from .crosscheck_run import IMPLEMENTATIONS
from .metrics import DTYPES, TOLERANCES

__all__ = [
    "DTYPE_SHORT",
    "format_legend",
    "format_summary",
    "format_table",
    "jsonable",
    "summarize",
    "summary_line",
]

#: How the tables print each dtype.
DTYPE_SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}


def fmt_err(value: float | None) -> str:
    """An error for the tables: ``"-"`` (not measured), ``"inf"`` or ``"1.2e-07"``."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.1e}"


def _fmt_ulp(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.0f}" if value < 1e6 else f"{value:.1e}"


def _kernel_tag(entry: dict[str, Any]) -> str:
    kernel = entry.get("kernel")
    if not kernel:
        return ""
    if kernel.startswith("ConvGrad>"):  # ours: tagged only when it ran on a GPU
        return " [gpu]" if "(GPU)" in kernel else ""
    tag = "gpu" if "(GPU)" in kernel else "mkl" if kernel.startswith("_Mkl") else "native"
    return f" [{tag}{'?' if entry.get('kernel_source') == 'predicted' else ''}]"


def _cell(entry: dict[str, Any], ours: bool) -> str:
    status = entry["status"]
    if ours:
        status = "PASS" if status == "ok" else "FAIL"
    if entry["err"] is None:
        if ours:
            return f"FAIL {entry['status']}"
        return status + _kernel_tag(entry)
    det = {True: " det", False: " NONDET", None: ""}[entry["deterministic"]]
    return f"{status} {fmt_err(entry['err'])} {_fmt_ulp(entry['ulp'])}u{det}" + _kernel_tag(entry)


def _impls(rows: Sequence[dict[str, Any]], with_tf: bool = True) -> list[str]:
    present = [key for key in IMPLEMENTATIONS if rows and key in rows[0]]
    return present if with_tf else [key for key in present if key.startswith("ours")]


def _align(lines: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines]  # fmt: skip
    text.insert(1, "-" * max(len(t) for t in text))
    return text


def format_table(rows: Sequence[dict[str, Any]], with_tf: bool = True) -> str:
    """Formats rows from :func:`.crosscheck_run.run_grid` as an aligned text table, one line
    per case.

    Each implementation's cell reads ``<result> <rel err> <ulp>u <det|NONDET> [kernel]``.

    Args:
        rows: The rows.
        with_tf: Include the TF implementations' columns (those present in the rows).

    Returns:
        The table, header and rule included.
    """
    impls = _impls(rows, with_tf)
    lines = [["op", "configuration", "dtype"] + [IMPLEMENTATIONS[i] for i in impls]]
    for row in rows:
        line = [BY_TF_NAME[row["op"]].label, row["config"], DTYPE_SHORT[row["dtype"]]]
        line += [_cell(row[i], i.startswith("ours")) for i in impls]
        lines.append(line)
    return "\n".join(_align(lines))


def _category(status: str) -> str:
    """``"refuses: InvalidArgument"`` -> ``"refuses"``; ``"crashed (SIGABRT)"`` -> ``"crashed"``."""
    return status.split(":")[0].split(" (")[0]


def _stats(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    measured = [e for e in entries if e["err"] is not None]

    def largest(key: str) -> float | None:
        values = [e[key] for e in measured if e[key] is not None]
        return max(values) if values else None

    kernels = Counter(
        e["kernel"] + ("?" if e.get("kernel_source") == "predicted" else "")
        for e in entries
        if e.get("kernel")
    )
    return {
        "cases": len(entries),
        "statuses": dict(Counter(_category(e["status"]) for e in entries)),
        "max_abs_err": largest("abs_err"),
        "max_err": largest("err"),
        "max_ulp": largest("ulp"),
        "nondeterministic": sum(e["deterministic"] is False for e in entries),
        "kernels": dict(kernels),
    }


def summarize(rows: Sequence[dict[str, Any]], with_tf: bool = True) -> dict[str, Any]:
    """Counts the cases and our failures; statistics per implementation and dtype.

    Args:
        rows: The rows from :func:`.crosscheck_run.run_grid`.
        with_tf: Include the TF implementations.

    Returns:
        ``{"cases", "failures", "implementations": {impl: {"cases", "statuses", "max_abs_err",
        "max_err", "max_ulp", "nondeterministic", "kernels", "by_dtype": {dtype: {...}}}}}``.
    """
    failures = [row for row in rows if not row["pass"]]
    summary: dict[str, Any] = {"cases": len(rows), "failures": len(failures)}
    summary["implementations"] = {}
    for impl in _impls(rows, with_tf):
        stats = _stats([row[impl] for row in rows])
        stats["by_dtype"] = {
            dtype: _stats([row[impl] for row in rows if row["dtype"] == dtype])
            for dtype in DTYPES
            if any(row["dtype"] == dtype for row in rows)
        }
        summary["implementations"][impl] = stats
    return summary


_COUNTED = ("ok", "wrong", "ignores dilation", "refuses", "crashed")


def format_summary(summary: dict[str, Any]) -> str:
    """The per-implementation, per-dtype summary table and the kernels TF ran."""
    header = ["implementation", "dtype", "cases", "ok", "wrong", "ign.dil", "refuses", "crashed",
              "other", "max abs", "max rel", "max ulp", "nondet"]  # fmt: skip
    lines = [header]
    for impl, stats in summary["implementations"].items():
        for dtype, s in stats["by_dtype"].items():
            counts = s["statuses"]
            other = s["cases"] - sum(counts.get(c, 0) for c in _COUNTED)
            lines.append(
                [IMPLEMENTATIONS[impl], DTYPE_SHORT[dtype], str(s["cases"])]
                + [str(counts.get(c, 0)) for c in _COUNTED]
                + [str(other), fmt_err(s["max_abs_err"]), fmt_err(s["max_err"]),
                   _fmt_ulp(s["max_ulp"]), str(s["nondeterministic"])]
            )  # fmt: skip
    text = _align(lines)
    text.append("")
    text.append("Kernels that ran, with the number of cases (observed in the run metadata;")
    text.append("? = predicted from TF's rewrite rules where the metadata did not show the op):")
    width = max(len(IMPLEMENTATIONS[i]) for i in summary["implementations"]) + 1
    for impl, stats in summary["implementations"].items():
        label = (IMPLEMENTATIONS[impl] + ":").ljust(width)
        kernels = sorted(stats["kernels"].items()) or [("-", 0)]
        for k, (kernel, count) in enumerate(kernels):
            text.append(
                f"  {label if k == 0 else ' ' * width} {kernel}" + (f" x{count}" if count else "")
            )
    return "\n".join(text)


def summary_line(summary: dict[str, Any]) -> str:
    """The final line: ``"N cases, all pass"`` or ``"N cases, K failures"``.

    Args:
        summary: From :func:`summarize`.

    Returns:
        The line.
    """
    if summary["failures"] == 0:
        return f"{summary['cases']} cases, all pass"
    return f"{summary['cases']} cases, {summary['failures']} failures"


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as strings and NumPy scalars as Python ones, for JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


_LEGEND = """\
Each cell: <result> <rel err> <ulp>u <det> [kernel], against a float64 reference computed on the
same dtype-rounded inputs.
  rel err = max|x - ref| / max|ref| (inf: non-finite values or a wrong shape);
  ulp     = largest distance to the reference rounded to the dtype, in units in the last place
            (0 = correctly rounded; elements that cancel to near zero have large distances at
            tiny absolute error; for f64 the reference has a few ulp of its own);
  det     = {repeats} runs bitwise identical, NONDET = not (nothing when run once).
Ours must be within: {tols} (PASS / FAIL).
TF's results are reported, never failed on: ok (within the same tolerance), wrong, ignores
dilation (equals the undilated answer), refuses: <error class>, crashed (<signal>).
[native] / [mkl] / [gpu]: the kernel TF ran (full names below the summary and in --json);
? = predicted from TF's rewrite rules where the run metadata did not show the op.
Max abs errors are in the summary."""


def format_legend(repeats: int) -> str:
    """The legend printed above the table."""
    tols = ", ".join(f"{DTYPE_SHORT[d]} {t:g}" for d, t in TOLERANCES.items())
    return _LEGEND.format(tols=tols, repeats=repeats)
