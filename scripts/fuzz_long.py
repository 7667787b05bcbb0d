#!/usr/bin/env python
"""The long fuzzing run: >= 100,000 hypothesis examples of tests/support/fuzz_harness.py, in chunks.

    .venv/bin/python scripts/fuzz_long.py                       # 100,000 examples, random seed
    .venv/bin/python scripts/fuzz_long.py --seed 1234 --examples 20000 --report fuzz_report.md

The examples are split into chunks (default 5,000), chunk k using hypothesis seed SEED + k, so
any chunk can be replayed alone with ``python tests/support/fuzz_harness.py --seed SEED+k --examples
CHUNK ...``. Chunks run in crash-isolated worker processes (``fuzz_harness.run_chunks``),
``--workers`` at a time; a worker that dies is reported with its signal and the example it was
running (the worker writes each example to a file before running it), and the run goes on with
the next chunk in a fresh worker. Progress lines come from the workers every 1,000 examples and
at the end of each chunk. At the end the report (default docs/FUZZ.md) is written from the
chunks' summaries; the exit code is 1 if any chunk failed or crashed.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import random
import sys
import time
from pathlib import Path

import provenance

ROOT = provenance.ROOT
sys.path.insert(0, str(ROOT / "tests" / "support"))

import fuzz_harness  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: random)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--function-fraction", type=float, default=0.05)
    parser.add_argument("--report", default=str(ROOT / "docs" / "FUZZ.md"))
    parser.add_argument(
        "--shrinking",
        action="store_true",
        help="draw every choice through hypothesis (shrinks failures; ~3x slower overall)",
    )
    args = parser.parse_args()
    base = args.seed if args.seed is not None else random.randrange(2**31)
    chunks = []
    left = args.examples
    while left > 0:
        chunks.append((base + len(chunks), min(args.chunk, left)))
        left -= args.chunk
    print(
        f"fuzz_long: {args.examples} examples in {len(chunks)} chunks, base seed {base}, "
        f"{args.workers} workers",
        flush=True,
    )
    start = time.monotonic()

    reported = [0]

    def progress(done, total):  # called every poll: print only when a chunk finished
        if done != reported[0]:
            reported[0] = done
            elapsed = time.monotonic() - start
            print(f"fuzz_long: {done}/{total} chunks in {elapsed:.0f} s", flush=True)

    results = fuzz_harness.run_chunks(
        [fuzz_harness.chunk(s, n, not args.shrinking, args.function_fraction) for s, n in chunks],
        workers=args.workers,
        progress=progress,
        output=lambda line: print(f"  {line}", flush=True),
    )
    for result in results:
        if result["failure"]:
            print(f"fuzz_long: chunk seed {result['seed']} FAILED:\n{result['failure'][:3000]}")
    elapsed = time.monotonic() - start
    _write_report(args, base, chunks, results, elapsed)
    failures = [r for r in results if r["failure"]]
    print(f"fuzz_long: done, {len(failures)} failing chunks; report in {args.report}")
    return 1 if failures else 0


def _write_report(args, base, chunks, results, elapsed) -> None:
    library = provenance.library_label()
    stats = collections.Counter()
    for result in results:
        stats.update(result.get("stats", {}))
    total = sum(r["examples"] or 0 for r in results)
    failures = [r for r in results if r["failure"]]
    lines = [
        "# Fuzzing",
        "",
        "<!-- The results section is written by scripts/fuzz_long.py. -->",
        "",
        "`tests/support/fuzz_harness.py` is a property-based fuzzer built on hypothesis (pinned in "
        "requirements-dev.txt). One example is a whole call of one of our three ops: the op, the "
        "dtype (half, bfloat16, float, double), NHWC or NCHW, eager or a `tf.function` with every "
        "input as an argument, the shapes, the sizes vector and every attribute. About half of "
        "the examples are corrupted once or twice: strides or dilations of 0, -1, -3, 2**31 - 1, "
        "2**31, -2**31 or 2**40, lists of the wrong length or with non-1 batch/depth entries, "
        "EXPLICIT paddings of the wrong length, negative or on batch/depth, paddings with "
        "SAME/VALID, negative or missing sizes, operands of the wrong rank, batch, depth, "
        "multiplier, group, input-depth (0 included) and spatial sizes that do not fit. Empty "
        "tensors (zero batch, spatial size, channels, multiplier, filter taps) come up on their "
        "own.",
        "",
        "The property, checked against `fuzz_harness.model`, an independent plain-integer "
        "statement of which calls are valid:",
        "",
        "* valid call: our result matches the float64 NumPy reference "
        "(`tf_convgrad.tools.reference`) on the same T-rounded operands within the value tests' "
        "tolerance (`tf_convgrad.tools.metrics.TOLERANCES`: 1e-12, "
        "2e-5, 1e-3, 8e-3 of max|ref| for double, float, half, bfloat16), with exact zeros where "
        "nothing contributes;",
        "* invalid call: `tf.errors.InvalidArgumentError`, nothing else;",
        "* no crash: every example runs in a worker process that first writes the example to a "
        "file, so a crash names its example.",
        "",
        "The default suite runs 300 examples with a fixed seed "
        "(`tests/robustness/test_fuzz.py`, ~10% in "
        "`tf.function`), every choice a hypothesis draw so that a failure shrinks to a small "
        "example. The long run lets hypothesis seed one `random.Random` per example instead "
        "(`--fast`, same distribution, generation ~5x cheaper; `--shrinking` restores full "
        "hypothesis draws):",
        "",
        "```",
        ".venv/bin/python scripts/fuzz_long.py [--examples 100000] [--seed N] [--workers 2]",
        "```",
        "",
        "splits the examples into chunks with seeds N, N+1, ...; chunk k replays alone, in one "
        "process, with `python tests/support/fuzz_harness.py --seed N+k --examples CHUNK --fast`.",
        "",
        "## Result of the last long run",
        "",
        f"* Date: {datetime.date.today().isoformat()}; command: `.venv/bin/python "
        f"scripts/fuzz_long.py --examples {args.examples} --chunk {args.chunk} --seed {base} "
        f"--workers {args.workers}"
        + (
            f" --function-fraction {args.function_fraction}"
            if args.function_fraction != 0.05
            else ""
        )
        + (" --shrinking" if args.shrinking else "")
        + "`",
        f"* Base seed **{base}**, {len(chunks)} chunks (seeds {base} to {base + len(chunks) - 1})",
        f"* Examples run: **{total}** in {elapsed / 60:.1f} minutes on 2 cores "
        f"({args.workers} workers)",
        f"* Failing chunks: **{len(failures)}**",
        f"* Ours: source `{provenance.git_head()}`, library: {library}",
        "",
        "| op | valid (eager) | valid (tf.function) | invalid (eager) | invalid (tf.function) |",
        "|---|---|---|---|---|",
    ]
    for op in ("cbf", "dbf", "dbi"):
        row = [
            str(stats.get(f"{op}|{v}|{m}", 0))
            for v in ("valid", "invalid")
            for m in ("eager", "function")
        ]
        lines.append(f"| {op} | " + " | ".join(row) + " |")
    lines += [
        "",
        f"Valid results compared with the reference: {stats.get('values checked', 0)} non-zero, "
        f"{stats.get('zero result', 0)} exact-zero, {stats.get('empty result', 0)} with no "
        "elements.",
        "",
        "Examples per dtype: "
        + ", ".join(
            f"{d} {stats.get(f'dtype|{d}', 0)}"
            for d in ("float16", "bfloat16", "float32", "float64")
        )  # fmt: skip
        + ".",
        "",
        "Corruptions applied: "
        + ", ".join(
            f"{k.split('|', 1)[1]} {v}" for k, v in sorted(stats.items()) if k.startswith("corr")
        )
        + ".",
        "",
    ]
    if failures:
        lines += ["## Failures", ""]
        for result in failures:
            lines += [f"* seed {result['seed']}:", "", "```", result["failure"][:4000], "```", ""]
    Path(args.report).write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
