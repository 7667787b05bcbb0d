"""The hostile-input corpus and its crash-isolating runner.

Used by tests/test_hostile.py (ours, in the default suite) and scripts/hostile_table.py (ours, TF
native and TF oneDNN, for docs/HOSTILE.md).

Corpus
------
:func:`corpus` returns every case once: the probes of ``test_validation.py`` (imported, not
copied) followed by the cases added here (``EXTRA``): int32/int64-overflowing sizes, scalar and
rank-0/1/2 operands, empty lists, strides and dilations of ``2**31 - 1`` (valid, and computed)
and ``>= 2**31`` (out of the int32 attribute range), EXPLICIT paddings of the wrong length or near
``2**63``, every empty tensor (zero batch, zero channels, zero multiplier, zero output spatial,
zero filter taps) in every dtype, and absurd-but-valid output sizes. A case says what *we* must
do in each mode (:data:`MODES`):

* an error class (``InvalidArgumentError``, ``ResourceExhaustedError``, ``ValueError`` or
  ``TypeError`` from graph construction), never a crash;
* ``"zeros"``: a result of ``zeros_shape``, every element exactly 0;
* ``"ok"``: a finite result, compared with the float64 reference by the test.

Modes
-----
``eager``; ``function``: a ``tf.function`` whose arguments are all the inputs, sizes included, so
only the kernel sees values; ``function_const``: the sizes are a constant inside the function, so
the shape function sees their value (and can reject them at trace time with ``ValueError``).

Runner
------
One process per case would cost a TensorFlow import (~3 s) per case, and forking a warmed parent
is unsafe with TF's threads. :func:`run` therefore starts ``workers`` worker processes (default
2), each running its share of the cases one after another and writing one JSON line per finished
case. When a case kills its worker (a CHECK-abort, a SIGFPE), the first case without a line is
the culprit: it is recorded as crashed with the signal, and a fresh worker continues with the case
after it. A case that makes no progress for ``case_timeout`` seconds is killed and recorded as
timed out. Every result names the worker process that ran it (``"worker"``: chain.attempt, and
``"pid"``), so a crash can never be attributed to the wrong case and no case shares a process with
one that crashed before it.

Nothing at module level imports TensorFlow: the worker side must be free to pick oneDNN on or off
before TF loads, and TF-only workers never load our op library.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("eager", "function", "function_const")
DTYPES = ("float16", "bfloat16", "float32", "float64")
BIG = 2**31 - 1  # the largest int32
IAE = "InvalidArgumentError"
REE = "ResourceExhaustedError"
SIZES_NAME = {"cbf": "filter_sizes", "dbf": "filter_sizes", "dbi": "input_sizes"}
MAX_VALUE_ELEMENTS = 4096  # results up to this size come back whole (for value checks)


@dataclass(frozen=True)
class HostileCase:
    id: str
    op: str  # "cbf" | "dbf" | "dbi"
    category: str
    spec: dict  # subprocess_worker format: {"tensors", "sizes", "attrs"}
    expect: dict  # mode -> error class | "zeros" | "ok"
    zeros_shape: tuple | None = None
    source: str = "hostile"  # or "test_validation"
    ours_message: bool = True  # an InvalidArgumentError comes from our kernel (op-name prefix)
    note: str = ""
    extra: dict = field(default_factory=dict)


def _expect(default: str, **per_mode: str) -> dict:
    return {mode: per_mode.get(mode, default) for mode in MODES}


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------

# test_validation probes whose outcome is not InvalidArgumentError everywhere. In graph mode
# an attribute outside the OpDef's allowed values, or a wrong dtype, is refused by op
# construction in Python (ValueError / TypeError) before any kernel exists. A sizes input of
# the wrong rank or length is refused by the shape function at trace time (ValueError): in
# "function" it sees the sizes tensor's shape, in "function_const" also its value.
_FRAMEWORK_ERRORS = {  # refused by TF's op machinery, before our kernel: TF's own message
    "padding_full": {"function": "ValueError", "function_const": "ValueError"},
    "data_format_nchw_vect_c": {"function": "ValueError", "function_const": "ValueError"},
    "dtype_mismatch": {"function": "TypeError", "function_const": "TypeError"},
    "dtype_int32": {"function": "TypeError", "function_const": "TypeError"},
    "sizes_int64": {"function": "TypeError", "function_const": "TypeError"},
}
_SHAPE_FN = {"function": "ValueError", "function_const": "ValueError"}
_VALIDATION_OVERRIDES = {
    **_FRAMEWORK_ERRORS,
    "huge_filter_allocation": {"eager": REE, "function": REE, "function_const": REE},
    "huge_input_allocation": {"eager": REE, "function": REE, "function_const": REE},
    "sizes_minus3": {"function_const": "ValueError"},
    "sizes_scalar": _SHAPE_FN,
    "sizes_rank2": _SHAPE_FN,
    "sizes_len0": _SHAPE_FN,
    "sizes_len3": _SHAPE_FN,
    "sizes_len5": _SHAPE_FN,
}

_CATEGORIES = (
    ("strides", "strides"),
    ("stride", "strides"),
    ("dilations", "dilations"),
    ("explicit", "explicit_paddings"),
    ("sizes", "sizes tensor"),
    ("huge", "absurd sizes"),
    ("zero_batch", "absurd sizes"),
    ("padding", "attributes"),
    ("data_format", "attributes"),
    ("dtype", "attributes"),
    ("rank", "ranks"),
    ("mismatch", "mismatched sizes"),
    ("valid_negative", "mismatched sizes"),
    ("depth", "mismatched sizes"),
    ("grouped", "mismatched sizes"),
)


# What TF is known to do with a case, for the table's note column; the G-ids are those of
# docs/SEMANTICS.md, "Where TensorFlow 2.21's kernels fall short".
_TF_NOTES = (
    ("stride_zero", "any", "TF in tf.function: SIGFPE in Grappler's cost model (G16)"),
    ("stride_cols_zero", "any", "TF in tf.function: SIGFPE in Grappler's cost model (G16)"),
    ("dilations_int32_max_same", "cbf", "TF native refuses dilations > 1 (G2)"),
    ("dilations", "dw", "TF ignores depthwise dilations entirely (G8); we validate them"),
    ("empty_out_spatial_valid", "cbf", "VALID, filter > input (G4)"),
    ("empty_input_rows_same", "cbf", "zero output rows (G4)"),
    ("empty_", "dbf", "empty out_backprop: TF leaves the gradient unwritten (G11)"),
    ("multiplier0", "dbi", "TF never writes the output (G12)"),
    ("zero_batch_huge_explicit_output", "cbf", "TF: int32 im2col sizes, CHECK-abort (G5)"),
    ("zero_batch_huge_explicit_output", "dbf", "TF: 'Output rows too large' (int32 limit)"),
    ("explicit_with_", "any", "oneDNN eager ignores explicit_paddings with SAME/VALID (G17)"),
)


def _tf_note(op: str, name: str) -> str:
    for fragment, ops, note in _TF_NOTES:
        applies = ops == "any" or ops == op or (ops == "dw" and op != "cbf")
        if applies and fragment in name:
            return note
    return ""


def _category(name: str) -> str:
    for prefix, category in _CATEGORIES:
        if prefix in name:
            return category
    return "other"


def _from_validation() -> list[HostileCase]:
    import test_validation  # noqa: PLC0415 - imports TensorFlow; only the parent needs it

    cases = []
    for probe in test_validation.PROBES:
        name = probe.id.split("-", 1)[1]
        if probe.expect == "ours_zeros":
            expect = _expect("zeros")
        else:
            expect = _expect(IAE, **_VALIDATION_OVERRIDES.get(name, {}))
        cases.append(
            HostileCase(
                id=probe.id,
                op=probe.op,
                category=_category(name),
                spec=probe.spec,
                expect=expect,
                zeros_shape=probe.zeros_shape,
                source="test_validation",
                note=_tf_note(probe.op, name),
                ours_message=name not in _FRAMEWORK_ERRORS,
            )
        )
    return cases


def _extra(op: str) -> list[HostileCase]:  # noqa: PLR0915 - a flat list of cases
    from test_validation import _spec  # noqa: PLC0415

    depthwise = op != "cbf"
    first = "filter" if op == "dbi" else "input"
    out_c = 6 if depthwise else 2
    sizes4 = [2, 5, 5, 3] if op == "dbi" else [3, 3, 3, 2]
    cases: list[HostileCase] = []

    def add(name, category, spec, expect, zeros_shape=None, note=""):
        note = "; ".join(n for n in (note, _tf_note(op, name)) if n)
        cases.append(
            HostileCase(f"{op}-{name}", op, category, spec, expect, zeros_shape, note=note)
        )

    invalid = _expect(IAE)
    const_rejects = _expect(IAE, function_const="ValueError")
    shape_fn_rejects = _expect(IAE, function="ValueError", function_const="ValueError")

    # ---- sizes tensor ------------------------------------------------------------------------
    # Products that overflow int32 (but not int64), rejected by the geometry: VALID needs the
    # filter to fit in the input.
    if op == "dbi":
        add(
            "sizes_int32_product_overflow", "sizes tensor", _spec(op, sizes=[BIG, 2, 5, 3]), invalid
        )
        add(
            "sizes_int64_product_overflow_3",
            "sizes tensor",
            _spec(op, sizes=[BIG, BIG, BIG, 3]),
            invalid,
        )
    else:
        add(
            "sizes_int32_product_overflow",
            "sizes tensor",
            _spec(op, sizes=[65536, 65536, 3, 2], padding="VALID"),
            invalid,
        )
        add(
            "sizes_int64_product_overflow_3",
            "sizes tensor",
            _spec(op, sizes=[BIG, BIG, BIG, 2], padding="VALID"),
            invalid,
        )
    add("sizes_all_minus1", "sizes tensor", _spec(op, sizes=[-1, -1, -1, -1]), invalid)
    add("sizes_int32_min", "sizes tensor", _spec(op, sizes=[-(2**31)] + sizes4[1:]), const_rejects)
    add("sizes_rank3", "sizes tensor", _spec(op, sizes=[[[v] for v in sizes4]]), shape_fn_rejects)

    # ---- ranks of the T operands -------------------------------------------------------------
    for name, shape in (("rank0", []), ("rank1", [75]), ("rank2", [5, 15])):
        add(f"{first}_{name}", "ranks", _spec(op, tensors={first: shape}), invalid)
        add(f"out_backprop_{name}", "ranks", _spec(op, tensors={"out_backprop": shape}), invalid)
    add(
        "all_operands_rank0",
        "ranks",
        _spec(op, tensors={first: [], "out_backprop": []}, sizes=[]),
        shape_fn_rejects,
    )

    # ---- strides -----------------------------------------------------------------------------
    add("strides_empty", "strides", _spec(op, strides=[]), invalid)
    add("strides_2pow31", "strides", _spec(op, strides=[1, 2**31, 2**31, 1]), invalid)
    add("strides_minus_2pow31", "strides", _spec(op, strides=[1, -(2**31), 1, 1]), invalid)
    add("strides_2pow63_minus1", "strides", _spec(op, strides=[1, 2**63 - 1, 1, 1]), invalid)
    add("stride_batch0", "strides", _spec(op, strides=[0, 1, 1, 1]), invalid)
    add("stride_cols_zero", "strides", _spec(op, strides=[1, 1, 0, 1]), invalid)
    # The largest int32 stride is valid: one output position per spatial dimension.
    add(
        "stride_int32_max_same",
        "strides",
        _spec(op, tensors={"out_backprop": [2, 1, 1, out_c]}, strides=[1, BIG, BIG, 1]),
        _expect("ok"),
    )
    add(
        "stride_int32_max_valid",
        "strides",
        _spec(
            op,
            tensors={"out_backprop": [2, 1, 1, out_c]},
            strides=[1, BIG, BIG, 1],
            padding="VALID",
        ),
        _expect("ok"),
    )

    # ---- dilations ---------------------------------------------------------------------------
    add("dilations_empty", "dilations", _spec(op, dilations=[]), invalid)
    add("dilations_2pow31", "dilations", _spec(op, dilations=[1, 2**31, 1, 1]), invalid)
    if not depthwise:
        add("dilations_len5", "dilations", _spec(op, dilations=[1, 1, 1, 1, 1]), invalid)
    # Dilation 2**31 - 1 on a 3x3 filter: effective size 2**32 - 1, SAME pads 2**31 - 1 on
    # each side; only the centre tap ever lands inside the input. Valid, and computed.
    add(
        "dilations_int32_max_same",
        "dilations",
        _spec(op, dilations=[1, BIG, BIG, 1]),
        _expect("ok"),
    )
    add(
        "dilations_int32_max_valid",
        "dilations",
        _spec(op, dilations=[1, BIG, 1, 1], padding="VALID"),
        invalid,
        note="effective filter 2**32 - 1 > input: negative output size",
    )

    # ---- explicit paddings ---------------------------------------------------------------------
    explicit = {"padding": "EXPLICIT"}
    add("explicit_empty", "explicit_paddings", _spec(op, explicit_paddings=[], **explicit), invalid)
    add(
        "explicit_len9",
        "explicit_paddings",
        _spec(op, explicit_paddings=[0, 0, 1, 1, 1, 1, 0, 0, 0], **explicit),
        invalid,
    )
    add(
        "explicit_int64_max",
        "explicit_paddings",
        _spec(op, explicit_paddings=[0, 0, 2**63 - 1, 2**63 - 1, 0, 0, 0, 0], **explicit),
        invalid,
        note="pad sum overflows int64",
    )
    add(
        "explicit_int64_min",
        "explicit_paddings",
        _spec(op, explicit_paddings=[0, 0, -(2**63), 0, 0, 0, 0, 0], **explicit),
        invalid,
    )
    add(
        "explicit_batch_huge",
        "explicit_paddings",
        _spec(op, explicit_paddings=[2**62, 0, 1, 1, 1, 1, 0, 0], **explicit),
        invalid,
    )
    # Valid: pads of 2**31 - 1 around a 5-row input with a 3-row filter and stride 2**31 - 1
    # give 3 output rows; only the middle one meets the input.
    add(
        "explicit_int32_max_pads_huge_stride",
        "explicit_paddings",
        _spec(
            op,
            tensors={"out_backprop": [2, 3, 5, out_c]},
            explicit_paddings=[0, 0, BIG, BIG, 1, 1, 0, 0],
            strides=[1, BIG, 1, 1],
            **explicit,
        ),
        _expect("ok"),
    )

    # ---- mismatched sizes --------------------------------------------------------------------
    add(
        "batch_mismatch_zero",
        "mismatched sizes",
        _spec(op, tensors={"out_backprop": [0, 5, 5, out_c]}),
        invalid,
        note="out_backprop empty, input not",
    )
    add(
        "depth_mismatch_zero",
        "mismatched sizes",
        _spec(op, tensors={"out_backprop": [2, 5, 5, 0]}),
        invalid,
    )
    if op == "cbf":
        add(
            "input_depth_zero_filter_depth1",
            "mismatched sizes",
            _spec(op, tensors={"input": [2, 5, 5, 0]}, sizes=[3, 3, 1, 2]),
            invalid,
            note="TFSA-2021-013 shape (input depth 0, filter depth 1): 0 groups",
        )
        add(
            "grouped_depth_not_divisible",
            "mismatched sizes",
            _spec(op, tensors={"input": [2, 5, 5, 6]}, sizes=[3, 3, 4, 2]),
            invalid,
        )
    elif op == "dbf":
        add(
            "multiplier_int32_max",
            "mismatched sizes",
            _spec(op, sizes=[1, 1, 3, BIG]),
            invalid,
            note="in_depth * multiplier overflows int32",
        )

    # ---- empty tensors of every kind, every dtype (valid: exact zeros) --------------------------
    def empty(name, tensors, sizes, expect_shape, dtypes=DTYPES, **attrs):
        for dtype in dtypes:
            spec = _spec(op, tensors=tensors, sizes=sizes, **attrs)
            for tensor in spec["tensors"].values():
                tensor["dtype"] = dtype
            add(
                f"empty_{name}_{dtype}",
                "empty tensors",
                spec,
                _expect("zeros"),
                zeros_shape=tuple(expect_shape),
            )

    if op == "cbf":
        empty("batch", {"input": [0, 5, 5, 3], "out_backprop": [0, 5, 5, 2]}, sizes4, sizes4)
        empty(
            "out_channels",
            {"out_backprop": [2, 5, 5, 0]},
            [3, 3, 3, 0],
            [3, 3, 3, 0],
        )
        empty(
            "out_spatial_valid",
            {"input": [2, 2, 2, 3], "out_backprop": [2, 0, 0, 2]},
            [3, 3, 3, 2],
            [3, 3, 3, 2],
            strides=[1, 2, 2, 1],
            padding="VALID",
        )
        empty(
            "input_rows_same",
            {"input": [2, 0, 5, 3], "out_backprop": [2, 0, 5, 2]},
            sizes4,
            sizes4,
        )
        empty("filter_taps", {"out_backprop": [2, 6, 6, 2]}, [0, 0, 3, 2], [0, 0, 3, 2],
              padding="VALID")  # fmt: skip
        empty(
            "batch_nchw",
            {"input": [0, 3, 5, 5], "out_backprop": [0, 2, 5, 5]},
            sizes4,
            sizes4,
            dtypes=("float32",),
            data_format="NCHW",
        )
    elif op == "dbf":
        empty("batch", {"input": [0, 5, 5, 3], "out_backprop": [0, 5, 5, 6]}, sizes4, sizes4)
        empty(
            "channels",
            {"input": [2, 5, 5, 0], "out_backprop": [2, 5, 5, 0]},
            [3, 3, 0, 2],
            [3, 3, 0, 2],
        )
        empty("multiplier0", {"out_backprop": [2, 5, 5, 0]}, [3, 3, 3, 0], [3, 3, 3, 0])
        empty(
            "out_spatial_valid",
            {"input": [2, 2, 2, 3], "out_backprop": [2, 0, 0, 6]},
            [3, 3, 3, 2],
            [3, 3, 3, 2],
            strides=[1, 2, 2, 1],
            padding="VALID",
        )
        empty(
            "input_rows_same",
            {"input": [2, 0, 5, 3], "out_backprop": [2, 0, 5, 6]},
            sizes4,
            sizes4,
        )
        empty("filter_taps", {"out_backprop": [2, 6, 6, 6]}, [0, 0, 3, 2], [0, 0, 3, 2],
              padding="VALID")  # fmt: skip
        empty(
            "out_spatial_nchw",
            {"input": [2, 3, 2, 2], "out_backprop": [2, 6, 0, 0]},
            [3, 3, 3, 2],
            [3, 3, 3, 2],
            dtypes=("float32",),
            strides=[1, 1, 2, 2],
            padding="VALID",
            data_format="NCHW",
        )
    else:
        empty("batch", {"out_backprop": [0, 5, 5, 6]}, [0, 5, 5, 3], [0, 5, 5, 3])
        empty(
            "channels",
            {"filter": [3, 3, 0, 2], "out_backprop": [2, 5, 5, 0]},
            [2, 5, 5, 0],
            [2, 5, 5, 0],
        )
        empty(
            "multiplier0",
            {"filter": [3, 3, 3, 0], "out_backprop": [2, 5, 5, 0]},
            sizes4,
            sizes4,
        )
        empty(
            "out_spatial_valid",
            {"out_backprop": [2, 0, 0, 6]},
            [2, 2, 2, 3],
            [2, 2, 2, 3],
            strides=[1, 2, 2, 1],
            padding="VALID",
        )
        empty("filter_taps", {"filter": [0, 0, 3, 2], "out_backprop": [2, 6, 6, 6]}, sizes4,
              sizes4, padding="VALID")  # fmt: skip
        empty(
            "multiplier0_nchw",
            {"filter": [3, 3, 3, 0], "out_backprop": [2, 0, 5, 5]},
            [2, 3, 5, 5],
            [2, 3, 5, 5],
            dtypes=("float32",),
            data_format="NCHW",
        )

    # ---- absurd-but-valid output sizes -------------------------------------------------------
    explicit_huge = [0, 0, 2**31, 2**31, 0, 0, 0, 0]
    if op == "dbi":
        add(
            "zero_batch_huge_explicit_output",
            "absurd sizes",
            _spec(
                op,
                tensors={"filter": [3, 3, 1, 1], "out_backprop": [0, 2**32 + 3, 3, 1]},
                sizes=[0, 5, 5, 1],
                padding="EXPLICIT",
                explicit_paddings=explicit_huge,
            ),
            _expect("zeros"),
            zeros_shape=(0, 5, 5, 1),
        )
        add(
            "huge_input_allocation_2pow62_bytes",
            "absurd sizes",
            _spec(
                op,
                tensors={"filter": [1, 1, 1, 1], "out_backprop": [1, 1, 1, 1]},
                sizes=[1, 2**30, 2**30, 1],
                strides=[1, 2**30, 2**30, 1],
            ),
            _expect(REE),
        )
    else:
        if op == "dbf":
            add(
                "zero_batch_huge_explicit_output",
                "absurd sizes",
                _spec(
                    op,
                    tensors={"input": [0, 5, 5, 1], "out_backprop": [0, 2**32 + 3, 3, 1]},
                    sizes=[3, 3, 1, 1],
                    padding="EXPLICIT",
                    explicit_paddings=explicit_huge,
                ),
                _expect("zeros"),
                zeros_shape=(3, 3, 1, 1),
            )
        add(
            "filter_elements_over_int32",
            "absurd sizes",
            _spec(op, sizes=[2**16, 2**15, 3, 2]),
            _expect(REE),
            note="SAME accepts any filter size: 2**32 x 4 bytes x 6 cannot be allocated here",
        )
    return cases


def corpus() -> list[HostileCase]:
    """Every case, test_validation's first. Imports TensorFlow (through test_validation)."""
    cases = _from_validation()
    for op in ("cbf", "dbf", "dbi"):
        cases += _extra(op)
    ids = [case.id for case in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate hostile case ids: {sorted(duplicates)}")
    return cases


def runs_for(cases, impl: str, modes=MODES) -> list[dict]:
    """Worker runs (subprocess_worker format plus ``impl`` and ``mode``) for the cases."""
    return [
        {"key": f"{case.id}|{impl}|{mode}", "op": case.op, "impl": impl, "mode": mode, **case.spec}
        for case in cases
        for mode in modes
    ]


# --------------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------------


def signal_name(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            pass
    return f"exit code {returncode}"


def outcome(result: dict | None, zeros_shape: tuple | None = None) -> str:
    """One word for a result: an error class, "zeros", "ok", "garbage", "crash:SIGABRT", ..."""
    if result is None:
        return "not run"
    if result.get("crashed"):
        return "crash:" + signal_name(result.get("returncode"))
    if result.get("timed_out"):
        return "timeout"
    if not result["ok"]:
        return result["error_class"]
    if not result["finite"]:
        return "garbage"
    if zeros_shape is not None:
        if tuple(result["shape"]) != tuple(zeros_shape):
            return f"wrong shape {result['shape']}"
        return "zeros" if result["all_zero"] else "garbage"
    return "zeros" if result["all_zero"] else "ok"


# --------------------------------------------------------------------------------------------------
# Runner: parent side
# --------------------------------------------------------------------------------------------------


def _read_lines(path: Path) -> dict[str, dict]:
    results = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                result = json.loads(line)
            except json.JSONDecodeError:  # cut short by a crash
                continue
            results[result["key"]] = result
    return results


# A CHECK-failure, a fatal log line, or a sanitizer report (scripts/sanitize.sh looks for these).
_FATAL = re.compile(r"Check failed|^F0000|Fatal|runtime error:|ERROR: AddressSanitizer|SUMMARY: ")
_STARTUP_NOISE = re.compile(
    r"^(I0000|W0000|WARNING)|cuInit|cuda|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS|"
    r"rebuild TensorFlow|To enable the following"
)


def _log_tail(path: Path, limit: int = 1500) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    fatal = [ln for ln in lines if _FATAL.search(ln)]
    kept = fatal or [ln for ln in lines if ln.strip() and not _STARTUP_NOISE.search(ln)]
    return "\n".join(kept)[-limit:] or "(no output: killed by the signal)"


def _run_chain(runs, env, workdir: Path, chain: int, case_timeout: float, deadline: float, tick):
    results: dict[str, dict] = {}
    remaining = list(runs)
    attempt = 0
    while remaining:
        attempt += 1
        tag = f"{chain}.{attempt}"
        job, out, log = (workdir / f"{name}{tag}" for name in ("job", "out", "log"))
        job.write_text(json.dumps(remaining))
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, __file__, str(job), str(out), tag],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            seen, last_progress, timed_out = 0, time.monotonic(), False
            while True:
                try:
                    returncode = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                lines = out.read_text().count("\n") if out.exists() else 0
                if lines != seen:
                    tick(lines - seen)
                    seen, last_progress = lines, time.monotonic()
                now = time.monotonic()
                # The first case also waits for the TF import.
                limit = case_timeout + (30 if seen == 0 else 0)
                if now - last_progress > limit or now > deadline:
                    proc.kill()
                    returncode, timed_out = proc.wait(), True
                    break
        got = _read_lines(out)
        tick(len(got) - seen)
        results.update(got)
        missing = [run for run in remaining if run["key"] not in got]
        if not missing:
            break
        culprit = missing[0]
        results[culprit["key"]] = {
            "key": culprit["key"],
            "ok": False,
            "crashed": not timed_out,
            "timed_out": timed_out,
            "returncode": returncode,
            "signal": signal_name(returncode),
            "worker": tag,
            "pid": proc.pid,
            "message": _log_tail(log),
        }
        tick(1)
        remaining = missing[1:]
        if time.monotonic() > deadline:
            for run in remaining:
                results[run["key"]] = {
                    "key": run["key"],
                    "ok": False,
                    "timed_out": True,
                    "message": "not run: time budget exhausted",
                }
            break
    return results


def run(
    runs,
    env_overrides: dict | None = None,
    workers: int = 2,
    case_timeout: float = 120,
    total_timeout: float = 1800,
    progress=None,
) -> dict[str, dict]:
    """Runs the runs in ``workers`` crash-isolated worker chains; returns ``{key: result}``.

    ``env_overrides`` are applied over this process's environment (after
    ``TF_ENABLE_ONEDNN_OPTS=0``), e.g. ``{"TF_ENABLE_ONEDNN_OPTS": "1"}``. ``progress(done,
    total)`` is called from the supervising threads as results arrive.
    """
    env = dict(os.environ)
    env.update({"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2"})
    env.update(env_overrides or {})
    chains = [runs[k::workers] for k in range(workers)]
    outputs: list[dict] = [{} for _ in chains]
    errors: list[BaseException] = []
    deadline = time.monotonic() + total_timeout
    lock = threading.Lock()
    done = [0]

    def tick(n):
        with lock:
            done[0] += n
            if progress is not None and n:
                progress(done[0], len(runs))

    with tempfile.TemporaryDirectory(prefix="tf_convgrad_hostile_") as tmp:

        def target(k):
            try:
                outputs[k] = _run_chain(chains[k], env, Path(tmp), k, case_timeout, deadline, tick)
            except BaseException as error:  # noqa: BLE001 - re-raised below
                errors.append(error)

        threads = [threading.Thread(target=target, args=(k,)) for k in range(len(chains))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    merged: dict[str, dict] = {}
    for output in outputs:
        merged.update(output)
    return merged


# --------------------------------------------------------------------------------------------------
# Runner: worker side (this file run as a script)
# --------------------------------------------------------------------------------------------------


def _call(tf, np, ours, run):
    import subprocess_worker as sw  # noqa: PLC0415 - TF-free helpers shared with test_validation

    op = run["op"]
    fn = (
        getattr(ours, sw.OUR_FUNCTIONS[op])
        if run["impl"] == "ours"
        else getattr(tf.raw_ops, sw.OP_NAMES[op])
    )
    tensors = {name: sw._make_tensor(tf, np, spec) for name, spec in run["tensors"].items()}
    sizes = {
        name: np.asarray(spec["value"], dtype=spec.get("dtype", "int32"))
        for name, spec in run["sizes"].items()
    }
    attrs = run["attrs"]
    mode = run["mode"]
    if mode == "eager":
        args = {**tensors, **{name: tf.constant(v) for name, v in sizes.items()}}
        return fn(**args, **attrs)
    if mode == "function":
        args = {**tensors, **{name: tf.constant(v) for name, v in sizes.items()}}
    elif mode == "function_const":
        args = tensors
    else:
        raise ValueError(f"unknown mode {mode!r}")
    names = list(args)

    def body(*values):
        consts = {name: tf.constant(v) for name, v in sizes.items()} if mode != "function" else {}
        return fn(**dict(zip(names, values, strict=True)), **consts, **attrs)

    return tf.function(body, autograph=False)(*[args[name] for name in names])


def _result(tf, np, ours, run, tag):
    start = time.perf_counter()
    base = {"key": run["key"], "worker": tag, "pid": os.getpid()}
    try:
        value = _call(tf, np, ours, run).numpy()
    except Exception as error:  # noqa: BLE001 - every failure is a result
        return {
            **base,
            "ok": False,
            "error_class": type(error).__name__,
            "message": (getattr(error, "message", None) or str(error))[:2000],
            "seconds": time.perf_counter() - start,
        }
    as64 = value.astype(np.float64)
    result = {
        **base,
        "ok": True,
        "shape": list(value.shape),
        "dtype": str(value.dtype),
        "all_zero": bool(not np.any(as64)),
        "finite": bool(np.all(np.isfinite(as64))),
        "seconds": time.perf_counter() - start,
    }
    if value.size <= MAX_VALUE_ELEMENTS:
        result["value"] = as64.ravel().tolist()
    return result


def _worker_main(job_path: str, out_path: str, tag: str) -> int:
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    runs = json.loads(Path(job_path).read_text())
    ours = None
    if any(r["impl"] == "ours" for r in runs):
        import tf_convgrad as ours  # noqa: PLC0415
    with open(out_path, "a", buffering=1) as out:
        for r in runs:
            out.write(json.dumps(_result(tf, np, ours, r, tag)) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(*sys.argv[1:4]))
