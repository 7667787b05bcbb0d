"""``python -m tf_convgrad crosscheck``: cross-check convolution-gradient kernels against float64.

Runs Conv2DBackpropFilter (CBF), DepthwiseConv2dNativeBackpropFilter (DBF) and
DepthwiseConv2dNativeBackpropInput (DBI) over a grid of configurations (built-in tiers or a JSON
file) and dtypes, with these implementations on the same inputs:

* **ours**: tf_convgrad's ops, in this process, on the CPU (and, as **ours GPU**, placed on the
  GPU when one is selected; the kernel column shows where they actually ran);
* **TF native**: ``tf.raw_ops`` with TF's own CPU kernels (``TF_ENABLE_ONEDNN_OPTS=0``);
* **TF oneDNN**: ``tf.raw_ops`` with oneDNN (``=1``), where TF rewrites the op to ``_MklNative*``;
* **TF GPU**: ``tf.raw_ops`` on TF's GPU kernels (cuDNN or TF's own), when TF sees a GPU.

Each TF implementation runs in its own worker process (:mod:`.oracle`; a crash is reported, not
suffered). Every result is compared with a float64 NumPy reference (:mod:`.reference`) computed on
the same dtype-rounded inputs, so the error measures the kernel alone:

* ``abs``: ``max|x - ref|``;
* ``rel``: ``max|x - ref| / max|ref|`` (norm-relative; decides pass/fail for ours, against
  :data:`.metrics.TOLERANCES`, and classifies TF's results against the same thresholds);
* ``ulp``: the largest distance, in units in the last place of the dtype, between an element and
  the reference rounded to the dtype (0 = correctly rounded; for float64 the reference carries its
  own rounding error of a few ulp);
* ``det``: whether ``--repeats`` runs gave bitwise identical results;
* ``kernel``: which kernel TF actually ran, read from the run metadata of the executed graph.

Usage::

    python -m tf_convgrad crosscheck                    # default tier, all ops and dtypes
    python -m tf_convgrad crosscheck --quick            # = --tier quick
    python -m tf_convgrad crosscheck --op DBF --dtype bf16 --format NCHW --tier full
    python -m tf_convgrad crosscheck --configs my.json --json > report.json
    python -m tf_convgrad crosscheck --list --json > grid.json   # a template for --configs
    python -m tf_convgrad crosscheck --model mobilenet_v2   # a whole model: see .model_check

The table (or JSON) goes to stdout, progress to stderr. Exit code 0: all of ours pass; 1: some of
ours fail; 2: nothing ran (bad arguments, no configuration, library not loadable).

This module is the command line; the work is done by :mod:`.crosscheck_grid` (the tiers, from
:mod:`.problems`, and configuration files), :mod:`.crosscheck_run` (running the implementations
and judging each result) and :mod:`.crosscheck_report` (tables, summary, JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from .. import _cli
from .._optable import OPS, op
from . import model_check
from .crosscheck_grid import TIERS, build_grid, load_configs, to_json
from .crosscheck_report import (
    fmt_err,
    format_legend,
    format_summary,
    format_table,
    jsonable,
    summarize,
    summary_line,
)
from .crosscheck_run import gpu_available, run_grid
from .metrics import DTYPES, TOLERANCES
from .problems import Problem

__all__ = ["DESCRIPTION", "add_arguments", "main", "run"]

#: One-line description for the command line.
DESCRIPTION = (
    "Cross-check Conv2DBackpropFilter and the two depthwise backprop ops: ours, TF's native CPU "
    "kernels, TF's oneDNN kernels and (with a GPU) TF's GPU kernels against a float64 reference "
    "over a grid of configurations; report max abs/rel error, ULP distance, run-to-run "
    "determinism and the kernel TF ran. Exits non-zero if any of OUR results is out of tolerance. "
    "With --model, cross-checks one training step of a whole model instead (see below)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``crosscheck`` options to ``parser``.

    Args:
        parser: The (sub)command parser.
    """
    grid = parser.add_argument_group("what to run")
    grid.add_argument(
        "--tier", choices=TIERS, default=None,
        help="built-in grid: quick (the smallest), default (broader), full (default + "
        "layer-sized problems); --list shows a tier's configurations",
    )  # fmt: skip
    grid.add_argument("--quick", action="store_true", help="same as --tier quick")
    grid.add_argument(
        "--configs", metavar="FILE.json",
        help="configurations from a JSON file instead of a built-in tier (see --list --json "
        "for the format)",
    )  # fmt: skip
    grid.add_argument(
        "--op", action="append", choices=sorted(o.label for o in OPS.values()),
        help="only this op (CBF, DBF, DBI); repeatable",
    )  # fmt: skip
    grid.add_argument(
        "--dtype", action="append", type=_cli.dtype, metavar="DTYPE",
        help="only this dtype (f16, bf16, f32, f64, or float16, bfloat16, float32, float64); "
        "repeatable",
    )  # fmt: skip
    grid.add_argument(
        "--format", action="append", choices=("NHWC", "NCHW"), dest="formats",
        help="run every configuration in this data format; repeatable (default: the format "
        "each configuration lists)",
    )  # fmt: skip
    grid.add_argument("--only", help="only configurations containing this substring")
    grid.add_argument(
        "--list", action="store_true",
        help="print the selected configurations (with --json: in the --configs format) and exit",
    )  # fmt: skip
    how = parser.add_argument_group("how to run")
    how.add_argument(
        "--device", action="append", choices=("cpu", "gpu"), dest="devices",
        help="where the kernels run: cpu (ours, TF native, TF oneDNN) and/or gpu (ours placed "
        "on the GPU, TF's GPU kernels); repeatable (default: cpu, plus gpu when TensorFlow "
        "sees one). Ours always run on the CPU too",
    )  # fmt: skip
    how.add_argument("--no-tf", action="store_true", help="run only ours (no TF workers)")
    how.add_argument(
        "--mode", choices=("eager", "function"), default="eager", help="how to call the ops"
    )
    how.add_argument(
        "--repeats", type=int, default=2,
        help="runs per implementation and case for the determinism check (default 2; 1 = off)",
    )  # fmt: skip
    how.add_argument(
        "--timeout", type=float, default=900, help="seconds allowed to each TF worker (900)"
    )
    how.add_argument(
        "--no-tf32", action="store_true",
        help="turn TensorFloat-32 off for TF's float32 GPU kernels (TF enables it by default)",
    )  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print JSON results instead of tables")
    out.add_argument(
        "--progress", choices=("auto", "bar", "lines", "off"), default="auto",
        help="progress on stderr: a bar on a terminal, periodic lines otherwise (auto)",
    )  # fmt: skip
    model_check.add_arguments(parser)


def _select(args: argparse.Namespace) -> list[Problem]:
    ops = [op(label).key for label in args.op] if args.op else None
    if args.configs:
        configs = load_configs(args.configs)
        if ops:
            configs = [c for c in configs if c.op in ops]
    else:
        configs = build_grid(args.tier or ("quick" if args.quick else "default"), ops)
    if args.formats:
        seen: dict[str, Problem] = {}
        for config in configs:
            for data_format in args.formats:
                variant = config.with_format(data_format)
                seen.setdefault(f"{variant.op}|{variant}", variant)
        configs = list(seen.values())
    if args.only:
        configs = [c for c in configs if args.only in str(c)]
    return configs


def run(args: argparse.Namespace) -> int:
    """Runs the crosscheck for parsed ``args``, printing the tables (or JSON) on stdout.

    Args:
        args: Parsed by a parser set up with :func:`add_arguments`.

    Returns:
        The exit code: 0 if every case passes, 1 if any fails, 2 if nothing could run (bad
        arguments or configuration file, no configuration selected, GPU requested but absent,
        or our op library cannot be loaded).
    """
    if any(getattr(args, name, None) is not None for name in ("model", "size", "batch", "seed")):
        return model_check.run(args)
    started = time.monotonic()
    dtypes = list(dict.fromkeys(args.dtype)) if args.dtype else list(DTYPES)
    if (args.tier or args.quick) and args.configs:
        print("crosscheck: --tier/--quick and --configs exclude each other", file=sys.stderr)
        return 2
    if args.quick and args.tier not in (None, "quick"):
        print(f"crosscheck: --quick contradicts --tier {args.tier}", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("crosscheck: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        configs = _select(args)
    except ValueError as error:
        print(f"crosscheck: {error}", file=sys.stderr)
        return 2
    if not configs:
        print("crosscheck: no configuration selected", file=sys.stderr)
        return 2
    if args.list:
        if args.json:
            print(json.dumps({"configs": [to_json(c) for c in configs]}, indent=1))
        else:
            print("\n".join(f"{OPS[c.op].label}  {c}" for c in configs))
        return 0

    with_tf = not args.no_tf
    try:
        has_gpu = gpu_available()
    except ImportError as error:
        print(f"crosscheck: cannot import TensorFlow: {error}", file=sys.stderr)
        return 2
    devices = args.devices or (["cpu", "gpu"] if has_gpu else ["cpu"])
    if "gpu" in devices and not has_gpu:
        print("crosscheck: --device gpu, but TensorFlow sees no GPU", file=sys.stderr)
        return 2
    impls = ["ours"] + (["ours GPU"] if "gpu" in devices else [])
    if with_tf:
        impls += ["TF native", "TF oneDNN"] if "cpu" in devices else []
        impls += ["TF GPU"] if "gpu" in devices else []
    print(
        f"crosscheck: {len(configs)} configurations x {len(dtypes)} dtypes = "
        f"{len(configs) * len(dtypes)} cases ({args.mode}, {args.repeats} run(s) each); "
        f"implementations: {', '.join(impls)}"
        + ("; TF runs in worker processes" if with_tf else ""),
        file=sys.stderr,
        flush=True,
    )
    try:
        rows = run_grid(
            configs, dtypes, mode=args.mode, with_tf=with_tf, devices=devices,
            repeats=args.repeats, progress=args.progress, timeout=args.timeout,
            tf32=not args.no_tf32,
        )  # fmt: skip
    except ImportError as error:
        print(f"crosscheck: cannot load tf_convgrad's op library: {error}", file=sys.stderr)
        return 2
    summary = summarize(rows, with_tf)
    summary["seconds"] = round(time.monotonic() - started, 1)
    line = summary_line(summary)
    failures = [row for row in rows if not row["pass"]]
    if args.json:
        settings = {
            "mode": args.mode, "repeats": args.repeats, "devices": devices, "tf": with_tf,
            "dtypes": dtypes, "tf32": not args.no_tf32,
        }  # fmt: skip
        payload = {"summary": summary, "settings": settings, "tolerances": TOLERANCES,
                   "results": rows}  # fmt: skip
        print(json.dumps(jsonable(payload), indent=1))
        print(line, file=sys.stderr)
    else:
        print(format_legend(args.repeats))
        print()
        print(format_table(rows, with_tf))
        print()
        print(format_summary(summary))
        print()
        for row in failures:
            for key in ("ours", "ours_gpu"):
                entry = row.get(key)
                if entry is None or entry["status"] == "ok":
                    continue
                detail = entry.get("message") or f"rel err {fmt_err(entry['err'])}"
                where = "" if key == "ours" else " (GPU)"
                label = op(row["op"]).label
                print(f"FAIL{where} {label} {row['config']} {row['dtype']}: {detail}")
        print(f"{line} ({summary['seconds']} s)")
    return 0 if not failures else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m tf_convgrad.tools.crosscheck``.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` by default).

    Returns:
        The exit code, as for :func:`run`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tf_convgrad crosscheck", description=DESCRIPTION
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
