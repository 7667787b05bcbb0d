"""Standalone harness for the GPU kernels (no TensorFlow anywhere).

Builds the kernel sources of ``tf_ops/cc/kernels/gpu`` into a small library with C entry points
(``build.py``), then:

1. **Correctness grid**: every op x dtype (half, bfloat16, float, double) x format (NHWC, NCHW)
   x padding (SAME, VALID, EXPLICIT) over awkward geometries (odd channel counts, unequal
   strides, dilations, depth multipliers, groups, 1x1/2x4/7x7 filters, empty tensors), plus
   the same problems with each kernel variant forced (generic filter path, 64-bit indexing,
   several reduction splits, SIMT instead of tensor cores). Outputs and scratch are poisoned
   with NaN bytes first; results are compared with the package's float64 NumPy reference
   (``python/tf_convgrad/tools/reference.py``) by ``max|ours - ref| / max|ref|`` against the
   package's tolerances (``tools/metrics.py``), empty reductions must give exact zeros, and
   repeated runs must be bitwise identical. On a GPU, PyTorch (cuDNN, TF32 off) is computed too
   and its error shown.
2. **Over 2^31 elements** (GPU): one case per op whose input or output exceeds 2^31 elements,
   checked against a float64 reference in PyTorch tensor ops on batch slices.
3. **Benchmarks** (GPU): the package's benchmark layers (MobileNetV2, EfficientNet-B0,
   ResNet-50, ``tools/problems.py`` tier ``"bench"``), ours vs PyTorch (cuDNN with
   ``benchmark=True``; channels_last for NHWC), CUDA-graph replays timed with CUDA events
   (medians after warm-up; inputs rotated so that L2 does not flatter), with the fraction of
   measured memory bandwidth and FLOP rate. The table is printed and written to ``--out`` as
   ``gpu_benchmark_<date>_<gpu>.md``.

Modes::

    python tests/gpu/run_harness.py               # GPU machine: nvcc, numpy, torch
    python tests/gpu/run_harness.py --emulate     # no GPU: same kernels on the CPU emulation
    python tests/gpu/run_harness.py --dry-run     # builds nothing: configs + reference checks
    python tests/gpu/run_harness.py --hardware-check [--emulate | --dry-run]
                                                  # 1-3 within a time budget (gpu_check.sh)

``--quick`` shrinks the grid; ``--skip-bench``/``--skip-large`` skip parts. The exit status is
non-zero if any correctness check fails. The work is done by the ``harness`` package next to
this file.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import build  # noqa: E402  (tests/gpu/build.py)
from harness import bench, grid, large, plan, report  # noqa: E402
from harness.backends import CudaBackend, EmuBackend, Runner  # noqa: E402
from harness.capi import load_library  # noqa: E402
from harness.dry_run import dry_run  # noqa: E402
from harness.hardware_check import HardwareCheck  # noqa: E402
from harness.layers import bench_problems  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="no build, no GPU")
    mode.add_argument("--emulate", action="store_true", help="CPU emulation build, no GPU")
    parser.add_argument(
        "--hardware-check",
        action="store_true",
        help="quick grid, >2^31 cases and benchmark within --budget-s, whatever --quick and "
        "--skip-* say (with --dry-run: the plan only; with --emulate: the plan's grid on the "
        "emulation)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        help=f"the hardware check's seconds (default {plan.BUDGET_S:.0f}; none on the emulation)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller correctness grid")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--bench-dtypes", default="float16,bfloat16,float32")
    parser.add_argument("--bench-formats", default="NHWC,NCHW")
    parser.add_argument("--filter", help="regex on problem ids (grid) / layer names (bench)")
    parser.add_argument("--arch", help="nvcc compute capabilities, e.g. 90 (default: detect)")
    parser.add_argument(
        "--out",
        help="directory for the tables (default: docs/; for --hardware-check $OUT, else "
        "build/gpu-check/)",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args()


def _filtered(items, pattern: str | None, key=lambda p: p.id) -> list:
    return [x for x in items if re.search(pattern, key(x))] if pattern else list(items)


def _command(argv: list[str]) -> str:
    """The command line for a report, without the output folder (a local path)."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--out"):
            skip = arg == "--out"
            continue
        kept.append(arg)
    return " ".join(["python tests/gpu/run_harness.py", *kept])


def _setup(args) -> tuple[Runner, object, float]:
    """Builds and loads the library; returns the runner, PyTorch (None on the emulation) and
    the build's seconds."""
    start = time.monotonic()
    if args.emulate:
        lib = load_library(build.build(emulate=True, jobs=os.cpu_count()))
        return Runner(lib, EmuBackend()), None, time.monotonic() - start
    import torch  # noqa: PLC0415

    if not torch.cuda.is_available():
        print("no CUDA GPU visible to PyTorch; use --emulate or --dry-run", file=sys.stderr)
        raise SystemExit(2)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    arch = args.arch.split(",") if args.arch else None
    lib = load_library(build.build(emulate=False, arch=arch))
    print(
        f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
        f"cuDNN {torch.backends.cudnn.version()}",
        flush=True,
    )
    return Runner(lib, CudaBackend(torch)), torch, time.monotonic() - start


def hardware_check(args, deadline: plan.Deadline) -> int:
    """``--hardware-check``: the plan (``--dry-run``), or the plan run on the emulation or GPU."""
    problems, bench_items = plan.check_items(args.filter)
    the_plan = plan.hardware_plan(problems, bench_items, args.budget_s or plan.BUDGET_S)
    print(the_plan.table())
    if args.dry_run:
        fits = the_plan.seconds <= the_plan.budget_s
        print(f"hardware check plan: {the_plan.seconds:.0f} s of {the_plan.budget_s:.0f} s")
        print("dry-run:", "ok" if fits else "FAILED (over the budget)")
        return 0 if fits else 1
    runner, torch, build_s = _setup(args)
    out = args.out or os.environ.get("OUT") or str(ROOT / "build" / "gpu-check")
    check = HardwareCheck(runner, torch, the_plan, deadline, out, _command(sys.argv[1:]))
    failed = check.run(problems, bench_items, build_s)
    print("RESULT:", "FAILED" if failed else "ok", f"({failed} failures)")
    return 1 if failed else 0


def main() -> int:
    started = time.monotonic()  # the hardware check's budget counts from here
    args = parse_args()
    if args.hardware_check:
        # The budget is GPU time; the emulation, far slower, runs the whole plan unless told.
        seconds = args.budget_s or (math.inf if args.emulate else plan.BUDGET_S)
        return hardware_check(args, plan.Deadline(seconds, start=started))
    problems = _filtered(grid.grid(args.quick), args.filter)
    if args.dry_run:
        failures = dry_run(problems)
        print("dry-run:", "FAILED" if failures else "ok")
        return 1 if failures else 0

    runner, torch, _ = _setup(args)
    out = args.out or str(ROOT / "docs")
    failed = 0
    sections = []

    if not args.skip_grid:
        t0 = time.monotonic()
        print(f"grid: {len(problems)} problems ({runner.backend.name})", flush=True)
        rows = grid.check_grid(runner, problems, torch, verbose=args.verbose)
        failed += sum(not r["ok"] for r in rows)
        print(report.summarize_grid(rows))
        print(
            f"grid: {sum(r['ok'] for r in rows)}/{len(rows)} passed "
            f"({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        sections += report.grid_section(rows)

    if torch is not None and not args.skip_large:
        rows = large.check_large(runner, torch)
        failed += sum(not r.get("ok") for r in rows)
        sections += report.large_section(rows)

    if torch is not None and sections and args.skip_bench:
        # Correctness only: still leave the evidence under --out.
        path = report.write_correctness(out, torch, _command(sys.argv[1:]), sections)
        print(f"report written to {path}")

    if torch is not None and not args.skip_bench:
        ceilings, l2 = bench.ceilings_and_l2(torch)
        items = bench_problems(args.bench_dtypes.split(","), args.bench_formats.split(","))
        items = _filtered(items, args.filter, lambda x: x[1].id)
        print(report.BENCH_HEADER, flush=True)
        rows = bench.run_benchmarks(runner, torch, items, ceilings, l2)
        failed += sum(r.get("deterministic") is False for r in rows)
        print(report.geomeans(rows))
        path = report.write_benchmark(out, torch, _command(sys.argv[1:]), ceilings, sections, rows)
        print(f"table written to {path} (all numbers: {path.with_suffix('.json').name})")

    print("RESULT:", "FAILED" if failed else "ok", f"({failed} failures)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
