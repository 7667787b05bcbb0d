#!/usr/bin/env python
"""Runs the hostile-input corpus (tests/support/hostile_cases.py) through our ops, TF 2.21's native
kernels and TF 2.21 with oneDNN, eagerly and in two kinds of tf.function, and writes the
side-by-side table docs/HOSTILE.md from those runs.

    .venv/bin/python scripts/hostile_table.py                 # writes docs/HOSTILE.md
    .venv/bin/python scripts/hostile_table.py --json out.json # also the raw results
    .venv/bin/python scripts/hostile_table.py -k explicit     # only case ids containing "explicit"

Every cell comes from an actual run in a crash-isolated worker process (subprocess_worker.run);
a crash is recorded with its signal and the worker is restarted after it. Takes ~10 minutes on two
cores (TF crashes cost a TensorFlow import each).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import provenance

ROOT = provenance.ROOT
sys.path.insert(0, str(ROOT / "tests" / "support"))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # this process only builds the corpus
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hostile_cases  # noqa: E402
import numpy as np  # noqa: E402
import subprocess_worker  # noqa: E402
from hostile_cases import MODES  # noqa: E402
from tf_convgrad._optable import OPS  # noqa: E402

IMPLS = (
    ("ours", "ours", {}),
    ("native", "tf", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    ("onednn", "tf", {"TF_ENABLE_ONEDNN_OPTS": "1"}),
)
SHORT = {
    "InvalidArgumentError": "IA",
    "ResourceExhaustedError": "RE",
    "ValueError": "VE",
    "TypeError": "TE",
    "AbortedError": "**Aborted**",
    "UnimplementedError": "Unimpl",
    "InternalError": "**Internal**",
    "zeros": "0s",
    "ok": "ok",
    "garbage": "**garbage**",
    "wrong values": "**wrong**",
    "timeout": "**timeout**",
}


def _progress(label):
    state = {"last": 0.0}

    def report(done, total):
        now = time.monotonic()
        if now - state["last"] > 10 or done == total:
            state["last"] = now
            print(f"  {label}: {done}/{total}", flush=True)

    return report


def _word(case, result) -> str:
    expected_zeros = "zeros" in case.expect.values()
    word = hostile_cases.outcome(result, case.zeros_shape if expected_zeros else None)
    if word in ("ok", "zeros") and "ok" in case.expect.values() and "value" in result:
        word = "ok" if _values_match(case, result) else "wrong values"
    return word


_REFERENCES: dict[str, np.ndarray] = {}


def _values_match(case, result) -> bool:
    import hostile_reference  # noqa: PLC0415 - the same reference the test uses

    if case.id not in _REFERENCES:
        _REFERENCES[case.id] = hostile_reference.value(case)
    ref = _REFERENCES[case.id]
    got = np.asarray(result["value"], np.float64).reshape(result["shape"])
    if got.shape != ref.shape:
        return False
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-300)
    return bool(got.size == 0 or np.max(np.abs(got - ref)) / scale <= 1e-4)


def _cell(words: list[str]) -> str:
    def short(word):
        if word.startswith("crash:"):
            return f"**{word[6:]}**"
        return SHORT.get(word, word)

    if len(set(words)) == 1:
        return short(words[0])
    return " / ".join(short(w) for w in words)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _command(args: argparse.Namespace) -> str:
    """The command line that produced the table, repository-relative (no --out/--json paths)."""
    words = [".venv/bin/python", "scripts/hostile_table.py"]
    if args.k:
        words += ["-k", args.k]
    if args.workers != 2:
        words += ["--workers", str(args.workers)]
    if args.from_json:
        words += ["--from-json", Path(args.from_json).name]
    return " ".join(words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "HOSTILE.md"))
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("-k", default=None, help="only cases whose id contains this")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--from-json",
        default=None,
        help="re-render the table from the raw results of an earlier run (its --json file) "
        "instead of running the corpus again",
    )
    args = parser.parse_args()

    cases = hostile_cases.corpus()
    if args.k:
        cases = [case for case in cases if args.k in case.id]
    print(f"hostile_table: {len(cases)} cases x {len(MODES)} modes x {len(IMPLS)} implementations")
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        results, timings = saved["results"], saved["timings"]
        head, library = saved["head"], saved["library"]
        if library.startswith("/"):  # a raw path written by an older version of this script
            library = provenance.library_label(library)
    else:
        results, timings = {}, {}
        head, library = provenance.git_head(), provenance.library_label()
        for label, impl, env in IMPLS:
            runs = hostile_cases.runs_for(cases, impl)
            for run in runs:
                run["key"] = f"{run['key']}|{label}"
            start = time.monotonic()
            results.update(
                subprocess_worker.run(
                    runs, env, workers=args.workers, total_timeout=3600, progress=_progress(label)
                )
            )
            timings[label] = time.monotonic() - start
            print(f"  {label}: {len(runs)} runs in {timings[label]:.0f} s", flush=True)
        if args.json:
            saved = {"results": results, "timings": timings, "head": head, "library": library}
            Path(args.json).write_text(json.dumps(saved, indent=1, default=str))

    def get(case, impl, mode, label):
        return results.get(f"{case.id}|{impl}|{mode}|{label}")

    from tf_convgrad.tools import oracle  # noqa: PLC0415

    table = collections.defaultdict(list)
    summary = collections.Counter()
    mismatches, tf_crashes = [], []
    for case in cases:
        cells = {}
        for label, impl, _ in IMPLS:
            words = [_word(case, get(case, impl, mode, label)) for mode in MODES]
            cells[label] = _cell(words)
            for mode, word in zip(MODES, words, strict=True):
                summary[(label, "crash" if word.startswith("crash") else word)] += 1
                if word.startswith("crash") and label != "ours":
                    result = get(case, impl, mode, label)
                    tf_crashes.append((case, label, mode, word[6:], result.get("message", "")))
            if label == "ours":
                for mode, word in zip(MODES, words, strict=True):
                    if word != case.expect[mode]:
                        mismatches.append((case, mode, word))
        expected = _cell([case.expect[mode] for mode in MODES])
        tensors = case.spec["tensors"]
        dtype = tensors["out_backprop"]["dtype"]
        padding = case.spec["attrs"].get("padding", "")
        kernel = oracle.predicted_kernel(OPS[case.op].tf_name, dtype, padding, onednn=True)
        onednn_cell = cells["onednn"] + ("" if kernel.startswith("_Mkl") else " (native kernel)")
        table[case.op].append(
            f"| `{case.id.split('-', 1)[1]}` | {case.category} | {expected} | {cells['ours']} "
            f"| {cells['native']} | {onednn_cell} | {_md_escape(case.note)} |"
        )

    cpu_flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0]
        cpu_flags = ", ".join(
            f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags
        )
    except (OSError, IndexError):
        pass
    lines = [
        "# Hostile inputs: TensorFlow 2.21 vs tf_convgrad",
        "",
        "<!-- Generated by scripts/hostile_table.py from actual runs; do not edit by hand. -->",
        "",
        f"Generated {datetime.date.today().isoformat()} on {platform.machine()} "
        f"({cpu_flags}), Python {platform.python_version()}, by "
        f"`{_command(args)}`. "
        f"{len(cases)} cases x {len(MODES)} modes x 3 implementations "
        f"({sum(timings.values()):.0f} s: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + ").",
        "",
        "The corpus is `tests/support/hostile_cases.py`: the probes of "
        "`tests/support/validation_probes.py` plus the cases added for issue 5. "
        "`tests/robustness/test_hostile.py` runs the *ours* column in the default test suite and "
        "fails on any cell that differs from *expected*. The G-numbers in the note column are "
        "TensorFlow's shortcomings as listed in docs/SEMANTICS.md, \"Where TensorFlow 2.21's "
        'kernels fall short".',
        "",
        "**How each cell was produced.** Every case runs in three modes, written "
        "`eager / function / function_const` when they differ (one word when all agree): eager; a "
        "`tf.function` whose arguments are all the inputs, sizes included (only the kernel sees "
        "values); a `tf.function` with the sizes tensor as a constant (the shape function sees "
        "it). Runs go to worker processes, two at a time, each worker running its share of "
        "the cases one after another and writing each result as soon as it has it. When a case "
        "kills its worker, the first case without a result is the culprit; it is recorded with "
        "the signal and a fresh worker carries on with the next case, so a crash is never "
        "attributed to the wrong case and no result comes from a process that survived "
        "someone else's crash. (One process per case would cost a TensorFlow import, ~3 s, "
        "per run: ~2 hours for this table; forking a warmed parent is unsafe with TF's "
        "threads.) *native* is `tf.raw_ops` with `TF_ENABLE_ONEDNN_OPTS=0`, *oneDNN* with `=1`; "
        "*(native kernel)* marks cases that oneDNN does not rewrite (EXPLICIT padding, float64 "
        "and, on this CPU, float16), so both TF columns ran the same kernel there.",
        "",
        "**Legend.** IA = `InvalidArgumentError`, RE = `ResourceExhaustedError`, VE = "
        "`ValueError` and TE = `TypeError` (both raised while building the graph), Unimpl = "
        "`UnimplementedError`, 0s = a result of the right shape with every element exactly 0, "
        "ok = a finite result (for *expected* ok: within 1e-4 of the float64 reference, else "
        "**wrong**), **garbage** = non-zero or non-finite values where the answer is exactly "
        "zero (uninitialised memory), **SIGABRT** / **SIGFPE** / **SIGSEGV** = the process "
        "died, **Aborted** = `AbortedError` from oneDNN's primitive creation.",
        "",
        f"Ours: source `{head}`, library: {library}"
        + (f" (re-rendered from `{Path(args.from_json).name}`)." if args.from_json else "."),
        "",
        "## Summary",
        "",
        "| | " + " | ".join(label for label, _, _ in IMPLS) + " |",
        "|---|" + "---|" * len(IMPLS),
    ]
    words = sorted({w for _, w in summary})
    for word in words:
        row = [str(summary[(label, word)]) for label, _, _ in IMPLS]
        lines.append(f"| {SHORT.get(word, word) if word != 'crash' else '**process died**'} | "
                     + " | ".join(row) + " |")  # fmt: skip
    lines += [
        "",
        f"Ours differs from *expected* in {len(mismatches)} of {len(cases) * len(MODES)} runs"
        + (":" if mismatches else "."),
    ]
    for case, mode, word in mismatches:
        lines.append(f"* `{case.id}` ({mode}): expected {case.expect[mode]}, got {word}")
    for op in ("cbf", "dbf", "dbi"):
        lines += [
            "",
            f"## {OPS[op].tf_name}",
            "",
            "| case | category | expected | ours | TF native | TF oneDNN | note |",
            "|---|---|---|---|---|---|---|",
            *table[op],
        ]
    lines += ["", "## How TF's processes died", ""]
    for case, label, mode, sig, message in tf_crashes:
        first = next((ln for ln in message.splitlines() if "Check failed" in ln), "")
        first = first or (message.strip().splitlines() or ["(no message)"])[-1]
        lines.append(f"* `{case.id}`, {label}, {mode}: {sig}. `{_md_escape(first[-300:])}`")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"hostile_table: wrote {args.out}; ours differs from expected in {len(mismatches)} runs")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
