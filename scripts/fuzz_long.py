#!/usr/bin/env python
"""The long fuzzing run: >= 100,000 hypothesis examples of tests/fuzz_harness.py, in chunks.

    .venv/bin/python scripts/fuzz_long.py                       # 100,000 examples, random seed
    .venv/bin/python scripts/fuzz_long.py --seed 1234 --examples 20000 --report fuzz_report.md

The examples are split into chunks (default 5,000), chunk k using hypothesis seed SEED + k, so
any chunk can be replayed alone with ``python tests/fuzz_harness.py --seed SEED+k --examples
CHUNK ...``. Chunks run in worker processes, ``--workers`` at a time; a worker that dies is
reported with its signal and the example it was running (the worker writes each example to a
file before running it), and the run goes on with the next chunk. Progress lines come from the
workers every 1,000 examples. At the end the report (default docs/FUZZ.md) is written from the
chunks' summaries; the exit code is 1 if any chunk failed or crashed.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "fuzz_harness.py"


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
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="tf_convgrad_fuzz_") as tmp:
        pending = list(chunks)
        running: dict = {}
        while pending or running:
            while pending and len(running) < args.workers:
                chunk_seed, count = pending.pop(0)
                current = Path(tmp) / f"current_{chunk_seed}.json"
                summary = Path(tmp) / f"summary_{chunk_seed}.json"
                command = [
                    sys.executable,
                    str(HARNESS),
                    f"--seed={chunk_seed}",
                    f"--examples={count}",
                    f"--current={current}",
                    f"--summary={summary}",
                    f"--function-fraction={args.function_fraction}",
                ]
                if not args.shrinking:
                    command.append("--fast")
                proc = subprocess.Popen(command, env=env)
                running[proc] = (chunk_seed, count, current, summary)
            time.sleep(1)
            for proc in [p for p in running if p.poll() is not None]:
                chunk_seed, count, current, summary = running.pop(proc)
                if summary.exists():
                    result = json.loads(summary.read_text())
                else:
                    result = {
                        "seed": chunk_seed,
                        "examples": None,
                        "failure": f"worker died (exit {proc.returncode}) while running: "
                        + (current.read_text() if current.exists() else "(nothing yet)"),
                        "stats": {},
                    }
                results.append(result)
                done = sum(r["examples"] or 0 for r in results)
                elapsed = time.monotonic() - start
                status = "OK" if result["failure"] is None else "FAILED"
                print(
                    f"fuzz_long: chunk seed {chunk_seed} {status}; {done}/{args.examples} "
                    f"examples in {elapsed:.0f} s",
                    flush=True,
                )
                if result["failure"]:
                    print(result["failure"][:3000], flush=True)
    elapsed = time.monotonic() - start
    _write_report(args, base, chunks, results, elapsed)
    failures = [r for r in results if r["failure"]]
    print(f"fuzz_long: done, {len(failures)} failing chunks; report in {args.report}")
    return 1 if failures else 0


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _library_label() -> str:
    """The library our ops load, as the report may name it: never a path outside the repo."""
    from tf_convgrad import _cli

    return _cli.library_label(os.environ.get("TF_CONVGRAD_LIBRARY"), ROOT)


def _write_report(args, base, chunks, results, elapsed) -> None:
    library = _library_label()
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
        "`tests/fuzz_harness.py` is a property-based fuzzer built on hypothesis (pinned in "
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
        "* valid call: our result matches the float64 NumPy reference (`tests/reference.py`) on "
        "the same T-rounded operands within the value tests' tolerance (`configs.TOL`: 1e-12, "
        "2e-5, 1e-3, 8e-3 of max|ref| for double, float, half, bfloat16), with exact zeros where "
        "nothing contributes;",
        "* invalid call: `tf.errors.InvalidArgumentError`, nothing else;",
        "* no crash: every example runs in a worker process that first writes the example to a "
        "file, so a crash names its example.",
        "",
        "The default suite runs 300 examples with a fixed seed (`tests/test_fuzz.py`, ~10% in "
        "`tf.function`), every choice a hypothesis draw so that a failure shrinks to a small "
        "example. The long run lets hypothesis seed one `random.Random` per example instead "
        "(`--fast`, same distribution, generation ~5x cheaper; `--shrinking` restores full "
        "hypothesis draws):",
        "",
        "```",
        ".venv/bin/python scripts/fuzz_long.py [--examples 100000] [--seed N] [--workers 2]",
        "```",
        "",
        "splits the examples into chunks with seeds N, N+1, ...; chunk k replays alone with",
        "`python tests/fuzz_harness.py --seed N+k --examples CHUNK --fast --current c.json "
        "--summary s.json`.",
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
        f"* Ours: source `{_git_head()}`, library: {library}",
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
