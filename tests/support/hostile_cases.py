"""The hostile-input corpus.

Used by tests/robustness/test_hostile.py (ours, in the default suite) and scripts/hostile_table.py
(ours, TF native and TF oneDNN, for docs/HOSTILE.md).

Corpus
------
:func:`corpus` returns every case once: the probes of ``validation_probes.py`` (imported, not
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

Running
-------
:func:`runs_for` turns cases into runs for ``subprocess_worker.run``, which runs them in
crash-isolated worker processes (``tf_convgrad.tools.worker``): one process per case would cost a
TensorFlow import (~3 s) per case, and forking a warmed parent is unsafe with TF's threads. A case
that kills its worker is recorded as crashed with the signal, and a fresh worker continues with
the case after it, so no case shares a process with one that crashed before it; every result
names the process that ran it. :func:`outcome` sums a result up in one word.

Nothing at module level imports TensorFlow: :func:`corpus` does, through ``test_validation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("eager", "function", "function_const")
DTYPES = ("float16", "bfloat16", "float32", "float64")
BIG = 2**31 - 1  # the largest int32
IAE = "InvalidArgumentError"
REE = "ResourceExhaustedError"


@dataclass(frozen=True)
class HostileCase:
    id: str
    op: str  # "cbf" | "dbf" | "dbi"
    category: str
    spec: dict  # the run format of subprocess_worker: {"tensors", "sizes", "attrs"}
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
    import validation_probes  # noqa: PLC0415

    cases = []
    for probe in validation_probes.PROBES:
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
    from validation_probes import _spec  # noqa: PLC0415

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

    if op != "dbi":  # the filter gradients share their empty inputs but for out_c
        empty("batch", {"input": [0, 5, 5, 3], "out_backprop": [0, 5, 5, out_c]}, sizes4, sizes4)
    if op == "cbf":
        empty("out_channels", {"out_backprop": [2, 5, 5, 0]}, [3, 3, 3, 0], [3, 3, 3, 0])
    elif op == "dbf":
        empty(
            "channels",
            {"input": [2, 5, 5, 0], "out_backprop": [2, 5, 5, 0]},
            [3, 3, 0, 2],
            [3, 3, 0, 2],
        )
        empty("multiplier0", {"out_backprop": [2, 5, 5, 0]}, [3, 3, 3, 0], [3, 3, 3, 0])
    if op != "dbi":
        empty(
            "out_spatial_valid",
            {"input": [2, 2, 2, 3], "out_backprop": [2, 0, 0, out_c]},
            [3, 3, 3, 2],
            [3, 3, 3, 2],
            strides=[1, 2, 2, 1],
            padding="VALID",
        )
        empty(
            "input_rows_same",
            {"input": [2, 0, 5, 3], "out_backprop": [2, 0, 5, out_c]},
            sizes4,
            sizes4,
        )
        empty("filter_taps", {"out_backprop": [2, 6, 6, out_c]}, [0, 0, 3, 2], [0, 0, 3, 2],
              padding="VALID")  # fmt: skip
    if op == "cbf":
        empty(
            "batch_nchw",
            {"input": [0, 3, 5, 5], "out_backprop": [0, 2, 5, 5]},
            sizes4,
            sizes4,
            dtypes=("float32",),
            data_format="NCHW",
        )
    elif op == "dbf":
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
    if depthwise:  # CBF's is a test_validation probe
        # Zero batch, so nothing to compute; the output rows need 64-bit sizes.
        shapes = {"input": [0, 5, 5, 1], "filter": [3, 3, 1, 1]}
        sizes = shapes["input" if op == "dbi" else "filter"]  # the output's shape
        add(
            "zero_batch_huge_explicit_output",
            "absurd sizes",
            _spec(
                op,
                tensors={first: shapes[first], "out_backprop": [0, 2**32 + 3, 3, 1]},
                sizes=sizes,
                padding="EXPLICIT",
                explicit_paddings=[0, 0, 2**31, 2**31, 0, 0, 0, 0],
            ),
            _expect("zeros"),
            zeros_shape=tuple(sizes),
        )
    if op == "dbi":
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


def outcome(result: dict | None, zeros_shape: tuple | None = None) -> str:
    """One word for a result: an error class, "zeros", "ok", "garbage", "crash:SIGABRT", ..."""
    if result is None:
        return "not run"
    if result.get("crashed"):
        return "crash:" + result["signal"]
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
